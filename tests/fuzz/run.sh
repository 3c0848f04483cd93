#!/usr/bin/env bash
# run.sh SECONDS [TARGET...] - build every libFuzzer target (clang, ASan+UBSan) and run each
# (or only the named ones, e.g. "url links") for SECONDS.
#
# Environment: TRAWLER_FUZZ_BUILD (build dir, default build-fuzz/ in the repo),
# TRAWLER_FUZZ_WORK (generated corpora and crash artifacts, default
# $TRAWLER_FUZZ_BUILD/fuzz-work), TRAWLER_FUZZ_JOBS (parallel fuzzing jobs
# per target, default 1), TRAWLER_FUZZ_SOURCE (CMake source dir, default the
# repo root). The checked-in seed corpus is read, never written: new inputs
# go to the work corpus; copy the interesting ones (and any crasher, once
# fixed) to tests/fuzz/corpus/<target>/ by hand.
# Exits non-zero when a target crashed; the artifact path is printed.
set -euo pipefail

secs="${1:-60}"
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
src="${TRAWLER_FUZZ_SOURCE:-$root}"
build="${TRAWLER_FUZZ_BUILD:-$root/build-fuzz}"
work="${TRAWLER_FUZZ_WORK:-$build/fuzz-work}"
jobs="${TRAWLER_FUZZ_JOBS:-1}"

command -v clang >/dev/null || { echo "run.sh: clang is required" >&2; exit 2; }
cmake -S "$src" -B "$build" -DCMAKE_C_COMPILER=clang -DTRAWLER_FUZZ=ON \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null

shift || true
targets=()
if [ "$#" -gt 0 ]; then
  for name in "$@"; do targets+=("fuzz_${name#fuzz_}"); done
else
  for f in "$here"/fuzz_*.c; do targets+=("$(basename "$f" .c)"); done
fi
cmake --build "$build" -j"$(nproc)" --target "${targets[@]}"

status=0
for t in "${targets[@]}"; do
  name="${t#fuzz_}"
  bin="$(find "$build" -type f -name "$t" -perm -u+x | head -n 1)"
  mkdir -p "$work/$name/corpus" "$work/$name/artifacts"
  args=(-max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
        -artifact_prefix="$work/$name/artifacts/")
  [ -f "$here/$name.dict" ] && args+=(-dict="$here/$name.dict")
  [ "$jobs" -gt 1 ] && args+=(-jobs="$jobs" -workers="$jobs")
  echo "== $t: ${secs}s" >&2
  log="$work/$name/fuzz.log"
  if "$bin" "${args[@]}" "$work/$name/corpus" "$here/corpus/$name" >"$log" 2>&1; then
    grep -E "^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)|^#[0-9]+.*DONE" \
      "$log" >&2 || true
  else
    status=1
    echo "== $t FAILED: see $log" >&2
    grep -E "ERROR|SUMMARY|artifact|Test unit written" "$log" >&2 || tail -n 30 "$log" >&2
  fi
done
exit "$status"
