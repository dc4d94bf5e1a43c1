#!/usr/bin/env bash
# dynsim's test command (the README's, and what .ci/run calls):
#   1. every workspace test (unit, property, golden-value and end-to-end CLI tests);
#   2. the notebooks in notebooks/, executed headlessly on the "Rust (dynsim)" kernel, which
#      kernel/install.sh installs first when it is missing (evcxr_jupyter, Jupyter's client
#      libraries at user level, the kernelspec, the toolkit's first build in the kernel's
#      build folder). A failing cell, or a failing assertion in one, fails the run.
# Executed copies go to a temporary folder; the committed notebooks are not touched.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

start=$(date +%s)
cargo test --workspace --locked --all-features
echo "tests/run.sh: workspace tests passed in $(( $(date +%s) - start )) s" >&2

start=$(date +%s)
bash kernel/install.sh --headless
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
python3 kernel/execute.py --out "$out" notebooks/*.ipynb
echo "tests/run.sh: kernel and notebooks passed in $(( $(date +%s) - start )) s" >&2
