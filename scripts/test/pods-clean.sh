#!/usr/bin/env bash
# What the pod runs (scripts/test/pods.sh) leave behind, removed. Usage:
#   scripts/test/pods-clean.sh run ID   removes what run ID made: its pods and containers (their names carry
#                                       "-ID-"), its podman networks (sr-test-ID-*) and network namespaces, its image
#                                       tag (localhost/sidecar-redirect:run-ID), its pod spec dirs (/tmp/sr-*-ID-*),
#                                       and its entry in /tmp/sr-runs
#   scripts/test/pods-clean.sh dead     does that for every run in /tmp/sr-runs whose process is gone (its pid names
#                                       no process, or one started at another time): a run killed half-way
# Safe to repeat, and two at once; nothing of another run matches.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
source scripts/image/podman-setup.sh
runs=/tmp/sr-runs

clean_run() {
  local id=$1 ns
  [ -n "$id" ] || return 0
  podman pod ls --filter "name=-$id-" --format '{{.ID}}' | xargs -r podman pod rm -f >/dev/null 2>&1
  podman ps -a --filter "name=-$id-" --format '{{.ID}}' | xargs -r podman rm -f >/dev/null 2>&1
  podman network ls --filter "name=^sr-test-$id-" --format '{{.Name}}' | xargs -r podman network rm -f >/dev/null 2>&1
  for ns in $(ip netns list | awk '{print $1}' | grep -e "-$id-"); do ip netns delete "$ns"; done
  if podman image exists "localhost/sidecar-redirect:run-$id"; then
    # Exclusive: removing the tag also removes its image's untagged parents, which a build running now may be
    # about to take from the cache (scripts/image/build.sh builds under the shared lock).
    flock -x /tmp/sr-image.lock podman rmi "localhost/sidecar-redirect:run-$id" >/dev/null || true
  fi
  # Pod specs its test processes wrote (test/helpers/podman.ts podFile), left where one was killed before its exit.
  rm -rf "/tmp/sr-"*"-$id-"*
  rm -f "$runs/$id"
}

case ${1:-} in
  run)
    [ -n "${2:-}" ] || { echo "usage: scripts/test/pods-clean.sh run ID" >&2; exit 2; }
    clean_run "$2"
    ;;
  dead)
    for file in "$runs"/*; do
      [ -f "$file" ] || continue
      read -r pid start <"$file" || true
      # A process's start time (ticks since boot, field 22 of its stat): with its pid, it names one process for good.
      if [ -z "${pid:-}" ] || [ "$(awk '{ sub(/^.*\) /, ""); print $20 }' "/proc/$pid/stat" 2>/dev/null)" != "${start:-}" ]; then
        echo "# removing what run ${file##*/} left (its process is gone)"
        clean_run "${file##*/}"
      fi
    done
    ;;
  *)
    echo "usage: scripts/test/pods-clean.sh run ID | dead" >&2
    exit 2
    ;;
esac
