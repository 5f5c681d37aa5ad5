#!/usr/bin/env bash
# The benchmark suite of docs/benchmarks.md, in one command (also `make bench`).
#
# Builds mb and the load generator (bench/mbbench, on the official Pulsar and
# NATS Go clients), installs nats-server and the nats CLI into a cache dir when
# missing, measures the disk's fdatasync latency, then runs every scenario
# against a fresh `mb standalone` (new data dir, loopback) and the comparable
# ones against nats-server JetStream twice (default sync policy, then
# `sync_interval: always`), one system after the other, and prints one summary
# table. JetStream produce scenarios use `mbbench jetstream` (nats.go); the
# catch-up backlog uses `nats bench js`.
#
# Knobs (environment):
#   QUICK=1          smoke run: 3 s per scenario, small backlog, few connections
#   DURATION=15s     measured time per scenario (after WARMUP=3s)
#   BACKLOG=5000000  messages written, then consumed from disk (catch-up)
#   TRICKLE_TOPICS=1000 TRICKLE_RATE=10   topics and msg/s per topic
#   IDLE_CONNS=5000 HOLD=10s               idle connections and how long held
#   NATS=0           skip JetStream      PROFILE=0   skip the pprof capture
#   MB=0             skip MessageBus (JetStream rows only; no MessageBus half rate)
#   ONLY=regex       run only the scenarios whose label matches (a half-rate
#                    row also runs its max-rate row, which it is half of)
#   MB_FLAGS="..."   extra `mb standalone` flags (e.g. --journal-preallocate=false)
#   PROFILE_DIR=docs/profiles   where the profiles go (QUICK: the work dir)
#   BENCH_CACHE=~/.cache/messagebus-bench   nats binaries and the work dir
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then
  DURATION=${DURATION:-3s} WARMUP=${WARMUP:-1s} BACKLOG=${BACKLOG:-200000}
  TRICKLE_TOPICS=${TRICKLE_TOPICS:-100} IDLE_CONNS=${IDLE_CONNS:-500} HOLD=${HOLD:-3s}
  PROFILE=${PROFILE:-0}
else
  DURATION=${DURATION:-15s} WARMUP=${WARMUP:-3s} BACKLOG=${BACKLOG:-5000000}
  TRICKLE_TOPICS=${TRICKLE_TOPICS:-1000} IDLE_CONNS=${IDLE_CONNS:-5000} HOLD=${HOLD:-10s}
  PROFILE=${PROFILE:-1}
fi
TRICKLE_RATE=${TRICKLE_RATE:-10}
PROFILE_SECONDS=${PROFILE_SECONDS:-10}
NATS=${NATS:-1}
MB=${MB:-1}
MB_FLAGS=${MB_FLAGS:-}
ONLY=${ONLY:-.}
BROKER_PORT=${BROKER_PORT:-16650}
HTTP_PORT=${HTTP_PORT:-18080}
NATS_PORT=${NATS_PORT:-14222}
BENCH_CACHE=${BENCH_CACHE:-$HOME/.cache/messagebus-bench}
NATS_SERVER_VERSION=v2.15.2
NATSCLI_VERSION=v0.5.1

mkdir -p "$BENCH_CACHE/bin" "$BENCH_CACHE/work"
WORK=$(mktemp -d -p "$BENCH_CACHE/work" run-XXXX)
if [ "$QUICK" = 1 ]; then
  PROFILE_DIR=${PROFILE_DIR:-$WORK/profiles}
else
  PROFILE_DIR=${PROFILE_DIR:-$ROOT/docs/profiles}
fi
RESULTS=$WORK/results.jsonl
MB_PID= NATS_PID=

cleanup() {
  [ -n "$MB_PID" ] && kill "$MB_PID" 2>/dev/null && wait "$MB_PID" 2>/dev/null
  [ -n "$NATS_PID" ] && kill "$NATS_PID" 2>/dev/null && wait "$NATS_PID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "== $*" >&2; }
die() { echo "bench: $*" >&2; exit 1; }
selected() { [[ "$1" =~ $ONLY ]]; }

# wait_port PORT: until something accepts on 127.0.0.1:PORT (10 s).
wait_port() {
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  die "nothing listens on 127.0.0.1:$1"
}

# --- build and tools ---------------------------------------------------------
log "building mb and mbbench"
go build -o bin/mb ./cmd/mb
go build -o bin/mbbench ./bench/mbbench
MBBENCH=$ROOT/bin/mbbench

NATS_SERVER=$BENCH_CACHE/bin/nats-server
NATS_CLI=$BENCH_CACHE/bin/nats
NATS_CLI_OK=0 # the nats CLI is only needed for the JetStream catch-up row
if [ "$NATS" = 1 ]; then
  if [ ! -x "$NATS_SERVER" ]; then
    log "installing nats-server $NATS_SERVER_VERSION into $BENCH_CACHE/bin"
    if ! (cd "$WORK" && GOBIN=$BENCH_CACHE/bin GOFLAGS= go install "github.com/nats-io/nats-server/v2@$NATS_SERVER_VERSION"); then
      echo "bench: could not install nats-server; running without JetStream" >&2
      NATS=0
    fi
  fi
fi
if [ "$NATS" = 1 ]; then
  if [ ! -x "$NATS_CLI" ]; then
    log "installing nats $NATSCLI_VERSION into $BENCH_CACHE/bin"
    (cd "$WORK" && GOBIN=$BENCH_CACHE/bin GOFLAGS= go install "github.com/nats-io/natscli/nats@$NATSCLI_VERSION") ||
      echo "bench: could not install the nats CLI; no JetStream catch-up row" >&2
  fi
  [ -x "$NATS_CLI" ] && NATS_CLI_OK=1
fi

# --- disk --------------------------------------------------------------------
# The backlog takes about (128 B + ~70 B of framing and index) per message per
# system; ask for twice that plus 4 GiB for the other scenarios.
need_kib=$(((BACKLOG * 200 * 2) / 1024 * 2 + 4 * 1024 * 1024))
avail_kib=$(df -Pk "$WORK" | awk 'NR==2{print $4}')
[ "$avail_kib" -ge "$need_kib" ] ||
  die "$((avail_kib / 1024)) MiB free under $WORK, need $((need_kib / 1024)) MiB (lower BACKLOG)"

echo "machine: $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), Linux $(uname -r), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
dev=$(df -P "$WORK" | awk 'NR==2{print $1}')
echo "disk: $dev ($(df -PT "$WORK" | awk 'NR==2{print $2}')) at $WORK; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
FSYNC=$("$MBBENCH" fsync -n 500 "$WORK")
echo "$FSYNC"
echo "settings: DURATION=$DURATION WARMUP=$WARMUP BACKLOG=$BACKLOG TRICKLE=${TRICKLE_TOPICS}x${TRICKLE_RATE}/s IDLE_CONNS=$IDLE_CONNS HOLD=$HOLD"

# --- systems -------------------------------------------------------------------
# start_mb DIR: a fresh `mb standalone` on DIR (created) with pprof on; under
# `taskset -c $MB_CPUS` when set.
MB_CPUS= GEN_CPUS=
start_mb() {
  mkdir -p "$1"
  local pin=()
  [ -n "$MB_CPUS" ] && pin=(taskset -c "$MB_CPUS")
  "${pin[@]}" "$ROOT/bin/mb" standalone --data-dir "$1" --broker-addr "127.0.0.1:$BROKER_PORT" \
    --http-addr "127.0.0.1:$HTTP_PORT" --advertised-address 127.0.0.1 --log-level warn --enable-pprof \
    $MB_FLAGS >>"$WORK/mb.log" 2>&1 &
  MB_PID=$!
  for _ in $(seq 300); do
    curl -sf "http://127.0.0.1:$HTTP_PORT/healthz" >/dev/null && return 0
    kill -0 "$MB_PID" 2>/dev/null || { tail -20 "$WORK/mb.log" >&2; die "mb exited"; }
    sleep 0.1
  done
  die "mb did not become healthy"
}

stop_mb() {
  kill "$MB_PID" 2>/dev/null || true
  wait "$MB_PID" 2>/dev/null || true
  MB_PID=
}

# start_nats DIR POLICY: nats-server with JetStream on DIR; POLICY is
# "default" or "always" (sync_interval: always, fsync on every write).
start_nats() {
  mkdir -p "$1"
  local conf=$1.conf sync=
  [ "$2" = always ] && sync="sync_interval: always"
  cat >"$conf" <<EOF
listen: 127.0.0.1:$NATS_PORT
jetstream { store_dir: "$1", $sync }
EOF
  "$NATS_SERVER" -c "$conf" >>"$WORK/nats.log" 2>&1 &
  NATS_PID=$!
  wait_port "$NATS_PORT"
}

stop_nats() {
  kill "$NATS_PID" 2>/dev/null || true
  wait "$NATS_PID" 2>/dev/null || true
  NATS_PID=
}

run_id=0
URL=pulsar://127.0.0.1:$BROKER_PORT
NATS_URL=nats://127.0.0.1:$NATS_PORT
SYS_MB="MessageBus (fsync per group commit)"
SYS_NATS_DEFAULT="JetStream, default sync (not durable per ack)"
SYS_NATS_ALWAYS="JetStream, sync_interval: always (like-for-like)"

# mb_produce LABEL ARGS...: one produce scenario on a fresh broker; the
# generator under `taskset -c $GEN_CPUS` when set. The broker's own publish
# latency and fsync times come from its /metrics over the measured window.
mb_produce() {
  [ "$MB" = 1 ] || return 0
  local label=$1 pin=()
  shift
  [ -n "$GEN_CPUS" ] && pin=(taskset -c "$GEN_CPUS")
  run_id=$((run_id + 1))
  log "$label — MessageBus"
  start_mb "$WORK/mb-$run_id"
  "${pin[@]}" "$MBBENCH" produce --url "$URL" --duration "$DURATION" --warmup "$WARMUP" \
    --metrics-url "http://127.0.0.1:$HTTP_PORT/metrics" \
    --results "$RESULTS" --scenario "$label" --system "$SYS_MB" --broker-pid "$MB_PID" "$@" >/dev/null
  stop_mb
  rm -rf "$WORK/mb-$run_id"
}

# nats_sys POLICY: the system label of a JetStream policy.
nats_sys() {
  if [ "$1" = always ]; then echo "$SYS_NATS_ALWAYS"; else echo "$SYS_NATS_DEFAULT"; fi
}

# nats_run POLICY LABEL ARGS...: one produce scenario with `mbbench jetstream`
# (same flags and measurement as `mbbench produce`) on a fresh JetStream server.
nats_run() {
  local policy=$1 label=$2 sys
  shift 2
  sys=$(nats_sys "$policy")
  run_id=$((run_id + 1))
  log "$label — $sys"
  start_nats "$WORK/nats-$run_id" "$policy"
  "$MBBENCH" jetstream --url "$NATS_URL" --duration "$DURATION" --warmup "$WARMUP" \
    --results "$RESULTS" --scenario "$label" --system "$sys" --broker-pid "$NATS_PID" "$@" >/dev/null
  stop_nats
  rm -rf "$WORK/nats-$run_id" "$WORK/nats-$run_id.conf"
}

# nats_produce LABEL ARGS...: the same scenario on JetStream, both policies.
nats_produce() {
  [ "$NATS" = 1 ] || return 0
  local policy
  for policy in default always; do
    nats_run "$policy" "$@"
  done
}

# --- scenarios -----------------------------------------------------------------
for size in 128 1024; do
  # Each system's half-rate row is at half of its own max rate.
  label="produce ${size} B, 1 topic, max rate"
  half_label="produce ${size} B, 1 topic, half of max"
  if selected "$label" || selected "$half_label"; then
    mb_produce "$label" --size "$size"
    if [ "$MB" = 1 ] && selected "$half_label"; then
      half=$(("$("$MBBENCH" get "$RESULTS" "$label" "$SYS_MB")" / 2))
      mb_produce "$half_label (${half} msg/s)" --size "$size" --rate "$half"
      # The publish-latency target is at half of max: the same rate with a
      # 0.1 ms batching delay (the client's 1 ms alone is over the bound).
      mb_produce "$half_label (${half} msg/s), 0.1 ms batching" --size "$size" --rate "$half" --batch-delay 100us
    fi
    if [ "$NATS" = 1 ]; then
      for policy in default always; do
        nats_run "$policy" "$label" --size "$size"
        if selected "$half_label"; then
          half=$(("$("$MBBENCH" get "$RESULTS" "$label" "$(nats_sys "$policy")")" / 2))
          nats_run "$policy" "$half_label (${half} msg/s)" --size "$size" --rate "$half"
        fi
      done
    fi
  fi
  # The same with the broker on core 1 and the generator on core 0, so the
  # broker's latency is not the scheduler's: max rate, then half of it with
  # 0.1 ms batching.
  label="produce ${size} B, 1 topic, separate cores, max rate"
  half_label="produce ${size} B, 1 topic, separate cores, half of max"
  if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null && { selected "$label" || selected "$half_label"; }; then
    MB_CPUS=1 GEN_CPUS=0
    mb_produce "$label" --size "$size"
    if [ "$MB" = 1 ] && selected "$half_label"; then
      half=$(("$("$MBBENCH" get "$RESULTS" "$label" "$SYS_MB")" / 2))
      mb_produce "$half_label (${half} msg/s), 0.1 ms batching" --size "$size" --rate "$half" --batch-delay 100us
    fi
    MB_CPUS= GEN_CPUS=
  fi
  label="produce+consume ${size} B, 1 topic, max rate"
  if selected "$label"; then
    mb_produce "$label" --size "$size" --consume
    nats_produce "$label" --size "$size" --consume
  fi
  # The issue's targets: tailing consume at the durable-produce target rate
  # (200,000 msg/s of 128 B, 100 MB/s of 1 KiB) with end-to-end p99 <= 50 ms.
  target=$((size == 128 ? 200000 : 100000000 / 1024))
  label="produce+consume ${size} B, 1 topic, target rate (${target} msg/s)"
  selected "$label" && mb_produce "$label" --size "$size" --consume --rate "$target"
  label="produce ${size} B, 16 topics, max rate"
  if selected "$label"; then
    mb_produce "$label" --size "$size" --topics 16
    nats_produce "$label" --size "$size" --topics 16
  fi
  label="produce+consume ${size} B, 16 topics, max rate"
  if selected "$label"; then
    mb_produce "$label" --size "$size" --topics 16 --consume
    nats_produce "$label" --size "$size" --topics 16 --consume
  fi
done

label="catch-up consume 128 B, backlog of $BACKLOG from disk"
if selected "$label" && [ "$MB" = 1 ]; then
  run_id=$((run_id + 1))
  d=$WORK/mb-$run_id
  log "$label — MessageBus: writing the backlog"
  start_mb "$d"
  "$MBBENCH" catchup --url "$URL" --write "$BACKLOG" --size 128 >&2
  stop_mb # restart: the broker's entry caches are empty
  "$MBBENCH" evict "$d" >&2
  start_mb "$d"
  log "$label — MessageBus: consuming"
  "$MBBENCH" catchup --url "$URL" --read "$BACKLOG" --size 128 --notes "broker restarted, page cache evicted" \
    --results "$RESULTS" --scenario "$label" --system "$SYS_MB" --broker-pid "$MB_PID" >/dev/null
  stop_mb
  rm -rf "$d"
fi
if selected "$label" && [ "$NATS_CLI_OK" = 1 ]; then
  run_id=$((run_id + 1))
  d=$WORK/nats-$run_id
  log "$label — JetStream (default sync; reads do not depend on it): writing the backlog"
  start_nats "$d" default
  "$MBBENCH" nats --nats-bin "$NATS_CLI" --url "$NATS_URL" --backlog-write "$BACKLOG" --size 128 >&2
  stop_nats
  "$MBBENCH" evict "$d" >&2
  start_nats "$d" default
  log "$label — JetStream: consuming"
  "$MBBENCH" nats --nats-bin "$NATS_CLI" --url "$NATS_URL" --backlog-read "$BACKLOG" --size 128 \
    --notes "server restarted, page cache evicted; ordered consumer" \
    --results "$RESULTS" --scenario "$label" --system "JetStream, default sync" --broker-pid "$NATS_PID" >/dev/null
  stop_nats
  rm -rf "$d" "$d.conf"
fi

label="$TRICKLE_TOPICS topics x $TRICKLE_RATE msg/s, 128 B, produce+consume"
selected "$label" && mb_produce "$label" --size 128 --topics "$TRICKLE_TOPICS" --consume \
  --rate "$((TRICKLE_TOPICS * TRICKLE_RATE))" --max-pending 100 --receiver-queue 100

label="$IDLE_CONNS idle connections"
if selected "$label" && [ "$MB" = 1 ]; then
  run_id=$((run_id + 1))
  log "$label — MessageBus"
  start_mb "$WORK/mb-$run_id"
  "$MBBENCH" idle --addr "127.0.0.1:$BROKER_PORT" --conns "$IDLE_CONNS" --hold "$HOLD" \
    --results "$RESULTS" --scenario "$label" --system "$SYS_MB" --broker-pid "$MB_PID" >/dev/null
  stop_mb
  rm -rf "$WORK/mb-$run_id"
fi

# --- profiles ------------------------------------------------------------------
if [ "$PROFILE" = 1 ] && [ "$MB" = 1 ] && selected "profile"; then
  run_id=$((run_id + 1))
  log "CPU and allocation profiles: produce+consume 128 B, 1 topic, max rate, ${PROFILE_SECONDS}s"
  mkdir -p "$PROFILE_DIR"
  start_mb "$WORK/mb-$run_id"
  "$MBBENCH" produce --url "$URL" --size 128 --consume --warmup "$WARMUP" \
    --duration "$((PROFILE_SECONDS + 2))s" >"$WORK/profile-run.json" &
  gen=$!
  sleep "${WARMUP%s}"
  curl -sf -o "$PROFILE_DIR/cpu.pb.gz" "http://127.0.0.1:$HTTP_PORT/debug/pprof/profile?seconds=$PROFILE_SECONDS"
  curl -sf -o "$PROFILE_DIR/allocs.pb.gz" "http://127.0.0.1:$HTTP_PORT/debug/pprof/allocs"
  wait "$gen"
  stop_mb
  rm -rf "$WORK/mb-$run_id"
  go tool pprof -top -nodecount=25 "$ROOT/bin/mb" "$PROFILE_DIR/cpu.pb.gz" >"$PROFILE_DIR/cpu-top.txt" 2>/dev/null
  {
    go tool pprof -top -nodecount=25 -sample_index=alloc_space "$ROOT/bin/mb" "$PROFILE_DIR/allocs.pb.gz"
    echo
    go tool pprof -top -nodecount=25 -sample_index=alloc_objects "$ROOT/bin/mb" "$PROFILE_DIR/allocs.pb.gz"
  } >"$PROFILE_DIR/allocs-top.txt" 2>/dev/null
  echo "profiles in $PROFILE_DIR (run: $(cat "$WORK/profile-run.json"))"
fi

# --- summary -------------------------------------------------------------------
echo
echo "$FSYNC"
"$MBBENCH" table "$RESULTS"
