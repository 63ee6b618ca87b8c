#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
#
# evpop3d fault-injection integration tests: a daemon killed mid-session
# and foreign lock files, SIGTERM under load, a full file system, messages
# removed or made unreadable behind the daemon's back, the descriptor limit,
# a client that stalls a huge RETR, slowloris clients, and a delivery race
# against 200 concurrent clients.  Each test checks the Maildirs on disk
# afterwards: no message lost, none wrongly deleted.
#
#   EVPOP3D_BIN=/abs/path/src/evpop3d python3 tests/integ/faults.py [-k NAME]
#
# Built on run.py's helpers (Case, Daemon, Conn); the same conventions:
# PASS/FAIL/SKIP lines, exit status 1 on failure, run as root the daemon
# drops to "nobody", EVPOP3D_SAN=1 for sanitizer builds (longer timeouts,
# smaller loads, logs checked for sanitizer reports).

import argparse
import collections
import errno
import hashlib
import os
import random
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as base                                      # noqa: E402

from run import (Conn, Closed, Fail, Skip, HOST, SAN, ROOT, SLOW,  # noqa
                 check, eq, short, mkmsg, wire, three, base_of, numbers,
                 test_id, rss_anon_kb, login_soon, run_ids)

LOCK = "evpop3d.lock"


# ---------------------------------------------------------------------------
# Runner shared with clients.py.

def make_registry():
    tests = []

    def test(root_only=False):
        def deco(fn):
            tests.append((fn.__name__[2:], fn, root_only))
            return fn
        return deco
    return tests, test


def run_tests(tests, prog, doc):
    """Run the selected tests like run.py does; returns the exit status."""
    return base.run_suite(tests, prog, doc)


# ---------------------------------------------------------------------------
# Helpers.

def files_of(msgs):
    """{base name: data} of (where, filename, data) tuples."""
    return {base_of(m): m[2] for m in msgs}


def expect_disk(c, user, want, what):
    """The user's Maildir holds exactly the messages want ({base: data}),
    byte for byte, and tmp/ holds nothing."""
    disk = c.disk(user)
    eq(sorted(disk), sorted(want), "%s: messages on disk" % what)
    for b, (sub, fn, data) in disk.items():
        check(data == want[b], "%s: content of %s/%s changed (%d octets, "
              "want %d)" % (what, sub, fn, len(data), len(want[b])))
    tmp = os.listdir(os.path.join(c.maildir(user), "tmp"))
    eq(tmp, [], "%s: files in %s's tmp/" % (what, user))


def path_of(c, user, b):
    """Path of the message with base name b, found without reading any
    file (some are unreadable on purpose)."""
    md = c.maildir(user)
    for sub in ("cur", "new"):
        for fn in os.listdir(os.path.join(md, sub)):
            if fn.split(":")[0] == b:
                return os.path.join(md, sub, fn)
    return None


def lock_files(c, user):
    """Names in the Maildir's top folder that belong to the lock."""
    return sorted(n for n in os.listdir(c.maildir(user))
                  if n.startswith(LOCK))


def add_users(c, users):
    """Many users at once: {user: (pw, msgs)}; the passwd file is written
    and ownership fixed once (Case.add_user does both per user)."""
    for user, (pw, msgs) in users.items():
        md = c.maildir(user)
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(md, sub), exist_ok=True)
        for where, fn, data in msgs:
            with open(os.path.join(md, where, fn), "wb") as f:
                f.write(data)
        c.passwd_lines.append("%s:{PLAIN}%s" % (user, pw))
    c.write_passwd()


def cpu_seconds(pid):
    """utime + stime of the process (all its threads), in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        st = f.read()
    fields = st[st.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_starttime(pid):
    with open("/proc/%d/stat" % pid) as f:
        st = f.read()
    return int(st[st.rindex(")") + 2:].split()[19])


class LimitDaemon(base.Daemon):
    """A Daemon started with a descriptor limit (soft = hard = nofile)."""

    def __init__(self, case, conf, port, log, nofile):
        self.case, self.conf, self.port, self.log = case, conf, port, log

        def limit():
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
        lf = open(log, "ab")
        self.proc = subprocess.Popen([case.bin, "-c", conf, "-F"],
                                     stdin=subprocess.DEVNULL, stdout=lf,
                                     stderr=subprocess.STDOUT, cwd=case.dir,
                                     start_new_session=True,
                                     preexec_fn=limit)
        lf.close()
        self.stopped = False
        self.rc = None


def start_limited(c, nofile, extra=()):
    port = base.free_port()
    conf = c.write_conf(port, extra)
    log = os.path.join(c.dir, "evpop3d-%d.log" % c.nconf)
    d = LimitDaemon(c, conf, port, log, nofile)
    c.daemons.append(d)
    return d.wait_ready()


def try_login(port, user, pw, timeout=None):
    """(connection or None, PASS reply)."""
    cn = Conn(port, timeout=timeout)
    cn.ok("USER " + user)
    r = cn.cmd("PASS " + pw)
    if r.startswith("+OK"):
        return cn, r
    cn.close()
    return None, r


def rst_close(cn):
    """Close with a reset, as a crashed client would."""
    try:
        cn.s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                        b"\x01\x00\x00\x00\x00\x00\x00\x00")
    except OSError:
        pass
    cn.close()


def retr_all(cn, want, what):
    """RETR every message listed by UIDL and compare with want."""
    num = numbers(cn)
    for n, b in sorted(num.items()):
        check(b in want, "%s: UIDL %d = %s is not a known message"
              % (what, n, b))
        eq(cn.multi("RETR %d" % n), wire(want[b]), "%s: RETR %d" % (what, n))
    return num


TESTS, test = make_registry()


# ---------------------------------------------------------------------------
# Tests.

@test()
def t_sigkill_locks(c):
    """SIGKILL with DELE marks deletes nothing.  A lock left by a dead
    local pid is broken at once; one of a live local process is not, nor
    one whose pid was reused (it is); one of another host is honoured until
    lock_stale_timeout passes since its last refresh, then broken."""
    msgs = three("sk")
    want = files_of(msgs)
    c.add_user("erin", "erin-pw-5", msgs=msgs)
    extra = ["lock_stale_timeout 10"]
    lockp = os.path.join(c.maildir("erin"), LOCK)

    d = c.start(extra=extra)
    a = Conn(d.port)
    a.login("erin", "erin-pw-5")
    a.ok("DELE 1")
    a.ok("DELE 2")
    a.multi("RETR 3")
    a.ok("NOOP")
    check(os.path.exists(lockp), "no lock file while a session is logged in")
    with open(lockp) as f:
        content = f.read()
    fields = content.split()
    check(len(fields) == 5 and content.endswith("\n") and
          fields[4].startswith("127.0.0.1:"),
          "lock file content %s: want 'host pid starttime acquired "
          "client'"
          % short(content))
    check(int(fields[1]) in base.descendants(d.pid)[1:],
          "pid in the lock file %s: want one of the daemon's workers %s"
          % (fields[1], base.descendants(d.pid)[1:]))
    host = fields[0]
    d.kill()
    a.close()
    expect_disk(c, "erin", want, "after SIGKILL with DELE 1, DELE 2")
    check(os.path.exists(lockp), "the lock file of a SIGKILLed daemon "
          "vanished (the test cannot go on)")

    # A dead local pid: broken at once.
    d2 = c.start(extra=extra)
    t0 = time.monotonic()
    b, r = try_login(d2.port, "erin", "erin-pw-5")
    check(b is not None, "login right after the old daemon was killed "
          "(stale lock of a dead local pid): %s" % r)
    check(time.monotonic() - t0 < 1.0 * SLOW, "login took %.1fs"
          % (time.monotonic() - t0))
    eq(b.stat()[0], 3, "STAT after taking over the stale lock")
    d2.log_lines("took over stale lock")
    b.ok("DELE 3")
    with open(lockp) as f:
        f2 = f.read().split()
    check(int(f2[1]) in base.descendants(d2.pid),
          "pid in the lock file taken over %s: want the new daemon's %s"
          % (f2[1], base.descendants(d2.pid)))
    d2.kill()
    b.close()
    expect_disk(c, "erin", want, "after the second SIGKILL")

    d3 = c.start(extra=extra)
    # A live local process (this one, with its real start time): in use.
    me = os.getpid()
    with open(lockp, "w") as f:
        f.write("%s %d %d %d\n" % (host, me, proc_starttime(me),
                                   int(time.time()) - 3600))
    old = time.time() - 3600
    os.utime(lockp, (old, old))
    for _ in range(2):
        cn, r = try_login(d3.port, "erin", "erin-pw-5")
        check(cn is None and "[IN-USE]" in r, "lock of a live local "
              "process (pid %d, an hour old): want -ERR [IN-USE], got %s"
              % (me, r))
    check(os.path.exists(lockp), "a live process's lock file was removed")
    # The same pid with another start time: the pid was reused, stale.
    with open(lockp, "w") as f:
        f.write("%s %d %d %d\n" % (host, me, proc_starttime(me) + 12345,
                                   int(time.time())))
    b, r = try_login(d3.port, "erin", "erin-pw-5")
    check(b is not None, "lock naming a live pid with another start time "
          "(pid reused) should be broken: %s" % r)
    b.ok("DELE 1")
    d3.kill()
    b.close()
    expect_disk(c, "erin", want, "after the third SIGKILL")

    # Another host's lock, refreshed 4 s ago: honoured until 10 s old.
    with open(lockp) as f:
        fields = f.read().split()
    fields[0] = "otherhost.invalid"
    with open(lockp, "w") as f:
        f.write(" ".join(fields) + "\n")
    mtime = time.time() - 4
    os.utime(lockp, (mtime, mtime))
    d4 = c.start(extra=extra)
    refused = 0
    while True:
        before = time.time() - mtime
        cn, r = try_login(d4.port, "erin", "erin-pw-5")
        after = time.time() - mtime
        if cn is not None:
            check(before >= 9.5, "another host's lock was broken when "
                  "only %.1fs old (lock_stale_timeout 10)" % before)
            break
        check("[IN-USE]" in r, "login over another host's lock: want "
              "-ERR [IN-USE], got %s" % r)
        refused += 1
        check(after <= 12.0, "another host's lock still honoured at "
              "%.1fs old (lock_stale_timeout 10)" % after)
        time.sleep(0.25)
    check(refused >= 5, "only %d refusals before the other host's lock "
          "went stale" % refused)
    d4.log_lines("took over stale lock", "otherhost.invalid")
    eq(cn.stat()[0], 3, "STAT after taking over another host's lock")
    num = retr_all(cn, want, "after the takeover")
    cn.quit()
    expect_disk(c, "erin", want, "after the final session")
    eq(lock_files(c, "erin"), [], "lock files left in the Maildir")
    eq(len(num), 3, "messages listed")


@test()
def t_sigterm_100(c):
    """SIGTERM with 100 users logged in, half with DELE marks, some in the
    middle of a 5 MB RETR: exit 0 in 5 s, nothing deleted, no lock left."""
    n = 100
    big = base.big_message(5 * 1024 * 1024)
    users = {}
    want = {}
    for i in range(n):
        u = "t%03d" % i
        msgs = three(u)
        if i % 10 == 3:
            msgs.append(("cur", "1732271111.M9P9.big:2,", big))
        users[u] = (u + "-pw", msgs)
        want[u] = files_of(msgs)
    add_users(c, users)
    d = c.start()
    conns = []
    for i, u in enumerate(sorted(users)):
        cn = Conn(d.port, timeout=10 * SLOW,
                  rcvbuf=32768 if i % 10 == 3 else None)
        cn.login(u, u + "-pw")
        if i % 2 == 0:
            cn.ok("DELE 1")
            cn.ok("DELE 3")
        if i % 10 == 3:
            num = numbers(cn)
            k = [k for k, b in num.items() if b.endswith(".big")][0]
            cn.send("RETR %d\r\n" % k)
            ln = cn.line()
            check(ln.startswith("+OK"), "RETR of 5 MB: %s" % ln)
            cn._fill()              # some of it, then stop reading
        conns.append(cn)
    idle = [Conn(d.port) for _ in range(3)]   # AUTHORIZATION, silent
    check(len(lock_files(c, "t000")) == 1, "no lock file while logged in")
    time.sleep(0.3)
    limit = 5.0 * (2 if SAN else 1)
    t0 = time.monotonic()
    d.send_signal(signal.SIGTERM)
    try:
        rc = d.proc.wait(limit)
    except subprocess.TimeoutExpired:
        raise Fail("daemon still running %.0fs after SIGTERM with 100 "
                   "sessions" % limit)
    el = time.monotonic() - t0
    d.stopped, d.rc = True, rc
    eq(rc, 0, "exit status after SIGTERM")
    d.san_check()
    for cn in conns + idle:
        cn.expect_closed(5 * SLOW)
    for u in sorted(users):
        expect_disk(c, u, want[u], "%s after SIGTERM" % u)
        eq(lock_files(c, u), [], "%s's lock files after SIGTERM" % u)
    return "(exit after %.2fs)" % el


def fill_fs(path, name):
    """Write a filler file until the file system is full."""
    p = os.path.join(path, name)
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for chunk in (65536, 4096, 1):
            while True:
                try:
                    os.write(fd, b"f" * chunk)
                except OSError as e:
                    if e.errno != errno.ENOSPC:
                        raise
                    break
    finally:
        os.close(fd)
    # a new small file must not fit either
    try:
        with open(os.path.join(path, "probe"), "wb") as f:
            f.write(b"x" * 64)
            f.flush()
        full = False
    except OSError as e:
        full = e.errno == errno.ENOSPC
    try:
        os.unlink(os.path.join(path, "probe"))
    except OSError:
        pass
    check(full, "could not fill the file system at %s" % path)
    return p


@test(root_only=True)
def t_full_fs(c):
    """A full file system: marked messages are still removed at QUIT (+OK);
    a lock file that cannot be written refuses the login with -ERR, leaves
    nothing behind, and the daemon goes on."""
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0755",
                        "evpop3d-test", c.root], capture_output=True)
    if r.returncode != 0:
        raise Skip("mount -t tmpfs failed: %s"
                   % r.stderr.decode(errors="replace").strip())
    try:
        m1 = [("cur", "17322702%02d.M%dP7.full:2," % (i, i),
               mkmsg("ff-%d" % i, body=[b"line %d" % j for j in range(50)]))
              for i in range(4)]
        m2 = three("fg", where=("cur", "cur", "cur"))
        c.add_user("fill1", "fill1-pw", msgs=m1)
        c.add_user("fill2", "fill2-pw", msgs=m2)
        w1, w2 = files_of(m1), files_of(m2)
        d = c.start()
        a = Conn(d.port)
        a.login("fill1", "fill1-pw")
        filler = fill_fs(c.root, "filler1")
        num = retr_all(a, w1, "fill1 on a full fs")
        a.ok("DELE 1")
        a.ok("DELE 3")
        r = a.cmd("QUIT")
        check(r.startswith("+OK"), "QUIT with 2 marked messages on a full "
              "file system: %s" % r)
        a.expect_closed()
        for k in (1, 3):
            del w1[num[k]]
        expect_disk(c, "fill1", w1, "fill1 after DELE 1, DELE 3, QUIT")
        eq(lock_files(c, "fill1"), [], "fill1's lock files")

        # No room for the lock file (the removals freed some: fill again).
        filler2 = fill_fs(c.root, "filler2")
        for _ in range(2):
            b = Conn(d.port)
            b.ok("USER fill2")
            r = b.cmd("PASS fill2-pw")
            check(r.startswith("-ERR") and ("[SYS/" in r or "[IN-USE]" in r),
                  "login when the lock file cannot be written: want -ERR "
                  "[SYS/TEMP] (or [IN-USE]), got %s" % r)
            b.close()
            eq(lock_files(c, "fill2"), [], "files left by a failed lock "
               "in fill2's Maildir")
        check(d.proc.poll() is None, "daemon died when the fs was full")
        x = Conn(d.port)
        x.ok("CAPA")
        x.multi_body()
        x.close()
        expect_disk(c, "fill2", w2, "fill2 while the fs is full")
        os.unlink(filler)
        os.unlink(filler2)
        b = login_soon(d.port, "fill2", "fill2-pw")
        retr_all(b, w2, "fill2 after freeing space")
        b.quit()
        expect_disk(c, "fill2", w2, "fill2 after a clean session")
        expect_disk(c, "fill1", w1, "fill1 at the end")
        eq(lock_files(c, "fill2"), [], "fill2's lock files at the end")
        problem = c.finish()
        if problem is not None:
            raise problem
    finally:
        for d in c.daemons:
            if not d.stopped:
                d.kill()
        if subprocess.run(["umount", c.root],
                          capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", c.root], capture_output=True)


@test()
def t_removed_unreadable(c):
    """A message removed and another made unreadable by another program
    mid-session: RETR gets -ERR, the session goes on, QUIT removes only
    the marked messages."""
    msgs = [("cur", "17322703%02d.M%dP3.ru:2," % (i, i),
             mkmsg("ru-%d" % i)) for i in range(5)]
    c.add_user("rudi", "rudi-pw", msgs=msgs)
    want = files_of(msgs)
    d = c.start()
    a = Conn(d.port)
    a.login("rudi", "rudi-pw")
    num = numbers(a)
    n_of = {b: n for n, b in num.items()}
    bases = sorted(want)
    gone, locked, fine, marked, gone2 = bases
    os.unlink(path_of(c, "rudi", gone))
    os.unlink(path_of(c, "rudi", gone2))
    os.chmod(path_of(c, "rudi", locked), 0)
    a.err("RETR %d" % n_of[gone])
    a.ok("NOOP")
    a.err("RETR %d" % n_of[locked])
    a.err("TOP %d 0" % n_of[locked])
    eq(a.stat()[0], 5, "STAT after failed RETRs")
    eq(a.multi("RETR %d" % n_of[fine]), wire(want[fine]),
       "RETR of an untouched message")
    a.ok("DELE %d" % n_of[marked])
    os.chmod(path_of(c, "rudi", marked), 0)   # marked, then unreadable
    a.ok("DELE %d" % n_of[gone2])           # marked, already gone
    a.ok("LIST %d" % n_of[locked])
    r = a.cmd("QUIT")
    check(r.startswith("+OK"), "QUIT (one marked message unreadable, one "
          "already removed): %s" % r)
    a.expect_closed()
    lp = path_of(c, "rudi", locked)
    check(lp is not None, "the unmarked unreadable message was removed")
    eq(os.stat(lp).st_mode & 0o777, 0, "mode of the unreadable file")
    check(path_of(c, "rudi", marked) is None, "the marked unreadable "
          "message was not removed")
    os.chmod(lp, 0o600)
    for b in (gone, gone2, marked):
        del want[b]
    expect_disk(c, "rudi", want, "after QUIT")
    b = login_soon(d.port, "rudi", "rudi-pw")
    retr_all(b, want, "second session")
    eq(b.stat()[0], 2, "STAT in the second session")
    b.quit()
    expect_disk(c, "rudi", want, "at the end")
    check(d.proc.poll() is None, "daemon died")


@test()
def t_fd_limit(c):
    """At the descriptor limit the daemon neither spins nor stops serving
    its sessions, and it accepts again once descriptors are free."""
    users = {}
    for u in ("fda", "fdb", "fdc", "fdd"):
        users[u] = (u + "-pw", three(u))
    add_users(c, users)
    want = {u: files_of(m) for u, (pw, m) in users.items()}
    d = start_limited(c, 64)
    live = {}
    for u in ("fda", "fdb", "fdc"):
        live[u] = Conn(d.port)
        live[u].login(u, u + "-pw")
    extra = []
    served = hanging = refused = 0
    for _ in range(300):
        try:
            s = socket.create_connection((HOST, d.port), 3)
        except OSError:
            refused += 1
            break
        extra.append(s)
        s.settimeout(0.3 * SLOW)
        try:
            g = s.recv(200)
        except socket.timeout:
            hanging += 1
            if hanging >= 3:
                break
            continue
        except OSError:
            g = b""
        if g.startswith(b"+OK"):
            served += 1
        else:
            refused += 1
            if refused >= 3:
                break
    check(hanging + refused > 0, "300 connections all served: the limit "
          "was never reached")
    check(served > 10, "only %d connections served before the limit"
          % served)
    time.sleep(0.5)
    c0 = cpu_seconds(d.pid)
    time.sleep(3.0)
    spent = cpu_seconds(d.pid) - c0
    check(spent < 0.5, "daemon used %.2fs of CPU in 3s at the descriptor "
          "limit (spinning?)" % spent)
    for u, cn in live.items():
        cn.ok("NOOP")
        eq(cn.stat()[0], 3, "%s: STAT at the limit" % u)
    # A RETR needs a descriptor: the message or -ERR, and the session
    # goes on.
    r = live["fda"].cmd("RETR 1")
    if r.startswith("+OK"):
        body = live["fda"].multi_body()
        check(body in [wire(x) for x in want["fda"].values()],
              "RETR at the limit sent %s" % short(body))
    live["fda"].ok("NOOP")
    for s in extra:
        s.close()
    t0 = time.monotonic()
    deadline = t0 + 3.0 * SLOW
    cn = None
    while cn is None:
        left = deadline - time.monotonic()
        check(left > 0, "no new session within %.0fs after the extra "
              "connections closed" % (3.0 * SLOW))
        try:
            cn, r = try_login(d.port, "fdd", "fdd-pw",
                              timeout=max(0.2, left))
        except Fail:
            cn = None
            time.sleep(0.1)
    el = time.monotonic() - t0
    retr_all(cn, want["fdd"], "fdd after the limit")
    num = numbers(cn)
    cn.ok("DELE 2")
    cn.quit()
    del want["fdd"][num[2]]
    for u, x in live.items():
        x.quit()
    for u in users:
        expect_disk(c, u, want[u], u)
        eq(lock_files(c, u), [], "%s's lock files" % u)
    d.log_lines("accept:")
    return "(%d served, %d hanging, %d refused; CPU %.2fs; new login "\
        "after %.1fs)" % (served, hanging, refused, spent, el)


def huge_file(path, size):
    """Write about size octets of text lines; returns (file sha256, file
    length, octets as sent)."""
    head = mkmsg("huge", body=[])
    block = b"".join(
        (b".dotted %05d ....\n" % i) if i % 23 == 0 else
        (b"line %05d Lorem ipsum dolor sit amet, consectetur adipiscing\n"
         % i) for i in range(16000))
    h = hashlib.sha256()
    total = lf = 0
    with open(path, "wb") as f:
        for chunk in [head] + [b"blk %08d\n" % i + block
                               for i in range(size // len(block) + 1)]:
            f.write(chunk)
            h.update(chunk)
            total += len(chunk)
            lf += chunk.count(b"\n")
    return h.hexdigest(), total, total + lf


def sha_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                return h.hexdigest()
            h.update(b)


@test()
def t_stalled_huge_retr(c):
    """A client stops reading a 200 MB RETR (50 MB under ASan): memory
    stays flat while another session is served; dropping the client
    deletes nothing."""
    size = (50 if SAN else 200) * 1024 * 1024
    c.add_user("hugo", "hugo-pw")
    small = three("hs")
    c.add_user("hans", "hans-pw", msgs=small)
    name = "1732272222.M1P1.huge:2,"
    path = os.path.join(c.maildir("hugo"), "cur", name)
    digest, flen, wlen = huge_file(path, size)
    c.fix_owner(c.maildir("hugo"))
    d = c.start()
    w = Conn(d.port)
    w.login("hans", "hans-pw")
    retr_all(w, files_of(small), "warm-up")
    w.quit()
    a = Conn(d.port, timeout=60 * SLOW, rcvbuf=65536)
    r = a.login("hugo", "hugo-pw")
    eq(a.stat(), (1, wlen), "STAT of the huge mailbox")
    base_kb = rss_anon_kb(d.pid)
    a.send("RETR 1\r\n")
    ln = a.line()
    check(ln.startswith("+OK"), "RETR 1: %s" % ln)
    other = {}

    def other_session():
        try:
            t0 = time.monotonic()
            b = Conn(d.port)
            b.login("hans", "hans-pw")
            retr_all(b, files_of(small), "other session")
            b.quit()
            other["time"] = time.monotonic() - t0
        except Exception as e:           # reported below
            other["error"] = e
    th = threading.Thread(target=other_session)
    peak = base_kb
    started = False
    t0 = time.monotonic()
    while time.monotonic() - t0 < 3.0:
        peak = max(peak, rss_anon_kb(d.pid))
        if not started and time.monotonic() - t0 > 0.5:
            th.start()
            started = True
        time.sleep(0.05)
    th.join(20 * SLOW)
    check(not th.is_alive(), "other session did not finish")
    if "error" in other:
        raise Fail("other session while a RETR stalls: %s" % other["error"])
    check(other["time"] < 2.0 * SLOW, "other session took %.1fs"
          % other["time"])
    grow = (peak - base_kb) / 1024.0
    check(grow < 40, "RssAnon grew %.1f MB (%d kB -> %d kB) while a client "
          "stalled a %d MB RETR" % (grow, base_kb, peak, size >> 20))
    rst_close(a)
    b = login_soon(d.port, "hugo", "hugo-pw", within=3.0)
    eq(b.stat(), (1, wlen), "STAT after the stalled client was dropped")
    b.quit()
    eq(sorted(os.listdir(os.path.join(c.maildir("hugo"), "cur"))), [name],
       "huge mailbox cur/")
    eq(os.path.getsize(path), flen, "size of the huge message on disk")
    eq(sha_file(path), digest, "sha256 of the huge message on disk")
    expect_disk(c, "hans", files_of(small), "hans")
    d.log_lines("user=hugo", "event=end")
    return "(RssAnon +%.1f MB)" % grow


@test()
def t_slowloris(c):
    """50 clients trickling "USER x..." without a line end do not slow a
    normal session; 1 MB lines without a line end are cut off without
    the daemon's memory growing."""
    msgs = three("lo")
    want = files_of(msgs)
    c.add_user("lola", "lola-pw", msgs=msgs)
    d = c.start()
    w = Conn(d.port)
    w.login("lola", "lola-pw")
    w.quit()
    slow = [Conn(d.port) for _ in range(50)]
    payload = b"USER xxxxxxxxxxxxxxxxxxxxxxxx"
    stop = threading.Event()
    errs = []

    def trickle():
        try:
            for i in range(15):
                for cn in slow:
                    cn.send(payload[i:i + 1])
                if stop.wait(0.2):
                    return
        except OSError as e:
            errs.append(e)
    th = threading.Thread(target=trickle)
    th.start()
    times = []
    t_end = time.monotonic() + 3.0
    while time.monotonic() < t_end:
        t0 = time.monotonic()
        cn = Conn(d.port)
        cn.login("lola", "lola-pw")
        times.append(time.monotonic() - t0)
        eq(cn.stat()[0], 3, "STAT during slowloris")
        cn.quit()
        time.sleep(0.3)
    stop.set()
    th.join()
    check(not errs, "trickling clients were cut off: %s" % errs[:1])
    check(max(times) < 1.0 * SLOW, "login took %.2fs during slowloris "
          "(max of %d)" % (max(times), len(times)))
    for cn in slow:                  # nothing answered a partial line
        cn.s.settimeout(0.01)
        try:
            got = cn.s.recv(100)
        except socket.timeout:
            got = None
        check(got is None, "a partial command line got %s" % short(got))
        cn.close()

    # 1 MB command lines without a line end.
    time.sleep(0.2)
    base_kb = rss_anon_kb(d.pid)
    peak = [base_kb]
    res = {}

    def flood(k):
        cn = Conn(d.port, timeout=10 * SLOW)
        try:
            cn.send(b"USER " + b"y" * (1 << 20))
        except OSError:             # reset, broken pipe, or a timeout
            pass
        try:
            data, el = cn.expect_closed(5 * SLOW)
            res[k] = data
        except Fail as e:
            res[k] = e
        cn.close()
    ths = [threading.Thread(target=flood, args=(k,)) for k in range(8)]
    for t in ths:
        t.start()
    while any(t.is_alive() for t in ths):
        peak[0] = max(peak[0], rss_anon_kb(d.pid))
        time.sleep(0.02)
    for k, v in res.items():
        if isinstance(v, Fail):
            raise Fail("1 MB line without a line end: %s" % v)
        check(b"+OK" not in v, "1 MB line got %s" % short(v))
    eq(len(res), 8, "flood results")
    grow = (peak[0] - base_kb) / 1024.0
    check(grow < (8 if SAN else 4), "RssAnon grew %.1f MB with 8 clients "
          "sending 1 MB lines" % grow)
    cn = Conn(d.port)
    cn.login("lola", "lola-pw")
    num = retr_all(cn, want, "after the flood")
    cn.ok("DELE 2")
    cn.quit()
    del want[num[2]]
    expect_disk(c, "lola", want, "lola at the end")
    return "(max login %.0f ms over %d; flood RssAnon +%.1f MB)" % (
        max(times) * 1000, len(times), grow)


@test()
def t_delivery_race(c):
    """200 clients loop login/UIDL/RETR all/DELE all/QUIT while new mail
    is delivered into new/ (tmp/ then rename): every message is retrieved
    exactly once, byte for byte, none lost and none left."""
    nbox = 200
    duration = 8.0
    users = {}
    delivered = {}              # test id -> (user, data)
    for i in range(nbox):
        u = "cc%03d" % i
        msgs = []
        for j in range(2):
            tid = "cc-%03d-init%d" % (i, j)
            data = mkmsg(tid, eol=b"\r\n" if j else b"\n")
            msgs.append(("new" if j else "cur",
                         "1732273%03d.M%dP1.init" % (i, j)
                         + ("" if j else ":2,"), data))
            delivered[tid] = (u, data)
        users[u] = (u + "-pw", msgs)
    add_users(c, users)
    d = c.start()
    uid = gid = None
    if ROOT:
        uid, gid, _ = run_ids()
    mu = threading.Lock()
    retrieved = collections.Counter()
    errors = []
    stats = collections.Counter()
    stop = threading.Event()

    def session(u):
        cn = Conn(d.port, timeout=30 * SLOW)
        try:
            cn.ok("USER " + u)
            r = cn.cmd("PASS " + u + "-pw")
            if "[IN-USE]" in r:
                with mu:
                    stats["in-use"] += 1
                return False
            check(r.startswith("+OK"), "%s: PASS: %s" % (u, r))
            num = numbers(cn)
            got = []
            for n in sorted(num):
                body = cn.multi("RETR %d" % n)
                tid = test_id(body)
                check(tid in delivered, "%s: RETR %d: unknown message %s"
                      % (u, n, short(body)))
                owner, data = delivered[tid]
                eq(owner, u, "mailbox of message %s" % tid)
                eq(body, wire(data), "%s: RETR %d (%s)" % (u, n, tid))
                got.append(tid)
            for n in sorted(num):
                cn.ok("DELE %d" % n)
            r = cn.cmd("QUIT")
            check(r.startswith("+OK"), "%s: QUIT after DELE of %d: %s"
                  % (u, len(num), r))
            cn.expect_closed()
            with mu:
                retrieved.update(got)
                stats["sessions"] += 1
            return True
        finally:
            cn.close()

    def client(u):
        try:
            while not stop.is_set():
                session(u)
                time.sleep(random.random() * 0.02)
        except Exception as e:
            with mu:
                errors.append("%s: %s" % (type(e).__name__, e))

    def deliver():
        i = 0
        names = sorted(users)
        t_end = time.monotonic() + duration
        try:
            while time.monotonic() < t_end:
                u = random.choice(names)
                tid = "cc-d%06d" % i
                body = [b"delivery %d for %s" % (i, u.encode())]
                if i % 3 == 0:
                    body += [b".leading dot", b"..", b"."]
                body += [b"x" * random.randrange(0, 200)] * \
                    random.randrange(1, 40)
                data = mkmsg(tid, body=body,
                             eol=b"\r\n" if i % 4 == 1 else b"\n")
                name = "%d.M%dP%d.deliver" % (int(time.time()), i,
                                              os.getpid())
                md = c.maildir(u)
                tmp = os.path.join(md, "tmp", name)
                with open(tmp, "wb") as f:
                    f.write(data)
                if uid is not None:
                    os.chown(tmp, uid, gid)
                with mu:
                    delivered[tid] = (u, data)
                os.rename(tmp, os.path.join(md, "new", name))
                i += 1
                time.sleep(0.002)
        except Exception as e:
            with mu:
                errors.append("delivery: %s: %s" % (type(e).__name__, e))
        stop.set()
    ths = [threading.Thread(target=client, args=(u,)) for u in users]
    for t in ths:
        t.start()
    dl = threading.Thread(target=deliver)
    dl.start()
    dl.join()
    for t in ths:
        t.join(60 * SLOW)
    check(not any(t.is_alive() for t in ths), "client threads still "
          "running a minute after delivery stopped")
    check(not errors, "%d client errors, first: %s" % (len(errors),
          errors[:1]))
    for u in sorted(users):         # final drain
        deadline = time.monotonic() + 2 * SLOW
        while not session(u):
            check(time.monotonic() < deadline, "%s: [IN-USE] for 2s "
                  "with no other client" % u)
            time.sleep(0.05)
    check(d.proc.poll() is None, "daemon died")
    lost = sorted(set(delivered) - set(retrieved))
    check(not lost, "%d delivered messages never retrieved, e.g. %s (%s)"
          % (len(lost), lost[:3], delivered[lost[0]][0] if lost else ""))
    twice = sorted(t for t, k in retrieved.items() if k > 1)
    check(not twice, "%d messages retrieved (and deleted) more than once, "
          "e.g. %s" % (len(twice), [(t, retrieved[t]) for t in twice[:3]]))
    for u in sorted(users):
        expect_disk(c, u, {}, "%s after the drain" % u)
        eq(lock_files(c, u), [], "%s's lock files" % u)
    bad = [ln for ln in d.logtext().splitlines() if "SYS/" in ln]
    check(not bad, "daemon log mentions SYS/: %s" % short(bad[:1]))
    return "(%d messages, %d sessions, %d [IN-USE] retries)" % (
        len(delivered), stats["sessions"], stats["in-use"])


if __name__ == "__main__":
    sys.exit(run_tests(TESTS, "faults.py", "evpop3d fault-injection "
                       "integration tests"))
