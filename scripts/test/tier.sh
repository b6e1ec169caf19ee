#!/usr/bin/env bash
# Runs test tiers with tap, each with its own config (test/<tier>/taprc.yaml), one after another; exits non-zero
# if any failed, after running them all. Usage: scripts/test/tier.sh TIER... [-- TAP-ARGS...]
#   unit    no root: started as root, it runs as nobody (a test that needs more fails), in a private mount
#           namespace where the checkout is seen at a path nobody may read, whatever its parent's mode
#   kernel  root: network namespaces
#   pods    root: podman (npm run test:pods sets it up)
#   cri     root: a private containerd (npm run test:cri sets it up)
# The unit and kernel tiers get a TMPDIR of their own, removed afterwards; what a test left there is named first.
# (The pod tiers keep the machine's: podman and buildah keep their own state there.)
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
root=$(pwd)

tiers=()
while [ $# -gt 0 ] && [ "$1" != -- ]; do
  tiers+=("$1")
  shift
done
[ "${1:-}" = -- ] && shift

# One id per run: the names a test gives podman, the kernel or the file system carry it, so two runs side by
# side (two clones, two CI jobs) never meet.
SR_RUN_ID=${SR_RUN_ID:-$$$(od -An -N2 -tx2 /dev/urandom | tr -d ' ')}
export SR_RUN_ID

run_tier() {
  local tier=$1 scratch status left
  shift
  if [ ! -f "test/$tier/taprc.yaml" ]; then
    echo "no such tier: $tier (test/$tier/taprc.yaml)" >&2
    return 2
  fi
  scratch=$(mktemp -d "${TMPDIR:-/tmp}/sr-tier-$tier-XXXXXX")
  chmod 755 "$scratch"
  mkdir "$scratch/tmp"
  # As /tmp: a test's process that dropped its UID may make its own files there.
  chmod 1777 "$scratch/tmp"
  if [ "$tier" = unit ] && [ "$(id -u)" = 0 ]; then
    # nobody reads the checkout through a bind mount at a path whose parents it may enter, writes tap's results
    # to a directory of its own mounted over .tap, and nothing else but its TMPDIR.
    mkdir -p "$scratch/tree" "$scratch/tap" .tap
    chown nobody:nogroup "$scratch/tmp" "$scratch/tap"
    # shellcheck disable=SC2016 # the inner shell expands its own arguments
    TAP_RCFILE="test/$tier/taprc.yaml" unshare --mount --propagation private -- \
      sh -c 'mount --bind "$1" "$2/tree" && mount --bind "$2/tap" "$2/tree/.tap" && cd "$2/tree" && shift 2 &&
        exec setpriv --reuid=nobody --regid=nogroup --clear-groups "$@"' \
      sh "$root" "$scratch" env HOME="$scratch/tmp" TMPDIR="$scratch/tmp" PATH="${PATH//$root/$scratch/tree}" \
      node_modules/.bin/tap "$@"
    status=$?
  elif [ "$tier" = unit ] || [ "$tier" = kernel ]; then
    TAP_RCFILE="test/$tier/taprc.yaml" TMPDIR="$scratch/tmp" node_modules/.bin/tap "$@"
    status=$?
  else
    TAP_RCFILE="test/$tier/taprc.yaml" node_modules/.bin/tap "$@"
    status=$?
  fi
  # (Node's own compile cache is not a test's.)
  left=$(find "$scratch/tmp" -mindepth 1 -maxdepth 1 ! -name 'v8-compile-cache-*' -printf '#   %f\n' | head -n 20)
  if [ -n "$left" ]; then
    echo "# $tier: left in its TMPDIR (a test that does not clean up):"
    echo "$left"
  fi
  rm -rf "$scratch"
  return "$status"
}

failed=0
for tier in "${tiers[@]}"; do
  run_tier "$tier" "$@" || failed=1
done
exit "$failed"
