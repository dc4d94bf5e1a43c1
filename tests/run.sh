#!/usr/bin/env bash
# dynsim's test command (the README's, and what .ci/run calls):
#   1. every workspace test (unit, property, golden-value and end-to-end CLI tests);
#   2. the notebook kernel: kernel/install.sh when it is missing (evcxr_jupyter, Jupyter's
#      client libraries at user level, the kernelspec, the toolkit's build for the kernel);
#   3. a kernel smoke test: a kernel whose build folder is a new folder under $HOME starts
#      and runs a cell (where the shared library evcxr builds for a cell lives decides
#      whether it finds Rust's standard library; kernel/launch.sh makes it any folder);
#   4. the notebooks in notebooks/, executed headlessly on the "Rust (dynsim)" kernel. A
#      failing cell, or a failing assertion in one, fails the run.
# Executed copies go to a temporary folder; the committed notebooks are not touched.
#
# The workspace tests are built exactly as the kernel builds the toolkit (the host target
# named explicitly, RUSTFLAGS=-Cprefer-dynamic as evcxr sets it, the dev profile of
# Cargo.toml), into the same target folder, so polars and the other dependencies are
# compiled once for both. Each phase prints its duration.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

phase_start=0
phase() { phase_name="$1"; phase_start=$(date +%s); printf 'tests/run.sh: %s ...\n' "$phase_name" >&2; }
done_phase() { printf 'tests/run.sh: %s: %d s\n' "$phase_name" "$(( $(date +%s) - phase_start ))" >&2; }
total_start=$(date +%s)

host="$(rustc -vV | sed -n 's/^host: //p')"
phase "workspace build and tests"
RUSTFLAGS="-Cprefer-dynamic" cargo test --workspace --locked --all-features --target "$host"
done_phase

phase "kernel install (evcxr_jupyter, Jupyter client, the toolkit's build for the kernel)"
bash kernel/install.sh --headless
done_phase

phase "kernel smoke test (build folder under \$HOME)"
python3 kernel/execute.py --smoke
done_phase

phase "notebooks"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
python3 kernel/execute.py --out "$out" notebooks/*.ipynb
done_phase
printf 'tests/run.sh: all passed in %d s\n' "$(( $(date +%s) - total_start ))" >&2
