#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
#
# evpop3d integration tests: start the built daemon (EVPOP3D_BIN) with a
# temporary configuration on free loopback ports over temporary Maildirs,
# and speak POP3 to it over real sockets - with our own raw client, with
# Python's poplib and with curl's pop3:// support.  Python 3 standard
# library only, plus the curl binary.
#
#   EVPOP3D_BIN=/abs/path/src/evpop3d python3 tests/integ/run.py [-k NAME]...
#
# Each test prints "PASS name" or "FAIL name: why" (with the tail of the
# daemon's log); the exit status is 1 if any test failed.  Run as root, the
# daemon is started as root with "user nobody" / "group nogroup" in its
# configuration and must drop to them; the temporary directory is owned by
# that user.  With EVPOP3D_SAN=1 (an ASan/UBSan build) start-up timeouts are
# longer and every daemon's log is checked for sanitizer reports.

import argparse
import grp
import hashlib
import os
import poplib
import pwd
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

HOST = "127.0.0.1"
SAN = os.environ.get("EVPOP3D_SAN") == "1"
ROOT = os.geteuid() == 0
# Time scale: sanitizer builds are several times slower.
SLOW = 3.0 if SAN else 1.0
START_TIMEOUT = 40.0 if SAN else 10.0
SAN_PATTERNS = ("ERROR: AddressSanitizer", "runtime error:", "LeakSanitizer")

RUN_USER = "nobody"
RUN_GROUP = "nogroup"


class Fail(Exception):
    """A test assertion failed."""


class Skip(Exception):
    """The test cannot run on this machine (reported as SKIP)."""


class Closed(Fail):
    """The server closed the connection."""


def short(x, n=200):
    s = repr(x)
    return s if len(s) <= n else s[:n] + "...(%d more)" % (len(s) - n)


def check(cond, msg):
    if not cond:
        raise Fail(msg)


def eq(got, want, what):
    if got == want:
        return
    if (isinstance(got, (bytes, str)) and isinstance(want, type(got))
            and max(len(got), len(want)) > 100):
        i = 0
        while i < min(len(got), len(want)) and got[i] == want[i]:
            i += 1
        lo = max(0, i - 40)
        raise Fail("%s: %d octets, want %d; first difference at %d: got "
                   "...%s, want ...%s" % (what, len(got), len(want), i,
                                          short(got[lo:i + 40]),
                                          short(want[lo:i + 40])))
    raise Fail("%s: got %s, want %s" % (what, short(got), short(want)))


def run_ids():
    """uid, gid and group name the daemon runs as when we are root."""
    pw = pwd.getpwnam(RUN_USER)
    try:
        gr = grp.getgrnam(RUN_GROUP)
    except KeyError:
        gr = grp.getgrgid(pw.pw_gid)
    return pw.pw_uid, gr.gr_gid, gr.gr_name


# ---------------------------------------------------------------------------
# Messages: what a file holds and what the wire must carry for it.

def mkmsg(tag, body=None, eol=b"\n", final_eol=True, subject=None):
    """A small realistic message identified by its X-Test-Id header."""
    if body is None:
        body = [b"Hello,", b"", b"this is message %s." % tag.encode(),
                b"Regards,", b"Test"]
    hdr = [b"Return-Path: <sender@example.org>",
           b"From: Sender <sender@example.org>",
           b"To: rcpt@example.net",
           b"Subject: " + (subject or ("test message " + tag)).encode(),
           b"Date: Fri, 22 Nov 2024 10:00:00 +0000",
           b"Message-ID: <%s@example.org>" % tag.encode(),
           b"X-Test-Id: " + tag.encode()]
    data = eol.join(hdr + [b""] + list(body))
    if final_eol:
        data += eol
    return data


def wire(data):
    """File octets -> octets as sent, before dot-stuffing (contract)."""
    if b"\r" not in data:
        out = data.replace(b"\n", b"\r\n")
    else:
        out = re.sub(rb"\r?\n", b"\r\n", data)
    if out and not out.endswith(b"\r\n"):
        out += b"\r\n"
    return out


def top_expect(data, n):
    """What TOP n must return (de-stuffed) for the file data."""
    w = wire(data)
    i = w.find(b"\r\n\r\n")
    if i < 0:
        return w
    head, body = w[:i + 4], w[i + 4:]
    lines = body.split(b"\r\n")[:-1]
    return head + b"".join(l + b"\r\n" for l in lines[:n])


def destuff(body):
    """Undo dot-stuffing of a multi-line body (terminator removed)."""
    if body.startswith(b"."):
        body = body[1:]
    return body.replace(b"\r\n.", b"\r\n")


def test_id(data):
    m = re.search(rb"X-Test-Id: (\S+)", data)
    return m.group(1).decode() if m else None


# ---------------------------------------------------------------------------
# Raw POP3 client: keeps the octets exactly as received.

class Conn:
    def __init__(self, port, timeout=None, rcvbuf=None, greeting=True):
        self.timeout = timeout or 5.0 * SLOW
        self.s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.s.settimeout(self.timeout)
        self.s.connect((HOST, port))
        self.buf = bytearray()
        self.greeting = self.line() if greeting else None
        if greeting:
            check(self.greeting.startswith("+OK"),
                  "greeting %s" % short(self.greeting))

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.s.sendall(data)

    def _fill(self, n=65536):
        try:
            d = self.s.recv(n)
        except socket.timeout:
            raise Fail("timeout (%.0fs) waiting for the server; have %s"
                       % (self.timeout, short(bytes(self.buf[-200:]))))
        except ConnectionResetError:
            d = b""
        if not d:
            raise Closed("connection closed by server; unread %s"
                         % short(bytes(self.buf)))
        self.buf += d

    def rawline(self):
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                ln = bytes(self.buf[:i + 1])
                del self.buf[:i + 1]
                return ln
            self._fill()

    def line(self):
        ln = self.rawline()
        check(ln.endswith(b"\r\n"), "reply line not ended by CRLF: %s"
              % short(ln))
        return ln[:-2].decode("latin-1")

    def multi_raw(self):
        """Body of a multi-line reply as received (still stuffed), with
        the final ".CRLF" removed."""
        start = 0
        while True:
            if self.buf.startswith(b".\r\n"):
                del self.buf[:3]
                return b""
            i = self.buf.find(b"\r\n.\r\n", start)
            if i >= 0:
                body = bytes(self.buf[:i + 2])
                del self.buf[:i + 5]
                return body
            start = max(0, len(self.buf) - 4)
            self._fill(1 << 20)

    def multi_body(self):
        raw = self.multi_raw()
        bad = re.search(rb"(?:^|\r\n)\.[^.]", raw)
        check(bad is None, "unstuffed line starting with '.' in %s"
              % short(raw[max(0, bad.start() - 40):bad.start() + 40]
                      if bad else b""))
        return destuff(raw)

    def cmd(self, c):
        self.send(c + "\r\n")
        return self.line()

    def ok(self, c):
        r = self.cmd(c)
        check(r.startswith("+OK"), "%s: got %s" % (c.split()[0]
              if not c.startswith("PASS") else "PASS", short(r)))
        return r

    def err(self, c, code=None):
        r = self.cmd(c)
        check(r.startswith("-ERR"), "%s: want -ERR, got %s" % (short(c, 60),
              short(r)))
        if code:
            check(("[%s]" % code) in r, "%s: want [%s], got %s"
                  % (short(c, 60), code, short(r)))
        return r

    def multi(self, c):
        self.ok(c)
        return self.multi_body()

    def login(self, user, pw):
        self.ok("USER " + user)
        return self.ok("PASS " + pw)

    def listing(self, c):
        """LIST or UIDL without argument: {n: second field}."""
        out = {}
        for ln in self.multi(c).split(b"\r\n")[:-1]:
            f = ln.decode("latin-1").split()
            check(len(f) == 2, "%s line %s" % (c, short(ln)))
            out[int(f[0])] = f[1]
        return out

    def stat(self):
        f = self.ok("STAT").split()
        return int(f[1]), int(f[2])

    def quit(self):
        r = self.ok("QUIT")
        self.expect_closed()
        return r

    def expect_closed(self, timeout=None):
        """Wait for EOF; returns (octets received before it, seconds)."""
        t0 = time.monotonic()
        deadline = t0 + (timeout or self.timeout)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Fail("connection still open after %.1fs"
                           % (time.monotonic() - t0))
            self.s.settimeout(left)
            try:
                d = self.s.recv(65536)
            except socket.timeout:
                continue
            except ConnectionResetError:
                d = b""
            if not d:
                self.s.settimeout(self.timeout)
                got = bytes(self.buf)
                self.buf.clear()
                return got, time.monotonic() - t0
            self.buf += d

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


def crypt_hash(pw):
    """A SHA-512 crypt(3) hash made by openssl (not by the daemon)."""
    r = subprocess.run(["openssl", "passwd", "-6", "-stdin"],
                       input=pw.encode(), capture_output=True)
    check(r.returncode == 0, "openssl passwd -6 failed: %s" % short(r.stderr))
    return r.stdout.decode().strip()


def apop_digest(greeting, pw):
    m = re.search(r"<[^<>]*>", greeting)
    check(m is not None, "no APOP timestamp in greeting %s" % short(greeting))
    return hashlib.md5((m.group(0) + pw).encode()).hexdigest()


# ---------------------------------------------------------------------------
# Processes.

def free_port(used=set()):
    while True:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind((HOST, 0))
        p = s.getsockname()[1]
        s.close()
        if p not in used:
            used.add(p)
            return p


def proc_status(pid):
    out = {}
    try:
        with open("/proc/%d/status" % pid) as f:
            for ln in f:
                k, _, v = ln.partition(":")
                out[k] = v.strip()
    except OSError:
        pass
    return out


def descendants(pid):
    """pid and all its descendant processes."""
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read()
            ppid = int(st[st.rindex(")") + 2:].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        kids.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def rss_anon_kb(pid):
    total = 0
    for p in descendants(pid):
        v = proc_status(p).get("RssAnon", "0 kB").split()[0]
        total += int(v)
    return total


def listening(port):
    """Is a socket listening on port?  Looked up in /proc/net/tcp, so that
    waiting for the daemon opens no session; None if /proc cannot say."""
    try:
        with open("/proc/net/tcp") as f:
            rows = f.read().splitlines()[1:]
    except OSError:
        return None
    for r in rows:
        f = r.split()
        if len(f) > 3 and f[3] == "0A" and int(f[1].split(":")[1], 16) == port:
            return True
    return False


def wait_port(port, timeout, proc):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        state = listening(port)
        if state:
            return True
        if state is None:
            try:
                s = socket.create_connection((HOST, port), 0.5)
                s.close()
                return True
            except OSError:
                pass
        time.sleep(0.05)
    return False


class Daemon:
    def __init__(self, case, conf, port, log):
        self.case, self.conf, self.port, self.log = case, conf, port, log
        lf = open(log, "ab")
        self.proc = subprocess.Popen([case.bin, "-c", conf, "-F"],
                                     stdin=subprocess.DEVNULL, stdout=lf,
                                     stderr=subprocess.STDOUT, cwd=case.dir,
                                     start_new_session=True)
        lf.close()
        self.stopped = False
        self.rc = None

    @property
    def pid(self):
        return self.proc.pid

    def logtext(self):
        try:
            with open(self.log, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def wait_ready(self):
        if not wait_port(self.port, START_TIMEOUT, self.proc):
            rc = self.proc.poll()
            raise Fail("daemon did not listen on %d within %.0fs (%s)"
                       % (self.port, START_TIMEOUT,
                          "exit status %s" % rc if rc is not None
                          else "still running"))
        return self

    def send_signal(self, sig):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def stop(self, sig=signal.SIGTERM, timeout=None):
        """Signal the daemon and wait; returns its exit status, or None
        if it had to be killed.  Checks for sanitizer reports."""
        timeout = timeout or 5.0 * SLOW
        if self.stopped:
            return self.rc
        self.send_signal(sig)
        try:
            self.rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            self.stopped = True
            raise Fail("daemon still running %.0fs after signal %d"
                       % (timeout, sig))
        self.stopped = True
        self.san_check()
        return self.rc

    def kill(self):
        """SIGKILL the daemon's whole process group."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except OSError:
            pass
        try:
            self.rc = self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass
        self.stopped = True

    def san_check(self):
        if not SAN:
            return
        bad = [ln for ln in self.logtext().splitlines()
               if any(p in ln for p in SAN_PATTERNS)]
        if bad:
            raise Fail("sanitizer report in daemon log: %s" % short(bad[0]))

    def log_lines(self, *needles, timeout=3.0):
        """Wait for a log line containing every needle; returns it."""
        deadline = time.monotonic() + timeout * SLOW
        while True:
            for ln in self.logtext().splitlines():
                if all(n in ln for n in needles):
                    return ln
            if time.monotonic() > deadline:
                raise Fail("no log line with %s" % " and ".join(needles))
            time.sleep(0.05)


class Case:
    """One test's world: a temp dir with a passwd file, Maildirs, configs
    and the daemons started over them."""

    def __init__(self, name, binpath):
        self.name = name
        self.bin = binpath
        self.dir = tempfile.mkdtemp(prefix="evpop3d-integ-%s-" % name)
        os.chmod(self.dir, 0o755)
        self.root = os.path.join(self.dir, "mail")
        os.mkdir(self.root)
        self.passwd = os.path.join(self.dir, "passwd")
        self.passwd_lines = []
        self.daemons = []
        self.nconf = 0
        self.write_passwd()

    # -- files --------------------------------------------------------

    def fix_owner(self, path=None):
        if not ROOT:
            return
        uid, gid, _ = run_ids()
        path = path or self.dir
        os.chown(path, uid, gid)
        for dp, dns, fns in os.walk(path):
            for n in dns + fns:
                os.lchown(os.path.join(dp, n), uid, gid)

    def write_passwd(self):
        with open(self.passwd, "w") as f:
            f.write("# generated by tests/integ/run.py\n")
            for ln in self.passwd_lines:
                f.write(ln + "\n")
        self.fix_owner()

    def maildir(self, user):
        return os.path.join(self.root, user, "Maildir")

    def add_user(self, user, pw=None, secret=None, msgs=()):
        """Create user with password pw ({PLAIN}) or a ready secret, and
        a Maildir holding msgs: (where, filename, data) tuples."""
        md = self.maildir(user)
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(md, sub), exist_ok=True)
        for where, fn, data in msgs:
            with open(os.path.join(md, where, fn), "wb") as f:
                f.write(data)
        self.passwd_lines.append("%s:%s" % (user, secret or
                                            "{PLAIN}" + pw))
        self.write_passwd()
        return md

    def disk(self, user):
        """{base name: (subdir, file name, data)} of the user's Maildir."""
        out = {}
        md = self.maildir(user)
        for sub in ("cur", "new"):
            for fn in os.listdir(os.path.join(md, sub)):
                if fn.startswith("."):
                    continue
                try:
                    with open(os.path.join(md, sub, fn), "rb") as f:
                        out[fn.split(":")[0]] = (sub, fn, f.read())
                except FileNotFoundError:    # removed while we looked
                    continue
        return out

    def path_of(self, user, base):
        d = self.disk(user)
        check(base in d, "message %s not on disk" % base)
        return os.path.join(self.maildir(user), d[base][0], d[base][1])

    # -- daemons ------------------------------------------------------

    def write_conf(self, port, extra=(), run_as=True, idle_timeout=None):
        self.nconf += 1
        conf = os.path.join(self.dir, "evpop3d-%d.conf" % self.nconf)
        lines = ["# generated by tests/integ/run.py",
                 "listen %s:%d" % (HOST, port),
                 "passwd_file %s" % self.passwd,
                 "mail_location %s/%%u/Maildir" % self.root,
                 "allow_plaintext yes",
                 "auth_fail_delay_ms 50"]
        if idle_timeout:
            lines.append("idle_timeout %d" % idle_timeout)
        if ROOT and run_as:
            _, _, gname = run_ids()
            lines += ["user %s" % RUN_USER, "group %s" % gname]
        lines += list(extra)
        with open(conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.fix_owner()
        return conf

    def start(self, extra=(), idle_timeout=None, wait=True):
        port = free_port()
        conf = self.write_conf(port, extra, idle_timeout=idle_timeout)
        log = os.path.join(self.dir, "evpop3d-%d.log" % self.nconf)
        d = Daemon(self, conf, port, log)
        self.daemons.append(d)
        if wait:
            d.wait_ready()
        return d

    def run_bin(self, args, stdin=None, timeout=None):
        """Run the binary for a one-shot job (-t, -V, --hash-password, a
        refused start).  Under ASan, leaks at such an exit are not
        reported (they would change the exit status); memory errors are
        and fail the test."""
        env = dict(os.environ)
        if SAN:
            env["ASAN_OPTIONS"] = (env.get("ASAN_OPTIONS", "")
                                   + ":detect_leaks=0").lstrip(":")
        r = subprocess.run([self.bin] + args, input=stdin,
                           capture_output=True, cwd=self.dir, env=env,
                           timeout=timeout or 10 * SLOW)
        if SAN:
            out = (r.stdout + r.stderr).decode(errors="replace")
            bad = [ln for ln in out.splitlines()
                   if any(p in ln for p in SAN_PATTERNS)]
            check(not bad, "evpop3d %s: sanitizer report: %s\n%s"
                  % (" ".join(args), bad[:1], out[-3000:]))
        return r

    def crashes(self):
        """Why daemons that nobody stopped are gone (for failure lines)."""
        out = []
        for d in self.daemons:
            if d.stopped:
                continue
            try:        # a sanitizer report takes a moment to write
                rc = d.proc.wait(0.5 * SLOW)
            except subprocess.TimeoutExpired:
                continue
            san = [ln.strip() for ln in d.logtext().splitlines()
                   if "ERROR: AddressSanitizer" in ln
                   or "runtime error:" in ln]
            out.append("daemon pid %d exited unexpectedly (status %d)%s"
                       % (d.pid, rc, ": " + san[0] if san else ""))
        return "; ".join(out)

    def finish(self):
        """Stop daemons still running; returns the first sanitizer or
        shutdown failure, if any."""
        problem = None
        for d in self.daemons:
            if d.stopped:
                continue
            try:
                rc = d.stop()
                check(rc == 0, "daemon pid %d: exit status %s at SIGTERM "
                      "(a negative status is a signal)" % (d.pid, rc))
            except Fail as e:
                problem = problem or e
        return problem

    def log_tails(self, n=25):
        out = []
        for d in self.daemons:
            lines = d.logtext().splitlines()
            san = [i for i, ln in enumerate(lines)
                   if any(p in ln for p in SAN_PATTERNS)]
            if san:
                # the report's head says what and where; its tail is noise
                first = san[0]
                out.append("  --- %s (pid %d, lines %d-%d)" % (
                    d.log, d.pid, max(1, first - 4),
                    min(len(lines), first + 30)))
                out += ["  | " + ln for ln in lines[max(0, first - 5):
                                                   first + 30]]
                continue
            out.append("  --- %s (pid %d, last %d lines)"
                       % (d.log, d.pid, min(n, len(lines))))
            out += ["  | " + ln for ln in lines[-n:]]
        return "\n".join(out)

    def remove(self):
        shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------------------
# Tests.

TESTS = []


def test(root_only=False):
    def deco(fn):
        TESTS.append((fn.__name__[2:], fn, root_only))
        return fn
    return deco


def three(prefix, where=("cur", "new", "cur")):
    """Three messages: LF with a dot line, CRLF, and no final newline."""
    a = mkmsg(prefix + "-a", body=[b"First line.", b".A line with a dot.",
                                   b"..two dots", b".", b"end"])
    b = mkmsg(prefix + "-b", eol=b"\r\n")
    c = mkmsg(prefix + "-c", final_eol=False)
    out = []
    for i, (data, w) in enumerate(zip((a, b, c), where)):
        base = "17322700%02d.M%dP%d.integ" % (i, i + 1, 100 + i)
        out.append((w, base + (":2," if w == "cur" else ""), data))
    return out


def by_id(msgs):
    return {test_id(m[2]): m for m in msgs}


def base_of(m):
    return m[1].split(":")[0]


def numbers(conn):
    """{message number: base name} via UIDL (UIDL = base name)."""
    return conn.listing("UIDL")


@test()
def t_poplib(c):
    msgs = three("pl")
    c.add_user("alice", "alice-pw-1", msgs=msgs)
    d = c.start()
    files = {base_of(m): m[2] for m in msgs}
    p = poplib.POP3(HOST, d.port, timeout=10 * SLOW)
    check(p.getwelcome().startswith(b"+OK"), "welcome %r" % p.getwelcome())
    check(p.user("alice").startswith(b"+OK"), "USER")
    check(p.pass_("alice-pw-1").startswith(b"+OK"), "PASS")
    eq(p.stat(), (3, sum(len(wire(v)) for v in files.values())), "STAT")
    resp, lst, _ = p.list()
    sizes = {int(a): int(b) for a, b in (ln.split() for ln in lst)}
    eq(sorted(sizes), [1, 2, 3], "LIST numbers")
    resp, ul, _ = p.uidl()
    uidls = {int(a): b.decode() for a, b in (ln.split() for ln in ul)}
    eq(sorted(uidls.values()), sorted(files), "UIDL = base names")
    num_of = {}
    for n in (1, 2, 3):
        resp, lines, _ = p.retr(n)
        got = b"\r\n".join(lines) + b"\r\n"
        tid = test_id(got)
        want = [v for v in files.values() if test_id(v) == tid]
        check(want, "RETR %d: unknown content %s" % (n, short(got)))
        eq(got, wire(want[0]), "RETR %d (%s)" % (n, tid))
        eq(sizes[n], len(got), "LIST size of %d" % n)
        check(files[uidls[n]] == want[0],
              "UIDL %d (%s) is not the file of the message RETR sent (%s)"
              % (n, uidls[n], tid))
        num_of[tid] = n
        resp, lines, _ = p.top(n, 1)
        eq(b"\r\n".join(lines) + b"\r\n", top_expect(want[0], 1),
           "TOP %d 1" % n)
    victim = num_of["pl-b"]
    check(p.dele(victim).startswith(b"+OK"), "DELE")
    eq(p.stat()[0], 2, "STAT after DELE")
    check(p.quit().startswith(b"+OK"), "QUIT")
    disk = c.disk("alice")
    eq(sorted(disk), sorted(b for b in files if test_id(files[b]) != "pl-b"),
       "messages on disk after DELE+QUIT")
    for b, (sub, fn, data) in disk.items():
        eq(data, files[b], "content of %s" % fn)
    p = poplib.POP3(HOST, d.port, timeout=10 * SLOW)
    p.user("alice")
    p.pass_("alice-pw-1")
    eq(p.stat()[0], 2, "STAT in second session")
    p.dele(1)
    p.dele(2)
    check(p.rset().startswith(b"+OK"), "RSET")
    eq(p.stat()[0], 2, "STAT after RSET")
    p.quit()
    eq(len(c.disk("alice")), 2, "messages on disk after DELE,RSET,QUIT")


def curl(args, timeout=None):
    try:
        r = subprocess.run(["curl", "-s", "-S", "--max-time",
                            str(int(15 * SLOW))] + args, capture_output=True,
                           timeout=timeout or 30 * SLOW)
    except subprocess.TimeoutExpired:
        raise Fail("curl %s hung" % " ".join(args))
    check(r.returncode == 0, "curl %s: exit %d: %s" % (
        " ".join(args), r.returncode, r.stderr.decode(errors="replace")))
    return r.stdout


@test()
def t_curl(c):
    if shutil.which("curl") is None:
        raise Fail("curl is not installed")
    msgs = three("cu")
    c.add_user("bob", "bob-pw-2", msgs=msgs)
    d = c.start()
    files = {base_of(m): m[2] for m in msgs}
    cn = Conn(d.port)
    cn.login("bob", "bob-pw-2")
    num = numbers(cn)
    cn.quit()
    url = "pop3://%s:%d/" % (HOST, d.port)
    auth = ["-u", "bob:bob-pw-2"]
    out = curl([url] + auth)
    got = {}
    for ln in out.split(b"\r\n")[:-1]:
        n, sz = ln.split()
        got[int(n)] = int(sz)
    eq(got, {n: len(wire(files[b])) for n, b in num.items()},
       "curl LIST output")
    for n in sorted(num):
        eq(curl([url + str(n)] + auth), wire(files[num[n]]),
           "curl RETR %d" % n)
    out = curl([url, "-X", "UIDL"] + auth)
    eq(out, b"".join(b"%d %s\r\n" % (n, num[n].encode()) for n in sorted(num)),
       "curl -X UIDL output")
    curl([url, "--request", "DELE 1", "-I"] + auth)
    disk = c.disk("bob")
    eq(sorted(disk), sorted(b for b in files if b != num[1]),
       "messages on disk after curl DELE 1")


@test()
def t_apop(c):
    c.add_user("carol", "carol-pw-3", msgs=three("ap"))
    c.add_user("cathy", secret=crypt_hash("cathy-pw"))
    d = c.start()
    a = Conn(d.port)
    b = Conn(d.port)
    b.err("APOP carol " + apop_digest(a.greeting, "carol-pw-3"), "AUTH")
    b.err("APOP carol " + apop_digest(b.greeting, "wrong-pw"), "AUTH")
    # APOP needs the cleartext: a crypt(3) user cannot use it
    b.err("APOP cathy " + apop_digest(b.greeting, "cathy-pw"), "AUTH")
    b.close()
    r = a.ok("APOP carol " + apop_digest(a.greeting, "carol-pw-3"))
    eq(a.stat()[0], 3, "STAT after APOP")
    check("3" in r, "login reply should give the count: %s" % r)
    a.quit()


def expect_in_use(port, user, pw):
    cn = Conn(port)
    cn.ok("USER " + user)
    cn.err("PASS " + pw, "IN-USE")
    cn.close()


def login_soon(port, user, pw, within=1.0):
    """Log in, retrying [IN-USE] for a moment (a lock may be released
    just after the previous session's connection is closed)."""
    deadline = time.monotonic() + within * SLOW
    while True:
        cn = Conn(port)
        cn.ok("USER " + user)
        r = cn.cmd("PASS " + pw)
        if r.startswith("+OK"):
            return cn
        cn.close()
        if "[IN-USE]" not in r or time.monotonic() > deadline:
            raise Fail("login %s: %s" % (user, r))
        time.sleep(0.05)


@test()
def t_in_use_two_daemons(c):
    c.add_user("dave", "dave-pw-4", msgs=three("iu"))
    da = c.start()
    db = c.start()
    a = Conn(da.port)
    a.login("dave", "dave-pw-4")
    expect_in_use(db.port, "dave", "dave-pw-4")
    # A failed attempt must not have released A's lock.
    expect_in_use(db.port, "dave", "dave-pw-4")
    eq(a.stat()[0], 3, "A still works")
    a.quit()
    b = login_soon(db.port, "dave", "dave-pw-4")
    expect_in_use(da.port, "dave", "dave-pw-4")
    b.quit()


@test()
def t_in_use_one_daemon(c):
    c.add_user("dora", "dora-pw-4", msgs=three("iv"))
    c.add_user("dina", "dina-pw-4", msgs=three("iw"))
    d = c.start()
    a = Conn(d.port)
    a.login("dora", "dora-pw-4")
    expect_in_use(d.port, "dora", "dora-pw-4")
    expect_in_use(d.port, "dora", "dora-pw-4")
    o = Conn(d.port)
    o.login("dina", "dina-pw-4")     # another mailbox is not locked
    o.quit()
    a.quit()
    login_soon(d.port, "dora", "dora-pw-4").quit()


@test()
def t_disconnects(c):
    """Clients that vanish at every stage: nothing is deleted, the lock
    is released, the daemon goes on (and, under ASan, stays clean)."""
    msgs = three("dc")
    big = mkmsg("dc-big", body=[b"x" * 70] * 30000)
    msgs.append(("cur", "1732270099.M9P9.integ:2,", big))
    c.add_user("doug", "doug-pw", msgs=msgs)
    d = c.start()
    bases = sorted(base_of(m) for m in msgs)
    s = socket.create_connection((HOST, d.port), 5)
    s.close()                                  # before the greeting
    a = Conn(d.port)
    a.close()                                  # after the greeting
    a = Conn(d.port)
    a.ok("USER doug")
    a.close()                                  # half-way through login
    a = Conn(d.port)
    a.login("doug", "doug-pw")
    a.ok("DELE 1")
    a.close()                                  # logged in, DELE marked
    a = login_soon(d.port, "doug", "doug-pw")
    a.ok("DELE 2")
    a.send("RETR 4\r\n")
    a.rawline()
    a.s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                   b"\x01\x00\x00\x00\x00\x00\x00\x00")
    a.close()                                  # reset during a RETR
    a = login_soon(d.port, "doug", "doug-pw")
    a.send("DELE 3\r\nSTAT\r\nLIST\r\nRETR 4\r\n")
    a.close()                                  # pipelined, then gone
    a = login_soon(d.port, "doug", "doug-pw")
    eq(a.stat()[0], 4, "STAT after six abandoned sessions")
    a.quit()
    eq(sorted(c.disk("doug")), bases, "messages on disk")
    check(d.proc.poll() is None, "daemon died")
    eq(d.stop(), 0, "exit status after SIGTERM")


def conn_retry(port, within=3.0):
    """A connection with its +OK greeting, retrying while the server still
    counts connections that the client has already closed."""
    deadline = time.monotonic() + within * SLOW
    while True:
        cn = Conn(port, greeting=False)
        first = cn.rawline()
        if first.startswith(b"+OK"):
            cn.greeting = first.decode("ascii", "replace").rstrip("\r\n")
            return cn
        cn.close()
        check(time.monotonic() < deadline, "connection refused: %s"
              % short(first))
        time.sleep(0.05)


def greeting_pid(conn):
    m = re.search(r"<(\d+)\.", conn.greeting)
    check(m is not None, "no <PID.…> in the greeting %s" % short(conn.greeting))
    return int(m.group(1))


def workers_of(d, n, timeout=5.0):
    """The daemon's n worker processes (its children), once all are up."""
    deadline = time.monotonic() + timeout * SLOW
    while True:
        kids = descendants(d.pid)[1:]
        if len(kids) == n or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    eq(len(kids), n, "worker processes of the daemon")
    return kids


def somaxconn():
    with open("/proc/sys/net/core/somaxconn") as f:
        return int(f.read())


def listen_backlog(port):
    """The backlog of the socket listening on HOST:port, as ss shows it
    (Send-Q of a listener)."""
    out = subprocess.run(["ss", "-ltnH", "sport = :%d" % port],
                         capture_output=True, text=True, check=True).stdout
    rows = [ln.split() for ln in out.splitlines() if ln.strip()]
    check(len(rows) == 1, "ss shows %d listeners on port %d: %s"
          % (len(rows), port, out))
    return int(rows[0][2])


@test()
def t_workers(c):
    """workers 3: three processes share the listener; the lock, the
    connection limits and the failure penalty hold across them; SIGHUP
    reaches each; SIGTERM stops all with status 0."""
    c.add_user("wanda", "wanda-pw", msgs=three("wk"))
    for i in range(12):
        c.add_user("wu%d" % i, "wu-pw", msgs=three("wu%d" % i))
    d = c.start(extra=["workers 3", "max_connections 14",
                       "max_connections_per_ip 14"])
    kids = workers_of(d, 3)
    # The shared socket keeps the daemon's backlog once every worker has
    # attached to it (libevent's listen(fd, 128) used to shrink it, and a
    # burst of connects then lost handshakes to SYN cookies).
    eq(listen_backlog(d.port), min(4096, somaxconn()),
       "listen backlog with 3 workers")
    # Concurrent sessions land on more than one worker ...
    conns, pids = [], set()
    for i in range(12):
        cn = Conn(d.port)
        cn.login("wu%d" % i, "wu-pw")
        pids.add(greeting_pid(cn))
        conns.append(cn)
    check(pids <= set(kids), "greeting pids %s are not the workers %s"
          % (sorted(pids), kids))
    check(len(pids) >= 2, "12 concurrent sessions all on one worker %s"
          % sorted(pids))
    # ... and the lock holds across them: the mailbox of a session on
    # one worker is [IN-USE] on every worker.
    a = Conn(d.port)
    a.login("wanda", "wanda-pw")
    seen = set()
    for _ in range(8):
        cn = conn_retry(d.port)
        seen.add(greeting_pid(cn))
        cn.ok("USER wanda")
        cn.err("PASS wanda-pw", "IN-USE")
        cn.close()
    # max_connections 14 counts the whole daemon: 12 + wanda + 1 more
    # (once the 8 closed connections are gone on the server side).
    x = conn_retry(d.port)
    y = Conn(d.port, greeting=False)
    got, _ = y.expect_closed()
    check(got.startswith(b"-ERR [SYS/TEMP]"), "15th connection with "
          "max_connections 14 over 3 workers: %s" % short(got))
    x.close()
    for cn in conns:
        cn.quit()
    a.quit()
    # Every slot is free again (counts are taken back when sessions end).
    deadline = time.monotonic() + 3 * SLOW
    held = []
    while len(held) < 14:
        cn = Conn(d.port, greeting=False)
        first = cn.rawline()
        if first.startswith(b"+OK"):
            held.append(cn)
            continue
        cn.close()
        check(time.monotonic() < deadline, "only %d of 14 connections "
              "accepted after all sessions ended: %s" % (len(held),
                                                         short(first)))
        time.sleep(0.05)
    for cn in held:
        cn.close()
    d.send_signal(signal.SIGHUP)
    for k in kids:
        d.log_lines("[%d]" % k, "reload: configuration")
    eq(d.stop(), 0, "exit status after SIGTERM")
    for k in kids:
        check(not os.path.exists("/proc/%d/stat" % k) or
              proc_status(k).get("State", "").startswith("Z"),
              "worker %d still running after SIGTERM" % k)


@test()
def t_workers_crash(c):
    """A worker killed with SIGKILL: its sessions' marks are not applied,
    the supervisor starts another, the dead worker's lock is broken at
    once and its connection counts are taken back."""
    msgs = three("wc")
    c.add_user("wes", "wes-pw", msgs=msgs)
    d = c.start(extra=["workers 2", "max_connections 3"])
    kids = workers_of(d, 2)
    a = Conn(d.port)
    a.login("wes", "wes-pw")
    a.ok("DELE 1")
    a.ok("DELE 2")
    b = Conn(d.port)
    victim = greeting_pid(a)
    check(victim in kids, "session on a worker %d of %s" % (victim, kids))
    os.kill(victim, signal.SIGKILL)
    a.expect_closed()
    new = []
    deadline = time.monotonic() + 5 * SLOW
    while time.monotonic() < deadline:
        new = descendants(d.pid)[1:]
        if len(new) == 2 and victim not in new:
            break
        time.sleep(0.05)
    check(len(new) == 2 and victim not in new, "workers after the kill: %s "
          "(killed %d)" % (new, victim))
    d.log_lines("worker", "pid %d) killed by signal 9" % victim)
    eq(sorted(c.disk("wes")), sorted(base_of(m) for m in msgs),
       "messages on disk after the worker died with DELE marks")
    # The dead worker's slots are free again: with b (if it was on the
    # other worker) and e, fill max_connections 3; one more is refused.
    e = login_soon(d.port, "wes", "wes-pw")
    eq(e.stat()[0], 3, "STAT after the crash")
    held = [conn_retry(d.port)
            for _ in range(3 - 1 - (greeting_pid(b) != victim))]
    g = Conn(d.port, greeting=False)
    got, _ = g.expect_closed()
    check(got.startswith(b"-ERR [SYS/TEMP]"), "4th connection with "
          "max_connections 3: %s" % short(got))
    for f in held:
        f.close()
    e.quit()
    b.close()
    eq(d.stop(), 0, "exit status after SIGTERM")


@test()
def t_admin_sessions(c):
    """evpop3d --sessions lists the live sessions of every worker;
    --kick ends one without UPDATE (its marks are discarded, the lock is
    released, the record says reason=admin); others are refused."""
    msgs = three("ad")
    c.add_user("ada", "ada-pw", msgs=msgs)
    c.add_user("abe", "abe-pw", msgs=three("ae"))
    d = c.start(extra=["workers 2"])
    workers_of(d, 2)
    a = Conn(d.port)
    a.login("ada", "ada-pw")
    a.ok("DELE 1")
    a.ok("DELE 2")
    b = Conn(d.port)
    b.login("abe", "abe-pw")
    n = Conn(d.port)                    # not logged in
    r = c.run_bin(["-c", d.conf, "--sessions"])
    out = r.stdout.decode()
    eq(r.returncode, 0, "--sessions exit status (%s)" % short(r.stderr))
    lines = {}
    for ln in out.splitlines():
        kv = dict(f.split("=", 1) for f in ln.split() if "=" in f)
        lines[kv.get("user")] = kv
    check({"ada", "abe", "-"} <= set(lines), "--sessions: %s" % short(out))
    eq(lines["ada"]["state"], "transaction", "state of ada's session")
    eq(lines["ada"]["marked"], "2", "marks of ada's session")
    eq(int(lines["ada"]["pid"]), greeting_pid(a), "pid of ada's session")
    eq(lines["-"]["state"], "authorization", "state of the anonymous one")
    check(lines["ada"]["peer"].startswith("127.0.0.1:"), "peer %s"
          % lines["ada"]["peer"])
    sid = lines["ada"]["session"]
    r = c.run_bin(["-c", d.conf, "--kick", sid])
    eq(r.returncode, 0, "--kick exit status (%s)" % short(r.stderr))
    got, _ = a.expect_closed()
    check(got.startswith(b"-ERR [SYS/TEMP]"), "kicked client got %s"
          % short(got))
    eq(sorted(c.disk("ada")), sorted(base_of(m) for m in msgs),
       "messages after the kick (marks must be discarded)")
    d.log_lines("session=%s event=end" % sid, "reason=admin",
                "discarded=2")
    login_soon(d.port, "ada", "ada-pw").quit()     # the lock is free
    r = c.run_bin(["-c", d.conf, "--kick", sid])
    eq(r.returncode, 1, "--kick of a session that is gone")
    eq(b.stat()[0], 3, "the other session goes on")
    b.quit()
    n.close()
    if ROOT:
        r = subprocess.run(["setpriv", "--reuid=daemon", "--regid=daemon",
                            "--clear-groups", c.bin, "-c", d.conf,
                            "--sessions"], capture_output=True,
                           timeout=10 * SLOW)
        check(r.returncode == 1 and b"refused" in r.stderr,
              "--sessions as an unrelated user: %d %s"
              % (r.returncode, short(r.stdout + r.stderr)))
    d.stop()
    r = c.run_bin(["-c", d.conf, "--sessions"])
    check(r.returncode == 1 and b"no daemon" in r.stderr,
          "--sessions with no daemon: %s" % short(r.stderr))


@test()
def t_sigkill_stale_lock(c):
    msgs = three("sk")
    c.add_user("erin", "erin-pw-5", msgs=msgs)
    d = c.start()
    a = Conn(d.port)
    a.login("erin", "erin-pw-5")
    a.ok("DELE 1")
    a.ok("DELE 2")
    a.ok("NOOP")
    d.kill()
    a.close()
    eq(sorted(c.disk("erin")), sorted(base_of(m) for m in msgs),
       "messages on disk after SIGKILL")
    d2 = c.start()
    b = Conn(d2.port)
    b.ok("USER erin")
    r = b.cmd("PASS erin-pw-5")
    check(r.startswith("+OK"), "login right after the old daemon was "
          "killed (stale lock must be broken): %s" % r)
    eq(b.stat()[0], 3, "STAT")
    b.quit()
    eq(len(c.disk("erin")), 3, "messages on disk")


@test()
def t_sigterm(c):
    all_msgs = {}
    for u in ("fay", "fred", "finn"):
        all_msgs[u] = three(u)
        c.add_user(u, u + "-pw", msgs=all_msgs[u])
    d = c.start()
    s1 = Conn(d.port)
    s1.login("fay", "fay-pw")
    s1.ok("DELE 1")
    s2 = Conn(d.port)
    s2.login("fred", "fred-pw")
    s2.ok("DELE 1")
    s2.ok("DELE 3")
    s3 = Conn(d.port)                 # AUTHORIZATION, nothing sent
    s4 = Conn(d.port)
    s4.ok("USER finn")                # half-way through a login
    s5 = Conn(d.port)
    s5.login("finn", "finn-pw")
    s5.send("RETR 1\r\n")             # reply left unread
    time.sleep(0.2)
    t0 = time.monotonic()
    d.send_signal(signal.SIGTERM)
    try:
        rc = d.proc.wait(5.0 * (2 if SAN else 1))
    except subprocess.TimeoutExpired:
        raise Fail("daemon still running 5s after SIGTERM")
    el = time.monotonic() - t0
    d.stopped, d.rc = True, rc
    eq(rc, 0, "exit status after SIGTERM")
    d.san_check()
    for s in (s1, s2, s3, s4):
        s.expect_closed(2)
    for u, msgs in all_msgs.items():
        eq(sorted(c.disk(u)), sorted(base_of(m) for m in msgs),
           "%s's messages on disk after SIGTERM" % u)
        check(not os.path.exists(os.path.join(c.maildir(u), "evpop3d.lock")),
              "%s's lock file left behind after SIGTERM" % u)
    check(el < 5.0, "exit took %.1fs" % el)


@test()
def t_idle_timeout(c):
    msgs = three("id")
    c.add_user("gail", "gail-pw-6", msgs=msgs)
    d = c.start(idle_timeout=2)
    a = Conn(d.port, timeout=10 * SLOW)
    a.login("gail", "gail-pw-6")
    a.ok("DELE 1")
    # Activity keeps the session alive past the timeout ...
    for _ in range(4):
        time.sleep(0.8)
        a.ok("NOOP")
    # ... and silence ends it.
    data, el = a.expect_closed(8 * SLOW)
    check(1.5 <= el <= 4.5 * SLOW, "idle session closed after %.1fs "
          "(idle_timeout 2)" % el)
    check(b"+OK" not in data, "unexpected %s before close" % short(data))
    eq(sorted(c.disk("gail")), sorted(base_of(m) for m in msgs),
       "messages on disk after idle timeout")
    d.log_lines("user=gail", "reason=idle")
    # the lock is gone with the session
    login_soon(d.port, "gail", "gail-pw-6").quit()


@test()
def t_quit_unsent(c):
    msgs = three("qu")
    c.add_user("hana", "hana-pw-7", msgs=msgs)
    d = c.start()
    a = Conn(d.port)
    a.login("hana", "hana-pw-7")
    num = numbers(a)
    a.ok("DELE 2")
    a.send("QUIT\r\n")
    a.close()                         # never read the QUIT reply
    gone = num[2]
    deadline = time.monotonic() + 5 * SLOW
    while gone in c.disk("hana") and time.monotonic() < deadline:
        time.sleep(0.05)
    eq(sorted(c.disk("hana")), sorted(b for b in map(base_of, msgs)
                                      if b != gone),
       "messages on disk after QUIT + close")
    d.log_lines("user=hana", "reason=quit")
    # The same with DELE and QUIT in one write, closed at once.
    b = Conn(d.port)
    b.login("hana", "hana-pw-7")
    num = numbers(b)
    eq(len(num), 2, "messages left")
    b.send("DELE 1\r\nQUIT\r\n")
    b.close()
    gone = num[1]
    deadline = time.monotonic() + 5 * SLOW
    while gone in c.disk("hana") and time.monotonic() < deadline:
        time.sleep(0.05)
    eq(sorted(c.disk("hana")), [num[2]],
       "messages on disk after pipelined DELE, QUIT + close")


@test()
def t_long_lines(c):
    c.add_user("ivan", "ivan-pw-8", msgs=three("ll"))
    d = c.start()
    a = Conn(d.port)
    a.err("USER " + "x" * 293)        # 300 octets with CRLF
    a.login("ivan", "ivan-pw-8")
    line = "NOOP " + "x" * 293
    eq(len(line) + 2, 300, "test line length")
    a.err(line)
    a.ok("NOOP")
    a.err("LIST " + "1" * 400)
    a.ok("NOOP")
    a.send(b"NOOP\x00\r\n")
    r = a.line()
    check(r.startswith("-ERR"), "NOOP with a NUL byte: %s" % short(r))
    a.send(b"STAT\x00 junk\r\n")
    r = a.line()
    check(r.startswith("-ERR"), "STAT with a NUL byte: %s" % short(r))
    eq(a.stat()[0], 3, "STAT after bad lines")
    a.quit()
    b = Conn(d.port)
    try:
        b.send(b"A" * (100 * 1024))
    except (BrokenPipeError, ConnectionResetError):
        pass
    data, _ = b.expect_closed(5 * SLOW)
    check(b"+OK" not in data, "100 KB without a line end: got %s"
          % short(data))
    Conn(d.port).quit()               # still serving


@test()
def t_pipelining(c):
    msgs = three("pp")
    c.add_user("jane", "jane-pw-9", msgs=msgs)
    d = c.start()
    a = Conn(d.port, timeout=20 * SLOW)
    a.login("jane", "jane-pw-9")
    files = {base_of(m): m[2] for m in msgs}
    num = numbers(a)
    total = sum(len(wire(v)) for v in files.values())
    cmds = []
    for i in range(500):
        k = i % 3 + 1
        cmds.append(["NOOP", "LIST %d" % k, "UIDL %d" % k, "STAT",
                     "RETR %d" % k, "TOP %d 0" % k, "LIST 9"][i % 7])
    a.send("".join(x + "\r\n" for x in cmds))
    for i, x in enumerate(cmds):
        r = a.line()
        f = x.split()
        what = "reply %d to %s" % (i + 1, x)
        if f[0] == "LIST" and f[1] == "9":
            check(r.startswith("-ERR"), "%s: %s" % (what, r))
            continue
        check(r.startswith("+OK"), "%s: %s" % (what, r))
        if f[0] == "LIST":
            k = int(f[1])
            eq(r.split()[1:3], [str(k), str(len(wire(files[num[k]])))], what)
        elif f[0] == "UIDL":
            eq(r.split()[1:3], [f[1], num[int(f[1])]], what)
        elif f[0] == "STAT":
            eq(r.split()[1:3], ["3", str(total)], what)
        elif f[0] == "RETR":
            eq(a.multi_body(), wire(files[num[int(f[1])]]), what)
        elif f[0] == "TOP":
            eq(a.multi_body(), top_expect(files[num[int(f[1])]], 0), what)
    a.quit()


def big_message(size):
    """About size octets, LF line ends, some lines starting with '.'.
    Blocks are numbered so that a lost, repeated or reordered part of the
    stream changes the digest."""
    head = mkmsg("big", body=[])
    block = b"".join(
        (b".dotted line %04d ......\n" % i) if i % 17 == 0 else
        (b"line %04d the quick brown fox jumps over the lazy dog\n" % i)
        for i in range(1000))
    n = size // (len(block) + 20) + 1
    return head + b"".join(b"block %08d\n" % i + block for i in range(n))


@test()
def t_slow_reader(c):
    data = big_message(50 * 1024 * 1024)
    w = wire(data)
    want = hashlib.sha256(w).hexdigest()
    wlen = len(w)
    del w
    c.add_user("kurt", "kurt-pw-10",
               msgs=[("cur", "1732270000.M1P1.big:2,", data)])
    del data
    small = three("sr")
    c.add_user("kim", "kim-pw-11", msgs=small)
    d = c.start()
    # warm up: one full session so worker threads exist for the baseline
    w = Conn(d.port)
    w.login("kim", "kim-pw-11")
    w.quit()
    base = rss_anon_kb(d.pid)
    a = Conn(d.port, timeout=60 * SLOW, rcvbuf=65536)
    r = a.login("kurt", "kurt-pw-10")
    check(str(wlen) in r, "login reply should give the size %d: %s"
          % (wlen, r))
    a.send("RETR 1\r\n")
    peak = base
    other = {}

    def other_session():
        try:
            t0 = time.monotonic()
            b = Conn(d.port)
            b.login("kim", "kim-pw-11")
            num = numbers(b)
            files = {base_of(m): m[2] for m in small}
            for n in num:
                eq(b.multi("RETR %d" % n), wire(files[num[n]]),
                   "other session RETR %d" % n)
            b.quit()
            other["time"] = time.monotonic() - t0
        except Exception as e:         # reported below
            other["error"] = e

    th = threading.Thread(target=other_session)
    t0 = time.monotonic()
    started = False
    while time.monotonic() - t0 < 2.0:
        peak = max(peak, rss_anon_kb(d.pid))
        if not started and time.monotonic() - t0 > 0.3:
            th.start()
            started = True
        time.sleep(0.1)
    th.join(20 * SLOW)
    check(not th.is_alive(), "other session did not finish while a "
          "client stalled a 50 MB RETR")
    if "error" in other:
        raise Fail("other session during stalled RETR: %s" % other["error"])
    check(other["time"] < 5 * SLOW, "other session took %.1fs"
          % other["time"])
    grow = (peak - base) / 1024.0
    check(grow < 40, "RssAnon grew %.1f MB (from %d kB to %d kB) while a "
          "client did not read a 50 MB RETR" % (grow, base, peak))
    r = a.line()
    check(r.startswith("+OK"), "RETR 1: %s" % r)
    check(str(wlen) in r, "RETR reply should give %d octets: %s" % (wlen, r))
    body = a.multi_raw()
    eq(len(destuff(body)), wlen, "octets of the de-stuffed message")
    eq(hashlib.sha256(destuff(body)).hexdigest(), want,
       "sha256 of the de-stuffed 50 MB message")
    a.quit()


def piped_message(tag, size, seed, final_eol=True):
    """A message of about size octets whose awkward places fall where the
    worker pool's reads (64 KiB) and blocks (1 MiB) split the file: a CR
    at the end of one read and its LF at the start of the next, a line
    starting with '.' right after a read boundary, a line longer than a
    read, CRLF and LF mixed, lone CRs, lines of dots only."""
    rng = random.Random(seed)
    out = bytearray(mkmsg(tag, body=[]))
    read = 64 * 1024
    k = 1
    while len(out) < size:
        edge = k * read
        # ordinary lines up to just before the next read boundary
        while len(out) < edge - 200:
            n = rng.randrange(0, 120)
            line = bytes(rng.choice(b"abcdefghij .\r") for _ in range(n))
            line = line.replace(b"\r", b"") if rng.random() < 0.7 else line
            if rng.random() < 0.05:
                line = b"." + line
            if rng.random() < 0.02:
                line = b"." * rng.randrange(1, 4)
            out += line + (b"\r\n" if rng.random() < 0.2 else b"\n")
        pad = edge - len(out) - 1
        kind = k % 4
        if kind == 0:       # CR last octet of one read, LF first of next
            out += b"p" * (pad - 1) + b"\n" + b"\r"
            out += b"\n"
        elif kind == 1:     # dotted line starting the next read
            out += b"q" * pad + b"\n"
            out += b".starts a read\n"
        elif kind == 2:     # a line twice as long as a read
            out += b"r" * pad + b"\n"
            out += b"L" * (2 * read) + b"\n"
            k += 2
        else:               # lone CR right before a read boundary
            out += b"s" * pad + b"\r"
        k += 1
    data = bytes(out[:size])
    if final_eol and not data.endswith(b"\n"):
        data += b"\n"
    return data


@test()
def t_retr_piped(c):
    """Messages of 512 KiB and more are read and encoded on the worker pool
    (retr.c): byte-exact output at every read and block boundary, sizes
    just under and over the threshold, no final line end, pipelined
    commands answered in order after them, and more such streams at once
    than one process pipes (the rest go the inline way)."""
    K = 1024
    sizes = [(512 * K - 700, True), (512 * K + 10, True), (1024 * K, True),
             (2 * 1024 * K + 33, False), (3 * 1024 * K + 5, True)]
    msgs = []
    for i, (size, eol) in enumerate(sizes):
        msgs.append(("cur", "17322701%02d.M%dP1.pipe:2," % (i, i),
                     piped_message("pipe%d" % i, size, i, eol)))
    c.add_user("pia", "pia-pw-1", msgs=msgs)
    many = 6 if SAN else 40
    one = piped_message("many", 600 * K, 99)
    for i in range(many):
        c.add_user("m%02d" % i, "m-pw-%d" % i,
                   msgs=[("cur", "1732270200.M1P1.many:2,", one)])
    d = c.start(extra=["workers 1"])
    files = {base_of(m): m[2] for m in msgs}
    a = Conn(d.port, timeout=30 * SLOW)
    a.login("pia", "pia-pw-1")
    num = numbers(a)
    sizes_listed = a.listing("LIST")
    for n in sorted(num):
        w = wire(files[num[n]])
        eq(int(sizes_listed[n]), len(w), "LIST %d" % n)
        eq(a.multi("RETR %d" % n), w, "RETR %d (%d octets)" % (n, len(w)))
    # pipelined: the replies after a piped stream come after all of it
    order = sorted(num)
    a.send("RETR %d\r\nRETR %d\r\nLIST %d\r\nTOP %d 3\r\nNOOP\r\n"
           % (order[4], order[2], order[3], order[4]))
    r = a.line()
    check(r.startswith("+OK"), "pipelined RETR: %s" % r)
    eq(a.multi_body(), wire(files[num[order[4]]]), "pipelined RETR 5")
    r = a.line()
    check(r.startswith("+OK"), "pipelined RETR: %s" % r)
    eq(a.multi_body(), wire(files[num[order[2]]]), "pipelined RETR 3")
    eq(a.line().split()[:3], ["+OK", str(order[3]),
                              str(len(wire(files[num[order[3]]])))],
       "pipelined LIST 4")
    r = a.line()
    check(r.startswith("+OK"), "pipelined TOP: %s" % r)
    eq(a.multi_body(), top_expect(files[num[order[4]]], 3), "pipelined TOP")
    check(a.line().startswith("+OK"), "pipelined NOOP")
    a.quit()

    # many streams at once: all byte-exact, whichever way each went
    want = hashlib.sha256(wire(one)).hexdigest()
    conns = []
    for i in range(many):
        b = Conn(d.port, timeout=60 * SLOW)
        b.login("m%02d" % i, "m-pw-%d" % i)
        conns.append(b)
    for b in conns:
        b.send("RETR 1\r\n")
    for i, b in enumerate(conns):
        check(b.line().startswith("+OK"), "RETR on connection %d" % i)
        eq(hashlib.sha256(b.multi_body()).hexdigest(), want,
           "sha256 of RETR on connection %d of %d" % (i, many))
    # and some abandoned half-way (blocks still queued when they go)
    for b in conns[: many // 2]:
        b.send("RETR 1\r\n")
        b.s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                       b"\x01\x00\x00\x00\x00\x00\x00\x00")
        b.close()
    for b in conns[many // 2:]:
        b.quit()
    for i in range(many):
        eq(len(c.disk("m%02d" % i)), 1, "message of m%02d on disk" % i)
    check(d.proc.poll() is None, "daemon died")
    eq(d.stop(), 0, "exit status after SIGTERM")


@test()
def t_vanished_and_renamed(c):
    msgs = three("vr", where=("cur", "cur", "cur"))
    c.add_user("lena", "lena-pw-12", msgs=msgs)
    d = c.start()
    ids = by_id(msgs)
    a = Conn(d.port)
    a.login("lena", "lena-pw-12")
    num = numbers(a)
    n_of = {b: n for n, b in num.items()}
    gone = base_of(ids["vr-a"])
    ren = base_of(ids["vr-b"])
    ren2 = base_of(ids["vr-c"])
    os.unlink(c.path_of("lena", gone))
    a.err("RETR %d" % n_of[gone])
    a.ok("NOOP")
    old = c.path_of("lena", ren)
    os.rename(old, old[:-len(":2,")] + ":2,S")
    eq(a.multi("RETR %d" % n_of[ren]), wire(ids["vr-b"][2]),
       "RETR of a message renamed to :2,S")
    eq(a.multi("TOP %d 0" % n_of[ren]), top_expect(ids["vr-b"][2], 0),
       "TOP of a renamed message")
    old = c.path_of("lena", ren2)
    os.rename(old, old + "RS")
    a.ok("DELE %d" % n_of[ren2])
    a.quit()
    disk = c.disk("lena")
    eq(sorted(disk), [ren], "messages on disk after QUIT (renamed one "
       "deleted, removed one gone)")
    eq(disk[ren][1], ren + ":2,S", "renamed file kept its new name")


@test()
def t_sizes(c):
    hdr = b"From: a@example.org\nSubject: sizes\nX-Test-Id: %s\n\n"
    bodies = {
        "lf": hdr.replace(b"%s", b"lf") + b"one\ntwo\n\nfour\n",
        "crlf": (hdr.replace(b"%s", b"crlf") + b"one\ntwo\n").replace(
            b"\n", b"\r\n"),
        "nofinal": hdr.replace(b"%s", b"nofinal") + b"one\ntwo",
        "crlfnofinal": (hdr.replace(b"%s", b"crlfnofinal")
                        + b"one\ntwo").replace(b"\n", b"\r\n"),
        "mixed": hdr.replace(b"%s", b"mixed") + b"a\r\nb\nc\r\n.d\n",
        "headonly": b"From: a@example.org\nX-Test-Id: headonly\n",
    }
    msgs = [("cur", "17322701%02d.M%dP1.sz:2," % (i, i), data)
            for i, data in enumerate(bodies.values())]
    c.add_user("mona", "mona-pw-13", msgs=msgs)
    d = c.start()
    a = Conn(d.port)
    a.login("mona", "mona-pw-13")
    sizes = a.listing("LIST")
    eq(a.stat(), (len(msgs), sum(len(wire(v)) for v in bodies.values())),
       "STAT")
    for n, sz in sizes.items():
        got = a.multi("RETR %d" % n)
        tid = test_id(got)
        check(tid in bodies, "RETR %d: unknown content %s" % (n, short(got)))
        eq(got, wire(bodies[tid]), "RETR %d (%s)" % (n, tid))
        eq(int(sz), len(got), "LIST size of %s vs octets RETR sent" % tid)
        eq(a.ok("LIST %d" % n).split()[1:3], [str(n), sz],
           "LIST %d" % n)
        eq(a.multi("TOP %d 0" % n), top_expect(bodies[tid], 0),
           "TOP %d 0 (%s)" % (n, tid))
        eq(a.multi("TOP %d 1" % n), top_expect(bodies[tid], 1),
           "TOP %d 1 (%s)" % (n, tid))
    a.quit()


@test()
def t_new_to_cur(c):
    m1 = mkmsg("nc-1")
    m2 = mkmsg("nc-2")
    m3 = mkmsg("nc-3")
    msgs = [("new", "1732270000.M1P1.host", m1),
            ("new", "1732270100.M2P1.host", m2),
            ("cur", "1732260000.M0P1.host:2,S", m3)]
    c.add_user("nina", "nina-pw-14", msgs=msgs)
    d = c.start()
    a = Conn(d.port)
    a.login("nina", "nina-pw-14")
    md = c.maildir("nina")
    eq(sorted(os.listdir(os.path.join(md, "new"))), [], "new/ after login")
    cur = sorted(f for f in os.listdir(os.path.join(md, "cur"))
                 if not f.startswith("."))
    eq(cur, ["1732260000.M0P1.host:2,S", "1732270000.M1P1.host:2,",
             "1732270100.M2P1.host:2,"], "cur/ after login")
    for fn, data in ((cur[1], m1), (cur[2], m2)):
        with open(os.path.join(md, "cur", fn), "rb") as f:
            eq(f.read(), data, "content of %s" % fn)
    u = numbers(a)
    eq(sorted(u.values()), ["1732260000.M0P1.host", "1732270000.M1P1.host",
                            "1732270100.M2P1.host"], "UIDLs")
    a.quit()
    b = Conn(d.port)
    b.login("nina", "nina-pw-14")
    eq(numbers(b), u, "UIDL listing in a second session")
    b.quit()


def run_t(c, conf):
    r = c.run_bin(["-c", conf, "-t"])
    return r.returncode, (r.stdout + r.stderr).decode(errors="replace")


@test()
def t_config_check(c):
    c.add_user("olga", "olga-pw-15")
    port = free_port()
    good = c.write_conf(port)
    rc, out = run_t(c, good)
    eq(rc, 0, "-t on a good config (output %s)" % short(out))

    def bad(line, lineno, what, replace=False):
        with open(good) as f:
            lines = f.read().splitlines()
        if replace:
            lines[lineno - 1] = line
        else:
            lines.insert(lineno - 1, line)
        p = os.path.join(c.dir, "bad-%s.conf" % what)
        with open(p, "w") as f:
            f.write("\n".join(lines) + "\n")
        c.fix_owner()
        rc, out = run_t(c, p)
        eq(rc, 1, "-t exit status with %s" % what)
        check("%s:%d" % (p, lineno) in out,
              "-t with %s should name %s:%d, said %s"
              % (what, p, lineno, short(out)))
    bad("frobnicate yes", 3, "unknown-key")
    bad("idle_timeout 12x", 4, "bad-number")
    with open(good) as f:
        pline = [i for i, ln in enumerate(f.read().splitlines(), 1)
                 if ln.startswith("passwd_file ")][0]
    bad("passwd_file %s/no-such-passwd" % c.dir, pline, "missing-passwd",
        replace=True)
    r = c.run_bin(["-V"])
    out = (r.stdout + r.stderr).decode(errors="replace")
    eq(r.returncode, 0, "-V exit status")
    check(re.search(r"evpop3d\s+\d+\.\d+", out), "-V printed %s" % short(out))


@test()
def t_hash_password(c):
    pw = "correct horse battery"
    r = c.run_bin(["--hash-password"], stdin=(pw + "\n").encode())
    eq(r.returncode, 0, "--hash-password exit status (stderr %s)"
       % short(r.stderr))
    h = r.stdout.decode().strip()
    check(re.fullmatch(r"\$[0-9a-z]+\$\S{20,}", h),
          "--hash-password printed %s" % short(h))
    check(pw not in h, "hash contains the password")
    r2 = c.run_bin(["--hash-password"], stdin=(pw + "\n").encode())
    check(r2.stdout.decode().strip() != h, "two hashes of one password "
          "are equal (no salt?)")
    c.add_user("paul", secret=h, msgs=three("hp"))
    d = c.start()
    a = Conn(d.port)
    a.ok("USER paul")
    a.err("PASS correct horse", "AUTH")
    a.ok("USER paul")
    a.ok("PASS " + pw)
    eq(a.stat()[0], 3, "STAT")
    a.quit()


@test(root_only=True)
def t_root_without_user(c):
    c.add_user("quinn", "quinn-pw")
    port = free_port()
    conf = c.write_conf(port, run_as=False)
    try:
        r = c.run_bin(["-c", conf, "-F"], timeout=10 * SLOW)
    except subprocess.TimeoutExpired:
        raise Fail("started as root without 'user': still running after "
                   "%.0fs" % (10 * SLOW))
    out = (r.stdout + r.stderr).decode(errors="replace")
    check(r.returncode != 0, "started as root without 'user': exit 0")
    check("user" in out, "refusal should mention 'user': %s" % short(out))


@test(root_only=True)
def t_privileges(c):
    c.add_user("rita", "rita-pw", msgs=three("pv"))
    d = c.start()
    a = Conn(d.port)
    a.login("rita", "rita-pw")
    a.multi("RETR 1")
    uid, gid, _ = run_ids()
    procs = descendants(d.pid)
    for p in procs:
        tasks = os.listdir("/proc/%d/task" % p)
        for t in tasks:
            st = proc_status(int(t))
            eq(st.get("Uid", "").split(), [str(uid)] * 4,
               "Uid line of pid %d task %s" % (p, t))
            eq(st.get("Gid", "").split(), [str(gid)] * 4,
               "Gid line of pid %d task %s" % (p, t))
            eq(st.get("Groups", "").split(), [],
               "supplementary groups of pid %d task %s" % (p, t))
    # the lock file and moved messages are owned by the run-as user
    st = os.stat(os.path.join(c.maildir("rita"), "evpop3d.lock"))
    eq(st.st_uid, uid, "owner of the lock file")
    a.quit()


@test()
def t_sighup_passwd(c):
    c.add_user("tom", "tom-pw", msgs=three("hu"))
    d = c.start()
    c.add_user("tina", "tina-pw", msgs=three("hv"))
    a = Conn(d.port)
    a.ok("USER tina")
    a.err("PASS tina-pw", "AUTH")     # not known before SIGHUP
    a.close()
    d.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 3 * SLOW
    while True:
        a = Conn(d.port)
        a.ok("USER tina")
        r = a.cmd("PASS tina-pw")
        if r.startswith("+OK") or time.monotonic() > deadline:
            break
        a.close()
        time.sleep(0.1)
    check(r.startswith("+OK"), "new user after SIGHUP: %s" % r)
    a.quit()
    # A broken file is refused and the old users stay.
    c.passwd_lines.append("this line is not valid")
    c.write_passwd()
    d.send_signal(signal.SIGHUP)
    time.sleep(0.5 * SLOW)
    check(d.proc.poll() is None, "daemon died on SIGHUP with a broken "
          "passwd file")
    for u in ("tom", "tina"):
        a = Conn(d.port)
        a.login(u, u + "-pw")
        a.quit()


@test()
def t_session_log(c):
    c.add_user("sara", "sara-pw", msgs=three("sl"))
    d = c.start()
    a = Conn(d.port)
    a.login("sara", "sara-pw")
    a.multi("RETR 1")
    a.ok("DELE 2")
    a.quit()
    ln = d.log_lines("event=end", "user=sara")
    check("reason=quit" in ln, "session end line: %s" % ln)
    check("deleted=1/" in ln, "session end line should count 1 deleted: %s"
          % ln)
    check("sara-pw" not in d.logtext(), "password in the log")



@test()
def t_ipv6_and_two_listeners(c):
    """Several listen lines, one of them IPv6: a session on each."""
    try:
        s6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s6.bind(("::1", 0))
        port6 = s6.getsockname()[1]
        s6.close()
    except OSError:
        raise Skip("no IPv6 loopback here")
    c.add_user("vic", "vic-pw", msgs=three("v6"))
    d = c.start(extra=["listen [::1]:%d" % port6])
    s = socket.create_connection(("::1", port6), timeout=10 * SLOW)
    f = s.makefile("rb")
    check(f.readline().startswith(b"+OK"), "greeting over IPv6")
    s.sendall(b"USER vic\r\nPASS vic-pw\r\nSTAT\r\nQUIT\r\n")
    replies = [f.readline() for _ in range(4)]
    check(all(r.startswith(b"+OK") for r in replies), "IPv6 session: %r"
          % replies)
    check(replies[2].startswith(b"+OK 3 "), "STAT over IPv6: %r"
          % replies[2])
    s.close()
    a = Conn(d.port)
    a.login("vic", "vic-pw")
    a.quit()
    check("peer=[::1]:" in d.logtext(), "IPv6 peer not in the log")


@test()
def t_session_record_json(c):
    """log_format json: one parseable record per session that tells a
    QUIT with removals from a dropped session whose marks were
    discarded."""
    import json
    c.add_user("jo", "jo-pw", msgs=three("js"))
    d = c.start(extra=["log_format json"])
    a = Conn(d.port)
    a.login("jo", "jo-pw")
    a.multi("RETR 1")
    a.ok("DELE 1")
    a.ok("DELE 2")
    a.close()                       # dropped: marks discarded
    ln = d.log_lines('"user":"jo"', '"reason":"disconnect"')
    r = json.loads(ln[ln.index("{"):])
    eq((r["listed"], r["retr"], r["marked"], r["removed"], r["discarded"],
        r["left"], r["mech"]), (3, 1, 2, 0, 2, 3, "pass"),
       "dropped session record")
    eq(len(c.disk("jo")), 3, "messages on disk after the drop")
    a = Conn(d.port)
    a.login("jo", "jo-pw")
    a.ok("DELE 3")
    a.quit()
    ln = d.log_lines('"user":"jo"', '"reason":"quit"')
    r = json.loads(ln[ln.index("{"):])
    eq((r["marked"], r["removed"], r["discarded"], r["left"]), (1, 1, 0, 2),
       "QUIT session record")
    check(r["peer"].startswith("127.0.0.1:") and r["tls"] == "no",
          "record fields: %r" % r)


@test()
def t_login_delay(c):
    """login_delay: advertised in CAPA and enforced per mailbox with the
    RFC 2449 [LOGIN-DELAY] code; other mailboxes are not affected."""
    c.add_user("ld", "ld-pw", msgs=three("ld"))
    c.add_user("le", "le-pw", msgs=three("le"))
    d = c.start(extra=["login_delay 2"])
    a = Conn(d.port)
    a.ok("CAPA")
    check("LOGIN-DELAY 2" in a.multi_body().decode(), "CAPA lacks LOGIN-DELAY")
    a.login("ld", "ld-pw")
    a.quit()
    b = Conn(d.port)
    b.ok("USER ld")
    r = b.cmd("PASS ld-pw")
    check(r.startswith("-ERR [LOGIN-DELAY]"), "second login at once: %r" % r)
    b.close()
    e = Conn(d.port)
    e.login("le", "le-pw")                       # another mailbox: fine
    e.quit()
    time.sleep(2.2)
    f = Conn(d.port)
    f.login("ld", "ld-pw")                       # after the delay: fine
    f.quit()
    eq(len(c.disk("ld")), 3, "messages on disk")


@test()
def t_soft_delete(c):
    """delete_mode trash: DELE+QUIT moves messages to a hidden folder that
    POP3 does not show; the administrator lists and restores them (same
    UIDL), not while a session holds the mailbox; trash_days purges."""
    c.add_user("td", "td-pw", msgs=three("td"))
    d = c.start(extra=["delete_mode trash", "trash_days 7"])
    a = Conn(d.port)
    a.login("td", "td-pw")
    before = a.listing("UIDL")
    a.ok("DELE 1")
    a.ok("DELE 3")
    a.quit()
    eq(len(c.disk("td")), 1, "messages left in cur/ and new/")
    trash = os.path.join(c.maildir("td"), "evpop3d-trash")
    eq(len(os.listdir(trash)), 2, "messages in the trash")
    a = Conn(d.port)
    a.login("td", "td-pw")
    eq(a.stat()[0], 1, "STAT sees no trash")
    # While a session holds the mailbox the admin command refuses.
    r = c.run_bin(["-c", d.conf, "--trash-restore", "td"])
    check(r.returncode == 1 and b"in use" in r.stderr,
          "restore during a session: %r" % (r.stderr,))
    a.quit()
    r = c.run_bin(["-c", d.conf, "--trash-list", "td"])
    eq(r.returncode, 0, "--trash-list status")
    lines = r.stdout.decode().splitlines()
    eq(len(lines), 2, "--trash-list lines")
    check(all(ln.split()[2].split(":")[0] in (before[1], before[3])
              for ln in lines), "--trash-list names: %r" % lines)
    r = c.run_bin(["-c", d.conf, "--trash-restore", "td", before[1]])
    check(r.returncode == 0 and b"1 message restored" in r.stdout,
          "--trash-restore: %r %r" % (r.stdout, r.stderr))
    a = Conn(d.port)
    a.login("td", "td-pw")
    after = a.listing("UIDL")
    check(sorted(after.values()) == sorted([before[1], before[2]]),
          "UIDLs after restore: %r (before %r)" % (after, before))
    a.quit()
    d.stop()
    # trash_days 0: the next login purges what is left in the trash.
    d = c.start(extra=["delete_mode trash", "trash_days 0"])
    a = Conn(d.port)
    a.login("td", "td-pw")
    a.quit()
    eq(os.listdir(trash), [], "trash after trash_days 0")
    eq(len(c.disk("td")), 2, "messages kept")


@test()
def t_utf8_lang(c):
    """RFC 6856: CAPA announces UTF8 USER and LANG; UTF8 is accepted
    before login and a UTF-8 user name logs in; LANG lists and selects
    English and refuses other languages."""
    name = "j\u00fcrgen"
    c.add_user(name, "pw-\u00e4\u00f6", msgs=three("u8"))
    d = c.start()
    a = Conn(d.port)
    a.ok("CAPA")
    caps = a.multi_body().decode().split("\r\n")
    check("UTF8 USER" in caps and "LANG" in caps, "CAPA: %r" % caps)
    a.ok("UTF8")
    a.ok("LANG")
    check(b"en English" in a.multi_body(), "LANG listing")
    a.ok("LANG en")
    r = a.cmd("LANG fr")
    check(r.startswith("-ERR"), "LANG fr: %r" % r)
    a.ok("USER " + name)                  # Conn.send encodes as UTF-8
    a.ok("PASS pw-\u00e4\u00f6")
    eq(a.stat()[0], 3, "STAT as a UTF-8 user")
    a.quit()


def scram_client(conn, user, pw, final_ok=True):
    """A SCRAM-SHA-256 client (RFC 5802/7677) over AUTH; returns the
    server's last reply and whether its signature verified."""
    import base64, hashlib, hmac as hm, os as _os
    b64 = lambda b: base64.b64encode(b).decode()
    cnonce = b64(_os.urandom(18))
    bare = "n=%s,r=%s" % (user.replace("=", "=3D").replace(",", "=2C"),
                          cnonce)
    r = conn.cmd("AUTH SCRAM-SHA-256 " + b64(("n,," + bare).encode()))
    if not r.startswith("+ "):
        return r, False
    sfirst = base64.b64decode(r[2:]).decode()
    f = dict(kv.split("=", 1) for kv in sfirst.split(","))
    check(f["r"].startswith(cnonce), "server nonce extends ours")
    salted = hashlib.pbkdf2_hmac("sha256", pw.encode(),
                                 base64.b64decode(f["s"]), int(f["i"]))
    ckey = hm.new(salted, b"Client Key", "sha256").digest()
    stored = hashlib.sha256(ckey).digest()
    without = "c=biws,r=" + f["r"]
    am = ",".join([bare, sfirst, without]).encode()
    sig = hm.new(stored, am, "sha256").digest()
    proof = bytes(a ^ b for a, b in zip(ckey, sig))
    r = conn.cmd(b64((without + ",p=" + b64(proof)).encode()))
    if not r.startswith("+ "):
        return r, False
    skey = hm.new(salted, b"Server Key", "sha256").digest()
    want = "v=" + b64(hm.new(skey, am, "sha256").digest())
    verified = base64.b64decode(r[2:]).decode() == want
    return conn.cmd(""), verified


@test()
def t_sasl_scram(c):
    """SCRAM-SHA-256 with a {SCRAM-SHA-256} passwd entry made by
    --hash-scram: login with mutual proof; wrong password and unknown user
    fail alike; the same user can also use PASS."""
    r = c.run_bin(["--hash-scram"], stdin=b"scr-pw\n")
    secret = r.stdout.decode().strip()
    check(secret.startswith("{SCRAM-SHA-256}"), "--hash-scram: %r" % secret)
    c.add_user("sc", secret=secret, msgs=three("sc"))
    d = c.start()
    a = Conn(d.port)
    a.ok("CAPA")
    check("SCRAM-SHA-256" in a.multi_body().decode(), "CAPA SASL")
    r, verified = scram_client(a, "sc", "scr-pw")
    check(r.startswith("+OK") and verified, "SCRAM login: %r %r"
          % (r, verified))
    eq(a.stat()[0], 3, "STAT after SCRAM")
    a.quit()
    b = Conn(d.port)
    r1, _ = scram_client(b, "sc", "wrong")
    b2 = Conn(d.port)
    r2, _ = scram_client(b2, "nosuch", "wrong")
    check(r1.startswith("-ERR [AUTH]"), "wrong password: %r" % r1)
    eq(r2, r1, "unknown user vs wrong password")
    e = Conn(d.port)
    e.login("sc", "scr-pw")
    e.quit()


@test()
def t_expire(c):
    """expire_days: CAPA says EXPIRE N; with 0 a message retrieved in a
    session that QUITs is removed; with N, one retrieved N days ago is
    removed at the next login, one retrieved now is kept."""
    c.add_user("ex", "ex-pw", msgs=three("ex"))
    d = c.start(extra=["expire_days 0"])
    a = Conn(d.port)
    a.ok("CAPA")
    check("EXPIRE 0" in a.multi_body().decode(), "CAPA EXPIRE 0")
    a.login("ex", "ex-pw")
    a.multi("RETR 2")
    a.quit()
    eq(len(c.disk("ex")), 2, "EXPIRE 0: the retrieved message went")
    d.stop()
    d = c.start(extra=["expire_days 1"])
    a = Conn(d.port)
    a.login("ex", "ex-pw")
    uid = a.listing("UIDL")
    a.multi("RETR 1")
    a.close()                        # no QUIT: nothing recorded
    rec = os.path.join(c.maildir("ex"), "evpop3d.retrieved")
    check(not os.path.exists(rec), "retrieval recorded without QUIT")
    a = login_soon(d.port, "ex", "ex-pw")   # the close is seen a bit later
    a.multi("RETR 1")
    a.quit()
    with open(rec) as f:
        lines = f.read().split()
    eq(lines[1:], [uid[1]], "recorded retrieval")
    a = Conn(d.port)
    a.login("ex", "ex-pw")
    eq(a.stat()[0], 2, "retrieved today: kept")
    a.quit()
    with open(rec, "w") as f:        # as if retrieved two days ago
        f.write("%d %s\n" % (time.time() - 2 * 86400, uid[1]))
    c.fix_owner()
    a = Conn(d.port)
    a.login("ex", "ex-pw")
    eq(a.stat()[0], 1, "retrieved two days ago: expired")
    check(uid[1] not in a.listing("UIDL").values(), "expired UIDL gone")
    a.quit()

# ---------------------------------------------------------------------------
# The runner every integration script uses (run.py, tls.py, faults.py,
# clients.py, service.py, cluster.py).

def run_suite(tests, prog, doc, make_case=None, skip_excs=None,
              before=None, teardown=None, problems=None, tails=None,
              cleanup=None):
    """Parse -k/-v/--keep, run the selected tests and print one PASS, FAIL
    or SKIP line each and a summary; returns the exit status.

    tests: (name, fn) or (name, fn, root_only); fn(case) may return a note.
    make_case(name, binpath) builds the case (default Case); before(sel)
    may return an exit status to stop early; teardown(case) runs before
    case.finish(), also after an interruption; problems(case) may return a
    Fail found after the test; tails(case) replaces case.log_tails() in
    FAIL reports; cleanup() runs once at the end."""
    ap = argparse.ArgumentParser(prog=prog, description=doc)
    ap.add_argument("-k", action="append", default=[],
                    help="run only tests whose name contains this "
                    "(repeatable)")
    ap.add_argument("-v", action="store_true", help="tracebacks")
    ap.add_argument("--keep", action="store_true",
                    help="keep every temp dir (default: only failed ones)")
    args = ap.parse_args()
    binpath = os.environ.get("EVPOP3D_BIN") or os.path.abspath("src/evpop3d")
    if not os.access(binpath, os.X_OK):
        print("%s: %s is not an executable (set EVPOP3D_BIN)"
              % (prog, binpath))
        return 2
    binpath = os.path.abspath(binpath)
    sel = [t for t in tests if not args.k or any(k in t[0] for k in args.k)]
    if not sel:
        print("%s: no test matches %s" % (prog, args.k))
        return 2
    if SAN:
        # Quarantined frees would count as resident memory in the memory
        # tests; keep the quarantine small.
        os.environ["ASAN_OPTIONS"] = (os.environ.get("ASAN_OPTIONS", "")
                                      + ":quarantine_size_mb=8").lstrip(":")
    if before is not None:
        rc = before(sel)
        if rc is not None:
            return rc
    make_case = make_case or Case
    skip_excs = skip_excs or (Skip,)
    passed = failed = skipped = 0
    t_all = time.monotonic()
    c = None
    try:
        for t in sel:
            name, fn = t[0], t[1]
            if len(t) > 2 and t[2] and not ROOT:
                print("SKIP %s: needs root" % name, flush=True)
                skipped += 1
                continue
            c = make_case(name, binpath)
            err = skip = note = None
            t0 = time.monotonic()
            try:
                note = fn(c)
            except skip_excs as e:
                skip = str(e)
            except Fail as e:
                err = str(e)
                if args.v:
                    traceback.print_exc()
            except Exception as e:
                err = "%s: %s" % (type(e).__name__, e)
                if args.v:
                    traceback.print_exc()
            note = note or getattr(c, "note", None)
            crashed = c.crashes() if err is not None else ""
            if crashed:
                err = "%s [%s]" % (err, crashed)
            if teardown is not None:
                teardown(c)
            problem = c.finish()
            if problems is not None:
                problem = problem or problems(c)
            if err is None and problem is not None and skip is None:
                err = str(problem)
            el = time.monotonic() - t0
            if err is None and skip is not None:
                skipped += 1
                print("SKIP %s: %s" % (name, skip), flush=True)
                if not args.keep:
                    c.remove()
            elif err is None:
                passed += 1
                print("PASS %s (%.1fs)%s" % (name, el, " " + str(note)
                                              if note else ""), flush=True)
                if not args.keep:
                    c.remove()
            else:
                failed += 1
                print("FAIL %s: %s" % (name, err), flush=True)
                print(tails(c) if tails else c.log_tails(), flush=True)
                print("  (temp dir kept: %s)" % c.dir, flush=True)
            c = None
    finally:
        if c is not None:       # interrupted: leave no process behind
            if teardown is not None:
                teardown(c)
            for d in c.daemons:
                if not d.stopped:
                    d.kill()
        if cleanup is not None:
            cleanup()
    print("%d passed, %d failed%s (%.1fs)" % (
        passed, failed, ", %d skipped" % skipped if skipped else "",
        time.monotonic() - t_all), flush=True)
    return 1 if failed else 0


def main():
    return run_suite(TESTS, "run.py", __doc__)


if __name__ == "__main__":
    sys.exit(main())
