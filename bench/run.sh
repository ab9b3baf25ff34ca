#!/bin/bash
# bench/run.sh - Tern against Dovecot on this machine, same workload, one run,
# reported as ratios (bench/README.md explains the method and the results).
#
# Usage:  bench/run.sh [phase ...]        phases: build setup lmtp imap report stop
#         (default "all" = build setup lmtp imap report, then everything stopped)
#   build   ternd/ternctl (Release, <repo>/build-bench) unless TERND/TERNCTL are
#           given; lmtp-load/imap-load from the shared sources
#   setup   private Tern node under $ROOT with user0..user999 ({PLAIN}pass)
#   lmtp    20,000 msgs to 1000 users: 4 KiB over LMTP_CONNS, 64 KiB over 16,
#           primed store, RUNS times, Tern and Dovecot interleaved run by run
#   imap    SELECT / fetch-all / 500 idle connections (only if Tern answers
#           IMAP LOGIN; otherwise reported as skipped)
#   report  the table, from $ROOT/results/latest (or RESULTS=dir)
#   stop    stop this script's Tern node and the Dovecot bench instances
# Environment:
#   RUNS=3  LMTP_MSGS=20000  LMTP64_MSGS=20000 (0 = skip)  LMTP_CONNS="1 4 16"
#   FORMAT="mdbox"   Dovecot format(s) to compare against, e.g. "mdbox maildir"
#   SERVERS="tern dovecot"   which side(s) to measure
#   TERND=/path/ternd TERNCTL=/path/ternctl   use these instead of building
#   IMAP_MSGS=20000  IDLE_CONNS=500
#   ROOT=/tmp/ternbench (Tern node, tools, results)  DC_ROOT=/tmp/dcbench
#   SHARED=/work/shared/bench (load generators, Dovecot baseline script)
# Tern node: LMTP 127.0.0.1:20102, IMAP 20101, POP3 20103.  Dovecot instance A
# (run-dovecot-baseline.sh): IMAP 20001, LMTP 20002, POP3 20003.
# Every tool run is capped by `timeout 600`; only processes started here are
# stopped (ternd by its PID, Dovecot by the baseline script's "stop").
set -u
BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
REPO=${REPO:-$(cd "$BENCH_DIR/.." && pwd)}
SHARED=${SHARED:-/work/shared/bench}
DC_SCRIPT=$SHARED/run-dovecot-baseline.sh
ROOT=${ROOT:-/tmp/ternbench}
DC_ROOT=${DC_ROOT:-/tmp/dcbench}
FORMATS=${FORMAT:-mdbox}
SERVERS=${SERVERS:-"tern dovecot"}
RUNS=${RUNS:-3}
LMTP_MSGS=${LMTP_MSGS:-20000}
LMTP64_MSGS=${LMTP64_MSGS:-20000}
LMTP_CONNS=${LMTP_CONNS:-"1 4 16"}
IMAP_MSGS=${IMAP_MSGS:-20000}
IDLE_CONNS=${IDLE_CONNS:-500}
NUSERS=1000          # the Dovecot passwd-file has user0..user999
DOMAIN=example.test
TMO=600              # hard limit (s) for any single tool run
STOP_TMO=300         # ternd SIGTERM -> exit (final checkpoint) limit, s
BIN=$ROOT/bin
CONF=$ROOT/tern.conf
DATA=$ROOT/data
BUILD_DIR=$REPO/build-bench
LMTP_PORT=20102 IMAP_PORT=20101 POP3_PORT=20103
DC_LMTP_PORT=20002 DC_IMAP_PORT=20001
STAMP=${STAMP:-$(date +%Y%m%d-%H%M%S)}
RESDIR=${RESULTS:-$ROOT/results/$STAMP}
TRES=$RESDIR/tern.txt
TERN_PID=""
DC_STARTED=0
HZ=$(getconf CLK_TCK)
PY="python3 $BENCH_DIR/benchlib.py"

log() { echo "[$(date +%T)] $*" >&2; }
die() { log "FATAL: $*"; exit 1; }

DURABILITY="Tern: a 250 is sent after the message is in the group-committed delivery journal and the group is fdatasync'd (one fdatasync per committer round); per-user SQLite stores are written at synchronous=NORMAL and checkpointed later (segment rotation, stop). Dovecot: mail_fsync=optimized (its default)."

# ---------------------------------------------------------------- processes
# PID running (not a zombie)? Sets CPU_TICKS = its utime+stime, all threads.
# Builtins only (no fork), so polling it costs the measurement nothing.
alive() {
	local s f
	read -r s 2> /dev/null < /proc/"$1"/stat || return 1
	s=${s##*) }
	read -ra f <<< "$s"
	CPU_TICKS=$((f[11] + f[12]))
	[ "${f[0]}" != Z ]
}
port_busy() { ss -ltnH "sport = :$1" | grep -q .; }

tern_start() {
	local p i
	tern_kill_stale
	for p in $LMTP_PORT $IMAP_PORT $POP3_PORT; do
		port_busy $p && die "port $p is already in use by another process"
	done
	ulimit -n 65536 2> /dev/null || true
	"$TERND" --config "$CONF" < /dev/null >> "$ROOT/ternd.log" 2>&1 &
	TERN_PID=$!
	echo "$TERN_PID" > "$ROOT/ternd.pid"
	for i in $(seq 150); do
		alive "$TERN_PID" || { wait "$TERN_PID"; TERN_PID=""; tail -5 "$ROOT/ternd.log" >&2; die "ternd exited at start (log: $ROOT/ternd.log)"; }
		port_busy $LMTP_PORT && return 0
		sleep 0.1
	done
	die "ternd did not listen on $LMTP_PORT within 15 s"
}

# Stops our ternd (SIGTERM: it finishes open work, checkpoints every store
# and empties the journal); sets STOP_S to how long that took and STOP_CPU_S
# to the CPU it used meanwhile (last /proc sample, 0.1 s before exit at worst).
tern_stop() {
	STOP_S=0 STOP_CPU_S=0
	[ -n "$TERN_PID" ] || return 0
	local t0 i rc c0=0 c1=0
	alive "$TERN_PID" && c0=$CPU_TICKS c1=$CPU_TICKS
	t0=$(date +%s.%N)
	kill -TERM "$TERN_PID" 2> /dev/null
	for i in $(seq $((STOP_TMO * 10))); do
		alive "$TERN_PID" || break
		c1=$CPU_TICKS
		sleep 0.1
	done
	STOP_CPU_S=$(awk -v t=$((c1 - c0)) -v hz="$HZ" 'BEGIN{printf "%.2f", t/hz}')
	if alive "$TERN_PID"; then
		log "WARNING: ternd $TERN_PID still running ${STOP_TMO}s after SIGTERM, SIGKILL"
		kill -KILL "$TERN_PID" 2> /dev/null
	fi
	wait "$TERN_PID" 2> /dev/null
	rc=$?
	STOP_S=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.2f", b-a}')
	[ $rc = 0 ] || log "WARNING: ternd exited with status $rc (log: $ROOT/ternd.log)"
	TERN_PID=""
	rm -f "$ROOT/ternd.pid"
}

# A ternd left over from an earlier, interrupted run of this script (same config).
tern_kill_stale() {
	local p i
	[ -s "$ROOT/ternd.pid" ] || return 0
	p=$(cat "$ROOT/ternd.pid")
	if alive "$p" && tr '\0' ' ' < /proc/"$p"/cmdline | grep -q -- "--config $CONF"; then
		log "stopping ternd $p left over from an earlier run"
		kill -TERM "$p"
		for i in $(seq $((STOP_TMO * 10))); do alive "$p" || break; sleep 0.1; done
		alive "$p" && kill -KILL "$p"
	fi
	rm -f "$ROOT/ternd.pid"
}

tern_wipe() { # stop, delete all mail and the journal, start
	tern_stop
	rm -rf "${DATA:?}"/mail/* "${DATA:?}"/delivery.journal*
	tern_start
}

dc() { # run-dovecot-baseline.sh with our settings: dc FORMAT phase...
	local f=$1
	shift
	env ROOT="$DC_ROOT" FORMAT="$f" RUNS=1 LMTP_PRIME=1 LMTP_MSGS="$LMTP_MSGS" \
		LMTP64_MSGS="$LMTP64_MSGS" LMTP_CONNS="$LMTP_CONNS" IMAP_MSGS="$IMAP_MSGS" \
		IDLE_CONNS="$IDLE_CONNS" TAG="-vs-tern-$STAMP" \
		timeout $((TMO * 8)) "$DC_SCRIPT" "$@"
}
dc_collect() { # copy the baseline script's results for FORMAT next to ours
	local src=$DC_ROOT/results/$1-vs-tern-$STAMP.txt
	[ -f "$src" ] && cp "$src" "$RESDIR/dovecot-$1.txt"
}

cleanup() {
	trap - EXIT INT TERM
	tern_stop
	if [ "$DC_STARTED" = 1 ]; then
		log "stopping the Dovecot bench instances"
		env ROOT="$DC_ROOT" timeout 120 "$DC_SCRIPT" stop
	fi
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

has() { case " $SERVERS " in *" $1 "*) return 0 ;; esac; return 1; }

# ---------------------------------------------------------------- build
phase_build() {
	mkdir -p "$BIN"
	local t
	for t in lmtp-load imap-load; do
		if [ ! -x "$BIN/$t" ] || [ "$SHARED/$t.c" -nt "$BIN/$t" ]; then
			# the same command line the Dovecot baseline script uses
			cc -O2 -Wall -o "$BIN/$t" "$SHARED/$t.c" -lpthread || die "build $t"
		fi
	done
	if [ "$GIVEN_BINS" = 1 ]; then
		[ -x "$TERND" ] && [ -x "$TERNCTL" ] || die "TERND and TERNCTL must both name executables"
		log "using TERND=$TERND TERNCTL=$TERNCTL (not built here)"
	else
		log "building Tern (Release) in $BUILD_DIR"
		# Release (-O3) raises a -Wmaybe-uninitialized that -O2 does not;
		# keep it a warning so an optimiser false positive cannot stop the bench.
		timeout 1800 cmake -S "$REPO" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release \
			-DCMAKE_C_FLAGS=-Wno-error=maybe-uninitialized > "$ROOT/build.log" 2>&1 &&
			timeout 1800 cmake --build "$BUILD_DIR" -j "$(nproc)" --target ternd ternctl >> "$ROOT/build.log" 2>&1 ||
			{ tail -20 "$ROOT/build.log" >&2; die "Tern build failed (log: $ROOT/build.log); set TERND/TERNCTL to use existing binaries"; }
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
		echo "dovecot=$(dovecot --version 2> /dev/null)"
		echo "loadavg_at_start=$(cut -d' ' -f1-3 /proc/loadavg)"
		echo "runs=$RUNS formats=$FORMATS lmtp_msgs=$LMTP_MSGS lmtp64_msgs=$LMTP64_MSGS conns=$LMTP_CONNS"
	} >> "$RESDIR/meta.info"
}

# ---------------------------------------------------------------- setup
phase_setup() {
	mkdir -p "$DATA" "$RESDIR"
	cat > "$CONF" << EOF
# written by bench/run.sh - private benchmark node
node_name = bench
data_dir = $DATA
lmtp_listen = 127.0.0.1:$LMTP_PORT
imap_listen = 127.0.0.1:$IMAP_PORT
pop3_listen = 127.0.0.1:$POP3_PORT
domains = $DOMAIN
log_level = warning
EOF
	"$TERND" --check-config --config "$CONF" > /dev/null || die "ternd rejects $CONF"
	tern_stop
	tern_kill_stale
	# The same {PLAIN} scheme as Dovecot's passwd-file, so LOGIN costs no hashing on either side.
	if "$TERNCTL" --config "$CONF" user show user0 > /dev/null 2>&1 &&
		"$TERNCTL" --config "$CONF" user show "user$((NUSERS - 1))" > /dev/null 2>&1; then
		log "users user0..user$((NUSERS - 1)) already exist in $DATA/directory.db"
	else
		log "creating $NUSERS users (takes a while)"
		local i
		for i in $(seq 0 $((NUSERS - 1))); do
			"$TERNCTL" --config "$CONF" user show "user$i" > /dev/null 2>&1 && continue
			timeout 60 "$TERNCTL" --config "$CONF" user add "user$i" --hash '{PLAIN}pass' > /dev/null ||
				die "ternctl user add user$i failed"
		done
	fi
}

ensure_ready() { # for phases run on their own
	[ -x "$BIN/lmtp-load" ] && [ -x "$BIN/imap-load" ] && [ -x "$TERND" ] || phase_build
	[ -f "$RESDIR/meta.info" ] || record_meta
	[ -f "$CONF" ] && "$TERNCTL" --config "$CONF" user show "user$((NUSERS - 1))" > /dev/null 2>&1 || phase_setup
}

# ---------------------------------------------------------------- LMTP
lmtp() { # PORT CONNS MSGS SIZE USERS [extra args]: one lmtp-load run, capped
	local port=$1 c=$2 n=$3 sz=$4 u=$5
	shift 5
	timeout $TMO "$BIN/lmtp-load" --port "$port" --conns "$c" --messages "$n" --size "$sz" \
		--users "$u" --domain $DOMAIN "$@"
}

# One timed Tern point: fresh store, primed, timed with server CPU, stopped.
tern_point() { # LABEL RUN CONNS SIZE MSGS
	local label=$1 r=$2 c=$3 sz=$4 n=$5 s0 s1 rc
	tern_wipe
	lmtp $LMTP_PORT 4 $NUSERS 4096 $NUSERS --quiet > /dev/null || die "Tern priming failed"
	log "Tern $label run $r"
	s0=$(mktemp) s1=$(mktemp)
	$PY snap "$TERN_PID" > "$s0"
	lmtp $LMTP_PORT "$c" "$n" "$sz" $NUSERS --label "$label" --out "$TRES" --quiet
	rc=$?
	$PY snap "$TERN_PID" > "$s1"
	echo "tool=cpu label=$label run=$r $($PY cpudiff "$s0" "$s1")" | tee -a "$TRES"
	rm -f "$s0" "$s1"
	[ $rc = 0 ] || log "WARNING: lmtp-load rc=$rc for Tern $label run $r"
	tern_stop
	echo "tool=stop label=$label run=$r stop_s=$STOP_S stop_cpu_s=$STOP_CPU_S" >> "$TRES"
}

tern_lmtp_round() { # RUN: every point once, in the Dovecot script's order
	local r=$1 c
	for c in $LMTP_CONNS; do
		tern_point "lmtp-4k-c$c-primed" "$r" "$c" 4096 "$LMTP_MSGS"
	done
	[ "$LMTP64_MSGS" = 0 ] || tern_point lmtp-64k-c16-primed "$r" 16 65536 "$LMTP64_MSGS"
}

dc_lmtp_round() { # RUN FORMAT
	log "Dovecot $2 LMTP round $1"
	DC_STARTED=1
	dc "$2" setup lmtp || log "WARNING: Dovecot $2 round $1 exited with $?"
	dc_collect "$2"
}

phase_lmtp() {
	local r f
	ensure_ready
	echo "# $DURABILITY" >> "$RESDIR/meta.info"
	log "results in $RESDIR"
	# Interleave by run so that load from other jobs on this shared machine
	# hits both servers alike; alternate who goes first.
	for r in $(seq "$RUNS"); do
		if [ $((r % 2)) = 1 ]; then
			has tern && tern_lmtp_round "$r"
			if has dovecot; then for f in $FORMATS; do dc_lmtp_round "$r" "$f"; done; fi
		else
			if has dovecot; then for f in $FORMATS; do dc_lmtp_round "$r" "$f"; done; fi
			has tern && tern_lmtp_round "$r"
		fi
	done
	has dovecot && env ROOT="$DC_ROOT" timeout 120 "$DC_SCRIPT" stop
	echo "loadavg_at_end=$(cut -d' ' -f1-3 /proc/loadavg)" >> "$RESDIR/meta.info"
}

# ---------------------------------------------------------------- IMAP
# ====================================================================
# IMAP phase.  Runs only when Tern answers IMAP LOGIN on $IMAP_PORT; until
# Tern's IMAP front end is in the build this phase only says "skipped".
# Workload (same as BASELINE-dovecot.md): user0 gets IMAP_MSGS x 4 KiB by
# LMTP; SELECT warm (20 per run) and cold (restart + user0's files evicted
# from the page cache); fetch-all (UID FLAGS RFC822.SIZE, then BODY.PEEK[]);
# memory per idle connection = PSS of ternd (smaps_rollup) with IDLE_CONNS
# sessions in IDLE minus PSS before, / IDLE_CONNS.  Dovecot: the baseline
# script's own "imap" and "idle" phases, same labels.
# ====================================================================
tern_imap_ok() {
	python3 - "$IMAP_PORT" << 'EOF' > /dev/null 2>&1
import imaplib, sys
m = imaplib.IMAP4('127.0.0.1', int(sys.argv[1]), timeout=5)
m.login('user0@example.test', 'pass')
m.logout()
EOF
}

tern_evict_user0() { # restart (checkpoints the store), drop user0's files from the page cache
	tern_stop
	python3 - "$DATA/mail" << 'EOF'
import os, sys
for f in os.listdir(sys.argv[1]):
    if f.startswith('user0.db'):
        fd = os.open(os.path.join(sys.argv[1], f), os.O_RDONLY)
        os.fdatasync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)
EOF
	tern_start
}

imapl() { timeout $TMO "$BIN/imap-load" --port $IMAP_PORT "$@"; }

tern_imap() {
	local r s0 s1
	tern_wipe
	log "Tern: delivering $IMAP_MSGS x 4 KiB to user0"
	lmtp $LMTP_PORT 4 "$IMAP_MSGS" 4096 1 --quiet > /dev/null || die "delivery to user0 failed"
	tern_evict_user0
	imapl --mode select --user "user0@$DOMAIN" --repeat 1 --label select-first-after-delivery --out "$TRES"
	sleep 3
	for r in $(seq "$RUNS"); do
		tern_evict_user0
		imapl --mode select --user "user0@$DOMAIN" --repeat 1 --label select-cold --out "$TRES"
		imapl --mode select --user "user0@$DOMAIN" --repeat 20 --label select-warm --out "$TRES"
	done
	for r in $(seq "$RUNS"); do
		tern_evict_user0
		imapl --mode fetch-all --user "user0@$DOMAIN" --label fetch-cold --out "$TRES"
	done
	for r in $(seq "$RUNS"); do
		s0=$(mktemp) s1=$(mktemp)
		$PY snap "$TERN_PID" > "$s0"
		imapl --mode fetch-all --user "user0@$DOMAIN" --label fetch-warm --out "$TRES"
		$PY snap "$TERN_PID" > "$s1"
		echo "tool=cpu label=fetch-warm run=$r $($PY cpudiff "$s0" "$s1")" >> "$TRES"
		rm -f "$s0" "$s1"
	done
}

tern_idle() {
	local r before after ready pid out i
	tern_wipe
	log "Tern: delivering 20000 x 4 KiB to $NUSERS users for the idle test"
	lmtp $LMTP_PORT 4 20000 4096 $NUSERS --quiet > /dev/null || die "delivery failed"
	for r in $(seq "$RUNS"); do
		tern_stop
		tern_start
		sleep 1
		before=$($PY pss "$TERN_PID")
		ready=$(mktemp -u) out=$ROOT/idle.out
		log "Tern idle-conns $IDLE_CONNS run $r"
		imapl --mode idle-conns --user "user%d@$DOMAIN" --conns "$IDLE_CONNS" --hold 20 --threads 8 \
			--ready-file "$ready" --label "idle-$IDLE_CONNS" --out "$TRES" > "$out" 2>&1 &
		pid=$!
		for i in $(seq 1200); do [ -s "$ready" ] && break; alive $pid || break; sleep 0.1; done
		[ -s "$ready" ] || { wait $pid; cat "$out" >&2; die "idle-conns did not get ready"; }
		sleep 3
		after=$($PY pss "$TERN_PID")
		local n b_pss a_pss b_rss a_rss cps
		n=$(cut -d' ' -f1 "$ready")
		b_pss=${before#pss_kb=} b_pss=${b_pss%% *} b_rss=${before##*rss_kb=}
		a_pss=${after#pss_kb=} a_pss=${a_pss%% *} a_rss=${after##*rss_kb=}
		cps=$(sed -n 's/.*(\([0-9.]*\) conn\/s).*/\1/p' "$out" | head -1)
		echo "tool=mem label=idle-$IDLE_CONNS run=$r conns=$n setup_cps=${cps:-0} before_pss_kb=$b_pss after_pss_kb=$a_pss pss_per_conn_kb=$(awk -v a="$a_pss" -v b="$b_pss" -v n="$n" 'BEGIN{printf "%.1f", (a-b)/n}') rss_per_conn_kb=$(awk -v a="$a_rss" -v b="$b_rss" -v n="$n" 'BEGIN{printf "%.1f", (a-b)/n}')" | tee -a "$TRES"
		wait $pid
		rm -f "$ready"
	done
	tern_stop
}

phase_imap() {
	local f
	ensure_ready
	tern_start
	if ! tern_imap_ok; then
		tern_stop
		log "imap: SKIPPED - Tern does not answer IMAP LOGIN on $IMAP_PORT yet ($TERND)"
		echo "imap=skipped (Tern IMAP not available in $TERND)" >> "$RESDIR/meta.info"
		return 0
	fi
	tern_stop
	if has tern; then tern_imap; tern_idle; fi
	if has dovecot; then
		for f in $FORMATS; do
			DC_STARTED=1
			env ROOT="$DC_ROOT" FORMAT="$f" RUNS="$RUNS" IMAP_MSGS="$IMAP_MSGS" IDLE_CONNS="$IDLE_CONNS" \
				TAG="-vs-tern-$STAMP" timeout $((TMO * 12)) "$DC_SCRIPT" setup imap idle stop ||
				log "WARNING: Dovecot $f imap/idle exited with $?"
			dc_collect "$f"
		done
	fi
}

# ---------------------------------------------------------------- report
phase_report() {
	local d=$RESDIR
	[ -f "$d/tern.txt" ] || d=$(readlink -f "$ROOT/results/latest")
	[ -f "$d/tern.txt" ] || die "no results in $d"
	echo
	echo "## Tern vs Dovecot, $(sed -n 's/^date=//p' "$d/meta.info" | head -1)"
	echo
	sed -n 's/^\(commit\|modified_tracked\|cpu\|kernel\|dovecot\|loadavg_at_start\|loadavg_at_end\|runs\|imap\)=/\1: /p' "$d/meta.info" | sed 's/^/    /'
	echo
	echo "Durability: $DURABILITY"
	echo
	$PY report "$d" | tee "$d/table.md"
	echo "(raw key=value lines: $d)"
}

phase_stop() {
	tern_kill_stale
	env ROOT="$DC_ROOT" timeout 120 "$DC_SCRIPT" stop
}

# ---------------------------------------------------------------- main
[ $# -eq 0 ] && set -- all
mkdir -p "$ROOT/results" "$BIN"
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
