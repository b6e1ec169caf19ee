#!/usr/bin/env bash
# What the CRI tests need beyond scripts/setup.sh: Debian's containerd (1.6, with its CRI plugin), runc and CNI
# plugins, and the images as OCI archives in .tools/cri/, since the tests' private containerd pulls nothing: the
# image this checkout built, the sandbox (pause) image (Debian's static catatonit in pause mode, as podman's own
# pause image is) and Debian's squid. Prints nothing when all is in place but the image's size line.
set -euo pipefail
cd "$(dirname "$0")/../.."

missing=()
for p in containerd runc containernetworking-plugins; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "cri setup: installing ${missing[*]}"
  bash scripts/apt-install.sh "${missing[@]}"
fi
# Debian's package enables a system containerd; on a machine with systemd it would now own /run/containerd. The
# tests never talk to it, and start their own.

out=.tools/cri
mkdir -p "$out"
source scripts/image/podman-setup.sh
# The image under test ($IMAGE: a run's own tag, scripts/test/pods.sh builds it first; else built here as :dev).
image=${IMAGE:-localhost/sidecar-redirect:dev}
podman image exists "$image" || IMAGE=$image bash scripts/image/build.sh
pause() {
  local ctx
  ctx=$(mktemp -d)
  trap 'rm -rf "$ctx"' RETURN
  cp /usr/bin/catatonit "$ctx/catatonit"
  printf 'FROM scratch\nCOPY catatonit /catatonit\nENTRYPOINT ["/catatonit", "-P"]\n' >"$ctx/Containerfile"
  podman build -q -t localhost/sr-cri-pause:1 "$ctx" >/dev/null
}
# Shared by every checkout, like the base images: made under their lock.
export -f pause
flock /tmp/sr-base.lock bash -c pause
# The injection tests' proxy image that is not ours: Debian's squid.
IMAGE='' bash scripts/image/squid.sh >/dev/null
# Written beside, then renamed: a run reading the archives never sees half of one. Each goes in under the name the
# tests give it in their private containerd, whatever podman's tag (ours is the run's own).
for pair in "$image=image=localhost/sidecar-redirect:dev" localhost/sr-cri-pause:1=pause=localhost/sr-cri-pause:1 \
  localhost/sr-squid:bookworm=squid=localhost/sr-squid:bookworm; do
  IFS='=' read -r from file name <<<"$pair"
  rm -f "$out/$file.$$.partial"
  podman push -q "$from" "oci-archive:$out/$file.$$.partial:$name"
  mv "$out/$file.$$.partial" "$out/$file.tar"
done
