#!/usr/bin/env bash
# Runs every libFuzzer target of a TERN_FUZZ build for a fixed time each and
# fails on the first finding (crash, sanitizer report, leak, timeout, OOM),
# printing its report and the path of the input that caused it.
#
#   fuzz/run.sh [BUILD_DIR [SECONDS]]     (defaults: build-fuzz, 20)
#
# Environment: FUZZ_JOBS targets at once (default: CPUs), FUZZ_TIMEOUT
# seconds one input may take (15), FUZZ_RSS_MB memory limit (2048),
# FUZZ_TARGETS a space-separated subset (default: all).
# New inputs go to BUILD_DIR/corpus-NAME (the committed corpus under
# fuzz/corpus/NAME is only read); findings to BUILD_DIR/findings/NAME/.
set -uo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-fuzz}
seconds=${2:-20}
jobs=${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 2)}
timeout=${FUZZ_TIMEOUT:-15}
rss=${FUZZ_RSS_MB:-2048}

targets=()
for f in "$build"/fuzz/fuzz-*; do
	n=$(basename "$f")
	case $n in *-replay) continue ;; esac
	[ -x "$f" ] || continue
	if [ -n "${FUZZ_TARGETS:-}" ] && [[ " $FUZZ_TARGETS " != *" $n "* ]]; then
		continue
	fi
	targets+=("$n")
done
if [ ${#targets[@]} -eq 0 ]; then
	echo "fuzz: no libFuzzer targets in $build/fuzz (configure with -DTERN_FUZZ=ON and clang)" >&2
	exit 1
fi

# UBSan only prints by default; a report must fail the run like ASan's.
# Known, not yet fixed reports are listed in fuzz/ubsan.supp.
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1:suppressions=$PWD/fuzz/ubsan.supp}

run_one() {
	local n=$1
	local corpus=$build/corpus-$n findings=$build/findings/$n/ log=$build/fuzz-$n.log
	mkdir -p "$corpus" "$findings"
	rm -f "$findings"*
	local args=(-max_total_time="$seconds" -timeout="$timeout" -rss_limit_mb="$rss"
		-artifact_prefix="$findings" -print_final_stats=1)
	# a session target shares its protocol's dictionary (imap.dict)
	local dict base=${n#fuzz-}
	dict=$(ls "fuzz/$base.dict" "fuzz/$n.dict" "fuzz/${base%-session}.dict" 2>/dev/null | head -1)
	[ -n "$dict" ] && args+=(-dict="$dict")
	case $n in
	*-session)
		# Inputs are whole sessions on a live server; -max_len lets the
		# fuzzer grow them past one command (its default is the
		# largest seed).
		args+=(-max_len=8192) ;;
	esac
	local start=$SECONDS
	"$build/fuzz/$n" "${args[@]}" "$corpus" "fuzz/corpus/$n" >"$log" 2>&1
	local rc=$?
	local execs rate
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
	if [ $rc -eq 0 ]; then
		printf 'fuzz: %-22s ok   %4ss  %8s runs  %6s exec/s\n' "$n" $((SECONDS - start)) \
			"${execs:-?}" "${rate:-?}"
		return 0
	fi
	{
		printf 'fuzz: %-22s FAILED (exit %d) after %ss; report (%s):\n' "$n" $rc \
			$((SECONDS - start)) "$log"
		# the report without libFuzzer's progress lines: what the target
		# printed (a harness check's reason) and the sanitizer's report
		grep -v -E '^#[0-9]+[[:space:]]|^INFO: |^MS: |^0x|^Dictionary: |NEW_FUNC|^[[:space:]]*$' "$log" | tail -150
		for a in "$findings"*; do
			[ -e "$a" ] || continue
			echo "fuzz: $n: input that caused it: $a"
			echo "fuzz:   reproduce: $build/fuzz/$n $a"
		done
	} >&2
	return 1
}

failed=0
running=0
for n in "${targets[@]}"; do
	if [ "$running" -ge "$jobs" ]; then
		wait -n || failed=1
		running=$((running - 1))
	fi
	run_one "$n" &
	running=$((running + 1))
done
while [ "$running" -gt 0 ]; do
	wait -n || failed=1
	running=$((running - 1))
done
if [ $failed -ne 0 ]; then
	echo "fuzz: FAILED: see the report(s) above; findings are under $build/findings/" >&2
	exit 1
fi
echo "fuzz: all ${#targets[@]} targets ran ${seconds}s each without a finding"
