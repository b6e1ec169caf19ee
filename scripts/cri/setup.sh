#!/usr/bin/env bash
# What the CRI tests need beyond scripts/setup.sh: Debian's containerd (1.6, with its CRI plugin), runc and CNI
# plugins, and the images as OCI archives in .tools/cri/, since the tests' private containerd pulls nothing. The
# image is built and saved under the podman lock that every worktree's podman use shares, so the archive holds
# the image this checkout built; the sandbox (pause) image is Debian's static catatonit in pause mode, as podman's
# own pause image is. Prints nothing when all is in place but the image's size line.
set -euo pipefail
cd "$(dirname "$0")/../.."

missing=()
for p in containerd runc containernetworking-plugins; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "cri setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian's package enables a system containerd; on a machine with systemd it would now own /run/containerd. The
# tests never talk to it, and start their own.

out=.tools/cri
mkdir -p "$out"
save_images() {
  source scripts/image/podman-setup.sh
  bash scripts/image/build.sh
  local ctx
  ctx=$(mktemp -d)
  trap 'rm -rf "$ctx"' RETURN
  cp /usr/bin/catatonit "$ctx/catatonit"
  printf 'FROM scratch\nCOPY catatonit /catatonit\nENTRYPOINT ["/catatonit", "-P"]\n' >"$ctx/Containerfile"
  podman build -q -t localhost/sr-cri-pause:1 "$ctx" >/dev/null
  # Written beside, then renamed: a run reading the archives never sees half of one.
  # The injection tests' proxy image that is not ours: Debian's squid.
  bash scripts/image/squid.sh >/dev/null
  for pair in localhost/sidecar-redirect:dev=image localhost/sr-cri-pause:1=pause localhost/sr-squid:bookworm=squid; do
    rm -f "$out/${pair#*=}.partial"
    podman save -q --format oci-archive -o "$out/${pair#*=}.partial" "${pair%=*}"
    mv "$out/${pair#*=}.partial" "$out/${pair#*=}.tar"
  done
}
export -f save_images
export out
flock /tmp/sr-podman.lock bash -c save_images
