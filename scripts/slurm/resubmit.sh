#!/bin/bash
# Rerun the unfinished workers of a run that submit.sh launched, with the arguments it was launched with, and
# queue a new finish job behind them.
#
#   scripts/slurm/resubmit.sh OUT [--workers 3,7] [--dry-run]
#
# Without --workers, the workers to rerun are those that `mimic status OUT` reports with failed, partial or missing
# shards. A rerun task skips its complete shards (verified) and redoes the rest; the worker count stays the one of
# the first launch. By hand, the same is:
#   sbatch --array=3,7 scripts/slurm/score.sbatch <the same mimic score arguments, --num-workers N included>
set -euo pipefail

die() { echo "resubmit.sh: $*" >&2; exit 2; }
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
[ $# -ge 1 ] || die "usage: resubmit.sh OUT [--workers LIST] [--dry-run]"
out=$1
shift
list=""
dry_run=0
while [ $# -gt 0 ]; do
  case "$1" in
    --workers) list=${2:?}; shift 2 ;;
    --workers=*) list=${1#*=}; shift ;;
    --dry-run) dry_run=1; shift ;;
    *) die "unknown option $1" ;;
  esac
done
[ -d "$out" ] || die "$out is not a folder"
out=$(cd "$out" && pwd)
record="$out/_slurm/submission.sh"
[ -f "$record" ] || die "$record not found: was $out submitted with scripts/slurm/submit.sh? (otherwise: sbatch --array=LIST score.sbatch ARGS...)"
# shellcheck source=/dev/null
source "$record"
cd "$SUBMIT_DIR"

if [ -z "$list" ]; then
  # Workers that own a shard that is not done, from the files themselves (mimic status exits 1 while any is open).
  status_json=$("$MIMIC" status "$out" --json || true)
  list=$(printf '%s' "$status_json" | node -e '
    let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => {
      const r = JSON.parse(s);
      console.log(r.workers.filter((w) => w.counts.failed + w.counts.partial + w.counts.missing > 0).map((w) => w.index).join(","));
    });')
fi
[[ -z "$list" || "$list" =~ ^[0-9]+(,[0-9]+)*$ ]] || die "--workers must be a comma-separated list of worker indices, got '$list'"
for w in ${list//,/ }; do
  [ "$w" -lt "$WORKERS" ] || die "worker $w is not below the run's worker count $WORKERS"
done

logs="$out/_slurm/logs"
finish_cmd=(sbatch --parsable "${COMMON_SBATCH[@]}" --export="ALL,MIMIC=$MIMIC" --kill-on-invalid-dep=yes
  --output="$logs/finish-%j.log" "$here/finish.sbatch" "$out" "${FILTER_ARGS[@]}")
if [ -z "$list" ]; then
  echo "resubmit.sh: every shard of $out is done; queueing only the finish job" >&2
  if [ $dry_run -eq 1 ]; then printf '%q ' "${finish_cmd[@]}"; echo; exit 0; fi
  finish_job=$("${finish_cmd[@]}")
  echo "- ${finish_job%%;*}"
  exit 0
fi

score_cmd=(sbatch --parsable "${COMMON_SBATCH[@]}" "${SCORE_SBATCH[@]}" --array="$list${MAX_PARALLEL:+%$MAX_PARALLEL}"
  --output="$logs/score-%A_%a.log" "$here/score.sbatch" "${SCORE_ARGS[@]}")
if [ $dry_run -eq 1 ]; then
  printf '%q ' "${score_cmd[@]}"; echo
  printf '%q ' "${finish_cmd[@]:0:2}" --dependency=afterok:JOBID "${finish_cmd[@]:2}"; echo
  exit 0
fi
mkdir -p "$logs"
score_job=$("${score_cmd[@]}")
score_job=${score_job%%;*}
finish_job=$("${finish_cmd[@]:0:2}" --dependency="afterok:$score_job" "${finish_cmd[@]:2}")
finish_job=${finish_job%%;*}
echo "rerunning workers $list of $WORKERS: job $score_job; finish: job $finish_job" >&2
echo "$score_job $finish_job"
