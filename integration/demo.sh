#!/usr/bin/env bash
# The README's first command (make demo): starts a private containerd, runs a
# busybox container under Palisade with the default handler of config.toml, and
# prints what the container saw: the enforced Seccomp and capability lines of
# /proc/self/status, the sentry refusing a syscall outside the floor, the
# decision record Palisade wrote (palisadectl inspect), and gVisor's kernel
# banner on a handler without a floor. Everything lives under a temporary
# directory and is removed on exit. README.md shows this output, and
# integration/readme_test.go checks that it still matches.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
tools=${PALISADE_TOOLS_BIN:-$repo/_tools/bin}
bin=${PALISADE_BIN:-$repo/bin}
[ "$(id -u)" = 0 ] || { echo "demo: must run as root (containerd, runsc)" >&2; exit 1; }
for t in containerd ctr runsc; do
	[ -x "$tools/$t" ] || { echo "demo: $tools/$t missing: run make tools" >&2; exit 1; }
done

work=$(mktemp -d /tmp/palisade-demo.XXXXXX)
sock=$work/containerd.sock
export PATH=$bin:$tools:$PATH
# ctr asks containerd for its deprecation warnings on every call and logs
# each one; on a cgroup v1 host that is "DEPRECATION: The support for cgroup
# v1 is deprecated ..." before every command's output. This is ctr's own
# switch for it (ctr deprecations list still shows them); it silences
# nothing else.
export CONTAINERD_SUPPRESS_DEPRECATION_WARNINGS=1
cleanup() {
	set +e
	"$tools/ctr" --address "$sock" -n demo task kill -s SIGKILL demo >/dev/null 2>&1
	"$tools/ctr" --address "$sock" -n demo container rm demo >/dev/null 2>&1
	[ -n "${cpid:-}" ] && kill "$cpid" 2>/dev/null && wait "$cpid" 2>/dev/null
	grep -q " $work" /proc/mounts && awk -v w="$work" '$2 ~ "^"w {print $2}' /proc/mounts | sort -r | xargs -r umount -l
	rm -rf "$work"
}
[ -n "${DEMO_KEEP:-}" ] || trap cleanup EXIT

# The default handler of the repo's config.toml, with this machine's runsc and
# a private runsc root.
sed -e "s#^binary = \"runsc\"#binary = \"$tools/runsc\"#" \
	-e "s#^root = \"/run/palisade/runsc\"#root = \"$work/runsc\"#" \
	"$repo/config.toml" >"$work/palisade.toml"

cat >"$work/containerd.toml" <<TOML
version = 3
root = "$work/root"
state = "$work/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.cri.v1.runtime", "io.containerd.cri.v1.images", "io.containerd.nri.v1.nri"]
[grpc]
  address = "$sock"
[ttrpc]
  address = "$sock.ttrpc"
[plugins.'io.containerd.internal.v1.opt']
  path = "$work/opt"
TOML
"$tools/containerd" --config "$work/containerd.toml" >"$work/containerd.log" 2>&1 &
cpid=$!
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.1; done

rootfs=$work/rootfs
mkdir -p "$rootfs"/{bin,proc,sys,dev,tmp,etc}
cp /bin/busybox "$rootfs/bin/busybox"
for a in sh cat dmesg grep head sleep; do ln "$rootfs/bin/busybox" "$rootfs/bin/$a"; done
# A second handler without a floor, to show what the floor takes away.
cat >>"$work/palisade.toml" <<TOML
[handlers.no-floor]
backend = "runsc"
[handlers.no-floor.runsc]
binary = "$tools/runsc"
root = "$work/runsc"
TOML
sed 's/^default_handler = .*/default_handler = "no-floor"/' "$work/palisade.toml" >"$work/no-floor.toml"

C=("$tools/ctr" --address "$sock" -n demo)
. "$repo/integration/tools/versions.env"
echo "== Palisade ($bin/containerd-shim-palisade-v2) on runsc $RUNSC_VERSION, containerd $CONTAINERD_VERSION"
echo "-- a container on handler \"gvisor\" (the default of config.toml), started with ctr run -d"
# The shell exits 0 on SIGTERM, so stopping it below is an ordinary clean
# exit (a SIGKILL would end it with status 137, which ctr task rm reports).
"${C[@]}" run -d --runtime io.containerd.palisade.v2 --runtime-config-path "$work/palisade.toml" \
	--rootfs "$rootfs" demo /bin/sh -c 'trap "exit 0" TERM; sleep 600 & wait' >/dev/null
echo "-- /proc/self/status inside it (ctr task exec, which passes through the floor too):"
"${C[@]}" task exec --exec-id status demo /bin/sh -c 'grep -E "^(Seccomp|CapEff|CapBnd)" /proc/self/status'
echo "-- dmesg inside it: syslog is outside the seccomp floor, so the sentry refuses it:"
if out=$("${C[@]}" task exec --exec-id dmesg demo /bin/dmesg 2>&1); then
	echo "demo: dmesg succeeded under the gvisor floor:" >&2
	echo "$out" >&2
	exit 1
fi
echo "$out"
echo "-- what Palisade enforced, as palisadectl inspect shows it (the decision record in the bundle):"
palisadectl inspect -n demo --state "$work/state" demo
"${C[@]}" task kill demo
for _ in $(seq 100); do "${C[@]}" task ls | grep -q '^demo .*STOPPED' && break; sleep 0.1; done
"${C[@]}" task rm demo >/dev/null && "${C[@]}" container rm demo
echo "-- the same container on a handler without a floor: gVisor's kernel banner via dmesg"
"${C[@]}" run --rm --runtime io.containerd.palisade.v2 --runtime-config-path "$work/no-floor.toml" \
	--rootfs "$rootfs" demo-open /bin/sh -c 'dmesg | head -1; grep -E "^Seccomp" /proc/self/status'
