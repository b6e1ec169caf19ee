#!/usr/bin/env bash
# Builds localhost/sr-squid:bookworm (or $IMAGE): Debian's squid in intercept mode, a proxy image that is not ours,
# from the local Debian base. Kept once built; its content depends only on Debian's squid and the config here, so
# every checkout's runs share it, and the first to need it makes it under base.sh's lock.
set -euo pipefail
image=${IMAGE:-localhost/sr-squid:bookworm}
cd "$(dirname "$0")/../.."
if [ -z "${SR_BASE_LOCKED:-}" ]; then SR_BASE_LOCKED=1 exec flock /tmp/sr-base.lock bash "$0" "$@"; fi
source scripts/image/podman-setup.sh
bash scripts/image/base.sh
if ! podman image exists "$image" || [ -n "${REBUILD:-}" ]; then
  podman build -q -t "$image" scripts/image/squid >/dev/null
fi
echo "squid image: $image, $(podman run --rm --entrypoint /usr/sbin/squid "$image" -v | head -n 1)"
