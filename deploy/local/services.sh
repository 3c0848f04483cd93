#!/usr/bin/env bash
# services.sh - start/stop the Redis server and Kafka broker that a test run, run.sh or the benchmark uses, all in DIR.
#
# Usage: services.sh start DIR | stop DIR | status DIR
#
#   start   redis.sh start DIR, then kafka.sh start DIR, then writes DIR/env:
#             export TRAWLER_BROKERS=127.0.0.1:<port>
#             export TRAWLER_REDIS=redis://127.0.0.1:<port>/0
#           and prints the same lines on stdout, so both of these work:
#             deploy/local/services.sh start "$d" && . "$d/env"
#             eval "$(deploy/local/services.sh start "$d")"
#           If Kafka fails, Redis is stopped again and the exit is non-zero.
#   stop    stops both (Kafka first); idempotent, exit 0 when nothing runs,
#           safe in an EXIT trap:  trap 'deploy/local/services.sh stop "$d"' EXIT
#   status  exit 0 if both run, 1 otherwise.
#
# Every run gets its own DIR (e.g. mktemp -d) and its own free ports, so
# concurrent runs never collide. Environment: see kafka.sh and redis.sh.
set -euo pipefail

ME=services.sh
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)

die() { echo "$ME: error: $*" >&2; exit 1; }
say() { echo "$ME: $*" >&2; }
usage() { echo "usage: $ME start DIR | stop DIR | status DIR" >&2; exit 2; }

cmd_start() {
  local dir redis_url brokers t0 secs
  mkdir -p "$1"
  dir=$(cd "$1" && pwd -P)
  rm -f "$dir/env"
  redis_url=$("$HERE/redis.sh" start "$dir") || die "Redis did not start (see above)"
  t0=$EPOCHREALTIME
  # One retry on fresh ports and storage: a loaded machine (or a port
  # taken between choosing and binding) can make a first start fail.
  if ! brokers=$("$HERE/kafka.sh" start "$dir"); then
    "$HERE/kafka.sh" stop "$dir" >/dev/null 2>&1 || true
    if [ -d "$dir/kafka" ]; then
      rm -rf "$dir/kafka.failed"
      mv "$dir/kafka" "$dir/kafka.failed"
    fi
    say "Kafka did not start; retrying once (first attempt's logs in $dir/kafka.failed)"
    if ! brokers=$("$HERE/kafka.sh" start "$dir"); then
      "$HERE/redis.sh" stop "$dir" || true
      die "Kafka did not start (see above); Redis stopped again"
    fi
  fi
  secs=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
  {
    echo "export TRAWLER_BROKERS=$brokers"
    echo "export TRAWLER_REDIS=$redis_url"
  } >"$dir/env.tmp"
  mv -f "$dir/env.tmp" "$dir/env"
  say "Kafka broker ready in ${secs} s (broker alone: $(cat "$dir/kafka/ready_seconds") s); Redis $redis_url; env in $dir/env"
  cat "$dir/env"
}

cmd_stop() {
  local rc=0
  if [ ! -d "$1" ]; then
    say "no $1: nothing to stop"
    return 0
  fi
  "$HERE/kafka.sh" stop "$1" || rc=1
  "$HERE/redis.sh" stop "$1" || rc=1
  return "$rc"
}

cmd_status() {
  local rc=0
  "$HERE/redis.sh" status "$1" || rc=1
  "$HERE/kafka.sh" status "$1" || rc=1
  return "$rc"
}

if [ $# -ne 2 ] || [ -z "$2" ]; then usage; fi
case "$1" in
  start) cmd_start "$2" ;;
  stop) cmd_stop "$2" ;;
  status) cmd_status "$2" ;;
  *) usage ;;
esac
