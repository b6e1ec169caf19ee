#!/usr/bin/env bash
# Runs one pod tier as a run of its own, beside any other on the machine: image, chart or cni (test/pods/<part>,
# the pod tier's config) or cri (the CRI tier). Usage: scripts/test/pods.sh image|chart|cni|cri [TAP-ARGS...]
# The run builds the image under a tag of its own, localhost/sidecar-redirect:run-$SR_RUN_ID (SR_IMAGE, which the
# tests run), and every name its tests give podman or the kernel carries SR_RUN_ID (test/helpers/podman.ts: pods,
# containers, a network per test file on a /24 no other network has). At the end all of it goes, the tag included
# (the build cache stays, so the next build is fast). A run killed half-way leaves its id in /tmp/sr-runs with its
# pid and start time; the next run to start removes what a dead run left (scripts/test/pods-clean.sh).
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
part=${1:-}
shift || true
case $part in image | chart | cni | cri) ;; *)
  echo "usage: scripts/test/pods.sh image|chart|cni|cri [TAP-ARGS...]" >&2
  exit 2
  ;;
esac
source scripts/image/podman-setup.sh

SR_RUN_ID=${SR_RUN_ID:-$$$(od -An -N2 -tx2 /dev/urandom | tr -d ' ')}
export SR_RUN_ID
export SR_IMAGE=localhost/sidecar-redirect:run-$SR_RUN_ID
# Leftovers of runs that died first; then this run's entry (pid and start time: the process, for good), and its
# end, however it ends but SIGKILL (the next run's start removes that one's).
bash scripts/test/pods-clean.sh dead
mkdir -p /tmp/sr-runs
echo "$$ $(awk '{ sub(/^.*\) /, ""); print $20 }' /proc/$$/stat)" >"/tmp/sr-runs/$SR_RUN_ID"
trap 'bash scripts/test/pods-clean.sh run "$SR_RUN_ID"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

IMAGE=$SR_IMAGE bash scripts/image/build.sh || exit 1
case $part in
  image) bash scripts/test/tier.sh pods -- --jobs 1 test/pods/image "$@" ;;
  chart | cni) bash scripts/test/tier.sh pods -- "test/pods/$part" "$@" ;;
  cri) IMAGE=$SR_IMAGE bash scripts/cri/setup.sh && bash scripts/test/tier.sh cri -- "$@" ;;
esac
status=$?
exit "$status"
