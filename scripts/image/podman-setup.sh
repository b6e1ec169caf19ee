#!/usr/bin/env bash
# Podman on a machine like CI's: rootful, no systemd, hybrid cgroups, root without CAP_SYS_RESOURCE. Installs it
# and writes the settings it needs there (facts: the team's containers notes) into a private containers.conf,
# .tools/containers.conf, exported as CONTAINERS_CONF: podman then reads only that file, and the machine's own
# /etc/containers/containers.conf is neither read nor written. Sourced by the scripts that run podman (the tests
# point podman at the same file: test/helpers/podman.ts). Safe to run again.
set -euo pipefail

missing=()
for p in podman runc netavark aardvark-dns catatonit mmdebstrap; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "podman-setup: installing ${missing[*]}"
  bash "$(dirname "${BASH_SOURCE[0]}")/../apt-install.sh" "${missing[@]}"
fi

conf="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/.tools/containers.conf"
if ! grep -q 'sidecar-redirect' "$conf" 2>/dev/null; then
  # crun refuses hybrid cgroups; there is no systemd; podman's default ulimits exceed the hard limits here.
  nofile=$(ulimit -Hn)
  nproc=$(ulimit -Hu); [ "$nproc" = unlimited ] || [ "$nproc" -gt 32768 ] && nproc=32768
  mkdir -p "$(dirname "$conf")"
  cat >"$conf" <<CONF
# Written by sidecar-redirect's scripts/image/podman-setup.sh
[containers]
default_ulimits = ["nofile=${nofile}:${nofile}", "nproc=${nproc}:${nproc}"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"

[network]
network_backend = "netavark"
CONF
fi
export CONTAINERS_CONF="$conf"
