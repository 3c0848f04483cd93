#!/usr/bin/env bash
# clang_format_check.sh - every C source follows the checked-in .clang-format
# (generated protobuf code is not in git, so it is not checked).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$ROOT"
CF=$(command -v clang-format-14 || command -v clang-format || true)
[ -n "$CF" ] || { echo "clang_format_check: FAIL: clang-format not installed" >&2; exit 1; }
bad=0
while IFS= read -r f; do
  "$CF" --dry-run --Werror "$f" >/dev/null 2>&1 || { echo "not formatted: $f"; bad=$((bad + 1)); }
done < <(git ls-files '*.c' '*.h' 2>/dev/null || find libtrawler producer consumer ctl tests examples -name '*.[ch]')
[ "$bad" = 0 ] || { echo "clang_format_check: $bad file(s) differ from .clang-format (run clang-format -i)" >&2; exit 1; }
echo "clang_format_check: all C sources formatted"
