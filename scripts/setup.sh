#!/usr/bin/env bash
# Everything a fresh Debian/Ubuntu machine needs, as root: the netfilter tools, then the project built.
# Shared by the demo command and .ci/run, so the two cannot drift apart.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(iptables iproute2 util-linux)
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
command -v node >/dev/null || { echo "setup: Node.js 20 or later is needed (apt-get install nodejs npm)" >&2; exit 1; }
[ -d node_modules ] && [ node_modules -nt package-lock.json ] || npm ci --no-audit --no-fund --loglevel=error
npm run build --silent
