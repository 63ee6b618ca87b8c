#!/bin/sh
# SPDX-License-Identifier: ISC
#
# run-demo.sh: `make demo` runs this from the top directory after building
# src/evpop3d.  It (re)creates ./demo/ - a Maildir for user "demo" filled
# from contrib/demo/messages/, a passwd file and a configuration listening
# on 127.0.0.1:1110 and POP3S on 127.0.0.1:1995 with a fresh self-signed
# certificate - prints a telnet session to try and runs the server in
# the foreground.  Running it again resets the demo mailbox.  Started as
# root, the server drops to user nobody, which then owns demo/.
set -eu

top=$(pwd)
demo="$top/demo"
bin="$top/src/evpop3d"
msgs="$top/contrib/demo/messages"
md="$demo/mail/demo/Maildir"
addr=127.0.0.1
port=1110
tlsport=1995

if [ ! -x "$bin" ]; then
	echo "run-demo.sh: $bin is missing; run 'make' first" >&2
	exit 1
fi
if [ ! -d "$msgs" ]; then
	echo "run-demo.sh: run me from the top of the evpop3d tree" >&2
	exit 1
fi

# Start from scratch: a previous demo may have deleted or moved messages.
rm -rf "$demo"
mkdir -p "$md/cur" "$md/new" "$md/tmp"

# Maildir file names: TIME.UNIQUE.HOST, plus ":2,FLAGS" once in cur/.  The
# part before ':' is the message's UIDL.  One message was already seen; the
# other two are new and move to cur/ at the first login.
cp "$msgs/1-welcome.eml" "$md/cur/1732270000.M1P1.demo:2,S"
cp "$msgs/2-meeting.eml" "$md/new/1732270100.M2P1.demo"
cp "$msgs/3-invoice.eml" "$md/new/1732270200.M3P1.demo"

# {PLAIN} so that APOP works too; a real passwd file would hold hashes
# made with `src/evpop3d --hash-password`.
printf 'demo:{PLAIN}demo-password\n' > "$demo/passwd"
chmod 600 "$demo/passwd"

# A fresh self-signed certificate for STLS and POP3S (never reused).
openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj /CN=localhost \
    -keyout "$demo/key.pem" -out "$demo/cert.pem" >/dev/null 2>&1
chmod 600 "$demo/key.pem"

cat > "$demo/evpop3d.conf" <<EOF
# evpop3d demo configuration, written by contrib/demo/run-demo.sh.
listen $addr:$port
listen_tls $addr:$tlsport
tls_cert $demo/cert.pem
tls_key $demo/key.pem
passwd_file $demo/passwd
mail_location $demo/mail/%u/Maildir
allow_plaintext yes
EOF

if [ "$(id -u)" -eq 0 ]; then
	# Never serve as root: the daemon drops to nobody after binding.
	group=nogroup
	getent group nogroup >/dev/null 2>&1 || group=$(id -gn nobody)
	cat >> "$demo/evpop3d.conf" <<EOF
user nobody
group $group
EOF
	chown -R "nobody:$group" "$demo"
	# nobody must be able to reach demo/ through every parent directory.
	d="$top"
	while [ "$d" != "/" ]; do
		perm=$(stat -c %A "$d")
		case "$perm" in
		d????????[xt]) ;;
		*)	echo "run-demo.sh: warning: $d is not searchable by" \
			    "others; user nobody cannot reach $demo" >&2 ;;
		esac
		d=$(dirname "$d")
	done
fi

cat <<EOF

evpop3d demo: Maildir $md
              user "demo", password "demo-password"
Try it from another terminal:

    \$ telnet $addr $port
    +OK evpop3d ready <...>
    USER demo
    +OK
    PASS demo-password
    +OK Logged in, 3 messages (... octets).
    STAT
    +OK 3 ...
    LIST
    +OK 3 messages (... octets)
    1 ...
    2 ...
    3 ...
    .
    RETR 1
    +OK ... octets
    (the message, ended by a line holding a single ".")
    QUIT
    +OK ...

(or: curl pop3://$addr:$port/1 -u demo:demo-password)

Over TLS (self-signed certificate in demo/cert.pem):

    openssl s_client -quiet -connect $addr:$tlsport            # POP3S
    openssl s_client -quiet -starttls pop3 -connect $addr:$port  # STLS
    curl -k pop3s://$addr:$tlsport/1 -u demo:demo-password
Stop the server with Ctrl-C; run 'make demo' again to reset the mailbox.

EOF

exec "$bin" -c "$demo/evpop3d.conf" -F
