#!/usr/bin/env bash
# Geo-replication benchmark: two mb standalone clusters, a and b, on
# loopback, namespace public/geo replicated a <-> b. Measures, for 128 B and
# 1 KiB messages:
#   - produce on a alone (the namespace replicates nowhere): the baseline;
#   - produce on a with replication to b, consuming on b: the producer's rate
#     and the rate replicated (what b's consumer received in the same
#     window), end-to-end latency a -> b;
#   - the same at half of the replicated rate: end-to-end latency a -> b;
#   - produce on a with replication to b and no consumer: the rate b stored
#     in the same window (its pulsar_in_messages_total) is the replication
#     throughput without a consumer client sharing the cores;
#   - catch-up: CATCHUP messages produced while a's link to b is broken
#     (its cluster record points at a closed port), then the time to drain,
#     from the fix of the record and from the link's reconnection.
# Every row notes the CPU of the client process and, in replicated rows,
# of b's broker (a's is the cpu_pct column).
# Usage: bench/geo.sh   (DURATION, WARMUP, CATCHUP, PORT_BASE adjust it;
# SIZES lists the message sizes, default "128 1024"; CATCHUP=0 skips the
# catch-up;
# MB and MBBENCH name prebuilt binaries instead of building them, e.g. to
# alternate two versions on a loaded machine; B_DATA_DIR puts b's data dir
# under another directory, e.g. B_DATA_DIR=/dev/shm to model a remote region
# with its own device instead of sharing a's disk; MB_FLAGS adds flags to both
# brokers, e.g. MB_FLAGS=--enable-pprof to profile them on their HTTP ports;
# PAIRS=N runs the baseline and the no-consumer row N times, alternated, and
# prints each pair's ratio and their median to stderr; CONSUMED=0 skips the
# rows with a consumer on b)
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-15s}
WARMUP=${WARMUP:-3s}
CATCHUP=${CATCHUP:-1000000}
SIZES=${SIZES:-128 1024}
PORT_BASE=${PORT_BASE:-36650}
MB=${MB:-}
MBBENCH=${MBBENCH:-}
B_DATA_DIR=${B_DATA_DIR:-}
MB_FLAGS=${MB_FLAGS:-}
PAIRS=${PAIRS:-1}
CONSUMED=${CONSUMED:-1}
mkdir -p bin
if [ -z "$MB" ]; then go build -o bin/mb ./cmd/mb; MB=bin/mb; fi
if [ -z "$MBBENCH" ]; then go build -o bin/mbbench ./bench/mbbench; MBBENCH=bin/mbbench; fi
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
WORK=$(mktemp -d)
B_DIR=$WORK/b
if [ -n "$B_DATA_DIR" ]; then B_DIR=$(mktemp -d "$B_DATA_DIR/mb-geo-b.XXXXXX"); fi
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; [ "$B_DIR" = "$WORK/b" ] || rm -rf "$B_DIR"; }
trap cleanup EXIT

A_B=$PORT_BASE; A_H=$((PORT_BASE+1)); B_B=$((PORT_BASE+2)); B_H=$((PORT_BASE+3)); DEAD=$((PORT_BASE+4))
start() { # name bport hport datadir
  # shellcheck disable=SC2086 # MB_FLAGS is a list of flags
  "$MB" standalone --cluster-name "$1" --data-dir "$4" --broker-addr 127.0.0.1:"$2" --http-addr 127.0.0.1:"$3" \
    --advertised-address 127.0.0.1 --log-level warn $MB_FLAGS >"$WORK/$1.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$3/admin/v2/brokers/health" >/dev/null && return; sleep 0.1; done
  echo "mb $1 did not start" >&2; cat "$WORK/$1.log" >&2; exit 1
}
start a $A_B $A_H "$WORK/a"
A_PID=${PIDS[0]}
start b $B_B $B_H "$B_DIR"
echo "b's data dir: $B_DIR" >&2
B_PID=${PIDS[1]}
adm() { "$MB" admin --admin-url "http://127.0.0.1:$1" "${@:2}" >/dev/null; }
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
bench() { "$MBBENCH" produce --duration "$DURATION" --warmup "$WARMUP" --results "$RESULTS" --broker-pid "$A_PID" "$@"; }
# A replicated run also reports what b stored in the window and b's CPU.
rbench() { bench --remote-metrics-url "http://127.0.0.1:$B_H/metrics" --remote-pid "$B_PID" "$@"; }
drained() { while [ "$(metric $A_H pulsar_replication_backlog)" != 0 ]; do sleep 0.2; done; }
row() { # scenario msg/s notes: a results row of a derived number
  python3 -c 'import json,sys; r={k:-1 for k in ["pub_p50_ms","pub_p99_ms","pub_p999_ms","e2e_p50_ms","e2e_p99_ms","broker_pub_p50_ms","broker_pub_p99_ms","broker_pub_p999_ms","fsync_p50_ms","fsync_p99_ms","cpu_pct","peak_rss_mib"]}; r.update(scenario=sys.argv[1],system="MessageBus",msg_per_s=float(sys.argv[2]),mb_per_s=0,errors=0,notes=sys.argv[3]); print(json.dumps(r))' "$@" >>"$RESULTS"
}
rate_of() { # the msg/s of the last result
  tail -1 "$RESULTS" | python3 -c 'import json,sys; print(int(json.load(sys.stdin)["msg_per_s"]))'
}

for size in $SIZES; do
  label="$size B"; [ $size = 1024 ] && label="1 KiB"
  ratios=()
  for pair in $(seq "$PAIRS"); do
    bench --url pulsar://127.0.0.1:$A_B --size $size --topic-prefix persistent://public/local/base-$size-$pair --scenario "produce $label on a, no replication"
    base=$(rate_of)
    rbench --url pulsar://127.0.0.1:$A_B --size $size \
      --topic-prefix persistent://public/geo/nocons-$size-$pair --scenario "produce $label on a, replicated to b, no consumer"
    stored=$(tail -1 "$RESULTS" | python3 -c 'import json,re,sys; print(re.search(r"remote stored ([0-9,]+) msg/s", json.load(sys.stdin)["notes"]).group(1).replace(",",""))')
    row "replication throughput $label a->b, no consumer" "$stored" "stored by b in the same window; produce on a without replication: $base msg/s"
    ratios+=("$(python3 -c "print(round($stored/$base,3))")")
    drained
  done
  if [ "$PAIRS" -gt 1 ]; then
    echo "$label, no consumer: replicated/baseline per pair ${ratios[*]}; median $(printf '%s\n' "${ratios[@]}" | sort -n | python3 -c 'import statistics,sys; print(statistics.median(float(l) for l in sys.stdin))')" >&2
  fi
  [ "$CONSUMED" = 1 ] || continue
  rbench --url pulsar://127.0.0.1:$A_B --consume --consume-url pulsar://127.0.0.1:$B_B --size $size \
    --topic-prefix persistent://public/geo/max-$size --scenario "produce $label on a, replicated to b, consumed on b"
  # What b's consumer received in the window all came by replication.
  repl=$(tail -1 "$RESULTS" | python3 -c 'import json,sys; print(json.load(sys.stdin)["notes"].split()[1].replace(",",""))')
  row "replication throughput $label a->b" "$repl" "consumed on b in the same window; produce on a without replication: $base msg/s"
  drained
  half=$(( repl / 2 ))
  rbench --url pulsar://127.0.0.1:$A_B --consume --consume-url pulsar://127.0.0.1:$B_B --size $size --rate $half \
    --topic-prefix persistent://public/geo/half-$size --scenario "produce $label on a at half of the replicated rate, consumed on b"
  drained
done

# Catch-up after an outage: the link points at a dead port while CATCHUP
# messages are written, then is fixed.
if [ "$CATCHUP" -gt 0 ]; then
  adm $A_H clusters update b --broker-url pulsar://127.0.0.1:$DEAD
  # Until the earlier topics' links drop, a's cached record of b may still
  # be the live one, and a fast producer's messages replicate at once.
  while [ "$(metric $A_H pulsar_replication_connected_count)" != 0 ]; do sleep 0.1; done
  in0=$(metric $A_H pulsar_in_messages_total)
  "$MBBENCH" produce --url pulsar://127.0.0.1:$A_B --size 128 --duration 600s --warmup 0s \
    --topic-prefix persistent://public/geo/catchup --scenario x --results /dev/null >/dev/null 2>&1 &
  PP=$!
  while [ $(( $(metric $A_H pulsar_in_messages_total) - in0 )) -lt "$CATCHUP" ]; do sleep 0.2; done
  kill $PP; wait $PP 2>/dev/null || true
  msgs=$(( $(metric $A_H pulsar_in_messages_total) - in0 ))
  entries=$(metric $A_H pulsar_replication_backlog)
  t0=$(date +%s.%N)
  adm $A_H clusters update b --broker-url pulsar://127.0.0.1:$B_B
  while [ "$(metric $A_H pulsar_replication_connected_count)" = 0 ]; do sleep 0.02; done
  tc=$(date +%s.%N)
  while [ "$(metric $A_H pulsar_replication_backlog)" != 0 ]; do sleep 0.02; done
  t1=$(date +%s.%N)
  row "catch-up a->b after an outage, from the reconnection" "$(python3 -c "print(int($msgs/($t1-$tc)))")" \
    "$msgs messages of 128 B ($entries batched entries) drained in $(python3 -c "print(round($t1-$tc,2))") s once the link was up"
  row "catch-up a->b after an outage, from the fix of b's record" "$(python3 -c "print(int($msgs/($t1-$t0)))")" \
    "the link reconnected $(python3 -c "print(round($tc-$t0,2))") s after the fix; drained $(python3 -c "print(round($t1-$t0,2))") s after it"
fi
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

cat "$RESULTS"
"$MBBENCH" table "$RESULTS"
