#!/usr/bin/env bash
# The kernel tier without root, as rootless containers run: tap runs as an unprivileged user inside a user namespace
# of its own, which owns the network namespaces the tests make. The namespace maps more than one UID (the proxy's,
# the app's), written as a rootless container's are: started by a user with ranges in /etc/subuid and /etc/subgid,
# newuidmap and newgidmap (Debian's uidmap) map that user to 0 and its ranges above; started as root, it drops to
# nobody and root writes the same maps itself, the one thing root does. `npm run test:kernel:rootless [files...]`.
# The suites that need real root are listed, with the reason, in test/kernel/needs-root.txt and are not run here.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
source scripts/path.sh
# A user's PATH often lacks the sbin directories, where Debian puts iptables, nft and ip.
case ":$PATH:" in *:/usr/sbin:*) ;; *) PATH=$PATH:/usr/sbin:/sbin ;; esac

NOBODY=65534
# Inside: 0 is the unprivileged user; 1-65535, and the 1000000000s OpenShift gives pods (Istio's cni-custom-uid
# case), come from IDs no account uses (as root: fixed ranges; maps of other namespaces may overlap them, a map names
# nothing outside its own namespace; as a user: its subordinate ranges). One "inside outside count" a line.
WANTED=$'1 65535\n1000000000 1000000'
ROOT_MAP=$'0 65534 1\n1 1500000 65535\n1000000000 1600000 1000000'

# The map for this user: 0 is OWN (its UID, or its GID), then WANTED taken in order from its ranges in FILE
# (/etc/subuid or /etc/subgid: "user-name-or-UID:start:count" lines), as newuidmap and newgidmap check them.
subordinate_map() {
  local file=$1 own=$2 name id owner start count inside need take have=0
  name=$(id -un)
  id=$(id -u)
  local -a starts=() counts=()
  while IFS=: read -r owner start count; do
    if [ "$owner" = "$name" ] || [ "$owner" = "$id" ]; then
      starts+=("$start")
      counts+=("$count")
      have=$((have + count))
    fi
  done <"$file"
  echo "0 $own 1"
  local r=0
  while read -r inside need; do
    while [ "$need" -gt 0 ]; do
      if [ "$r" -ge "${#starts[@]}" ]; then
        echo "test:kernel:rootless: $name has $have subordinate IDs in $file; the tests need 1065535 (1-65535 and 1000000000-1000999999 inside)." >&2
        echo "As root, give it a range no account or other range uses, e.g.: usermod --add-subuids 3000000-4065534 --add-subgids 3000000-4065534 $name" >&2
        return 1
      fi
      take=$((need < counts[r] ? need : counts[r]))
      echo "$inside ${starts[r]} $take"
      inside=$((inside + take))
      need=$((need - take))
      starts[r]=$((starts[r] + take))
      counts[r]=$((counts[r] - take))
      [ "${counts[r]}" -gt 0 ] || r=$((r + 1))
    done
  done <<<"$WANTED"
}

if [ "${1:-}" = --inside ]; then
  shift
  # A /run of our own (the mount namespace is ours): ip netns add and iptables-legacy's lock write there.
  mount -t tmpfs -o mode=0755 tmpfs /run
  # tap keeps its run records in .tap of the checkout, which is the host root's and read-only to us.
  mount -t tmpfs tmpfs "$root/.tap"
  echo "test:kernel:rootless: uid $(id -u) in a user namespace of its own, uid $(awk '$1 == 0 { print $2 }' /proc/self/uid_map) outside"
  exec node_modules/.bin/tap --disable-coverage --jobs 2 "$@"
fi

if [ "$(id -u)" -eq 0 ]; then
  uid_map=$ROOT_MAP
  gid_map=$ROOT_MAP
  as=(setpriv --reuid="$NOBODY" --regid="$NOBODY" --clear-groups --inh-caps=-all --)
else
  for tool in newuidmap newgidmap; do
    command -v "$tool" >/dev/null || {
      echo "test:kernel:rootless: $tool is not installed (Debian: apt-get install -y uidmap; scripts/setup.sh installs it)" >&2
      exit 2
    }
  done
  uid_map=$(subordinate_map /etc/subuid "$(id -u)") || exit 2
  gid_map=$(subordinate_map /etc/subgid "$(id -g)") || exit 2
  as=()
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

# Every UID of the namespace must read the checkout. One inside a private directory (a clone in /root) is copied,
# built as it is.
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
if [ "$(id -u)" -eq 0 ]; then chown "$NOBODY:$NOBODY" "$work/home" "$work/mapped"; fi

# The user namespace is made by the unprivileged user (so it owns it); it waits until its maps are written, then
# makes the network and mount namespaces the tests run in, as the root of its user namespace.
# shellcheck disable=SC2016 # $1 and $@ are the inner bash's.
"${as[@]}" env -u NODE_OPTIONS HOME="$work/home" TMPDIR="$work/home" \
  unshare --user -- bash -c 'read -r _ <"$1" && shift && exec unshare --net --mount -- "$@"' _ "$work/mapped" \
  bash -c 'cd "$1" && shift && exec bash scripts/kernel-rootless.sh --inside "$@"' _ "$root" "${files[@]}" &
pid=$!
own=$(readlink /proc/self/ns/user)
for _ in $(seq 400); do
  ns=$(readlink "/proc/$pid/ns/user" 2>/dev/null || true)
  [ -n "$ns" ] && [ "$ns" != "$own" ] && break
  sleep 0.05
done
if [ "$(id -u)" -eq 0 ]; then
  # One write each: the kernel takes a map in a single write.
  cat >"/proc/$pid/uid_map" <<<"$uid_map"
  cat >"/proc/$pid/gid_map" <<<"$gid_map"
else
  # The same lines, as the tools' arguments: inside outside count, inside outside count...
  read -r -a uid_args <<<"${uid_map//$'\n'/ }"
  read -r -a gid_args <<<"${gid_map//$'\n'/ }"
  if ! newuidmap "$pid" "${uid_args[@]}" || ! newgidmap "$pid" "${gid_args[@]}"; then
    kill "$pid"
    exit 2
  fi
fi
echo >"$work/mapped"
status=0
wait "$pid" || status=$?
exit "$status"
