#!/bin/bash
# Several gateways on one deployment, measured (README "Several gateways:
# benchmark"). Run from the repository after `make build`:
#
#   tests/testdata/bench/gateways.sh single    # one nats-server, sync_interval: always
#   tests/testdata/bench/gateways.sh cluster   # a three-node R3 cluster
#   SPLIT=1 tests/testdata/bench/gateways.sh single   # 32 connections in all, split
#
# It starts the NATS servers and three `keyledger serve` instances with their
# own writer keys (the second and third registered with `keyledger writer
# register`), then drives 1 KiB Encrypts at 1, 2 and 3 instances at once,
# 32 connections each, 20 s after 2 s of warm-up, twice in turn.
set -u
MODE=${1:?single or cluster}
W=$(mktemp -d /tmp/keyledger-gateways-XXXX)
KL=$PWD/bin/keyledger; KB=$PWD/bin/keyledger-bench; NS=$W/nats-server
go build -o $NS github.com/nats-io/nats-server/v2 || exit 1
cleanup() { kill -9 $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf $W; }
trap cleanup EXIT
export AWS_ACCESS_KEY_ID=AKIABENCH00000001 AWS_SECRET_ACCESS_KEY=bench-secret-00000000001
cat > $W/principals.json <<P
{"accounts":{"111122223333":{"users":{"bench":{"accessKeys":[{"id":"$AWS_ACCESS_KEY_ID","secret":"$AWS_SECRET_ACCESS_KEY"}],
 "policies":[{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["kms:*","keyledger:*"],"Resource":"*"}]}]}}}}}
P
if [ "$MODE" = single ]; then
  printf 'listen: 127.0.0.1:14222\njetstream { store_dir: "%s/n0", sync_interval: always }\n' $W > $W/n0.conf
  $NS -c $W/n0.conf > $W/n0.log 2>&1 &
  URL=nats://127.0.0.1:14222; REPL=1
else
  for i in 0 1 2; do
    printf 'server_name: n%s\nlisten: 127.0.0.1:1422%s\njetstream { store_dir: "%s/n%s" }\ncluster { name: bench, listen: 127.0.0.1:1622%s, routes: [nats-route://127.0.0.1:16220, nats-route://127.0.0.1:16221, nats-route://127.0.0.1:16222] }\n' \
      $i $i $W $i $i > $W/n$i.conf
    $NS -c $W/n$i.conf > $W/n$i.log 2>&1 &
  done
  URL=nats://127.0.0.1:14220,nats://127.0.0.1:14221,nats://127.0.0.1:14222; REPL=3
fi
sleep 3
for g in 0 1 2; do
  mkdir -p $W/g$g
  KEYLEDGER_DATA_DIR=$W/g$g $KL serve --listen 127.0.0.1:1808$g --nats-url $URL --replicas $REPL --root-key-file $W/root.key \
     --principals $W/principals.json --log-level warn > $W/g$g.log 2>&1 &
  if [ $g != 0 ]; then
    sleep 2
    $KL writer register --url http://127.0.0.1:18080 --pubkey "$($KL writer pubkey --data-dir $W/g$g)"
  fi
  for t in $(seq 1 150); do curl -sf http://127.0.0.1:1808$g/readyz >/dev/null && break; sleep 0.2; done
done
CONNS=${CONNS:-32}
bench() { $KB --endpoint http://127.0.0.1:1808$1 --concurrency ${2:-$CONNS} --duration 20s --warmup 2s --size 1024 --credentials-from $W/principals.json; }
at_once() { # at_once CONNS GATEWAY…
  local c=$1; shift; local pids=()
  for g in "$@"; do bench $g $c > $W/b$g.txt & pids+=($!); done
  wait ${pids[@]}; for g in "$@"; do cat $W/b$g.txt; done
}
for round in 1 2; do
  echo "== round $round: 1 instance";   at_once $CONNS 0
  if [ "${SPLIT:-}" = 1 ]; then
    echo "== round $round: 2 instances, 16 connections each"; at_once 16 0 1
    echo "== round $round: 3 instances, 11 connections each"; at_once 11 0 1 2
  else
    echo "== round $round: 2 instances";  at_once $CONNS 0 1
    echo "== round $round: 3 instances";  at_once $CONNS 0 1 2
  fi
done
