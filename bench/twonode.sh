# bench/twonode.sh - sourced by bench/cluster.sh and bench/move.sh: two
# ternd nodes (a, b) on loopback sharing one directory; starting, stopping
# (only the PIDs started here) and their configuration files.
# The caller sets ROOT, TERND, SECRET, DOMAIN, STOP_TMO, BENCH_NAME, LOG_LEVEL
# and the arrays PID, IMAP, LMTP, POP3, CLPORT (per node).

log() { echo "[$(date +%T)] $*" >&2; }
die() { log "FATAL: $*"; exit 1; }
alive() { # PID running and not a zombie
	local s f
	read -r s 2> /dev/null < /proc/"$1"/stat || return 1
	s=${s##*) }
	read -ra f <<< "$s"
	[ "${f[0]}" != Z ]
}

port_busy() { ss -ltnH "sport = :$1" | grep -q .; }
conf() { echo "$ROOT/node-$1/tern.conf"; }
data() { echo "$ROOT/node-$1/data"; }
other() { [ "$1" = a ] && echo b || echo a; }
node_start() { # a|b
	local n=$1 p i
	[ -n "${PID[$n]}" ] && alive "${PID[$n]}" && return 0
	node_kill_stale "$n"
	for p in ${IMAP[$n]} ${LMTP[$n]} ${POP3[$n]} ${CLPORT[$n]}; do
		port_busy "$p" && die "port $p is already in use by another process"
	done
	"$TERND" --config "$(conf "$n")" < /dev/null >> "$ROOT/node-$n/ternd.log" 2>&1 &
	PID[$n]=$!
	echo "${PID[$n]}" > "$ROOT/node-$n/ternd.pid"
	for i in $(seq 150); do
		alive "${PID[$n]}" || { tail -5 "$ROOT/node-$n/ternd.log" >&2; die "node-$n exited at start"; }
		port_busy "${LMTP[$n]}" && port_busy "${CLPORT[$n]}" && port_busy "${IMAP[$n]}" && return 0
		sleep 0.1
	done
	die "node-$n did not listen within 15 s"
}

node_stop() { # a|b: SIGTERM, wait (final checkpoint), SIGKILL after STOP_TMO
	local n=$1 p=${PID[$1]} i
	[ -n "$p" ] || return 0
	kill -TERM "$p" 2> /dev/null
	for i in $(seq $((STOP_TMO * 10))); do alive "$p" || break; sleep 0.1; done
	if alive "$p"; then log "WARNING: node-$n ($p) still running after SIGTERM, SIGKILL"; kill -KILL "$p"; fi
	wait "$p" 2> /dev/null || log "WARNING: node-$n exited with status $? (log: $ROOT/node-$n/ternd.log)"
	PID[$n]=""
	rm -f "$ROOT/node-$n/ternd.pid"
}

node_kill_stale() { # a ternd left from an interrupted run of this script (same config)
	local n=$1 p i f=$ROOT/node-$1/ternd.pid
	[ -s "$f" ] || return 0
	p=$(cat "$f")
	if alive "$p" && tr '\0' ' ' < /proc/"$p"/cmdline | grep -q -- "--config $(conf "$n")"; then
		log "stopping node-$n ($p) left over from an earlier run"
		kill -TERM "$p"
		for i in $(seq $((STOP_TMO * 10))); do alive "$p" || break; sleep 0.1; done
		alive "$p" && kill -KILL "$p"
	fi
	rm -f "$f"
}

start_all() { node_start a; node_start b; }
stop_all() { node_stop b; node_stop a; }
write_conf() { # a|b
	local n=$1
	mkdir -p "$(data "$n")" "$ROOT/shared"
	cat > "$(conf "$n")" << EOF
# written by bench/$BENCH_NAME - private benchmark cluster, node-$n
node_name = node-$n
data_dir = $(data "$n")
directory = $ROOT/shared/directory.db
lmtp_listen = 127.0.0.1:${LMTP[$n]}
imap_listen = 127.0.0.1:${IMAP[$n]}
pop3_listen = 127.0.0.1:${POP3[$n]}
cluster_listen = 127.0.0.1:${CLPORT[$n]}
cluster_secret = $SECRET
domains = $DOMAIN
log_level = ${LOG_LEVEL:-info}
EOF
	"$TERND" --check-config --config "$(conf "$n")" > /dev/null || die "ternd rejects $(conf "$n")"
}
