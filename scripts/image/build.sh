#!/usr/bin/env bash
# Builds localhost/sidecar-redirect:dev from the Dockerfile on this machine: podman set up, local base images
# made, the machine's CA bundle handed to npm as a build secret (the registry may be behind a TLS proxy).
set -euo pipefail
cd "$(dirname "$0")/../.."
bash scripts/image/podman-setup.sh
bash scripts/image/base.sh
ca=${NODE_EXTRA_CA_CERTS:-/etc/ssl/certs/ca-certificates.crt}
secret=()
[ -s "$ca" ] && secret=(--secret "id=npm-ca,src=$ca")
podman build -q "${secret[@]}" --build-arg BASE=localhost/sr-node:24 \
  --build-arg VERSION="$(node -p 'require("./package.json").version')" \
  --build-arg SOURCE="$(git remote get-url origin 2>/dev/null || echo local)" \
  -t localhost/sidecar-redirect:dev . >/dev/null
echo "image: localhost/sidecar-redirect:dev, $(podman image inspect localhost/sidecar-redirect:dev --format '{{.Size}}' | awk '{printf "%.1f MB", $1/1e6}') uncompressed"
