#!/usr/bin/env bash
# Starts one Tern node on the embedded SQLite directory under ./var, on
# loopback ports, creating the user "demo" (password printed) on first run.
set -euo pipefail
build=${1:-build}
mkdir -p var
conf=var/tern.conf
if [ ! -f "$conf" ]; then
	cat > "$conf" <<CONF
# Written by 'make run'; see docs/configuration.md for every key.
node_name = node1
data_dir = ./var
lmtp_listen = 127.0.0.1:2424
imap_listen = 127.0.0.1:1143
pop3_listen = 127.0.0.1:1110
log_level = info
CONF
fi
ctl() { "$build/ternctl" --config "$conf" "$@"; }
if [ "$(ctl user list --json)" = "[]" ]; then
	pw=$(head -c 12 /dev/urandom | base64 | tr -d '/+=' | cut -c1-16)
	printf '%s\n' "$pw" | ctl user add demo --password-stdin
	echo "Created user 'demo' with password: $pw"
fi
echo "Starting ternd with $conf (LMTP 127.0.0.1:2424, IMAP 127.0.0.1:1143, POP3 127.0.0.1:1110); Ctrl-C stops it."
exec "$build/ternd" --config "$conf"
