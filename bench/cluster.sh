#!/bin/bash
# bench/cluster.sh - what the cluster proxy hop costs (issue 9): two ternd
# nodes on loopback sharing one directory, every user homed on node A; the
# same workload straight to A and through B (the front), interleaved round by
# round, reported as proxied/straight ratios (bench/README.md, "Cluster proxy
# (issue 9)").
#
# Usage:  bench/cluster.sh [phase ...]
#         phases: build setup lmtp imap report stop
#         (default "all" = build setup lmtp imap report; the nodes are stopped
#         at exit)
#   build   ternd/ternctl (Release, TERN_TEST_FAULTS=OFF, <repo>/build-bench)
#           unless TERND/TERNCTL are given; lmtp-load/imap-load from the
#           shared sources, imap-rtt from bench/imap-rtt.c
#   setup   configs for node-a and node-b, user0..user999 homed on node-a
#   lmtp    LMTP_MSGS x 4 KiB over LMTP_CONNS connections to 1000 users,
#           primed store, straight to A vs through B; RUNS rounds, the order
#           alternating round by round
#   imap    user0 gets IMAP_MSGS x 4 KiB; per round, straight vs through B:
#           fetch-all (UID FETCH 1:* BODY.PEEK[]) FETCH_REPEAT times in one
#           session, with each node's CPU and bytes written (/proc); the
#           round trip of NOOP and of a one-message FETCH (imap-rtt,
#           RTT_ROUNDS each, one command in flight); LOGIN+SELECT latency
#   report  the tables, from $ROOT/results/latest (or RESULTS=dir)
#   stop    stop this script's nodes (a run interrupted earlier)
# Environment:
#   RUNS=5 LMTP_MSGS=20000 LMTP_CONNS=16 IMAP_MSGS=20000 FETCH_REPEAT=3
#   RTT_ROUNDS=2000 LOGIN_REPEAT=50
#   TERND=/path/ternd TERNCTL=/path/ternctl   use these instead of building
#   ROOT=/tmp/ternclbench  SHARED=/work/shared/bench
# Ports: node-a IMAP 20201 LMTP 20202 POP3 20203 cluster 20204;
#        node-b IMAP 20211 LMTP 20212 POP3 20213 cluster 20214.
# Every tool run is capped by `timeout`; only the ternd processes started
# here are stopped, by their PIDs.
set -u
BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
REPO=${REPO:-$(cd "$BENCH_DIR/.." && pwd)}
SHARED=${SHARED:-/work/shared/bench}
ROOT=${ROOT:-/tmp/ternclbench}
RUNS=${RUNS:-5}
LMTP_MSGS=${LMTP_MSGS:-20000}
LMTP_CONNS=${LMTP_CONNS:-16}
IMAP_MSGS=${IMAP_MSGS:-20000}
FETCH_REPEAT=${FETCH_REPEAT:-3}
RTT_ROUNDS=${RTT_ROUNDS:-2000}
LOGIN_REPEAT=${LOGIN_REPEAT:-50}
NUSERS=1000
DOMAIN=example.test
SECRET=tern-bench-cluster-secret-0123456789
TMO=600
STOP_TMO=300
BIN=$ROOT/bin
BUILD_DIR=$REPO/build-bench
STAMP=${STAMP:-$(date +%Y%m%d-%H%M%S)}
RESDIR=${RESULTS:-$ROOT/results/$STAMP}
RES=$RESDIR/cluster.txt
PY="python3 $BENCH_DIR/clusterlib.py"
NODES="a b"
declare -A PID=([a]="" [b]="") IMAP=([a]=20201 [b]=20211) LMTP=([a]=20202 [b]=20212)
declare -A POP3=([a]=20203 [b]=20213) CLPORT=([a]=20204 [b]=20214)
declare -A VIA=([straight]=a [proxied]=b)

BENCH_NAME=cluster.sh LOG_LEVEL=warning
. "$BENCH_DIR/twonode.sh"

wipe_all() { # stop, delete all mail and journals on both nodes, start
	local n
	stop_all
	for n in $NODES; do rm -rf "$(data "$n")"/mail/* "$(data "$n")"/delivery.journal*; done
	start_all
}

cleanup() {
	trap - EXIT INT TERM
	stop_all
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# ---------------------------------------------------------------- build
phase_build() {
	local t
	mkdir -p "$BIN"
	for t in lmtp-load imap-load; do
		if [ ! -x "$BIN/$t" ] || [ "$SHARED/$t.c" -nt "$BIN/$t" ]; then
			cc -O2 -Wall -o "$BIN/$t" "$SHARED/$t.c" -lpthread || die "build $t"
		fi
	done
	if [ ! -x "$BIN/imap-rtt" ] || [ "$BENCH_DIR/imap-rtt.c" -nt "$BIN/imap-rtt" ]; then
		cc -O2 -Wall -o "$BIN/imap-rtt" "$BENCH_DIR/imap-rtt.c" || die "build imap-rtt"
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
	record_meta
}

record_meta() {
	mkdir -p "$RESDIR"
	ln -sfn "$RESDIR" "$ROOT/results/latest"
	{
		echo "date=$(date -Is)"
		echo "commit=$(git -C "$REPO" rev-parse --short HEAD 2> /dev/null || echo unknown)"
		echo "modified_tracked=$(git -C "$REPO" status --porcelain --untracked-files=no 2> /dev/null | awk '{print $2}' | tr '\n' ' ')"
		echo "ternd=$TERND"
		echo "cpu=$(lscpu | sed -n 's/^Model name: *//p') x $(nproc)"
		echo "kernel=$(uname -r)"
		echo "loadavg_at_start=$(cut -d' ' -f1-3 /proc/loadavg)"
		echo "runs=$RUNS lmtp_msgs=$LMTP_MSGS lmtp_conns=$LMTP_CONNS imap_msgs=$IMAP_MSGS fetch_repeat=$FETCH_REPEAT rtt_rounds=$RTT_ROUNDS"
	} >> "$RESDIR/meta.info"
}

# ---------------------------------------------------------------- setup

phase_setup() {
	local n have i
	mkdir -p "$RESDIR"
	stop_all
	for n in $NODES; do node_kill_stale "$n"; write_conf "$n"; done
	# {PLAIN} password (as in bench/run.sh): LOGIN costs no hashing
	have=$(mktemp)
	timeout 120 "$TERNCTL" --config "$(conf a)" --json user list 2> /dev/null |
		python3 -c 'import json,sys; [print(u["name"]) for u in json.load(sys.stdin)]' > "$have" 2> /dev/null || true
	i=$(grep -c '^user' "$have")
	if [ "$i" -ge "$NUSERS" ]; then
		log "user0..user$((NUSERS - 1)) already exist in $ROOT/shared/directory.db"
	else
		log "creating user0..user$((NUSERS - 1)) homed on node-a"
		for i in $(seq 0 $((NUSERS - 1))); do
			grep -qx "user$i" "$have" && continue
			timeout 60 "$TERNCTL" --config "$(conf a)" user add "user$i" --home node-a --hash '{PLAIN}pass' > /dev/null ||
				die "ternctl user add user$i failed"
		done
	fi
	rm -f "$have"
}

ensure_ready() {
	[ -x "$BIN/lmtp-load" ] && [ -x "$BIN/imap-load" ] && [ -x "$BIN/imap-rtt" ] && [ -x "$TERND" ] || phase_build
	[ -f "$RESDIR/meta.info" ] || record_meta
	[ -f "$(conf a)" ] && [ -f "$(conf b)" ] || phase_setup
}

# ---------------------------------------------------------------- measuring
lmtp() { # PORT CONNS MSGS USERS [extra]
	local port=$1 c=$2 n=$3 u=$4
	shift 4
	timeout $TMO "$BIN/lmtp-load" --port "$port" --conns "$c" --messages "$n" --size 4096 \
		--users "$u" --domain $DOMAIN "$@"
}

# measured LABEL RUN -- command...: both nodes' CPU and I/O bytes around it
measured() {
	local label=$1 r=$2 n rc
	shift 3
	for n in $NODES; do $PY snap "${PID[$n]}" > "$ROOT/snap0.$n"; done
	"$@"
	rc=$?
	for n in $NODES; do
		$PY snap "${PID[$n]}" > "$ROOT/snap1.$n"
		echo "tool=cpu label=$label run=$r node=$n $($PY diff "$ROOT/snap0.$n" "$ROOT/snap1.$n")" >> "$RES"
	done
	[ $rc = 0 ] || log "WARNING: $label run $r exited with $rc"
	return $rc
}

order() { # RUN: the two paths, the first one alternating round by round
	if [ $(($1 % 2)) = 1 ]; then echo "straight proxied"; else echo "proxied straight"; fi
}

lmtp_point() { # MODE RUN
	local m=$1 r=$2 label=lmtp-4k-c$LMTP_CONNS-$1 port=${LMTP[${VIA[$1]}]}
	wipe_all
	lmtp "${LMTP[a]}" 4 $NUSERS $NUSERS --quiet > /dev/null || die "priming failed"
	# untimed: opens the front's cluster channels (pooled) as the timed run would find them
	lmtp "$port" "$LMTP_CONNS" $((LMTP_CONNS * 4)) $NUSERS --quiet > /dev/null || die "warm-up via node-${VIA[$m]} failed"
	log "LMTP $label run $r (port $port)"
	measured "$label" "$r" -- lmtp "$port" "$LMTP_CONNS" "$LMTP_MSGS" $NUSERS --label "$label" --out "$RES" --quiet
}

phase_lmtp() {
	local r m
	ensure_ready
	for r in $(seq "$RUNS"); do
		for m in $(order "$r"); do lmtp_point "$m" "$r"; done
	done
	stop_all
	echo "loadavg_after_lmtp=$(cut -d' ' -f1-3 /proc/loadavg)" >> "$RESDIR/meta.info"
}

imap_round() { # MODE RUN
	local m=$1 r=$2 port=${IMAP[${VIA[$1]}]}
	log "IMAP $m run $r (port $port): fetch-all x$FETCH_REPEAT, NOOP/FETCH-one x$RTT_ROUNDS, LOGIN x$LOGIN_REPEAT"
	measured "fetch-$m" "$r" -- timeout $TMO "$BIN/imap-load" --mode fetch-all --port "$port" \
		--user "user0@$DOMAIN" --repeat "$FETCH_REPEAT" --label "fetch-$m" --out "$RES" > /dev/null
	timeout $TMO "$BIN/imap-rtt" --port "$port" --user "user0@$DOMAIN" --rounds "$RTT_ROUNDS" \
		--label "rtt-$m" --out "$RES" > /dev/null || log "WARNING: imap-rtt $m run $r failed"
	timeout $TMO "$BIN/imap-load" --mode select --port "$port" --user "user1@$DOMAIN" \
		--repeat "$LOGIN_REPEAT" --label "login-$m" --out "$RES" > /dev/null || log "WARNING: login $m run $r failed"
}

phase_imap() {
	local r m
	ensure_ready
	wipe_all
	log "delivering $IMAP_MSGS x 4 KiB to user0 (straight to node-a)"
	lmtp "${LMTP[a]}" 4 "$IMAP_MSGS" 1 --quiet > /dev/null || die "delivery to user0 failed"
	lmtp "${LMTP[a]}" 1 20 1 --user-base 1 --quiet > /dev/null || die "delivery to user1 failed"
	# untimed: page cache, the front's pooled channels
	for m in straight proxied; do
		timeout $TMO "$BIN/imap-load" --mode fetch-all --port "${IMAP[${VIA[$m]}]}" --user "user0@$DOMAIN" > /dev/null ||
			die "warm-up fetch-all $m failed"
	done
	for r in $(seq "$RUNS"); do
		for m in $(order "$r"); do imap_round "$m" "$r"; done
	done
	stop_all
	echo "loadavg_after_imap=$(cut -d' ' -f1-3 /proc/loadavg)" >> "$RESDIR/meta.info"
}

phase_report() {
	local d=$RESDIR
	[ -f "$d/cluster.txt" ] || d=$(readlink -f "$ROOT/results/latest")
	[ -f "$d/cluster.txt" ] || die "no results in $d"
	echo
	echo "## Cluster proxy hop, $(sed -n 's/^date=//p' "$d/meta.info" | head -1)"
	echo
	sed -n 's/^\(commit\|modified_tracked\|cpu\|kernel\|loadavg_[a-z_]*\|runs\)=/\1: /p' "$d/meta.info" | sed 's/^/    /'
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
	all) phase_build; phase_setup; phase_lmtp; phase_imap; phase_report ;;
	build|setup|lmtp|imap|report|stop) phase_$ph ;;
	*) die "unknown phase $ph (build setup lmtp imap report stop all)" ;;
	esac
done
