# Checks of the AppArmor test VM, sourced by /init (busybox sh). Each check
# prints one line, "PASS name: detail" or "FAIL name: detail", and main ends
# with "N passed, M failed". With apparmor=0 on the kernel command line the
# negative control runs instead: required handlers must fail closed and an
# optional one must run and record that AppArmor was not enforced.
#
# Containers come from a busybox rootfs copied per container; they are
# started with ctr against a private containerd, as an operator would.

passed=0
failed=0
ns=default
state=/run/containerd
shipped=/etc/palisade/config.toml
strict=/run/palisade-strict.toml
narrow=/etc/palisade/vm-runsc.toml
delegated=/etc/palisade/vm-runc.toml
share=/srv/share
# ctr's default capabilities above gvisor-strict's ceiling: dropped so that
# AppArmor is the only thing that decides whether that handler runs.
strict_drops="--cap-drop CAP_FSETID --cap-drop CAP_MKNOD --cap-drop CAP_NET_RAW --cap-drop CAP_SETFCAP --cap-drop CAP_SETPCAP --cap-drop CAP_SYS_CHROOT --cap-drop CAP_AUDIT_WRITE"

result() { # PASS|FAIL name detail
	if [ "$1" = PASS ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
	echo "$1 $2: $3"
}
check() { # name condition-status detail-if-pass detail-if-fail
	if [ "$2" = 0 ]; then result PASS "$1" "$3"; else result FAIL "$1" "$4"; fi
}
oneline() { tr '\n' ' ' | sed 's/  */ /g; s/ $//' | cut -c1-"${1:-400}"; }

start_containerd() {
	mkdir -p /etc/containerd /var/lib/containerd
	cat >/etc/containerd/config.toml <<-EOF
		version = 3
		root = "/var/lib/containerd"
		state = "$state"
		disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.cri.v1.runtime",
		  "io.containerd.cri.v1.images", "io.containerd.podsandbox.controller.v1.podsandbox",
		  "io.containerd.nri.v1.nri", "io.containerd.tracing.processor.v1.otlp"]
		[grpc]
		  address = "$state/containerd.sock"
	EOF
	containerd --config /etc/containerd/config.toml >/run/containerd.log 2>&1 &
	for _ in $(seq 1 300); do
		ctr version >/dev/null 2>&1 && return 0
		sleep 0.2
	done
	return 1
}

# rootfs ID: a fresh copy of the busybox rootfs (runc and runsc write into it).
rootfs() {
	rm -rf "/containers/$1"
	mkdir -p /containers
	cp -a /rootfs "/containers/$1"
	echo "/containers/$1"
}

# run_d ID CONFIG EXTRA...: a detached palisade container running sleep.
run_d() {
	id=$1 cfg=$2
	shift 2
	timeout 180 ctr run -d --null-io --env PATH=/bin --runtime io.containerd.palisade.v2 --runtime-config-path "$cfg" \
		"$@" --rootfs "$(rootfs "$id")" "$id" sleep 600 >"/run/$id.out" 2>&1
}
# xc ID CMD...: ctr task exec, output in /run/ID.exec.
xc() {
	id=$1
	shift
	timeout 120 ctr task exec --exec-id "x$RANDOM" "$id" "$@" >"/run/$id.exec" 2>&1
}
remove() {
	timeout 60 ctr task kill -s SIGKILL "$1" >/dev/null 2>&1
	timeout 60 ctr task rm -f "$1" >/dev/null 2>&1
	timeout 60 ctr container rm "$1" >/dev/null 2>&1
}

# argv0 PID; processes come and go, so stderr is redirected before the input.
argv0() { tr '\0' '\n' 2>/dev/null <"/proc/$1/cmdline" | head -n 1; }
# pids_argv0 NAME: processes whose argv[0] ends in NAME.
pids_argv0() {
	for p in /proc/[0-9]*; do
		case $(argv0 "${p#/proc/}") in *"$1") echo "${p#/proc/}" ;; esac
	done
}
# pids_cmdline WORD...: processes whose command line contains every WORD.
pids_cmdline() {
	for p in /proc/[0-9]*; do
		c=" $(tr '\0' ' ' 2>/dev/null <"$p/cmdline")"
		ok=1
		for w in "$@"; do case $c in *" $w "*) ;; *) ok=0 ;; esac; done
		[ $ok = 1 ] && echo "${p#/proc/}"
	done
}
label() { cat "/proc/$1/attr/current" 2>/dev/null | tr -d '\0'; }
# confined NAME PROFILE PID...: every pid is in PROFILE, enforce mode.
confined() {
	name=$1 want="$2 (enforce)"
	shift 2
	if [ $# = 0 ]; then
		result FAIL "$name" "no such process"
		return
	fi
	got=""
	bad=0
	for p in "$@"; do
		l=$(label "$p")
		got="$got pid $p: $l;"
		[ "$l" = "$want" ] || bad=1
	done
	check "$name" $bad "/proc/<pid>/attr/current:$got" "want \"$want\", got:$got"
}
# denials: AppArmor DENIED audit records since the last `dmesg -c`. kauditd
# prints them asynchronously, hence the pause.
denials() {
	sleep 1
	dmesg -c | grep 'apparmor="DENIED"' | sed 's/.*apparmor=/apparmor=/; s/ fsuid=.*//'
}
loaded() { grep -q "^$1 (enforce)$" /sys/kernel/security/apparmor/profiles 2>/dev/null; }

doctor_enabled() {
	loaded palisade-runsc && before=1 || before=0
	palisadectl doctor --config "$shipped" >/run/doctor.out 2>&1
	st=$?
	row=$(grep '^apparmor ' /run/doctor.out | oneline)
	echo "$row" | grep -q '^apparmor ok enabled$' && [ $st = 0 ]
	check doctor-apparmor-enabled $? "exit 0, \"$row\"" "exit $st: $(oneline 600 </run/doctor.out)"
	# doctor changes nothing: a profile the kernel lacked is still not loaded
	# (it counts because the handler's file defines it; Create loads it).
	after=0
	loaded palisade-runsc && after=1
	[ $before = 1 ] || [ $after = 0 ]
	check doctor-loads-nothing $? "palisade-runsc loaded before doctor: $before, after: $after" \
		"doctor loaded palisade-runsc into the kernel (before $before, after $after)"
}

runsc_narrow() {
	# Palisade must load the profile itself, from the handler's file.
	loaded palisade-vm-narrow && before=1 || before=0
	dmesg -c >/dev/null
	if ! run_d n1 "$narrow" --mount "type=bind,src=$share,dst=/data,options=rbind:ro"; then
		result FAIL runsc-required-profile-started "$(oneline </run/n1.out)"
		return
	fi
	[ $before = 0 ] && loaded palisade-vm-narrow
	check runsc-required-profile-loaded $? \
		"not loaded before Create, \"palisade-vm-narrow (enforce)\" after it: Palisade ran apparmor_parser -r on the handler's file" \
		"loaded before Create: $before; now: $(grep palisade /sys/kernel/security/apparmor/profiles | oneline)"
	sandbox=$(pids_argv0 runsc-sandbox)
	gofer=$(pids_argv0 runsc-gofer)
	confined runsc-sandbox-confined palisade-vm-narrow $sandbox
	confined runsc-gofer-confined palisade-vm-narrow $gofer
	# Both files are in the same read-only bind mount with the same mode; only
	# the profile's one added rule tells them apart.
	xc n1 sh -c 'cat /data/allowed.txt; cat /data/palisade-denied-secret.txt; echo status=$?'
	out=$(oneline </run/n1.exec)
	d=$(denials | grep 'profile="palisade-vm-narrow"' | grep 'palisade-denied-secret' | head -n 1)
	by="pid $(echo "$d" | sed -n 's/.* pid=\([0-9]*\).*/\1/p')"
	case " $sandbox " in *" ${by#pid } "*) by="$by (runsc-sandbox)" ;; esac
	case " $gofer " in *" ${by#pid } "*) by="$by (runsc-gofer)" ;; esac
	case $out in
	"allowed-content "*"Permission denied status=1") [ -n "$d" ] ;;
	*) false ;;
	esac
	check runsc-profile-denies-host-open $? "inside: \"$out\"; host kernel, $by: $(echo "$d" | sed 's/ pid=[0-9]*//')" \
		"inside: \"$out\"; denial: \"$d\""
	palisadectl inspect n1 -n $ns --state $state --json >/run/n1.inspect 2>&1
	rec=$(grep -o '"enforced_by": *"host AppArmor[^"]*"' /run/n1.inspect)
	case $rec in *palisade-vm-narrow*) true ;; *) false ;; esac
	check runsc-decision-record $? "$rec" "$(oneline 600 </run/n1.inspect)"
	remove n1
}

delegate_runc() {
	pal="" down=""
	dmesg -c >/dev/null
	if ! run_d d1 "$delegated"; then
		result FAIL delegate-started "$(oneline </run/d1.out)"
		return
	fi
	# The two shims serving d1: Palisade's, and the downstream it started.
	for p in $(pids_cmdline -id d1); do
		case $(argv0 "$p") in
		*containerd-shim-palisade-v2) pal=$p ;;
		*containerd-shim-runc-v2) down="$down $p" ;;
		esac
	done
	confined delegate-shim-confined palisade-vm-runc $down
	# Palisade's own shim stays unconfined: the transition is at the
	# downstream shim's exec.
	echo "# palisade shim pid $pal: $(label "$pal")"
	init=$(ctr task ls | awk '$1 == "d1" {print $2}')
	xc d1 cat /proc/self/attr/current
	inside=$(tr -d '\0' </run/d1.exec)
	[ "$inside" = "palisade-vm-runc (enforce)" ] && [ "$(label "$init")" = "palisade-vm-runc (enforce)" ]
	check delegate-container-confined $? \
		"init pid $init: $(label "$init"); exec inside: $inside" "init pid $init: \"$(label "$init")\"; exec inside: \"$inside\""
	xc d1 sh -c 'echo a > /tmp/allowed && echo allowed-ok; echo b > /tmp/palisade-denied-write; echo status=$?'
	out=$(oneline </run/d1.exec)
	d=$(denials | grep 'profile="palisade-vm-runc"' | grep 'palisade-denied-write' | head -n 1)
	# stdout and stderr share the exec's log: the error may come first.
	case $out in
	*"allowed-ok"*) case $out in *"Permission denied"*"status="[1-9]* | *"status="[1-9]*"Permission denied"*) [ -n "$d" ] ;; *) false ;; esac ;;
	*) false ;;
	esac
	check delegate-write-denied $? "inside: \"$out\"; host kernel: $d" "inside: \"$out\"; denial: \"$d\""
	remove d1

	# The control: containerd-shim-runc-v2 and runc without Palisade, same
	# rootfs and write. It must succeed, so the denial above is the profile's.
	timeout 180 ctr run -d --null-io --env PATH=/bin --runtime io.containerd.runc.v2 --rootfs "$(rootfs r1)" r1 sleep 600 >/run/r1.out 2>&1
	init=$(ctr task ls | awk '$1 == "r1" {print $2}')
	xc r1 sh -c 'echo b > /tmp/palisade-denied-write && echo write-ok'
	out=$(oneline </run/r1.exec)
	[ "$out" = write-ok ] && [ "$(label "$init")" = unconfined ]
	check runc-without-palisade-unconfined $? "init pid $init: $(label "$init"); inside: \"$out\"" \
		"init pid $init: \"$(label "$init")\"; inside: \"$out\"; $(oneline </run/r1.out)"
	remove r1
}

shipped_profile() {
	dmesg -c >/dev/null
	# The shipped handlers allow no host paths: this copy of the shipped
	# config allows the share, read-only, and changes nothing else.
	awk '/^\[/ {sec=$0} sec=="[handlers.gvisor.policy]" && /^host_paths = / {print "host_paths = [\"/srv/share\"]"; next} {print}' "$shipped" >/run/shipped-share.toml
	if ! run_d s1 /run/shipped-share.toml --mount "type=bind,src=$share,dst=/data,options=rbind:ro"; then
		result FAIL shipped-profile-started "$(oneline </run/s1.out)"
		return
	fi
	confined shipped-profile-sandbox-confined palisade-runsc $(pids_argv0 runsc-sandbox) $(pids_argv0 runsc-gofer)
	# A normal workload: read the bind mount (both files: the shipped profile
	# has no palisade-denied-* rule), write, list, look at processes.
	xc s1 sh -c 'cat /data/allowed.txt /data/palisade-denied-secret.txt && mkdir -p /tmp/a/b && echo w > /tmp/a/b/f && cat /tmp/a/b/f && ls /bin | wc -l && ps | wc -l && echo workload-ok'
	out=$(oneline </run/s1.exec)
	remove s1
	sed 's/^default_handler = .*/default_handler = "gvisor-strict"/' "$shipped" >"$strict"
	timeout 180 ctr run --rm --env PATH=/bin --runtime io.containerd.palisade.v2 --runtime-config-path "$strict" $strict_drops \
		--rootfs "$(rootfs s2)" s2 sh -c 'echo strict-ok' >/run/s2.out 2>&1
	strictout=$(oneline </run/s2.out)
	d=$(denials | oneline 600)
	case $out in *"allowed-content secret-content w "*" workload-ok") true ;; *) false ;; esac
	check shipped-profile-workload $? "gvisor handler: \"$out\"" "gvisor handler: \"$out\""
	[ "$strictout" = strict-ok ]
	check shipped-strict-handler-runs $? "gvisor-strict (required): \"$strictout\"" "gvisor-strict: \"$strictout\""
	[ -z "$d" ]
	check shipped-profile-no-denials $? "no apparmor=\"DENIED\" in the kernel log" "$d"
}

# no_confine_errors: every runsc and downstream shim invocation of this boot
# (create, start, exec, kill, delete, and containerd's `shim delete`) went
# through the trampoline without an error: a failure there fails the request
# closed, and ctr may not show it (a failed cleanup, say).
no_confine_errors() {
	errs=$(grep 'palisade: confine' /run/containerd.log | head -n 3 | oneline 600)
	[ -z "$errs" ]
	check no-confinement-errors $? "no \"palisade: confine\" error in containerd's log" "$errs"
}

# The negative control, apparmor=0.
doctor_disabled() {
	palisadectl doctor --config "$shipped" >/run/doctor.out 2>&1
	st=$?
	row=$(grep '^apparmor ' /run/doctor.out | oneline)
	strictrow=$(grep '^gvisor-strict ' /run/doctor.out | oneline)
	echo "$row" | grep -q '^apparmor missing disabled (/sys/module/apparmor/parameters/enabled is "N")$' &&
		echo "$strictrow" | grep -q 'FAIL will fail closed: apparmor profile "palisade-runsc" is required but the host cannot enforce it: AppArmor is disabled' &&
		[ $st = 1 ]
	check doctor-apparmor-disabled $? "exit 1, \"$row\", \"$strictrow\"" "exit $st: $(oneline 600 </run/doctor.out)"
}

# fails_closed NAME CONFIG PROFILE PROCESS EXTRA...: Create fails naming the
# profile and the host check, and no runtime process was started.
fails_closed() {
	name=$1 cfg=$2 profile=$3 proc=$4
	shift 4
	timeout 180 ctr run --rm --env PATH=/bin --runtime io.containerd.palisade.v2 --runtime-config-path "$cfg" "$@" \
		--rootfs "$(rootfs "$name")" "$name" sh -c 'echo ran' >"/run/$name.out" 2>&1
	st=$?
	msg=$(grep -o "apparmor profile \"$profile\" is required but the host cannot enforce it: [^\"]*" "/run/$name.out" | head -n 1)
	left=$(pids_argv0 "$proc" | oneline)
	[ $st != 0 ] && [ -n "$msg" ] && [ -z "$left" ] && ! grep -q '^ran$' "/run/$name.out"
	check "$name" $? "ctr exit $st: $msg" "ctr exit $st, $proc left: \"$left\": $(oneline 600 <"/run/$name.out")"
	timeout 60 ctr container rm "$name" >/dev/null 2>&1
}

optional_unenforced() {
	if ! run_d o1 "$shipped"; then
		result FAIL optional-handler-runs-unenforced "$(oneline </run/o1.out)"
		return
	fi
	xc o1 echo optional-ok
	out=$(oneline </run/o1.exec)
	palisadectl inspect o1 -n $ns --state $state --json >/run/o1.inspect 2>&1
	# The profile name is quoted inside the JSON string: \"palisade-runsc\".
	rec=$(grep -o '"not_enforced": *"optional host profile .* not attached: [^"]*"' /run/o1.inspect)
	sb=$(pids_argv0 runsc-sandbox | head -n 1)
	remove o1
	[ "$out" = optional-ok ] &&
		case $rec in *'palisade-runsc\" not attached: AppArmor is disabled'*) true ;; *) false ;; esac
	check optional-handler-runs-unenforced $? "gvisor handler (optional): \"$out\"; decision record: $rec" \
		"\"$out\"; $(oneline 600 </run/o1.inspect)"
	echo "# sandbox pid $sb attr/current: $(label "$sb")"
}

main() {
	mkdir -p "$share"
	echo allowed-content >"$share/allowed.txt"
	echo secret-content >"$share/palisade-denied-secret.txt"
	if ! start_containerd; then
		result FAIL containerd "did not start: $(tail -n 5 /run/containerd.log | oneline)"
	else
		case " $(cat /proc/cmdline) " in
		*" apparmor=0 "*)
			doctor_disabled
			sed 's/^default_handler = .*/default_handler = "gvisor-strict"/' "$shipped" >"$strict"
			fails_closed required-runsc-fails-closed "$strict" palisade-runsc runsc-sandbox $strict_drops
			fails_closed required-delegate-fails-closed "$delegated" palisade-vm-runc containerd-shim-runc-v2
			optional_unenforced
			;;
		*)
			doctor_enabled
			runsc_narrow
			delegate_runc
			shipped_profile
			no_confine_errors
			;;
		esac
	fi
	if [ "$failed" != 0 ]; then
		echo "# containerd log (tail):"
		tail -n 40 /run/containerd.log | sed 's/^/# /'
		echo "# kernel log (apparmor):"
		dmesg | grep -i apparmor | tail -n 20 | sed 's/^/# /'
	fi
	echo "$passed passed, $failed failed"
}
