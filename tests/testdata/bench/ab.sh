#!/bin/bash
# Builds before and after, side by side: each git revision named is built
# into a temporary worktree, then each serves a fresh embedded data
# directory in turn (--no-throttle) while the current keyledger-bench drives
# 1 KiB Encrypts on 64 connections, 15 s after 3 s of warm-up; ROUNDS
# rounds (default 3), the builds alternating so that the machine's drift
# touches all alike. Run from the repository after `make build`:
#
#   tests/testdata/bench/ab.sh 3db5470 9fdf294
set -u
[ $# -ge 2 ] || { echo "usage: $0 REV REV..." >&2; exit 2; }
W=$(mktemp -d /tmp/keyledger-ab-XXXX)
KB=$PWD/bin/keyledger-bench
cleanup() { kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; for r in "$@"; do git worktree remove --force $W/src-$r 2>/dev/null; done; rm -rf $W; }
trap 'cleanup "$@"' EXIT
for r in "$@"; do
  git worktree add -q --detach $W/src-$r $r && (cd $W/src-$r && go build -o $W/kl-$r ./cmd/keyledger) || exit 1
done
run() {
  local r=$1 d=$W/data
  rm -rf $d; mkdir -p $d
  $W/kl-$r serve --data-dir $d --listen 127.0.0.1:18090 --log-level warn --no-throttle >/dev/null 2>&1 & local pid=$!
  for _ in $(seq 100); do curl -sf http://127.0.0.1:18090/readyz >/dev/null && break; sleep 0.1; done
  local out
  out=$($KB --endpoint http://127.0.0.1:18090 --credentials-from $d/principals.json --op encrypt \
    --concurrency 64 --duration 15s --warmup 3s --size 1024 2>&1 | grep -E "throughput|p99" | tr -s ' \n' ' ')
  kill $pid; wait $pid 2>/dev/null
  echo "$r $out"
}
for round in $(seq ${ROUNDS:-3}); do
  for r in "$@"; do run $r; done
done
