#!/bin/bash
# bench/move.sh - online mailbox moves (issue 10): two ternd nodes on
# loopback sharing one directory (bench/README.md, "Mailbox moves (issue 10)").
#
# Usage:  bench/move.sh [phase ...]
#         phases: build setup bulk window freeze report stop
#         (default "all" = build setup bulk window freeze report; the nodes
#         are stopped at exit)
#   build   ternd/ternctl (Release, TERN_TEST_FAULTS=OFF, <repo>/build-bench2)
#           unless TERND/TERNCTL are given; lmtp-load from the shared sources;
#           bench/freeze-check.c against that build's libtern.a
#   setup   configs for node-a and node-b (fresh data and directory), user0
#           and user1 homed on node-a
#   bulk    user0 gets BULK_MSGS x 4 KiB on node-a; RUNS rounds, each: one
#           timed Tern move of user0 (alternating a->b, b->a; `ternctl move
#           start`, then `move status --json` every 50 ms until completed)
#           and one Dovecot round (run-dovecot-baseline.sh's `move` phase,
#           RUNS=1: `doveadm backup` of the same 20,000 x 4 KiB mailbox to a
#           second instance over TCP, and to a local path), the order of the
#           two alternating round by round
#   window  user1 (WINDOW_SEED messages) receives mail continuously from
#           WINDOW_CLIENTS LMTP clients (half through each node) while it is
#           moved WINDOW_MOVES times, alternating a->b and b->a; the freeze-
#           to-switch windows W from the destinations' logs, the clients'
#           replies (2xx / 4xx / 5xx / connection errors)
#   freeze  bench/freeze-check: ns per freeze_park()/freeze_none() with no
#           user frozen and with FROZEN users frozen
#   report  the tables, from $ROOT/results/latest (or RESULTS=dir)
#   stop    stop this script's nodes (a run interrupted earlier)
# Environment:
#   RUNS=5 BULK_MSGS=20000 WINDOW_MOVES=20 WINDOW_CLIENTS=4 WINDOW_SEED=200
#   FROZEN=10000 DC_FORMAT=mdbox DOVECOT=1 (0: Tern only)
#   TERND=/path/ternd TERNCTL=/path/ternctl   use these instead of building
#   ROOT=/tmp/ternmvbench  DC_ROOT=$ROOT/dovecot  SHARED=/work/shared/bench
# Ports: node-a IMAP 20301 LMTP 20302 POP3 20303 cluster 20304;
#        node-b IMAP 20311 LMTP 20312 POP3 20313 cluster 20314;
#        Dovecot (run-dovecot-baseline.sh) 20001-20003 and 20011-20014.
# Every tool run is capped by `timeout`; only the ternd processes and the
# Dovecot instances started here are stopped, by their PIDs.
set -u
BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
REPO=${REPO:-$(cd "$BENCH_DIR/.." && pwd)}
SHARED=${SHARED:-/work/shared/bench}
ROOT=${ROOT:-/tmp/ternmvbench}
DC_ROOT=${DC_ROOT:-$ROOT/dovecot}
DC_SCRIPT=$SHARED/run-dovecot-baseline.sh
DC_FORMAT=${DC_FORMAT:-mdbox}
DOVECOT=${DOVECOT:-1}
RUNS=${RUNS:-5}
BULK_MSGS=${BULK_MSGS:-20000}
WINDOW_MOVES=${WINDOW_MOVES:-20}
WINDOW_CLIENTS=${WINDOW_CLIENTS:-4}
WINDOW_SEED=${WINDOW_SEED:-200}
FROZEN=${FROZEN:-10000}
DOMAIN=example.test
SECRET=tern-bench-move-secret-0123456789abc
TMO=600
STOP_TMO=300
BIN=$ROOT/bin
BUILD_DIR=$REPO/build-bench2
STAMP=${STAMP:-$(date +%Y%m%d-%H%M%S)}
RESDIR=${RESULTS:-$ROOT/results/$STAMP}
RES=$RESDIR/move.txt
PY="python3 $BENCH_DIR/movelib.py"
NODES="a b"
declare -A PID=([a]="" [b]="") IMAP=([a]=20301 [b]=20311) LMTP=([a]=20302 [b]=20312)
declare -A POP3=([a]=20303 [b]=20313) CLPORT=([a]=20304 [b]=20314)
DC_STARTED=0

BENCH_NAME=move.sh LOG_LEVEL=info
. "$BENCH_DIR/twonode.sh"

dc() { # run-dovecot-baseline.sh with our settings: dc phase...
	DC_STARTED=1
	env ROOT="$DC_ROOT" FORMAT="$DC_FORMAT" RUNS=1 IMAP_MSGS="$BULK_MSGS" TAG="-move-$STAMP" \
		timeout $((TMO * 4)) "$DC_SCRIPT" "$@"
}

cleanup() {
	trap - EXIT INT TERM
	stop_all
	if [ "$DC_STARTED" = 1 ]; then
		log "stopping the Dovecot bench instances"
		env ROOT="$DC_ROOT" timeout 120 "$DC_SCRIPT" stop
	fi
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# ---------------------------------------------------------------- build
phase_build() {
	mkdir -p "$BIN"
	if [ ! -x "$BIN/lmtp-load" ] || [ "$SHARED/lmtp-load.c" -nt "$BIN/lmtp-load" ]; then
		cc -O2 -Wall -o "$BIN/lmtp-load" "$SHARED/lmtp-load.c" -lpthread || die "build lmtp-load"
	fi
	if [ "$GIVEN_BINS" = 1 ]; then
		[ -x "$TERND" ] && [ -x "$TERNCTL" ] || die "TERND and TERNCTL must both name executables"
		log "using TERND=$TERND TERNCTL=$TERNCTL (not built here)"
	else
		log "building Tern (Release, TERN_TEST_FAULTS=OFF) in $BUILD_DIR"
		timeout 1800 cmake -S "$REPO" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DTERN_TEST_FAULTS=OFF \
			-DCMAKE_C_FLAGS=-Wno-error=maybe-uninitialized > "$ROOT/build.log" 2>&1 &&
			timeout 1800 cmake --build "$BUILD_DIR" -j "$(nproc)" --target ternd ternctl >> "$ROOT/build.log" 2>&1 ||
			{ tail -20 "$ROOT/build.log" >&2; die "Tern build failed (log: $ROOT/build.log)"; }
	fi
	# the microbenchmark links the library the binaries were built from
	local lib
	lib=$(dirname "$TERND")/libtern.a
	[ -f "$lib" ] || die "no $lib next to $TERND (freeze-check links it)"
	cc -O2 -Wall -I "$REPO/src" -o "$BIN/freeze-check" "$BENCH_DIR/freeze-check.c" "$lib" \
		$(pkg-config --libs libevent libevent_pthreads libevent_openssl sqlite3 gmime-3.0 openssl \
			jansson libargon2 libxcrypt zlib) -lunistring -lpthread -lm || die "build freeze-check"
	record_meta
}

record_meta() {
	mkdir -p "$RESDIR"
	ln -sfn "$RESDIR" "$ROOT/results/latest"
	{
		echo "date=$(date -Is)"
		echo "commit=$(git -C "$REPO" rev-parse --short HEAD 2> /dev/null || echo unknown)"
		echo "modified_tracked=$(git -C "$REPO" status --porcelain --untracked-files=no 2> /dev/null | awk '{print $2}' | tr '\n' ' ')"
		echo "ternd=$TERND built=$(date -r "$TERND" -Is 2> /dev/null)"
		echo "cpu=$(lscpu | sed -n 's/^Model name: *//p') x $(nproc)"
		echo "kernel=$(uname -r)"
		echo "dovecot=$(dovecot --version 2> /dev/null || echo none) format=$DC_FORMAT"
		echo "loadavg_at_start=$(cut -d' ' -f1-3 /proc/loadavg)"
		echo "runs=$RUNS bulk_msgs=$BULK_MSGS window_moves=$WINDOW_MOVES window_clients=$WINDOW_CLIENTS frozen=$FROZEN"
	} >> "$RESDIR/meta.info"
}

# ---------------------------------------------------------------- setup

phase_setup() {
	local n u
	mkdir -p "$RESDIR"
	stop_all
	for n in $NODES; do node_kill_stale "$n"; done
	rm -rf "${ROOT:?}/node-a" "${ROOT:?}/node-b" "${ROOT:?}/shared"
	for n in $NODES; do write_conf "$n"; done
	for u in user0 user1; do
		timeout 60 "$TERNCTL" --config "$(conf a)" user add "$u" --home node-a --hash '{PLAIN}pass' > /dev/null ||
			die "ternctl user add $u failed"
	done
	if [ "$DOVECOT" = 1 ]; then
		command -v dovecot > /dev/null && command -v doveadm > /dev/null || die "dovecot/doveadm not installed (DOVECOT=0 for Tern alone)"
		dc setup > "$ROOT/dovecot-setup.log" 2>&1 || { tail -5 "$ROOT/dovecot-setup.log" >&2; die "Dovecot setup failed"; }
	fi
}

ensure_ready() {
	[ -x "$BIN/lmtp-load" ] && [ -x "$BIN/freeze-check" ] && [ -x "$TERND" ] || phase_build
	[ -f "$RESDIR/meta.info" ] || record_meta
	[ -f "$(conf a)" ] && [ -f "$(conf b)" ] || phase_setup
}

home_of() { # USER -> a|b
	timeout 60 "$TERNCTL" --config "$(conf a)" --json user show "$1" |
		python3 -c 'import json,sys; print(json.load(sys.stdin)["home"][-1])'
}

# ---------------------------------------------------------------- bulk
tern_move_round() { # RUN
	local r=$1 from to
	from=$(home_of user0) || die "user0 has no home"
	to=$(other "$from")
	log "Tern: move user0 ($BULK_MSGS msgs) node-$from -> node-$to, run $r"
	timeout $TMO $PY move --ternctl "$TERNCTL" --conf "$(conf "$from")" --user user0 --to "node-$to" \
		--log "$ROOT/node-$to/ternd.log" --label bulk --run "$r" --from "node-$from" \
		--msgs "$BULK_MSGS" --poll 0.05 --out "$RES" || log "WARNING: Tern move run $r failed"
}

dc_move_round() { # RUN
	local r=$1 f=$DC_ROOT/results/$DC_FORMAT-move-$STAMP.txt n0 n1
	n0=$( [ -f "$f" ] && wc -l < "$f" || echo 0)
	log "Dovecot: run-dovecot-baseline.sh move (RUNS=1, $DC_FORMAT), run $r"
	dc move > "$ROOT/dovecot-move-$r.log" 2>&1 || log "WARNING: Dovecot move phase run $r exited with $?"
	[ -f "$f" ] || { log "WARNING: no Dovecot results in $f"; return 0; }
	# its tool=move lines, tagged with our round
	tail -n +$((n0 + 1)) "$f" | grep '^tool=move' | sed "s/^tool=move /tool=dcmove dcrun=$r /" >> "$RES"
}

phase_bulk() {
	local r
	ensure_ready
	start_all
	log "delivering $BULK_MSGS x 4 KiB to user0 on node-a"
	[ "$(home_of user0)" = a ] || die "user0 is not homed on node-a (run setup)"
	timeout $TMO "$BIN/lmtp-load" --port "${LMTP[a]}" --conns 4 --messages "$BULK_MSGS" --size 4096 \
		--users 1 --domain $DOMAIN --quiet > /dev/null || die "delivery to user0 failed"
	for r in $(seq "$RUNS"); do
		if [ "$DOVECOT" = 1 ] && [ $((r % 2)) = 0 ]; then dc_move_round "$r"; fi
		tern_move_round "$r"
		if [ "$DOVECOT" = 1 ] && [ $((r % 2)) = 1 ]; then dc_move_round "$r"; fi
	done
	[ "$DOVECOT" = 1 ] && env ROOT="$DC_ROOT" timeout 120 "$DC_SCRIPT" stop
	echo "loadavg_after_bulk=$(cut -d' ' -f1-3 /proc/loadavg)" >> "$RESDIR/meta.info"
}

# ---------------------------------------------------------------- window
phase_window() {
	ensure_ready
	start_all
	log "seeding user1 with $WINDOW_SEED messages"
	timeout $TMO "$BIN/lmtp-load" --port "${LMTP[$(home_of user1)]}" --conns 1 --messages "$WINDOW_SEED" \
		--size 4096 --users 1 --user-base 1 --domain $DOMAIN --quiet > /dev/null || die "seeding user1 failed"
	log "window: $WINDOW_MOVES moves of user1 under $WINDOW_CLIENTS LMTP clients"
	timeout $((TMO * 3)) $PY window --ternctl "$TERNCTL" --conf-a "$(conf a)" --conf-b "$(conf b)" \
		--log-a "$ROOT/node-a/ternd.log" --log-b "$ROOT/node-b/ternd.log" \
		--lmtp-a "${LMTP[a]}" --lmtp-b "${LMTP[b]}" --imap-a "${IMAP[a]}" --user user1 --domain $DOMAIN \
		--moves "$WINDOW_MOVES" --clients "$WINDOW_CLIENTS" --out "$RES" || log "WARNING: window phase failed"
	echo "loadavg_after_window=$(cut -d' ' -f1-3 /proc/loadavg)" >> "$RESDIR/meta.info"
}

# ---------------------------------------------------------------- freeze
phase_freeze() {
	ensure_ready
	stop_all   # a quiet machine, as far as this script goes
	log "freeze-check: none frozen, then $FROZEN frozen"
	timeout $TMO "$BIN/freeze-check" --frozen "$FROZEN" --out "$RES" 2> /dev/null ||
		log "WARNING: freeze-check failed"
}

phase_report() {
	local d=$RESDIR
	[ -f "$d/move.txt" ] || d=$(readlink -f "$ROOT/results/latest")
	[ -f "$d/move.txt" ] || die "no results in $d"
	echo
	echo "## Mailbox moves, $(sed -n 's/^date=//p' "$d/meta.info" | head -1)"
	echo
	sed -n 's/^\(commit\|modified_tracked\|ternd\|cpu\|kernel\|dovecot\|loadavg_[a-z_]*\|runs\)=/\1: /p' "$d/meta.info" | sed 's/^/    /'
	echo
	$PY report "$d" | tee "$d/table.md"
	echo "(raw key=value lines: $d)"
}

phase_stop() { local n; for n in $NODES; do node_kill_stale "$n"; done; }

# ---------------------------------------------------------------- main
[ $# -eq 0 ] && set -- all
mkdir -p "$ROOT/results" "$BIN"
ulimit -Sn "$(ulimit -Hn)" 2> /dev/null || true
GIVEN_BINS=0
if [ -n "${TERND:-}${TERNCTL:-}" ]; then GIVEN_BINS=1; TERND=${TERND:-} TERNCTL=${TERNCTL:-}
else TERND=$BUILD_DIR/ternd TERNCTL=$BUILD_DIR/ternctl; fi
for ph in "$@"; do
	case $ph in
	all) phase_build; phase_setup; phase_bulk; phase_window; phase_freeze; phase_report ;;
	build|setup|bulk|window|freeze|report|stop) phase_$ph ;;
	*) die "unknown phase $ph (build setup bulk window freeze report stop all)" ;;
	esac
done
