#!/usr/bin/env bash
# The chart tests' stand-in for `helm template` (no helm binary can be had here): Go's text/template and sprig
# from Debian's packages, built offline in GOPATH mode into .tools/helm-render.
set -euo pipefail
cd "$(dirname "$0")/../.."
missing=()
for p in golang-go golang-github-masterminds-sprig-dev golang-github-ghodss-yaml-dev; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "chart-setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
mkdir -p .tools
if [ ! -x .tools/helm-render ] || [ test/chart/renderer/main.go -nt .tools/helm-render ]; then
  GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE="${GOCACHE:-/tmp/sr-go-cache}" go build -o .tools/helm-render test/chart/renderer/main.go
fi
