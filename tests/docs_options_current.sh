#!/usr/bin/env bash
# docs_options_current.sh - docs/options.md must match the option table
# (trawlerctl options-doc): regenerate the page when an option changes
# with --update.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
# usage: docs_options_current.sh [--update] TRAWLERCTL
UPDATE=0
[ "${1:-}" = --update ] && { UPDATE=1; shift; }
CTL=$1
want=$("$CTL" options-doc)
if [ $UPDATE = 1 ]; then
  page=$ROOT/docs/options.md
  { sed '/<!-- BEGIN GENERATED -->/q' "$page"; echo "$want"; sed -n '/<!-- END GENERATED -->/,$p' "$page"; } >"$page.new"
  mv "$page.new" "$page"
fi
have=$(sed -n '/<!-- BEGIN GENERATED -->/,/<!-- END GENERATED -->/p' "$ROOT/docs/options.md" | sed '1d;$d')
if [ "$want" != "$have" ]; then
  diff <(echo "$have") <(echo "$want") | head -20
  echo "docs/options.md is out of date: regenerate it from 'trawlerctl options-doc'" >&2
  exit 1
fi
echo "docs/options.md matches the option table ($(echo "$want" | wc -l) lines)"
