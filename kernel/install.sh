#!/usr/bin/env bash
# Install the "Rust (dynsim)" Jupyter kernel: evcxr_jupyter and Jupyter (pip, user level) when
# missing, the kernel's config and build folder, the kernelspec, and a first build.
#
#   bash kernel/install.sh              # for people: Jupyter Lab too
#   bash kernel/install.sh --headless   # for tests: only what executing notebooks needs
#   bash kernel/install.sh --no-warm    # skip the first build (the first notebook does it)
#
# Environment:
#   DYNSIM_KERNEL_CACHE  the kernel's folder: config, evcxr's build folder, cargo settings
#                        (default ${XDG_CACHE_HOME:-$HOME/.cache}/dynsim-kernel)
#   JUPYTER_DATA_DIR     where the kernelspec goes (default ~/.local/share/jupyter)
#   CARGO_TARGET_DIR     as for cargo: the kernel compiles into this checkout's target folder
#
# The kernel compiles into this checkout's target folder (the one `cargo metadata` names),
# with the workspace's dev profile and the same flags as `bash tests/run.sh`, so the
# toolkit's dependencies (polars above all) are compiled once for both. See kernel/README.md.
#
# Safe to run again: it installs only what is missing and rewrites only its own files.
set -euo pipefail

EVCXR_VERSION=0.22.0
headless=0
warm=1
for arg in "$@"; do
    case "$arg" in
        --headless) headless=1 ;;
        --no-warm) warm=0 ;;
        -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
        *) echo "kernel/install.sh: unknown option '$arg' (try --help)" >&2; exit 2 ;;
    esac
done

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${DYNSIM_KERNEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dynsim-kernel}"
data="${JUPYTER_DATA_DIR:-$HOME/.local/share/jupyter}"
cargo_bin="${CARGO_HOME:-$HOME/.cargo}/bin"
export PATH="$cargo_bin:$HOME/.local/bin:$PATH"
say() { printf 'kernel/install.sh: %s\n' "$*" >&2; }

for tool in cargo rustc python3; do
    command -v "$tool" >/dev/null || { say "'$tool' is not on PATH; install it first"; exit 1; }
done
mkdir -p "$cache"
cache="$(cd "$cache" && pwd)"

# 1. evcxr_jupyter, pinned (its notebook protocol and build folder layout change between
#    releases). `cargo install` builds it in ~5 minutes on 2 cores; skipped when present.
#    Both cargo's record and the binary must be there (a deleted binary is reinstalled).
if cargo install --list | grep -q "^evcxr_jupyter v$EVCXR_VERSION:" && command -v evcxr_jupyter >/dev/null; then
    say "evcxr_jupyter $EVCXR_VERSION is installed"
else
    say "installing evcxr_jupyter $EVCXR_VERSION (cargo install --locked; ~5 minutes on 2 cores)"
    start=$(date +%s)
    cargo install --locked --force evcxr_jupyter --version "=$EVCXR_VERSION"
    say "evcxr_jupyter installed in $(( $(date +%s) - start )) s"
fi
evcxr="$(command -v evcxr_jupyter)" || {
    say "evcxr_jupyter is installed but not on PATH (looked in $cargo_bin and PATH); add cargo's install folder to PATH"
    exit 1
}

# 2. Jupyter at user level: the client libraries that execute notebooks, and Jupyter Lab
#    for people (not with --headless).
python_has() { python3 -c "import $1" 2>/dev/null; }
need=()
for mod in jupyter_client nbclient nbformat; do python_has "$mod" || need+=("$mod"); done
if [ "$headless" = 0 ] && ! python_has jupyterlab; then need+=(jupyterlab); fi
if [ "${#need[@]}" -gt 0 ]; then
    say "installing ${need[*]} (pip, user level)"
    python3 -m pip install --user --quiet --disable-pip-version-check "${need[@]}"
fi

# 3. The kernel's config (EVCXR_CONFIG_DIR): init.evcxr names this checkout's crates.
mkdir -p "$cache/config"
sed "s|@ROOT@|$root|g" "$root/kernel/config/init.evcxr.in" > "$cache/config/init.evcxr.tmp"
mv "$cache/config/init.evcxr.tmp" "$cache/config/init.evcxr"
cp "$root/kernel/config/prelude.rs" "$cache/config/prelude.rs.tmp"
mv "$cache/config/prelude.rs.tmp" "$cache/config/prelude.rs"

# 4. evcxr's build folder (EVCXR_TMPDIR) and the cargo settings above it.
#    - target/ is this checkout's target folder, so the kernel reuses what the workspace
#      build compiled (evcxr always builds into <build folder>/target).
#    - kernel/patches is this checkout's kernel/patches: cargo identifies a path dependency
#      by its path relative to the workspace root, so the patched foldhash must sit at the
#      same relative path in both builds for polars to be the same build in both.
#    - .cargo/config.toml carries the workspace's dev profile and [patch] (generated below).
#    - Cargo.lock starts as the workspace's, so the same versions are built.
build="$cache/build"
mkdir -p "$build/kernel" "$cache/.cargo"
target="$(cd "$root" && cargo metadata --format-version 1 --no-deps --locked \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
mkdir -p "$target"
relink() { # relink LINK DEST: LINK becomes a symlink to DEST (an old folder there is removed)
    if [ -L "$1" ] || [ ! -e "$1" ]; then
        ln -sfn "$2" "$1"
    else
        say "replacing the kernel's own build folder $1 by a link to $2 (the kernel now shares the workspace's build)"
        rm -rf "$1" && ln -sfn "$2" "$1"
    fi
}
relink "$build/target" "$target"
relink "$build/kernel/patches" "$root/kernel/patches"
rm -rf "$cache/patches" # the layout of earlier versions
python3 "$root/kernel/cargo_config.py" "$root/Cargo.toml" "$build" > "$cache/.cargo/config.toml.tmp"
mv "$cache/.cargo/config.toml.tmp" "$cache/.cargo/config.toml"
cp "$root/Cargo.lock" "$build/Cargo.lock"

# 5. The kernelspec "Rust (dynsim)": the launcher finds the toolchain's libstd at each start.
spec="$data/kernels/rust-dynsim"
mkdir -p "$spec"
python3 - "$spec/kernel.json" "$(command -v bash)" "$root/kernel/launch.sh" "$evcxr" "$cache/config" "$build" <<'PY'
import json, os, sys
path, bash, launch, evcxr, config, build = sys.argv[1:]
spec = {
    "argv": [bash, launch, evcxr, "--control_file", "{connection_file}"],
    "display_name": "Rust (dynsim)",
    "language": "rust",
    "interrupt_mode": "message",
    "env": {"EVCXR_CONFIG_DIR": config, "EVCXR_TMPDIR": build},
}
with open(path + ".tmp", "w") as f:
    json.dump(spec, f, indent=2)
os.replace(path + ".tmp", path)
PY
say "kernelspec 'rust-dynsim' (Rust (dynsim)) in $spec; build folder $build, compiling into $target"

# 6. The first build of the toolkit inside evcxr, so that no notebook waits for it.
if [ "$warm" = 1 ]; then
    say "building dynsim for the kernel (reuses the tests' build when there is one)"
    start=$(date +%s)
    python3 "$root/kernel/execute.py" --warm
    say "kernel ready in $(( $(date +%s) - start )) s"
fi
