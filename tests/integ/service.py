#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
#
# evpop3d integration tests for running the daemon as a service: inetd
# mode (-i) over pipes, files, socat and systemd-socket-activate --inetd;
# systemd socket activation (LISTEN_FDS, the "pop3s" name); daemon mode
# with pid_file and syslog; the connection and login limits
# (max_connections, max_connections_per_ip, login_timeout, auth_fail_max,
# the growing failure delay and login_trusted_networks); SIGHUP reloads
# under live sessions; -t on broken configurations; the shipped systemd
# units (systemd-analyze verify), the fail2ban filter (fail2ban-regex) and
# contrib/dovecot-passwd-import.
#
#   EVPOP3D_BIN=/abs/path/src/evpop3d python3 tests/integ/service.py [-k NAME]
#
# Conventions are those of tests/integ/run.py, whose helpers this script
# imports: "PASS name", "FAIL name: why" (with the daemon's log tail) or
# "SKIP name: why"; exit status 1 if any test failed; as root the daemon
# runs as nobody/nogroup; EVPOP3D_SAN=1 gives longer timeouts and checks
# every daemon's output for sanitizer reports.  Tools that are missing
# (socat, fail2ban-regex) are installed with apt-get when we are root;
# when that is impossible, or systemd-socket-activate / systemd-analyze
# are missing, the tests needing them are skipped.

import argparse
import os
import pwd
import re
import select
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import run as base  # noqa: E402  (tests/integ/run.py)
from run import (Fail, Closed, Skip, check, eq, short, wire, three,  # noqa
                 base_of, free_port, wait_port, listening, proc_status,
                 descendants, HOST, SLOW, START_TIMEOUT, ROOT, SAN,
                 SAN_PATTERNS)

TOP = os.path.dirname(os.path.dirname(HERE))


def san_bad(text):
    """The first sanitizer report line in text, or None."""
    for ln in text.splitlines():
        if any(p in ln for p in SAN_PATTERNS):
            return ln
    return None


def log_count(d, *needles):
    return sum(1 for ln in d.logtext().splitlines()
               if all(n in ln for n in needles))


def wait_log_count(d, n, *needles, timeout=3.0):
    """Wait until at least n log lines contain every needle."""
    deadline = time.monotonic() + timeout * SLOW
    while log_count(d, *needles) < n:
        if time.monotonic() > deadline:
            raise Fail("want %d log lines with %s, have %d" % (
                n, " and ".join(repr(x) for x in needles),
                log_count(d, *needles)))
        time.sleep(0.03)


def tool(name, package):
    """Path of a command, installed with apt-get when missing (as root);
    Skip when impossible."""
    path = shutil.which(name)
    if path:
        return path
    if not ROOT:
        raise Skip("%s is not installed (and we are not root)" % name)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "install", "-y", "-q", package],
                ["apt-get", "update", "-q"],
                ["apt-get", "install", "-y", "-q", package]):
        try:
            subprocess.run(cmd, capture_output=True, env=env, timeout=300)
        except (OSError, subprocess.TimeoutExpired):
            break
        if shutil.which(name):
            return shutil.which(name)
    raise Skip("%s is not installed and apt-get could not install it"
               % name)


def check_privs(pid, what):
    """As root: every thread of pid and its children runs as the
    configured user and group, with no supplementary groups."""
    if not ROOT:
        return
    uid, gid, _ = base.run_ids()
    for p in descendants(pid):
        try:
            tasks = os.listdir("/proc/%d/task" % p)
        except OSError:
            continue
        for t in tasks:
            st = proc_status(int(t))
            if not st:
                continue
            eq(st.get("Uid", "").split(), [str(uid)] * 4,
               "%s: Uid of pid %d task %s" % (what, p, t))
            eq(st.get("Gid", "").split(), [str(gid)] * 4,
               "%s: Gid of pid %d task %s" % (what, p, t))
            eq(st.get("Groups", "").split(), [],
               "%s: supplementary groups of pid %d task %s" % (what, p, t))


def greeting_pid(greeting):
    m = re.search(r"<(\d+)\.", greeting)
    check(m is not None, "no <PID.…> in greeting %s" % short(greeting))
    return int(m.group(1))


def make_cert(c):
    """(cert, key) of a fresh self-signed EC pair in the case dir."""
    crt = os.path.join(c.dir, "server.crt")
    key = os.path.join(c.dir, "server.key")
    if not os.path.exists(crt):
        r = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec",
                            "-pkeyopt", "ec_paramgen_curve:prime256v1",
                            "-nodes", "-subj", "/CN=localhost", "-days", "2",
                            "-keyout", key, "-out", crt],
                           capture_output=True, timeout=60)
        check(r.returncode == 0, "openssl req failed: %s" % short(r.stderr))
        os.chmod(key, 0o600)
        c.fix_owner()
    return crt, key


def client_ctx():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


# ---------------------------------------------------------------------------
# Clients.

class SConn(base.Conn):
    """run.py's raw client, plus a source address and implicit TLS."""

    def __init__(self, port, src=None, tls=False, timeout=None,
                 greeting=True):
        self.timeout = timeout or 5.0 * SLOW
        self.s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.s.settimeout(self.timeout)
        if src:
            self.s.bind((src, 0))
        self.s.connect((HOST, port))
        if tls:
            try:
                self.s = client_ctx().wrap_socket(
                    self.s, server_hostname="localhost")
            except (ssl.SSLError, OSError) as e:
                raise Fail("TLS handshake on port %d failed: %s" % (port, e))
        self.buf = bytearray()
        self.greeting = self.line() if greeting else None
        if greeting:
            check(self.greeting.startswith("+OK"),
                  "greeting %s" % short(self.greeting))

    def _fill(self, n=65536):
        try:
            super()._fill(n)
        except ssl.SSLError as e:
            raise Closed("TLS error while reading: %s" % e)

    def expect_closed(self, timeout=None):
        try:
            return super().expect_closed(timeout)
        except ssl.SSLError:
            got = bytes(self.buf)
            self.buf.clear()
            return got, 0.0

    def capa(self):
        return self.multi("CAPA").decode("latin-1").split("\r\n")[:-1]

    def timed(self, c):
        """Send c; (reply, seconds until it came)."""
        t0 = time.monotonic()
        r = self.cmd(c)
        return r, time.monotonic() - t0


class PipeConn(base.Conn):
    """The raw client over a child's stdin/stdout pipes (inetd mode)."""

    def __init__(self, proc, timeout=None):
        self.proc = proc
        self.fd = proc.stdout.fileno()
        self.timeout = timeout or 5.0 * SLOW
        self.buf = bytearray()
        self.greeting = self.line()
        check(self.greeting.startswith("+OK"), "greeting %s"
              % short(self.greeting))

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def _read(self, n, timeout):
        r, _, _ = select.select([self.fd], [], [], timeout)
        if not r:
            return None
        return os.read(self.fd, n)

    def _fill(self, n=65536):
        d = self._read(n, self.timeout)
        if d is None:
            raise Fail("timeout (%.0fs) waiting for the server; have %s"
                       % (self.timeout, short(bytes(self.buf[-200:]))))
        if not d:
            raise Closed("stdout closed by the server; unread %s"
                         % short(bytes(self.buf)))
        self.buf += d

    def expect_closed(self, timeout=None):
        t0 = time.monotonic()
        deadline = t0 + (timeout or self.timeout)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise Fail("stdout still open after %.1fs"
                           % (time.monotonic() - t0))
            d = self._read(65536, left)
            if d is None:
                continue
            if not d:
                got = bytes(self.buf)
                self.buf.clear()
                return got, time.monotonic() - t0
            self.buf += d

    def close(self):
        try:
            self.proc.stdin.close()
        except OSError:
            pass


# ---------------------------------------------------------------------------
# Daemons started through another program (systemd-socket-activate, socat,
# unshare), with run.py's log and stop handling.

class ActDaemon(base.Daemon):
    def __init__(self, case, argv, port, log, env=None, any_rc=False):
        self.case, self.conf, self.port, self.log = case, None, port, log
        self.any_rc = any_rc
        lf = open(log, "ab")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     stdout=lf, stderr=subprocess.STDOUT,
                                     cwd=case.dir, start_new_session=True,
                                     env=env)
        lf.close()
        self.stopped = False
        self.rc = None
        case.daemons.append(self)

    def stop(self, sig=signal.SIGTERM, timeout=None):
        if self.stopped:
            return 0 if self.any_rc else self.rc
        try:
            rc = super().stop(sig, timeout)
        finally:
            try:        # children of socat / an --inetd parent
                os.killpg(self.proc.pid, signal.SIGKILL)
            except OSError:
                pass
        return 0 if self.any_rc else rc


def conf_lines(c, port=None, extra=()):
    """run.py's configuration lines (the -F daemons' defaults); a key in
    extra replaces the default line of that key."""
    lines = ["# generated by tests/integ/service.py"]
    if port:
        lines.append("listen %s:%d" % (HOST, port))
    lines += ["passwd_file %s" % c.passwd,
              "mail_location %s/%%u/Maildir" % c.root,
              "allow_plaintext yes",
              "auth_fail_delay_ms 50"]
    if ROOT:
        _, _, gname = base.run_ids()
        lines += ["user %s" % base.RUN_USER, "group %s" % gname]
    keys = {e.split()[0] for e in extra if e.strip()} - {"listen"}
    lines = [ln for ln in lines if ln.split()[0] not in keys]
    return lines + list(extra)


def start(c, extra=()):
    """A -F daemon (run.py's Daemon) with conf_lines(extra)."""
    port = free_port()
    conf = new_conf(c, conf_lines(c, port, extra))
    d = base.Daemon(c, conf, port, new_log(c, "evpop3d"))
    c.daemons.append(d)
    return d.wait_ready()


def alive(cn):
    """The session still answers (CAPA is valid in every state)."""
    check(cn.multi("CAPA"), "empty CAPA")


def put_conf(c, path, lines):
    """Write a configuration file in place (what SIGHUP re-reads)."""
    tmp = path + ".new"
    with open(tmp, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.rename(tmp, path)
    c.fix_owner()
    return path


def new_conf(c, lines):
    c.nconf += 1
    return put_conf(c, os.path.join(c.dir, "evpop3d-%d.conf" % c.nconf),
                    lines)


def new_log(c, what):
    c.nconf += 1
    return os.path.join(c.dir, "%s-%d.log" % (what, c.nconf))


def wait_gone(pid, timeout):
    """Wait until pid has exited (or is a zombie nobody reaps)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = proc_status(pid)
        if not st or st.get("State", "").startswith("Z"):
            return True
        time.sleep(0.05)
    return False


def syslog_wrap(c):
    """(argv prefix, socket) that runs a command in a private mount
    namespace whose /dev/log is a datagram socket we read, or None when
    this is not possible (not root, no unshare)."""
    if not ROOT or shutil.which("unshare") is None:
        return None
    path = os.path.join(c.dir, "syslog.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    os.chmod(path, 0o666)
    script = ("mount -t tmpfs -o mode=755 evpop3d-dev /dev && "
              "mknod -m 666 /dev/null c 1 3 && "
              "mknod -m 666 /dev/urandom c 1 9 && "
              "mknod -m 666 /dev/random c 1 8 && "
              "ln -s %s /dev/log && exec \"$@\"" % path)
    argv = ["unshare", "-m", "--propagation", "private", "sh", "-c", script,
            "sh"]
    r = subprocess.run(argv + ["true"], capture_output=True, timeout=10)
    if r.returncode != 0:
        s.close()
        return None
    return argv, s


def syslog_read(s, until=None, timeout=3.0):
    """Datagrams received on our /dev/log: [(priority, text)], reading
    until one contains until (or timeout)."""
    out = []
    deadline = time.monotonic() + timeout * SLOW
    while True:
        left = deadline - time.monotonic()
        if until is None:
            left = min(left, 0.2)
        if left <= 0:
            break
        s.settimeout(left)
        try:
            d = s.recv(65536).decode("utf-8", "replace")
        except socket.timeout:
            if until is None:
                break
            continue
        m = re.match(r"<(\d+)>(.*)", d, re.S)
        out.append((int(m.group(1)), m.group(2)) if m else (-1, d))
        if until is not None and until in d:
            break
    return out


# ---------------------------------------------------------------------------
# Tests.

TESTS = []


def test(root_only=False):
    def deco(fn):
        TESTS.append((fn.__name__[2:], fn, root_only))
        return fn
    return deco


def full_session(cn, c, user, pw, msgs, dele=1):
    """Log in, check STAT/LIST/UIDL, RETR every message (octets as on
    the wire), DELE one and QUIT; returns the QUIT reply."""
    r = cn.login(user, pw)
    check(r.startswith("+OK Logged in, %d messages" % len(msgs)),
          "login reply %s" % short(r))
    want = sum(len(wire(m[2])) for m in msgs)
    eq(cn.stat(), (len(msgs), want), "STAT")
    uidl = cn.listing("UIDL")
    lst = cn.listing("LIST")
    byname = {base_of(m): m for m in msgs}
    eq(sorted(uidl.values()), sorted(byname), "UIDL names")
    for n, u in uidl.items():
        data = byname[u][2]
        eq(int(lst[n]), len(wire(data)), "LIST %d" % n)
        eq(cn.multi("RETR %d" % n), wire(data), "RETR %d" % n)
    gone = None
    if dele:
        gone = uidl[dele]
        cn.ok("DELE %d" % dele)
    r = cn.ok("QUIT")
    return r, gone


def start_inetd(c, conf, extra_args=(), wrap=None, stderr=subprocess.PIPE):
    argv = list(wrap or []) + [c.bin, "-c", conf, "-i"] + list(extra_args)
    env = dict(os.environ)
    if SAN:
        env["ASAN_OPTIONS"] = (env.get("ASAN_OPTIONS", "")
                               + ":detect_leaks=1").lstrip(":")
    return subprocess.Popen(argv, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=stderr,
                            cwd=c.dir, bufsize=0, env=env)


def finish_inetd(p, what):
    """Wait for an inetd-mode child; (exit status, stderr text)."""
    try:
        rc = p.wait(5 * SLOW)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        raise Fail("%s: still running %.0fs after the session ended"
                   % (what, 5 * SLOW))
    err = p.stderr.read().decode("utf-8", "replace") if p.stderr else ""
    bad = san_bad(err)
    check(bad is None, "%s: sanitizer report: %s" % (what, bad))
    return rc, err


@test()
def t_inetd_pipe(c):
    """-i over pipes: a whole session; logs on stderr only with -F, and
    otherwise in syslog (facility mail)."""
    msgs = three("ip")
    c.add_user("ida", "ida-pw", msgs=msgs)
    conf = new_conf(c, conf_lines(c, free_port()))
    # With -F: the log (one end line, peer "local") comes on stderr.
    p = start_inetd(c, conf, ["-F"])
    cn = PipeConn(p)
    try:
        check_privs(p.pid, "inetd mode over pipes")
        r, gone = full_session(cn, c, "ida", "ida-pw", msgs, dele=2)
        check(r.startswith("+OK"), "QUIT %s" % r)
        got, _ = cn.expect_closed()
        eq(got, b"", "octets after the QUIT reply")
    finally:
        cn.close()
    rc, err = finish_inetd(p, "evpop3d -i -F")
    eq(rc, 0, "exit status of evpop3d -i -F (stderr %s)" % short(err, 600))
    check(gone not in c.disk("ida"), "DELE 2 + QUIT: %s still on disk"
          % gone)
    eq(len(c.disk("ida")), 2, "messages left after DELE+QUIT")
    ends = [ln for ln in err.splitlines() if "event=end" in ln]
    eq(len(ends), 1, "session end lines on stderr (%s)" % short(err, 600))
    check("peer=local" in ends[0] and "user=ida" in ends[0]
          and "deleted=1/" in ends[0], "end line %s" % ends[0])
    check("listening" not in err, "inetd mode opened a listener: %s"
          % short(err, 600))

    # Without -F: nothing at all on stderr; the log goes to syslog.
    wrap = syslog_wrap(c)
    p = start_inetd(c, conf, (), wrap=wrap[0] if wrap else None)
    cn = PipeConn(p)
    try:
        cn.login("ida", "ida-pw")
        eq(cn.stat()[0], 2, "STAT in the second session")
        cn.ok("QUIT")
        cn.expect_closed()
    finally:
        cn.close()
    rc, err = finish_inetd(p, "evpop3d -i")
    eq(rc, 0, "exit status of evpop3d -i (stderr %s)" % short(err, 600))
    eq(err, "", "stderr of evpop3d -i without -F")
    if wrap is None:
        return "syslog not checked (needs root and unshare)"
    got = syslog_read(wrap[1], until="event=end")
    wrap[1].close()
    ends = [(pri, t) for pri, t in got if "event=end" in t]
    check(ends, "no event=end line in syslog; got %s" % short(got, 400))
    pri, text = ends[0]
    eq(pri >> 3, 2, "syslog facility of %s (2 = mail)" % short(text))
    eq(pri & 7, 6, "syslog severity of the end line (6 = info)")
    check(re.search(r"evpop3d\[\d+\]: session=", text),
          "syslog line %s" % short(text))


@test()
def t_inetd_sigterm(c):
    """SIGTERM to an inetd-mode session: -ERR [SYS/TEMP], nothing removed,
    exit 0."""
    c.add_user("ines", "ines-pw", msgs=three("ik"))
    conf = new_conf(c, conf_lines(c, free_port()))
    p = start_inetd(c, conf, ["-F"])
    cn = PipeConn(p)
    try:
        cn.login("ines", "ines-pw")
        cn.ok("DELE 1")
        p.send_signal(signal.SIGTERM)
        got, _ = cn.expect_closed()
        check(got.startswith(b"-ERR [SYS/TEMP]"), "at SIGTERM: %s"
              % short(got))
    finally:
        cn.close()
    rc, err = finish_inetd(p, "evpop3d -i -F")
    eq(rc, 0, "exit status at SIGTERM (stderr %s)" % short(err, 400))
    eq(len(c.disk("ines")), 3, "messages after SIGTERM with one marked")
    check("reason=shutdown" in err, "end line: %s" % short(err, 400))


@test()
def t_inetd_files(c):
    """-i with regular files on stdin and stdout: all commands read,
    every reply written, exit 0."""
    msgs = three("if")
    c.add_user("ivo", "ivo-pw", msgs=msgs)
    conf = new_conf(c, conf_lines(c, free_port()))
    cmds = os.path.join(c.dir, "commands")
    out = os.path.join(c.dir, "replies")
    with open(cmds, "wb") as f:
        f.write(b"USER ivo\r\nPASS ivo-pw\r\nSTAT\r\nRETR 1\r\nDELE 3\r\n"
                b"QUIT\r\n")
    with open(cmds, "rb") as fin, open(out, "wb") as fout:
        r = subprocess.run([c.bin, "-c", conf, "-i"], stdin=fin,
                           stdout=fout, stderr=subprocess.PIPE,
                           cwd=c.dir, timeout=10 * SLOW)
    err = r.stderr.decode("utf-8", "replace")
    eq(r.returncode, 0, "exit status (stderr %s)" % short(err, 400))
    eq(err, "", "stderr without -F")
    with open(out, "rb") as f:
        data = f.read()
    check(data.startswith(b"+OK "), "replies %s" % short(data))
    lines = data.split(b"\r\n")
    check(lines[1] == b"+OK" and lines[2].startswith(b"+OK Logged in, 3 "),
          "login replies %s" % short(data))
    i = data.find(b" octets\r\n")
    j = data.find(b"\r\n.\r\n", i)
    check(i > 0 and j > i, "no RETR reply in %s" % short(data))
    check(base.destuff(data[i + 9:j + 2]) in [wire(m[2]) for m in msgs],
          "RETR 1 is none of the messages: %s" % short(data[i:j]))
    check(re.search(rb"\r\n\+OK [^\r\n]*\r\n$", data) and
          lines[-3].startswith(b"+OK"), "DELE/QUIT replies at the end: %s"
          % short(data[-120:]))
    eq(len(c.disk("ivo")), 2, "messages left after DELE 3 + QUIT")


@test()
def t_inetd_socat(c):
    """-i behind socat (a new process per connection): two sessions,
    the lock between them, DELE+QUIT."""
    socat = tool("socat", "socat")
    msgs = three("is")
    c.add_user("sol", "sol-pw", msgs=msgs)
    c.add_user("sam", "sam-pw", msgs=three("it"))
    port = free_port()
    conf = new_conf(c, conf_lines(c, free_port()))
    d = ActDaemon(c, [socat, "TCP-LISTEN:%d,bind=%s,reuseaddr,fork"
                      % (port, HOST), "EXEC:%s -c %s -i" % (c.bin, conf)],
                  port, new_log(c, "socat"), any_rc=True)
    d.wait_ready()
    a = SConn(port)
    b = SConn(port)
    pa, pb = greeting_pid(a.greeting), greeting_pid(b.greeting)
    check(pa != pb, "two connections, one process %d" % pa)
    check_privs(pa, "inetd session under socat")
    a.login("sol", "sol-pw")
    b.ok("USER sol")
    b.err("PASS sol-pw", "IN-USE")
    b.login("sam", "sam-pw")
    eq(b.stat()[0], 3, "STAT of sam")
    b.quit()
    uidl = a.listing("UIDL")
    eq(a.multi("RETR 2"), wire({base_of(m): m for m in msgs}[uidl[2]][2]),
       "RETR 2 through socat")
    a.ok("DELE 2")
    a.quit()
    check(uidl[2] not in c.disk("sol"), "DELE+QUIT through socat left %s"
          % uidl[2])
    a = SConn(port)
    a.login("sol", "sol-pw")
    eq(a.stat()[0], 2, "STAT after DELE+QUIT")
    a.quit()
    for p in (pa, pb):
        check(wait_gone(p, 5 * SLOW), "inetd process %d still running "
              "after its session" % p)


def socket_activate(c, listens, names, conf_extra=(), inetd=False):
    """systemd-socket-activate over listens (ports); returns the daemon."""
    sa = shutil.which("systemd-socket-activate")
    if sa is None:
        raise Skip("systemd-socket-activate is not installed")
    conf_port = free_port()
    conf = new_conf(c, conf_lines(c, conf_port, conf_extra))
    argv = [sa]
    for p in listens:
        argv += ["-l", "%s:%d" % (HOST, p)]
    if inetd:
        argv += ["--inetd", "-a", c.bin, "-c", conf, "-i", "-F"]
    else:
        if names:
            argv.append("--fdname=" + ":".join(names))
        argv += [c.bin, "-c", conf, "-F"]
    d = ActDaemon(c, argv, listens[0], new_log(c, "activate"),
                  any_rc=inetd)
    d.conf = conf
    d.conf_port = conf_port
    d.wait_ready()
    for p in listens[1:]:
        check(wait_port(p, START_TIMEOUT, d.proc), "port %d not bound" % p)
    return d


@test()
def t_socket_activation(c):
    """LISTEN_FDS with one socket named pop3: served instead of the listen
    line; the daemon is the activated process and has dropped root."""
    msgs = three("sa")
    c.add_user("sue", "sue-pw", msgs=msgs)
    port = free_port()
    d = socket_activate(c, [port], ["pop3"])
    a = SConn(port)
    check(greeting_pid(a.greeting) in base.descendants(d.pid),
          "pid in the greeting %d: not the activated process or one of its "
          "workers %s" % (greeting_pid(a.greeting), base.descendants(d.pid)))
    r, gone = full_session(a, c, "sue", "sue-pw", msgs, dele=1)
    a.expect_closed()
    check(gone not in c.disk("sue"), "DELE+QUIT left %s" % gone)
    b = SConn(port)
    b.login("sue", "sue-pw")
    check_privs(d.pid, "socket-activated daemon")
    b.quit()
    # SIGHUP re-reads the configuration and keeps serving the socket
    put_conf(c, d.conf, conf_lines(c, d.conf_port, ["auth_fail_delay_ms 0"]))
    d.send_signal(signal.SIGHUP)
    d.log_lines("reload: configuration")
    check("listen/listen_tls changes" not in d.logtext(),
          "reload with the same listen line asked for a restart")
    b = SConn(port)
    b.ok("USER sue")
    r, t = b.timed("PASS wrong")
    check(r.startswith("-ERR [AUTH]") and t < 0.04 * SLOW + 0.03,
          "after SIGHUP with auth_fail_delay_ms 0: %s in %.3fs" % (r, t))
    b.login("sue", "sue-pw")
    b.quit()
    check(d.logtext().count("(socket activation)") == 1,
          "log should say it listens by socket activation")
    eq(listening(d.conf_port), False, "the config's listen port %d"
       % d.conf_port)
    eq(d.stop(), 0, "exit status at SIGTERM")


@test()
def t_socket_activation_tls(c):
    """Two sockets named pop3:pop3s: STLS on the first, implicit TLS on
    the second; pop3s without tls_cert refuses to start."""
    crt, key = make_cert(c)
    msgs = three("st")
    c.add_user("tia", "tia-pw", msgs=msgs)
    p1, p2 = free_port(), free_port()
    d = socket_activate(c, [p1, p2], ["pop3", "pop3s"],
                        ["tls_cert %s" % crt, "tls_key %s" % key])
    a = SConn(p1)
    check("STLS" in a.capa(), "CAPA on the pop3 socket lacks STLS")
    b = SConn(p2, tls=True)
    check(isinstance(b.s, ssl.SSLSocket) and b.s.version() in
          ("TLSv1.2", "TLSv1.3"), "pop3s socket: %s" % b.s.version())
    check("STLS" not in b.capa(), "CAPA over TLS offers STLS")
    r, gone = full_session(b, c, "tia", "tia-pw", msgs, dele=3)
    b.expect_closed()
    check(gone not in c.disk("tia"), "DELE+QUIT over pop3s left %s" % gone)
    a.login("tia", "tia-pw")
    eq(a.stat()[0], 2, "STAT on the pop3 socket")
    a.quit()
    ln = d.log_lines("event=end", "tls=TLS")
    check("user=tia" in ln, "TLS end line %s" % ln)
    check_privs(d.pid, "socket-activated daemon with TLS")
    d.stop()

    # "pop3s" without a certificate: refuse, and say why.
    p3 = free_port()
    e = socket_activate(c, [p3], ["pop3s"])
    try:
        s = socket.create_connection((HOST, p3), 5 * SLOW)
        s.settimeout(5 * SLOW)
        try:
            data = s.recv(100)
        except OSError:
            data = b""
        s.close()
    except OSError:
        data = b""
    check(not data.startswith(b"+OK"), "pop3s without tls_cert served "
          "plain text: %s" % short(data))
    try:
        rc = e.proc.wait(5 * SLOW)
    except subprocess.TimeoutExpired:
        raise Fail("pop3s socket without tls_cert: daemon still running")
    e.stopped = True
    check(rc != 0, "pop3s socket without tls_cert: exit status 0")
    check("pop3s" in e.logtext() and "tls_cert" in e.logtext(),
          "refusal should name pop3s and tls_cert: %s"
          % short(e.logtext()[-400:]))


@test()
def t_socket_activation_inetd(c):
    """systemd-socket-activate --inetd -a (Accept=yes): one evpop3d -i per
    connection, on the socket itself (peer address known)."""
    msgs = three("sx")
    c.add_user("xia", "xia-pw", msgs=msgs)
    port = free_port()
    d = socket_activate(c, [port], None, inetd=True)
    a = SConn(port)
    pa = greeting_pid(a.greeting)
    check(pa != d.pid, "the session ran in the systemd-socket-activate "
          "process")
    check_privs(pa, "Accept=yes session")
    r, gone = full_session(a, c, "xia", "xia-pw", msgs, dele=2)
    a.expect_closed()
    check(gone not in c.disk("xia"), "DELE+QUIT left %s" % gone)
    check(wait_gone(pa, 5 * SLOW), "inetd process %d still running" % pa)
    b = SConn(port)
    check(greeting_pid(b.greeting) != pa, "second connection, same pid")
    b.login("xia", "xia-pw")
    eq(b.stat()[0], 2, "STAT in the second session")
    b.quit()
    ln = d.log_lines("event=end", "user=xia", "deleted=1/")
    check("peer=127.0.0.1:" in ln, "inetd mode on a socket should log "
          "the peer address: %s" % ln)


@test()
def t_max_connections(c):
    c.add_user("max", "max-pw", msgs=three("mc"))
    d = start(c, extra=["max_connections 3"])
    live = [SConn(d.port) for _ in range(3)]
    x = SConn(d.port, greeting=False)
    got, _ = x.expect_closed()
    check(re.fullmatch(rb"-ERR \[SYS/TEMP\] [^\r\n]*\r\n", got),
          "4th connection got %s, want one -ERR [SYS/TEMP] line" % short(got))
    for cn in live:
        alive(cn)
    live[0].login("max", "max-pw")
    live.pop(1).quit()
    deadline = time.monotonic() + 3 * SLOW
    while True:
        y = SConn(d.port, greeting=False)
        first = y.rawline()
        if first.startswith(b"+OK") or time.monotonic() > deadline:
            break
        y.close()
        time.sleep(0.05)
    check(first.startswith(b"+OK"), "after one closed, a new connection "
          "got %s" % short(first))
    alive(y)
    eq(live[0].stat()[0], 3, "STAT in a live session")
    live[0].quit()
    d.log_lines("max_connections 3 reached")


@test()
def t_max_connections_per_ip(c):
    c.add_user("pip", "pip-pw")
    d = start(c, extra=["max_connections_per_ip 2"])
    a, b = SConn(d.port), SConn(d.port)
    x = SConn(d.port, greeting=False)
    got, _ = x.expect_closed()
    check(re.fullmatch(rb"-ERR \[SYS/TEMP\] [^\r\n]*\r\n", got),
          "3rd connection from 127.0.0.1 got %s" % short(got))
    try:
        o = SConn(d.port, src="127.0.0.2")
    except OSError as e:
        raise Fail("cannot connect from 127.0.0.2: %s" % e)
    alive(o)            # another address has its own count
    alive(a)
    b.quit()
    deadline = time.monotonic() + 3 * SLOW
    while True:
        y = SConn(d.port, greeting=False)
        first = y.rawline()
        if first.startswith(b"+OK") or time.monotonic() > deadline:
            break
        y.close()
        time.sleep(0.05)
    check(first.startswith(b"+OK"), "after one closed, a new connection "
          "from 127.0.0.1 got %s" % short(first))


@test()
def t_login_timeout(c):
    """login_timeout 2: silent and USER-only connections are closed with
    the reply after about 2 s; a logged-in one is not."""
    c.add_user("lou", "lou-pw", msgs=three("lt"))
    d = start(c, extra=["login_timeout 2"])
    t0 = time.monotonic()
    silent = SConn(d.port)
    user_only = SConn(d.port)
    user_only.ok("USER lou")
    inside = SConn(d.port)
    inside.login("lou", "lou-pw")
    for cn, what in ((silent, "silent"), (user_only, "USER only")):
        got, _ = cn.expect_closed(timeout=6 * SLOW)
        el = time.monotonic() - t0
        eq(got, b"-ERR Login timeout, closing.\r\n", "%s connection "
           "before close" % what)
        check(1.8 <= el <= 4.0 * SLOW, "%s connection closed after %.2fs, "
              "want 2-4s" % (what, el))
    inside.ok("NOOP")
    eq(inside.stat()[0], 3, "STAT of the logged-in session after 2 s")
    inside.quit()
    wait_log_count(d, 2, "event=end", "reason=login-timeout")


@test()
def t_auth_fail_max(c):
    c.add_user("amy", "amy-pw", msgs=three("af"))
    d = start(c, extra=["auth_fail_max 2"])
    a = SConn(d.port)
    a.ok("USER amy")
    a.err("PASS wrong1", "AUTH")
    a.ok("USER nobody-here")
    r = a.err("PASS wrong2", "AUTH")
    check("Authentication failed" in r, "2nd failure reply %s" % r)
    got, _ = a.expect_closed()
    eq(got, b"-ERR [AUTH] Too many failed authentications, closing.\r\n",
       "after the 2nd failure")
    d.log_lines("event=end", "reason=auth-failures")
    # a session with one failure and then success is fine
    b = SConn(d.port)
    b.ok("USER amy")
    b.err("PASS wrong", "AUTH")
    b.login("amy", "amy-pw")
    b.quit()
    # the default is 3
    e = start(c)
    f = SConn(e.port)
    for i in range(3):
        f.ok("USER amy")
        f.err("PASS bad%d" % i, "AUTH")
    got, _ = f.expect_closed()
    eq(got, b"-ERR [AUTH] Too many failed authentications, closing.\r\n",
       "default auth_fail_max: after the 3rd failure")


def fail_times(port, n, src=None, user="dan"):
    """Seconds each of n failed PASS took (one session, new sessions as
    auth_fail_max requires)."""
    out = []
    cn = None
    for i in range(n):
        if cn is None:
            cn = SConn(port, src=src, timeout=20 * SLOW)
        cn.ok("USER " + user)
        r, t = cn.timed("PASS wrong-%d" % i)
        check(r.startswith("-ERR [AUTH]"), "failed PASS: %s" % r)
        out.append(t)
    cn.close()
    return out


def grows(ts, base_s, what):
    """ts are base, 2*base, 4*base..., each within a tolerance."""
    for i, t in enumerate(ts):
        want = base_s * (2 ** i)
        check(want * 0.95 <= t <= want + 0.25 * SLOW + want * 0.25,
              "%s: failure %d took %.3fs, want ~%.3fs (all: %s)"
              % (what, i + 1, t, want, ["%.3f" % x for x in ts]))
        if i:
            check(t > ts[i - 1] * 1.5, "%s: delays do not grow: %s"
                  % (what, ["%.3f" % x for x in ts]))


def flat(ts, base_s, what):
    for i, t in enumerate(ts):
        check(base_s * 0.95 <= t <= base_s + 0.25 * SLOW,
              "%s: failure %d took %.3fs, want ~%.3fs (all: %s)"
              % (what, i + 1, t, base_s, ["%.3f" % x for x in ts]))


@test()
def t_failure_delay(c):
    """Untrusted addresses wait twice as long per recent failure (across
    sessions); a success forgets; trusted addresses do not grow."""
    c.add_user("dan", "dan-pw", msgs=three("fd"))
    d = start(c, extra=["auth_fail_delay_ms 200", "auth_fail_max 2",
                       "login_trusted_networks none"])
    ts = fail_times(d.port, 2)          # one session: 0.2, 0.4
    ts += fail_times(d.port, 1)         # a new session: 0.8
    grows(ts, 0.2, "login_trusted_networks none")
    a = SConn(d.port, timeout=20 * SLOW)
    a.login("dan", "dan-pw")            # success from 127.0.0.1 ...
    a.quit()
    flat(fail_times(d.port, 1), 0.2, "first failure after a success")

    e = start(c, extra=["auth_fail_delay_ms 200", "auth_fail_max 5"])
    flat(fail_times(e.port, 3), 0.2, "default (loopback trusted)")


@test()
def t_trusted_networks(c):
    """login_trusted_networks takes several CIDRs: the listed address
    does not grow, another one does."""
    c.add_user("dan", "dan-pw", msgs=three("tn"))
    extra = ["auth_fail_delay_ms 200", "auth_fail_max 5",
             "login_trusted_networks 10.0.0.0/8 127.0.0.2/32"]
    rc, out = run_t(c, new_conf(c, conf_lines(c, free_port(), extra)))
    eq(rc, 0, "-t with two CIDRs in login_trusted_networks (said %s)"
       % short(out.strip()))
    d = start(c, extra=extra)
    flat(fail_times(d.port, 2, src="127.0.0.2"), 0.2, "trusted 127.0.0.2")
    grows(fail_times(d.port, 2, src="127.0.0.1"), 0.2, "untrusted 127.0.0.1")


@test()
def t_log_level_and_capa(c):
    """log_level debug and -d add debug lines (never the password);
    login_delay is announced in CAPA; SIGHUP back to info stops them."""
    c.add_user("lev", "lev-secret-pw", msgs=three("ll"))
    port = free_port()
    conf = new_conf(c, conf_lines(c, port, ["log_level debug",
                                            "login_delay 900"]))
    d = base.Daemon(c, conf, port, new_log(c, "debug"))
    c.daemons.append(d)
    d.wait_ready()
    a = SConn(d.port)
    check("LOGIN-DELAY 900" in a.capa(), "CAPA lacks LOGIN-DELAY 900")
    a.login("lev", "lev-secret-pw")
    a.quit()
    wait_log_count(d, 1, " debug: ")
    check("lev-secret-pw" not in d.logtext(), "password in a debug log")
    put_conf(c, conf, conf_lines(c, port))
    reload(d, 1)
    d.log_lines("reload: configuration")
    n = log_count(d, " debug: ")
    b = SConn(d.port)
    check(not any(ln.startswith("LOGIN-DELAY") for ln in b.capa()),
          "LOGIN-DELAY in CAPA without login_delay")
    b.login("lev", "lev-secret-pw")
    b.quit()
    wait_log_count(d, 2, "event=end", "user=lev")
    eq(log_count(d, " debug: "), n, "debug lines after log_level info")
    d.stop()
    # -d: debug whatever the configuration says
    e = ActDaemon(c, [c.bin, "-c", conf, "-F", "-d"], port,
                  new_log(c, "dash-d"))
    e.wait_ready()
    a = SConn(port)
    a.login("lev", "lev-secret-pw")
    a.quit()
    wait_log_count(e, 1, " debug: ")
    check("lev-secret-pw" not in e.logtext(), "password in the -d log")


def reload(d, n):
    """SIGHUP; wait for the n-th reload line (any outcome) of every worker
    process (each one reloads and logs for itself)."""
    workers = max(1, len(base.descendants(d.pid)) - 1)
    d.send_signal(signal.SIGHUP)
    wait_log_count(d, n * workers, "reload: ")


@test()
def t_sighup_reload(c):
    """SIGHUP re-reads the whole configuration under a live session."""
    msgs = three("hr")
    c.add_user("hal", "hal-pw", msgs=msgs)
    c.add_user("hil", "hil-pw", msgs=three("hs"))
    port = free_port()
    conf = new_conf(c, conf_lines(c, port, ["max_connections 10"]))
    d = base.Daemon(c, conf, port, new_log(c, "reload"))
    c.daemons.append(d)
    d.wait_ready()
    live = SConn(d.port)
    live.login("hal", "hal-pw")
    uidl = live.listing("UIDL")
    byname = {base_of(m): m for m in msgs}

    # 1: a slower failure delay and max_connections 2
    put_conf(c, conf, [ln.replace("auth_fail_delay_ms 50",
                                  "auth_fail_delay_ms 700")
                       for ln in conf_lines(c, port, ["max_connections 2"])])
    reload(d, 1)
    ln = d.log_lines("reload: configuration")
    check(conf in ln, "reload line %s" % ln)
    eq(live.multi("RETR 1"), wire(byname[uidl[1]][2]), "RETR 1 after reload")
    b = SConn(d.port, timeout=10 * SLOW)
    b.ok("USER hil")
    r, t = b.timed("PASS nope")
    check(r.startswith("-ERR [AUTH]"), "PASS nope: %s" % r)
    check(0.65 <= t <= 0.7 + 0.5 * SLOW, "failure after reload took %.2fs, "
          "want ~0.7 (auth_fail_delay_ms 700)" % t)
    x = SConn(d.port, greeting=False)     # live + b = 2
    got, _ = x.expect_closed()
    check(got.startswith(b"-ERR [SYS/TEMP]"), "3rd connection with "
          "max_connections 2 after reload: %s" % short(got))
    b.close()

    # 2: allow_plaintext no
    put_conf(c, conf, [ln.replace("allow_plaintext yes",
                                  "allow_plaintext no")
                       for ln in conf_lines(c, port)])
    reload(d, 2)
    deadline = time.monotonic() + 3 * SLOW
    while True:             # b's slot may take a moment to free
        e = SConn(d.port, greeting=False)
        first = e.rawline()
        if first.startswith(b"+OK") or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    check(first.startswith(b"+OK"), "new connection after max_connections "
          "went back to the default: %s" % short(first))
    e.err("USER hil")
    check("USER" not in e.capa(), "CAPA offers USER with allow_plaintext "
          "no")
    e.close()
    live.ok("DELE 2")
    live.ok("NOOP")

    # 3: a broken file (unknown key) keeps everything in use
    lines = conf_lines(c, port)         # plaintext back on ...
    lines.insert(4, "frobnicate 1")     # ... but broken
    put_conf(c, conf, lines)
    reload(d, 3)
    ln = d.log_lines("reload: %s:5:" % conf)
    check("frobnicate" in ln and "keeping the old configuration" in ln,
          "reload line for the broken file: %s" % ln)
    f = SConn(d.port)
    f.err("USER hil")       # still allow_plaintext no
    f.close()

    # 4: the good file again: plaintext is back
    put_conf(c, conf, conf_lines(c, port))
    reload(d, 4)
    wait_log_count(d, 3, "reload: configuration")
    g = SConn(d.port)
    g.login("hil", "hil-pw")
    g.quit()

    # 5: a broken passwd_file keeps the old users and the old configuration
    good = open(c.passwd).read()
    put_conf(c, conf, [ln.replace("allow_plaintext yes",
                                  "allow_plaintext no")
                       for ln in conf_lines(c, port)])
    with open(c.passwd, "a") as pf:
        pf.write("newbie:{PLAIN}newbie-pw\nthis line is not valid\n")
    c.fix_owner()
    reload(d, 5)
    ln = d.log_lines("reload: ", "keeping the old configuration and "
                     "passwd_file")
    check(c.passwd in ln, "reload line should name the passwd file: %s" % ln)
    g = SConn(d.port)
    g.login("hil", "hil-pw")        # old users, and plaintext still yes
    g.quit()
    g = SConn(d.port)
    g.ok("USER newbie")
    g.err("PASS newbie-pw", "AUTH")  # not from the refused file
    g.close()
    with open(c.passwd, "w") as pf:
        pf.write(good)
    c.fix_owner()

    # 6: listen and user changes need a restart, the rest is taken
    other = free_port()
    lines = conf_lines(c, port, ["listen %s:%d" % (HOST, other)])
    lines = [ln for ln in lines if not ln.startswith(("user ", "group "))]
    lines.append("user daemon")
    put_conf(c, conf, lines)
    reload(d, 6)
    wait_log_count(d, 4, "reload: configuration")
    wait_log_count(d, 1, "reload: listen/listen_tls changes take effect")
    wait_log_count(d, 1, "reload: user/group changes take effect")
    eq(listening(other), False, "port of a listen line added by SIGHUP")
    h = SConn(d.port)
    h.login("hil", "hil-pw")
    h.quit()
    # the session that lived through six reloads still works and QUIT
    # removes what it marked
    eq(live.multi("RETR 3"), wire(byname[uidl[3]][2]), "RETR 3 at the end")
    live.quit()
    check(uidl[2] not in c.disk("hal"), "DELE 2 + QUIT after reloads left "
          "the message")
    eq(len(c.disk("hal")), 2, "messages left")
    check(d.proc.poll() is None, "daemon died")


def run_t(c, conf, as_user=None):
    argv = [c.bin, "-c", conf, "-t"]
    if as_user:
        argv = ["setpriv", "--reuid=" + as_user, "--regid=" +
                str(pwd.getpwnam(as_user).pw_gid), "--clear-groups"] + argv
    env = dict(os.environ)
    if SAN:
        env["ASAN_OPTIONS"] = (env.get("ASAN_OPTIONS", "")
                               + ":detect_leaks=0").lstrip(":")
    r = subprocess.run(argv, capture_output=True, cwd=c.dir, env=env,
                       timeout=10 * SLOW)
    out = (r.stdout + r.stderr).decode(errors="replace")
    bad = san_bad(out)
    check(bad is None, "-t: sanitizer report: %s" % bad)
    return r.returncode, out


@test()
def t_config_check(c):
    """-t: each broken configuration names FILE:LINE and the problem."""
    c.add_user("cid", "cid-pw")
    crt, key = make_cert(c)
    port = free_port()
    good = conf_lines(c, port, [
        "pid_file %s/evpop3d.pid" % c.dir, "login_timeout 30",
        "auth_fail_max 5", "login_trusted_networks 192.0.2.0/24",
        "lock_stale_timeout 60", "login_delay 300", "log_level debug",
        "max_connections 100", "max_connections_per_ip 10",
        "tls_cert %s" % crt, "tls_key %s" % key,
        "listen_tls %s:%d" % (HOST, free_port())])
    path = new_conf(c, good)
    rc, out = run_t(c, path)
    eq(rc, 0, "-t on a good configuration with every new key (%s)"
       % short(out))
    rc, out = run_t(c, new_conf(c, conf_lines(c, port, [
        "login_trusted_networks none"])))
    eq(rc, 0, "-t with login_trusted_networks none (%s)" % short(out))

    def bad(name, lines, lineno, *words, as_user=None, prep=None):
        p = os.path.join(c.dir, "bad-%s.conf" % name)
        put_conf(c, p, lines)
        if prep:
            prep()
        rc, out = run_t(c, p, as_user)
        eq(rc, 1, "-t exit status with %s (said %s)" % (name, short(out)))
        where = "%s:%d:" % (p, lineno) if lineno else "%s:" % p
        check(where in out, "-t with %s should name %s, said %s"
              % (name, where, short(out)))
        for w in words:
            check(w in out, "-t with %s should say %r, said %s"
                  % (name, w, short(out)))

    plain = conf_lines(c, port)
    n = len(plain)
    bad("unknown-key", plain + ["frobnicate yes"], n + 1, "frobnicate",
        "unknown")
    bad("bad-number", plain + ["login_timeout 12x"], n + 1, "login_timeout",
        "12x")
    bad("out-of-range", plain + ["auth_fail_max 0"], n + 1,
        "auth_fail_max", "range")
    bad("out-of-range-big", plain + ["max_connections 99999999"], n + 1,
        "max_connections", "range")
    bad("duplicate", plain + ["login_timeout 5", "login_timeout 6"], n + 2,
        "login_timeout", "twice")
    bad("listen-tls-no-cert", plain + ["listen_tls %s:995" % HOST], n + 1,
        "listen_tls", "tls_cert")
    bad("bad-cidr", plain + ["login_trusted_networks 10.0.0.0/33"], n + 1,
        "login_trusted_networks", "10.0.0.0/33")
    bad("bad-log-level", plain + ["log_level loud"], n + 1, "log_level",
        "loud")
    pline = [i for i, ln in enumerate(plain, 1)
             if ln.startswith("passwd_file ")][0]
    missing = [ln if not ln.startswith("passwd_file ") else
               "passwd_file %s/no-such-passwd" % c.dir for ln in plain]
    bad("missing-passwd", missing, pline, "no-such-passwd")
    bad("missing-key", plain + ["tls_cert %s" % crt,
                                "tls_key %s/no-such.key" % c.dir], n + 2,
        "tls_key", "no-such.key")
    locked = os.path.join(c.dir, "locked.key")
    shutil.copyfile(key, locked)

    def lock_key():
        # as root, -t runs as the run-as user and the key is root's
        if ROOT:
            os.chown(locked, 0, 0)
        os.chmod(locked, 0o600 if ROOT else 0)
    bad("unreadable-key", plain + ["tls_cert %s" % crt,
                                   "tls_key %s" % locked], n + 2,
        "tls_key", "locked.key", as_user=base.RUN_USER if ROOT else None,
        prep=lock_key)


@test()
def t_daemon_mode(c):
    """Without -F: returns at once, writes pid_file, serves, logs to
    syslog (facility mail), SIGTERM stops it."""
    c.add_user("deb", "deb-pw", msgs=three("dm"))
    port = free_port()
    pidf = os.path.join(c.dir, "evpop3d.pid")
    conf = new_conf(c, conf_lines(c, port, ["pid_file %s" % pidf]))
    # -F does not write the pid file
    f = base.Daemon(c, conf, port, new_log(c, "fg"))
    c.daemons.append(f)
    f.wait_ready()
    check(not os.path.exists(pidf), "pid_file written in -F mode")
    eq(f.stop(), 0, "-F exit status")

    wrap = syslog_wrap(c)
    env = dict(os.environ)
    if SAN:
        env["ASAN_OPTIONS"] = (env.get("ASAN_OPTIONS", "") + ":log_path="
                               + os.path.join(c.dir, "asan")).lstrip(":")
    argv = (wrap[0] if wrap else []) + [c.bin, "-c", conf]
    t0 = time.monotonic()
    r = subprocess.run(argv, capture_output=True, cwd=c.dir, env=env,
                       timeout=10 * SLOW)
    el = time.monotonic() - t0
    out = (r.stdout + r.stderr).decode(errors="replace")
    eq(r.returncode, 0, "exit status of the starting command (%s)"
       % short(out))
    check(el < 3 * SLOW, "the starting command took %.1fs" % el)
    eq(out, "", "output of the daemonizing command")
    deadline = time.monotonic() + START_TIMEOUT
    while not (os.path.exists(pidf) and open(pidf).read().endswith("\n")):
        check(time.monotonic() < deadline, "no pid_file %s" % pidf)
        time.sleep(0.05)
    pid = int(open(pidf).read())
    try:
        comm = open("/proc/%d/comm" % pid).read().strip()
        eq(comm, "evpop3d", "process named by the pid file")
        st = open("/proc/%d/stat" % pid).read()
        fields = st[st.rindex(")") + 2:].split()
        eq(int(fields[3]), pid, "session id of the daemon (setsid)")
        deadline = time.monotonic() + START_TIMEOUT
        while not listening(port):
            check(time.monotonic() < deadline, "daemon does not listen on "
                  "%d" % port)
            time.sleep(0.05)
        a = SConn(port)
        check(greeting_pid(a.greeting) in base.descendants(pid),
              "pid in the greeting %d: not the daemon's or a worker's %s"
              % (greeting_pid(a.greeting), base.descendants(pid)))
        a.login("deb", "deb-pw")
        eq(a.stat()[0], 3, "STAT")
        a.ok("DELE 1")
        a.quit()
        check_privs(pid, "daemon mode")
        if wrap:
            got = syslog_read(wrap[1], until="event=end")
            ends = [(p, t) for p, t in got if "event=end" in t]
            check(ends, "no session end line in syslog: %s"
                  % short(got, 400))
            eq(ends[0][0] >> 3, 2, "syslog facility (2 = mail) of %s"
               % short(ends[0][1]))
            m = re.search(r"evpop3d\[(\d+)\]: session=", ends[0][1])
            check(m is not None and int(m.group(1)) in
                  base.descendants(pid), "syslog line %s: want the pid of "
                  "the daemon or one of its workers %s"
                  % (short(ends[0][1]), base.descendants(pid)))
        os.kill(pid, signal.SIGTERM)
        check(wait_gone(pid, 5 * SLOW), "daemon %d still running after "
              "SIGTERM" % pid)
        pid = None
        eq(len(c.disk("deb")), 2, "messages after DELE+QUIT")
        if wrap:
            got = syslog_read(wrap[1], until="evpop3d stopped")
            check(any("stopped" in t for _, t in got), "no 'stopped' line "
                  "in syslog after SIGTERM: %s" % short(got, 300))
        note = None
        if os.path.exists(pidf):
            note = "pid_file left behind after SIGTERM"
        if SAN:
            for fn in os.listdir(c.dir):
                if fn.startswith("asan"):
                    text = open(os.path.join(c.dir, fn)).read()
                    check(san_bad(text) is None, "sanitizer report: %s"
                          % san_bad(text))
        return note if wrap else "syslog not checked (needs root, unshare)"
    finally:
        if pid is not None:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        if wrap:
            wrap[1].close()


@test()
def t_systemd_units(c):
    """systemd-analyze verify on copies of etc/*.service and *.socket."""
    sa = shutil.which("systemd-analyze")
    if sa is None:
        raise Skip("systemd-analyze is not installed")
    udir = os.path.join(c.dir, "units")
    os.mkdir(udir)
    names = ["evpop3d.service", "evpop3d.socket", "evpop3d-pop3s.socket"]
    for n in names:
        with open(os.path.join(TOP, "etc", n)) as f:
            text = f.read()
        text = text.replace("/usr/sbin/evpop3d", c.bin)
        with open(os.path.join(udir, n), "w") as f:
            f.write(text)
    with open(os.path.join(udir, "evpop3d.service")) as f:
        svc = f.read()
    check(c.bin in svc, "ExecStart not pointed at the built binary")

    def verify(paths):
        r = subprocess.run([sa, "verify"] + paths, capture_output=True,
                           cwd=udir, timeout=60)
        out = (r.stdout + r.stderr).decode(errors="replace")
        return [ln for ln in out.splitlines() if ln.strip() and not
                re.search(r"Command 'man [^']*' failed|"
                          r"[Uu]ser .*(not found|does not exist)|"
                          r"[Gg]roup .*(not found|does not exist)", ln)]

    # the check works here: a unit with an unknown key is reported
    with open(os.path.join(udir, "broken.service"), "w") as f:
        f.write(svc.replace("[Service]", "[Service]\nFrobnicate=yes", 1))
    check(any("Frobnicate" in ln for ln in
              verify([os.path.join(udir, "broken.service")])),
          "systemd-analyze verify does not report unknown keys here")
    os.unlink(os.path.join(udir, "broken.service"))
    problems = verify([os.path.join(udir, n) for n in names])
    check(not problems, "systemd-analyze verify: %s" % problems)
    # what the daemon relies on
    with open(os.path.join(udir, "evpop3d.socket")) as f:
        check("FileDescriptorName=pop3\n" in f.read(),
              "evpop3d.socket should name its socket pop3")
    with open(os.path.join(udir, "evpop3d-pop3s.socket")) as f:
        check("FileDescriptorName=pop3s\n" in f.read(),
              "evpop3d-pop3s.socket should name its socket pop3s")
    check(re.search(r"^ExecStart=\S+ -c \S+ -F$", svc, re.M),
          "ExecStart should run in the foreground (-F)")
    check(re.search(r"^ExecReload=.*-HUP", svc, re.M),
          "ExecReload should send SIGHUP")


@test()
def t_fail2ban(c):
    """contrib/fail2ban/evpop3d.conf finds every failed login in the
    daemon's log (IPv4 and IPv6), and no successful one."""
    f2b = tool("fail2ban-regex", "fail2ban")
    common = "/etc/fail2ban/filter.d/common.conf"
    if not os.path.exists(common):
        raise Skip("%s is missing" % common)
    fdir = os.path.join(c.dir, "filter.d")
    os.mkdir(fdir)
    shutil.copy(common, fdir)
    shutil.copy(os.path.join(TOP, "contrib", "fail2ban", "evpop3d.conf"),
                fdir)
    c.add_user("fay", "fay-pw", msgs=three("fb"))
    ipv6 = None
    try:
        s6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s6.bind(("::1", 0))
        ipv6 = s6.getsockname()[1]
        s6.close()
    except OSError:
        pass
    extra = ["auth_fail_delay_ms 10", "auth_fail_max 10"]
    if ipv6:
        extra.append("listen [::1]:%d" % ipv6)
    d = start(c, extra=extra)
    a = SConn(d.port)
    for i in range(3):
        a.ok("USER fay" if i != 1 else "USER ghost")
        a.err("PASS bad-%d" % i, "AUTH")
    a.login("fay", "fay-pw")
    a.quit()
    b = SConn(d.port, src="127.0.0.2")
    b.ok("USER fay")
    b.err("PASS bad", "AUTH")
    b.close()
    nfail = 4
    if ipv6:
        s = socket.create_connection(("::1", ipv6), timeout=5 * SLOW)
        fh = s.makefile("rb")
        fh.readline()
        s.sendall(b"USER fay\r\nPASS wrong6\r\nUSER fay\r\nPASS fay-pw\r\n"
                  b"QUIT\r\n")
        for _ in range(5):
            fh.readline()
        s.close()
        nfail += 1
    wait_log_count(d, nfail, "event=login", "result=fail")
    wait_log_count(d, 1 + (1 if ipv6 else 0), "event=login", "result=ok")
    log = d.log
    filt = os.path.join(fdir, "evpop3d.conf")

    def ips(path):
        r = subprocess.run([f2b, "--out", "ip", path, filt],
                           capture_output=True, timeout=60)
        out = r.stdout.decode(errors="replace")
        check(r.returncode == 0, "fail2ban-regex failed: %s" % short(
            (out + r.stderr.decode(errors="replace"))[-600:]))
        return [ln.strip() for ln in out.splitlines() if ln.strip()]

    want = ["127.0.0.1"] * 3 + ["127.0.0.2"] + (["::1"] if ipv6 else [])
    eq(sorted(ips(log)), sorted(want), "addresses fail2ban-regex found in "
       "the -F log")
    # the same lines as rsyslog writes them to /var/log/mail.log
    syslog = os.path.join(c.dir, "mail.log")
    with open(syslog, "w") as out:
        for ln in d.logtext().splitlines():
            m = re.match(r"\S+Z (evpop3d\[\d+\]) \w+: (.*)", ln)
            if m:
                out.write(time.strftime("%b %d %H:%M:%S") + " mailhost %s: "
                          "%s\n" % (m.group(1), m.group(2)))
    eq(sorted(ips(syslog)), sorted(want), "addresses fail2ban-regex found "
       "in a syslog-format copy")
    r = subprocess.run([f2b, log, filt], capture_output=True, timeout=60)
    m = re.search(r"Lines: (\d+) lines, \d+ ignored, (\d+) matched",
                  r.stdout.decode(errors="replace"))
    check(m is not None, "fail2ban-regex summary missing")
    eq(int(m.group(2)), nfail, "matched lines (failed logins)")
    # The jail reads the journal (backend = systemd), where evpop3d.service
    # (-F) puts each stderr line whole as MESSAGE; fail2ban's systemd
    # backend matches "HOST IDENT[PID]: MESSAGE" with no date detection,
    # which is what --datepattern {NONE} does for a file.
    journal = os.path.join(c.dir, "journal.txt")
    with open(journal, "w") as out:
        for ln in d.logtext().splitlines():
            if " evpop3d[" in ln:
                out.write("mailhost evpop3d[%d]: %s\n" % (d.pid, ln))
    r = subprocess.run([f2b, "--datepattern", "{NONE}", "--out", "ip",
                        journal, filt], capture_output=True, timeout=60)
    got = [x.strip() for x in r.stdout.decode(errors="replace").splitlines()
           if x.strip()]
    eq(sorted(got), sorted(want), "addresses fail2ban finds in journal "
       "entries of evpop3d.service (backend = systemd), e.g. %s"
       % short(open(journal).read().splitlines()[-1], 300))


@test()
def t_dovecot_import(c):
    """contrib/dovecot-passwd-import: SHA512-CRYPT and PLAIN users log in
    through the daemon with their Maildir (userdb_mail=maildir:~/Mail, or
    home + /Maildir), also an empty one; SSHA is left out."""
    script = os.path.join(TOP, "contrib", "dovecot-passwd-import")
    home = os.path.join(c.dir, "home")
    h_ann = base.crypt_hash("ann-secret")
    lines = [
        "# dovecot passwd-file",
        "ann@example.org:{SHA512-CRYPT}%s:5000:5000::%s/ann::"
        "userdb_mail=maildir:~/Mail" % (h_ann, home),
        "bob@example.org:{PLAIN}bob-secret:5000:5000::%s/bob::"
        "userdb_mail=maildir:~/Mail" % home,
        "cat@example.org:{SSHA}W7C0v1+pi3Q6Bzz4bUWp/1kq7NFiVUUE:5000:5000"
        "::%s/cat::userdb_mail=maildir:~/Mail" % home,
        "dee@example.org:{PLAIN}dee-secret:5000:5000::%s/dee::"
        "userdb_mail=maildir:~/Mail" % home,
        "eve@example.org:{PLAIN}eve-secret::::%s/eve::" % home,
        "",
    ]
    src = os.path.join(c.dir, "dovecot.passwd")
    with open(src, "w") as f:
        f.write("\n".join(lines))
    r = subprocess.run([sys.executable, script, src], capture_output=True,
                       timeout=30)
    out, err = r.stdout.decode(), r.stderr.decode()
    eq(r.returncode, 1, "exit status with a user left out (stderr %s)"
       % short(err))
    check("%s:4:" % src in err and "SSHA" in err, "stderr should name "
          "line 4 and the SSHA scheme: %s" % short(err))
    conv = [ln for ln in out.splitlines() if ln]
    eq(len(conv), 4, "converted lines (%s)" % short(out))
    eq(conv[0], "ann@example.org:%s:%s/ann/Mail" % (h_ann, home),
       "SHA512-CRYPT line")
    eq(conv[1], "bob@example.org:{PLAIN}bob-secret:%s/bob/Mail" % home,
       "PLAIN line")
    eq(conv[3], "eve@example.org:{PLAIN}eve-secret:%s/eve/Maildir" % home,
       "line without userdb_mail")
    # dee has migrated with an empty mailbox
    msgs = {"ann": three("da"), "bob": three("db")[:2], "dee": [],
            "eve": three("de")[:1]}
    for u, ms in msgs.items():
        md = os.path.join(home, u, "Maildir" if u == "eve" else "Mail")
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(md, sub), exist_ok=True)
        for where, fn, data in ms:
            with open(os.path.join(md, where, fn), "wb") as f:
                f.write(data)
    c.passwd_lines = conv
    c.write_passwd()
    c.fix_owner()
    d = start(c)
    for u in msgs:
        pw = u + "-secret"
        a = SConn(d.port)
        r = a.login(u + "@example.org", pw)
        eq(a.stat()[0], len(msgs[u]), "STAT of %s (its Dovecot Maildir)" % u)
        a.quit()
    a = SConn(d.port)       # APOP works for the {PLAIN} user
    a.ok("APOP bob@example.org %s" % base.apop_digest(a.greeting,
                                                     "bob-secret"))
    a.quit()
    a = SConn(d.port)
    a.ok("USER cat@example.org")
    a.err("PASS cat-secret", "AUTH")
    a.close()
    for u in msgs:
        check(not os.path.exists(os.path.join(c.root, u + "@example.org")),
              "a Maildir was made from mail_location for %s" % u)


# ---------------------------------------------------------------------------

def main():
    return base.run_suite(TESTS, "service.py", "evpop3d service "
                          "integration tests")


if __name__ == "__main__":
    sys.exit(main())
