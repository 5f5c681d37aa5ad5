#!/usr/bin/env bash
# Reproducible produce/consume benchmark: builds mb and the load generator,
# starts `mb standalone` on a fresh data dir on loopback, and runs the
# scenarios below one after the other. Results go to stdout; docs/benchmarks.md
# records them with this command.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-20s}
BROKER_PORT=${BROKER_PORT:-16650}
HTTP_PORT=${HTTP_PORT:-18080}

go build -o bin/mb ./cmd/mb
go build -o bin/mbbench ./bench/mbbench

DATA=$(mktemp -d -p "${BENCH_DIR:-$PWD}" mb-bench-XXXX)
./bin/mb standalone --data-dir "$DATA" --broker-addr 127.0.0.1:$BROKER_PORT \
  --http-addr 127.0.0.1:$HTTP_PORT --log-level warn &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$DATA"' EXIT
for _ in $(seq 100); do
  curl -sf http://127.0.0.1:$HTTP_PORT/healthz >/dev/null && break
  sleep 0.1
done

URL=pulsar://127.0.0.1:$BROKER_PORT
echo "== $(nproc) cores, $(uname -r), data dir on $(df -h "$DATA" | awk 'NR==2{print $1}')"
./bin/mbbench --fsync-probe "$DATA"
for size in 128 1024; do
  echo "== produce only, 1 topic, ${size} B, max rate"
  ./bin/mbbench --url $URL --size $size --duration $DURATION
  echo "== produce + tailing consume, 1 topic, ${size} B, max rate"
  ./bin/mbbench --url $URL --size $size --duration $DURATION --consume
done
echo "== produce only, 1 topic, 128 B, fixed 100,000 msg/s (about half of the target)"
./bin/mbbench --url $URL --size 128 --rate 100000 --duration $DURATION
echo "== produce only, 16 topics, 128 B, max rate"
./bin/mbbench --url $URL --size 128 --topics 16 --duration $DURATION
echo "broker RSS: $(ps -o rss= -p $PID) KiB"
