#!/usr/bin/env bash
# deps.sh - install the Debian packages trawler builds, tests and runs with.
# Idempotent: only missing packages are installed. Needs root (or sudo).
set -euo pipefail

# Build and runtime libraries.
PKGS_BUILD="build-essential cmake pkg-config
  libcurl4-openssl-dev librdkafka-dev libhiredis-dev
  libprotobuf-c-dev protobuf-c-compiler libxml2-dev
  libpsl-dev libjson-c-dev zlib1g-dev libpq-dev"
# Services and tools the tests and run.sh use (Kafka itself comes from Maven).
PKGS_RUN="redis-server default-jre-headless maven python3 curl ca-certificates procps"
# Headless browser for the render fetch mode (docs/render.md): only with
# --render (run.sh --render) or --test; the rest of trawler works without it.
PKGS_RENDER="chromium"
PKGS_TEST="valgrind postgresql kcat protobuf-compiler nginx-light clang libclang-rt-14-dev clang-format-14 docker-compose iproute2 util-linux brotli openssl time gnuplot-nox"

want="$PKGS_BUILD $PKGS_RUN"
case "${1:-}" in
  --test) want="$want $PKGS_TEST $PKGS_RENDER" ;;
  --render) want="$PKGS_RENDER" ;;
  --runtime-only) want="$PKGS_RUN" ;;
esac

missing=""
for p in $want; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
# A JRE counts if any java >= 17 is already on PATH (e.g. a Temurin JDK).
if command -v java >/dev/null 2>&1; then
  missing=$(echo "$missing" | sed 's/default-jre-headless//')
fi
missing=$(echo $missing)
if [ -z "$missing" ]; then
  exit 0
fi
echo "deps: installing: $missing" >&2
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
