#!/usr/bin/env bash
# What the CNI tests need beyond scripts/setup.sh: Debian's real CNI plugins (loopback, bridge, host-local) and a
# small runtime built from libcni's own Go source, offline (Debian ships the source; no module proxy is used).
# Prints nothing when all is in place. The harness goes to .tools/cni-harness/harness.
set -euo pipefail
cd "$(dirname "$0")/../.."

missing=()
for p in golang-go golang-github-appc-cni-dev containernetworking-plugins; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "cni setup: installing ${missing[*]}"
  bash scripts/apt-install.sh "${missing[@]}"
fi

out=.tools/cni-harness
if [ ! -x "$out/harness" ] || [ scripts/cni/harness/main.go -nt "$out/harness" ] || [ scripts/cni/harness/go.mod -nt "$out/harness" ]; then
  mkdir -p "$out"
  # The module is copied out so the build writes its go.sum there, not into the checkout.
  cp scripts/cni/harness/main.go scripts/cni/harness/go.mod "$out/"
  (cd "$out" && GOFLAGS=-mod=mod GOPROXY=off GOCACHE="$PWD/go-cache" go build -o harness .)
fi
