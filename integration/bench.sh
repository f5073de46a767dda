#!/usr/bin/env bash
# make bench: start-to-exit latency and shim memory, side by side in one run.
#
#   P1  `ctr run --rm` of busybox /bin/true, interleaved A/B/C/D per round:
#       palisade        Palisade + runsc, handler "gvisor" (the default floor)
#       palisade-open   Palisade + runsc, a handler with no floor
#       runcshim-runsc  containerd-shim-runc-v2 driving the same runsc
#       runcshim-runsc-rd  the same with containerd's default seccomp profile
#                       (ctr --seccomp) and runsc --oci-seccomp (a wrapper:
#                       without the flag runsc ignores the profile), the
#                       cost a RuntimeDefault pod would pay there
#       raw-runsc       `runsc run` on a prepared bundle (no containerd)
#   RSS of the shim with one running container, Palisade vs the runc shim.
#
# Ratios are of medians from the same run; the machine is noisy, so only ratios
# are compared. ROUNDS (default 15) sets the sample count.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
tools=${PALISADE_TOOLS_BIN:-$repo/_tools/bin}
bin=${PALISADE_BIN:-$repo/bin}
rounds=${ROUNDS:-15}
[ "$(id -u)" = 0 ] || { echo "bench: must run as root" >&2; exit 1; }

work=$(mktemp -d /tmp/palisade-bench.XXXXXX)
sock=$work/c.sock
export PATH=$bin:$tools:$PATH
cleanup() {
	set +e
	for id in rss-p rss-r; do
		ctr --address "$sock" -n bench task kill -s SIGKILL $id >/dev/null 2>&1
		sleep 0.3
		ctr --address "$sock" -n bench task rm -f $id >/dev/null 2>&1
		ctr --address "$sock" -n bench container rm $id >/dev/null 2>&1
	done
	[ -n "${cpid:-}" ] && kill "$cpid" 2>/dev/null && wait "$cpid" 2>/dev/null
	awk -v w="$work" 'index($2, w) == 1 {print $2}' /proc/mounts | sort -r | xargs -r umount -l
	rm -rf "$work"
}
trap cleanup EXIT

cat >"$work/palisade.toml" <<TOML
default_handler = "gvisor"
[handlers.gvisor]
backend = "runsc"
[handlers.gvisor.runsc]
binary = "$tools/runsc"
root = "$work/runsc-palisade"
[handlers.gvisor.policy]
seccomp = "runtime-default"
no_new_privileges = true
[handlers.gvisor.policy.capabilities]
ceiling = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"]
drop = ["CAP_NET_RAW"]
TOML
cat >"$work/open.toml" <<TOML
[handlers.open]
backend = "runsc"
[handlers.open.runsc]
binary = "$tools/runsc"
root = "$work/runsc-open"
TOML
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
containerd --config "$work/containerd.toml" >"$work/containerd.log" 2>&1 &
cpid=$!
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.1; done

rootfs=$work/rootfs
mkdir -p "$rootfs"/{bin,proc,sys,dev,tmp,etc}
cp /bin/busybox "$rootfs/bin/busybox"
for a in sh true sleep; do ln "$rootfs/bin/busybox" "$rootfs/bin/$a"; done

# The raw runsc bundle: the same rootfs, /bin/true, no terminal.
mkdir -p "$work/bundle"
(cd "$work/bundle" && runc spec --rootless >/dev/null 2>&1 || runc spec)
python3 - "$work/bundle/config.json" "$rootfs" <<'PY'
import json, sys
p, rootfs = sys.argv[1], sys.argv[2]
s = json.load(open(p))
s["process"]["args"] = ["/bin/true"]
s["process"]["terminal"] = False
s["root"] = {"path": rootfs, "readonly": False}
s["linux"].pop("uidMappings", None); s["linux"].pop("gidMappings", None)
s["linux"]["namespaces"] = [n for n in s["linux"]["namespaces"] if n["type"] != "user"]
json.dump(s, open(p, "w"))
PY

printf '#!/bin/sh\nexec %s --oci-seccomp "$@"\n' "$tools/runsc" >"$work/runsc-oci-seccomp"
chmod +x "$work/runsc-oci-seccomp"

C="ctr --address $sock -n bench"
now() { date +%s%N; }
run_one() { # name id -> prints elapsed ms
	local name=$1 id=$2 t0 t1
	t0=$(now)
	case $name in
	palisade) $C run --rm --runtime io.containerd.palisade.v2 --runtime-config-path "$work/palisade.toml" --rootfs "$rootfs" "$id" /bin/true ;;
	palisade-open) $C run --rm --runtime io.containerd.palisade.v2 --runtime-config-path "$work/open.toml" --rootfs "$rootfs" "$id" /bin/true ;;
	runcshim-runsc) $C run --rm --runc-binary "$tools/runsc" --runc-root "$work/runsc-peer" --rootfs "$rootfs" "$id" /bin/true ;;
	runcshim-runsc-rd) $C run --rm --seccomp --runc-binary "$work/runsc-oci-seccomp" --runc-root "$work/runsc-peer" --rootfs "$rootfs" "$id" /bin/true ;;
	raw-runsc) runsc --root "$work/runsc-raw" run --bundle "$work/bundle" "$id" ;;
	esac >/dev/null 2>"$work/err" || { echo "bench: $name failed: $(cat "$work/err")" >&2; exit 1; }
	t1=$(now)
	echo $(((t1 - t0) / 1000))
}

names="palisade palisade-open runcshim-runsc runcshim-runsc-rd raw-runsc"
for n in $names; do run_one "$n" "warm-$n" >/dev/null; done # warm caches
for r in $(seq "$rounds"); do
	for n in $names; do
		echo "$n $(run_one "$n" "b$r-$n")" >>"$work/p1"
	done
done

stats() { # name -> "median min max" in ms
	awk -v n="$1" '$1 == n {print $2}' "$work/p1" | sort -n | awk '{v[NR]=$1} END {m = (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2; printf "%.1f %.1f %.1f", m/1000, v[1]/1000, v[NR]/1000}'
}
echo "P1 start-to-exit, ctr run --rm busybox /bin/true, $rounds rounds interleaved (ms)"
printf '  %-16s %8s %8s %8s\n' runtime median min max
for n in $names; do
	read -r m lo hi <<<"$(stats "$n")"
	printf '  %-16s %8s %8s %8s\n' "$n" "$m" "$lo" "$hi"
	eval "med_${n//-/_}=$m"
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", a / b}'; }
echo "  palisade/runcshim-runsc      = $(ratio "$med_palisade" "$med_runcshim_runsc")  (target <= 1.00)"
echo "  palisade/raw-runsc           = $(ratio "$med_palisade" "$med_raw_runsc")  (target <= 1.15)"
echo "  palisade-open/runcshim-runsc = $(ratio "$med_palisade_open" "$med_runcshim_runsc")"
echo "  palisade/runcshim-runsc-rd   = $(ratio "$med_palisade" "$med_runcshim_runsc_rd")  (both with the default seccomp profile)"
echo "  palisade/palisade-open       = $(ratio "$med_palisade" "$med_palisade_open")  (cost of the floor)"

# RSS and PSS of each shim with one running container.
$C run -d --runtime io.containerd.palisade.v2 --runtime-config-path "$work/palisade.toml" --rootfs "$rootfs" rss-p /bin/sleep 600 >/dev/null
$C run -d --runc-binary "$tools/runsc" --runc-root "$work/runsc-peer" --rootfs "$rootfs" rss-r /bin/sleep 600 >/dev/null
sleep 2
mem() { # pattern -> "rss_kb pss_kb"
	local pid
	pid=$(pgrep -f "$1" | head -1)
	echo "$(awk '/^VmRSS/ {print $2}' /proc/"$pid"/status) $(awk '/^Pss:/ {print $2}' /proc/"$pid"/smaps_rollup)"
}
read -r prss ppss <<<"$(mem "containerd-shim-palisade-v2 .*-id rss-p")"
read -r rrss rpss <<<"$(mem "containerd-shim-runc-v2 .*-id rss-r")"
echo "Shim memory with one running container (KiB)"
printf '  %-26s RSS %7s  PSS %7s\n' containerd-shim-palisade-v2 "$prss" "$ppss" containerd-shim-runc-v2 "$rrss" "$rpss"
echo "  palisade/runc-shim RSS = $(ratio "$prss" "$rrss")"

# --- The shim v2 delegate (backend = "shim", the Kata backend's code) ---
#   P1  `ctr run --rm` of busybox /bin/true, interleaved per round:
#       delegate        Palisade -> containerd-shim-runc-v2 -> runc, default floor
#       delegate-open   the same, a handler with no floor
#       runcshim-runc   containerd-shim-runc-v2 -> runc directly (ctr --runc-binary)
#       runcshim-runc-seccomp  the same with containerd's default seccomp
#                       profile (ctr --seccomp), the floor's counterpart
#   RSS the Palisade shim adds in front of containerd-shim-runc-v2, one running
#   container each.
cleanup_delegate() {
	set +e
	for id in rss-d rss-x; do
		ctr --address "$sock" -n bench task kill -s SIGKILL $id >/dev/null 2>&1
		sleep 0.3
		ctr --address "$sock" -n bench task rm -f $id >/dev/null 2>&1
		ctr --address "$sock" -n bench container rm $id >/dev/null 2>&1
	done
}
trap 'cleanup_delegate; cleanup' EXIT
delegate_toml() { # name policy-body
	cat <<TOML
[handlers.$1]
backend = "shim"
[handlers.$1.shim]
binary = "$tools/containerd-shim-runc-v2"
options_type = "runc"
binary_name = "$tools/runc"
root = "$work/runc-delegate"
[handlers.$1.policy]
$2
TOML
}
delegate_toml delegate "$(sed -n '/^\[handlers.gvisor.policy\]/,$p' "$work/palisade.toml" | tail -n +2 |
	sed 's/handlers\.gvisor\./handlers.delegate./')" >"$work/delegate.toml"
delegate_toml open "" >"$work/delegate-open.toml"
run_delegate() { # name id -> prints elapsed ms
	local name=$1 id=$2 t0 t1
	t0=$(now)
	case $name in
	delegate) $C run --rm --runtime io.containerd.palisade.v2 --runtime-config-path "$work/delegate.toml" --rootfs "$rootfs" "$id" /bin/true ;;
	delegate-open) $C run --rm --runtime io.containerd.palisade.v2 --runtime-config-path "$work/delegate-open.toml" --rootfs "$rootfs" "$id" /bin/true ;;
	runcshim-runc) $C run --rm --runc-binary "$tools/runc" --runc-root "$work/runc-direct" --rootfs "$rootfs" "$id" /bin/true ;;
	runcshim-runc-seccomp) $C run --rm --seccomp --runc-binary "$tools/runc" --runc-root "$work/runc-direct" --rootfs "$rootfs" "$id" /bin/true ;;
	esac >/dev/null 2>"$work/err" || { echo "bench: $name failed: $(cat "$work/err")" >&2; exit 1; }
	t1=$(now)
	echo $(((t1 - t0) / 1000))
}
dnames="delegate delegate-open runcshim-runc runcshim-runc-seccomp"
for n in $dnames; do run_delegate "$n" "warm-$n" >/dev/null; done
for r in $(seq "$rounds"); do
	for n in $dnames; do
		echo "$n $(run_delegate "$n" "d$r-$n")" >>"$work/p1"
	done
done
echo "P1 through the delegate, ctr run --rm busybox /bin/true, $rounds rounds interleaved (ms)"
printf '  %-22s %8s %8s %8s\n' runtime median min max
for n in $dnames; do
	read -r m lo hi <<<"$(stats "$n")"
	printf '  %-22s %8s %8s %8s\n' "$n" "$m" "$lo" "$hi"
	eval "med_${n//-/_}=$m"
done
echo "  delegate-open/runcshim-runc      = $(ratio "$med_delegate_open" "$med_runcshim_runc")  (the delegate, no floor either side; target <= 1.10)"
echo "  delegate/runcshim-runc-seccomp   = $(ratio "$med_delegate" "$med_runcshim_runc_seccomp")  (the delegate with its floor vs a default seccomp profile)"
echo "  delegate/runcshim-runc           = $(ratio "$med_delegate" "$med_runcshim_runc")"

$C run -d --runtime io.containerd.palisade.v2 --runtime-config-path "$work/delegate.toml" --rootfs "$rootfs" rss-d /bin/sleep 600 >/dev/null
$C run -d --runc-binary "$tools/runc" --runc-root "$work/runc-direct" --rootfs "$rootfs" rss-x /bin/sleep 600 >/dev/null
sleep 2
read -r drss dpss <<<"$(mem "containerd-shim-palisade-v2 .*-id rss-d")"
read -r srss spss <<<"$(mem "containerd-shim-runc-v2 .*-id rss-d")"
read -r xrss xpss <<<"$(mem "containerd-shim-runc-v2 .*-id rss-x")"
echo "Shim memory through the delegate, one running container (KiB)"
printf '  %-36s RSS %7s  PSS %7s\n' "containerd-shim-palisade-v2 (added)" "$drss" "$dpss" \
	"containerd-shim-runc-v2 behind it" "$srss" "$spss" "containerd-shim-runc-v2 alone" "$xrss" "$xpss"
echo "  (delegate pair)/(runc shim alone) RSS = $(ratio "$((drss + srss))" "$xrss")"
cleanup_delegate
