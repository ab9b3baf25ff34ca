#!/usr/bin/env bash
# Installs the Debian packages Tern needs that are missing. "build" = enough to
# build and run ternd; "test" = also everything the test suite drives.
set -euo pipefail
what=${1:-build}
build_pkgs=(cmake make gcc pkg-config libevent-dev libsqlite3-dev libgmime-3.0-dev libssl-dev
	libjansson-dev libargon2-dev libcrypt-dev zlib1g-dev libunistring-dev libpq-dev openssl python3
	sqlite3)
test_pkgs=(libcmocka-dev python3-pytest swaks postfix curl isync offlineimap fetchmail mutt
	clang libclang-rt-14-dev dovecot-core dovecot-imapd dovecot-pop3d dovecot-lmtpd)
pkgs=("${build_pkgs[@]}")
[ "$what" = test ] && pkgs+=("${test_pkgs[@]}")
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "install-deps: installing ${missing[*]}" >&2
SUDO=
[ "$(id -u)" -ne 0 ] && SUDO=sudo
# Postfix asks how to configure itself; the tests run private instances.
echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
