#!/usr/bin/env bash
# test_compose_env.sh - run trawlerctl init, trawler-producer and
# trawler-consumer with exactly the environment docker-compose.yml gives
# them, without a Docker engine: inside a private network and mount
# namespace, Kafka listens on kafka:9092, Redis on redis:6379 (an
# /etc/hosts of the namespace maps both names), /data/out is a tmpfs.
# The only additions are flags: --allow-private (the test site is on
# loopback) and, for the consumer, --metrics-port 9101 (in compose each
# container has its own network; here both share one, so the consumer's
# TRAWLER_METRICS_PORT=9100 would collide with the producer's). Needs root
# (unshare); CI runs as root.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
BUILD=${TRAWLER_BUILD_DIR:-$ROOT/build}
ME=test_compose_env

if [ "${1:-}" != "--inside" ]; then
  [ "$(id -u)" = 0 ] || { echo "$ME: FAIL: needs root for unshare" >&2; exit 1; }
  created_data=0
  [ -d /data ] || { mkdir /data; created_data=1; }
  rc=0
  unshare --net --mount --fork "$0" --inside || rc=$?
  [ "$created_data" = 0 ] || rmdir /data 2>/dev/null || true
  [ "$rc" = 0 ] && echo "$ME: PASS" || echo "$ME: FAIL (exit $rc)"
  exit "$rc"
fi

# --- inside the namespaces ---
ip link set lo up
TMP=$(mktemp -d)
trap '"$ROOT/deploy/local/services.sh" stop "$TMP/svc" >/dev/null 2>&1 || true; kill $(jobs -p) 2>/dev/null || true' EXIT
printf '127.0.0.1 localhost\n127.0.0.1 kafka\n127.0.0.1 redis\n' >"$TMP/hosts"
mount --bind "$TMP/hosts" /etc/hosts
mount -t tmpfs tmpfs /data
mkdir -p /data/out

REDIS_PORT=6379 KAFKA_PORT=9092 "$ROOT/deploy/local/services.sh" start "$TMP/svc" >/dev/null

envfile() { python3 "$ROOT/tests/compose/validate_compose.py" --print-env "$1"; }
run_with() { # SERVICE CMD... : env -i + PATH/HOME + the service's compose env
  local svc=$1; shift
  local -a vars=()
  while IFS= read -r line; do [ -n "$line" ] && vars+=("$line"); done < <(envfile "$svc")
  env -i PATH="$PATH" HOME="${HOME:-/root}" "${vars[@]}" "$@"
}
start_with() { # as run_with, for `start_with ... &`: $! is then the worker itself
  local svc=$1; shift
  local -a vars=()
  while IFS= read -r line; do [ -n "$line" ] && vars+=("$line"); done < <(envfile "$svc")
  exec env -i PATH="$PATH" HOME="${HOME:-/root}" "${vars[@]}" "$@"
}

echo "$ME: producer env: $(envfile producer | tr '\n' ' ')"
echo "$ME: consumer env: $(envfile consumer | tr '\n' ' ')"

# the test site
# (4 hosts: compose keeps the polite defaults, 1 request per second per host)
HOSTS=(127.0.0.2:8080 127.0.0.3:8080 127.0.0.4:8080 127.0.0.5:8080)
python3 "$ROOT/tests/site/gen_site.py" --out "$TMP/site" --hosts "$(IFS=,; echo "${HOSTS[*]}")" --pages 8 >/dev/null
python3 "$ROOT/tests/site/server.py" --root "$TMP/site" $(printf -- '--listen %s ' "${HOSTS[@]}") --log "$TMP/req.jsonl" >/dev/null 2>&1 &
want=$(python3 -c "import json,sys; print(len(json.load(open(sys.argv[1]))['reachable']))" "$TMP/site/manifest.json")

run_with init "$BUILD/trawlerctl" init
start_with consumer "$BUILD/trawler-consumer" --metrics-port 9101 >"$TMP/consumer.log" 2>&1 &
cpid=$!
start_with producer "$BUILD/trawler-producer" --allow-private >"$TMP/producer.log" 2>&1 &
ppid=$!
run_with init "$BUILD/trawlerctl" seed --allow-private $(printf 'http://%s/ ' "${HOSTS[@]}")
run_with init "$BUILD/trawlerctl" wait --wait-timeout 120 | tail -n 1

# the workers serve metrics on the compose port
for port in 9100 9101; do
  # (no `curl | grep -q` under pipefail: grep exiting early makes curl fail)
  metrics=$(curl -sf "http://127.0.0.1:$port/metrics") || metrics=""
  grep -q '^trawler_up 1' <<<"$metrics" || { echo "$ME: no metrics on :$port"; exit 1; }
done
# the compose health check, run with the worker's own environment
run_with producer "$BUILD/trawlerctl" health || { echo "$ME: producer health check failed"; exit 1; }
run_with consumer "$BUILD/trawlerctl" health --metrics-port 9101 ||
  { echo "$ME: consumer health check failed"; exit 1; }
kill -TERM "$cpid" "$ppid"
wait "$cpid" || { echo "$ME: consumer exit $?"; tail "$TMP/consumer.log"; exit 1; }
wait "$ppid" || { echo "$ME: producer exit $?"; tail "$TMP/producer.log"; exit 1; }
if run_with producer "$BUILD/trawlerctl" health 2>/dev/null; then
  echo "$ME: health check passes with the producer stopped"; exit 1
fi
got=$(wc -l </data/out/pages.jsonl)
echo "$ME: $got pages in /data/out/pages.jsonl, $want reachable"
[ "$got" = "$want" ] || exit 1
head -c 300 "$TMP/producer.log" | grep -q '^{"ts":' || { echo "$ME: producer logs are not JSON"; exit 1; }
