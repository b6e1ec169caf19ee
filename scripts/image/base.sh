#!/usr/bin/env bash
# Local stand-ins for the public base images, made without a registry (none is reachable here):
#   localhost/sr-debian:bookworm  Debian 12 with apt, from mmdebstrap and this machine's own apt mirror
#   localhost/sr-node:24          that, plus Node 24 and its headers (npm package node-linux-<arch>) and npm
# The Dockerfile takes the base as a build argument, so users build from the public node image instead.
# Made once per machine and shared by every checkout's runs (their content does not depend on the checkout): the
# first run to need one makes it while the others wait on /tmp/sr-base.lock, then find it there.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ -z "${SR_BASE_LOCKED:-}" ]; then SR_BASE_LOCKED=1 exec flock /tmp/sr-base.lock bash "$0" "$@"; fi

if ! podman image exists localhost/sr-debian:bookworm; then
  # The mirror this machine's apt uses, read at run time (deb822 or one-line format).
  mirror=$( (grep -hsoE '^(URIs:|deb) +https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list || true) | head -n 1 | awk '{print $2}')
  [ -n "$mirror" ] || { echo "base: no Debian mirror found in apt's sources" >&2; exit 1; }
  echo "base: building localhost/sr-debian:bookworm from ${mirror}"
  mmdebstrap --quiet --variant=apt bookworm - "$mirror" | podman import - localhost/sr-debian:bookworm >/dev/null
fi

if ! podman image exists localhost/sr-node:24; then
  echo "base: building localhost/sr-node:24"
  ctx=$(mktemp -d)
  trap 'rm -rf "$ctx"' EXIT
  # This machine's architecture, in Node's names (x64, arm64), which the node-linux-* packages use.
  arch=$(node -p process.arch)
  npm install --prefix "$ctx/node" --no-save --no-audit --no-fund --loglevel=error "node-linux-${arch}@24" >/dev/null
  mv "$ctx/node/node_modules/node-linux-${arch}" "$ctx/node/node_modules/node-linux"
  cp -r "$(npm root -g)/npm" "$ctx/npm"
  cat >"$ctx/Containerfile" <<'CF'
FROM localhost/sr-debian:bookworm
COPY node/node_modules/node-linux/bin/node /usr/local/bin/node
COPY node/node_modules/node-linux/include /usr/local/include
COPY npm /usr/local/lib/node_modules/npm
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm && node --version && npm --version
CF
  podman build -q -t localhost/sr-node:24 "$ctx" >/dev/null
fi
