#!/usr/bin/env bash
# Builds localhost/sidecar-redirect:dev (or $IMAGE: a test run's own tag, scripts/test/pods.sh) from the Dockerfile
# on this machine: podman set up, local base images made, the machine's CA bundle handed to npm as a build secret
# (the registry may be behind a TLS proxy). The base goes in by digest, as the Dockerfile's default does; PLATFORM
# (e.g. linux/arm64) picks another architecture, given a base for it (the local one is made for this machine's).
# Builds run side by side, sharing podman's layer cache; the shared lock only keeps a run's end, which removes its
# tag and the untagged layers under it (exclusive), from pulling a cached layer out from under a build.
set -euo pipefail
image=${IMAGE:-localhost/sidecar-redirect:dev}
cd "$(dirname "$0")/../.."
source scripts/image/podman-setup.sh
bash scripts/image/base.sh
ca=${NODE_EXTRA_CA_CERTS:-/etc/ssl/certs/ca-certificates.crt}
secret=()
[ -s "$ca" ] && secret=(--secret "id=npm-ca,src=$ca")
platform=()
[ -n "${PLATFORM:-}" ] && platform=(--platform "$PLATFORM")
source=()
# Only a remote others can reach is a source; a local clone's path is not, and the Dockerfile's default stays.
url=$(git remote get-url origin 2>/dev/null || true)
[[ $url == https://* ]] && source=(--build-arg "SOURCE=$url")
flock -s /tmp/sr-image.lock podman build -q "${secret[@]}" "${platform[@]}" "${source[@]}" \
  --build-arg BASE="localhost/sr-node@$(podman image inspect localhost/sr-node:24 --format '{{.Digest}}')" \
  --build-arg VERSION="$(node -p 'require("./package.json").version')" \
  --build-arg REVISION="$(git rev-parse HEAD 2>/dev/null || echo unknown)" \
  -t "$image" . >/dev/null
# Each build leaves its build stage's last image untagged (about 1.4 GB, most of it layers the next build takes from
# the cache). All but the newest go: removing one also removes its untagged parents that no other image has, so the
# cache of steps that did not change stays. Exclusive, so no build beside this one loses a stage it is copying from.
flock -x /tmp/sr-image.lock bash -c '
  podman images --filter dangling=true --filter label=io.sidecar-redirect.stage=build --sort created --format "{{.ID}}" |
    tail -n +2 | xargs -r podman rmi >/dev/null 2>&1 || true'
echo "image: $image, $(podman image inspect "$image" --format '{{.Size}}' | awk '{printf "%.1f MB", $1/1e6}') uncompressed"
