#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
#
# evpop3d behind HAProxy: two evpop3d processes on different loopback
# ports share one Maildir root (as nodes sharing NFS would), with the real
# HAProxy in front of them (mode tcp, send-proxy-v2, TCP health checks that
# expect the greeting, POP3S by TLS passthrough), configured like
# contrib/haproxy/haproxy.cfg but with short check intervals.  Tests the
# PROXY protocol (client address in the logs, LOCAL health checks, missing
# and untrusted headers), mailbox locks across nodes, fail-over after a
# SIGKILL (a dead process's lock on this host is broken at once, another
# host's lock after lock_stale_timeout), and that no message is lost or
# delivered again after a confirmed QUIT while clients, a delivery agent
# and a node crash race.  Python 3 standard library, openssl and haproxy
# (installed with apt-get when missing and we are root; otherwise every
# test is reported as SKIP).
#
#   EVPOP3D_BIN=/abs/path/src/evpop3d python3 tests/integ/cluster.py [-k NAME]
#
# Conventions are those of tests/integ/run.py, whose helpers this script
# imports: "PASS name", "FAIL name: why" (with the logs' tails) or
# "SKIP name: why"; exit status 1 if any test failed; as root the daemons
# run as nobody/nogroup over a temporary directory owned by them;
# EVPOP3D_SAN=1 gives longer timeouts and checks every daemon's log for
# sanitizer reports.

import argparse
import os
import random
import re
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as base  # noqa: E402  (tests/integ/run.py)
from run import (Fail, Skip, Closed, check, eq, short, mkmsg,  # noqa: E402
                 wire, three, base_of, test_id, free_port, wait_port, HOST,
                 SLOW, START_TIMEOUT, ROOT, SAN)

SRCDIR = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
CONTRIB_CFG = os.path.join(SRCDIR, "contrib", "haproxy", "haproxy.cfg")
F2B_FILTER = os.path.join(SRCDIR, "contrib", "fail2ban", "evpop3d.conf")

STALE = 10              # lock_stale_timeout on the nodes (its minimum)
CLIENT_A = "127.0.0.2"  # "remote" client addresses (all of 127/8 is local)
CLIENT_B = "127.0.0.3"
V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


# ---------------------------------------------------------------------------
# Tools: haproxy (installed when missing and root) and a certificate.

def find_haproxy():
    """(path, None) or (None, why not)."""
    for p in (shutil.which("haproxy"), "/usr/sbin/haproxy"):
        if p and os.access(p, os.X_OK):
            return p, None
    if not ROOT:
        return None, "haproxy is not installed (and we are not root)"
    if shutil.which("apt-get") is None:
        return None, "haproxy is not installed and there is no apt-get"
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    print("cluster.py: installing haproxy with apt-get", flush=True)
    for update in (False, True):
        try:
            if update:
                subprocess.run(["apt-get", "update"], env=env, timeout=300,
                               stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
            r = subprocess.run(["apt-get", "install", "-y",
                                "--no-install-recommends", "haproxy"],
                               env=env, capture_output=True, timeout=600)
        except (OSError, subprocess.TimeoutExpired) as e:
            return None, "apt-get install haproxy: %s" % e
        if r.returncode == 0:
            break
    for p in (shutil.which("haproxy"), "/usr/sbin/haproxy"):
        if p and os.access(p, os.X_OK):
            return p, None
    return None, "apt-get install haproxy failed: %s" % short(
        r.stderr.decode(errors="replace")[-300:], 300)


class Cert:
    """One self-signed certificate for CN/SAN localhost, made per run."""
    dir = None

    @classmethod
    def paths(cls):
        if cls.dir is None:
            d = tempfile.mkdtemp(prefix="evpop3d-cluster-cert-")
            r = subprocess.run(
                ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                 "ec_paramgen_curve:prime256v1", "-nodes", "-subj",
                 "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
                 "-days", "2", "-keyout", os.path.join(d, "key.pem"),
                 "-out", os.path.join(d, "cert.pem")],
                capture_output=True, timeout=60)
            if r.returncode != 0:
                shutil.rmtree(d, ignore_errors=True)
                raise Skip("openssl req failed: %s" % short(r.stderr, 300))
            cls.dir = d
        return (os.path.join(cls.dir, "cert.pem"),
                os.path.join(cls.dir, "key.pem"))

    @classmethod
    def remove(cls):
        if cls.dir:
            shutil.rmtree(cls.dir, ignore_errors=True)


# ---------------------------------------------------------------------------
# A POP3 client that can pick its source address and speak TLS.

class PConn(base.Conn):
    """base.Conn, connected from src (an address of 127/8) and optionally
    wrapped in TLS; .pid is the evpop3d pid from the greeting's APOP
    timestamp, which tells which node HAProxy chose."""

    def __init__(self, port, src=None, tls=None, timeout=None,
                 greeting=True):
        self.timeout = timeout or 5.0 * SLOW
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        try:
            if src:
                s.bind((src, 0))
            s.connect((HOST, port))
            self.local = s.getsockname()
            if tls is not None:
                s = tls.wrap_socket(s, server_hostname="localhost")
        except (OSError, ssl.SSLError):
            s.close()
            raise
        self.s = s
        self.buf = bytearray()
        self.pid = None
        self.greeting = self.line() if greeting else None
        if greeting:
            check(self.greeting.startswith("+OK"),
                  "greeting %s" % short(self.greeting))
            m = re.search(r"<(\d+)\.", self.greeting)
            check(m is not None, "no <pid.x.time@host> in greeting %s"
                  % short(self.greeting))
            self.pid = int(m.group(1))

    def _fill(self, n=65536):
        try:
            super()._fill(n)
        except (ssl.SSLError, OSError) as e:
            raise Closed("connection broken: %s" % e)


def tls_client():
    cert, _ = Cert.paths()
    ctx = ssl.create_default_context(cafile=cert)
    ctx.check_hostname = True
    return ctx


def raw(src=None, port=None, timeout=2.0):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout * SLOW)
    if src:
        s.bind((src, 0))
    s.connect((HOST, port))
    return s


def recv_all(s, timeout):
    """Octets until EOF; (data, closed) where closed is False if the
    connection was still open after timeout seconds."""
    s.settimeout(timeout)
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            d = s.recv(65536)
        except socket.timeout:
            break
        except ConnectionResetError:
            return out, True
        if not d:
            return out, True
        out += d
    return out, False


def v2_header(src, sport, dst, dport):
    """PROXY v2, command PROXY, TCP over IPv4."""
    addrs = (socket.inet_aton(src) + socket.inet_aton(dst)
             + struct.pack("!HH", sport, dport))
    return V2_SIG + bytes([0x21, 0x11]) + struct.pack("!H", len(addrs)) \
        + addrs


def v2_local():
    return V2_SIG + bytes([0x20, 0x00]) + b"\x00\x00"


# ---------------------------------------------------------------------------
# The cluster: evpop3d nodes over one Maildir root, HAProxy in front.

def wait_log(d, pattern, timeout=3.0):
    """Wait for a line of d's log matching the regex; returns the match."""
    rx = re.compile(pattern)
    deadline = time.monotonic() + timeout * SLOW
    while True:
        for ln in d.logtext().splitlines():
            m = rx.search(ln)
            if m:
                return m
        if time.monotonic() > deadline:
            raise Fail("%s: no log line matching %s" % (
                os.path.basename(d.log), pattern))
        time.sleep(0.05)


def start_node(c, extra=(), plaintext="yes", tls_port=None):
    """An evpop3d node (base.Daemon) with proxy_protocol_from 127.0.0.1;
    like Case.start but with allow_plaintext chosen."""
    port = free_port()
    # One process per node: each node stands for a host, and the tests
    # name nodes by the pid in the greeting and the lock file (worker
    # processes within one daemon are covered by run.py's workers tests).
    lines = ["proxy_protocol_from 127.0.0.1",
             "lock_stale_timeout %d" % STALE, "workers 1"]
    if tls_port:
        cert, key = Cert.paths()
        for p in (cert, key):
            shutil.copy(p, c.dir)
        lines += ["listen_tls %s:%d" % (HOST, tls_port),
                  "tls_cert %s" % os.path.join(c.dir, "cert.pem"),
                  "tls_key %s" % os.path.join(c.dir, "key.pem")]
    conf = c.write_conf(port, lines + list(extra))
    if plaintext != "yes":
        with open(conf) as f:
            text = f.read()
        with open(conf, "w") as f:
            f.write(text.replace("allow_plaintext yes\n",
                                 "allow_plaintext %s\n" % plaintext))
    log = os.path.join(c.dir, "evpop3d-%d.log" % c.nconf)
    d = base.Daemon(c, conf, port, log)
    d.tls_port = tls_port
    c.daemons.append(d)
    d.wait_ready()
    if tls_port and not wait_port(tls_port, START_TIMEOUT, d.proc):
        raise Fail("node did not listen on its TLS port %d" % tls_port)
    return d


def haproxy_conf(port, tls_port, nodes, sock, cafile):
    """contrib/haproxy/haproxy.cfg with loopback addresses, no chroot or
    user switch, logs to stdout and 500 ms checks."""
    check_rules = ["\toption tcp-check",
                   "\ttcp-check expect string +OK",
                   '\ttcp-check send "QUIT\\r\\n"',
                   "\ttcp-check expect string +OK"]
    srv = ("\tdefault-server send-proxy-v2 check inter 500ms fall 2 rise 1 "
           "on-marked-down shutdown-sessions")
    out = ["# generated by tests/integ/cluster.py "
           "(shape of contrib/haproxy/haproxy.cfg)",
           "global",
           "\tlog stdout format raw local0 info",
           "\tstats socket %s mode 600 level admin" % sock,
           "\tmaxconn 4000",
           "defaults",
           "\tmode tcp",
           "\tlog global",
           "\toption tcplog",
           "\toption dontlognull",
           "\ttimeout connect 2s",
           "\ttimeout client 10m",
           "\ttimeout server 10m",
           "\ttimeout client-fin 30s",
           "\ttimeout server-fin 30s",
           "\ttimeout check %ds" % (6 if SAN else 2),
           "\tretries 2",
           "\toption redispatch 1",
           "\toption clitcpka",
           "\toption srvtcpka",
           "frontend pop3",
           "\tbind %s:%d" % (HOST, port),
           "\tdefault_backend evpop3d_pop3",
           "backend evpop3d_pop3",
           "\tbalance roundrobin"] + check_rules + [srv]
    out += ["\tserver pop%d %s:%d" % (i + 1, HOST, d.port)
            for i, d in enumerate(nodes)]
    if tls_port:
        out += ["frontend pop3s",
                "\tbind %s:%d" % (HOST, tls_port),
                "\tdefault_backend evpop3d_pop3s",
                "backend evpop3d_pop3s",
                "\tbalance roundrobin"] + check_rules
        out += [srv + " check-ssl check-sni localhost verify required "
                "ca-file %s verifyhost localhost" % cafile]
        out += ["\tserver pop%d %s:%d" % (i + 1, HOST, d.tls_port)
                for i, d in enumerate(nodes)]
    return "\n".join(out) + "\n"


class HAProxy:
    def __init__(self, c, binpath, nodes, tls=False):
        self.c = c
        self.port = free_port()
        self.tls_port = free_port() if tls else None
        self.sock = os.path.join(c.dir, "haproxy.sock")
        self.conf = os.path.join(c.dir, "haproxy.cfg")
        self.log = os.path.join(c.dir, "haproxy.log")
        self.backends = ["evpop3d_pop3"] + (["evpop3d_pop3s"] if tls else [])
        self.servers = ["pop%d" % (i + 1) for i in range(len(nodes))]
        with open(self.conf, "w") as f:
            f.write(haproxy_conf(self.port, self.tls_port, nodes, self.sock,
                                 Cert.paths()[0] if tls else None))
        lf = open(self.log, "ab")
        self.proc = subprocess.Popen([binpath, "-db", "-f", self.conf],
                                     stdin=subprocess.DEVNULL, stdout=lf,
                                     stderr=subprocess.STDOUT, cwd=c.dir,
                                     start_new_session=True)
        lf.close()
        c.haproxies.append(self)        # stopped by main() whatever happens
        for p in [self.port] + ([self.tls_port] if tls else []):
            if not wait_port(p, START_TIMEOUT, self.proc):
                raise Fail("haproxy did not listen on %d (exit status %s): "
                           "%s" % (p, self.proc.poll(),
                                   short(self.logtext()[-600:], 600)))

    def logtext(self):
        try:
            with open(self.log, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def api(self, command):
        """One command on the stats socket (HAProxy's runtime API)."""
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(5)
            try:
                s.connect(self.sock)
                break
            except OSError as e:
                s.close()
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise Fail("haproxy stats socket: %s" % e)
                time.sleep(0.05)
        try:
            s.sendall(command.encode() + b"\n")
            out = b""
            while True:
                d = s.recv(65536)
                if not d:
                    break
                out += d
        finally:
            s.close()
        return out.decode("utf-8", "replace")

    def stat(self):
        """{(backend, server): row of "show stat" as a dict}."""
        rows = self.api("show stat").splitlines()
        check(rows and rows[0].startswith("# "), "show stat: %s"
              % short(rows[:2]))
        head = rows[0][2:].split(",")
        out = {}
        for r in rows[1:]:
            if r:
                f = dict(zip(head, r.split(",")))
                out[(f["pxname"], f["svname"])] = f
        return out

    def wait_status(self, backend, server, prefix, timeout):
        """Wait until the server's status starts with prefix (and, for UP,
        a check has passed); returns the seconds it took."""
        t0 = time.monotonic()
        while True:
            f = self.stat().get((backend, server))
            check(f is not None, "no server %s/%s" % (backend, server))
            if f["status"].startswith(prefix) and (
                    prefix != "UP" or
                    f["check_status"].lstrip("* ") in ("L7OK", "L4OK")):
                return time.monotonic() - t0
            if time.monotonic() - t0 > timeout:
                raise Fail("%s/%s still %s (check %s %s) after %.1fs, want "
                           "%s" % (backend, server, f["status"],
                                   f["check_status"], f.get("last_chk", ""),
                                   timeout, prefix))
            time.sleep(0.05)

    def wait_all_up(self):
        for b in self.backends:
            for s in self.servers:
                self.wait_status(b, s, "UP", START_TIMEOUT)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


class Cluster:
    """Two (or n) nodes over c's Maildir root and HAProxy in front."""

    def __init__(self, c, n=2, tls=False, extra=()):
        if not hasattr(c, "haproxies"):
            c.haproxies = []
        self.c = c
        self.nodes = [start_node(c, extra, tls_port=free_port() if tls
                                 else None) for _ in range(n)]
        self.hp = HAProxy(c, c.haproxy_bin, self.nodes, tls)
        self.hp.wait_all_up()
        self.port = self.hp.port
        self.tls_port = self.hp.tls_port

    def node_of(self, conn):
        for d in self.nodes:
            if d.pid == conn.pid:
                return d
        raise Fail("greeting pid %s is no node's (%s)"
                   % (conn.pid, [d.pid for d in self.nodes]))

    def server_of(self, d):
        return "pop%d" % (self.nodes.index(d) + 1)

    def conn(self, src=None, tls=False, on=None, tries=6):
        """A session through HAProxy, optionally until it lands on node
        `on` (round robin alternates; spare connections are closed)."""
        for _ in range(tries):
            cn = PConn(self.tls_port if tls else self.port, src=src,
                       tls=tls_client() if tls else None)
            if on is None or cn.pid == on.pid:
                return cn
            cn.close()
        raise Fail("no session landed on node pid %d in %d tries"
                   % (on.pid, tries))


def users(c, prefix, n, msgs=3):
    """n users prefixNN with password pw-prefixNN and three() messages."""
    out = {}
    for i in range(n):
        u = "%s%02d" % (prefix, i)
        m = three(u)[:msgs]
        c.add_user(u, "pw-" + u, msgs=m)
        out[u] = m
    return out


def login_line(peer_rx, user, result):
    """Regex for a login line (never a via=: the peer is the client)."""
    return (r"event=login peer=%s user=%s (?:\S+=\S* )*?result=%s\b" % (
        peer_rx, re.escape(user), re.escape(result)))


def end_line(peer_rx, user, via=True, reason="quit"):
    """Regex for a session's end line; other key=value fields may come
    between user= and reason=."""
    return (r"event=end peer=%s%s user=%s (?:\S+=\S* )*?reason=%s " % (
        peer_rx, r" via=127\.0\.0\.1:\d+" if via else "", re.escape(user),
        reason))


# ---------------------------------------------------------------------------
# Tests.

TESTS = []


def test(fn):
    TESTS.append((fn.__name__[2:], fn))
    return fn


@test
def t_contrib_config(c):
    """contrib/haproxy/haproxy.cfg is a valid configuration for this
    haproxy, and its essentials are there."""
    if not os.path.exists(CONTRIB_CFG):
        raise Skip("%s is not in this tree" % CONTRIB_CFG)
    r = subprocess.run([c.haproxy_bin, "-c", "-f", CONTRIB_CFG],
                       capture_output=True, timeout=30)
    check(r.returncode == 0, "haproxy -c -f %s: status %d: %s" % (
        CONTRIB_CFG, r.returncode, short((r.stdout + r.stderr).decode(
            errors="replace"), 600)))
    with open(CONTRIB_CFG) as f:
        text = f.read()
    for want in ("mode tcp", "send-proxy-v2", "tcp-check expect string +OK",
                 "timeout client", "timeout server", "bind :110",
                 "bind :995", "proxy_protocol_from"):
        check(want in text, "%s lacks %r" % (CONTRIB_CFG, want))


@test
def t_roundrobin_both_nodes(c):
    """Sessions through HAProxy log in, retrieve and delete on both
    nodes; each node's log shows the sessions it served."""
    us = users(c, "rr", 6)
    cl = Cluster(c)
    served = {}
    for u, msgs in sorted(us.items()):
        cn = cl.conn()
        d = cl.node_of(cn)
        served.setdefault(d.pid, []).append(u)
        cn.login(u, "pw-" + u)
        uidl = cn.listing("UIDL")
        eq(sorted(uidl.values()), sorted(base_of(m) for m in msgs),
           "%s UIDL" % u)
        want = {base_of(m): m[2] for m in msgs}
        for n, b in sorted(uidl.items()):
            eq(cn.multi("RETR %d" % n), wire(want[b]), "%s RETR %d" % (u, n))
        cn.ok("DELE 1")
        cn.quit()
        wait_log(d, end_line(r"127\.0\.0\.1:%d" % cn.local[1], u)
                 + r".*deleted=1/")
        eq(len(c.disk(u)), len(msgs) - 1, "%s's messages on disk" % u)
    eq(sorted(served), sorted(d.pid for d in cl.nodes),
       "nodes that served sessions (round robin)")
    eq(sorted(len(v) for v in served.values()), [3, 3],
       "sessions per node with balance roundrobin")


@test
def t_client_address(c):
    """The client's own address and port, not HAProxy's, are in the
    node's login and end lines (what fail2ban reads)."""
    users(c, "ca", 1)
    cl = Cluster(c)
    cn = cl.conn(src=CLIENT_A)
    d = cl.node_of(cn)
    lp = cn.local[1]
    eq(cn.local[0], CLIENT_A, "client socket address")
    cn.login("ca00", "pw-ca00")
    cn.quit()
    peer = r"127\.0\.0\.2:%d" % lp
    wait_log(d, login_line(peer, "ca00", "ok"))
    wait_log(d, end_line(peer, "ca00"))
    # A failed login from another address: the failure line carries that
    # address, and the fail2ban filter shipped in contrib/ finds it.
    cn = cl.conn(src=CLIENT_B)
    d = cl.node_of(cn)
    lp = cn.local[1]
    cn.ok("USER ca00")
    cn.err("PASS wrong", "AUTH")
    cn.close()
    m = wait_log(d, login_line(r"127\.0\.0\.3:%d" % lp, "ca00", "fail"))
    line = [ln for ln in d.logtext().splitlines() if m.group(0) in ln][0]
    if os.path.exists(F2B_FILTER):
        with open(F2B_FILTER) as f:
            fm = re.search(r"^failregex\s*=\s*(.+)$", f.read(), re.M)
        check(fm is not None, "no failregex in %s" % F2B_FILTER)
        rx = (fm.group(1).strip().replace("%(__prefix_line)s", "")
              .replace("<HOST>", r"(?P<host>[0-9A-Fa-f.:]+)"))
        hm = re.search(rx, line)
        check(hm is not None, "fail2ban failregex does not match %s"
              % short(line))
        eq(hm.group("host"), CLIENT_B, "address fail2ban would ban")
    bad = [ln for d in cl.nodes for ln in d.logtext().splitlines()
           if "event=login" in ln and "peer=127.0.0.1:" in ln]
    check(not bad, "a login logged with HAProxy's address: %s"
          % short(bad[:1]))


@test
def t_health_checks(c):
    """HAProxy's checks (PROXY v2 LOCAL, greeting, QUIT) keep both nodes
    UP without a warning; draining a node moves new sessions away."""
    users(c, "hc", 1)
    cl = Cluster(c)
    time.sleep(2.0)             # four more check rounds
    st = cl.hp.stat()
    for s in cl.hp.servers:
        f = st[("evpop3d_pop3", s)]
        eq(f["status"], "UP", "%s status" % s)
        # "* L7OK": a check is running now; the last result is L7OK.
        eq((f["check_status"].lstrip("* "), f["chkfail"], f["chkdown"]),
           ("L7OK", "0", "0"), "%s check status, failed checks, "
           "transitions to DOWN" % s)
    state = cl.hp.api("show servers state evpop3d_pop3")
    ops = re.findall(r"^\d+ evpop3d_pop3 \d+ (pop\d) \S+ (\d+) ", state,
                     re.M)
    eq(sorted(ops), [("pop1", "2"), ("pop2", "2")],
       "show servers state: srv_op_state (2 = running)")
    for d in cl.nodes:
        text = d.logtext()
        for bad in ("malformed PROXY header", "proxy_protocol_from",
                    "warn:"):
            check(bad not in text, "%s: %s in the log: %s" % (
                os.path.basename(d.log), bad,
                short([ln for ln in text.splitlines() if bad in ln][:1])))
        # The checks' sessions: HAProxy's own address (LOCAL), no via=.
        n = len(re.findall(end_line(r"127\.0\.0\.1:\d+", "-", via=False),
                           text))
        check(n >= 4, "%s: %d health check sessions ended with QUIT, want "
              ">= 4" % (os.path.basename(d.log), n))
    check(" is DOWN" not in cl.hp.logtext(), "haproxy log: %s" % short(
        [ln for ln in cl.hp.logtext().splitlines() if "DOWN" in ln][:1]))
    # Drain pop1 (doc/scaling.md): its state goes DRAIN, new sessions go
    # to pop2 only; back to ready, both serve again.
    a, b = cl.nodes
    out = cl.hp.api("set server evpop3d_pop3/pop1 state drain")
    check(out.strip() == "", "set server state drain: %s" % short(out))
    cl.hp.wait_status("evpop3d_pop3", "pop1", "DRAIN", 2 * SLOW)
    pids = []
    for _ in range(4):
        cn = cl.conn()
        pids.append(cn.pid)
        cn.close()
    eq(pids, [b.pid] * 4, "nodes of four sessions while pop1 drains")
    cl.hp.api("set server evpop3d_pop3/pop1 state ready")
    cl.hp.wait_status("evpop3d_pop3", "pop1", "UP", 2 * SLOW)
    pids = set()
    for _ in range(4):
        cn = cl.conn()
        pids.add(cn.pid)
        cn.close()
    eq(sorted(pids), sorted([a.pid, b.pid]), "nodes after ready")


@test
def t_in_use_across_nodes(c):
    """A mailbox held through one node is [IN-USE] through the other."""
    users(c, "iu", 1)
    cl = Cluster(c)
    s1 = cl.conn()
    n1 = cl.node_of(s1)
    s1.login("iu00", "pw-iu00")
    n2 = [d for d in cl.nodes if d is not n1][0]
    s2 = cl.conn(on=n2)
    s2.ok("USER iu00")
    r = s2.err("PASS pw-iu00", "IN-USE")
    check("Mailbox is locked" in r, "IN-USE reply %s" % short(r))
    wait_log(n2, login_line(r"127\.0\.0\.1:%d" % s2.local[1], "iu00",
                            "in-use"))
    eq(s1.stat()[0], 3, "first session still works")
    # The session that got [IN-USE] may try again (USER and PASS) once
    # the lock is free.
    s1.quit()
    deadline = time.monotonic() + 2 * SLOW
    while True:
        s2.ok("USER iu00")
        r = s2.cmd("PASS pw-iu00")
        if r.startswith("+OK") or time.monotonic() > deadline:
            break
        check("[IN-USE]" in r, "PASS after the holder quit: %s" % short(r))
        time.sleep(0.1)
    check(r.startswith("+OK"), "PASS after the holder quit: %s" % short(r))
    eq(s2.stat()[0], 3, "STAT through the other node")
    s2.quit()


@test
def t_pop3s_passthrough(c):
    """POP3S through HAProxy: TLS between client and node, PROXY v2
    before it; the client address reaches the log; checks over TLS."""
    us = users(c, "tl", 2)
    cl = Cluster(c, tls=True)
    for b in cl.hp.backends:
        for s in cl.hp.servers:
            f = cl.hp.stat()[(b, s)]
            eq((f["status"], f["check_status"].lstrip("* ")),
               ("UP", "L7OK"),
               "%s/%s" % (b, s))
    seen = set()
    for u, msgs in sorted(us.items()):
        cn = cl.conn(src=CLIENT_A, tls=True)
        d = cl.node_of(cn)
        seen.add(d.pid)
        check(cn.s.version() is not None, "not TLS")
        capa = cn.multi("CAPA")
        check(b"STLS" not in capa, "STLS offered inside TLS")
        cn.login(u, "pw-" + u)
        want = {base_of(m): m[2] for m in msgs}
        uidl = cn.listing("UIDL")
        eq(cn.multi("RETR 1"), wire(want[uidl[1]]), "RETR 1 over TLS")
        cn.quit()
        wait_log(d, end_line(r"127\.0\.0\.2:%d" % cn.local[1], u)
                 + r"tls=TLSv1\.[23]")
    eq(sorted(seen), sorted(d.pid for d in cl.nodes), "nodes used")
    # The plain frontend of the same nodes offers STLS (tls_cert is set).
    cn = cl.conn()
    check(b"STLS" in cn.multi("CAPA"), "STLS not offered on plain POP3")
    cn.quit()
    for d in cl.nodes:
        check("malformed" not in d.logtext(), "%s: malformed PROXY header "
              "(TLS checks)" % os.path.basename(d.log))


@test
def t_direct_and_untrusted(c):
    """From a proxy_protocol_from address a header is required; from any
    other a header is refused; v1, v2 LOCAL and UNKNOWN by hand;
    allow_plaintext local judges the client address from the header."""
    users(c, "dx", 1)
    d = start_node(c, plaintext="local")
    # 1. Trusted sender, no header: no greeting, closed.
    s = raw(port=d.port)
    lp = s.getsockname()[1]
    s.sendall(b"USER dx00\r\n")
    got, closed = recv_all(s, 3 * SLOW)
    s.close()
    eq((got, closed), (b"", True), "direct connection without a header "
       "(octets received, closed)")
    wait_log(d, r"peer=127\.0\.0\.1:%d missing or malformed PROXY header"
             % lp)
    # Nothing sent: the server waits for the header, sends no greeting.
    s = raw(port=d.port)
    got, closed = recv_all(s, 1.0)
    s.close()
    eq((got, closed), (b"", False), "trusted sender that sends nothing")
    # 2. Untrusted sender: an ordinary POP3 session, but a header is
    # refused, in either version.
    for hdr in (v2_header("198.51.100.7", 4242, HOST, d.port),
                b"PROXY TCP4 198.51.100.7 127.0.0.1 4242 %d\r\n" % d.port):
        s = raw(src=CLIENT_A, port=d.port)
        lp = s.getsockname()[1]
        s.sendall(hdr)
        got, closed = recv_all(s, 3 * SLOW)
        s.close()
        check(closed, "untrusted PROXY header: connection left open")
        lines = got.split(b"\r\n")
        check(lines[0].startswith(b"+OK"), "untrusted sender's greeting: %s"
              % short(got))
        eq(lines[1:], [b"-ERR PROXY header from an untrusted address.",
                       b""], "reply to an untrusted PROXY header")
        wait_log(d, r"peer=127\.0\.0\.2:%d sent a PROXY header but is not "
                 r"in proxy_protocol_from; refused" % lp)
    # Untrusted sender on loopback without header: allow_plaintext local.
    cn = PConn(d.port, src=CLIENT_A)
    cn.login("dx00", "pw-dx00")
    cn.quit()
    # 3. Trusted sender, v1 header by hand with a remote client: logged as
    # that client; plaintext refused (not local) although the TCP peer
    # is loopback.
    cn = PConn(d.port, greeting=False)
    lp = cn.local[1]
    cn.send(b"PROXY TCP4 198.51.100.7 127.0.0.1 4242 %d\r\n" % d.port)
    check(cn.line().startswith("+OK"), "greeting after a v1 header")
    cn.err("USER dx00", "AUTH")
    cn.ok("QUIT")
    cn.expect_closed()
    wait_log(d, end_line(r"198\.51\.100\.7:4242", "-", reason="quit")
             .replace(r"via=127\.0\.0\.1:\d+", r"via=127\.0\.0\.1:%d" % lp))
    # v2 with a loopback client: plaintext allowed, logged as that client.
    cn = PConn(d.port, greeting=False)
    lp = cn.local[1]
    cn.send(v2_header("127.0.0.5", 5555, HOST, d.port))
    check(cn.line().startswith("+OK"), "greeting after a v2 header")
    cn.login("dx00", "pw-dx00")
    cn.quit()
    wait_log(d, login_line(r"127\.0\.0\.5:5555", "dx00", "ok"))
    wait_log(d, end_line(r"127\.0\.0\.5:5555", "dx00").replace(
        r"via=127\.0\.0\.1:\d+", r"via=127\.0\.0\.1:%d" % lp))
    # v2 LOCAL and v1 UNKNOWN: the proxy's own address, no via=.
    for hdr in (v2_local(), b"PROXY UNKNOWN\r\n"):
        cn = PConn(d.port, greeting=False)
        lp = cn.local[1]
        cn.send(hdr)
        check(cn.line().startswith("+OK"), "greeting after %r" % hdr)
        cn.login("dx00", "pw-dx00")
        cn.quit()
        wait_log(d, end_line(r"127\.0\.0\.1:%d" % lp, "dx00", via=False))


def rewrite_lock_host(path, host):
    """Rewrite the host field of a lock file in place (its mtime becomes
    now); returns the old content."""
    with open(path) as f:
        old = f.read()
    fields = old.split(" ")
    check(len(fields) in (4, 5) and old.endswith("\n"),
          "lock file content %s" % short(old))
    with open(path, "w") as f:
        f.write(" ".join([host] + fields[1:]))
    return old


@test
def t_sigkill_failover(c):
    """SIGKILL the node holding two mailboxes with DELE marks: HAProxy
    marks it DOWN in seconds, new sessions go to the other node, the dead
    process's locks are broken at once, nothing is deleted; a lock that
    says it is another host's waits for lock_stale_timeout."""
    us = users(c, "ko", 2)
    cl = Cluster(c)
    s1 = cl.conn(src=CLIENT_A)
    victim = cl.node_of(s1)
    other = [d for d in cl.nodes if d is not victim][0]
    s1.login("ko00", "pw-ko00")
    s1.ok("DELE 1")
    s1.ok("DELE 2")
    s2 = cl.conn(on=victim)
    s2.login("ko01", "pw-ko01")
    s2.ok("DELE 3")
    s2.ok("NOOP")
    locks = {u: os.path.join(c.maildir(u), "evpop3d.lock") for u in us}
    for u, p in locks.items():
        check(os.path.exists(p), "%s: no lock file while logged in" % u)
    t0 = time.monotonic()
    victim.kill()               # SIGKILL, and reaped
    s1.close()
    s2.close()
    down = cl.hp.wait_status("evpop3d_pop3", cl.server_of(victim), "DOWN",
                             5 * SLOW)
    check(time.monotonic() - t0 < 5 * SLOW, "DOWN after %.1fs" % down)
    eq(cl.hp.stat()[("evpop3d_pop3", cl.server_of(other))]["status"], "UP",
       "the other node's status")
    for u, msgs in us.items():
        eq(sorted(c.disk(u)), sorted(base_of(m) for m in msgs),
           "%s's messages after SIGKILL with DELE marks" % u)
        with open(locks[u]) as f:
            fields = f.read().split()
        check(len(fields) >= 4 and fields[1] == str(victim.pid),
              "%s: lock file %s, want the killed pid %d" % (
                  u, short(fields), victim.pid))
        if u == "ko00" and len(fields) == 5:
            # "host pid starttime acquired client": the client the PROXY
            # header named, not HAProxy
            eq(fields[4], "%s:%d" % (CLIENT_A, s1.local[1]),
               "client recorded in ko00's lock")
    pids = []
    for _ in range(4):
        cn = cl.conn()
        pids.append(cn.pid)
        cn.close()
    eq(pids, [other.pid] * 4, "nodes of new sessions after the kill")
    # The killed process's lock on ko00: this host, dead pid: at once.
    cn = cl.conn()
    cn.ok("USER ko00")
    r = cn.cmd("PASS pw-ko00")
    check(r.startswith("+OK"), "login right after the node was killed "
          "(a dead process's lock on this host must be broken at once): %s"
          % short(r))
    eq(cn.stat()[0], 3, "ko00 STAT")
    cn.quit()
    wait_log(other, r"lock: \S+/ko00/Maildir: took over stale lock of \S+ "
             r"pid %d" % victim.pid)
    # ko01: the same lock, now claiming another host (node-b.invalid):
    # only its age tells, so [IN-USE] until lock_stale_timeout passed.
    rewrite_lock_host(locks["ko01"], "node-b.invalid")
    t_rw = time.monotonic()
    attempts = 0
    while True:
        cn = cl.conn()
        cn.ok("USER ko01")
        r = cn.cmd("PASS pw-ko01")
        el = time.monotonic() - t_rw
        attempts += 1
        if r.startswith("+OK"):
            break
        cn.close()
        check("[IN-USE]" in r and "node-b.invalid" in r,
              "login %.1fs after the rewrite: %s" % (el, short(r)))
        check(el < STALE + 4 * SLOW, "still [IN-USE] %.1fs after the lock "
              "was last written (lock_stale_timeout %d)" % (el, STALE))
        time.sleep(0.5)
    check(el >= STALE - 0.2, "another host's fresh lock taken over after "
          "%.1fs, before lock_stale_timeout %d" % (el, STALE))
    check(attempts > 5, "only %d attempts" % attempts)
    eq(cn.stat()[0], 3, "ko01 STAT")
    cn.quit()
    wait_log(other, r"lock: \S+/ko01/Maildir: took over stale lock of "
             r"node-b\.invalid pid %d" % victim.pid)
    for u, msgs in us.items():
        eq(sorted(c.disk(u)), sorted(base_of(m) for m in msgs),
           "%s's messages at the end" % u)
    c.note = "DOWN after %.1fs; other host's lock taken after %.1fs" % (
        down, el)


@test
def t_no_loss_race(c):
    """20 clients loop login/RETR all/DELE all/QUIT over 20 mailboxes
    through HAProxy while messages are delivered and one node is
    SIGKILLed midway; then every mailbox is drained.  Every message is
    retrieved at least once with the right content; none is seen again
    after a session that deleted it got +OK to QUIT."""
    boxes = ["rc%02d" % i for i in range(20)]
    for b in boxes:
        c.add_user(b, "pw-" + b)
    cl = Cluster(c)
    uid = gid = None
    if ROOT:
        uid, gid, _ = base.run_ids()
    mu = threading.Lock()
    delivered = {}              # test id -> (box, data)
    sessions = []               # dicts, see client()
    problems = []
    stop = threading.Event()
    deliver_for = 4.0
    counter = [0]

    def deliver(until):
        n = 0
        rnd = random.Random(7)
        while time.monotonic() < until:
            box = rnd.choice(boxes)
            tid = "race-%05d" % n
            data = mkmsg(tid, body=[b"Body of %s." % tid.encode(),
                                    b".a line with a dot"] * (1 + n % 5))
            name = "%d.M%dP%d.cluster" % (int(time.time()), n, os.getpid())
            md = c.maildir(box)
            tmp = os.path.join(md, "tmp", name)
            with open(tmp, "wb") as f:
                f.write(data)
            if uid is not None:
                os.chown(tmp, uid, gid)
            with mu:
                delivered[tid] = (box, data)
            os.rename(tmp, os.path.join(md, "new", name))
            n += 1
            time.sleep(0.003)

    def one_session(box):
        """Log in to box, RETR and DELE everything, QUIT.  Returns the
        session's record (also appended to sessions), or None if the
        mailbox was [IN-USE]."""
        sess = {"box": box, "retr": [], "quit_ok": False, "login_t": None,
                "quit_t": None, "node": None, "err": None, "in_use": False}
        cn = None
        try:
            cn = PConn(cl.port, timeout=5 * SLOW)
            sess["node"] = cn.pid
            cn.ok("USER " + box)
            r = cn.cmd("PASS pw-" + box)
            if "[IN-USE]" in r:
                sess["in_use"] = True
                return None
            check(r.startswith("+OK"), "PASS: %s" % short(r))
            sess["login_t"] = time.monotonic()
            n = cn.stat()[0]
            for i in range(1, n + 1):
                body = cn.multi("RETR %d" % i)
                tid = test_id(body)
                with mu:
                    want = delivered.get(tid)
                if want is None or want[0] != box or body != wire(want[1]):
                    problems.append("%s RETR %d: %s is not what was "
                                    "delivered (%s)" % (box, i, tid,
                                                        short(body[:80])))
                sess["retr"].append(tid)
                cn.ok("DELE %d" % i)
            r = cn.cmd("QUIT")
            if r.startswith("+OK"):
                sess["quit_ok"] = True
                sess["quit_t"] = time.monotonic()
            else:
                sess["err"] = "QUIT: " + r
        except (Fail, OSError) as e:
            sess["err"] = str(e)
        finally:
            if cn is not None:
                cn.close()
            if not sess["in_use"]:
                with mu:
                    sessions.append(sess)
                    counter[0] += 1
        return sess

    def client(i):
        k = i
        while not stop.is_set():
            if one_session(boxes[k % len(boxes)]) is None:
                time.sleep(0.01)
            k += 1

    t0 = time.monotonic()
    dt = threading.Thread(target=deliver, args=(t0 + deliver_for,))
    dt.start()
    clients = [threading.Thread(target=client, args=(i,))
               for i in range(20)]
    for t in clients:
        t.start()
    time.sleep(deliver_for / 2)
    victim = cl.nodes[0]
    with mu:
        before = {s["node"] for s in sessions if s["node"]}
        n_before = counter[0]
    victim.kill()
    t_kill = time.monotonic()
    dt.join()
    time.sleep(0.5)
    stop.set()
    for t in clients:
        t.join(30 * SLOW)
        check(not t.is_alive(), "a client thread is stuck")
    # Drain every mailbox through HAProxy until a login finds it empty.
    for box in boxes:
        deadline = time.monotonic() + 10 * SLOW
        while True:
            last = one_session(box)
            if last is not None and last["quit_ok"] and not last["retr"]:
                break
            check(time.monotonic() < deadline, "cannot drain %s: %s" % (
                box, "[IN-USE]" if last is None else last["err"]))
    check(not problems, "%d wrong messages: %s" % (len(problems),
                                                   problems[0] if problems
                                                   else ""))
    eq(sorted(before), sorted(d.pid for d in cl.nodes),
       "nodes that served sessions before the kill")
    # Every delivered message retrieved at least once.
    seen = {}
    for i, s in enumerate(sessions):
        for tid in s["retr"]:
            seen.setdefault(tid, []).append(i)
    lost = sorted(set(delivered) - set(seen))
    check(not lost, "%d of %d delivered messages never retrieved: %s" % (
        len(lost), len(delivered), lost[:10]))
    # None seen again once a session that deleted it got +OK to QUIT.
    again = []
    for tid, idx in seen.items():
        confirmed = [i for i in idx if sessions[i]["quit_ok"]]
        if len(confirmed) > 1:
            again.append("%s in %d confirmed sessions" % (tid,
                                                          len(confirmed)))
            continue
        for ci in confirmed:
            qt = sessions[ci]["quit_t"]
            later = [i for i in idx if i != ci
                     and sessions[i]["login_t"] > qt]
            if later:
                again.append("%s again after a confirmed QUIT" % tid)
    check(not again, "%d messages retrieved again after their deletion "
          "was confirmed: %s" % (len(again), again[:5]))
    for box in boxes:
        eq(c.disk(box), {}, "%s on disk after draining" % box)
        check(not os.path.exists(os.path.join(c.maildir(box),
                                              "evpop3d.lock")),
              "%s: lock file left after draining" % box)
    check(other_alive(cl, victim), "the surviving node died")
    cut = [s for s in sessions if not s["quit_ok"]]
    cut_retr = [s for s in cut if s["retr"]]
    redone = sum(1 for tid, idx in seen.items() if len(idx) > 1)
    c.note = ("%d delivered, %d sessions (%d before the kill at %.1fs), "
              "%d cut (%d after a RETR), %d retrieved twice (after a cut "
              "session only)" % (len(delivered), len(sessions), n_before,
                                 t_kill - t0, len(cut), len(cut_retr),
                                 redone))


def other_alive(cl, victim):
    return all(d.proc.poll() is None for d in cl.nodes if d is not victim)


# ---------------------------------------------------------------------------

def tails(c, n=25):
    out = [c.log_tails(n)]
    for hp in getattr(c, "haproxies", []):
        lines = hp.logtext().splitlines()
        out.append("  --- %s (haproxy, last %d lines)" % (
            hp.log, min(n, len(lines))))
        out += ["  | " + ln for ln in lines[-n:]]
    return "\n".join(out)


def cluster_case(name, binpath):
    c = base.Case("cluster-" + name, binpath)
    c.haproxy_bin = HAPROXY[0]
    c.haproxies = []
    c.note = None
    return c


def cluster_teardown(c):
    for hp in c.haproxies:
        hp.stop()


def cluster_problems(c):
    """Sanitizer reports of the SIGKILLed nodes too."""
    for d in c.daemons:
        try:
            d.san_check()
        except Fail as e:
            return e
    return None


def cluster_before(sel):
    hbin, why = find_haproxy()
    if hbin is None:
        for t in sel:
            print("SKIP %s: %s" % (t[0], why), flush=True)
        print("0 passed, 0 failed, %d skipped" % len(sel), flush=True)
        return 0
    HAPROXY[0] = hbin
    return None


HAPROXY = [None]


def main():
    return base.run_suite(TESTS, "cluster.py", __doc__,
                          make_case=cluster_case, before=cluster_before,
                          teardown=cluster_teardown,
                          problems=cluster_problems, tails=tails,
                          cleanup=Cert.remove)


if __name__ == "__main__":
    sys.exit(main())
