#!/usr/bin/env bash
# The kernel tier without root, as rootless containers run: tap runs as an unprivileged user (nobody) inside a user
# namespace of its own, which owns the network namespaces the tests make. Root on the host is used for one thing
# only, what newuidmap does for a rootless container: writing that namespace's uid and gid maps, so the tests have
# more than one UID (the proxy's, the app's). Run as root: `npm run test:kernel:rootless [files...]`. The suites
# that need real root are listed, with the reason, in test/kernel/needs-root.txt and are not run here.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
source scripts/path.sh

NOBODY=65534
# Inside: 0 is the unprivileged user; 1-65535, and the 1000000000s OpenShift gives pods (Istio's cni-custom-uid
# case), come from ranges no account uses (maps of other namespaces may overlap them: a map names nothing outside
# its own namespace).
MAP=$'0 65534 1\n1 1500000 65535\n1000000000 1600000 1000000'

if [ "${1:-}" = --inside ]; then
  shift
  # A /run of our own (the mount namespace is ours): ip netns add and iptables-legacy's lock write there.
  mount -t tmpfs -o mode=0755 tmpfs /run
  # tap keeps its run records in .tap of the checkout, which is the host root's and read-only to us.
  mount -t tmpfs tmpfs "$root/.tap"
  echo "test:kernel:rootless: uid $(id -u) in a user namespace of its own, uid $(awk '$1 == 0 { print $2 }' /proc/self/uid_map) outside"
  exec node_modules/.bin/tap --disable-coverage --jobs 2 "$@"
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "test:kernel:rootless: run it as root: it drops to uid $NOBODY itself, and root writes the user namespace's uid map" >&2
  echo "(what newuidmap does for rootless containers; an unprivileged caller with one UID cannot run the traffic tests)" >&2
  exit 2
fi

if [ "$#" -gt 0 ]; then
  files=("$@")
else
  mapfile -t skipped < <(sed -e 's/#.*//' -e 's/[[:space:]].*//' test/kernel/needs-root.txt | grep -v '^$')
  files=()
  while IFS= read -r file; do
    keep=1
    for skip in "${skipped[@]}"; do [[ "$file" == test/kernel/$skip* ]] && keep=0; done
    [ "$keep" -eq 0 ] || files+=("$file")
  done < <(find test/kernel -name '*.test.ts' | sort)
  echo "test:kernel:rootless: not run here, for want of real root (test/kernel/needs-root.txt):"
  grep -v '^#' test/kernel/needs-root.txt | sed 's/^/  /'
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/sr-rootless-XXXXXX")
chmod 0755 "$work"
trap 'rm -rf "$work"' EXIT
mkdir "$work/home"
chown "$NOBODY:$NOBODY" "$work/home"

# nobody must read the checkout. One inside a private directory (a clone in /root) is copied, built as it is.
readable_by_others() {
  local dir=$1
  while [ "$dir" != / ]; do
    [ $((8#$(stat -c %a "$dir") & 5)) -eq 5 ] || return 1
    dir=$(dirname "$dir")
  done
}
if ! readable_by_others "$root"; then
  mkdir "$work/tree"
  tar -C "$root" --exclude=./.git --exclude=./.tap -cf - . | tar -C "$work/tree" -xf -
  root="$work/tree"
fi
mkdir -p "$root/.tap"
mkfifo -m 0600 "$work/mapped"
chown "$NOBODY" "$work/mapped"

# The user namespace is made by nobody (so nobody owns it); it waits until root has written its maps, then makes
# the network and mount namespaces the tests run in, as the root of its user namespace.
# shellcheck disable=SC2016 # $1 and $@ are the inner bash's.
setpriv --reuid="$NOBODY" --regid="$NOBODY" --clear-groups --inh-caps=-all -- \
  env -u NODE_OPTIONS HOME="$work/home" TMPDIR="$work/home" \
  unshare --user -- bash -c 'read -r _ <"$1" && shift && exec unshare --net --mount -- "$@"' _ "$work/mapped" \
  bash -c 'cd "$1" && shift && exec bash scripts/kernel-rootless.sh --inside "$@"' _ "$root" "${files[@]}" &
pid=$!
own=$(readlink /proc/self/ns/user)
for _ in $(seq 400); do
  ns=$(readlink "/proc/$pid/ns/user" 2>/dev/null || true)
  [ -n "$ns" ] && [ "$ns" != "$own" ] && break
  sleep 0.05
done
# One write each: the kernel takes a map in a single write.
cat >"/proc/$pid/uid_map" <<<"$MAP"
cat >"/proc/$pid/gid_map" <<<"$MAP"
echo >"$work/mapped"
status=0
wait "$pid" || status=$?
exit "$status"
