#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
#
# evpop3d against real POP3 clients: fetchmail, getmail6, mpop, Python's
# poplib, curl and a person typing into telnet (driven by expect), plus the
# command patterns of common mail programs (Foxmail, Outlook, remote
# management).  What each client stores is compared byte for byte with the
# Maildir files (in the CRLF form the server sends, or the LF form the
# client documents), and the Maildir on disk is checked after each run.
#
#   EVPOP3D_BIN=/abs/path/src/evpop3d python3 tests/integ/clients.py [-k NAME]
#
# Run as root, missing Debian packages (fetchmail getmail6 mpop expect
# telnet) are installed first with apt-get; a client that cannot be had is
# reported as SKIP with the reason.  Same conventions as run.py.

import os
import poplib
import shutil
import subprocess
import sys
import textwrap
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as base                                      # noqa: E402
import faults                                           # noqa: E402

from run import (Conn, Fail, Skip, HOST, ROOT, SLOW, check, eq, short,  # noqa
                 mkmsg, wire, three, base_of, numbers, test_id)
from faults import files_of, expect_disk, lock_files, retr_all  # noqa

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS, test = faults.make_registry()

# Debian package -> the command it provides.
PACKAGES = {"fetchmail": "fetchmail", "getmail6": "getmail", "mpop": "mpop",
            "expect": "expect", "telnet": "telnet"}
MISSING = {}            # command -> why it is not available


def install_missing():
    """apt-get the packages whose commands are missing (root only)."""
    want = [p for p, cmd in PACKAGES.items() if shutil.which(cmd) is None]
    if not want:
        return
    if not ROOT:
        for p in want:
            MISSING[PACKAGES[p]] = "%s is not installed (not root: no " \
                "apt-get)" % p
        return
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    why = ""
    try:
        r = subprocess.run(["apt-get", "install", "-y", "-qq",
                            "--no-install-recommends"] + want,
                           capture_output=True, env=env, timeout=300)
        if r.returncode != 0:
            subprocess.run(["apt-get", "update", "-qq"], capture_output=True,
                           env=env, timeout=300)
            r = subprocess.run(["apt-get", "install", "-y", "-qq",
                                "--no-install-recommends"] + want,
                               capture_output=True, env=env, timeout=300)
        if r.returncode != 0:
            why = (r.stderr or r.stdout).decode(errors="replace").strip()
            why = why.splitlines()[-1] if why else "exit %d" % r.returncode
    except (OSError, subprocess.TimeoutExpired) as e:
        why = str(e)
    for p in want:
        if shutil.which(PACKAGES[p]) is None:
            MISSING[PACKAGES[p]] = "apt-get install %s failed: %s" % (
                p, why or "command still missing")


def need(cmd):
    if cmd in MISSING:
        raise Skip(MISSING[cmd])
    if shutil.which(cmd) is None:
        raise Skip("%s is not installed" % cmd)


def lf_form(data):
    """What a client that stores LF line ends must write for data."""
    return wire(data).replace(b"\r\n", b"\n")


def sample(prefix):
    """Messages that test a client's handling: dot lines, CRLF, no final
    line end, a From_ line in the body, a 300 KB body, an empty body."""
    msgs = three(prefix)
    more = [
        mkmsg(prefix + "-d", body=[b"From here on, the body.",
                                   b">From quoted", b"  indented",
                                   b"\ttabbed", b"trailing space "]),
        mkmsg(prefix + "-e", body=[b"%06d %s" % (i, b"z" * 70)
                                   for i in range(4000)]),
        mkmsg(prefix + "-f", body=[]),
    ]
    for i, data in enumerate(more):
        msgs.append(("cur", "17322710%02d.M%dP4.%s:2,S" % (i, i, prefix),
                     data))
    return msgs


def run_client(argv, what, ok=(0,), env=None, timeout=None):
    """Run a client; returns its output.  A hang or an exit status not in
    ok fails with the client's output."""
    try:
        r = subprocess.run(argv, capture_output=True, env=env,
                           timeout=timeout or 60 * SLOW,
                           stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        raise Fail("%s hung: %s" % (what, short(e.stdout, 500)))
    out = (r.stdout + r.stderr).decode(errors="replace")
    check(r.returncode in ok, "%s: exit %d (want %s): %s"
          % (what, r.returncode, ok, out[-1500:]))
    return out


def stored(d):
    """{test id: data} of the message files a client stored under d
    (one message per file; Maildir cur/ and new/ or a flat folder)."""
    out = {}
    paths = []
    for sub in ("", "cur", "new"):
        p = os.path.join(d, sub)
        if os.path.isdir(p):
            paths += [os.path.join(p, f) for f in sorted(os.listdir(p))
                      if os.path.isfile(os.path.join(p, f))]
    for p in paths:
        with open(p, "rb") as f:
            data = f.read()
        tid = test_id(data)
        check(tid is not None, "stored file %s has no X-Test-Id: %s"
              % (p, short(data)))
        check(tid not in out, "message %s stored twice" % tid)
        out[tid] = data
    return out


def compare(got, msgs, form, what):
    """got ({test id: data}) holds exactly msgs, each in form(data)."""
    want = {test_id(m[2]): form(m[2]) for m in msgs}
    eq(sorted(got), sorted(want), "%s: messages stored" % what)
    for tid in want:
        eq(got[tid], want[tid], "%s: message %s" % (what, tid))


def fresh_dir(c, name, maildir=False):
    p = os.path.join(c.dir, name)
    if os.path.exists(p):
        shutil.rmtree(p)
    os.makedirs(p)
    if maildir:
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(p, sub))
    return p


def add_message(c, user, tag):
    """Deliver one more message into the user's new/ (as an MTA would)."""
    data = mkmsg(tag, body=[b"A later message.", b".", b"..", b"bye"])
    name = "1732279999.M1P1.%s" % tag
    md = c.maildir(user)
    tmp = os.path.join(md, "tmp", name)
    with open(tmp, "wb") as f:
        f.write(data)
    c.fix_owner(md)
    os.rename(tmp, os.path.join(md, "new", name))
    return ("new", name, data)


STORE_PY = r"""
import os, sys, time
data = sys.stdin.buffer.read()
name = "%d.%d" % (time.time_ns(), os.getpid())
with open(os.path.join(sys.argv[1], name), "wb") as f:
    f.write(data)
"""


# ---------------------------------------------------------------------------
# Real clients.

@test()
def t_fetchmail(c):
    need("fetchmail")
    msgs = sample("fm")
    c.add_user("fred", "fred-pw", msgs=msgs)
    d = c.start()
    home = fresh_dir(c, "fetchmail-home")
    os.chmod(home, 0o700)
    store = os.path.join(c.dir, "store.py")
    with open(store, "w") as f:
        f.write(STORE_PY)
    out_dir = fresh_dir(c, "fm-out")
    idfile = os.path.join(home, "fetchids")

    def rc(mode):
        p = os.path.join(home, "fetchmailrc-" + mode)
        with open(p, "w") as f:
            f.write(textwrap.dedent("""\
                set no syslog
                set invisible
                poll %s with proto POP3 service %d uidl
                    auth password
                    user "fred" there with password "fred-pw" is "%s" here
                    options %s no rewrite no stripcr
                    sslproto ''
                    mda "%s %s %s"
                """) % (HOST, d.port, os.environ.get("USER", "root"), mode,
                        sys.executable, store, out_dir))
        os.chmod(p, 0o600)
        return p
    env = dict(os.environ, FETCHMAILHOME=home, HOME=home)

    def fm(mode, ok=(0,)):
        return run_client(["fetchmail", "-f", rc(mode), "-i", idfile, "-N",
                           "--nosyslog"], "fetchmail (%s)" % mode, ok=ok,
                          env=env)
    # Keep mode: everything, byte for byte (fetchmail strips no CR here).
    fm("keep")
    compare(stored(out_dir), msgs, wire, "fetchmail keep")
    expect_disk(c, "fred", files_of(msgs), "after fetchmail keep")
    # Second run: nothing new (exit 1 = no mail).
    fm("keep", ok=(1,))
    compare(stored(out_dir), msgs, wire, "fetchmail keep, second run")
    # A new message: only it is fetched.
    late = add_message(c, "fred", "fm-late")
    fresh_dir(c, "fm-out")
    fm("keep")
    compare(stored(out_dir), [late], wire, "fetchmail keep after delivery")
    allm = msgs + [late]
    expect_disk(c, "fred", files_of(allm), "after the third fetchmail run")
    # Delete mode: fetch all, delete all.
    fresh_dir(c, "fm-out")
    fm("fetchall no keep")
    compare(stored(out_dir), allm, wire, "fetchmail delete")
    expect_disk(c, "fred", {}, "after fetchmail delete")
    # Polling the empty mailbox: no mail (exit 1), nothing stored.
    fresh_dir(c, "fm-out")
    fm("fetchall no keep", ok=(1,))
    compare(stored(out_dir), [], wire, "fetchmail on an empty mailbox")
    check(d.proc.poll() is None, "daemon died on an empty mailbox")
    eq(lock_files(c, "fred"), [], "lock files")


def getmailrc(c, d, user, pw, dest, delete, read_all):
    """getmail refuses to deliver as root: as root it delivers as the
    daemon's user (which then owns dest)."""
    p = os.path.join(c.dir, "getmailrc-%s" % delete)
    as_user = ""
    if ROOT:
        as_user = "user = %s\n" % base.RUN_USER
        c.fix_owner(dest)
    with open(p, "w") as f:
        f.write(textwrap.dedent("""\
            [retriever]
            type = SimplePOP3Retriever
            server = %s
            port = %d
            username = %s
            password = %s

            [destination]
            type = Maildir
            path = %s/
            %s
            [options]
            verbose = 0
            delete = %s
            read_all = %s
            received = false
            delivered_to = false
            message_log_syslog = false
            """) % (HOST, d.port, user, pw, dest, as_user, delete,
                    read_all))
    return p


@test()
def t_getmail6(c):
    need("getmail")
    msgs = sample("gm")
    c.add_user("gina", "gina-pw", msgs=msgs)
    d = c.start()
    gdir = fresh_dir(c, "getmail-dir")
    out = fresh_dir(c, "gm-out", maildir=True)

    def gm(delete, read_all):
        rc = getmailrc(c, d, "gina", "gina-pw", out, delete, read_all)
        return run_client(["getmail", "--getmaildir", gdir, "--rcfile", rc],
                          "getmail (delete = %s)" % delete)
    # getmail writes LF line ends into a Maildir.
    gm("false", "false")
    compare(stored(out), msgs, lf_form, "getmail delete = false")
    expect_disk(c, "gina", files_of(msgs), "after getmail delete = false")
    gm("false", "false")           # nothing new the second time
    compare(stored(out), msgs, lf_form, "getmail delete = false, again")
    late = add_message(c, "gina", "gm-late")
    allm = msgs + [late]
    out = fresh_dir(c, "gm-out", maildir=True)
    gm("true", "true")
    compare(stored(out), allm, lf_form, "getmail delete = true")
    expect_disk(c, "gina", {}, "after getmail delete = true")
    eq(lock_files(c, "gina"), [], "lock files")


@test()
def t_mpop(c):
    need("mpop")
    msgs = sample("mp")
    c.add_user("mia", "mia-pw", msgs=msgs)
    d = c.start()
    uidls = os.path.join(c.dir, "mpop-uidls")
    home = fresh_dir(c, "mpop-home")
    env = dict(os.environ, HOME=home)

    def mp(keep, out):
        return run_client(
            ["mpop", "--host=" + HOST, "--port=%d" % d.port,
             "--user=mia", "--passwordeval=echo mia-pw", "--auth=user",
             "--tls=off", "--keep=" + keep, "--only-new=on",
             "--uidls-file=" + uidls, "--received-header=off",
             "--delivery=maildir," + out], "mpop --keep=" + keep, env=env)
    out = fresh_dir(c, "mp-out", maildir=True)
    mp("on", out)
    # mpop's maildir delivery stores LF line ends.
    compare(stored(out), msgs, lf_form, "mpop --keep=on")
    expect_disk(c, "mia", files_of(msgs), "after mpop --keep=on")
    mp("on", out)
    compare(stored(out), msgs, lf_form, "mpop --keep=on, second run")
    late = add_message(c, "mia", "mp-late")
    out = fresh_dir(c, "mp-out", maildir=True)
    mp("off", out)
    # Only the new message is fetched; mpop then deletes it and the ones
    # it had fetched before (its documented --keep=off behaviour).
    compare(stored(out), [late], lf_form, "mpop --keep=off (only new)")
    expect_disk(c, "mia", {}, "after mpop --keep=off")
    more = [add_message(c, "mia", "mp-more%d" % i) for i in range(2)]
    os.unlink(uidls)
    out = fresh_dir(c, "mp-out", maildir=True)
    mp("off", out)
    compare(stored(out), more, lf_form, "mpop --keep=off, fresh uidls")
    expect_disk(c, "mia", {}, "after the last mpop --keep=off")
    eq(lock_files(c, "mia"), [], "lock files")


@test()
def t_poplib(c):
    msgs = sample("pl")
    c.add_user("paula", "paula-pw", msgs=msgs)
    d = c.start()
    want = files_of(msgs)
    p = poplib.POP3(HOST, d.port, timeout=10 * SLOW)
    p.user("paula")
    p.pass_("paula-pw")
    _, ul, _ = p.uidl()
    num = {int(a): b.decode() for a, b in (ln.split() for ln in ul)}
    for n, b in sorted(num.items()):
        _, lines, octets = p.retr(n)
        eq(b"\r\n".join(lines) + b"\r\n", wire(want[b]), "poplib RETR %d" % n)
    p.dele(1)
    check(p.quit().startswith(b"+OK"), "QUIT")
    del want[num[1]]
    expect_disk(c, "paula", want, "after poplib DELE 1")


@test()
def t_curl(c):
    need("curl")
    msgs = sample("cu")
    c.add_user("curt", "curt-pw", msgs=msgs)
    d = c.start()
    want = files_of(msgs)
    cn = Conn(d.port)
    cn.login("curt", "curt-pw")
    num = numbers(cn)
    cn.quit()
    url = "pop3://%s:%d/" % (HOST, d.port)
    for n in sorted(num):
        out = subprocess.run(["curl", "-s", "-S", "--max-time", "20",
                              "-u", "curt:curt-pw", url + str(n)],
                             capture_output=True, timeout=30 * SLOW)
        eq(out.returncode, 0, "curl RETR %d exit (%s)" % (n, out.stderr))
        eq(out.stdout, wire(want[num[n]]), "curl RETR %d" % n)
    expect_disk(c, "curt", want, "after curl")


@test()
def t_telnet_expect(c):
    need("expect")
    need("telnet")
    msgs = three("tn", where=("cur", "cur", "cur"))
    c.add_user("ted", "ted-pw", msgs=msgs)
    d = c.start()
    cn = Conn(d.port)
    cn.login("ted", "ted-pw")
    first = numbers(cn)[1]
    cn.quit()
    script = os.path.join(HERE, "expect", "telnet.exp")
    out = run_client(["expect", "-f", script, HOST, str(d.port), "ted",
                      "ted-pw"], "expect telnet session")
    data = files_of(msgs)[first]
    check("+OK" in out, "no +OK in the telnet session: %s" % short(out))
    # The terminal may add CRs; compare line by line.
    lines = [ln.rstrip("\r") for ln in out.split("\n")]
    body = data.split(b"\n\n", 1)[1].replace(b"\r\n", b"\n")
    for ln in body.decode().split("\n"):
        if not ln:
            continue
        want = "." + ln if ln.startswith(".") else ln
        check(want in lines, "telnet output lacks the body line %r: %s"
              % (want, short(out, 800)))
    check(test_id(data) in out, "telnet output lacks the message id")
    expect_disk(c, "ted", files_of(msgs), "after the telnet session")


# ---------------------------------------------------------------------------
# Command patterns of mail programs.

@test()
def t_pattern_foxmail(c):
    """RETR n, DELE n, RETR n+1, DELE n+1 ... QUIT."""
    msgs = sample("fx")
    c.add_user("fox", "fox-pw", msgs=msgs)
    d = c.start()
    want = files_of(msgs)
    a = Conn(d.port)
    a.login("fox", "fox-pw")
    a.ok("STAT")
    num = numbers(a)
    a.listing("LIST")
    for n in sorted(num):
        eq(a.multi("RETR %d" % n), wire(want[num[n]]), "RETR %d" % n)
        a.ok("DELE %d" % n)
    a.quit()
    expect_disk(c, "fox", {}, "after Foxmail's pattern")
    eq(lock_files(c, "fox"), [], "lock files")


@test()
def t_pattern_outlook(c):
    """CAPA, STAT, LIST, UIDL, every RETR, then every DELE, QUIT and close
    at once without reading the reply."""
    msgs = sample("ol")
    c.add_user("otto", "otto-pw", msgs=msgs)
    d = c.start()
    want = files_of(msgs)
    a = Conn(d.port)
    a.ok("CAPA")
    a.multi_body()
    a.login("otto", "otto-pw")
    eq(a.stat()[0], len(msgs), "STAT")
    a.listing("LIST")
    num = numbers(a)
    for n in sorted(num):
        eq(a.multi("RETR %d" % n), wire(want[num[n]]), "RETR %d" % n)
    for n in sorted(num):
        a.ok("DELE %d" % n)
    a.send("QUIT\r\n")
    a.close()
    deadline = time.monotonic() + 5 * SLOW
    while c.disk("otto") and time.monotonic() < deadline:
        time.sleep(0.05)
    expect_disk(c, "otto", {}, "after Outlook's pattern")
    deadline = time.monotonic() + 2 * SLOW
    while lock_files(c, "otto") and time.monotonic() < deadline:
        time.sleep(0.05)
    eq(lock_files(c, "otto"), [], "lock files")
    d.log_lines("user=otto", "reason=quit")


@test()
def t_pattern_remote_management(c):
    """DELE some messages, RETR others (never the deleted), QUIT: exactly
    the undeleted remain, in a second session too."""
    msgs = sample("rm")
    c.add_user("remo", "remo-pw", msgs=msgs)
    d = c.start()
    want = files_of(msgs)
    a = Conn(d.port)
    a.login("remo", "remo-pw")
    num = numbers(a)
    dele = [n for n in sorted(num) if n % 2 == 0]
    for n in dele:
        a.ok("DELE %d" % n)
    for n in sorted(num):
        if n in dele:
            a.err("RETR %d" % n)
        else:
            eq(a.multi("RETR %d" % n), wire(want[num[n]]), "RETR %d" % n)
    a.err("DELE %d" % dele[0])           # already marked
    a.quit()
    for n in dele:
        del want[num[n]]
    expect_disk(c, "remo", want, "after remote management")
    b = Conn(d.port)
    b.login("remo", "remo-pw")
    retr_all(b, want, "second session")
    eq(b.stat()[0], len(want), "STAT in a second session")
    b.quit()
    expect_disk(c, "remo", want, "at the end")


if __name__ == "__main__":
    install_missing()
    sys.exit(faults.run_tests(TESTS, "clients.py", "evpop3d against real "
                              "POP3 clients"))
