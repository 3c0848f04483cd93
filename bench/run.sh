#!/usr/bin/env bash
# bench/run.sh - end-to-end benchmark of trawler on this machine: generates a
# 4-host site on 127.0.0.1-4, serves it with nginx, crawls it with the full
# pipeline (./run.sh: Kafka, Redis, producers, consumers) and with `wget -r`
# (one process per host) as a reference, and reports medians.
#
# usage: bench/run.sh [--pages N[,N...]] [--repeat R] [--producers N]
#                     [--consumers M] [--host-connections C] [--no-wget]
#                     [--no-chart] [--rev REV] [--timeout S] [--wait-idle S]
#                     [--keep] [--smoke] [--profile]
#
#   --pages N[,N...]   site size(s), each one configuration (default 20000);
#                      with two or more sizes the table gets the worker-RSS
#                      ratio largest/smallest ("flat RSS": --pages 20000,100000)
#   --repeat R         runs per configuration, medians reported (default 3)
#   --producers N, --consumers M, --host-connections C   passed to ./run.sh
#                      (defaults 1, 1, 8)
#   --no-wget          skip the wget reference runs
#   --no-chart         skip the gnuplot chart
#   --rev REV          benchmark commit REV (git archive into
#                      ~/.cache/trawler/bench-src/SHA, built there) instead of
#                      the working tree (built in bench/.build)
#   --timeout S        give up on one crawl after S seconds (default
#                      max(120, pages/100))
#   --wait-idle S      before each run, wait up to S seconds (default 30) for
#                      the machine to be idle (< 15% busy over 1 s); the busy
#                      share seen just before each run is reported either way
#   --keep             keep the work directory (site, logs, pages.jsonl)
#   --smoke            CI check: 300 pages, 1 run, no wget, no chart; exits
#                      non-zero unless the crawl completes with every page
#   --profile          run the workers under callgrind (instruction counts,
#                      repeatable on a busy machine) and write the top
#                      functions per worker to profile-WORKER.txt in the
#                      results; rates, CPU and RSS of such a run are not
#                      comparable (use a small --pages, e.g. 3000)
#
# Results: bench/results/<timestamp>/results.md (table: metric, median, all
# runs, target), metrics.jsonl (one line per run), chart.png; the table is
# also printed. Everything listens on and talks to 127.0.0.0/8 only.
# shellcheck disable=SC2046  # $(nginx_pids) is a list of pids, split on purpose
set -euo pipefail

ME=bench/run.sh
BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
ROOT=$(cd "$BENCH/.." && pwd -P)
HOSTS=(127.0.0.1 127.0.0.2 127.0.0.3 127.0.0.4)
NGINX=/usr/sbin/nginx
TIMEBIN=/usr/bin/time

PAGES_LIST=20000
REPEAT=3
PRODUCERS=1
CONSUMERS=1
HOST_CONNS=8
WGET=1
CHART=1
REV=""
TIMEOUT=""
KEEP=0
SMOKE=0
PROFILE=0
WAIT_IDLE=30
BUSY_BEFORE=0
ARGS_ORIG="$*"

die() { echo "$ME: error: $*" >&2; exit 1; }
say() { echo "$ME: $*" >&2; }
usage() { sed -n '2,34p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
need_value() { [ $# -ge 2 ] || { echo "$ME: option $1 needs a value" >&2; exit 2; }; }
is_uint() { [[ "$1" =~ ^[0-9]+$ ]]; }

while [ $# -gt 0 ]; do
  case "$1" in
    --pages) need_value "$@"; PAGES_LIST=$2; shift 2 ;;
    --repeat) need_value "$@"; REPEAT=$2; shift 2 ;;
    --producers) need_value "$@"; PRODUCERS=$2; shift 2 ;;
    --consumers) need_value "$@"; CONSUMERS=$2; shift 2 ;;
    --host-connections) need_value "$@"; HOST_CONNS=$2; shift 2 ;;
    --no-wget) WGET=0; shift ;;
    --no-chart) CHART=0; shift ;;
    --rev) need_value "$@"; REV=$2; shift 2 ;;
    --timeout) need_value "$@"; TIMEOUT=$2; shift 2 ;;
    --wait-idle) need_value "$@"; WAIT_IDLE=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    --smoke) SMOKE=1; shift ;;
    --profile) PROFILE=1; WGET=0; CHART=0; shift ;;
    -h|--help) usage ;;
    *) echo "$ME: unknown argument $1" >&2; usage ;;
  esac
done
if [ "$SMOKE" = 1 ]; then
  PAGES_LIST=300 REPEAT=1 WGET=0 CHART=0 WAIT_IDLE=0
fi
IFS=, read -r -a PAGES_ARR <<<"$PAGES_LIST"
[ ${#PAGES_ARR[@]} -ge 1 ] || die "--pages needs a value"
for p in "${PAGES_ARR[@]}"; do
  is_uint "$p" && [ "$p" -ge 4 ] || die "--pages: each size must be an integer >= 4 (got '$p')"
done
for v in "$REPEAT" "$PRODUCERS" "$CONSUMERS" "$HOST_CONNS"; do
  is_uint "$v" && [ "$v" -ge 1 ] || die "--repeat/--producers/--consumers/--host-connections must be integers >= 1 (got '$v')"
done
[ -z "$TIMEOUT" ] || is_uint "$TIMEOUT" || die "--timeout must be whole seconds"
is_uint "$WAIT_IDLE" || die "--wait-idle must be whole seconds"

# --------------------------------------------------------------------------
# tools
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_install() {
  say "installing $* (apt-get)"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1 ||
    { as_root apt-get update -qq >/dev/null 2>&1 && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null; } ||
    die "could not install $*"
}
[ -x "$TIMEBIN" ] || apt_install time
[ -x "$NGINX" ] || apt_install nginx-light
command -v redis-cli >/dev/null || apt_install redis-tools
command -v curl >/dev/null || apt_install curl
[ "$WGET" = 0 ] || command -v wget >/dev/null || apt_install wget
[ "$CHART" = 0 ] || command -v gnuplot >/dev/null || apt_install gnuplot-nox
CLK_TCK=$(getconf CLK_TCK)

# --------------------------------------------------------------------------
# source and build (outside the timed part)
if [ -n "$REV" ]; then
  SHA=$(git -C "$ROOT" rev-parse --verify "$REV^{commit}") || die "no commit $REV"
  SRC=${TRAWLER_CACHE:-$HOME/.cache/trawler}/bench-src/$SHA
  if [ ! -f "$SRC/run.sh" ]; then
    rm -rf "$SRC.tmp" && mkdir -p "$SRC.tmp"
    git -C "$ROOT" archive "$SHA" | tar -x -C "$SRC.tmp"
    rm -rf "$SRC" && mv "$SRC.tmp" "$SRC"
  fi
  BUILD=$SRC/build
  SOURCE_DESC="commit $SHA"
else
  SRC=$ROOT
  BUILD=${TRAWLER_BUILD_DIR:-$BENCH/.build}
  SHA=$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)
  if [ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null)" ]; then
    SOURCE_DESC="working tree (HEAD $SHA + uncommitted changes)"
  else
    SOURCE_DESC="working tree (HEAD $SHA, clean)"
  fi
fi
bash "$SRC/deploy/deps.sh" || die "installing dependencies failed"
mkdir -p "$BUILD"
say "building $SOURCE_DESC in $BUILD"
if ! { [ -f "$BUILD/CMakeCache.txt" ] || cmake -S "$SRC" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >"$BUILD/configure.log" 2>&1; } ||
   ! cmake --build "$BUILD" -j"$(nproc)" >"$BUILD/build.log" 2>&1; then
  tail -n 30 "$BUILD/configure.log" "$BUILD/build.log" 2>/dev/null >&2 || true
  die "build failed (logs in $BUILD)"
fi
export TRAWLER_BUILD_DIR=$BUILD
CTL=$BUILD/trawlerctl

# --------------------------------------------------------------------------
# work directory, cleanup
WORK=$(mktemp -d "${TMPDIR:-/tmp}/trawler-bench.XXXXXX")
chmod 755 "$WORK"   # nginx workers run as nobody when started by root
STAMP=$(date +%Y%m%d-%H%M%S)
RESULTS=$BENCH/results/$STAMP
[ "$SMOKE" = 1 ] && RESULTS=$BENCH/results/$STAMP-smoke
mkdir -p "$RESULTS"
METRICS=$RESULTS/metrics.jsonl
: >"$METRICS"
NGINX_PID=""
NGINX_DIR=""
SVC=""
BG_PIDS=()

# kill_workers_of DIR: trawler workers this script started, should run.sh
# have left any: processes whose command line names DIR (the /usr/bin/time
# wrapper's -o file, the consumer's --out) and a trawler worker, and the
# children of those (the worker under its time wrapper). By pid.
kill_workers_of() {
  local p cmd kids
  local -a pids=()
  for p in /proc/[0-9]*; do
    cmd=$(tr '\0' ' ' 2>/dev/null <"$p/cmdline") || continue
    case "$cmd" in
      *"$1"*trawler-producer*|*"$1"*trawler-consumer*|*trawler-consumer*"$1"*)
        p=${p#/proc/}
        kids=$(cat "/proc/$p/task/$p/children" 2>/dev/null || true)
        # shellcheck disable=SC2206
        pids+=($kids "$p") ;;
    esac
  done
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
}
stop_nginx() {
  if [ -n "$NGINX_PID" ]; then
    kill -QUIT "$NGINX_PID" 2>/dev/null || true
    wait "$NGINX_PID" 2>/dev/null || true
    NGINX_PID=""
  fi
}
cleanup() {
  local rc=$?
  for p in "${BG_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  kill_workers_of "$WORK"
  if [ -n "$SVC" ]; then "$SRC/deploy/local/services.sh" stop "$SVC" >/dev/null 2>&1 || true; fi
  stop_nginx
  if [ "$KEEP" = 1 ]; then say "work directory kept: $WORK"; else rm -rf "$WORK"; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --------------------------------------------------------------------------
# helpers

# free_port: a TCP port free on all of HOSTS.
free_port() {
  python3 - "${HOSTS[@]}" <<'PY'
import socket, sys
hosts = sys.argv[1:]
for _ in range(100):
    socks = []
    try:
        s = socket.socket(); socks.append(s); s.bind((hosts[0], 0))
        port = s.getsockname()[1]
        for h in hosts[1:]:
            s = socket.socket(); socks.append(s); s.bind((h, port))
    except OSError:
        continue
    finally:
        for s in socks:
            s.close()
    print(port)
    sys.exit(0)
sys.exit("no port free on all hosts")
PY
}

# cpu_ticks PID...: utime+stime of the processes, in clock ticks.
cpu_ticks() {
  local t=0 p s
  local -a f
  for p in "$@"; do
    s=$(cat "/proc/$p/stat" 2>/dev/null) || continue
    read -r -a f <<<"${s##*) }"
    t=$((t + f[11] + f[12]))
  done
  echo "$t"
}
# hwm_kib PID...: the largest VmHWM (peak RSS, KiB) of the processes.
hwm_kib() {
  local m=0 p v
  for p in "$@"; do
    v=$(awk '/^VmHWM:/ { print $2 }' "/proc/$p/status" 2>/dev/null) || continue
    [ -n "$v" ] && [ "$v" -gt "$m" ] && m=$v
  done
  echo "$m"
}
# machine_ticks: "busy total" jiffies of all CPUs from /proc/stat.
machine_ticks() {
  awk '/^cpu / { b = $2 + $3 + $4 + $7 + $8 + $9; t = b + $5 + $6; print b, t; exit }' /proc/stat
}
# busy_pct SECONDS: % of all CPUs busy over the next SECONDS.
busy_pct() {
  local b0 t0 b1 t1
  read -r b0 t0 < <(machine_ticks)
  sleep "$1"
  read -r b1 t1 < <(machine_ticks)
  echo $(( (b1 - b0) * 100 / (t1 - t0 > 0 ? t1 - t0 : 1) ))
}
# wait_idle: sets BUSY_BEFORE (% busy over 1 s); waits up to WAIT_IDLE s
# for it to drop below 15%.
wait_idle() {
  local t0=$SECONDS
  BUSY_BEFORE=$(busy_pct 1)
  while [ "$BUSY_BEFORE" -ge 15 ] && [ $((SECONDS - t0)) -lt "$WAIT_IDLE" ]; do
    BUSY_BEFORE=$(busy_pct 1)
  done
  if [ "$BUSY_BEFORE" -ge 15 ]; then
    say "warning: machine ${BUSY_BEFORE}% busy before this run (other processes); numbers will be noisy"
  fi
}
nginx_pids() {
  local kids
  kids=$(cat "/proc/$NGINX_PID/task/$NGINX_PID/children" 2>/dev/null || true)
  # shellcheck disable=SC2086
  echo "$NGINX_PID" $kids
}
redis_used_memory() {
  redis-cli -h 127.0.0.1 -p "$1" info memory | tr -d '\r' | awk -F: '$1 == "used_memory" { print $2 }'
}
# time_sum GLOB: "user+sys seconds, max RSS KiB, count" over /usr/bin/time files.
time_sum() {
  local f cpu=0 rss=0 n=0 line
  for f in $1; do
    [ -f "$f" ] || continue
    line=$(tail -n 1 "$f")
    cpu=$(awk -v a="$cpu" -v l="$line" 'BEGIN { split(l, x, ","); printf "%.3f", a + x[2] + x[3] }')
    rss=$(awk -v a="$rss" -v l="$line" 'BEGIN { split(l, x, ","); print (x[4] > a ? x[4] : a) }')
    n=$((n + 1))
  done
  echo "$cpu $rss $n"
}

start_nginx() {   # start_nginx SITE PORT DIR
  local site=$1 port=$2 d=$3 h i
  mkdir -p "$d/tmp" "$d/logs"
  {
    echo "worker_processes 1;"
    echo "pid $d/nginx.pid;"
    echo "error_log $d/logs/error.log warn;"
    echo "events { worker_connections 4096; }"
    echo "http {"
    echo "  access_log off; log_not_found off;"
    echo "  types { text/html html; }"
    echo "  default_type text/html;"
    echo "  sendfile on; tcp_nopush on; tcp_nodelay on;"
    echo "  keepalive_timeout 75s; keepalive_requests 1000000;"
    echo "  client_body_temp_path $d/tmp/body; proxy_temp_path $d/tmp/proxy;"
    echo "  fastcgi_temp_path $d/tmp/fastcgi; uwsgi_temp_path $d/tmp/uwsgi; scgi_temp_path $d/tmp/scgi;"
    for h in "${HOSTS[@]}"; do
      echo "  server { listen $h:$port; server_name _; root $site/$h; index index.html; }"
    done
    echo "}"
  } >"$d/nginx.conf"
  "$NGINX" -p "$d" -c "$d/nginx.conf" -g 'daemon off;' </dev/null >"$d/logs/stdout.log" 2>&1 &
  NGINX_PID=$!
  for ((i = 0; i < 100; i++)); do
    local ok=0
    for h in "${HOSTS[@]}"; do
      [ "$(curl -s -o /dev/null -w '%{http_code}' "http://$h:$port/" 2>/dev/null)" = 200 ] && ok=$((ok + 1))
    done
    [ "$ok" = "${#HOSTS[@]}" ] && return 0
    kill -0 "$NGINX_PID" 2>/dev/null || { cat "$d/logs/"* >&2; die "nginx exited"; }
    sleep 0.1
  done
  die "nginx does not serve the site (logs in $d/logs)"
}

# check_site PORT: every seed answers 200 (nginx still healthy), else die.
check_site() {
  local h code
  for h in "${HOSTS[@]}"; do
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://$h:$1/" 2>/dev/null || true)
    [ "$code" = 200 ] || die "nginx answers $code for http://$h:$1/ (log: $NGINX_DIR/logs/error.log)"
  done
}
# nginx_errors: lines at error level or worse in nginx's error log so far.
nginx_errors() {
  grep -cE '\[(error|crit|alert|emerg)\]' "$NGINX_DIR/logs/error.log" 2>/dev/null || true
}

# --------------------------------------------------------------------------
# one trawler run: run_trawler PAGES REPEAT_INDEX RUNDIR SEEDS...
run_trawler() {
  local pages=$1 r=$2 rd=$3; shift 3
  local cid="bench-$pages-$r-$$" rport rc=0 t0 t1 m0 m1 mem0 mem1
  local k0 k1 rd0 rd1 n0 n1 khwm rhwm nhwm kpid rpid
  mkdir -p "$rd"
  SVC=$rd/svc
  "$SRC/deploy/local/services.sh" start "$SVC" >"$rd/services.log" 2>&1 || { cat "$rd/services.log" >&2; die "services did not start"; }
  # shellcheck disable=SC1091
  . "$SVC/env"
  export TRAWLER_BROKERS TRAWLER_REDIS
  rport=${TRAWLER_REDIS##*:}; rport=${rport%%/*}
  kpid=$(cat "$SVC/kafka/kafka.pid"); rpid=$(cat "$SVC/redis/redis.pid")
  # Dedup buckets sized as the option's help says: expected URLs / 400.
  export TRAWLER_DEDUP_BUCKETS=$(( pages / 400 > 0 ? pages / 400 : 1 ))
  # Topics exist before the clock starts (run.sh's own init is then a
  # no-op), and the fresh broker gets up to 15 s to finish its start-up work
  # (CPU < 5% of a core over 1 s), so its numbers are the crawl's.
  "$CTL" init >"$rd/init.log" 2>&1 || { cat "$rd/init.log" >&2; die "trawlerctl init failed"; }
  local i c0 c1
  for ((i = 0; i < 15; i++)); do
    c0=$(cpu_ticks "$kpid"); sleep 1; c1=$(cpu_ticks "$kpid")
    [ $((c1 - c0)) -lt $((CLK_TCK / 20 + 1)) ] && break
  done
  wait_idle
  check_site "$PORT"
  local ne0; ne0=$(nginx_errors)

  redis-cli -h 127.0.0.1 -p "$rport" info memory | tr -d '\r' >"$rd/redis-before.txt"
  mem0=$(redis_used_memory "$rport")
  k0=$(cpu_ticks "$kpid"); rd0=$(cpu_ticks "$rpid"); n0=$(cpu_ticks $(nginx_pids))
  read -r m0 mt0 < <(machine_ticks)
  t0=$EPOCHREALTIME
  local wrap="$TIMEBIN -f %e,%U,%S,%M -o $rd/time-WORKER.txt"
  [ "$PROFILE" = 0 ] || wrap="valgrind --tool=callgrind --callgrind-out-file=$rd/callgrind-WORKER.out"
  (cd "$SRC" && TRAWLER_WORKER_WRAP="$wrap" \
     ./run.sh --allow-private --delay 0 --host-connections "$HOST_CONNS" \
       --producers "$PRODUCERS" --consumers "$CONSUMERS" --crawl-id "$cid" \
       --timeout "$CRAWL_TIMEOUT" --out "$rd/out" "$@") >"$rd/summary.txt" 2>"$rd/run.log" || rc=$?
  t1=$EPOCHREALTIME
  if [ "$rc" != 0 ]; then say "run.sh exited $rc:"; tail -n 5 "$rd/run.log" >&2; fi
  read -r m1 mt1 < <(machine_ticks)
  k1=$(cpu_ticks "$kpid"); rd1=$(cpu_ticks "$rpid"); n1=$(cpu_ticks $(nginx_pids))
  khwm=$(hwm_kib "$kpid"); rhwm=$(hwm_kib "$rpid"); nhwm=$(hwm_kib $(nginx_pids))
  mem1=$(redis_used_memory "$rport")
  local ne1; ne1=$(nginx_errors)
  { redis-cli -h 127.0.0.1 -p "$rport" info memory | tr -d '\r'
    echo "# keys by prefix: count, MEMORY USAGE bytes"
    redis-cli -h 127.0.0.1 -p "$rport" --scan >"$rd/keys.txt"
    sed 's/^/MEMORY USAGE /; s/$/ SAMPLES 0/' "$rd/keys.txt" | redis-cli -h 127.0.0.1 -p "$rport" |
      paste -d' ' "$rd/keys.txt" - | sed 's/:[^: ]* / /' |
      awk '{ n[$1]++; b[$1] += $2 } END { for (k in n) printf "# %8d %10d %s\n", n[k], b[k], k }' | sort -k4
    redis-cli -h 127.0.0.1 -p "$rport" memory stats | paste -d' ' - - | sed 's/^/# stats /'
  } >"$rd/redis-after.txt"
  "$CTL" status --crawl-id "$cid" >"$rd/status.txt" 2>&1 || true
  local meta dedup
  meta=$(redis-cli -h 127.0.0.1 -p "$rport" hmget "tr:{$cid}:meta" created_ms finished_ms | tr '\n' ' ')
  dedup=$(redis-cli -h 127.0.0.1 -p "$rport" --scan --pattern "tr:{$cid}:s:*" |
          sed 's/^/MEMORY USAGE /; s/$/ SAMPLES 0/' |
          redis-cli -h 127.0.0.1 -p "$rport" | awk '{ s += $1; n++ } END { print s + 0, n + 0 }')
  "$SRC/deploy/local/services.sh" stop "$SVC" >>"$rd/services.log" 2>&1 || true
  SVC=""
  kill_workers_of "$rd"

  local prod cons
  prod=$(time_sum "$rd/time-producer-*.txt"); cons=$(time_sum "$rd/time-consumer-*.txt")
  python3 - "$rd" "$pages" "$r" "$rc" "$t0" "$t1" "$CLK_TCK" \
      "$k0 $k1 $khwm" "$rd0 $rd1 $rhwm" "$n0 $n1 $nhwm" "$m0 $m1 $mt0 $mt1" \
      "$mem0 $mem1" "$meta" "$dedup" "$prod" "$cons" "$BUSY_BEFORE" "$((ne1 - ne0))" >>"$METRICS" <<'PY'
import json, re, sys
(rd, pages, r, rc, t0, t1, tck, kaf, red, ngx, mach, mem, meta, dedup, prod, cons, busy, nerr) = sys.argv[1:]
tck = float(tck)
def ticks(s):
    a, b, hwm = s.split()
    return (int(b) - int(a)) / tck, int(hwm)
m = {"kind": "trawler", "pages_expected": int(pages), "run": int(r), "rc": int(rc),
     "wall_total_s": float(t1) - float(t0), "busy_before_pct": int(busy), "nginx_errors": int(nerr)}
summ = open(rd + "/summary.txt", encoding="utf-8", errors="replace").read()
def field(name):
    x = re.search(r"^\s*" + re.escape(name) + r"\s+([0-9.]+)", summ, re.M)
    return float(x.group(1)) if x else None
m["pages"] = int(field("pages") or 0)
m["wall_s"] = field("wall time")
m["pages_per_s"] = field("pages/s")
m["status_2xx"] = int(field("status 2xx") or 0)
m["status"] = {x.group(1): int(x.group(2)) for x in re.finditer(r"^\s*status (\S+)\s+(\d+)", summ, re.M)}
n = 0
try:
    with open(rd + "/out/pages.jsonl", "rb") as f:
        n = sum(1 for _ in f)
except OSError:
    pass
m["pages_jsonl"] = n
st = open(rd + "/status.txt").read()
x = re.search(r"admitted=(\d+)", st)
m["admitted"] = int(x.group(1)) if x else None
m["complete"] = " complete" in st
cm = meta.split()
if len(cm) == 2 and cm[0].isdigit() and cm[1].isdigit():
    m["wall_redis_s"] = (int(cm[1]) - int(cm[0])) / 1000.0
    m["pages_per_s_redis"] = m["pages"] / m["wall_redis_s"] if m["wall_redis_s"] > 0 else None
for key, s in (("kafka", kaf), ("redis", red), ("nginx", ngx)):
    m["cpu_" + key], m["rss_" + key] = ticks(s)
for key, s in (("producer", prod), ("consumer", cons)):
    cpu, rss, cnt = s.split()
    m["cpu_" + key] = float(cpu) if int(cnt) else None
    m["rss_" + key] = int(rss) if int(cnt) else None
b0, b1, a0, a1 = map(int, mach.split())
m["cpu_machine"] = (b1 - b0) / tck
m["machine_busy_frac"] = (b1 - b0) / max(a1 - a0, 1)
mem0, mem1 = mem.split()
m["redis_mem_delta"] = int(mem1) - int(mem0)
def info(path):
    d = {}
    for line in open(path):
        if ":" in line and not line.startswith("#"):
            k, v = line.strip().split(":", 1)
            d[k] = v
    return d
i0, i1 = info(rd + "/redis-before.txt"), info(rd + "/redis-after.txt")
for k in ("used_memory_dataset", "used_memory_scripts", "used_memory_overhead"):
    if k in i0 and k in i1:
        m["redis_" + k + "_delta"] = int(i1[k]) - int(i0[k])
dsum, dn = dedup.split()
m["dedup_bytes"], m["dedup_keys"] = int(dsum), int(dn)
print(json.dumps(m))
PY
  [ "$KEEP" = 1 ] || rm -f "$rd/out/pages.jsonl"
  mkdir -p "$RESULTS/$(basename "$rd")"
  local cg cg_name
  for cg in "$rd"/callgrind-*.out; do
    [ -f "$cg" ] || continue
    cg_name=$(basename "$cg" .out); cg_name=${cg_name#callgrind-}
    callgrind_annotate --inclusive=no "$cg" 2>/dev/null | sed -n '1,60p' \
      >"$RESULTS/$(basename "$rd")/profile-$cg_name.txt"
    callgrind_annotate --inclusive=yes "$cg" 2>/dev/null | sed -n '1,60p' \
      >"$RESULTS/$(basename "$rd")/profile-$cg_name-inclusive.txt"
    say "profile of $cg_name: $RESULTS/$(basename "$rd")/profile-$cg_name.txt"
  done
  cp "$rd"/summary.txt "$rd"/status.txt "$rd"/time-*.txt "$rd"/redis-*.txt "$rd"/run.log "$RESULTS/$(basename "$rd")/" 2>/dev/null || true
  for f in "$rd"/out/logs/*.log; do
    [ -f "$f" ] && tail -n 200 "$f" >"$RESULTS/$(basename "$rd")/$(basename "$f")"
  done
  tail -n 1 "$METRICS" | python3 -c '
import json, sys
m = json.loads(sys.stdin.read())
print("%s: trawler %d pages run %d: rc %d, %s pages, %s pages/s, wall %s s, producer %s s, consumer %s s, kafka %.1f s CPU" % (
    sys.argv[1], m["pages_expected"], m["run"], m["rc"], m["pages"], m["pages_per_s"], m["wall_s"],
    m["cpu_producer"], m["cpu_consumer"], m["cpu_kafka"]), file=sys.stderr)' "$ME"
  return 0
}

# one wget run: run_wget PAGES REPEAT_INDEX RUNDIR PORT
run_wget() {
  local pages=$1 r=$2 rd=$3 port=$4 i h t0 t1 n0 n1 nhwm rc=0 m0 m1 mt0 mt1
  local -a pids=()
  mkdir -p "$rd"
  wait_idle
  check_site "$port"
  local ne0 ne1; ne0=$(nginx_errors)
  n0=$(cpu_ticks $(nginx_pids))
  read -r m0 mt0 < <(machine_ticks)
  t0=$EPOCHREALTIME
  i=0
  for h in "${HOSTS[@]}"; do
    "$TIMEBIN" -f %e,%U,%S,%M -o "$rd/time-wget-$i.txt" \
      wget -r -l inf -np -nv --delete-after -e robots=off -P "$rd/dl-$i" -o "$rd/wget-$i.log" \
      "http://$h:$port/" &
    pids+=($!); BG_PIDS+=($!)
    i=$((i + 1))
  done
  for p in "${pids[@]}"; do wait "$p" || rc=$?; done
  BG_PIDS=()
  t1=$EPOCHREALTIME
  read -r m1 mt1 < <(machine_ticks)
  n1=$(cpu_ticks $(nginx_pids)); nhwm=$(hwm_kib $(nginx_pids))
  ne1=$(nginx_errors)
  mkdir -p "$RESULTS/$(basename "$rd")"
  cp "$rd"/time-wget-*.txt "$RESULTS/$(basename "$rd")/" 2>/dev/null || true
  grep -hv ' URL:' "$rd"/wget-*.log | tail -n 50 >"$RESULTS/$(basename "$rd")/wget-other-lines.txt" || true
  local got ws
  got=$(cat "$rd"/wget-*.log | grep -c ' URL:' || true)
  ws=$(time_sum "$rd/time-wget-*.txt")
  rm -rf "$rd"/dl-*
  python3 - "$pages" "$r" "$rc" "$t0" "$t1" "$got" "$ws" "$n0 $n1 $nhwm" "$m0 $m1 $mt0 $mt1" "$CLK_TCK" "$BUSY_BEFORE" "$((ne1 - ne0))" >>"$METRICS" <<'PY'
import json, sys
pages, r, rc, t0, t1, got, ws, ngx, mach, tck, busy, nerr = sys.argv[1:]
tck = float(tck)
wall = float(t1) - float(t0)
cpu, rss, cnt = ws.split()
a, b, hwm = ngx.split()
b0, b1, x0, x1 = map(int, mach.split())
print(json.dumps({"kind": "wget", "pages_expected": int(pages), "run": int(r), "rc": int(rc),
                  "pages": int(got), "wall_s": wall, "pages_per_s": int(got) / wall,
                  "cpu_wget": float(cpu), "rss_wget": int(rss),
                  "cpu_nginx": (int(b) - int(a)) / tck, "rss_nginx": int(hwm),
                  "cpu_machine": (b1 - b0) / tck, "machine_busy_frac": (b1 - b0) / max(x1 - x0, 1),
                  "busy_before_pct": int(busy), "nginx_errors": int(nerr)}))
PY
  tail -n 1 "$METRICS" | python3 -c '
import json, sys
m = json.loads(sys.stdin.read())
print("%s: wget %d pages run %d: rc %d, %d pages, %.0f pages/s, wget CPU %.2f s" % (
    sys.argv[1], m["pages_expected"], m["run"], m["rc"], m["pages"], m["pages_per_s"], m["cpu_wget"]), file=sys.stderr)' "$ME"
}

# --------------------------------------------------------------------------
# main
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
T_START=$EPOCHREALTIME
say "work directory $WORK, results in $RESULTS"
for pages in "${PAGES_ARR[@]}"; do
  CRAWL_TIMEOUT=${TIMEOUT:-$(( pages / 100 > 120 ? pages / 100 : 120 ))}
  PORT=$(free_port) || die "no port free on ${HOSTS[*]}"
  SITE=$WORK/site-$pages
  ts=$EPOCHREALTIME
  python3 "$BENCH/gen_site.py" --out "$SITE" --port "$PORT" --pages "$pages" || die "site generation failed"
  say "site: $pages pages on ${HOSTS[*]} port $PORT, generated in $(awk -v a="$ts" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }') s"
  NGINX_DIR=$WORK/nginx-$pages
  start_nginx "$SITE" "$PORT" "$NGINX_DIR"
  SEEDS=()
  for h in "${HOSTS[@]}"; do SEEDS+=("http://$h:$PORT/"); done
  for r in $(seq 1 "$REPEAT"); do
    run_trawler "$pages" "$r" "$WORK/run-$pages-$r" "${SEEDS[@]}"
    if [ "$WGET" = 1 ]; then
      run_wget "$pages" "$r" "$WORK/wget-$pages-$r" "$PORT"
    fi
  done
  stop_nginx
  [ "$KEEP" = 1 ] || rm -rf "$SITE"
done
T_END=$EPOCHREALTIME

# machine and run description for the report
MEM_KIB=$(awk '/^MemTotal:/ { print $2 }' /proc/meminfo)
MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
cat >"$RESULTS/run.json" <<EOF
{"command": "bench/run.sh $ARGS_ORIG", "source": "$SOURCE_DESC", "nproc": $(nproc),
 "cpu_model": "$MODEL", "mem_gib": $(awk -v k="$MEM_KIB" 'BEGIN { printf "%.1f", k / 1048576 }'),
 "kernel": "$(uname -r)", "loadavg_before": "$LOAD0", "started": "$STAMP",
 "bench_seconds": $(awk -v a="$T_START" -v b="$T_END" 'BEGIN { printf "%.0f", b - a }'),
 "producers": $PRODUCERS, "consumers": $CONSUMERS, "host_connections": $HOST_CONNS,
 "repeat": $REPEAT, "smoke": $SMOKE}
EOF
RC=0
python3 "$BENCH/report.py" "$RESULTS" $([ "$CHART" = 1 ] && echo --chart) || RC=$?
say "results in $RESULTS (benchmark took $(awk -v a="$T_START" -v b="$T_END" 'BEGIN { printf "%.0f", b - a }') s)"
exit "$RC"
