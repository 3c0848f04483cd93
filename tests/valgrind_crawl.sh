#!/usr/bin/env bash
# valgrind_crawl.sh - an integration crawl with both workers under Valgrind
# memcheck: no invalid reads or writes, no definite leaks (exit code 3 from
# valgrind on any error or definite leak makes run.sh fail).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
command -v valgrind >/dev/null || { echo "valgrind_crawl: FAIL: valgrind not installed" >&2; exit 1; }
TMP=$(mktemp -d)
trap 'kill "$SRV" 2>/dev/null || true; rm -rf "$TMP"' EXIT
# server on a kernel-chosen port, then a site generated for it
mkdir -p "$TMP/site"
python3 "$ROOT/tests/site/server.py" --root "$TMP/site" --listen 127.0.0.2:0 --port-file "$TMP/ports.json" \
  --log "$TMP/req.jsonl" >/dev/null 2>&1 &
SRV=$!
for _ in $(seq 1 100); do [ -s "$TMP/ports.json" ] && break; sleep 0.1; done
HP=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[0])" "$TMP/ports.json")

python3 "$ROOT/tests/site/gen_site.py" --out "$TMP/site" --hosts "$HP" --pages 40 >/dev/null
export TRAWLER_WORKER_WRAP="valgrind --leak-check=full --show-leak-kinds=definite --errors-for-leak-kinds=definite --error-exitcode=3 --log-file=$TMP/vg-WORKER.log"
export TRAWLER_STOP_TIMEOUT=60
rc=0
"$ROOT/run.sh" --allow-private --delay 0 --timeout 300 --out "$TMP/out" "http://$HP/" >"$TMP/run.log" 2>&1 || rc=$?
for f in "$TMP"/vg-*.log; do
  echo "== $(basename "$f"): $(grep -E 'ERROR SUMMARY' "$f" | tail -1 | sed 's/^==[0-9]*== //'); $(grep -E 'definitely lost' "$f" | tail -1 | sed 's/^==[0-9]*== *//')"
done
if [ "$rc" != 0 ]; then
  tail -n 20 "$TMP/run.log" "$TMP"/vg-*.log >&2
  echo "valgrind_crawl: FAIL (run.sh exit $rc)" >&2
  exit 1
fi
echo "valgrind_crawl: PASS ($(wc -l <"$TMP/out/pages.jsonl") pages under memcheck)"
