#!/bin/bash
# bench/run.sh - Tern against Dovecot on this machine, same workload, one run,
# reported as ratios (bench/README.md explains the method and the results).
#
# Usage:  bench/run.sh [phase ...]
#         phases: build setup lmtp imap idle10k report stop
#         (default "all" = build setup lmtp imap idle10k report, then
#         everything this script started is stopped)
#   build   ternd/ternctl (Release, <repo>/build-bench) unless TERND/TERNCTL are
#           given; lmtp-load/imap-load from the shared sources
#   setup   private Tern node under $ROOT with user0..user9999 ({PLAIN}pass)
#   lmtp    20,000 msgs to 1000 users: 4 KiB over LMTP_CONNS, 64 KiB over 16,
#           primed store, RUNS times, Tern and Dovecot interleaved run by run
#   imap    SELECT cold/warm, fetch-all cold/warm (20,000 msgs), memory per
#           idle connection (IDLE_CONNS in IDLE); Tern and Dovecot
#           interleaved run by run
#   idle10k Tern only: IDLE10K idle IMAP sessions (LOGIN, SELECT, IDLE) on
#           one node, opened in steps of IDLE10K_STEP by separate imap-load
#           processes; then a fresh LOGIN and a delivery seen by IDLE
#   report  the table, from $ROOT/results/latest (or RESULTS=dir)
#   stop    stop this script's Tern node and the Dovecot bench instances
# Environment:
#   RUNS=3  LMTP_MSGS=20000  LMTP64_MSGS=20000 (0 = skip)  LMTP_CONNS="1 4 16"
#   FORMAT="mdbox"   Dovecot format(s) to compare against, e.g. "mdbox maildir"
#   SERVERS="tern dovecot"   which side(s) to measure
#   TERND=/path/ternd TERNCTL=/path/ternctl   use these instead of building
#   IMAP_MSGS=20000  IDLE_CONNS=500  IDLE10K=10000  IDLE10K_STEP=1000
#   ROOT=/tmp/ternbench (Tern node, tools, results)  DC_ROOT=/tmp/dcbench
#   SHARED=/work/shared/bench (load generators, Dovecot baseline script)
# Tern node: LMTP 127.0.0.1:20102, IMAP 20101, POP3 20103.  Dovecot instance A
# (run-dovecot-baseline.sh): IMAP 20001, LMTP 20002, POP3 20003.
# Every tool run is capped by `timeout`; only processes started here are
# stopped (ternd and imap-load by their PIDs, Dovecot by the baseline
# script's "stop").
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
IDLE10K=${IDLE10K:-10000}
IDLE10K_STEP=${IDLE10K_STEP:-1000}
NUSERS=1000          # the Dovecot passwd-file has user0..user999
TERN_USERS=$((IDLE10K > NUSERS ? IDLE10K : NUSERS)) # Tern: one user per idle session
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

# Open-file limit for ternd and the load tools (inherited): as high as this
# machine lets us.  Raising the hard limit needs CAP_SYS_RESOURCE; without it
# the soft limit goes up to the hard one.  An idle IMAP session costs ternd
# one socket plus the user's store (db, -wal, -shm), so this decides how
# many sessions one ternd can hold (see the idle10k phase).
raise_nofile() {
	ulimit -Hn 1048576 2> /dev/null || ulimit -Hn 262144 2> /dev/null || true
	ulimit -Sn "$(ulimit -Hn)" 2> /dev/null || true
	NOFILE=$(ulimit -Sn)
}

tern_start() {
	local p i
	tern_kill_stale
	for p in $LMTP_PORT $IMAP_PORT $POP3_PORT; do
		port_busy $p && die "port $p is already in use by another process"
	done
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
dc_collect() { # the baseline script's results for FORMAT, next to ours
	local src=$DC_ROOT/results/$1-vs-tern-$STAMP.txt
	[ -f "$src" ] || return 0
	# one part per invocation of this script, so phases run later into the
	# same RESULTS directory add to the earlier ones instead of replacing them
	mkdir -p "$RESDIR/dovecot-parts"
	cp "$src" "$RESDIR/dovecot-parts/$1-$STAMP.txt"
	cat "$RESDIR/dovecot-parts/$1-"*.txt > "$RESDIR/dovecot-$1.txt"
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
		echo "nofile=$NOFILE (RLIMIT_NOFILE of ternd and the load tools; hard limit $(ulimit -Hn))"
	} >> "$RESDIR/meta.info"
}

# ---------------------------------------------------------------- setup
phase_setup() {
	mkdir -p "$DATA" "$RESDIR"
	# max_connections: the default (20000) already exceeds what the idle10k
	# phase opens; set it so the bench does not depend on the default.
	cat > "$CONF" << EOF
# written by bench/run.sh - private benchmark node
node_name = bench
data_dir = $DATA
lmtp_listen = 127.0.0.1:$LMTP_PORT
imap_listen = 127.0.0.1:$IMAP_PORT
pop3_listen = 127.0.0.1:$POP3_PORT
domains = $DOMAIN
log_level = warning
max_connections = $((IDLE10K + 2000))
EOF
	"$TERND" --check-config --config "$CONF" > /dev/null || die "ternd rejects $CONF"
	tern_stop
	tern_kill_stale
	# The same {PLAIN} scheme as Dovecot's passwd-file, so LOGIN costs no
	# hashing on either side.  user0..user999 take the LMTP/IMAP load (as on
	# Dovecot); the rest exist for the idle10k phase (one user per session).
	local have missing=0 i
	have=$(mktemp)
	timeout 120 "$TERNCTL" --config "$CONF" --json user list 2> /dev/null |
		python3 -c 'import json,sys; [print(u["name"]) for u in json.load(sys.stdin)]' > "$have" 2> /dev/null || true
	for i in $(seq 0 $((TERN_USERS - 1))); do echo "user$i"; done | sort > "$have.want"
	sort -o "$have" "$have"
	comm -13 "$have" "$have.want" > "$have.add"
	missing=$(wc -l < "$have.add")
	if [ "$missing" = 0 ]; then
		log "users user0..user$((TERN_USERS - 1)) already exist in $DATA/directory.db"
	else
		log "creating $missing users (ternctl user add, {PLAIN} hash)"
		while read -r i; do
			timeout 60 "$TERNCTL" --config "$CONF" user add "$i" --hash '{PLAIN}pass' > /dev/null ||
				die "ternctl user add $i failed"
		done < "$have.add"
	fi
	rm -f "$have" "$have.want" "$have.add"
}

ensure_ready() { # for phases run on their own
	[ -x "$BIN/lmtp-load" ] && [ -x "$BIN/imap-load" ] && [ -x "$TERND" ] || phase_build
	[ -f "$RESDIR/meta.info" ] || record_meta
	phase_setup # idempotent: rewrites the config, adds missing users only
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
	# stopped again at once, so an idle Dovecot does not share the box with Tern's rounds
	dc "$2" setup lmtp stop || log "WARNING: Dovecot $2 round $1 exited with $?"
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
# Workload (same as BASELINE-dovecot.md): user0 gets IMAP_MSGS x 4 KiB by
# LMTP; one untimed SELECT (select-first-after-delivery) after a restart,
# 3 s of settling; SELECT cold (restart, which checkpoints the store, and
# user0's files fdatasync'd and dropped from the page cache) then warm (20
# in a row); fetch-all (UID FETCH 1:* (UID FLAGS RFC822.SIZE), then
# UID FETCH 1:* BODY.PEEK[]) cold, then warm; POP3 RETR of all (not a goal,
# Dovecot's script measures it too).  Memory per idle connection = PSS of
# ternd (one process; smaps_rollup) with IDLE_CONNS sessions (user0..,
# 20 msgs each, LOGIN + SELECT INBOX + IDLE) minus PSS before, / sessions.
# Dovecot: the baseline script's own "imap" and "idle" phases with RUNS=1,
# once per round, same labels.  Tern and Dovecot alternate round by round.
tern_imap_ok() {
	python3 - "$IMAP_PORT" "$DOMAIN" << 'EOF' > /dev/null 2>&1
import imaplib, sys
m = imaplib.IMAP4('127.0.0.1', int(sys.argv[1]), timeout=5)
m.login('user0@' + sys.argv[2], 'pass')
m.logout()
EOF
}

tern_evict_user0() { # restart (checkpoints the store), drop user0's files from the page cache
	tern_stop
	python3 - "$DATA/mail" << 'EOF'
import os, sys
for f in os.listdir(sys.argv[1]):
    if f == 'user0.db' or f.startswith('user0.db-'):
        fd = os.open(os.path.join(sys.argv[1], f), os.O_RDONLY)
        os.fdatasync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)
EOF
	tern_start
}

imapl() { timeout $TMO "$BIN/imap-load" --port $IMAP_PORT "$@"; }

# tern_measured LABEL RUN -- command...: run it, then record ternd's CPU for it
tern_measured() {
	local label=$1 r=$2 s0 s1 rc
	shift 3
	s0=$(mktemp) s1=$(mktemp)
	$PY snap "$TERN_PID" > "$s0"
	"$@"
	rc=$?
	$PY snap "$TERN_PID" > "$s1"
	echo "tool=cpu label=$label run=$r $($PY cpudiff "$s0" "$s1")" >> "$TRES"
	rm -f "$s0" "$s1"
	[ $rc = 0 ] || log "WARNING: $label run $r exited with $rc"
	return $rc
}

tern_imap_round() { # RUN
	local r=$1
	tern_wipe
	log "Tern IMAP round $r: delivering $IMAP_MSGS x 4 KiB to user0"
	lmtp $LMTP_PORT 4 "$IMAP_MSGS" 4096 1 --quiet > /dev/null || die "delivery to user0 failed"
	tern_evict_user0
	imapl --mode select --user "user0@$DOMAIN" --repeat 1 --label select-first-after-delivery --out "$TRES" > /dev/null ||
		log "WARNING: first SELECT failed"
	sleep 3
	tern_evict_user0
	log "Tern SELECT cold/warm, fetch-all cold/warm, POP3, round $r"
	imapl --mode select --user "user0@$DOMAIN" --repeat 1 --label select-cold --out "$TRES" > /dev/null ||
		log "WARNING: select-cold failed"
	imapl --mode select --user "user0@$DOMAIN" --repeat 20 --label select-warm --out "$TRES" > /dev/null ||
		log "WARNING: select-warm failed"
	tern_evict_user0
	tern_measured fetch-cold "$r" -- imapl --mode fetch-all --user "user0@$DOMAIN" --label fetch-cold --out "$TRES" > /dev/null
	tern_measured fetch-warm "$r" -- imapl --mode fetch-all --user "user0@$DOMAIN" --label fetch-warm --out "$TRES" > /dev/null
	tern_measured pop3-warm "$r" -- timeout $TMO "$BIN/imap-load" --mode pop3-all --port $POP3_PORT \
		--user "user0@$DOMAIN" --label pop3-warm --out "$TRES" > /dev/null
}

# PSS/RSS (KiB) of ternd and its open descriptors: sets M_PSS M_RSS M_FDS
tern_mem() {
	local m
	m=$($PY pss "$TERN_PID")
	M_PSS=${m#pss_kb=} M_PSS=${M_PSS%% *} M_RSS=${m##*rss_kb=}
	M_FDS=$(ls /proc/"$TERN_PID"/fd 2> /dev/null | wc -l)
}

tern_idle_round() { # RUN
	local r=$1 b_pss b_rss ready pid out i n cps
	tern_wipe
	log "Tern: delivering 20000 x 4 KiB to $NUSERS users for the idle test"
	lmtp $LMTP_PORT 4 20000 4096 $NUSERS --quiet > /dev/null || die "delivery failed"
	tern_stop
	tern_start
	sleep 1
	tern_mem
	b_pss=$M_PSS b_rss=$M_RSS
	ready=$ROOT/idle.ready out=$ROOT/idle.out
	rm -f "$ready"
	log "Tern idle-conns $IDLE_CONNS round $r"
	timeout $TMO "$BIN/imap-load" --port $IMAP_PORT --mode idle-conns --user "user%d@$DOMAIN" \
		--conns "$IDLE_CONNS" --hold 20 --threads 8 --ready-file "$ready" --label "idle-$IDLE_CONNS" \
		--out "$TRES" > "$out" 2>&1 &
	pid=$!
	for i in $(seq 1200); do [ -s "$ready" ] && break; alive $pid || break; sleep 0.1; done
	[ -s "$ready" ] || { wait $pid; cat "$out" >&2; die "idle-conns did not get ready"; }
	sleep 3
	tern_mem
	n=$(cut -d' ' -f1 "$ready")
	cps=$(sed -n 's/.*(\([0-9.]*\) conn\/s).*/\1/p' "$out" | head -1)
	echo "tool=mem label=idle-$IDLE_CONNS run=$r conns=$n failed=$(cut -d' ' -f2 "$ready") setup_cps=${cps:-0}" \
		"before_pss_kb=$b_pss after_pss_kb=$M_PSS before_rss_kb=$b_rss after_rss_kb=$M_RSS fds=$M_FDS" \
		"pss_per_conn_kb=$(awk -v a="$M_PSS" -v b="$b_pss" -v n="$n" 'BEGIN{printf "%.1f", (a-b)/n}')" \
		"rss_per_conn_kb=$(awk -v a="$M_RSS" -v b="$b_rss" -v n="$n" 'BEGIN{printf "%.1f", (a-b)/n}')" | tee -a "$TRES"
	wait $pid || log "WARNING: idle-conns exited with $? (see $out)"
	rm -f "$ready"
	tern_stop
}

dc_imap_round() { # RUN FORMAT
	log "Dovecot $2 IMAP + idle round $1"
	DC_STARTED=1
	dc "$2" setup imap idle stop > "$ROOT/dovecot-imap.out" 2>&1 ||
		log "WARNING: Dovecot $2 imap/idle round $1 exited with $? (see $ROOT/dovecot-imap.out)"
	dc_collect "$2"
}

phase_imap() {
	local f r
	ensure_ready
	if has tern; then
		tern_start
		tern_imap_ok || { tern_stop; die "Tern does not answer IMAP LOGIN on $IMAP_PORT ($TERND)"; }
		tern_stop
	fi
	for r in $(seq "$RUNS"); do
		if [ $((r % 2)) = 0 ] && has dovecot; then for f in $FORMATS; do dc_imap_round "$r" "$f"; done; fi
		if has tern; then tern_imap_round "$r"; tern_idle_round "$r"; fi
		if [ $((r % 2)) = 1 ] && has dovecot; then for f in $FORMATS; do dc_imap_round "$r" "$f"; done; fi
	done
	echo "loadavg_after_imap=$(cut -d' ' -f1-3 /proc/loadavg)" >> "$RESDIR/meta.info"
}

# ---------------------------------------------------------------- idle10k
# One Tern node, IDLE10K sessions, each a different user (user0..), 2 msgs
# each, LOGIN + SELECT INBOX + IDLE.  Opened by one imap-load process per
# IDLE10K_STEP sessions (each holds its own; 10,000 from one process works
# too, the steps only show where a limit bites); stops adding steps at the
# first step with a failure.  While they idle: ternd PSS/RSS/fds/threads,
# established sockets, then (1) one message delivered to each of the first
# min(1000, N) idle users must show up on their sockets (the client-side
# Recv-Q holds the unread "* n EXISTS"; imap-load does not read while it
# holds), (2) a new session of user0 in IDLE sees a delivery (latency), and
# (3) fresh LOGIN+SELECT (imap-load select, 5 in a row) still work.
# ternd's log lines from the test go to RESDIR/idle10k-ternd.log.
client_recvq() { # number of client sockets to Tern's IMAP port with unread data
	ss -tnH state established "dport = :$IMAP_PORT" | awk '$1 > 0' | wc -l
}
server_conns() { ss -tnH state established "sport = :$IMAP_PORT" | wc -l; }

phase_idle10k() {
	local total=0 failed=0 k=0 n ready i pids=() outs=() b_pss b_rss logoff st ok fl
	local est nq m notified check threads
	has tern || return 0
	ensure_ready
	tern_wipe
	log "idle10k: delivering 2 x 4 KiB to each of $IDLE10K users"
	lmtp $LMTP_PORT 8 $((2 * IDLE10K)) 4096 "$IDLE10K" --quiet > /dev/null || die "delivery failed"
	tern_stop
	logoff=$(stat -c %s "$ROOT/ternd.log" 2> /dev/null || echo 0)
	tern_start
	sleep 1
	tern_mem
	b_pss=$M_PSS b_rss=$M_RSS
	log "idle10k: ternd $TERN_PID, RLIMIT_NOFILE $NOFILE, $M_FDS fds open before"
	st=$(date +%s.%N)
	while [ $total -lt "$IDLE10K" ]; do
		n=$((IDLE10K - total < IDLE10K_STEP ? IDLE10K - total : IDLE10K_STEP))
		ready=$ROOT/idle10k.ready.$k
		rm -f "$ready"
		# --timeout 5: past a server-side limit a connection may never be
		# greeted; do not let each such one cost a minute
		timeout $((TMO * 2)) "$BIN/imap-load" --port $IMAP_PORT --mode idle-conns --user "user%d@$DOMAIN" \
			--user-base $total --conns $n --hold 900 --threads 16 --timeout 5 --ready-file "$ready" \
			--label "idle10k-step$k" > "$ROOT/idle10k.out.$k" 2>&1 &
		pids+=($!)
		outs+=("$ROOT/idle10k.out.$k")
		for i in $(seq $((TMO * 10))); do [ -s "$ready" ] && break; alive $! || break; sleep 0.1; done
		if [ ! -s "$ready" ]; then
			log "idle10k: step $k (users $total..$((total + n - 1))) did not get ready"
			cat "$ROOT/idle10k.out.$k" >&2
			failed=$((failed + n))
			break
		fi
		read -r ok fl < "$ready"
		total=$((total + ok)) failed=$((failed + fl))
		tern_mem
		log "idle10k: step $k: +$ok idling ($fl failed), total $total; ternd pss ${M_PSS} KiB, $M_FDS fds"
		k=$((k + 1))
		[ "$fl" = 0 ] || { grep -m5 -v '^ ' "$ROOT/idle10k.out.$((k - 1))" >&2; break; }
	done
	st=$(awk -v a="$st" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')
	sleep 3
	tern_mem
	threads=$(awk '/^Threads:/{print $2}' /proc/"$TERN_PID"/status)
	est=$(server_conns)
	log "idle10k: $total sessions idling, $failed failed; $est established on :$IMAP_PORT; ternd PSS $M_PSS KiB RSS $M_RSS KiB, $M_FDS fds, $threads threads"
	echo "tool=idle10k label=idle10k target=$IDLE10K idling=$total failed=$failed steps=$k setup_s=$st" \
		"established=$est nofile=$NOFILE before_pss_kb=$b_pss after_pss_kb=$M_PSS before_rss_kb=$b_rss" \
		"after_rss_kb=$M_RSS fds=$M_FDS threads=$threads" \
		"pss_per_conn_kb=$(awk -v a="$M_PSS" -v b="$b_pss" -v n="$total" 'BEGIN{printf "%.1f", n ? (a-b)/n : 0}')" \
		"rss_per_conn_kb=$(awk -v a="$M_RSS" -v b="$b_rss" -v n="$total" 'BEGIN{printf "%.1f", n ? (a-b)/n : 0}')" | tee -a "$TRES"
	if [ "$failed" -gt 0 ]; then
		# At the limit: does a fresh LOGIN get a clean answer?  Then give
		# back the last step's sessions so the checks below run below it.
		imapl --mode select --user "user1@$DOMAIN" --repeat 1 --timeout 5 > "$ROOT/idle10k.atlimit.out" 2>&1
		echo "tool=note label=idle10k-login-at-limit rc=$? reply=\"$(grep -m1 -o 'failed: .*' "$ROOT/idle10k.atlimit.out" | tr ' ' '_')\"" | tee -a "$TRES"
		i=${pids[-1]}
		kill -TERM "$i" 2> /dev/null
		wait "$i" 2> /dev/null
		unset 'pids[-1]'
		sleep 2
		total=$(server_conns)
		log "idle10k: released the last step; $total sessions still idling, checks run with these"
	fi
	# (1) deliveries to idle users reach their sessions
	nq=$(client_recvq)
	m=$((total < 1000 ? total : 1000))
	notified=0
	if [ "$m" -gt 0 ]; then
		lmtp $LMTP_PORT 4 "$m" 4096 "$m" --label "idle10k-deliver-$m" --out "$TRES" --quiet > /dev/null ||
			log "WARNING: delivery to $m idle users: lmtp-load rc=$?"
		for i in $(seq 50); do
			notified=$(client_recvq)
			[ "$((notified - nq))" -ge "$m" ] && break
			sleep 0.1
		done
		notified=$((notified - nq))
	fi
	# (2) a new IDLE session (user0's second) sees a delivery; (3) fresh LOGIN + SELECT
	check=$($PY idlecheck "$IMAP_PORT" "$LMTP_PORT" 0 "$DOMAIN" "$BIN/lmtp-load" 2>&1 | tail -1)
	log "idle10k: new IDLE session: $check"
	imapl --mode select --user "user1@$DOMAIN" --repeat 5 --timeout 10 --label login-at-idle10k --out "$TRES" > "$ROOT/idle10k.login.out" 2>&1
	ok=$?
	tern_mem
	echo "tool=idle10k-checks label=idle10k idling=$total fds=$M_FDS delivered_to_idle=$m notified=$notified" \
		"fresh_login_rc=$ok $check" | tee -a "$TRES"
	log "idle10k: releasing the sessions ($(server_conns) still established)"
	for i in "${pids[@]}"; do kill -TERM "$i" 2> /dev/null; done
	for i in "${pids[@]}"; do wait "$i" 2> /dev/null; done
	sleep 1
	alive "$TERN_PID" || log "WARNING: ternd $TERN_PID is gone (log: $ROOT/ternd.log)"
	tern_stop
	# ternd's log from the test: counts per message (timestamps and pids
	# cut), the first 100 lines; the log itself is cut back, since a ternd at
	# its descriptor limit can write millions of identical lines
	tail -c +$((logoff + 1)) "$ROOT/ternd.log" | sed 's/^[^ ]* ternd\[[0-9]*\]: //' | sort | uniq -c | sort -rn |
		head -50 > "$RESDIR/idle10k-ternd-log-summary.txt"
	tail -c +$((logoff + 1)) "$ROOT/ternd.log" | head -100 > "$RESDIR/idle10k-ternd-log-head.txt"
	log "idle10k: ternd logged $(tail -c +$((logoff + 1)) "$ROOT/ternd.log" | wc -l) lines during the test; the most frequent:"
	head -5 "$RESDIR/idle10k-ternd-log-summary.txt" >&2
	truncate -s "$logoff" "$ROOT/ternd.log"
	rm -f "$ROOT"/idle10k.ready.*
}

# ---------------------------------------------------------------- report
phase_report() {
	local d=$RESDIR
	[ -f "$d/tern.txt" ] || d=$(readlink -f "$ROOT/results/latest")
	[ -f "$d/tern.txt" ] || die "no results in $d"
	echo
	echo "## Tern vs Dovecot, $(sed -n 's/^date=//p' "$d/meta.info" | head -1)"
	echo
	sed -n 's/^\(commit\|modified_tracked\|cpu\|kernel\|dovecot\|loadavg_at_start\|loadavg_at_end\|loadavg_after_imap\|runs\|nofile\)=/\1: /p' "$d/meta.info" | sed 's/^/    /'
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
raise_nofile
GIVEN_BINS=0
if [ -n "${TERND:-}${TERNCTL:-}" ]; then GIVEN_BINS=1; TERND=${TERND:-} TERNCTL=${TERNCTL:-}
else TERND=$BUILD_DIR/ternd TERNCTL=$BUILD_DIR/ternctl; fi
for ph in "$@"; do
	case $ph in
	all) phase_build; phase_setup; phase_lmtp; phase_imap; phase_idle10k; phase_report ;;
	build|setup|lmtp|imap|idle10k|report|stop) phase_$ph ;;
	*) die "unknown phase $ph (build setup lmtp imap idle10k report stop all)" ;;
	esac
done
