#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
#
# evpop3d integration tests for TLS and authentication: implicit TLS
# (listen_tls), STLS (RFC 2595), SASL AUTH (RFC 5034), allow_plaintext,
# the certificate chain, SIGHUP certificate reload and failed handshakes.
# The daemon (EVPOP3D_BIN) runs with a temporary configuration on free
# loopback ports; certificates are made at test time with openssl and
# never stored.  Clients: our own raw client (over ssl), Python's poplib,
# curl, openssl s_client and fetchmail (installed with apt-get when
# missing and we are root; otherwise that test is skipped).
#
#   EVPOP3D_BIN=/abs/path/src/evpop3d python3 tests/integ/tls.py [-k NAME]...
#
# Conventions are those of tests/integ/run.py, whose helpers this script
# imports: "PASS name", "FAIL name: why" (with the daemon's log tail) or
# "SKIP name: why"; exit status 1 if any test failed; as root the daemon
# runs as nobody/nogroup; EVPOP3D_SAN=1 gives longer timeouts and checks
# every daemon's log for sanitizer reports.

import argparse
import base64
import hashlib
import hmac
import os
import poplib
import pwd
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as base  # noqa: E402  (tests/integ/run.py)
from run import (Fail, Closed, check, eq, short, wire, three,  # noqa: E402
                 base_of, test_id, free_port, wait_port, HOST, SLOW,
                 START_TIMEOUT, ROOT, big_message)


class Skip(Exception):
    """The test cannot run here (missing tool); not a failure."""


# ---------------------------------------------------------------------------
# Certificates, made once per run in a private directory.

class Certs:
    def __init__(self):
        self.dir = None
        self.made = {}

    def _dir(self):
        if self.dir is None:
            self.dir = tempfile.mkdtemp(prefix="evpop3d-tls-certs-")
        return self.dir

    def _openssl(self, args, what):
        r = subprocess.run(["openssl"] + args, capture_output=True,
                           cwd=self._dir(), timeout=60)
        check(r.returncode == 0, "openssl %s (%s) failed: %s" % (
            args[0], what, short(r.stderr.decode(errors="replace"), 400)))

    def self_signed(self, name, cn):
        """(cert path, key path) of a new self-signed RSA pair."""
        if name not in self.made:
            d = self._dir()
            crt = os.path.join(d, name + ".crt")
            key = os.path.join(d, name + ".key")
            self._openssl(["req", "-x509", "-newkey", "rsa:2048", "-nodes",
                           "-subj", "/CN=" + cn, "-days", "2",
                           "-keyout", key, "-out", crt], name)
            self.made[name] = (crt, key)
        return self.made[name]

    def chain(self):
        """(root CA cert, leaf+intermediate file, leaf key): a three-level
        chain whose leaf is for localhost."""
        if "chain" in self.made:
            return self.made["chain"]
        d = self._dir()
        p = lambda n: os.path.join(d, n)  # noqa: E731
        with open(p("ca.ext"), "w") as f:
            f.write("basicConstraints=critical,CA:TRUE,pathlen:0\n"
                    "keyUsage=critical,keyCertSign,cRLSign\n"
                    "subjectKeyIdentifier=hash\n"
                    "authorityKeyIdentifier=keyid\n")
        with open(p("leaf.ext"), "w") as f:
            f.write("basicConstraints=critical,CA:FALSE\n"
                    "keyUsage=critical,digitalSignature,keyEncipherment\n"
                    "extendedKeyUsage=serverAuth\n"
                    "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                    "authorityKeyIdentifier=keyid\n")
        self._openssl(["req", "-x509", "-newkey", "rsa:2048", "-nodes",
                       "-subj", "/CN=evpop3d test root CA", "-days", "2",
                       "-addext", "basicConstraints=critical,CA:TRUE",
                       "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                       "-keyout", p("ca.key"), "-out", p("ca.crt")], "root")
        self._openssl(["req", "-new", "-newkey", "rsa:2048", "-nodes",
                       "-subj", "/CN=evpop3d test intermediate CA",
                       "-keyout", p("int.key"), "-out", p("int.csr")],
                      "intermediate csr")
        self._openssl(["x509", "-req", "-in", p("int.csr"), "-CA",
                       p("ca.crt"), "-CAkey", p("ca.key"), "-set_serial",
                       "1001", "-days", "2", "-extfile", p("ca.ext"),
                       "-out", p("int.crt")], "intermediate")
        self._openssl(["req", "-new", "-newkey", "rsa:2048", "-nodes",
                       "-subj", "/CN=localhost", "-keyout", p("leaf.key"),
                       "-out", p("leaf.csr")], "leaf csr")
        self._openssl(["x509", "-req", "-in", p("leaf.csr"), "-CA",
                       p("int.crt"), "-CAkey", p("int.key"), "-set_serial",
                       "2002", "-days", "2", "-extfile", p("leaf.ext"),
                       "-out", p("leaf.crt")], "leaf")
        with open(p("chain.crt"), "wb") as out:
            for n in ("leaf.crt", "int.crt"):
                with open(p(n), "rb") as f:
                    out.write(f.read())
        self.made["chain"] = (p("ca.crt"), p("chain.crt"), p("leaf.key"))
        return self.made["chain"]

    def remove(self):
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)


CERTS = Certs()


def pem_fingerprint(path):
    """SHA-256 of the first certificate in a PEM file."""
    with open(path) as f:
        text = f.read()
    m = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----",
                  text, re.S)
    check(m is not None, "no certificate in %s" % path)
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(m.group(0))).hexdigest()


def client_ctx(minv=None, maxv=None):
    """A client context that accepts any certificate (test certs)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if minv is not None:
        ctx.minimum_version = minv
    if maxv is not None:
        ctx.maximum_version = maxv
    return ctx


# ---------------------------------------------------------------------------
# Test world: run.py's Case with TLS listeners and certificate files.

class TlsCase(base.Case):
    def __init__(self, name, binpath):
        super().__init__(name, binpath)
        self.cert = os.path.join(self.dir, "server.crt")
        self.key = os.path.join(self.dir, "server.key")

    def install_pair(self, crt, key):
        """Copy a pair over tls_cert/tls_key (rename, as an admin would)."""
        for src, dst in ((crt, self.cert), (key, self.key)):
            tmp = dst + ".new"
            shutil.copyfile(src, tmp)
            os.chmod(tmp, 0o600)
            os.rename(tmp, dst)
        self.fix_owner()

    def write_raw(self, path, data):
        with open(path + ".new", "wb") as f:
            f.write(data)
        os.chmod(path + ".new", 0o600)
        os.rename(path + ".new", path)
        self.fix_owner()

    def start_tls(self, plaintext="yes", plain=True, implicit=True,
                  tls=True, extra=(), listen=()):
        """Start a daemon with a plain listener (STLS offered when tls),
        an implicit-TLS listener, or both.  d.plain / d.tls are ports."""
        if tls and not os.path.exists(self.cert):
            self.install_pair(*CERTS.self_signed("a", "localhost"))
        pport = free_port() if plain else None
        tport = free_port() if implicit else None
        self.nconf += 1
        conf = os.path.join(self.dir, "evpop3d-%d.conf" % self.nconf)
        lines = ["# generated by tests/integ/tls.py",
                 "passwd_file %s" % self.passwd,
                 "mail_location %s/%%u/Maildir" % self.root,
                 "allow_plaintext %s" % plaintext,
                 "auth_fail_delay_ms 50"]
        if pport:
            lines.append("listen %s:%d" % (HOST, pport))
        if tport:
            lines.append("listen_tls %s:%d" % (HOST, tport))
        lines += ["listen %s" % a for a in listen]
        if tls:
            lines += ["tls_cert %s" % self.cert, "tls_key %s" % self.key]
        if ROOT:
            _, _, gname = base.run_ids()
            lines += ["user %s" % base.RUN_USER, "group %s" % gname]
        lines += list(extra)
        with open(conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.fix_owner()
        log = os.path.join(self.dir, "evpop3d-%d.log" % self.nconf)
        d = base.Daemon(self, conf, pport or tport, log)
        d.plain, d.tls = pport, tport
        self.daemons.append(d)
        d.wait_ready()
        if pport and tport and not wait_port(tport, START_TIMEOUT, d.proc):
            raise Fail("daemon did not listen on the TLS port %d" % tport)
        return d


def log_count(d, *needles):
    return sum(1 for ln in d.logtext().splitlines()
               if all(n in ln for n in needles))


def wait_log_count(d, n, *needles, timeout=3.0):
    """Wait until at least n log lines contain every needle."""
    deadline = time.monotonic() + timeout * SLOW
    while log_count(d, *needles) < n:
        if time.monotonic() > deadline:
            raise Fail("want %d log lines with %s, have %d" % (
                n, " and ".join(needles), log_count(d, *needles)))
        time.sleep(0.05)


# ---------------------------------------------------------------------------
# Raw POP3 client over TLS (implicit or after STLS).

class TConn(base.Conn):
    def __init__(self, port, implicit=True, ctx=None, timeout=None,
                 host=HOST, src=None):
        # base.Conn's connect, plus a destination and source address
        self.timeout = timeout or 5.0 * SLOW
        self.s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.s.settimeout(self.timeout)
        if src:
            self.s.bind((src, 0))
        self.s.connect((host, port))
        self.buf = bytearray()
        self.ctx = ctx or client_ctx()
        self.clean_close = None
        if implicit:
            self._wrap()
        self.greeting = self.line()
        check(self.greeting.startswith("+OK"), "greeting%s %s" % (
            " over TLS" if implicit else "", short(self.greeting)))

    def _wrap(self):
        try:
            self.s = self.ctx.wrap_socket(self.s, server_hostname="localhost",
                                          suppress_ragged_eofs=False)
        except (ssl.SSLError, OSError) as e:
            raise Fail("TLS handshake failed: %s" % e)

    def stls(self):
        r = self.ok("STLS")
        check(not self.buf, "octets after the STLS reply in clear text: %s"
              % short(bytes(self.buf)))
        self._wrap()
        return r

    @property
    def version(self):
        return self.s.version() if isinstance(self.s, ssl.SSLSocket) else None

    def fingerprint(self):
        return hashlib.sha256(self.s.getpeercert(binary_form=True)).hexdigest()

    def _fill(self, n=65536):
        try:
            super()._fill(n)
        except ssl.SSLEOFError:
            raise Closed("connection closed without TLS close_notify; unread"
                         " %s" % short(bytes(self.buf)))
        except ssl.SSLError as e:
            raise Closed("TLS error while reading: %s" % e)

    def expect_closed(self, timeout=None):
        """Wait for the end; self.clean_close says if it was a TLS
        close_notify (True), a bare TCP end (False), or plain text (None)."""
        t0 = time.monotonic()
        deadline = t0 + (timeout or self.timeout)
        tls = isinstance(self.s, ssl.SSLSocket)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Fail("connection still open after %.1fs"
                           % (time.monotonic() - t0))
            self.s.settimeout(left)
            try:
                d = self.s.recv(65536)
                ragged = False
            except socket.timeout:
                continue
            except (ssl.SSLEOFError, ConnectionResetError):
                d, ragged = b"", True
            except ssl.SSLError as e:
                raise Fail("TLS error while waiting for the end: %s" % e)
            if not d:
                self.clean_close = (not ragged) if tls else None
                self.s.settimeout(self.timeout)
                got = bytes(self.buf)
                self.buf.clear()
                return got, time.monotonic() - t0
            self.buf += d

    def quit(self):
        r = self.ok("QUIT")
        got, _ = self.expect_closed()
        eq(got, b"", "octets after the QUIT reply")
        if isinstance(self.s, ssl.SSLSocket):
            check(self.clean_close, "no TLS close_notify after QUIT")
        return r

    def capa(self):
        return self.multi("CAPA").decode("latin-1").split("\r\n")[:-1]


def b64(s):
    if isinstance(s, str):
        s = s.encode()
    return base64.b64encode(s).decode()


def sasl_line(capa):
    """The mechanisms of the CAPA SASL line (None if there is none)."""
    for ln in capa:
        f = ln.split()
        if f and f[0].upper() == "SASL":
            return [m.upper() for m in f[1:]]
    return None


def capa_has(capa, word):
    return any(ln.split()[:1] == [word] for ln in capa if ln.split())


def curl(args, ok=True, timeout=None):
    try:
        r = subprocess.run(["curl", "-s", "-S", "--max-time",
                            str(int(15 * SLOW))] + args, capture_output=True,
                           timeout=timeout or 30 * SLOW)
    except subprocess.TimeoutExpired:
        raise Fail("curl %s hung" % " ".join(args))
    if ok:
        check(r.returncode == 0, "curl %s: exit %d: %s" % (
            " ".join(args), r.returncode, r.stderr.decode(errors="replace")))
    return r


def s_client(port, args, stdin=b"", timeout=None):
    """openssl s_client to port: (exit status, stdout, stderr)."""
    cmd = ["openssl", "s_client", "-connect", "%s:%d" % (HOST, port),
           "-servername", "localhost"] + args
    try:
        r = subprocess.run(cmd, input=stdin, capture_output=True,
                           timeout=timeout or 20 * SLOW)
    except subprocess.TimeoutExpired:
        raise Fail("%s hung" % " ".join(cmd))
    return (r.returncode, r.stdout.decode("latin-1"),
            r.stderr.decode("latin-1"))


def s_client_protocol(out):
    m = re.search(r"^New, (\S+), Cipher is (\S+)", out, re.M)
    return (m.group(1), m.group(2)) if m else (None, None)


def login_lines(d, method, user):
    return log_count(d, "event=login", "user=%s " % user,
                     "method=%s " % method, "result=ok")


def msgs_by_number(port, user, pw):
    """{message number: Maildir base name}, from UIDL over implicit TLS."""
    cn = TConn(port)
    cn.login(user, pw)
    num = cn.listing("UIDL")
    cn.quit()
    return num


# ---------------------------------------------------------------------------
# Tests.

TESTS = []


def test(root_only=False):
    def deco(fn):
        TESTS.append((fn.__name__[2:], fn, root_only))
        return fn
    return deco


@test()
def t_curl_tls(c):
    if shutil.which("curl") is None:
        raise Skip("curl is not installed")
    msgs = three("ct")
    c.add_user("bob", "bob-pw-2", msgs=msgs)
    files = {base_of(m): m[2] for m in msgs}
    d = c.start_tls()
    num = msgs_by_number(d.tls, "bob", "bob-pw-2")
    auth = ["-u", "bob:bob-pw-2", "-k"]
    s_url = "pop3s://%s:%d/" % (HOST, d.tls)
    p_url = "pop3://%s:%d/" % (HOST, d.plain)
    out = curl([s_url] + auth).stdout
    got = {}
    for ln in out.split(b"\r\n")[:-1]:
        n, sz = ln.split()
        got[int(n)] = int(sz)
    eq(got, {n: len(wire(files[b])) for n, b in num.items()},
       "curl pop3s LIST output")
    for n in sorted(num):
        eq(curl([s_url + str(n)] + auth).stdout, wire(files[num[n]]),
           "curl pop3s RETR %d" % n)
    for n in sorted(num):
        eq(curl([p_url + str(n), "--ssl-reqd"] + auth).stdout,
           wire(files[num[n]]), "curl pop3 --ssl-reqd (STLS) RETR %d" % n)
    # every session so far: 1 + LIST + 3 RETR + 3 STLS RETR, all in TLS
    wait_log_count(d, 8, "event=end", "user=bob", "tls=TLSv1.")
    eq(log_count(d, "event=end", "tls=no"), 0, "sessions without TLS")
    for mech in ("PLAIN", "LOGIN"):
        for ir in ([], ["--sasl-ir"]):
            before = login_lines(d, mech.lower(), "bob")
            eq(curl([s_url + "2", "--login-options", "AUTH=" + mech] + ir
                    + auth).stdout, wire(files[num[2]]),
               "curl AUTH=%s %s RETR 2" % (mech, " ".join(ir)))
            wait_log_count(d, before + 1, "event=login", "user=bob ",
                           "method=%s " % mech.lower(), "result=ok")
    # a wrong password over SASL PLAIN is refused
    r = curl([s_url, "--login-options", "AUTH=PLAIN", "-k",
              "-u", "bob:wrong"], ok=False)
    check(r.returncode != 0, "curl AUTH=PLAIN with a wrong password "
          "succeeded")
    eq(len(c.disk("bob")), 3, "messages left on disk")


@test()
def t_poplib_stls(c):
    msgs = three("ps") + [("cur", "1732270301.M1P1.stlsbig:2,",
                           big_message(2 * 1024 * 1024 + 77))]
    c.add_user("alice", "alice-pw-1", msgs=msgs)
    files = {base_of(m): m[2] for m in msgs}
    d = c.start_tls()
    p = poplib.POP3(HOST, d.plain, timeout=10 * SLOW)
    caps = p.capa()
    check("STLS" in caps, "CAPA before STLS lacks STLS: %s" % sorted(caps))
    check(p.stls(client_ctx()).startswith(b"+OK"), "STLS reply")
    check(p.sock.version() in ("TLSv1.2", "TLSv1.3"),
          "negotiated %s" % p.sock.version())
    caps = p.capa()
    check("STLS" not in caps, "CAPA inside TLS still offers STLS: %s"
          % sorted(caps))
    check("USER" in caps, "CAPA inside TLS lacks USER: %s" % sorted(caps))
    check(p.user("alice").startswith(b"+OK"), "USER")
    check(p.pass_("alice-pw-1").startswith(b"+OK"), "PASS")
    resp, ul, _ = p.uidl()
    uidls = {int(a): b.decode() for a, b in (ln.split() for ln in ul)}
    eq(sorted(uidls.values()), sorted(files), "UIDL over STLS")
    for n, u in sorted(uidls.items()):
        resp, lines, _ = p.retr(n)
        eq(b"\r\n".join(lines) + b"\r\n", wire(files[u]), "RETR %d" % n)
    check(p.quit().startswith(b"+OK"), "QUIT")


@test()
def t_poplib_ssl(c):
    # the fourth is large enough to be encoded on the worker pool
    msgs = three("pz") + [("cur", "1732270300.M1P1.tlsbig:2,",
                           big_message(3 * 1024 * 1024))]
    c.add_user("amy", "amy-pw-1", msgs=msgs)
    files = {base_of(m): m[2] for m in msgs}
    d = c.start_tls()
    p = poplib.POP3_SSL(HOST, d.tls, context=client_ctx(),
                        timeout=10 * SLOW)
    check(p.getwelcome().startswith(b"+OK"), "welcome %r" % p.getwelcome())
    check(p.sock.version() in ("TLSv1.2", "TLSv1.3"),
          "negotiated %s" % p.sock.version())
    caps = p.capa()
    check("STLS" not in caps, "CAPA on the implicit TLS port offers STLS")
    check("USER" in caps, "CAPA over TLS lacks USER")
    p.user("amy")
    p.pass_("amy-pw-1")
    eq(p.stat(), (4, sum(len(wire(v)) for v in files.values())), "STAT")
    resp, ul, _ = p.uidl()
    for ln in ul:
        n, u = ln.split()
        resp, lines, _ = p.retr(int(n))
        eq(b"\r\n".join(lines) + b"\r\n", wire(files[u.decode()]),
           "RETR %s" % n.decode())
    p.dele(1)
    check(p.quit().startswith(b"+OK"), "QUIT")
    eq(len(c.disk("amy")), 3, "messages on disk after DELE+QUIT over TLS")


@test()
def t_poplib_apop(c):
    c.add_user("carol", "carol-pw-3", msgs=three("pa"))
    d = c.start_tls(plaintext="no")
    p = poplib.POP3_SSL(HOST, d.tls, context=client_ctx(),
                        timeout=10 * SLOW)
    try:
        p.apop("carol", "wrong-pw")
        raise Fail("APOP with a wrong password accepted")
    except poplib.error_proto as e:
        check(b"[AUTH]" in e.args[0], "APOP failure reply %r" % e.args[0])
    r = p.apop("carol", "carol-pw-3")
    check(r.startswith(b"+OK"), "APOP over implicit TLS: %r" % r)
    eq(p.stat()[0], 3, "STAT after APOP")
    p.quit()
    p = poplib.POP3(HOST, d.plain, timeout=10 * SLOW)
    p.stls(client_ctx())
    r = p.apop("carol", "carol-pw-3")
    check(r.startswith(b"+OK"), "APOP after STLS: %r" % r)
    p.quit()


def check_capa_out(out, where):
    """openssl s_client output: a CAPA list without STLS, and QUIT's +OK."""
    i = out.find("+OK Capability list follows")
    check(i >= 0, "%s: no CAPA reply in %s" % (where, short(out[-600:], 700)))
    lines = out[i:].replace("\r\n", "\n").split("\n")
    j = lines.index(".") if "." in lines else -1
    check(j > 0, "%s: CAPA list not terminated" % where)
    capa = lines[1:j]
    check("USER" in capa and "IMPLEMENTATION evpop3d-" in "\n".join(capa),
          "%s: CAPA list %s" % (where, capa))
    check("STLS" not in capa, "%s: CAPA inside TLS offers STLS" % where)
    check(any(ln.startswith("+OK") for ln in lines[j + 1:]),
          "%s: no reply to QUIT after CAPA: %s" % (where, lines[j + 1:]))


@test()
def t_s_client(c):
    c.add_user("dave", "dave-pw")
    d = c.start_tls()
    for where, port, extra in (("implicit", d.tls, []),
                               ("starttls", d.plain, ["-starttls", "pop3"])):
        for force in ([], ["-tls1_2"], ["-tls1_3"]):
            rc, out, err = s_client(port, extra + force + ["-ign_eof"],
                                    b"CAPA\r\nQUIT\r\n")
            what = "%s %s" % (where, " ".join(force))
            proto, cipher = s_client_protocol(out)
            check(proto in ("TLSv1.2", "TLSv1.3"), "%s: negotiated %s "
                  "(exit %d) %s" % (what, proto, rc, short(err, 400)))
            if force:
                eq(proto, "TLSv1." + force[0][-1], "%s: protocol" % what)
            check(cipher != "(NONE)", "%s: cipher %s" % (what, cipher))
            check_capa_out(out, what)
            if where == "implicit":
                check("+OK evpop3d ready <" in out, "%s: no greeting" % what)


def tls11_attempt(port, extra):
    """Try a TLS 1.1-only handshake: (result, detail, alert) where result
    is "refused" (our ClientHello got no TLS 1.1 ServerHello and the
    handshake failed), "accepted" (a TLS 1.1 ServerHello came back, even if
    our own client then gave up, e.g. on a legacy signature) or
    "cannot-offer" (the local openssl sends no TLS 1.1 ClientHello even at
    SECLEVEL=0); alert tells whether the server said protocol_version."""
    last = ""
    for ciph in ([], ["-cipher", "DEFAULT@SECLEVEL=0"]):
        rc, out, err = s_client(port, extra + ciph + ["-tls1_1", "-msg"],
                                b"QUIT\r\n")
        text = out + err
        if not re.search(r"^>>> TLS 1\.1, Handshake .*ClientHello", text,
                         re.M):
            last = (err.strip().splitlines() or [""])[-1]
            continue
        alert = bool(re.search(r"^<<< .*Alert.*protocol_version", text,
                               re.M))
        if re.search(r"^<<< TLS 1\.1, Handshake .*ServerHello", text, re.M):
            return "accepted", "the server sent a TLS 1.1 ServerHello", alert
        proto, cipher = s_client_protocol(out)
        if proto not in (None, "(NONE)") or rc == 0:
            return "accepted", "negotiated %s %s (exit %d)" % (
                proto, cipher, rc), alert
        return "refused", "exit %d: %s" % (
            rc, short((err.strip().splitlines() or [""])[-1], 300)), alert
    return "cannot-offer", last, False


@test()
def t_tls11_refused(c):
    c.add_user("erin", "erin-pw")
    d = c.start_tls()
    notes = []
    for where, port, extra in (("implicit", d.tls, []),
                               ("starttls", d.plain, ["-starttls", "pop3"])):
        before = log_count(d, "TLS error")
        res, detail, _ = tls11_attempt(port, extra)
        if res == "cannot-offer":
            raise Skip("local openssl cannot offer TLS 1.1 even at "
                       "SECLEVEL=0 (%s)" % detail)
        check(res == "refused", "%s: TLS 1.1 handshake %s (%s)"
              % (where, res, detail))
        wait_log_count(d, before + 1, "TLS error")
        notes.append(where)
    # still serving
    a = TConn(d.tls)
    a.ok("CAPA")
    a.multi_body()
    a.quit()
    return "refused on " + ", ".join(notes)


@test()
def t_cert_chain(c):
    ca, chain, key = CERTS.chain()
    c.install_pair(chain, key)
    c.add_user("fay", "fay-pw")
    d = c.start_tls()
    for where, port, extra in (("implicit", d.tls, []),
                               ("starttls", d.plain, ["-starttls", "pop3"])):
        rc, out, err = s_client(port, extra + [
            "-showcerts", "-CAfile", ca, "-verify_hostname", "localhost",
            "-verify_return_error", "-ign_eof"], b"QUIT\r\n")
        n = out.count("-----BEGIN CERTIFICATE-----")
        eq(n, 2, "%s: certificates sent (leaf + intermediate)" % where)
        subj = re.findall(r"^\s*(\d+) s:\s*(.*)$", out, re.M)
        check(len(subj) == 2 and "localhost" in subj[0][1]
              and "intermediate" in subj[1][1],
              "%s: chain subjects %s" % (where, subj))
        check(re.search(r"Verify return code: 0 \(ok\)", out),
              "%s: chain does not verify to the root: %s" % (
                  where, re.findall(r"Verify return code:.*", out)
                  or short(err, 300)))
    # Python's verifying client agrees
    ctx = ssl.create_default_context(cafile=ca)
    p = poplib.POP3_SSL(HOST, d.tls, context=ctx, timeout=10 * SLOW)
    p.user("fay")
    p.pass_("fay-pw")
    p.quit()


@test()
def t_stls_injection(c):
    c.add_user("gina", "gina-pw", msgs=three("si"))
    d = c.start_tls()
    a = TConn(d.plain, implicit=False)
    a.send(b"STLS\r\nCAPA\r\n")         # one segment
    r = a.line()
    check(r.startswith("+OK"), "STLS reply %s" % short(r))
    time.sleep(0.1 * SLOW)              # a clear-text CAPA answer would be here
    a.s.setblocking(False)
    try:
        extra = a.s.recv(4096)
    except (BlockingIOError, socket.timeout):
        extra = b""
    a.s.settimeout(a.timeout)
    eq(bytes(a.buf) + extra, b"", "clear text after the STLS reply "
       "(the injected CAPA was executed)")
    a._wrap()
    # first reply inside TLS must answer USER, not the injected CAPA
    eq(a.cmd("USER gina"), "+OK", "first reply inside TLS")
    check(a.cmd("PASS gina-pw").startswith("+OK Logged in"), "PASS")
    eq(a.cmd("NOOP"), "+OK", "NOOP inside TLS")
    check(not a.buf, "more octets after NOOP: %s" % short(bytes(a.buf)))
    a.quit()
    # the same with the injection split over STLS and a following line
    b = TConn(d.plain, implicit=False)
    b.send(b"STLS\r\nUSER gina\r\nPASS gina-pw\r\nNOOP\r\n")
    check(b.line().startswith("+OK"), "STLS reply")
    b._wrap()
    r = b.cmd("NOOP")
    check(r.startswith("-ERR"), "NOOP inside TLS after an injected "
          "USER/PASS/NOOP answered %s (the injected login ran?)" % short(r))
    check(not b.buf, "more octets after NOOP: %s" % short(bytes(b.buf)))
    b.quit()


@test()
def t_stls_twice(c):
    c.add_user("hank", "hank-pw", msgs=three("st"))
    d = c.start_tls()
    a = TConn(d.plain, implicit=False)
    a.stls()
    a.err("STLS")
    caps = a.capa()
    check(not capa_has(caps, "STLS"), "CAPA offers STLS inside TLS")
    a.login("hank", "hank-pw")
    a.err("STLS")
    eq(a.cmd("NOOP"), "+OK", "NOOP after refused STLS")
    eq(a.stat()[0], 3, "STAT inside TLS")
    a.quit()
    # STLS after a clear-text login
    b = base.Conn(d.plain)
    b.login("hank", "hank-pw")
    b.err("STLS")
    eq(b.cmd("NOOP"), "+OK", "clear session after a refused STLS")
    b.quit()
    # STLS on the implicit TLS port
    t = TConn(d.tls)
    t.err("STLS")
    t.err("STLS extra-arg")
    t.login("hank", "hank-pw")
    t.quit()
    # no certificate: no STLS offered, STLS refused
    d2 = c.start_tls(tls=False, implicit=False)
    p = base.Conn(d2.plain)
    caps = p.multi("CAPA").decode().split("\r\n")
    check("STLS" not in caps, "CAPA offers STLS without a certificate")
    p.err("STLS")
    p.login("hank", "hank-pw")
    p.quit()


@test()
def t_plaintext_no(c):
    c.add_user("ivy", "ivy-pw", msgs=three("pn"))
    d = c.start_tls(plaintext="no")
    a = TConn(d.plain, implicit=False)
    caps = a.capa()
    check(not capa_has(caps, "USER"), "CAPA in clear lists USER: %s" % caps)
    mechs = sasl_line(caps)
    check(mechs is not None, "CAPA lacks a SASL line: %s" % caps)
    check("PLAIN" not in mechs and "LOGIN" not in mechs,
          "CAPA SASL in clear offers %s" % mechs)
    check(capa_has(caps, "STLS"), "CAPA lacks STLS: %s" % caps)
    r = a.err("USER ivy", "AUTH")
    check("STLS" in r, "USER refusal does not mention STLS: %s" % r)
    a.err("PASS ivy-pw", "AUTH")
    r = a.err("AUTH PLAIN " + b64("\0ivy\0ivy-pw"))
    check("[AUTH]" in r, "AUTH PLAIN in clear: %s" % r)
    a.err("AUTH PLAIN")
    a.err("AUTH LOGIN", "AUTH")
    a.stls()
    caps = a.capa()
    check(capa_has(caps, "USER"), "CAPA after STLS lacks USER: %s" % caps)
    mechs = sasl_line(caps) or []
    check("PLAIN" in mechs and "LOGIN" in mechs,
          "CAPA SASL after STLS: %s" % mechs)
    a.login("ivy", "ivy-pw")
    eq(a.stat()[0], 3, "STAT")
    a.quit()
    # the implicit port allows it too
    t = TConn(d.tls)
    t.login("ivy", "ivy-pw")
    t.quit()
    # curl: clear-text login fails, STARTTLS login works
    if shutil.which("curl"):
        url = "pop3://%s:%d/" % (HOST, d.plain)
        r = curl([url, "-u", "ivy:ivy-pw", "--login-options", "AUTH=PLAIN"],
                 ok=False)
        check(r.returncode != 0, "curl AUTH=PLAIN in clear succeeded")
        curl([url, "-k", "--ssl-reqd", "-u", "ivy:ivy-pw",
              "--login-options", "AUTH=PLAIN"])
    eq(len(c.disk("ivy")), 3, "messages on disk")


def nonloopback_ip():
    """A local IPv4 address that is not on 127/8, or None."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect(("192.0.2.1", 9))     # no packet is sent
        ip = s.getsockname()[0]
    except OSError:
        return None
    finally:
        s.close()
    if ip.startswith("127.") or ip == "0.0.0.0":
        return None
    try:
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        t.bind((ip, 0))
        t.close()
    except OSError:
        return None
    return ip


@test()
def t_plaintext_local(c):
    c.add_user("jack", "jack-pw", msgs=three("pl"))
    ip = nonloopback_ip()
    extport = free_port() if ip else None
    d = c.start_tls(plaintext="local",
                    listen=["%s:%d" % (ip, extport)] if ip else [])
    a = TConn(d.plain, implicit=False)
    caps = a.capa()
    check(capa_has(caps, "USER"), "CAPA on loopback lacks USER: %s" % caps)
    check("PLAIN" in (sasl_line(caps) or []), "CAPA SASL on loopback: %s"
          % caps)
    a.login("jack", "jack-pw")
    a.quit()
    a = TConn(d.plain, implicit=False)
    eq(a.cmd("AUTH PLAIN " + b64("\0jack\0jack-pw"))[:13], "+OK Logged in",
       "AUTH PLAIN in clear on loopback")
    a.quit()
    if not ip:
        return "no non-loopback address: only the loopback half ran"
    # From a non-loopback address the same daemon refuses clear text.
    if not wait_port(extport, START_TIMEOUT, d.proc):
        raise Fail("no listener on %s:%d" % (ip, extport))
    b = TConn(extport, implicit=False, host=ip, src=ip)
    caps = b.capa()
    check(not capa_has(caps, "USER"), "CAPA from %s lists USER" % ip)
    b.err("USER jack", "AUTH")
    b.stls()
    b.login("jack", "jack-pw")
    b.quit()
    return "loopback and %s" % ip


@test()
def t_sasl(c):
    c.add_user("kim", "kim-pw-secret", msgs=three("sa"))
    d = c.start_tls()
    pw = "kim-pw-secret"

    def conn():
        return TConn(d.tls)

    caps = conn().capa()
    eq(sasl_line(caps), ["PLAIN", "LOGIN", "SCRAM-SHA-256", "CRAM-MD5"], "CAPA SASL over TLS")
    check(capa_has(caps, "AUTH-RESP-CODE"), "CAPA lacks AUTH-RESP-CODE")

    # PLAIN with an initial response
    a = conn()
    r = a.ok("AUTH PLAIN " + b64("\0kim\0" + pw))
    check(r.startswith("+OK Logged in"), "AUTH PLAIN ir: %s" % r)
    eq(a.stat()[0], 3, "STAT after AUTH PLAIN")
    a.quit()
    # PLAIN with a continuation, authzid equal to the user
    a = conn()
    eq(a.cmd("AUTH PLAIN"), "+ ", "AUTH PLAIN continuation")
    check(a.cmd(b64("kim\0kim\0" + pw)).startswith("+OK Logged in"),
          "AUTH PLAIN continuation response")
    a.quit()
    # Failed logins: at most two per connection (auth_fail_max closes a
    # connection at its third, default 3).
    # "=" as an empty initial response: then nothing to log in with
    a = conn()
    a.err("AUTH PLAIN =", "AUTH")
    # cancel
    eq(a.cmd("AUTH PLAIN"), "+ ", "AUTH PLAIN continuation")
    a.err("*")
    eq(a.cmd("USER kim"), "+OK", "USER after a cancelled AUTH")
    # LOGIN cancel after the user name
    eq(a.cmd("AUTH LOGIN"), "+ VXNlcm5hbWU6", "AUTH LOGIN first challenge")
    eq(a.cmd(b64("kim")), "+ UGFzc3dvcmQ6", "AUTH LOGIN second challenge")
    a.err("*")
    # bad base64, as a continuation and as an initial response
    eq(a.cmd("AUTH PLAIN"), "+ ", "AUTH PLAIN continuation")
    a.err("!!!not*base64$$")
    a.err("AUTH PLAIN AGtpbQBr@W0tcHc=")
    # unsupported mechanism
    a.err("AUTH DIGEST-MD5")
    # authzid other than the user
    a.err("AUTH PLAIN " + b64("root\0kim\0" + pw), "AUTH")
    a.close()
    a = conn()
    eq(a.cmd("AUTH PLAIN"), "+ ", "AUTH PLAIN continuation")
    a.err(b64("admin\0kim\0" + pw), "AUTH")
    # unknown user and wrong password: the same answer
    r1 = a.err("AUTH PLAIN " + b64("\0nosuchuser\0" + pw), "AUTH")
    a.close()
    a = conn()
    r2 = a.err("AUTH PLAIN " + b64("\0kim\0wrong-pw"), "AUTH")
    eq(r1, r2, "PLAIN reply for unknown user vs wrong password")
    r3 = a.err("AUTH PLAIN " + b64("\0kim\0" + pw[:-1]), "AUTH")
    eq(r3, r2, "PLAIN reply for a password prefix")
    # still usable after that
    check(a.cmd("AUTH PLAIN " + b64("\0kim\0" + pw)).startswith(
        "+OK Logged in"), "AUTH PLAIN after failures")
    a.err("AUTH PLAIN " + b64("\0kim\0" + pw))     # not in TRANSACTION
    a.quit()
    # LOGIN
    a = conn()
    eq(a.cmd("AUTH LOGIN"), "+ VXNlcm5hbWU6", "AUTH LOGIN first challenge")
    eq(a.cmd(b64("kim")), "+ UGFzc3dvcmQ6", "AUTH LOGIN second challenge")
    check(a.cmd(b64(pw)).startswith("+OK Logged in"), "AUTH LOGIN")
    a.quit()
    a = conn()
    eq(a.cmd("AUTH LOGIN " + b64("kim")), "+ UGFzc3dvcmQ6",
       "AUTH LOGIN with the user as initial response")
    a.err(b64("nope"), "AUTH")
    a.quit()
    # CRAM-MD5
    for digest_ok in (False, True):
        a = conn()
        r = a.cmd("AUTH CRAM-MD5")
        check(r.startswith("+ "), "AUTH CRAM-MD5 challenge line %s" % r)
        chal = base64.b64decode(r[2:])
        check(re.fullmatch(rb"<[^<>@\s]+@[^<>\s]+>", chal),
              "CRAM-MD5 challenge %s is not in msg-id form" % short(chal))
        key = pw if digest_ok else pw + "x"
        dig = hmac.new(key.encode(), chal, hashlib.md5).hexdigest()
        r = a.cmd(b64("kim " + dig))
        if digest_ok:
            check(r.startswith("+OK Logged in"), "CRAM-MD5 login: %s" % r)
            eq(a.stat()[0], 3, "STAT after CRAM-MD5")
            a.quit()
        else:
            check(r.startswith("-ERR") and "[AUTH]" in r,
                  "CRAM-MD5 with a wrong digest: %s" % r)
            # a reused challenge on a new connection fails too
            b = conn()
            eq(b.cmd("AUTH CRAM-MD5")[:2], "+ ", "challenge")
            good = hmac.new(pw.encode(), chal, hashlib.md5).hexdigest()
            b.err(b64("kim " + good), "AUTH")
            b.close()
            a.close()
    # a clear-text connection (allow_plaintext yes) speaks SASL too
    p = base.Conn(d.plain)
    check(p.cmd("AUTH PLAIN " + b64("\0kim\0" + pw)).startswith(
        "+OK Logged in"), "AUTH PLAIN in clear with allow_plaintext yes")
    p.quit()


@test()
def t_sighup_cert(c):
    files = three("hc")
    c.add_user("liz", "liz-pw", msgs=files)
    fa = pem_fingerprint(CERTS.self_signed("a", "localhost")[0])
    crt_b, key_b = CERTS.self_signed("b", "reloaded-b.test")
    crt_c, key_c = CERTS.self_signed("c", "reloaded-c.test")
    fb, fc = pem_fingerprint(crt_b), pem_fingerprint(crt_c)
    check(len({fa, fb, fc}) == 3, "test certificates are not distinct")
    d = c.start_tls()
    old = TConn(d.tls)
    eq(old.fingerprint(), fa, "first certificate")
    old.login("liz", "liz-pw")
    old_s = TConn(d.plain, implicit=False)
    old_s.stls()
    eq(old_s.fingerprint(), fa, "first certificate over STLS")

    def new_fp(want, what):
        deadline = time.monotonic() + 3 * SLOW
        while True:
            t = TConn(d.tls)
            got = t.fingerprint()
            t.quit()
            if got == want or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        names = {fa: "A", fb: "B", fc: "C"}
        eq(names.get(got, got), names[want], what)
        s = TConn(d.plain, implicit=False)
        s.stls()
        eq(names.get(s.fingerprint(), "?"), names[want], what + " (STLS)")
        s.quit()

    c.install_pair(crt_b, key_b)
    d.send_signal(signal.SIGHUP)
    wait_log_count(d, 1, "reload: certificate")
    new_fp(fb, "certificate after SIGHUP with a new pair")
    # the sessions opened before still work
    n = old.listing("UIDL")
    for i, u in n.items():
        eq(old.multi("RETR %d" % i), wire({base_of(m): m[2]
                                           for m in files}[u]),
           "RETR %d in a session opened before SIGHUP" % i)
    old.quit()
    old_s.login("liz", "liz-pw")
    eq(old_s.cmd("NOOP"), "+OK", "NOOP in an STLS session opened before "
       "SIGHUP")
    old_s.quit()
    # a broken certificate file: the old pair stays
    c.write_raw(c.cert, b"-----BEGIN CERTIFICATE-----\nnot base64 at all"
                b"\n-----END CERTIFICATE-----\n")
    d.send_signal(signal.SIGHUP)
    wait_log_count(d, 1, "reload:", "keeping the old certificate")
    check(d.proc.poll() is None, "daemon died on SIGHUP with a broken cert")
    new_fp(fb, "certificate after SIGHUP with a broken cert file")
    # a certificate that does not match the key: the old pair stays
    c.write_raw(c.cert, open(crt_c, "rb").read())
    d.send_signal(signal.SIGHUP)
    wait_log_count(d, 2, "reload:", "keeping the old certificate")
    new_fp(fb, "certificate after SIGHUP with a mismatched key")
    # an empty key file
    c.install_pair(crt_c, key_c)
    c.write_raw(c.key, b"")
    d.send_signal(signal.SIGHUP)
    wait_log_count(d, 3, "reload:", "keeping the old certificate")
    new_fp(fb, "certificate after SIGHUP with an empty key file")
    # and a good pair again is taken
    c.install_pair(crt_c, key_c)
    d.send_signal(signal.SIGHUP)
    wait_log_count(d, 2, "reload: certificate")
    new_fp(fc, "certificate after SIGHUP with a good pair again")


@test()
def t_bad_handshake(c):
    c.add_user("max", "max-pw", msgs=three("bh"))
    d = c.start_tls()
    # clear text to the implicit TLS port
    s = socket.create_connection((HOST, d.tls), 5 * SLOW)
    s.sendall(b"USER max\r\nPASS max-pw\r\n")
    got = bytearray()
    deadline = time.monotonic() + 5 * SLOW
    while True:
        try:
            x = s.recv(4096)
        except socket.timeout:
            x = None
        except ConnectionResetError:
            x = b""
        if x == b"":
            break
        if x is None or time.monotonic() > deadline:
            raise Fail("TLS port kept a clear-text client open (got %s)"
                       % short(bytes(got)))
        got += x
    s.close()
    check(b"+OK" not in got, "clear text sent on the TLS port: %s"
          % short(bytes(got)))
    ln = d.log_lines("TLS error")
    check("session=" in ln, "TLS error line: %s" % ln)
    # garbage after STLS
    p = base.Conn(d.plain)
    p.ok("STLS")
    p.send(b"\x16\x03\x01\x00\x05hello, this is not TLS\r\n" * 4)
    p.expect_closed()
    wait_log_count(d, 2, "TLS error")
    # a client that connects and leaves during the handshake
    s = socket.create_connection((HOST, d.tls), 5 * SLOW)
    s.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
    s.close()
    # still serving, on both ports
    t = TConn(d.tls)
    t.login("max", "max-pw")
    eq(t.stat()[0], 3, "STAT after failed handshakes")
    t.quit()
    u = TConn(d.plain, implicit=False)
    u.stls()
    u.login("max", "max-pw")
    u.quit()
    check("reason=tls-error" in d.logtext(), "no session ended with "
          "reason=tls-error")


def tls_error_reasons(d):
    return [ln.split("TLS error:", 1)[1].strip()
            for ln in d.logtext().splitlines() if "TLS error:" in ln]


@test()
def t_tls_error_reason(c):
    """The TLS error line must carry OpenSSL's reason (what an admin needs
    to tell a port scanner from a client with an old TLS stack)."""
    c.add_user("ned", "ned-pw")
    d = c.start_tls()
    s = socket.create_connection((HOST, d.tls), 5 * SLOW)
    s.sendall(b"USER ned\r\n")
    try:
        while s.recv(4096):
            pass
    except OSError:
        pass
    s.close()
    wait_log_count(d, 1, "TLS error")
    r = tls_error_reasons(d)[0]
    check("lib(0)" not in r and "version" in r, "clear text on the TLS "
          "port logged as \"TLS error: %s\"; want OpenSSL's reason (wrong "
          "version number)" % r)
    res, detail, _ = tls11_attempt(d.tls, [])
    if res == "cannot-offer":
        return "TLS 1.1 part skipped: %s" % detail
    check(res == "refused", "TLS 1.1 handshake %s (%s)" % (res, detail))
    wait_log_count(d, 2, "TLS error")
    r = tls_error_reasons(d)[-1]
    check("lib(0)" not in r and "protocol" in r, "a TLS 1.1 client "
          "logged as \"TLS error: %s\"; want OpenSSL's reason "
          "(unsupported protocol)" % r)


@test()
def t_handshake_alert(c):
    """A refused handshake ends with the server's alert on both kinds of
    port, so that the client can tell its user why (RFC 8446 section 6,
    RFC 5246 section 7.2)."""
    c.add_user("olive", "olive-pw")
    d = c.start_tls()
    out = {}
    for where, port, extra in (("implicit", d.tls, []),
                               ("starttls", d.plain, ["-starttls", "pop3"])):
        res, detail, alert = tls11_attempt(port, extra)
        if res == "cannot-offer":
            raise Skip("local openssl cannot offer TLS 1.1 (%s)" % detail)
        check(res == "refused", "%s: TLS 1.1 handshake %s (%s)"
              % (where, res, detail))
        out[where] = alert
    bad = [w for w, a in out.items() if not a]
    check(not bad, "no protocol_version alert before the close on %s "
          "(the client sees only \"unexpected eof\")" % ", ".join(bad))


def fetchmail_bin():
    path = shutil.which("fetchmail")
    if path:
        return path
    if not ROOT:
        raise Skip("fetchmail is not installed (and we are not root)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "install", "-y", "-q", "fetchmail"],
                ["apt-get", "update", "-q"],
                ["apt-get", "install", "-y", "-q", "fetchmail"]):
        try:
            subprocess.run(cmd, capture_output=True, env=env, timeout=300)
        except (OSError, subprocess.TimeoutExpired):
            break
        if shutil.which("fetchmail"):
            return shutil.which("fetchmail")
    raise Skip("fetchmail is not installed and apt-get could not install it")


@test()
def t_fetchmail(c):
    fm = fetchmail_bin()
    msgs = three("fm")
    c.add_user("nora", "nora-pw-9", msgs=msgs)
    d = c.start_tls(plaintext="no")
    # fetchmail insists on owning its files: keep them out of c.dir, which
    # belongs to the daemon's user when we are root.
    fdir = tempfile.mkdtemp(prefix="evpop3d-fetchmail-")
    try:
        return run_fetchmail(c, d, fm, fdir, msgs)
    finally:
        shutil.rmtree(fdir, ignore_errors=True)


def run_fetchmail(c, d, fm, fdir, msgs):
    out = os.path.join(fdir, "delivered")
    me = pwd.getpwuid(os.geteuid()).pw_name
    env = dict(os.environ, HOME=fdir, FETCHMAILHOME=fdir, FETCHMAILUSER=me,
               LC_ALL="C")

    def rc_file(port):
        p = os.path.join(fdir, "fetchmailrc-%d" % port)
        with open(p, "w") as f:
            f.write('set no bouncemail\n'
                    'poll %s service %d protocol POP3 uidl\n'
                    '    user "nora" there with password "nora-pw-9" '
                    'is "%s" here\n'
                    '    mda "cat >> %s"\n' % (HOST, port, me, out))
        os.chmod(p, 0o600)
        return p

    def fetch(port, args):
        cmd = [fm, "-f", rc_file(port), "--idfile",
               os.path.join(fdir, "fetchids"), "--pidfile",
               os.path.join(fdir, "fetchmail.pid"), "-N", "--nosyslog",
               "--nosslcertck", "-p", "POP3", "--uidl", "-v"] + args
        try:
            r = subprocess.run(cmd, capture_output=True, env=env,
                               cwd=fdir, timeout=60 * SLOW)
        except subprocess.TimeoutExpired:
            raise Fail("fetchmail %s hung" % " ".join(args))
        text = (r.stdout + r.stderr).decode(errors="replace")
        eq(r.returncode, 0, "fetchmail %s exit status (output %s)"
           % (" ".join(args), short(text[-1500:], 1600)))
        return text

    def delivered():
        with open(out, "rb") as f:
            return f.read()

    # 1: implicit TLS, keep
    fetch(d.tls, ["--ssl", "-k"])
    got = delivered()
    for m in msgs:
        tid = test_id(m[2])
        body = m[2].replace(b"\r\n", b"\n").split(b"\n\n", 1)[1]
        if not body.endswith(b"\n"):
            body += b"\n"
        check(b"X-Test-Id: " + tid.encode() in got, "%s not delivered" % tid)
        check(body in got.replace(b"\r\n", b"\n"), "body of %s not "
              "delivered intact: %s" % (tid, short(body)))
    eq(got.count(b"X-Test-Id: "), 3, "messages delivered by the keep run")
    eq(len(c.disk("nora")), 3, "messages on the server after fetchmail -k")
    ends = log_count(d, "event=end", "user=nora", "reason=quit", "tls=TLSv1.")
    # 2: STARTTLS (TLS required), fetch all and delete
    fetch(d.plain, ["--sslproto", "tls1.2+", "-a"])
    eq(c.disk("nora"), {}, "Maildir after fetchmail without -k")
    eq(delivered().count(b"X-Test-Id: "), 6, "messages delivered in all")
    wait_log_count(d, ends + 1, "event=end", "user=nora", "reason=quit",
                   "tls=TLSv1.")
    ln = [x for x in d.logtext().splitlines() if "event=end" in x
          and "user=nora" in x][-1]
    check("deleted=3/" in ln, "STARTTLS fetchmail session end: %s" % ln)


# ---------------------------------------------------------------------------

def tls_before(sel):
    if shutil.which("openssl") is None:
        print("tls.py: the openssl command is needed")
        return 2
    return None


def main():
    return base.run_suite(TESTS, "tls.py", "evpop3d TLS/SASL integration "
                          "tests", make_case=TlsCase, skip_excs=(Skip,),
                          before=tls_before, cleanup=CERTS.remove)


if __name__ == "__main__":
    sys.exit(main())
