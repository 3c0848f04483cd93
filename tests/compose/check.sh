#!/usr/bin/env bash
# check.sh - validates the compose deployment without a Docker engine.
#
# Three stages, each a real parser or the project's own contract:
#   client    docker-compose.yml through a real Compose client's `config -q`:
#             Debian's docker-compose (v1.29, the Compose specification
#             schema) always; also `docker compose` (v2) when that plugin is
#             installed.
#   contract  tests/compose/validate_compose.py: topology, --scale safety,
#             TRAWLER_* allow-list, Dockerfile multi-stage + non-root,
#             Prometheus/Grafana wiring.
#   promtool  deploy/docker/prometheus.yml through `promtool check config`
#             (taken from Debian's prometheus .deb, unpacked into a cache;
#             nothing is installed or started).
# Then a self-test (tests/compose/selftest.py) feeds broken copies of the
# files through the same stages and requires every one to be rejected.
#
# Usage:
#   tests/compose/check.sh                  all stages + self-test
#   tests/compose/check.sh --no-selftest    all stages only
#   tests/compose/check.sh --files COMPOSE DOCKERFILE PROMETHEUS
#                                           the stages on other files (self-test)
# Environment: TRAWLER_ENV_ALLOWLIST=FILE  allow-list of TRAWLER_* names
#              (default tests/compose/expected_env.txt)
#              TRAWLER_CACHE_DIR=DIR       where promtool is cached
# Installs what is missing (apt: docker-compose, python3-yaml; needs root or
# sudo the first time). Exit 0 when everything passes, 1 otherwise.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
CACHE=${TRAWLER_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/trawler}

die() { echo "check.sh: $*" >&2; exit 1; }
log() { echo "check.sh: $*" >&2; }

SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
APT_UPDATED=0
apt_update_once() {
  if [ "$APT_UPDATED" = 0 ]; then
    $SUDO apt-get update -qq >/dev/null || die "apt-get update failed"
    APT_UPDATED=1
  fi
}

# apt_install PKG...: installs the packages not already installed.
apt_install() {
  local missing="" p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
      || missing="$missing $p"
  done
  [ -z "$missing" ] && return 0
  log "installing:$missing"
  export DEBIAN_FRONTEND=noninteractive
  # shellcheck disable=SC2086
  if ! $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null 2>&1; then
    apt_update_once
    # shellcheck disable=SC2086
    $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null \
      || die "apt-get install$missing failed"
  fi
}

# --- tools ----------------------------------------------------------------

setup_tools() {
  command -v docker-compose >/dev/null 2>&1 || apt_install docker-compose
  command -v docker-compose >/dev/null 2>&1 || die "docker-compose not on PATH after install"
  CLIENTS=("docker-compose")
  if command -v docker >/dev/null 2>&1 && docker compose version >/dev/null 2>&1; then
    CLIENTS+=("docker compose")
  fi

  # A python3 that has PyYAML (Debian's python3-yaml comes with docker-compose).
  PY=""
  for cand in python3 /usr/bin/python3; do
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import yaml' 2>/dev/null; then
      PY=$cand; break
    fi
  done
  if [ -z "$PY" ]; then
    apt_install python3-yaml
    PY=/usr/bin/python3
    "$PY" -c 'import yaml' 2>/dev/null || die "no python3 with PyYAML"
  fi

  # promtool: on PATH, or unpacked from Debian's prometheus package.
  if command -v promtool >/dev/null 2>&1; then
    PROMTOOL=$(command -v promtool)
  else
    PROMTOOL="$CACHE/prometheus-deb/usr/bin/promtool"
    if [ ! -x "$PROMTOOL" ]; then
      log "fetching promtool from Debian's prometheus package into $CACHE"
      local tmp
      tmp=$(mktemp -d)
      chmod 755 "$tmp"  # apt's download sandbox user must be able to write
      if ! (cd "$tmp" && apt-get download -q prometheus >/dev/null 2>&1); then
        apt_update_once
        (cd "$tmp" && apt-get download -q prometheus >/dev/null 2>&1) \
          || { rm -rf "$tmp"; die "apt-get download prometheus failed"; }
      fi
      mkdir -p "$CACHE"
      rm -rf "$CACHE/prometheus-deb"
      dpkg-deb -x "$tmp"/prometheus_*.deb "$CACHE/prometheus-deb" \
        || { rm -rf "$tmp"; die "cannot unpack the prometheus package"; }
      rm -rf "$tmp"
      [ -x "$PROMTOOL" ] || die "promtool not found in the prometheus package"
    fi
  fi
}

# --- stages ---------------------------------------------------------------

indent() { sed 's/^/    /'; }

# validate COMPOSE DOCKERFILE PROMETHEUS: runs every stage, prints one
# "stage ...: ok|FAILED" line each; returns 1 if any failed.
validate() {
  local compose=$1 dockerfile=$2 prom=$3 rc=0 client out
  for client in "${CLIENTS[@]}"; do
    # shellcheck disable=SC2086
    if out=$($client -f "$compose" --project-directory "$ROOT" \
               --profile monitoring config -q 2>&1); then
      echo "stage client ($client): ok"
    else
      echo "stage client ($client): FAILED"
      indent <<<"$out"
      rc=1
    fi
  done
  if out=$("$PY" "$HERE/validate_compose.py" --root "$ROOT" --compose "$compose" \
             --dockerfile "$dockerfile" --prometheus "$prom" 2>&1); then
    echo "stage contract: ok"
  else
    echo "stage contract: FAILED"
    indent <<<"$out"
    rc=1
  fi
  if out=$("$PROMTOOL" check config --syntax-only "$prom" 2>&1); then
    echo "stage promtool: ok"
  else
    echo "stage promtool: FAILED"
    indent <<<"$out"
    rc=1
  fi
  return $rc
}

# --- main -----------------------------------------------------------------

SELFTEST=1
case "${1:-}" in
  --files)
    [ $# -eq 4 ] || die "usage: check.sh --files COMPOSE DOCKERFILE PROMETHEUS"
    setup_tools
    validate "$2" "$3" "$4"
    exit $?
    ;;
  --no-selftest) SELFTEST=0 ;;
  "") ;;
  *) die "unknown argument $1 (see the header of $0)" ;;
esac

setup_tools
log "clients: ${CLIENTS[*]} ($(docker-compose version --short 2>/dev/null)); python: $PY; promtool: $PROMTOOL"
if ! validate "$ROOT/docker-compose.yml" "$ROOT/deploy/Dockerfile" \
              "$ROOT/deploy/docker/prometheus.yml"; then
  die "FAILED: docker-compose.yml / deploy/Dockerfile / deploy/docker are invalid (see above)"
fi
if [ "$SELFTEST" = 1 ]; then
  "$PY" "$HERE/selftest.py" "$HERE/check.sh" "$ROOT" \
    || die "FAILED: self-test (a broken file was accepted, see above)"
fi
log "OK"
