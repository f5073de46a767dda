#!/usr/bin/env bash
# make bench: Palisade against containerd-shim-runc-v2 driving the same runsc,
# side by side in one run, interleaved, on a private containerd. It writes
# docs/benchmarks.md and docs/benchmarks.png (integration/bench, from the
# samples measured here) and prints the same tables.
#
#   P1  start-to-exit: `ctr run --rm` of busybox /bin/true, one round = one
#       run of each, in this order:
#         palisade           Palisade + runsc, the shipped gvisor floor
#         palisade-strict    the shipped gvisor-strict floor (P3)
#         palisade-open      a handler with no floor
#         palisade-image     the gvisor floor, the same files as an image
#                            (imported, localhost/palisade-bench/busybox:1)
#         palisade-image-policy  the same with an image policy (issue 17):
#                            against palisade-image, the containerd lookup
#         runcshim-runsc     containerd-shim-runc-v2 driving the same runsc
#         runcshim-runsc-rd  the same with containerd's default seccomp
#                            profile and runsc --oci-seccomp (a wrapper:
#                            without the flag runsc ignores the profile)
#         raw-runsc          `runsc run` on a prepared bundle, no containerd
#         raw-runsc-floor    the same bundle with the seccomp profile,
#                            capabilities and no_new_privs Palisade enforced
#                            on the palisade row, and runsc --oci-seccomp:
#                            what the floor costs runsc itself
#   P2  memory: RSS and PSS of the shim, and of what runs under it (runsc's
#       sandbox and gofers), with 1 and 10 containers in one pod.
#   P3  the policy and shim Go benchmarks, and P1's strict/open ratio.
#   P4  density: PODS pods started in parallel through CRI (crictl runp,
#       create, start), then removed; the leak check after (a go test,
#       integration/bench_density_test.go).
#   P5  exec latency: `ctr task exec` of /bin/true into a running container.
#   P6  port forwarding: `crictl port-forward` to httpd in a Palisade pod and
#       in a runc pod, interleaved: connection setup (time to the first byte
#       of a GET on a new connection) and 100 MiB download throughput (a go
#       test, integration/bench_portforward_test.go).
#   P7  pod start through a real kubelet: K8S_PODS pods created at once on the
#       cluster of package k8s, until all are Ready, per RuntimeClass (gvisor,
#       runc; the runc shim cannot run runsc pods), K8S_ROUNDS rounds (a go test,
#       integration/bench_k8s_test.go).
#   runtime monitoring on against off (P1, P5, an exec-and-open loop, and the
#   points per second the receiver takes, with the dropped count),
#   and the shim v2 delegate (backend = "shim") against containerd-shim-runc-v2.
#
# Knobs: ROUNDS (P1, default 15), EXEC_ROUNDS (P5, default 2*ROUNDS),
# MEM_ROUNDS (P2, default 3), PODS (P4, default 50), POD_ROUNDS (P4, default
# 2), K8S_PODS (P7, default 20), K8S_ROUNDS (P7, default 5), BENCH_OUT
# (default docs/), BENCH_DATA (a directory that keeps the raw samples),
# BENCH_SKIP (comma list of p1 p2 p3 p4 p5 p6 p7 delegate monitor, to develop
# one part). On a shared machine only ratios from one run mean much; the
# report records the load average before and after.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
tools=${PALISADE_TOOLS_BIN:-$repo/_tools/bin}
bin=${PALISADE_BIN:-$repo/bin}
rounds=${ROUNDS:-15}
exec_rounds=${EXEC_ROUNDS:-$((2 * rounds))}
mem_rounds=${MEM_ROUNDS:-3}
pods=${PODS:-50}
pod_rounds=${POD_ROUNDS:-2}
k8s_pods=${K8S_PODS:-20}
k8s_rounds=${K8S_ROUNDS:-5}
out=${BENCH_OUT:-$repo/docs}
skip=",${BENCH_SKIP:-},"
[ "$(id -u)" = 0 ] || { echo "bench: must run as root" >&2; exit 1; }
want() { [[ $skip != *",$1,"* ]]; }

# Short: containerd refuses a shim socket_dir longer than 38 bytes. Its name
# is also the containerd namespace, so that the cgroups are this run's own.
work=$(mktemp -d /tmp/pal-bench.XXXXXX)
ns=$(basename "$work")
sock=$work/c.sock
data=${BENCH_DATA:-$work/data} # the samples; BENCH_DATA keeps them after the run
mkdir -p "$data" "$out"
rm -f "$data/samples.tsv" "$data/meta.tsv" "$data/gobench.txt"
samples=$data/samples.tsv
: >"$samples"
export PATH=$bin:$tools:$PATH
C="ctr --address $sock -n $ns"
started=$(date +%s)
failed= # the parts whose go test failed

sample() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$samples"; } # metric series value
meta() { printf '%s\t%s\n' "$1" "$2" >>"$data/meta.tsv"; }
meta command "ROUNDS=$rounds EXEC_ROUNDS=$exec_rounds MEM_ROUNDS=$mem_rounds PODS=$pods POD_ROUNDS=$pod_rounds K8S_PODS=$k8s_pods K8S_ROUNDS=$k8s_rounds${BENCH_SKIP:+ BENCH_SKIP=$BENCH_SKIP} bash integration/bench.sh"
meta loadavg_before "$(cut -d' ' -f1-3 /proc/loadavg)"
meta date "$(date -u '+%Y-%m-%d %H:%M UTC')"
meta palisade "$(git -C "$repo" describe --always --dirty 2>/dev/null || echo unknown)"
meta containerd "$(containerd --version | awk '{print $3}')"
meta runsc "$(runsc --version 2>/dev/null | head -1 | sed 's/^runsc version //')"

cpid=
stop_containerd() {
	[ -n "$cpid" ] || return 0
	kill "$cpid" 2>/dev/null && wait "$cpid" 2>/dev/null
	cpid=
}
# remove_all kills every task of the namespace (pod sandboxes first: runsc
# cannot signal a pod container whose sandbox is gone, and killing the sandbox
# ends its containers) and deletes every container.
remove_all() {
	local ids id
	ids=$($C containers ls -q 2>/dev/null) || return 0
	for id in $(grep '^sbx-' <<<"$ids") $(grep -v '^sbx-' <<<"$ids"); do
		$C task kill -s SIGKILL "$id" >/dev/null 2>&1 || true
	done
	for id in $ids; do
		for _ in $(seq 50); do
			$C task rm -f "$id" >/dev/null 2>&1 && break
			$C task ls -q 2>/dev/null | grep -qx "$id" || break
			sleep 0.1
		done
		$C containers rm "$id" >/dev/null 2>&1 || true
	done
}
cleanup() {
	set +e
	[ -n "$cpid" ] && remove_all
	stop_containerd
	# Whatever still runs with this run's directory in its command line (a
	# shim, a runsc sandbox or gofer) is this run's, after a failure.
	local left
	left=$(pgrep -f -- "$work")
	[ -z "$left" ] || { echo "bench: killing what is left: $left" >&2; kill -9 $left; sleep 0.5; }
	awk -v w="$work" 'index($2, w) == 1 {print $2}' /proc/mounts | sort -r | xargs -r umount -l
	for d in $(find /sys/fs/cgroup/*/"$ns" -depth -type d 2>/dev/null); do rmdir "$d" 2>/dev/null; done
	rm -rf "$work"
}
trap cleanup EXIT

bold() { printf '\n== %s\n' "$*"; }
stats() { # metric series -> "median min max n"
	awk -v m="$1" -v s="$2" -F'\t' '$1 == m && $2 == s {print $3}' "$samples" | sort -g |
		awk '{v[NR]=$1} END {if (!NR) {print "- - - 0"; exit}; m = (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2; printf "%.1f %.1f %.1f %d\n", m, v[1], v[NR], NR}'
}
median() { stats "$1" "$2" | cut -d' ' -f1; }
minus() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.0f", a - b}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b + 0 == 0) print "-"; else printf "%.3f", a / b}'; }
table() { # metric unit series...
	local m=$1 u=$2 s
	shift 2
	printf '  %-22s %9s %9s %9s %4s\n' "($u)" median min max n
	for s in "$@"; do printf '  %-22s %9s %9s %9s %4s\n' "$s" $(stats "$m" "$s"); done
}

cat >"$work/containerd.toml" <<TOML
version = 3
root = "$work/root"
state = "$work/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.cri.v1.runtime", "io.containerd.cri.v1.images", "io.containerd.nri.v1.nri", "io.containerd.podsandbox.controller.v1.podsandbox", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "$sock"
[ttrpc]
  address = "$sock.ttrpc"
[plugins.'io.containerd.internal.v1.opt']
  path = "$work/opt"
[plugins.'io.containerd.shim.v1.manager']
  socket_dir = "$work/s"
TOML

# Palisade's handlers, from the repo's config.toml, and the raw bundles are
# written by integration/bench/prep (see its doc comment); strict_drop is
# what ctr's default capabilities have above the strict ceiling.
(cd "$repo/integration/bench" && go build -o "$work/prep" ./prep)
prep=$work/prep
mapfile -t strict_drop < <("$prep" handlers "$repo/config.toml" "$tools/runsc" "$work/runsc-palisade" "$work")
[ "${#strict_drop[@]}" -gt 0 ] || { echo "bench: prep handlers failed" >&2; exit 1; }
strict_flags=()
for c in "${strict_drop[@]}"; do strict_flags+=(--cap-drop "$c"); done

rootfs=$work/rootfs
mkrootfs() { # dir: a busybox rootfs
	mkdir -p "$1"/{bin,proc,sys,dev,tmp,etc}
	cp /bin/busybox "$1/bin/busybox"
	for a in sh true sleep; do ln -f "$1/bin/busybox" "$1/bin/$a"; done
}
mkrootfs "$rootfs"

# P1's image rows run the same files from an image.
bench_image=localhost/palisade-bench/busybox:1
"$prep" image "$rootfs" "$work/image.tar" "$bench_image"

# The raw runsc bundle: the same rootfs, /bin/true, no terminal.
mkdir -p "$work/bundle"
(cd "$work/bundle" && runc spec)
"$prep" bundle "$work/bundle/config.json" "$rootfs"
printf '#!/bin/sh\nexec %s --oci-seccomp "$@"\n' "$tools/runsc" >"$work/runsc-oci-seccomp"
chmod +x "$work/runsc-oci-seccomp"

containerd --config "$work/containerd.toml" >"$work/containerd.log" 2>&1 &
cpid=$!
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.1; done
$C images import "$work/image.tar" >/dev/null

pal() { echo --runtime io.containerd.palisade.v2 --runtime-config-path "$work/$1.toml"; }
peer="--runc-binary $tools/runsc --runc-root $work/runsc-peer"
now() { date +%s%N; }
timed() { # metric series cmd... -> records elapsed ms; fails the run on error
	local m=$1 s=$2 t0 t1
	shift 2
	t0=$(now)
	"$@" >/dev/null 2>"$work/err" || { echo "bench: $s: $* failed: $(cat "$work/err")" >&2; exit 1; }
	t1=$(now)
	sample "$m" "$s" "$(awk -v d=$((t1 - t0)) 'BEGIN {printf "%.1f", d / 1e6}')"
}

run_p1() { # name id
	case $1 in
	palisade) $C run --rm $(pal gvisor) --rootfs "$rootfs" "$2" /bin/true ;;
	palisade-strict) $C run --rm $(pal strict) "${strict_flags[@]}" --rootfs "$rootfs" "$2" /bin/true ;;
	palisade-open) $C run --rm $(pal open) --rootfs "$rootfs" "$2" /bin/true ;;
	palisade-image) $C run --rm $(pal gvisor) "$bench_image" "$2" /bin/true ;;
	palisade-image-policy) $C run --rm $(pal images) "$bench_image" "$2" /bin/true ;;
	runcshim-runsc) $C run --rm $peer --rootfs "$rootfs" "$2" /bin/true ;;
	runcshim-runsc-rd) $C run --rm --seccomp --runc-binary "$work/runsc-oci-seccomp" --runc-root "$work/runsc-peer" --rootfs "$rootfs" "$2" /bin/true ;;
	raw-runsc) runsc --root "$work/runsc-raw" run --bundle "$work/bundle" "$2" ;;
	raw-runsc-floor) runsc --root "$work/runsc-raw" --oci-seccomp run --bundle "$work/bundle-floor" "$2" ;;
	esac
}
p1_names="palisade palisade-strict palisade-open palisade-image palisade-image-policy runcshim-runsc runcshim-runsc-rd raw-runsc raw-runsc-floor"
if want p1; then
	# raw-runsc-floor's bundle: the raw bundle with what Palisade enforced
	# on a container of the palisade row (its config.json in the bundle).
	$C run -d $(pal gvisor) --rootfs "$rootfs" floor-spec /bin/sleep 600 >/dev/null
	mkdir -p "$work/bundle-floor"
	"$prep" graft "$work/bundle/config.json" "$work/state/io.containerd.runtime.v2.task/$ns/floor-spec/config.json" "$work/bundle-floor/config.json"
	remove_all
	for n in $p1_names; do timed warm "$n" run_p1 "$n" "warm-$n"; done
	for r in $(seq "$rounds"); do
		for n in $p1_names; do timed p1 "$n" run_p1 "$n" "p1-$r-$n"; done
	done
	bold "P1 start-to-exit, ctr run --rm busybox /bin/true, $rounds rounds interleaved"
	table p1 ms $p1_names
	echo "  palisade/runcshim-runsc        $(ratio "$(median p1 palisade)" "$(median p1 runcshim-runsc)")  (target <= 1.00)"
	echo "  palisade/raw-runsc             $(ratio "$(median p1 palisade)" "$(median p1 raw-runsc)")  (target <= 1.15)"
	echo "  palisade/runcshim-runsc-rd     $(ratio "$(median p1 palisade)" "$(median p1 runcshim-runsc-rd)")  (both with a default seccomp profile)"
	echo "  palisade-strict/palisade-open  $(ratio "$(median p1 palisade-strict)" "$(median p1 palisade-open)")  (P3, target <= 1.02)"
	echo "  raw-runsc-floor/raw-runsc      $(ratio "$(median p1 raw-runsc-floor)" "$(median p1 raw-runsc)")  (the floor's cost in runsc alone)"
	echo "  palisade-image-policy/palisade-image  $(ratio "$(median p1 palisade-image-policy)" "$(median p1 palisade-image)")  (an image policy's cost: the lookup in containerd)"
	# The lookup itself, as the shim times it (the line each container gets).
	grep -o 'image_lookup_ms=[0-9.]*' "$work/containerd.log" | cut -d= -f2 | while read -r v; do sample p1-image-lookup palisade-image-policy "$v"; done
	table p1-image-lookup ms palisade-image-policy
fi

# P5: exec into a running container, one per runtime.
if want p5; then
	# IDs end in -ex: runsc takes an ID that prefixes another one in its
	# root as ambiguous, and these live side by side.
	$C run -d $(pal gvisor) --rootfs "$rootfs" palisade-ex /bin/sleep 600 >/dev/null 2>&1
	$C run -d $(pal open) --rootfs "$rootfs" palisade-open-ex /bin/sleep 600 >/dev/null 2>&1
	$C run -d $peer --rootfs "$rootfs" runcshim-runsc-ex /bin/sleep 600 >/dev/null 2>&1
	$C run -d --seccomp --runc-binary "$work/runsc-oci-seccomp" --runc-root "$work/runsc-peer" --rootfs "$rootfs" runcshim-runsc-rd-ex /bin/sleep 600 >/dev/null 2>&1
	p5_names="palisade palisade-open runcshim-runsc runcshim-runsc-rd"
	for n in $p5_names; do timed warm "exec-$n" $C task exec --exec-id w "$n-ex" /bin/true; done
	for r in $(seq "$exec_rounds"); do
		for n in $p5_names; do timed p5 "$n" $C task exec --exec-id "e$r" "$n-ex" /bin/true; done
	done
	bold "P5 exec latency, ctr task exec /bin/true into a running container, $exec_rounds rounds interleaved"
	table p5 ms $p5_names
	echo "  palisade/runcshim-runsc        $(ratio "$(median p5 palisade)" "$(median p5 runcshim-runsc)")"
	echo "  palisade/runcshim-runsc-rd     $(ratio "$(median p5 palisade)" "$(median p5 runcshim-runsc-rd)")  (both with a default seccomp profile)"
	# Where an exec's time goes: process starts and exits, system-wide, around
	# PHASE_ROUNDS more execs of each (see bench/execphases.awk).
	if command -v perf >/dev/null; then
		phase_rounds=${PHASE_ROUNDS:-10}
		perf record -q -e sched:sched_process_exec,sched:sched_process_exit -a -o "$work/p5.perf" -- bash -c "
			for r in \$(seq $phase_rounds); do for n in $p5_names; do $C task exec --exec-id ph\$r \$n-ex /bin/true; done; done" >/dev/null 2>&1 ||
			echo "bench: perf record around the execs failed: no P5 phases" >&2
		perf script -i "$work/p5.perf" -F pid,time,event,trace 2>/dev/null | awk -v names="$p5_names" -f "$repo/integration/bench/execphases.awk" |
			while read -r n a b c d e; do
				sample p5-to-runtime "$n" "$a"
				sample p5-trampoline "$n" "$b"
				sample p5-runsc-exec "$n" "$c"
				sample p5-to-exit "$n" "$d"
				sample p5-phased "$n" "$e"
			done
		bold "P5 phases, $phase_rounds execs each under perf (medians, ms)"
		printf '  %-22s %10s %10s %10s %10s %10s\n' "" "to runtime" trampoline "runsc exec" "to exit" total
		for n in $p5_names; do
			printf '  %-22s %10s %10s %10s %10s %10s\n' "$n" "$(median p5-to-runtime "$n")" "$(median p5-trampoline "$n")" \
				"$(median p5-runsc-exec "$n")" "$(median p5-to-exit "$n")" "$(median p5-phased "$n")"
		done
	fi
	remove_all
fi

# P2: memory of one pod, 1 and 10 containers. The pod's first container is
# its sandbox; the others join it (the CRI annotations, which both shims and
# runsc read to group). They get a terminal: containerd-shim-runc-v2 cannot
# start a pod container without one on runsc (runsc start hands its own
# stdio to the container, and go-runc waits for EOF on it). Palisade runs
# the pod a second time without terminals, as CRI runs ordinary pods.
shim_pid() { pgrep -f "containerd-shim-(palisade|runc)-v2 -namespace $ns -id $1 " | head -1; }
descendants() { # pid -> pids below it
	ps -e -o pid=,ppid= | awk -v root="$1" '{kids[$2] = kids[$2] " " $1} END {
		n = split(kids[root], q, " "); for (i = 1; i <= n; i++) {print q[i]; m = split(kids[q[i]], k, " "); for (j = 1; j <= m; j++) q[++n] = k[j]}}'
}
memsum() { # pids -> "rss_kb pss_kb pss_anon_kb"
	local p
	for p in "$@"; do cat "/proc/$p/smaps_rollup" 2>/dev/null; done |
		awk '/^Rss:/ {r += $2} /^Pss:/ {p += $2} /^Pss_Anon:/ {a += $2} END {printf "%d %d %d\n", r, p, a}'
}
# Pss_Anon is kept apart: PSS also shares a binary's pages with processes
# outside the bench (other runc shims on the host), Pss_Anon is the shim's own.
p2_measure() { # series count sandbox-id
	local shim rss pss anon
	sleep 1
	shim=$(shim_pid "$3")
	read -r rss pss anon <<<"$(memsum "$shim")"
	sample "p2-shim-rss-$2" "$1" "$rss"
	sample "p2-shim-pss-$2" "$1" "$pss"
	sample "p2-shim-anon-$2" "$1" "$anon"
	read -r rss pss anon <<<"$(memsum $(descendants "$shim"))"
	sample "p2-sandbox-rss-$2" "$1" "$rss"
	sample "p2-sandbox-pss-$2" "$1" "$pss"
	sample "p2-sandbox-anon-$2" "$1" "$anon"
	sample "p2-procs-$2" "$1" "$(descendants "$shim" | wc -l)"
}
# p2_own splits what is under the shim: runsc's own processes (its sandbox
# and gofers, argv[0] runsc-sandbox or runsc-gofer, and what they fork: the
# systrap stubs) from anything else (a helper the shim keeps per container).
# What Palisade adds per pod container is the growth of the shim's PSS plus
# that of the helpers.
p2_own() { # series count sandbox-id
	local shim p own=() helpers=() a b c
	shim=$(shim_pid "$3")
	for p in $(descendants "$shim"); do
		case $(tr '\0' '\n' <"/proc/$p/cmdline" 2>/dev/null | head -1) in
		runsc-sandbox | runsc-gofer) own+=("$p" $(descendants "$p")) ;;
		esac
	done
	for p in $(descendants "$shim"); do
		[[ " ${own[*]} " == *" $p "* ]] || helpers+=("$p")
	done
	read -r a b c <<<"$(memsum "$shim" "${helpers[@]}")"
	sample "p2-palisade-pss-$2" "$1" "$b"
	sample "p2-helpers-$2" "$1" "${#helpers[@]}"
	read -r a b c <<<"$(memsum "${own[@]}")"
	sample "p2-runsc-pss-$2" "$1" "$b"
}
p2_pod() { # series round
	local s=$1 sbx=sbx-$1-$2 rt tty=() i
	case $s in
	palisade) rt=$(pal gvisor) tty=(-t) ;;
	palisade-notty) rt=$(pal gvisor) ;;
	runcshim-runsc) rt=$peer tty=(-t) ;;
	esac
	mkrootfs "$work/rf/$sbx"
	$C run -d $rt --annotation io.kubernetes.cri.container-type=sandbox --annotation "io.kubernetes.cri.sandbox-id=$sbx" \
		--rootfs "$work/rf/$sbx" "$sbx" /bin/sleep 600 >/dev/null 2>"$work/err" || { cat "$work/err" >&2; exit 1; }
	p2_measure "$s" 1 "$sbx"
	p2_own "$s" 1 "$sbx"
	for i in $(seq 2 10); do
		mkrootfs "$work/rf/$sbx-$i" # runsc: one rootfs per container of a sandbox
		# script(1) gives ctr the terminal that -t needs.
		script -qec "$C run -d ${tty[*]} $rt --annotation io.kubernetes.cri.container-type=container --annotation io.kubernetes.cri.sandbox-id=$sbx --rootfs $work/rf/$sbx-$i c$i-$sbx /bin/sleep 600" /dev/null >"$work/err" 2>&1 </dev/null ||
			{ cat "$work/err" >&2; exit 1; }
		case $i in 2 | 9 | 10) sleep 1 && p2_own "$s" "$i" "$sbx" ;; esac
	done
	p2_measure "$s" 10 "$sbx"
	remove_all
	rm -rf "$work/rf"
}
if want p2; then
	p2_names="palisade runcshim-runsc palisade-notty"
	for r in $(seq "$mem_rounds"); do for n in $p2_names; do p2_pod "$n" "$r"; done; done
	bold "P2 memory of one pod, median of $mem_rounds (KiB)"
	for c in 1 10; do
		printf '  %-22s %9s %9s %9s %9s %9s %9s %5s\n' "$c container(s)" "shim RSS" PSS anon "under RSS" PSS anon procs
		for n in $p2_names; do
			printf '  %-22s %9s %9s %9s %9s %9s %9s %5s\n' "$n" "$(median p2-shim-rss-$c "$n")" "$(median p2-shim-pss-$c "$n")" \
				"$(median p2-shim-anon-$c "$n")" "$(median p2-sandbox-rss-$c "$n")" "$(median p2-sandbox-pss-$c "$n")" \
				"$(median p2-sandbox-anon-$c "$n")" "$(median p2-procs-$c "$n")"
		done
		echo "  palisade/runcshim-runsc shim RSS  $(ratio "$(median p2-shim-rss-$c palisade)" "$(median p2-shim-rss-$c runcshim-runsc)")  (target <= 0.80)"
	done
	for n in palisade palisade-notty; do
		for c in 2 10; do
			echo "  $n: container $c adds $(minus "$(median p2-palisade-pss-$c "$n")" "$(median p2-palisade-pss-$((c - 1)) "$n")") KiB of PSS in the shim and its helpers ($(median p2-helpers-$c "$n") helpers), runsc's own processes $(minus "$(median p2-runsc-pss-$c "$n")" "$(median p2-runsc-pss-$((c - 1)) "$n")") KiB"
		done
	done
fi

# The shim v2 delegate (backend = "shim", the Kata backend's code), against
# containerd-shim-runc-v2 driving runc directly.
delegate_toml() { # name [policy-file]
	"$prep" delegate "$1" "$tools" "$work" ${2:+"$2"}
}
if want delegate; then
	delegate_toml delegate "$work/gvisor.toml" >"$work/delegate.toml"
	delegate_toml delegate-open "" >"$work/delegate-open.toml"
	run_d() { # name id
		case $1 in
		delegate) $C run --rm $(pal delegate) --rootfs "$rootfs" "$2" /bin/true ;;
		delegate-open) $C run --rm $(pal delegate-open) --rootfs "$rootfs" "$2" /bin/true ;;
		runcshim-runc) $C run --rm --runc-binary "$tools/runc" --runc-root "$work/runc-direct" --rootfs "$rootfs" "$2" /bin/true ;;
		runcshim-runc-seccomp) $C run --rm --seccomp --runc-binary "$tools/runc" --runc-root "$work/runc-direct" --rootfs "$rootfs" "$2" /bin/true ;;
		esac
	}
	d_names="delegate delegate-open runcshim-runc runcshim-runc-seccomp"
	for n in $d_names; do timed warm "$n" run_d "$n" "warm-$n"; done
	for r in $(seq "$rounds"); do
		for n in $d_names; do timed p1d "$n" run_d "$n" "d$r-$n"; done
	done
	bold "P1 through the delegate, ctr run --rm busybox /bin/true, $rounds rounds interleaved"
	table p1d ms $d_names
	echo "  delegate-open/runcshim-runc    $(ratio "$(median p1d delegate-open)" "$(median p1d runcshim-runc)")  (no floor either side)"
	echo "  delegate/runcshim-runc-seccomp $(ratio "$(median p1d delegate)" "$(median p1d runcshim-runc-seccomp)")  (the floor vs a default seccomp profile)"
	$C run -d $(pal delegate) --rootfs "$rootfs" rss-d /bin/sleep 600 >/dev/null 2>&1
	$C run -d --runc-binary "$tools/runc" --runc-root "$work/runc-direct" --rootfs "$rootfs" rss-x /bin/sleep 600 >/dev/null 2>&1
	sleep 1
	read -r a b <<<"$(memsum "$(pgrep -f "containerd-shim-palisade-v2 -namespace $ns -id rss-d ")")"
	sample mem-delegate-rss palisade "$a"
	read -r a b <<<"$(memsum "$(pgrep -f "containerd-shim-runc-v2 .*-id rss-d( |$)" | head -1)")"
	sample mem-delegate-rss "runc shim behind it" "$a"
	read -r a b <<<"$(memsum "$(shim_pid rss-x)")"
	sample mem-delegate-rss "runc shim alone" "$a"
	echo "  shim RSS (KiB): Palisade $(median mem-delegate-rss palisade) in front of containerd-shim-runc-v2 $(median mem-delegate-rss "runc shim behind it"); the runc shim alone $(median mem-delegate-rss "runc shim alone")"
	remove_all
fi

# Runtime monitoring (sandbox/monitor): the shipped gvisor floor with and
# without [handlers.gvisor.monitoring] on its default points and rules, for
# P1 and P5; then containers that exec and open in a loop (MON_LOOP rounds
# of `/bin/true </bin/busybox`) or only open (MON_OPENS rounds of a
# redirect), on and off: the loops' times, and the points the receiver took
# per second with the sandbox's dropped count, from the shim's "monitor:
# stopped" log line. MON_EXTRA adds keys to the monitoring table (such as
# 'points = ["syscall/open/exit"]'), to see what a point costs.
mon_loop=${MON_LOOP:-500}
mon_opens=${MON_OPENS:-20000}
if want monitor; then
	h=$(sed -n "s/^default_handler *= *['\"]\(.*\)['\"] *$/\1/p" "$work/gvisor.toml")
	cp "$work/gvisor.toml" "$work/gvisor-mon.toml"
	printf '\n[handlers.%s.monitoring]\nenabled = true\nalert_file = "%s"\nsocket_dir = "%s"\n%b\n' \
		"$h" "$work/alerts.jsonl" "$work/mon" "${MON_EXTRA:-}" >>"$work/gvisor-mon.toml"
	mon_cfg() { case $1 in palisade) echo gvisor ;; palisade-monitored) echo gvisor-mon ;; esac; }
	m_names="palisade palisade-monitored"
	for n in $m_names; do timed warm "mon-$n" $C run --rm $(pal "$(mon_cfg "$n")") --rootfs "$rootfs" "mw-$n" /bin/true; done
	for r in $(seq "$rounds"); do
		for n in $m_names; do timed p1m "$n" $C run --rm $(pal "$(mon_cfg "$n")") --rootfs "$rootfs" "m$r-$n" /bin/true; done
	done
	for n in $m_names; do $C run -d $(pal "$(mon_cfg "$n")") --rootfs "$rootfs" "$n-mex" /bin/sleep 600 >/dev/null 2>&1; done
	for r in $(seq "$exec_rounds"); do
		for n in $m_names; do timed p5m "$n" $C task exec --exec-id "e$r" "$n-mex" /bin/true; done
	done
	remove_all
	# Two loops: execs (a fork, an exec, an open and an exit per round:
	# what the workload pays) and opens alone (a shell redirect, no fork:
	# the fastest stream of points a container makes, for the receiver).
	exec_loop="i=0; while [ \$i -lt $mon_loop ]; do /bin/true </bin/busybox; i=\$((i+1)); done"
	open_loop="i=0; while [ \$i -lt $mon_opens ]; do : </bin/busybox; i=\$((i+1)); done"
	for r in 1 2 3; do
		for kind in exec open; do
			for n in $m_names; do
				script=$exec_loop
				[ "$kind" = open ] && script=$open_loop
				timed "mon-$kind" "$n" $C run --rm $(pal "$(mon_cfg "$n")") --rootfs "$rootfs" "ml$r-$kind-$n" /bin/sh -c "$script"
				[ "$n" = palisade-monitored ] || continue
				sleep 1
				line=$(grep 'monitor: ' "$work/containerd.log" | grep -E 'stopped|were lost' | tail -1)
				points=$(sed -n 's/.* points=\([0-9]*\).*/\1/p' <<<"$line")
				dropped=$(sed -n 's/.* dropped=\([0-9]*\).*/\1/p' <<<"$line")
				overflow=$(sed -n 's/.* overflow=\([0-9]*\).*/\1/p' <<<"$line")
				sample "mon-$kind-overflow" "$n" "${overflow:-0}"
				ms=$(awk -F'\t' -v m="mon-$kind" '$1 == m && $2 == "palisade-monitored" {v = $3} END {print v}' "$samples")
				sample "mon-$kind-points" "$n" "${points:-0}"
				sample "mon-$kind-dropped" "$n" "${dropped:-0}"
				sample "mon-$kind-eps" "$n" "$(awk -v p="${points:-0}" -v ms="$ms" 'BEGIN {printf "%.0f", p / (ms / 1000)}')"
			done
		done
	done
	bold "Runtime monitoring: the gvisor floor with monitoring off and on, $rounds / $exec_rounds rounds interleaved"
	table p1m ms $m_names
	echo "  monitored/off P1              $(ratio "$(median p1m palisade-monitored)" "$(median p1m palisade)")"
	table p5m ms $m_names
	echo "  monitored/off P5              $(ratio "$(median p5m palisade-monitored)" "$(median p5m palisade)")"
	for kind in exec open; do
		table "mon-$kind" ms $m_names
		echo "  monitored/off $kind loop        $(ratio "$(median "mon-$kind" palisade-monitored)" "$(median "mon-$kind" palisade)")"
		echo "  receiver: $(median "mon-$kind-points" palisade-monitored) points per run, $(median "mon-$kind-eps" palisade-monitored) points/s, $(median "mon-$kind-dropped" palisade-monitored) dropped by the sandbox, $(median "mon-$kind-overflow" palisade-monitored) by the receiver"
	done
	remove_all
fi

# Nothing of this containerd may be left running.
left=$(pgrep -f -- "$work" | grep -vx "$cpid" || true)
[ -z "$left" ] || { echo "bench: left running after the ctr benchmarks:" >&2; ps -o pid=,args= -p $left >&2; exit 1; }
stop_containerd

if want p3; then
	bold "P3 policy and shim create-path Go benchmarks"
	(cd "$repo" && go test -run '^$' -bench . -benchmem -count 1 ./policy/ ./shim/) | tee "$data/gobench.txt" | grep -E '^Benchmark'
fi

# go_part runs one go test of the bench (build tag bench) into data/<part>.log
# and prints its result lines; a failure is reported and the run goes on.
go_part() { # part test timeout [VAR=value...]
	local part=$1 test=$2 timeout=$3
	shift 3
	(cd "$repo" && env PALISADE_BENCH_DATA="$data" "$@" \
		go test -tags bench -count=1 -timeout "$timeout" -v -run "^$test\$" ./integration/) >"$data/$part.log" 2>&1 ||
		{ tail -60 "$data/$part.log" >&2; echo "bench: $part failed (log above); going on, the report shows what it measured" >&2; failed="$failed $part"; }
	grep -E '^\s+bench_\w+_test.go:[0-9]+: ' "$data/$part.log" | sed -E 's/^\s+bench_\w+_test.go:[0-9]+: /  /'  || true
}
if want p4; then
	bold "P4 density: $pods pods through CRI, $pod_rounds round(s) (go test -tags bench -run TestBenchDensity)"
	go_part p4 TestBenchDensity 60m PALISADE_BENCH_PODS="$pods" PALISADE_BENCH_ROUNDS="$pod_rounds"
fi

if want p6; then
	bold "P6 port forwarding: crictl port-forward into a Palisade pod and a runc pod (go test -tags bench -run TestBenchPortForward)"
	go_part p6 TestBenchPortForward 30m
fi

if want p7; then
	bold "P7 pod start through a real kubelet: $k8s_pods pods at once, $k8s_rounds rounds (go test -tags bench -run TestBenchKubePodStart)"
	go_part p7 TestBenchKubePodStart 60m PALISADE_BENCH_PODS="$k8s_pods" PALISADE_BENCH_ROUNDS="$k8s_rounds"
fi

meta loadavg_after "$(cut -d' ' -f1-3 /proc/loadavg)"
meta duration "$(($(date +%s) - started)) s"
bold "Report"
(cd "$repo/integration/bench" && go run . -data "$data" -out "$out")
# A part that failed (a leak, a pod that would not go) still leaves the
# report of everything measured, but the run fails.
[ -z "$failed" ] || { echo "bench: failed:$failed" >&2; exit 1; }
