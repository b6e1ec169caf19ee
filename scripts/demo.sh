#!/usr/bin/env bash
# The README's first command: set up, then run the demo in throwaway network namespaces.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/path.sh
exec ./entrypoint demo "$@"
