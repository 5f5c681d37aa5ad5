#!/usr/bin/env bash
# Geo-replication benchmark: two mb standalone clusters, a and b, on
# loopback, namespace public/geo replicated a <-> b. Measures, for 128 B and
# 1 KiB messages:
#   - produce on a alone (the namespace replicates nowhere): the baseline;
#   - produce on a with replication to b, consuming on b: the producer's rate
#     and the rate replicated (what b's consumer received in the same
#     window), end-to-end latency a -> b;
#   - the same at half of the replicated rate: end-to-end latency a -> b;
#   - catch-up: CATCHUP messages produced while a's link to b is broken
#     (its cluster record points at a closed port), then the time to drain.
# Usage: bench/geo.sh   (DURATION, WARMUP, CATCHUP, PORT_BASE adjust it)
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-15s}
WARMUP=${WARMUP:-3s}
CATCHUP=${CATCHUP:-1000000}
PORT_BASE=${PORT_BASE:-36650}
mkdir -p bin
go build -o bin/mb ./cmd/mb
go build -o bin/mbbench ./bench/mbbench
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

A_B=$PORT_BASE; A_H=$((PORT_BASE+1)); B_B=$((PORT_BASE+2)); B_H=$((PORT_BASE+3)); DEAD=$((PORT_BASE+4))
start() { # name bport hport
  bin/mb standalone --cluster-name "$1" --data-dir "$WORK/$1" --broker-addr 127.0.0.1:"$2" --http-addr 127.0.0.1:"$3" \
    --advertised-address 127.0.0.1 --log-level warn >"$WORK/$1.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$3/admin/v2/brokers/health" >/dev/null && return; sleep 0.1; done
  echo "mb $1 did not start" >&2; cat "$WORK/$1.log" >&2; exit 1
}
start a $A_B $A_H
A_PID=${PIDS[0]}
start b $B_B $B_H
adm() { bin/mb admin --admin-url "http://127.0.0.1:$1" "${@:2}" >/dev/null; }
adm $A_H clusters create b --url http://127.0.0.1:$B_H --broker-url pulsar://127.0.0.1:$B_B
adm $B_H clusters create a --url http://127.0.0.1:$A_H --broker-url pulsar://127.0.0.1:$A_B
for h in $A_H $B_H; do
  adm $h tenants update public --allowed-clusters a,b
  adm $h namespaces create public/geo
  adm $h namespaces set-retention public/geo --size -1 --time -1
  adm $h namespaces set-clusters public/geo --clusters a,b
done
adm $A_H namespaces create public/local

metric() { # port name: sum of a metric's series
  curl -s "http://127.0.0.1:$1/metrics" | awk -v n="$2" '$1 ~ "^"n"[{ ]" || $1 == n {s += $NF} END {printf "%d\n", s}'
}
RESULTS=$WORK/results.jsonl
bench() { bin/mbbench produce --duration "$DURATION" --warmup "$WARMUP" --results "$RESULTS" --broker-pid "$A_PID" "$@"; }
row() { # scenario msg/s notes: a results row of a derived number
  python3 -c 'import json,sys; r={k:-1 for k in ["pub_p50_ms","pub_p99_ms","pub_p999_ms","e2e_p50_ms","e2e_p99_ms","broker_pub_p50_ms","broker_pub_p99_ms","broker_pub_p999_ms","fsync_p50_ms","fsync_p99_ms","cpu_pct","peak_rss_mib"]}; r.update(scenario=sys.argv[1],system="MessageBus",msg_per_s=float(sys.argv[2]),mb_per_s=0,errors=0,notes=sys.argv[3]); print(json.dumps(r))' "$@" >>"$RESULTS"
}
rate_of() { # the msg/s of the last result
  tail -1 "$RESULTS" | python3 -c 'import json,sys; print(int(json.load(sys.stdin)["msg_per_s"]))'
}

for size in 128 1024; do
  label="$size B"; [ $size = 1024 ] && label="1 KiB"
  bench --url pulsar://127.0.0.1:$A_B --size $size --topic-prefix persistent://public/local/base-$size --scenario "produce $label on a, no replication"
  base=$(rate_of)
  bench --url pulsar://127.0.0.1:$A_B --consume --consume-url pulsar://127.0.0.1:$B_B --size $size \
    --topic-prefix persistent://public/geo/max-$size --scenario "produce $label on a, replicated to b, consumed on b"
  # What b's consumer received in the window all came by replication.
  repl=$(tail -1 "$RESULTS" | python3 -c 'import json,sys; print(json.load(sys.stdin)["notes"].split()[1].replace(",",""))')
  row "replication throughput $label a->b" "$repl" "consumed on b in the same window; produce on a without replication: $base msg/s"
  while [ "$(metric $A_H pulsar_replication_backlog)" != 0 ]; do sleep 0.2; done
  half=$(( repl / 2 ))
  bench --url pulsar://127.0.0.1:$A_B --consume --consume-url pulsar://127.0.0.1:$B_B --size $size --rate $half \
    --topic-prefix persistent://public/geo/half-$size --scenario "produce $label on a at half of the replicated rate, consumed on b"
done

# Catch-up after an outage: the link points at a dead port while CATCHUP
# messages are written, then is fixed.
adm $A_H clusters update b --broker-url pulsar://127.0.0.1:$DEAD
in0=$(metric $A_H pulsar_in_messages_total)
bin/mbbench produce --url pulsar://127.0.0.1:$A_B --size 128 --duration 600s --warmup 0s \
  --topic-prefix persistent://public/geo/catchup --scenario x --results /dev/null >/dev/null 2>&1 &
PP=$!
while [ $(( $(metric $A_H pulsar_in_messages_total) - in0 )) -lt "$CATCHUP" ]; do sleep 0.2; done
kill $PP; wait $PP 2>/dev/null || true
msgs=$(( $(metric $A_H pulsar_in_messages_total) - in0 ))
entries=$(metric $A_H pulsar_replication_backlog)
t0=$(date +%s.%N)
adm $A_H clusters update b --broker-url pulsar://127.0.0.1:$B_B
while [ "$(metric $A_H pulsar_replication_backlog)" != 0 ]; do sleep 0.2; done
t1=$(date +%s.%N)
row "catch-up a->b after an outage" "$(python3 -c "print(int($msgs/($t1-$t0)))")" \
  "$msgs messages of 128 B ($entries batched entries) drained in $(python3 -c "print(round($t1-$t0,1))") s"

cat "$RESULTS"
bin/mbbench table "$RESULTS"
