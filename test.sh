#!/usr/bin/env bash
# test.sh - install what is missing, build with warnings as errors, start a
# real Kafka broker and Redis on free loopback ports, and run every test
# (unit, integration, fuzz-corpus replay) with ctest.
#
# usage: ./test.sh [-L LABEL] [-R REGEX]      (extra args go to ctest)
# env:   TRAWLER_SANITIZE=1  also build with ASan+UBSan and run the unit,
#                            fuzz-replay and integration tests under it (CI does)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
cd "$ROOT"
ME=test.sh

bash deploy/deps.sh --test

BUILD=${TRAWLER_TEST_BUILD:-$ROOT/build-test}
echo "$ME: building in $BUILD (warnings are errors)" >&2
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTRAWLER_WERROR=ON >/dev/null
cmake --build "$BUILD" -j"$(nproc)" 2>&1 | grep -Ev '^\[ *[0-9]+%\]|^(Consolidate|Scanning|Built target)' || true
[ "${PIPESTATUS[0]}" = 0 ] || { echo "$ME: build failed" >&2; exit 1; }

if [ "${TRAWLER_SANITIZE:-0}" = 1 ]; then
  SAN=$ROOT/build-asan
  echo "$ME: sanitizer build (ASan+UBSan) in $SAN" >&2
  cmake -S . -B "$SAN" -DCMAKE_BUILD_TYPE=Debug -DTRAWLER_WERROR=ON -DTRAWLER_ASAN=ON >/dev/null
  cmake --build "$SAN" -j"$(nproc)" >/dev/null
  (cd "$SAN" && ASAN_OPTIONS=detect_leaks=1 ctest -L unit --output-on-failure) || { echo "$ME: sanitizer unit tests failed" >&2; exit 1; }
fi

SVC=$(mktemp -d "${TMPDIR:-/tmp}/trawler-test.XXXXXX")
cleanup() {
  deploy/local/services.sh stop "$SVC" >/dev/null 2>&1 || true
  rm -rf "$SVC"
}
trap cleanup EXIT
deploy/local/services.sh start "$SVC" >/dev/null
# shellcheck disable=SC1091
. "$SVC/env"
export TRAWLER_BUILD_DIR=$BUILD   # run.sh reuses this build
"$BUILD/trawlerctl" init >/dev/null

rc=0
(cd "$BUILD" && ctest --output-on-failure "$@") || rc=$?
if [ "${TRAWLER_SANITIZE:-0}" = 1 ] && [ $# -eq 0 ]; then
  # the integration tests again, with ASan+UBSan-built workers and tools
  echo "$ME: integration tests with the sanitizer build" >&2
  (cd "$SAN" && TRAWLER_BUILD_DIR=$SAN ASAN_OPTIONS=detect_leaks=1 \
     ctest -L integration -LE 'bench|valgrind|deploy' --output-on-failure) || rc=$?
fi
exit $rc
