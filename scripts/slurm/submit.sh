#!/bin/bash
# Submit a scoring run to Slurm: one array task per worker (score.sbatch), then a job that waits for all of them
# (--dependency=afterok), checks the run with `mimic status` and runs `mimic filter` (finish.sbatch).
#
#   scripts/slurm/submit.sh --workers 16 [knobs] -- SHARDS... --proxy DIR --reference DIR --out OUT [score flags] \
#       [--filter FILTER FLAGS...]
#
# Knobs:
#   --workers N          array tasks = workers (fixed for the run at its first launch)
#   --gpus-per-task G    GPUs per array task (default 1; 0 for CPU-only), asked as --gres=gpu:G; pass
#                        --device cuda to mimic (Slurm sets CUDA_VISIBLE_DEVICES to the task's GPUs)
#   --cpus-per-task C    CPUs per task (default 8): onnxruntime threads and 2×C images decoded at once
#   --max-parallel K     run at most K tasks at once (--array=0-(N-1)%K)
#   --partition P, --time T, --mem M, --account A   passed to both jobs
#   --sbatch ARG         any other sbatch option for both jobs (repeatable), e.g. --sbatch=--qos=low
#   --dry-run            print the sbatch commands instead of running them
# Environment: MIMIC, the mimic executable the jobs run (default: `mimic` found on PATH now).
#
# Everything after `--` goes to `mimic score`, up to `--filter`; what follows `--filter` goes to `mimic filter OUT`.
# The submission is recorded in OUT/_slurm/submission.sh, so that resubmit.sh can rerun unfinished workers with
# the same arguments; job logs go to OUT/_slurm/logs/.
set -euo pipefail

usage() { sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
die() { echo "submit.sh: $*" >&2; exit 2; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
workers=""
gpus=1
cpus=8
max_parallel=""
dry_run=0
common=()
while [ $# -gt 0 ]; do
  case "$1" in
    --workers) workers=${2:?}; shift 2 ;;
    --workers=*) workers=${1#*=}; shift ;;
    --gpus-per-task) gpus=${2:?}; shift 2 ;;
    --gpus-per-task=*) gpus=${1#*=}; shift ;;
    --cpus-per-task) cpus=${2:?}; shift 2 ;;
    --cpus-per-task=*) cpus=${1#*=}; shift ;;
    --max-parallel) max_parallel=${2:?}; shift 2 ;;
    --max-parallel=*) max_parallel=${1#*=}; shift ;;
    --partition|--time|--mem|--account) common+=("$1=${2:?}"); shift 2 ;;
    --partition=*|--time=*|--mem=*|--account=*) common+=("$1"); shift ;;
    --sbatch) common+=("${2:?}"); shift 2 ;;
    --sbatch=*) common+=("${1#*=}"); shift ;;
    --dry-run) dry_run=1; shift ;;
    -h|--help) usage ;;
    --) shift; break ;;
    *) die "unknown option $1 (mimic score's arguments go after --)" ;;
  esac
done

is_count() { [[ "$1" =~ ^[0-9]+$ ]]; }
is_count "$workers" && [ "$workers" -ge 1 ] || die "--workers N is required (a positive whole number)"
is_count "$gpus" || die "--gpus-per-task must be a whole number, got '$gpus'"
is_count "$cpus" && [ "$cpus" -ge 1 ] || die "--cpus-per-task must be a positive whole number, got '$cpus'"
[ -z "$max_parallel" ] || { is_count "$max_parallel" && [ "$max_parallel" -ge 1 ]; } || die "--max-parallel must be a positive whole number"

score_args=()
filter_args=()
have_filter=0
while [ $# -gt 0 ]; do
  if [ "$1" = "--filter" ] && [ $have_filter -eq 0 ]; then
    have_filter=1
  elif [ $have_filter -eq 1 ]; then
    filter_args+=("$1")
  else
    score_args+=("$1")
  fi
  shift
done
[ ${#score_args[@]} -gt 0 ] || die "no mimic score arguments (put them after --)"

out=""
for ((i = 0; i < ${#score_args[@]}; i++)); do
  case "${score_args[$i]}" in
    --out) out=${score_args[$((i + 1))]:-} ;;
    --out=*) out=${score_args[$i]#--out=} ;;
    --num-workers|--num-workers=*|--worker-index|--worker-index=*)
      die "${score_args[$i]%%=*} is set by submit.sh (from --workers and the array index); leave it out" ;;
  esac
done
[ -n "$out" ] || die "mimic score's --out OUT must be on the command line (the finish job and resubmit.sh need it)"

MIMIC=${MIMIC:-$(command -v mimic || true)}
[ -n "$MIMIC" ] || die "no mimic on PATH; set MIMIC=/path/to/grad-mimic/bin/mimic"
[[ "$MIMIC" != *,* ]] || die "MIMIC must not contain a comma (sbatch --export splits on commas)"

array="0-$((workers - 1))${max_parallel:+%$max_parallel}"
logs="$out/_slurm/logs"
# The score tasks' resources; the array range is added per submission (resubmit.sh uses its own).
score_knobs=(--cpus-per-task="$cpus" --export="ALL,MIMIC=$MIMIC")
# --gres, not sbatch's --gpus-per-task: that one is refused without --ntasks ("--gpus-per-task used without
# either --gpus or -n/--ntasks is not allowed"), and each array task is one task on one node.
if [ "$gpus" -gt 0 ]; then score_knobs+=(--gres="gpu:$gpus"); fi
finish_sbatch=(--export="ALL,MIMIC=$MIMIC" --kill-on-invalid-dep=yes)
score_cmd=(sbatch --parsable "${common[@]}" --array="$array" "${score_knobs[@]}" --output="$logs/score-%A_%a.log"
  "$here/score.sbatch" "${score_args[@]}" --num-workers "$workers")

if [ $dry_run -eq 1 ]; then
  printf '%q ' "${score_cmd[@]}"; echo
  printf '%q ' sbatch --parsable "${common[@]}" "${finish_sbatch[@]}" --dependency=afterok:JOBID --output="$logs/finish-%j.log" \
    "$here/finish.sbatch" "$out" "${filter_args[@]}"; echo
  exit 0
fi

mkdir -p "$logs"
# What resubmit.sh needs to rerun workers of this run exactly as they were launched.
write_array() {
  local name=$1
  shift
  printf '%s=(' "$name"
  if [ $# -gt 0 ]; then printf ' %q' "$@"; fi
  echo ' )'
}
{
  echo "# written by scripts/slurm/submit.sh on $(date -u +%FT%TZ); read by resubmit.sh"
  printf 'SUBMIT_DIR=%q\n' "$PWD"
  printf 'MIMIC=%q\n' "$MIMIC"
  printf 'WORKERS=%q\n' "$workers"
  printf 'MAX_PARALLEL=%q\n' "$max_parallel"
  write_array COMMON_SBATCH "${common[@]}"
  write_array SCORE_SBATCH "${score_knobs[@]}"
  write_array SCORE_ARGS "${score_args[@]}" --num-workers "$workers"
  write_array FILTER_ARGS "${filter_args[@]}"
} > "$out/_slurm/submission.sh.tmp"
mv "$out/_slurm/submission.sh.tmp" "$out/_slurm/submission.sh"

score_job=$("${score_cmd[@]}")
score_job=${score_job%%;*}
finish_job=$(sbatch --parsable "${common[@]}" "${finish_sbatch[@]}" --dependency="afterok:$score_job" \
  --output="$logs/finish-%j.log" "$here/finish.sbatch" "$out" "${filter_args[@]}")
finish_job=${finish_job%%;*}
{
  echo "score array: job $score_job (tasks $array); finish: job $finish_job (after every task succeeds)"
  echo "check: mimic status $out    logs: $logs/"
  echo "rerun unfinished workers: $here/resubmit.sh $out"
} >&2
# stdout: the two job ids, for scripts.
echo "$score_job $finish_job"
