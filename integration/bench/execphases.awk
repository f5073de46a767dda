# execphases.awk: where the time of a `ctr task exec` goes, from
#   perf record -e sched:sched_process_exec,sched:sched_process_exit -a
#   perf script -F pid,time,event,trace
# around execs run one at a time, the series in the order given by
# -v names="a b c" (round-robin). For each exec it prints
#   series  to_runtime  trampoline  runsc_exec  to_exit  total   (ms)
# to_runtime: ctr starts -> the trampoline (Palisade) or runsc (the peer)
#             starts: containerd, the shim's Exec and Start;
# trampoline: the trampoline starts -> it has exec'd runsc (0 for the peer);
# runsc_exec: `runsc exec --detach` runs, until it exits (runsc loads the
#             container, asks the sandbox to start the process, whose
#             seccomp filter the sentry compiles, and forks its waiter);
# to_exit:    -> ctr exits: the process runs, its waiter exits, the shim
#             reaps it and publishes the exit, ctr receives it.
function ms(a, b) { return (b - a) * 1000 }
BEGIN { n = split(names, series, " "); round = 0 }
{
	pid = $1; t = $2; sub(/:$/, "", t); ev = $3
	if (ev ~ /sched_process_exec/) {
		file = $4; sub(/^filename=/, "", file)
		if (file ~ /\/ctr$/) {
			s = series[round % n + 1]; round++
			t0 = t; ctr = pid; tr = ""; rs = ""; rsend = ""; rspid = ""
		} else if (t0 != "" && tr == "" && rs == "" && file ~ /(palisade-trampoline|containerd-shim-palisade-v2)$/) {
			tr = t
		} else if (t0 != "" && rs == "" && file ~ /runsc[^\/]*$/) {
			rs = t; rspid = pid
		}
	} else if (ev ~ /sched_process_exit/) {
		p = $0; sub(/.* pid=/, "", p); sub(/ .*/, "", p)
		if (rspid != "" && p == rspid && rsend == "") rsend = t
		if (t0 != "" && p == ctr) {
			if (rs != "" && rsend != "") {
				start = (tr != "") ? tr : rs
				printf "%s %.2f %.2f %.2f %.2f %.2f\n", s, ms(t0, start), ms(start, rs), ms(rs, rsend), ms(rsend, t), ms(t0, t)
			}
			t0 = ""
		}
	}
}
