#!/bin/sh
# SPDX-License-Identifier: ISC
#
# evpop3d fuzz smoke test (`make fuzz-smoke`): for each target, run every
# seed of tests/fuzz/corpus/<target> once, then fuzz for SECONDS on a
# scratch copy of the seeds under tests/fuzz/corpus-work/.  Any crash,
# leak, UBSan report or timeout fails the run; the input that caused it is
# saved under tests/fuzz/crashes/.  Run from the top of the source tree.
#
#   sh tests/fuzz/run-smoke.sh SECONDS TARGET...
#
# FUZZ_RUN_FLAGS holds libFuzzer options common to every run,
# FUZZ_QUIET_TARGETS the targets run with -close_fd_mask=2; ASAN_OPTIONS and
# UBSAN_OPTIONS come from the caller (fuzz.mk sets them all).

set -u

secs=${1:-10}
shift
dir=tests/fuzz
common=${FUZZ_RUN_FLAGS:--timeout=25 -max_len=8192}
quiet=${FUZZ_QUIET_TARGETS:-fuzz_session}
failed=""

mkdir -p "$dir/crashes" "$dir/corpus-work"
for t in "$@"; do
	bin=$dir/bin/$t
	seeds=$dir/corpus/$t
	work=$dir/corpus-work/smoke-$t
	log=$dir/corpus-work/smoke-$t.log
	# Targets whose code logs to stderr run with it closed.
	flags=$common
	case " $quiet " in
	*" $t "*) flags="$flags -close_fd_mask=2" ;;
	esac
	if [ ! -x "$bin" ]; then
		echo "$t: $bin missing (make fuzz-build)"
		failed="$failed $t"
		continue
	fi
	: > "$log"
	# Every seed once: each file is an input of its own.
	nseeds=0
	if [ -d "$seeds" ]; then
		nseeds=$(find "$seeds" -type f | wc -l)
	fi
	if [ "$nseeds" -gt 0 ]; then
		# shellcheck disable=SC2086
		if ! "$bin" $flags -artifact_prefix="$dir/crashes/$t-" \
		    "$seeds"/* >> "$log" 2>&1; then
			tail -n 40 "$log"
			echo "$t: FAILED on a seed (log $log)"
			failed="$failed $t"
			continue
		fi
	fi
	# Then fuzz for a while from the seeds.
	rm -rf "$work"
	mkdir -p "$work"
	if [ "$nseeds" -gt 0 ]; then
		cp "$seeds"/* "$work"/
	fi
	# shellcheck disable=SC2086
	if ! "$bin" $flags -max_total_time="$secs" \
	    -artifact_prefix="$dir/crashes/$t-" "$work" >> "$log" 2>&1; then
		tail -n 60 "$log"
		echo "$t: FAILED while fuzzing (log $log)"
		failed="$failed $t"
		continue
	fi
	stats=$(grep -E '^#[0-9]+' "$log" | grep 'cov:' | tail -n 1)
	echo "$t: ok, $nseeds seeds; $stats"
done

if [ -n "$failed" ]; then
	echo "fuzz-smoke: FAILED:$failed"
	exit 1
fi
echo "fuzz-smoke: all targets passed"
