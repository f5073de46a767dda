#!/usr/bin/env bash
# Builds what TestAppArmorVM boots: Debian's cloud kernel (AppArmor built in
# and on by default) and an initramfs holding busybox, apparmor_parser,
# containerd, ctr, containerd-shim-runc-v2, runc, runsc, Palisade's binaries,
# the shipped AppArmor profile and config, the VM's test handlers and a
# busybox rootfs for containers. Nothing is installed on the host.
#
#   build.sh CACHE_DIR
#
# TOOLS_BIN (default <repo>/_tools/bin) and PALISADE_BIN (default <repo>/bin)
# say where the binaries are. Both artefacts are cached in CACHE_DIR, keyed by
# their inputs: the kernel by its package version (resolved from the
# linux-image-cloud-amd64 metapackage, so a security update that moves it is
# picked up and an old version is never asked for), the initramfs by a hash of
# every file that goes into it. The last two lines on stdout are
# "kernel=PATH" and "initramfs=PATH"; progress goes to stderr.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${1:?usage: build.sh CACHE_DIR}
TOOLS_BIN=${TOOLS_BIN:-$repo/_tools/bin}
PALISADE_BIN=${PALISADE_BIN:-$repo/bin}
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)

log() { printf 'apparmor-vm: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

for c in apt-cache apt-get dpkg-deb busybox apparmor_parser ldd sha256sum gzip; do
	command -v "$c" >/dev/null || die "$c not found (integration/tools/install.sh qemu installs what is missing)"
done

# The kernel: the version linux-image-cloud-amd64 depends on today.
kpkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
[ -n "$kpkg" ] || die "cannot resolve linux-image-cloud-amd64 (apt-get update?)"
kver=$(apt-cache policy "$kpkg" | awk '/Candidate:/ {print $2}')
kdir=$cache/kernel/${kpkg}_$kver
if [ ! -s "$kdir/vmlinuz" ]; then
	log "downloading $kpkg $kver"
	tmp=$(mktemp -d "$cache/kernel-dl.XXXXXX")
	# apt's sandbox user cannot write to a root-owned cache; that is only a warning.
	(cd "$tmp" && apt-get download -q "$kpkg=$kver" >&2)
	dpkg-deb -x "$tmp"/"$kpkg"_*.deb "$tmp/x"
	mkdir -p "$kdir"
	cp "$tmp"/x/boot/vmlinuz-* "$kdir/vmlinuz.tmp"
	cp "$tmp"/x/boot/config-* "$kdir/config"
	mv "$kdir/vmlinuz.tmp" "$kdir/vmlinuz"
	rm -rf "$tmp"
	# Kernels the metapackage no longer names are of no use any more.
	find "$cache/kernel" -mindepth 1 -maxdepth 1 ! -path "$kdir" -exec rm -rf {} +
fi
grep -q '^CONFIG_SECURITY_APPARMOR=y' "$kdir/config" || die "$kpkg has no built-in AppArmor"

# Every file that goes into the initramfs, as "source destination mode".
busybox=$(command -v busybox)
parser=$(command -v apparmor_parser)
[ -x "$TOOLS_BIN/runsc" ] || die "$TOOLS_BIN/runsc missing (make tools)"
# ldd succeeds only on a dynamic executable; runsc re-executes itself in an empty chroot.
! ldd "$TOOLS_BIN/runsc" >/dev/null 2>&1 || die "$TOOLS_BIN/runsc is dynamic: build it with CGO_ENABLED=0"
for t in containerd ctr containerd-shim-runc-v2 runc; do
	[ -x "$TOOLS_BIN/$t" ] || die "$TOOLS_BIN/$t missing (make tools)"
done
for t in containerd-shim-palisade-v2 palisade-trampoline palisadectl; do
	[ -x "$PALISADE_BIN/$t" ] || die "$PALISADE_BIN/$t missing (make build)"
done
manifest=$(mktemp)
trap 'rm -f "$manifest"' EXIT
add() { printf '%s %s %s\n' "$1" "$2" "$3" >>"$manifest"; }
add "$busybox" /bin/busybox 0755
add "$here/init.sh" /init 0755
add "$here/checks.sh" /checks.sh 0644
add "$parser" /sbin/apparmor_parser 0755
for t in containerd ctr containerd-shim-runc-v2 runc runsc; do
	add "$TOOLS_BIN/$t" "/usr/local/bin/$t" 0755
done
for t in containerd-shim-palisade-v2 palisade-trampoline palisadectl; do
	add "$PALISADE_BIN/$t" "/usr/local/bin/$t" 0755
done
# containerd, ctr, containerd-shim-runc-v2, runc (cgo, libseccomp) and
# apparmor_parser are dynamic (and Palisade's binaries when built with cgo):
# their loader and libraries come from the host, which is the same Debian
# release as the kernel. runsc must be static (see install.sh).
for b in "$parser" "$TOOLS_BIN"/{containerd,ctr,containerd-shim-runc-v2,runc} "$PALISADE_BIN"/{containerd-shim-palisade-v2,palisade-trampoline,palisadectl}; do
	# ldd fails on a static executable: it needs nothing.
	for lib in $(ldd "$b" 2>/dev/null | awk '/=> \// {print $3} /^\t\/lib/ {print $1}'); do
		real=$(readlink -f "$lib")
		add "$real" "$lib" 0755
	done
done
# apparmor_parser's includes (abi/, tunables/, abstractions/), not the host's profiles.
while read -r f; do
	add "$f" "$f" 0644
done < <(find /etc/apparmor.d/abi /etc/apparmor.d/tunables /etc/apparmor.d/abstractions -type f | sort)
# parser.conf pins the feature ABI the parser compiles for (policy-features).
for f in /etc/apparmor/parser.conf /usr/share/apparmor-features/features; do
	[ -f "$f" ] && add "$f" "$f" 0644
done
# Palisade as `make install` lays it out, and the VM's test handlers.
add "$repo/config.toml" /etc/palisade/config.toml 0644
add "$repo/sandbox/apparmor/profiles/palisade-runsc" /etc/apparmor.d/palisade-runsc 0644
for f in "$here"/*.toml; do
	add "$f" "/etc/palisade/$(basename "$f")" 0644
done
sort -u -o "$manifest" "$manifest"

key=$( (
	echo "$kpkg $kver"
	while read -r src dst mode; do echo "$dst $mode $(sha256sum <"$src")"; done <"$manifest"
	sha256sum <"$0"
) | sha256sum | cut -c1-16)
initrd=$cache/initramfs-$key.cpio.gz
if [ ! -s "$initrd" ]; then
	log "building $initrd"
	root=$(mktemp -d "$cache/root.XXXXXX")
	# Directories are created 0755; mktemp made root itself 0700.
	chmod 0755 "$root"
	while read -r src dst mode; do
		install -D -m "$mode" "$src" "$root$dst"
	done <"$manifest"
	for d in proc sys dev run tmp var/lib newroot etc/palisade; do
		mkdir -p "$root/$d"
	done
	for a in $("$busybox" --list); do
		[ -e "$root/bin/$a" ] || ln -s busybox "$root/bin/$a"
	done
	ln -s ../bin/busybox "$root/sbin/switch_root"
	printf 'root:x:0:0:root:/root:/bin/sh\n' >"$root/etc/passwd"
	printf 'root:x:0:\n' >"$root/etc/group"

	# The test profiles: the shipped profile, renamed, plus exactly one rule.
	# Whatever they deny beyond the shipped profile is due to that rule, and
	# the shipped profile itself runs the same containers without it.
	shipped=$repo/sandbox/apparmor/profiles/palisade-runsc
	tail -n 1 "$shipped" | grep -qx '}' || die "$shipped does not end with its profile's }"
	derive() {
		local name=$1 rule=$2
		sed "s/palisade-runsc/$name/g; \$d" "$shipped" >"$root/etc/apparmor.d/$name"
		printf '\n  # The rule this test profile adds to the shipped one.\n  %s\n}\n' "$rule" >>"$root/etc/apparmor.d/$name"
	}
	# runsc's sandbox and gofer may not open such files: reading one through a
	# bind mount fails inside the container.
	derive palisade-vm-narrow 'audit deny /{,**/}palisade-denied-* r,'
	# containerd-shim-runc-v2, runc and the container may not create or write such files.
	derive palisade-vm-runc 'audit deny /{,**/}palisade-denied-* w,'

	# A busybox rootfs template; the guest copies it for every container.
	rf=$root/rootfs
	mkdir -p "$rf"/{bin,proc,sys,dev,tmp,etc,root,run,data}
	chmod 1777 "$rf/tmp"
	cp "$busybox" "$rf/bin/busybox"
	for a in $("$busybox" --list); do
		[ "$a" = busybox ] || ln -s busybox "$rf/bin/$a"
	done
	printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$rf/etc/passwd"
	printf 'root:x:0:\nnogroup:x:65534:\n' >"$rf/etc/group"

	tmp=$initrd.tmp
	(cd "$root" && find . -mindepth 1 | busybox cpio -o -H newc -R 0:0 2>/dev/null | gzip -1 >"$tmp")
	mv "$tmp" "$initrd"
	rm -rf "$root"
	# Older initramfs builds are of no use any more.
	find "$cache" -maxdepth 1 -name 'initramfs-*.cpio.gz' ! -path "$initrd" -delete
fi
log "kernel $kpkg $kver, initramfs $(du -h "$initrd" | cut -f1)"
echo "kernel=$kdir/vmlinuz"
echo "initramfs=$initrd"
