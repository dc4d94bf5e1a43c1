#!/usr/bin/env bash
# Starts evcxr_jupyter for the "Rust (dynsim)" kernel; the kernelspec that kernel/install.sh
# writes runs it as:  bash kernel/launch.sh <evcxr_jupyter> --control_file <connection file>
#
# Why a launcher: evcxr compiles each notebook cell into a shared library that links Rust's
# standard library dynamically (libstd-<hash>.so from the toolchain), and loads it into the
# kernel process. rustc records where libstd is only as a path relative to the library's
# build folder, and evcxr loads a copy from another folder, so the library is found or not
# depending on where the build folder and the toolchain happen to be (for the default
# ~/.cache/dynsim-kernel and a rustup toolchain in ~/.rustup it is not: "dlopen failed").
# The kernel's build settings therefore record no such path at all (rpath = false), and
# this launcher puts the toolchain's library folder on the loader's search path instead,
# resolved at every start from the toolchain evcxr's cargo will use (rustup's choice for
# the build folder), so it holds for any build-folder location, any toolchain location,
# and after a toolchain update.
set -euo pipefail

say() { printf 'dynsim kernel: %s\n' "$*" >&2; }
[ $# -ge 1 ] || { say "usage: launch.sh <evcxr_jupyter> [arguments]"; exit 2; }
evcxr="$1"
shift

# Jupyter may start kernels with a PATH that lacks cargo's bin folder (a desktop launcher).
if ! command -v rustc >/dev/null 2>&1; then
    export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
fi
command -v rustc >/dev/null 2>&1 || { say "rustc is not on PATH; install Rust (https://rustup.rs)"; exit 1; }

# Ask rustc from the build folder (EVCXR_TMPDIR), where evcxr runs cargo, so that a
# rust-toolchain file or rustup override there is honoured as it is for the build.
build="${EVCXR_TMPDIR:-$PWD}"
[ -d "$build" ] || build="$PWD"
sysroot="$(cd "$build" && rustc --print sysroot)"
host="$(cd "$build" && rustc -vV | sed -n 's/^host: //p')"
libdir="$sysroot/lib/rustlib/$host/lib"
if ! compgen -G "$libdir/libstd-*" >/dev/null; then
    say "no libstd in $libdir (toolchain $sysroot); reinstall the toolchain (rustup toolchain install stable)"
    exit 1
fi
case "$(uname -s)" in
    Darwin) export DYLD_LIBRARY_PATH="$libdir${DYLD_LIBRARY_PATH:+:$DYLD_LIBRARY_PATH}" ;;
    *) export LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" ;;
esac
exec "$evcxr" "$@"
