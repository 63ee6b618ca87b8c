#!/bin/sh
# Install the Debian packages evpop3d needs to build and test, but only those
# that are missing.  Called by `make check` and `make demo`; NO_DEPS=1 skips.
set -e
# Build: compiler, autoconf, libraries.  Tests: the real clients and tools
# the integration tests drive (curl, fetchmail, getmail6, mpop, telnet via
# expect, socat, systemd-socket-activate, fail2ban-regex, ss) and clang's
# libFuzzer for the fuzz smoke run.
PKGS="build-essential autoconf automake pkg-config libevent-dev libssl-dev
libcrypt-dev libcunit1-dev openssl python3 curl clang libclang-rt-14-dev
fetchmail getmail6 mpop expect telnet socat systemd fail2ban haproxy
iproute2"
missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
	echo "install-deps: missing packages:$missing (no apt-get here; install them by hand)" >&2
	exit 1
fi
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
echo "install-deps: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q || true
$SUDO apt-get install -y -q $missing
