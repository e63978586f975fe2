#!/usr/bin/env bash
# Runs the whole suite (tools/test.sh) N times in a row and keeps every run's log, to find tests
# that fail only sometimes (timing on a loaded machine). Usage:
#
#   bash tools/repeat_tests.sh N [LOG_DIR]
#
# LOG_DIR defaults to ${TMPDIR:-/tmp}/sandboxer-test-runs/<UTC time>; run-K.log holds run K's
# whole output. Each run's summary line ("N passed, M failed, K ignored") and time are printed as
# it ends, then one line per run. Exits 1 if any run failed. Run it beside `deno task bench` to
# check the suite under load.
set -uo pipefail
cd "$(dirname "$0")/.."

runs="${1:-}"
if ! [[ "$runs" =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: bash tools/repeat_tests.sh N [LOG_DIR]  (N: how many runs, 1 or more)" >&2
  exit 2
fi
logs="${2:-${TMPDIR:-/tmp}/sandboxer-test-runs/$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$logs"
echo "repeat_tests: $runs runs, logs in $logs" >&2

failed=0
summaries=()
for ((k = 1; k <= runs; k++)); do
  start=$(date +%s)
  bash tools/test.sh >"$logs/run-$k.log" 2>&1
  status=$?
  took=$(($(date +%s) - start))
  summary=$(tail -n 1 "$logs/run-$k.log")
  if ! [[ "$summary" =~ ^[0-9]+\ passed,\ [0-9]+\ failed,\ [0-9]+\ ignored$ ]]; then
    summary="no summary line (see the log)"
  fi
  [ "$status" -ne 0 ] && failed=$((failed + 1))
  line="run $k: exit $status, $summary, $((took / 60))m$(printf '%02d' $((took % 60)))s, $logs/run-$k.log"
  summaries+=("$line")
  echo "$line" >&2
done
echo "repeat_tests: $((runs - failed)) of $runs runs passed" >&2
printf '%s\n' "${summaries[@]}" >"$logs/summary.txt"
[ "$failed" -eq 0 ]
