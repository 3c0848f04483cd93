#!/usr/bin/env bash
# run.sh - crawl the given seed URLs on this machine: installs what is
# missing, builds, starts local Kafka and Redis (unless TRAWLER_BROKERS and
# TRAWLER_REDIS point at running ones), runs producers and consumers until
# the crawl is complete, stops what it started and prints a summary.
#
# usage: ./run.sh [--out DIR] [--allow-private] [--delay SECONDS]
#                 [--host-connections N] [--producers N] [--consumers M]
#                 [--crawl-id ID] [--max-depth N] [--timeout SECONDS]
#                 [--plugin PATH]... [--warc] [--extract FILE]
#                 [--items] [--transactional] [--render REGEX]
#                 [--render-seeds] URL...
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
ME=run.sh
OUT=./out
ALLOW_PRIVATE=0
DELAY=""
HOST_CONNS=""
PRODUCERS=1
CONSUMERS=1
CRAWL_ID=""
MAX_DEPTH=""
TIMEOUT=0
PLUGINS=""
WARC=0
ITEMS=0
TXN=0
SEEDS=()
EXTRACT=""
RENDER=""
RENDER_SEEDS=0

die() { echo "$ME: error: $*" >&2; exit 1; }
say() { echo "$ME: $*" >&2; }
usage() {
  sed -n '2,/^set /{/^#/p}' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}
need_value() { [ $# -ge 2 ] || { echo "$ME: option $1 needs a value" >&2; exit 2; }; }
is_uint() { [[ "$1" =~ ^[0-9]+$ ]]; }
# A handler plug-in (shared object) for the consumers, as an absolute path:
# dlopen would search the library path for a bare file name.
add_plugin() {
  local p
  p=$(realpath -e -- "$1" 2>/dev/null) && [ -f "$p" ] && [ -r "$p" ] ||
    die "--plugin $1: no such readable file"
  case "$p" in *,*) die "--plugin $1: the path may not contain a comma" ;; esac
  PLUGINS=${PLUGINS:+$PLUGINS,}$p
}

while [ $# -gt 0 ]; do
  case "$1" in
    --out) need_value "$@"; OUT=$2; shift 2 ;;
    --out=*) OUT=${1#*=}; shift ;;
    --allow-private) ALLOW_PRIVATE=1; shift ;;
    --delay) need_value "$@"; DELAY=$2; shift 2 ;;
    --delay=*) DELAY=${1#*=}; shift ;;
    --host-connections) need_value "$@"; HOST_CONNS=$2; shift 2 ;;
    --host-connections=*) HOST_CONNS=${1#*=}; shift ;;
    --producers) need_value "$@"; PRODUCERS=$2; shift 2 ;;
    --producers=*) PRODUCERS=${1#*=}; shift ;;
    --consumers) need_value "$@"; CONSUMERS=$2; shift 2 ;;
    --consumers=*) CONSUMERS=${1#*=}; shift ;;
    --crawl-id) need_value "$@"; CRAWL_ID=$2; shift 2 ;;
    --crawl-id=*) CRAWL_ID=${1#*=}; shift ;;
    --max-depth) need_value "$@"; MAX_DEPTH=$2; shift 2 ;;
    --max-depth=*) MAX_DEPTH=${1#*=}; shift ;;
    --timeout) need_value "$@"; TIMEOUT=$2; shift 2 ;;
    --timeout=*) TIMEOUT=${1#*=}; shift ;;
    --plugin) need_value "$@"; add_plugin "$2"; shift 2 ;;
    --plugin=*) add_plugin "${1#*=}"; shift ;;
    --warc) WARC=1; shift ;;
    --items) ITEMS=1; shift ;;
    --transactional) TXN=1; shift ;;
    --extract) need_value "$@"; EXTRACT=$2; shift 2 ;;
    --extract=*) EXTRACT=${1#*=}; shift ;;
    --render) need_value "$@"; RENDER=$2; shift 2 ;;
    --render=*) RENDER=${1#*=}; shift ;;
    --render-seeds) RENDER_SEEDS=1; shift ;;
    -h|--help) usage ;;
    --) shift; SEEDS+=("$@"); break ;;
    -*) echo "$ME: unknown option $1" >&2; usage ;;
    *) SEEDS+=("$1"); shift ;;
  esac
done
[ ${#SEEDS[@]} -gt 0 ] || { echo "$ME: no seed URL given" >&2; usage; }
is_uint "$PRODUCERS" && [ "$PRODUCERS" -ge 1 ] || die "--producers must be an integer >= 1 (got '$PRODUCERS')"
is_uint "$CONSUMERS" && [ "$CONSUMERS" -ge 1 ] || die "--consumers must be an integer >= 1 (got '$CONSUMERS')"
is_uint "$TIMEOUT" || die "--timeout must be a whole number of seconds (got '$TIMEOUT')"
if [ -n "$RENDER" ]; then
  rc=0; grep -Eq -- "$RENDER" </dev/null 2>/dev/null || rc=$?
  [ "$rc" -lt 2 ] || die "--render: not a valid POSIX extended regular expression: '$RENDER'"
fi

# 1. dependencies and build (quiet unless something fails)
bash "$ROOT/deploy/deps.sh" || die "installing dependencies failed"
# Rendering needs a browser: installed only when asked for (docs/render.md).
if [ -n "$RENDER" ] || [ "$RENDER_SEEDS" = 1 ]; then
  bash "$ROOT/deploy/deps.sh" --render ||
    say "warning: installing Chromium failed; pages to render will fail with render_unavailable"
fi
BUILD=${TRAWLER_BUILD_DIR:-$ROOT/build}
mkdir -p "$BUILD"
if ! { [ -f "$BUILD/CMakeCache.txt" ] || cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >"$BUILD/configure.log" 2>&1; } ||
   ! cmake --build "$BUILD" -j"$(nproc)" >"$BUILD/build.log" 2>&1; then
  tail -n 30 "$BUILD/configure.log" "$BUILD/build.log" 2>/dev/null >&2 || true
  die "build failed (logs in $BUILD)"
fi
CTL="$BUILD/trawlerctl"

# 2. options shared by every process
COMMON=()
[ "$ALLOW_PRIVATE" = 1 ] && PRIV=(--allow-private) || PRIV=()
[ -n "$CRAWL_ID" ] || CRAWL_ID="run-$(date +%Y%m%d-%H%M%S)-$$"
export TRAWLER_CRAWL_ID=$CRAWL_ID
# Each run gets its own topics and consumer groups (unless set in the
# environment), so runs sharing one Kafka never see each other's messages;
# when the services are shared, run.sh deletes its topics at the end.
OWN_TOPICS=0
if [ -z "${TRAWLER_FRONTIER_TOPIC:-}${TRAWLER_PAGES_TOPIC:-}" ]; then
  OWN_TOPICS=1
  export TRAWLER_FRONTIER_TOPIC="trawler.$CRAWL_ID.frontier"
  export TRAWLER_PAGES_TOPIC="trawler.$CRAWL_ID.pages"
  export TRAWLER_ITEMS_TOPIC="${TRAWLER_ITEMS_TOPIC:-trawler.$CRAWL_ID.items}"
  export TRAWLER_DLQ_TOPIC="${TRAWLER_DLQ_TOPIC:-trawler.$CRAWL_ID.deadletter}"
fi
WORKERS_MAX=$(( PRODUCERS > CONSUMERS ? PRODUCERS : CONSUMERS ))
export TRAWLER_PARTITIONS=${TRAWLER_PARTITIONS:-$(( 2 * WORKERS_MAX > 4 ? 2 * WORKERS_MAX : 4 ))}

# 3. validate seeds before starting anything
"$CTL" validate "${PRIV[@]}" "${SEEDS[@]}" || exit 2

PRODUCER_OPTS=("${PRIV[@]}" --group "trawler-producers.$CRAWL_ID")
[ -n "$DELAY" ] && PRODUCER_OPTS+=(--delay "$DELAY")
[ -n "$HOST_CONNS" ] && PRODUCER_OPTS+=(--host-connections "$HOST_CONNS")
[ -n "$RENDER" ] && PRODUCER_OPTS+=(--render-regex "$RENDER")
CONSUMER_OPTS=(--out "$OUT" --group "trawler-consumers.$CRAWL_ID")
[ -n "$MAX_DEPTH" ] && CONSUMER_OPTS+=(--max-depth "$MAX_DEPTH")
[ -n "$PLUGINS" ] && CONSUMER_OPTS+=(--plugin "$PLUGINS")
[ "$WARC" = 1 ] && CONSUMER_OPTS+=(--warc)
[ "$ITEMS" = 1 ] && CONSUMER_OPTS+=(--items)
# Kafka transactions per batch: items and frontier links read_committed once
[ "$TXN" = 1 ] && CONSUMER_OPTS+=(--transactional)
if [ -n "$EXTRACT" ]; then
  [ -r "$EXTRACT" ] || die "--extract $EXTRACT: no such readable file"
  CONSUMER_OPTS+=(--extract "$(cd "$(dirname "$EXTRACT")" && pwd -P)/$(basename "$EXTRACT")")
fi
# Check worker options now, so a bad value fails before services start.
"$BUILD/trawler-producer" "${PRODUCER_OPTS[@]}" --help >/dev/null || exit 2
"$BUILD/trawler-consumer" "${CONSUMER_OPTS[@]}" --help >/dev/null || exit 2

# 4. services
SVC_DIR=""
PIDS=()
TOPICS_CREATED=0
cleanup() {
  local rc=$?
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ -z "$SVC_DIR" ] && [ "$OWN_TOPICS" = 1 ] && [ "$TOPICS_CREATED" = 1 ] &&
     [ -z "${TRAWLER_KEEP_TOPICS:-}" ]; then
    "$CTL" delete-topics >/dev/null 2>&1 || true
  fi
  if [ -n "$SVC_DIR" ]; then
    "$ROOT/deploy/local/services.sh" stop "$SVC_DIR" >/dev/null 2>&1 || true
    [ -n "${TRAWLER_KEEP_SERVICES:-}" ] || rm -rf "$SVC_DIR"
  fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -n "${TRAWLER_BROKERS:-}" ] && [ -n "${TRAWLER_REDIS:-}" ]; then
  # shellcheck disable=SC2001  # a password in the URL is never printed
  say "using Kafka at $TRAWLER_BROKERS and Redis at $(sed -E 's#(://[^/?#@]*:)[^/?#]*@#\1***@#' <<<"$TRAWLER_REDIS")"
else
  SVC_DIR=$(mktemp -d "${TMPDIR:-/tmp}/trawler-run.XXXXXX")
  say "starting local Kafka and Redis in $SVC_DIR"
  "$ROOT/deploy/local/services.sh" start "$SVC_DIR" >/dev/null || die "could not start Kafka and Redis (see $SVC_DIR)"
  # shellcheck disable=SC1091
  . "$SVC_DIR/env"
fi
"$CTL" init >/dev/null || die "cannot reach Kafka/Redis (see the message above)"
TOPICS_CREATED=1

# 5. workers (TRAWLER_WORKER_WRAP, e.g. a profiler or `time -o FILE`, prefixes
# each worker command; WORKER in it is replaced by the worker's name)
mkdir -p "$OUT/logs"
wrap_for() { WRAP=${TRAWLER_WORKER_WRAP:-}; WRAP=${WRAP//WORKER/$1}; }
rm -f "$OUT/pages.jsonl"
[ "$WARC" = 0 ] || rm -f "$OUT"/warc/trawler-*.warc.gz
for i in $(seq 1 "$CONSUMERS"); do
  wrap_for "consumer-$i"
  $WRAP "$BUILD/trawler-consumer" --exit-when-done --worker-id "consumer-$i" "${CONSUMER_OPTS[@]}" \
    >"$OUT/logs/consumer-$i.log" 2>&1 &
  PIDS+=($!)
done
for i in $(seq 1 "$PRODUCERS"); do
  wrap_for "producer-$i"
  $WRAP "$BUILD/trawler-producer" --exit-when-done --worker-id "producer-$i" "${PRODUCER_OPTS[@]}" \
    >"$OUT/logs/producer-$i.log" 2>&1 &
  PIDS+=($!)
done
say "crawl $CRAWL_ID: $PRODUCERS producer(s), $CONSUMERS consumer(s), output in $OUT"

# Seed once every worker has its partitions: the clock then measures the
# crawl, not the group forming (bounded; a slow join only costs time).
for _ in $(seq 1 100); do
  ready=$( (grep -l "partitions assigned" "$OUT"/logs/*.log 2>/dev/null || true) | wc -l)
  [ "$ready" -ge $((PRODUCERS + CONSUMERS)) ] && break
  sleep 0.1
done
START=$(date +%s.%N)
SEED_OPTS=("${PRIV[@]}")
[ "$RENDER_SEEDS" = 1 ] && SEED_OPTS+=(--seed-render)
"$CTL" seed "${SEED_OPTS[@]}" "${SEEDS[@]}" >/dev/null || die "seeding failed"

# 6. wait for completion, watching that the workers stay alive
WAIT_OPTS=()
[ "$TIMEOUT" -gt 0 ] && WAIT_OPTS+=(--wait-timeout "$TIMEOUT")
"$CTL" wait "${WAIT_OPTS[@]}" &
WAITER=$!
while kill -0 "$WAITER" 2>/dev/null; do
  for pid in "${PIDS[@]}"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      if ! wait "$pid"; then
        kill "$WAITER" 2>/dev/null || true
        wait "$WAITER" 2>/dev/null || true   # leave nothing running behind
        tail -n 5 "$OUT"/logs/*.log >&2 || true
        die "a worker failed before the crawl completed (logs in $OUT/logs)"
      fi
    fi
  done
  sleep 0.3
done
wait "$WAITER" || die "crawl $CRAWL_ID did not complete"
END=$(date +%s.%N)

# 7. workers exit by themselves once the crawl is complete
FAILED=0
for pid in "${PIDS[@]}"; do
  wait "$pid" || FAILED=$((FAILED + 1))
done
PIDS=()
[ "$FAILED" -eq 0 ] || die "$FAILED worker(s) exited with an error (logs in $OUT/logs)"
# a worker whose Kafka clean-up got stuck exits on its own after a bound;
# the crawl's results are complete, but say so
for log in "$OUT"/logs/*.log; do
  if grep -q "shutdown did not finish in time" "$log"; then
    say "warning: $(basename "$log" .log) was forced to exit at shutdown (see $log)"
  fi
done

# 8. summary
python3 - "$OUT/pages.jsonl" "$START" "$END" "$CRAWL_ID" <<'PY'
import json, sys, collections
path, start, end, cid = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
classes = collections.Counter()
n = bytes_ = 0
try:
    with open(path, encoding="utf-8") as f:
        for line in f:
            p = json.loads(line)
            n += 1
            bytes_ += p.get("bytes", 0)
            s = p.get("status", 0)
            classes["error" if p.get("error") else f"{s // 100}xx"] += 1
except FileNotFoundError:
    pass
wall = max(end - start, 1e-9)
rows = [("crawl", cid), ("pages", n), ("wall time", f"{wall:.2f} s"),
        ("pages/s", f"{n / wall:.1f}"), ("body bytes", bytes_)]
rows += [(f"status {k}", v) for k, v in sorted(classes.items())]
rows.append(("output", path))
w = max(len(k) for k, _ in rows)
print("crawl complete")
for k, v in rows:
    print(f"  {k:<{w}}  {v}")
PY
