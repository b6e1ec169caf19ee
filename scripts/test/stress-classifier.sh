#!/usr/bin/env bash
# The classifier suite N times in a row (default 50) while the kernel tier runs beside it again and again as load,
# as in a full run; stops at the first failing round. Not in CI: it keeps a machine busy for many minutes, to show
# a flake gone (issue 29). Root, after npm run build. Usage: scripts/test/stress-classifier.sh [N] [TEST-FILE...]
# (the files default to test/kernel/integration/classifier.test.ts).
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
rounds=${1:-50}
shift || true
files=("$@")
[ ${#files[@]} -gt 0 ] || files=(test/kernel/integration/classifier.test.ts)
log=$(mktemp -d "${TMPDIR:-/tmp}/sr-stress-XXXXXX")

# The load: whole kernel-tier passes, one after another until the rounds are done; the pass under way then ends
# normally, so that its teardowns delete what it made. Interrupted, this script stops the load's process group.
# shellcheck disable=SC2016 # the inner shell expands its own arguments
setsid bash -c 'until [ -e "$1/stop" ]; do bash scripts/test/tier.sh kernel -- --disable-coverage -R silent >>"$1/load.log" 2>&1; done' load "$log" &
load=$!
trap 'kill -- "-$load" 2>/dev/null; exit 130' INT TERM

passed=0
for round in $(seq 1 "$rounds"); do
  start=$(date +%s)
  if bash scripts/test/tier.sh kernel -- --disable-coverage -R tap "${files[@]}" >"$log/round.log" 2>&1; then
    passed=$((passed + 1))
    echo "round $round: passed ($(($(date +%s) - start)) s; load $(cut -d' ' -f1 /proc/loadavg))"
  else
    echo "round $round: FAILED; its output is in $log/round-$round.log"
    cp "$log/round.log" "$log/round-$round.log"
    break
  fi
done
echo "$passed of $rounds rounds passed in a row (${files[*]}), beside the kernel tier as load"
touch "$log/stop"
echo "waiting for the load's pass under way to end"
wait "$load"
[ "$passed" -eq "$rounds" ] && rm -rf "$log"
[ "$passed" -eq "$rounds" ]
