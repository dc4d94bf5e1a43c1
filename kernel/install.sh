#!/usr/bin/env bash
# Install the "Rust (dynsim)" Jupyter kernel: evcxr_jupyter, Jupyter (pip, user level) when
# missing, the kernelspec, and a first build of the toolkit in the kernel's build folder.
#
#   bash kernel/install.sh              # for people: Jupyter Lab too
#   bash kernel/install.sh --headless   # for CI: only what executing notebooks needs
#   bash kernel/install.sh --no-warm    # skip the first build (the first notebook does it)
#
# Environment:
#   DYNSIM_KERNEL_CACHE  the kernel's persistent build folder and cargo settings
#                        (default ${XDG_CACHE_HOME:-$HOME/.cache}/dynsim-kernel)
#   JUPYTER_DATA_DIR     where the kernelspec goes (default ~/.local/share/jupyter)
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
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        *) echo "kernel/install.sh: unknown option '$arg' (try --help)" >&2; exit 2 ;;
    esac
done

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${DYNSIM_KERNEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dynsim-kernel}"
data="${JUPYTER_DATA_DIR:-$HOME/.local/share/jupyter}"
cargo_bin="${CARGO_HOME:-$HOME/.cargo}/bin"
export PATH="$cargo_bin:$HOME/.local/bin:$PATH"
say() { printf 'kernel/install.sh: %s\n' "$*" >&2; }

for tool in cargo python3; do
    command -v "$tool" >/dev/null || { say "'$tool' is not on PATH; install it first"; exit 1; }
done

# 1. evcxr_jupyter, pinned (its notebook protocol and build folder layout change between
#    releases). `cargo install` builds it in ~15 minutes on 2 cores; skipped when present.
if cargo install --list | grep -q "^evcxr_jupyter v$EVCXR_VERSION:"; then
    say "evcxr_jupyter $EVCXR_VERSION is installed"
else
    say "installing evcxr_jupyter $EVCXR_VERSION (cargo install --locked; ~15 minutes on 2 cores)"
    start=$(date +%s)
    cargo install --locked evcxr_jupyter --version "=$EVCXR_VERSION"
    say "evcxr_jupyter installed in $(( $(date +%s) - start )) s"
fi
evcxr="$(command -v evcxr_jupyter)"

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
sed "s|@ROOT@|$root|g" "$root/kernel/config/init.evcxr.in" > "$root/kernel/config/init.evcxr.tmp"
mv "$root/kernel/config/init.evcxr.tmp" "$root/kernel/config/init.evcxr"

# 4. The persistent build folder (EVCXR_TMPDIR) and the cargo settings above it.
#    A new build folder starts from the workspace's Cargo.lock, so that the kernel builds
#    the same dependency versions the tests ran with.
mkdir -p "$cache/build" "$cache/.cargo"
#    The patched crates are copied to a fixed place in the cache (only when they changed, to
#    keep their timestamps): a new checkout elsewhere must not rebuild polars.
if ! diff -rq "$root/kernel/patches" "$cache/patches" >/dev/null 2>&1; then
    rm -rf "$cache/patches.tmp"
    cp -r "$root/kernel/patches" "$cache/patches.tmp"
    rm -rf "$cache/patches"
    mv "$cache/patches.tmp" "$cache/patches"
fi
sed "s|@PATCHES@|$cache/patches|g" "$root/kernel/config/cargo-config.toml" > "$cache/.cargo/config.toml.tmp"
mv "$cache/.cargo/config.toml.tmp" "$cache/.cargo/config.toml"
if [ ! -f "$cache/build/Cargo.lock" ]; then cp "$root/Cargo.lock" "$cache/build/Cargo.lock"; fi

# 5. The kernelspec "Rust (dynsim)".
spec="$data/kernels/rust-dynsim"
mkdir -p "$spec"
python3 - "$spec/kernel.json" "$evcxr" "$root/kernel/config" "$cache/build" <<'PY'
import json, sys
path, evcxr, config, build = sys.argv[1:]
spec = {
    "argv": [evcxr, "--control_file", "{connection_file}"],
    "display_name": "Rust (dynsim)",
    "language": "rust",
    "interrupt_mode": "message",
    "env": {"EVCXR_CONFIG_DIR": config, "EVCXR_TMPDIR": build},
}
with open(path + ".tmp", "w") as f:
    json.dump(spec, f, indent=2)
import os
os.replace(path + ".tmp", path)
PY
say "kernelspec 'rust-dynsim' (Rust (dynsim)) in $spec; build folder $cache/build"

# 6. The first build of the toolkit inside evcxr, so that no notebook waits for it.
if [ "$warm" = 1 ]; then
    say "building dynsim in the kernel's build folder (the first time takes a while)"
    start=$(date +%s)
    python3 "$root/kernel/execute.py" --warm
    say "kernel ready in $(( $(date +%s) - start )) s"
fi
