#!/usr/bin/env bash
# The compositional test case on a SLURM cluster: a training array, then a comparison array,
# then one collecting job (statistics and report), chained with dependencies.
#
#   bash crates/dynsim-cli/slurm/compositional.sh STORE [TRAIN_TASKS] [COMPARE_TASKS] [-- OPTIONS]
#
# STORE is a dynsim store on a file system every node sees (created if missing); OPTIONS go
# to every step (e.g. --preset paper --arch rnn --seeds 3 --analysis both). Every step is
# idempotent: a task that fails or is preempted can be resubmitted as it is, finished runs,
# recordings and pairs are skipped. Adjust the #SBATCH lines (partition, time, memory) to
# your cluster; a training task trains its runs one thread per network, on --cpus-per-task
# cores. Set DYNSIM to the dynsim binary (default: `dynsim` on PATH; build it with
# `cargo build --release -p dynsim-cli`, it is target/release/dynsim). Set SBATCH to another
# submit command to dry-run (e.g. SBATCH=echo).
set -euo pipefail
if [[ $# -lt 1 || "$1" == -* ]]; then
  sed -n '2,15p' "$0" >&2
  exit 2
fi
store=$(realpath -m "$1"); shift
train_tasks=32; compare_tasks=16
if [[ $# -gt 0 && "$1" != "--" ]]; then train_tasks=$1; shift; fi
if [[ $# -gt 0 && "$1" != "--" ]]; then compare_tasks=$1; shift; fi
if [[ $# -gt 0 && "$1" == "--" ]]; then shift; fi
options=("$@")
dynsim=${DYNSIM:-$(command -v dynsim || true)}
if [[ -z "$dynsim" || ! -x "$dynsim" ]]; then
  echo "no dynsim binary: set DYNSIM=/path/to/dynsim or put dynsim on PATH" >&2
  exit 2
fi
sbatch=${SBATCH:-sbatch}
for n in "$train_tasks" "$compare_tasks"; do
  [[ "$n" =~ ^[1-9][0-9]*$ ]] || { echo "task counts must be positive integers, got $n" >&2; exit 2; }
done
mkdir -p "$store/slurm-logs"
opts=$(printf ' %q' "${options[@]}")
common="$(printf '%q' "$dynsim") testcase compositional --store $(printf '%q' "$store")$opts"

# --parsable makes sbatch print the job id only.
train=$("$sbatch" --parsable --job-name=dynsim-train --array=0-$((train_tasks - 1)) \
  --cpus-per-task=4 --mem=8G --time=12:00:00 --output="$store/slurm-logs/train-%A_%a.out" \
  --wrap="$common --step train --threads \${SLURM_CPUS_PER_TASK:-1} --shard \${SLURM_ARRAY_TASK_ID}/$train_tasks")
compare=$("$sbatch" --parsable --job-name=dynsim-compare --dependency=afterok:"$train" \
  --array=0-$((compare_tasks - 1)) --cpus-per-task=4 --mem=8G --time=4:00:00 \
  --output="$store/slurm-logs/compare-%A_%a.out" \
  --wrap="$common --step compare --shard \${SLURM_ARRAY_TASK_ID}/$compare_tasks")
collect=$("$sbatch" --parsable --job-name=dynsim-collect --dependency=afterok:"$compare" \
  --cpus-per-task=2 --mem=8G --time=1:00:00 --output="$store/slurm-logs/collect-%j.out" \
  --wrap="$common --out $(printf '%q' "$store/compositional-report")")
echo "submitted: training array $train ($train_tasks tasks), comparison array $compare ($compare_tasks tasks), collection $collect"
echo "logs in $store/slurm-logs; the report will be $store/compositional-report/report.md"
