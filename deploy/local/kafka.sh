#!/usr/bin/env bash
# kafka.sh - start/stop/status a single-node KRaft Apache Kafka broker on 127.0.0.1 in DIR (tests, local runs).
#
# Usage: kafka.sh start DIR | stop DIR | status DIR
#
#   start   fetch the broker jars once into the cache (Maven), write
#           DIR/kafka/server.properties on two free loopback ports, format
#           the storage, launch the broker in the background and wait until
#           it is ready. Prints the bootstrap address (127.0.0.1:PORT) on
#           stdout. Starting again on a DIR whose broker was stopped reuses
#           its data and ports (a restart); a DIR with a running broker is
#           refused.
#   stop    SIGTERM, wait up to KAFKA_STOP_TIMEOUT (30) s, then SIGKILL.
#           Idempotent: exits 0 when nothing runs.
#   status  exit 0 and print the bootstrap address if the broker of DIR runs,
#           exit 1 otherwise.
#
# Environment:
#   TRAWLER_CACHE        jar cache root (default $HOME/.cache/trawler); jars
#                        live in $TRAWLER_CACHE/kafka-<version>/libs
#   KAFKA_START_TIMEOUT  seconds to wait for readiness (default 120)
#   KAFKA_STOP_TIMEOUT   seconds to wait after SIGTERM (default 30)
#   KAFKA_HEAP_OPTS      JVM heap flags (default "-Xmx512m -Xms256m")
#
# Files in DIR/kafka: server.properties, log4j.properties, server.log (WARN
# and the start-up line; server.log.prev after a restart), stdout.log (JVM
# output), format.log, kafka.pid, port, controller.port, ready_seconds,
# data/ (log.dirs).
set -euo pipefail

ME=kafka.sh
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
POM="$HERE/../kafka/pom.xml"

die() { echo "$ME: error: $*" >&2; exit 1; }
say() { echo "$ME: $*" >&2; }

usage() { echo "usage: $ME start DIR | stop DIR | status DIR" >&2; exit 2; }

# now: wall clock in seconds with microseconds.
now() { echo "$EPOCHREALTIME"; }
# elapsed START: seconds since START, one decimal.
elapsed() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }

kafka_version() {
  local v
  [ -f "$POM" ] || die "missing $POM"
  v=$(sed -n 's:.*<kafka.version>\([^<]*\)</kafka.version>.*:\1:p' "$POM" | head -n1)
  [ -n "$v" ] || die "no <kafka.version> in $POM"
  echo "$v"
}

# free_ports N: print N distinct currently free TCP ports on 127.0.0.1, as
# chosen by the kernel (all sockets are held open together, so they differ).
free_ports() {
  python3 - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
PY
}

# ensure_jars: make sure $LIBS holds the broker jars. With the cache present
# this runs no Maven at all. The download goes to a temp folder next to the
# cache and is renamed into place, under a lock, so a killed download never
# leaves a half cache and concurrent first runs download once.
ensure_jars() {
  local base="$CACHE/kafka-$VERSION" lock tmp t0
  if [ -f "$LIBS/kafka_2.13-$VERSION.jar" ]; then
    return 0
  fi
  command -v mvn >/dev/null 2>&1 || die "mvn not found (run deploy/deps.sh) and no jar cache in $LIBS"
  mkdir -p "$CACHE"
  lock="$CACHE/.kafka-$VERSION.lock"
  exec 9>"$lock"
  flock 9
  if [ -f "$LIBS/kafka_2.13-$VERSION.jar" ]; then   # another run filled it
    exec 9>&-
    return 0
  fi
  # Holding the lock, any temp folder left over is from a killed download.
  rm -rf "$CACHE/.kafka-$VERSION.tmp."* "$base"
  tmp=$(mktemp -d "$CACHE/.kafka-$VERSION.tmp.XXXXXX")
  say "downloading Kafka $VERSION jars with Maven into $base (once) ..."
  t0=$(now)
  if ! mvn -q -B -f "$POM" dependency:copy-dependencies \
        -DoutputDirectory="$tmp/libs" >"$tmp/mvn.log" 2>&1; then
    tail -n 30 "$tmp/mvn.log" >&2 || true
    rm -rf "$tmp"
    die "Maven could not fetch the Kafka $VERSION jars (log above)"
  fi
  [ -f "$tmp/libs/kafka_2.13-$VERSION.jar" ] || { rm -rf "$tmp"; die "Maven ran but kafka_2.13-$VERSION.jar is missing"; }
  rm -f "$tmp/mvn.log"
  chmod 755 "$tmp"
  mv -T "$tmp" "$base"
  exec 9>&-
  say "jars cached in $(elapsed "$t0") s"
}

# set_dir ARG: DIR as an absolute path in $DIR, $KDIR = DIR/kafka.
set_dir() {
  [ -n "${1:-}" ] || usage
  mkdir -p "$1"
  DIR=$(cd "$1" && pwd -P)
  KDIR="$DIR/kafka"
}

# process_alive PID: the process PID exists and is not a zombie.
process_alive() {
  local pid=$1 stat
  [ -n "$pid" ] || return 1
  read -r stat 2>/dev/null <"/proc/$pid/stat" || return 1
  stat=${stat##*) }            # state is the first field after "(comm) "
  [ "${stat%% *}" != Z ]
}

# is_our_broker PID: the process PID is alive (not a zombie) and is the
# broker started with this DIR's server.properties. No forks: it runs for
# every process when the pid file is gone. Not for the pid just forked by
# launch_and_wait: until its exec, its command line is still this script's.
is_our_broker() {
  local pid=$1 n
  local -a args
  [ -n "$pid" ] || return 1
  mapfile -d '' -t args 2>/dev/null <"/proc/$pid/cmdline" || return 1
  n=${#args[@]}
  ((n >= 2)) && [ "${args[n - 2]}" = kafka.Kafka ] &&
    [ "${args[n - 1]}" = "$KDIR/server.properties" ] || return 1
  process_alive "$pid"
}

# broker_pid: print the pid of this DIR's running broker, or fail. Uses the
# pid file, else looks for a process started with this exact config path
# (start killed between launch and writing the pid file).
broker_pid() {
  local pid p
  if [ -f "$KDIR/kafka.pid" ]; then
    pid=$(<"$KDIR/kafka.pid") || true
    if is_our_broker "$pid"; then echo "$pid"; return 0; fi
  fi
  for p in /proc/[0-9]*; do
    pid=${p#/proc/}
    if is_our_broker "$pid"; then echo "$pid"; return 0; fi
  done
  return 1
}

write_config() {
  local port=$1 cport=$2
  cat >"$KDIR/server.properties" <<EOF
# Written by deploy/local/kafka.sh: single-node KRaft broker for tests.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
log.dirs=$KDIR/data
num.partitions=8
auto.create.topics.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
group.initial.rebalance.delay.ms=0
EOF
  cat >"$KDIR/log4j.properties" <<EOF
# Written by deploy/local/kafka.sh: WARN and above to server.log, plus the
# one INFO line "Kafka Server started" that tells the broker is ready.
log4j.rootLogger=WARN, file
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File=$KDIR/server.log
log4j.appender.file.Append=true
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.server.KafkaRaftServer=INFO
EOF
  echo "$port" >"$KDIR/port"
  echo "$cport" >"$KDIR/controller.port"
}

# java_argv ARGS...: set JAVA_ARGV to the java command line with the heap
# flags, our log4j config and the jars, then ARGS.
java_argv() {
  local -a heap
  read -r -a heap <<<"${KAFKA_HEAP_OPTS:--Xmx512m -Xms256m}"
  JAVA_ARGV=(java "${heap[@]}" -Djava.awt.headless=true
    "-Dlog4j.configuration=file:$KDIR/log4j.properties"
    -cp "$LIBS/*" "$@")
}

java_cmd() { java_argv "$@"; "${JAVA_ARGV[@]}"; }

format_storage() {
  local uuid
  uuid=$(java_cmd kafka.tools.StorageTool random-uuid 2>>"$KDIR/format.log" | tail -n1)
  [ -n "$uuid" ] || { cat "$KDIR/format.log" >&2; die "StorageTool random-uuid failed"; }
  if ! java_cmd kafka.tools.StorageTool format -t "$uuid" -c "$KDIR/server.properties" \
        >>"$KDIR/format.log" 2>&1; then
    cat "$KDIR/format.log" >&2
    die "StorageTool format failed"
  fi
}

# kill_pid PID TIMEOUT: SIGTERM, wait up to TIMEOUT s, then SIGKILL and wait.
kill_pid() {
  local pid=$1 timeout=$2 i
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < timeout * 10; i++)); do
    is_our_broker "$pid" || return 0
    sleep 0.1
  done
  say "broker pid $pid still up after ${timeout}s, sending SIGKILL"
  kill -KILL "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 100; i++)); do
    is_our_broker "$pid" || return 0
    sleep 0.1
  done
  die "broker pid $pid survived SIGKILL"
}

# launch_and_wait: start the broker, wait until ready. Returns 0 ready,
# 3 the broker died on a port already in use (caller may retry on new
# ports), exits non-zero on other failures and on timeout.
launch_and_wait() {
  local port timeout pid t0 i kcat_ok=0
  port=$(cat "$KDIR/port")
  timeout=${KAFKA_START_TIMEOUT:-120}
  # A restart keeps the previous run's log as server.log.prev.
  if [ -s "$KDIR/server.log" ]; then mv -f "$KDIR/server.log" "$KDIR/server.log.prev"; fi
  t0=$(now)
  java_argv kafka.Kafka "$KDIR/server.properties"
  # The subshell execs java, so $! is the JVM's pid.
  (cd "$KDIR" && exec "${JAVA_ARGV[@]}") </dev/null >"$KDIR/stdout.log" 2>&1 &
  pid=$!
  echo "$pid" >"$KDIR/kafka.pid"
  command -v kcat >/dev/null 2>&1 && kcat_ok=1
  for ((i = 0; ; i++)); do
    if grep -q "Kafka Server started" "$KDIR/server.log" 2>/dev/null; then
      break
    fi
    # Second opinion, once a second: a metadata round trip.
    if ((kcat_ok && i % 10 == 9)) &&
       timeout 5 kcat -b "127.0.0.1:$port" -L -t x -m 2 >/dev/null 2>&1; then
      break
    fi
    # Our own child: alive is enough. Its command line becomes the broker's
    # only at the exec, which a loaded machine can delay past this poll.
    if ! process_alive "$pid"; then
      rm -f "$KDIR/kafka.pid"
      if grep -qE "BindException|Address already in use" "$KDIR/server.log" "$KDIR/stdout.log" 2>/dev/null; then
        return 3
      fi
      say "broker exited during start-up; last lines of its logs:"
      tail -n 20 "$KDIR/server.log" "$KDIR/stdout.log" >&2 || true
      die "Kafka broker failed to start (logs in $KDIR)"
    fi
    if awk -v a="$t0" -v b="$EPOCHREALTIME" -v t="$timeout" 'BEGIN { exit !(b - a > t) }'; then
      say "broker not ready after ${timeout}s; last lines of its logs:"
      tail -n 20 "$KDIR/server.log" "$KDIR/stdout.log" >&2 || true
      kill_pid "$pid" 5 || true
      rm -f "$KDIR/kafka.pid"
      die "Kafka broker did not become ready within ${timeout}s (KAFKA_START_TIMEOUT; logs in $KDIR)"
    fi
    sleep 0.1
  done
  READY_SECS=$(elapsed "$t0")
  return 0
}

cmd_start() {
  local pid port cport attempt rc t_fmt restart=0
  set_dir "$1"
  if pid=$(broker_pid); then
    die "a broker already runs in $DIR (pid $pid, $(cat "$KDIR/port" 2>/dev/null)); stop it first"
  fi
  command -v java >/dev/null 2>&1 || die "java not found on PATH (run deploy/deps.sh)"
  ensure_jars
  mkdir -p "$KDIR"
  if [ -f "$KDIR/data/meta.properties" ] && [ -f "$KDIR/port" ] && [ -f "$KDIR/controller.port" ]; then
    restart=1
  fi
  for attempt in 1 2 3 4 5; do
    if ((restart)); then
      port=$(cat "$KDIR/port")
      cport=$(cat "$KDIR/controller.port")
      say "restarting the broker of $DIR on its ports $port/$cport"
    else
      rm -rf "$KDIR/data"
      read -r port cport < <(free_ports 2)
      if [ -z "$port" ] || [ -z "$cport" ]; then die "could not get free ports from python3"; fi
      # KAFKA_PORT fixes the client port (e.g. 9092 inside a private
      # network namespace, as the compose test does)
      [ -z "${KAFKA_PORT:-}" ] || port=$KAFKA_PORT
      write_config "$port" "$cport"
      t_fmt=$(now)
      format_storage
      say "storage formatted in $(elapsed "$t_fmt") s"
    fi
    rc=0
    launch_and_wait || rc=$?
    if ((rc == 0)); then
      say "Kafka $VERSION ready on 127.0.0.1:$port (pid $(cat "$KDIR/kafka.pid")) after $READY_SECS s"
      echo "$READY_SECS" >"$KDIR/ready_seconds"
      echo "127.0.0.1:$port"
      return 0
    fi
    if ((restart)); then
      die "port $port or $cport is taken: cannot restart the broker of $DIR on its old ports"
    fi
    say "port $port or $cport was taken meanwhile (attempt $attempt), retrying on new ports"
  done
  die "could not bind the broker after 5 attempts"
}

cmd_stop() {
  local pid
  [ -n "${1:-}" ] || usage
  if [ ! -d "$1" ]; then
    say "no $1: nothing to stop"
    return 0
  fi
  DIR=$(cd "$1" && pwd -P)
  KDIR="$DIR/kafka"
  if ! pid=$(broker_pid); then
    rm -f "$KDIR/kafka.pid"
    say "no broker running in $DIR"
    return 0
  fi
  kill_pid "$pid" "${KAFKA_STOP_TIMEOUT:-30}"
  rm -f "$KDIR/kafka.pid"
  say "broker pid $pid stopped"
}

cmd_status() {
  local pid
  [ -n "${1:-}" ] || usage
  [ -d "$1" ] || { say "not running (no $1)"; return 1; }
  DIR=$(cd "$1" && pwd -P)
  KDIR="$DIR/kafka"
  if pid=$(broker_pid); then
    say "running, pid $pid"
    echo "127.0.0.1:$(cat "$KDIR/port")"
    return 0
  fi
  say "not running"
  return 1
}

[ $# -eq 2 ] || usage
VERSION=$(kafka_version)
CACHE=${TRAWLER_CACHE:-$HOME/.cache/trawler}
LIBS="$CACHE/kafka-$VERSION/libs"
case "$1" in
  start) cmd_start "$2" ;;
  stop) cmd_stop "$2" ;;
  status) cmd_status "$2" ;;
  *) usage ;;
esac
