#!/usr/bin/env bash
# redis.sh - start/stop/status a throw-away redis-server on 127.0.0.1 with its data in DIR (tests, local runs).
#
# Usage: redis.sh start DIR | stop DIR | status DIR
#
#   start   redis-server on a free loopback port, AOF on (appendfsync
#           everysec), no RDB snapshots, daemonized; waits for PING.
#           Prints the URL redis://127.0.0.1:PORT/0 on stdout. Starting
#           again on a DIR whose server was stopped reuses its port and
#           data (a restart); a DIR with a running server is refused.
#   stop    SHUTDOWN NOSAVE (the AOF is flushed), then SIGTERM/SIGKILL if
#           it does not go. Idempotent: exits 0 when nothing runs.
#   status  exit 0 and print the URL if the server of DIR runs, else 1.
#
# Environment: REDIS_START_TIMEOUT (default 30 s), REDIS_STOP_TIMEOUT (10 s).
#
# Files in DIR/redis: redis.pid, redis.log, port, appendonlydir/ (the AOF).
set -euo pipefail

ME=redis.sh

die() { echo "$ME: error: $*" >&2; exit 1; }
say() { echo "$ME: $*" >&2; }
usage() { echo "usage: $ME start DIR | stop DIR | status DIR" >&2; exit 2; }

# free_port: a currently free TCP port on 127.0.0.1, chosen by the kernel.
free_port() {
  python3 -c 'import socket
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()'
}

set_dir() {
  [ -n "${1:-}" ] || usage
  mkdir -p "$1"
  DIR=$(cd "$1" && pwd -P)
  RDIR="$DIR/redis"
}

# is_our_redis PID: PID is a live (not zombie) redis-server of this DIR
# (its port matches DIR/redis/port).
is_our_redis() {
  local pid=$1 state port
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  state=$(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null) || return 1
  [ "$state" != Z ] || return 1
  port=$(cat "$RDIR/port" 2>/dev/null) || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "redis-server 127.0.0.1:$port"
}

redis_pid() {
  local pid
  [ -f "$RDIR/redis.pid" ] || return 1
  pid=$(cat "$RDIR/redis.pid" 2>/dev/null || true)
  is_our_redis "$pid" || return 1
  echo "$pid"
}

# launch PORT: start the daemon and wait for PONG. Returns 0 ready, 3 the
# port was taken (caller may retry), exits non-zero on other failures.
launch() {
  local port=$1 timeout=${REDIS_START_TIMEOUT:-30} i pid reply
  echo "$port" >"$RDIR/port"
  rm -f "$RDIR/redis.pid"
  : >"$RDIR/redis.log"
  redis-server --bind 127.0.0.1 --port "$port" --dir "$RDIR" \
    --appendonly yes --appendfsync everysec --save "" \
    --daemonize yes --pidfile "$RDIR/redis.pid" --logfile "$RDIR/redis.log" \
    </dev/null >/dev/null 2>&1 || true
  for ((i = 0; i < timeout * 10; i++)); do
    # The daemon forks before it binds: a taken port shows in its log (and
    # whoever holds the port may never answer, hence the log check first
    # and the timeout on the PING).
    if grep -q "Address already in use" "$RDIR/redis.log" 2>/dev/null; then
      return 3
    fi
    reply=$(timeout 2 redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null || true)
    if [ "$reply" = PONG ] && redis_pid >/dev/null; then
      return 0
    fi
    if grep -q "# Can't\|FATAL\|Fatal error" "$RDIR/redis.log" 2>/dev/null; then
      tail -n 20 "$RDIR/redis.log" >&2 || true
      die "redis-server failed to start (log in $RDIR/redis.log)"
    fi
    sleep 0.1
  done
  tail -n 20 "$RDIR/redis.log" >&2 || true
  if pid=$(redis_pid); then kill -KILL "$pid" 2>/dev/null || true; fi
  die "redis-server did not answer PING within ${timeout}s (REDIS_START_TIMEOUT; log in $RDIR/redis.log)"
}

cmd_start() {
  local pid port attempt rc t0 restart=0
  set_dir "$1"
  command -v redis-server >/dev/null 2>&1 || die "redis-server not found (run deploy/deps.sh)"
  if pid=$(redis_pid); then
    die "a redis-server already runs in $DIR (pid $pid, port $(cat "$RDIR/port")); stop it first"
  fi
  mkdir -p "$RDIR"
  [ -d "$RDIR/appendonlydir" ] && [ -f "$RDIR/port" ] && restart=1
  t0=$EPOCHREALTIME
  for attempt in 1 2 3 4 5; do
    if ((restart)); then
      port=$(cat "$RDIR/port")
      say "restarting the redis-server of $DIR on its port $port"
    else
      port=${REDIS_PORT:-$(free_port)}  # REDIS_PORT fixes it (compose test)
      [ -n "$port" ] || die "could not get a free port from python3"
    fi
    rc=0
    launch "$port" || rc=$?
    if ((rc == 0)); then
      say "redis-server ready on 127.0.0.1:$port (pid $(cat "$RDIR/redis.pid")) after $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }') s"
      echo "redis://127.0.0.1:$port/0"
      return 0
    fi
    ((restart)) && die "port $port is taken: cannot restart the redis-server of $DIR on its old port"
    say "port $port was taken meanwhile (attempt $attempt), retrying on a new port"
  done
  die "could not bind redis-server after 5 attempts"
}

cmd_stop() {
  local pid port i timeout=${REDIS_STOP_TIMEOUT:-10}
  [ -n "${1:-}" ] || usage
  if [ ! -d "$1" ]; then
    say "no $1: nothing to stop"
    return 0
  fi
  DIR=$(cd "$1" && pwd -P)
  RDIR="$DIR/redis"
  if ! pid=$(redis_pid); then
    rm -f "$RDIR/redis.pid"
    say "no redis-server running in $DIR"
    return 0
  fi
  port=$(cat "$RDIR/port")
  timeout 5 redis-cli -h 127.0.0.1 -p "$port" shutdown nosave >/dev/null 2>&1 || true
  for ((i = 0; i < timeout * 10; i++)); do
    is_our_redis "$pid" || break
    ((i == 30)) && kill -TERM "$pid" 2>/dev/null
    sleep 0.1
  done
  if is_our_redis "$pid"; then
    say "redis-server pid $pid still up after ${timeout}s, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
      is_our_redis "$pid" || break
      sleep 0.1
    done
  fi
  rm -f "$RDIR/redis.pid"
  say "redis-server pid $pid stopped"
}

cmd_status() {
  local pid
  [ -n "${1:-}" ] || usage
  [ -d "$1" ] || { say "not running (no $1)"; return 1; }
  DIR=$(cd "$1" && pwd -P)
  RDIR="$DIR/redis"
  if pid=$(redis_pid); then
    say "running, pid $pid"
    echo "redis://127.0.0.1:$(cat "$RDIR/port")/0"
    return 0
  fi
  say "not running"
  return 1
}

[ $# -eq 2 ] || usage
case "$1" in
  start) cmd_start "$2" ;;
  stop) cmd_stop "$2" ;;
  status) cmd_status "$2" ;;
  *) usage ;;
esac
