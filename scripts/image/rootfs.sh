#!/usr/bin/env bash
# Gathers the init image's whole root filesystem into $1, run inside the Dockerfile's build stage: Node, the built
# CLI and its two native modules (and the CNI plugin in dist/cni), iptables (nf_tables and legacy, every extension), nft,
# ipset, ip (TPROXY's policy routing) and tc (the whole-path check), setpriv, env and nsenter (the CNI node agent enters pods' netns with it), and exactly
# the shared libraries those load (from ldd). No shell, no package manager: small, and nothing to exec but these.
set -euo pipefail
R=$1
# The multiarch library directory (x86_64-linux-gnu, aarch64-linux-gnu...): wherever this stage's libc lives.
LIBDIR=$(dirname "$(readlink -f "$(ldd /usr/local/bin/node | awk '/libc\.so/ {print $3}')")")
case $LIBDIR in /lib/*) LIBDIR="/usr$LIBDIR" ;; esac
# koffi's prebuilt binary for this architecture, in Node's names (linux-x64, linux_x64; linux-arm64...).
ARCH=$(node -p process.arch)

# Debian 12 is usr-merged: /lib, /bin and /sbin are links into /usr, in the image as on the host.
mkdir -p "$R"/usr/{bin,sbin,lib64,local/bin} "$R$LIBDIR" "$R"/{etc,app,tmp,run,proc,sys,dev}
for d in bin sbin lib lib64; do ln -s "usr/$d" "$R/$d"; done
chmod 1777 "$R/tmp"
# iptables-legacy opens /run/xtables.lock (O_CREAT) and flocks it. Under a read-only root filesystem it cannot create
# it, but it can open and lock one that exists; our own lock serialises our runs per network namespace anyway.
: >"$R/run/xtables.lock"

# canonical PATH: where a file lives in a usr-merged tree
canonical() { local p; p=$(readlink -f "$1"); case $p in /lib/* | /bin/* | /sbin/* | /lib64/*) p="/usr$p" ;; esac; echo "$p"; }

# copy a shared object under the name it is asked for (its soname), plus what it needs in turn
add_libs() {
  ldd "$1" 2>/dev/null | grep -oE '(/[^ ]+)' | while read -r lib; do
    local name dest
    name=$(basename "$lib")
    case $lib in */ld-linux*) dest="$R/usr/lib64/$name" ;; *) dest="$R$LIBDIR/$name" ;; esac
    [ -e "$dest" ] || cp "$(readlink -f "$lib")" "$dest"
  done
}

add_binary() {
  local dest
  dest="$R$(canonical "$1")"
  mkdir -p "$(dirname "$dest")"
  [ -e "$dest" ] || cp "$(readlink -f "$1")" "$dest"
  add_libs "$1"
}

add_binary /usr/local/bin/node
add_binary /usr/bin/setpriv
# The CNI node agent runs our CLI in a pod's network namespace through it (nsenter --net=...).
add_binary /usr/bin/nsenter
add_binary /usr/bin/env
# TPROXY's policy routing (ip rule, ip route); the whole-path check reads the devices' XDP programs (ip) and tc
# filters (tc).
add_binary /usr/sbin/ip
add_binary /usr/sbin/tc
for multi in xtables-nft-multi xtables-legacy-multi; do add_binary "/usr/sbin/$multi"; done
# The native nftables backend and the explicit method's ipsets with the iptables backends.
add_binary /usr/sbin/nft
add_binary /usr/sbin/ipset
# iptables, ip6tables and their -save/-restore, both variants: the links iptables' package makes
for link in $(dpkg -L iptables | grep -E '^/usr/sbin/(ip6?tables|xtables)'); do
  [ -L "$link" ] || continue
  target=$(readlink "$link")
  [ -e "$R$link" ] || ln -s "$(basename "$target")" "$R$link"
done
# The Debian alternatives' default names point at the nf_tables variant, as on Debian itself.
for t in iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore; do
  ln -sf "xtables-nft-multi" "$R/usr/sbin/$t"
done
mkdir -p "$R$LIBDIR/xtables"
for ext in "$LIBDIR"/xtables/*.so; do
  cp "$ext" "$R$LIBDIR/xtables/"
  add_libs "$ext"
done

# The app: the bundle (without source maps) and the two native modules it loads at run time.
cp -r dist entrypoint package.json "$R/app/"
rm -f "$R"/app/dist/*.map
mkdir -p "$R/app/node_modules/@koromix"
cp -r node_modules/koffi "$R/app/node_modules/"
cp -r "node_modules/@koromix/koffi-linux-${ARCH}" "$R/app/node_modules/@koromix/"
rm -rf "$R/app/node_modules/@koromix/koffi-linux-${ARCH}/musl_${ARCH}" "$R/app/node_modules/koffi/doc"
cp -r node_modules/posix "$R/app/node_modules/"
rm -rf "$R/app/node_modules/posix/src" "$R/app/node_modules/posix/build/Release/obj.target"
for native in "$R/app/node_modules/@koromix/koffi-linux-${ARCH}/linux_${ARCH}"/*.node "$R"/app/node_modules/posix/build/Release/*.node; do
  add_libs "$native"
done

# Users the agent can name; the proxy's UID 1337 has an entry so its groups come from here.
cat >"$R/etc/passwd" <<'P'
root:x:0:0:root:/root:/usr/sbin/nologin
sidecar-proxy:x:1337:1337:sidecar proxy:/nonexistent:/usr/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
P
cat >"$R/etc/group" <<'G'
root:x:0:
sidecar-proxy:x:1337:
nogroup:x:65534:
G
printf 'passwd: files\ngroup: files\nhosts: files\n' >"$R/etc/nsswitch.conf"
[ -e /etc/protocols ] && cp /etc/protocols "$R/etc/protocols"
echo "rootfs: $(du -sh "$R" | cut -f1) in $(find "$R" -type f | wc -l) files"
