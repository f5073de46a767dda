#!/usr/bin/env bash
# Runs every Go fuzz target of the module, one after another, for FUZZTIME
# each, and prints a table: target, time, execs, result.
#
#   bash integration/fuzz.sh [FUZZTIME]              # default 10m (make fuzz)
#   FUZZ_BUDGET=150 bash integration/fuzz.sh 15s     # CI (make fuzz-ci)
#
# Targets are found, not listed: every `func FuzzXxx(*testing.F)` in a test
# file of a package of the module, as `go test -list` reports it, so a new
# target is fuzzed without touching this script. FUZZ_PKGS (go list
# patterns, default ./...) narrows the search.
#
# A crash makes the script exit 1 after all targets ran. Go keeps the input
# that crashed under testdata/fuzz/<target>/ of its package; commit it with
# the fix, and `go test` replays it from then on. Logs go to FUZZ_LOGDIR
# (default a temporary directory), one file per target.
set -uo pipefail
cd "$(dirname "$0")/.."

FUZZTIME=${1:-10m}
GO=${GO:-go}
FUZZ_PKGS=${FUZZ_PKGS:-./...}
LOGDIR=${FUZZ_LOGDIR:-$(mktemp -d /tmp/palisade-fuzz.XXXXXX)}
mkdir -p "$LOGDIR"

# seconds turns a Go duration of whole units (90s, 10m, 1h) into seconds;
# an iteration count (1000x) gets a generous 10 minutes.
seconds() {
	case $1 in
	*[!0-9]*[smh] | [smh]) echo 600 ;;
	*h) echo $((${1%h} * 3600)) ;;
	*m) echo $((${1%m} * 60)) ;;
	*s) echo "${1%s}" ;;
	*) echo 600 ;;
	esac
}

# Packages whose test files mention a fuzz target; `go test -list` then
# compiles only those and names their targets exactly.
pkgs=$($GO list -f '{{.Dir}}{{range .TestGoFiles}} {{.}}{{end}}{{range .XTestGoFiles}} {{.}}{{end}}' $FUZZ_PKGS |
	while read -r dir files; do
		[ -n "$files" ] || continue
		(cd "$dir" && grep -lE '^func Fuzz[A-Za-z0-9_]*\(' $files >/dev/null 2>&1) && echo "$dir"
	done)
if [ -z "$pkgs" ]; then
	echo "fuzz: no fuzz targets found in $FUZZ_PKGS" >&2
	exit 1
fi

root=$PWD
rows=()
failed=0
targets=() # "dir name"
for dir in $pkgs; do
	rel=${dir#"$root"/}
	[ "$dir" = "$root" ] && rel=.
	list="$LOGDIR/${rel//\//_}.list"
	if ! (cd "$dir" && $GO test -list '^Fuzz' . >"$list" 2>&1); then
		echo "fuzz: $rel: the tests do not build:" >&2
		sed 's/^/    /' "$list" >&2
		rows+=("$rel|-|-|BUILD FAILED")
		failed=1
		continue
	fi
	for name in $(grep -E '^Fuzz' "$list"); do
		targets+=("$dir $name")
	done
done

# FUZZ_BUDGET (seconds, for CI) shares a total among the targets, so that
# new targets do not stretch the run: each gets FUZZTIME or its share of
# the budget, whichever is less, but at least 5s.
each=$FUZZTIME
if [ -n "${FUZZ_BUDGET:-}" ] && [ ${#targets[@]} -gt 0 ]; then
	share=$((FUZZ_BUDGET / ${#targets[@]}))
	[ $share -lt 5 ] && share=5
	[ $share -lt "$(seconds "$FUZZTIME")" ] && each=${share}s
fi
# Go minimizes every input that finds new coverage for up to a minute,
# counting nothing meanwhile; a quarter of the run is enough for that.
minimize=$(($(seconds "$each") / 4))
[ $minimize -lt 1 ] && minimize=1
[ $minimize -gt 60 ] && minimize=60
# A hung target must not stall CI: stop it well after its time is up.
# Building a package with fuzzing instrumentation takes most of the slack.
limit=$(($(seconds "$each") + 300))

# deadline_race tells Go's own coordinator race (go.dev/issue/75804, fixed
# in Go 1.27) from a finding: when -fuzztime ends while a worker is mid-call
# on a loaded machine, go1.26 reports a bare "context deadline exceeded" as
# the target's failure, with no failing input written. Only that exact
# shape qualifies; anything else (a panic, a written input, a build error)
# stays a failure.
deadline_race() {
	grep -qE '^[[:space:]]*context deadline exceeded$' "$1" &&
		! grep -qE 'Failing input written|panic:|testdata/fuzz/' "$1"
}

# replay runs the target's seeds and kept inputs as a plain test, so a race
# is only forgiven when nothing reproducible is there to find.
replay() {
	echo "fuzz: $2: a bare deadline error and no failing input; replaying its seeds" >>"$3"
	(cd "$1" && $GO test -count=1 -run "^$2\$" . >>"$3" 2>&1)
}

total=0
for t in "${targets[@]}"; do
	dir=${t% *}
	name=${t#* }
	rel=${dir#"$root"/}
	[ "$dir" = "$root" ] && rel=.
	log="$LOGDIR/${rel//\//_}.$name.log"
	echo "fuzz: $rel $name for $each (log: $log)"
	start=$(date +%s)
	(cd "$dir" && timeout --kill-after=10 "$limit" \
		$GO test -run '^$' -fuzz "^$name\$" -fuzztime "$each" -fuzzminimizetime "${minimize}s" . >"$log" 2>&1)
	rc=$?
	took=$(($(date +%s) - start))
	total=$((total + took))
	# The last progress line: "fuzz: elapsed: 15s, execs: 123456 (8230/sec), ...";
	# a lower bound, as Go does not count the executions of a minimization
	# still under way when the time is up.
	execs=$(grep -oE 'execs: [0-9]+' "$log" | tail -n 1 | cut -d' ' -f2)
	result=ok
	if [ $rc -ne 0 ]; then
		if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
			result="HUNG (stopped after ${limit}s)"
		elif crasher=$(grep -oE 'testdata/fuzz/[^ ]+' "$log" | tail -n 1) && [ -n "$crasher" ]; then
			result="CRASH: $rel/$crasher"
		elif deadline_race "$log" && replay "$dir" "$name" "$log"; then
			result="ok (Go's fuzztime race, go.dev/issue/75804; seeds replayed)"
		else
			result="FAILED (exit $rc)"
		fi
		case $result in ok*) ;; *) failed=1 ;; esac
		tail -n 30 "$log" | sed 's/^/    /'
	fi
	rows+=("$rel.$name|${took}s|${execs:--}|$result")
done

echo
printf '%-48s %7s %12s  %s\n' TARGET TIME EXECS RESULT
for row in "${rows[@]}"; do
	IFS='|' read -r target took execs result <<<"$row"
	printf '%-48s %7s %12s  %s\n' "$target" "$took" "$execs" "$result"
done
echo "fuzz: ${#targets[@]} targets, ${total}s, $each each, logs in $LOGDIR"
if [ $failed -ne 0 ]; then
	echo "fuzz: FAILED; crashers are kept under testdata/fuzz/ of their package" >&2
	exit 1
fi
