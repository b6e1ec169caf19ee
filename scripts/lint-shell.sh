#!/usr/bin/env bash
# npm run lint's second half: every shell script of the project through shellcheck (Debian's package, which
# scripts/setup.sh installs). Scripts are found by name (*.sh) and by a sh or bash first line (.ci/run), so a new
# one is linted without being listed; a check disabled in a script says why on the line before.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v shellcheck >/dev/null; then
  echo "lint: shellcheck is not installed (Debian: apt-get install -y shellcheck; scripts/setup.sh installs it)" >&2
  exit 1
fi
files=()
while IFS= read -r file; do files+=("$file"); done < <(
  find . \( -name node_modules -o -name .git -o -name .tools -o -name .tap -o -path ./dist \) -prune -o -type f -print0 |
    xargs -0 awk 'FNR == 1 { if (FILENAME ~ /\.sh$/ || /^#! *(\/usr)?\/bin\/(env +)?(ba|da)?sh( |$)/) print FILENAME; nextfile }' |
    sort
)
[ "${#files[@]}" -gt 0 ] || { echo "lint: no shell scripts found" >&2; exit 1; }
# -x: follow `source`d files (paths relative to the repository's root, where every script runs from).
shellcheck -x "${files[@]}"
echo "shellcheck: ${#files[@]} scripts clean"
