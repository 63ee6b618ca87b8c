#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
"""run-bench.py - evpop3d against Dovecot on the same machine.

Sets everything up and runs contrib/bench/popbench against both servers,
A/B alternating (evpop3d, Dovecot, evpop3d, Dovecot...) over several
repetitions, then prints medians, min-max, ratios and the targets of the
performance issue with PASS/FAIL, and writes results and method to
doc/benchmarks.md.  Standard library only; run as root (it installs
dovecot-core and dovecot-pop3d with apt-get when missing, makes the mail
owned by an unprivileged user and raises descriptor limits).

  run-bench.py --evpop3d src/evpop3d --popbench contrib/bench/popbench
  run-bench.py --quick ...        one short repetition, a smoke test

Exit status: 0 when every target is met (or, with --quick, when every
workload ran without errors), 1 when a target is missed or a workload had
errors, 2 when the set-up failed.
"""
import argparse
import datetime
import grp
import os
import platform
import pwd
import random
import resource
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HOST = "127.0.0.1"
NOFILE = 262144
NOFILE_GOT = NOFILE
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


class SetupError(Exception):
    pass


def log(msg):
    sys.stdout.write("[%s] %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stdout.flush()


# ---------------------------------------------------------------------------
# Parameters

class Params:
    """Workload sizes; --quick scales them down for a smoke run."""

    def __init__(self, a):
        self.quick = a.quick
        self.reps = a.reps if a.reps else (1 if a.quick else 5)
        # One client per mailbox: evpop3d is latency-bound below that (one
        # event loop; 16 clients leave it 15 % idle), Dovecot is CPU-bound
        # from 16 clients on.
        self.sess_clients = a.sessions_clients if a.sessions_clients else 64
        self.sess_mailboxes = 64
        self.sess_msgs = 20
        self.sess_warmup = 0.5 if a.quick else 2.0
        self.sess_seconds = 2.0 if a.quick else 10.0
        self.retr_warmup = 0.5 if a.quick else 1.0
        self.retr_seconds = 1.5 if a.quick else 5.0
        self.big_mib = 16 if a.quick else 32
        self.idle_n = 300 if a.quick else 5000
        # Dovecot needs about a minute of CPU to start 5000 pop3 processes,
        # and the memory per connection varies by under 1 % between runs:
        # two repetitions of this workload keep a full run near 15 minutes.
        self.idle_reps = min(self.reps, a.idle_reps if a.idle_reps else 2)
        self.huge_n = 10000 if a.quick else 100000
        self.hold_n = 10000
        if a.huge:
            self.huge_n = a.huge
        if a.idle:
            self.idle_n = a.idle
        self.workloads = a.workloads.split(",")


def password_of(user):
    return "pw-%s-bench" % user


# ---------------------------------------------------------------------------
# /proc helpers

def children_map():
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                s = f.read()
            ppid = int(s[s.rindex(")") + 2:].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        kids.setdefault(ppid, []).append(int(d))
    return kids


def descendants(pid):
    """pid and all its descendants."""
    kids = children_map()
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            s = f.read()
        return s[s.rindex(")") + 2] != "Z"
    except OSError:
        return False


def pss_kib(pid):
    """PSS (KiB) summed over pid and its descendants."""
    total = 0
    for p in descendants(pid):
        try:
            with open("/proc/%d/smaps_rollup" % p) as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            pass
    return total


def cpu_seconds(pid):
    """CPU time (user+system, s) of pid and its live descendants, plus the
    children they have already reaped (Dovecot's finished pop3 processes)."""
    ticks = 0
    for p in descendants(pid):
        try:
            with open("/proc/%d/stat" % p) as f:
                s = f.read()
            fields = s[s.rindex(")") + 2:].split()
            ticks += int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])
        except (OSError, ValueError, IndexError):
            pass
    return ticks / CLK_TCK


def machine_busy():
    """CPU seconds spent busy by the whole machine since boot (all CPUs)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal ...
    return (v[0] + v[1] + v[2] + v[5] + v[6] + (v[7] if len(v) > 7 else 0)) / CLK_TCK


def snapshot(pid):
    return (cpu_seconds(pid), machine_busy())


def machine_load(secs=2.0):
    """Share of the machine (0..1) busy over secs, and the busiest
    processes then, to warn when something else is running."""
    def per_proc():
        out = {}
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % d) as f:
                    s = f.read()
                name = s[s.index("(") + 1:s.rindex(")")]
                fl = s[s.rindex(")") + 2:].split()
                out[int(d)] = (name, int(fl[11]) + int(fl[12]))
            except (OSError, ValueError, IndexError):
                pass
        return out
    b0, p0, t0 = machine_busy(), per_proc(), time.time()
    time.sleep(secs)
    b1, p1, t1 = machine_busy(), per_proc(), time.time()
    share = (b1 - b0) / (t1 - t0) / (os.cpu_count() or 1)
    top = []
    for pid, (name, t) in p1.items():
        if pid in p0 and pid != os.getpid():
            d = (t - p0[pid][1]) / CLK_TCK / (t1 - t0)
            if d > 0.05:
                top.append((d, "%s[%d] %.0f%%" % (name, pid, d * 100)))
    top.sort(reverse=True)
    return share, [x[1] for x in top[:5]]


def warm_page_cache(top):
    """Read every file under top, so that it is in the page cache."""
    for dp, dns, fns in os.walk(top):
        for fn in fns:
            try:
                with open(os.path.join(dp, fn), "rb") as f:
                    while f.read(1 << 20):
                        pass
            except OSError:
                pass


def nprocs(pid):
    return len(descendants(pid))


def raise_nofile():
    """Descriptor limit to NOFILE, or as far as the hard limit allows (a
    container may deny root CAP_SYS_RESOURCE)."""
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))
    except (ValueError, OSError):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def free_port():
    s = socket.socket()
    s.bind((HOST, 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port, proc, timeout=30.0):
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            return False
        try:
            s = socket.create_connection((HOST, port), timeout=1)
            s.close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def kill_tree(proc, timeout=30.0):
    """SIGTERM the process, wait; then make sure no descendant survives."""
    if proc is None:
        return
    family = descendants(proc.pid)[1:] if proc.poll() is None else []
    if proc.poll() is None:
        try:
            proc.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            for p in reversed(descendants(proc.pid)):
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            proc.wait(10)
    end = time.time() + 10
    left = [p for p in family if alive(p)]
    while left and time.time() < end:
        for p in left:
            try:
                os.kill(p, signal.SIGTERM)
            except ProcessLookupError:
                pass
        time.sleep(0.2)
        left = [p for p in left if alive(p)]
    for p in left:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass


# ---------------------------------------------------------------------------
# Fixtures: realistic plain-text mail, LF line ends

WORDS = ("the of and to in is that for it as was with be by on not he this are or his "
         "from at which but have an they you were her she there one all we their can has "
         "been if more when will would who so no meeting report project budget review "
         "please attached find below thanks regards schedule update server mailbox "
         "delivery customer invoice order shipping week monday friday office team "
         "question answer issue version release test result figure table note draft "
         "contract payment account balance support request ticket status today "
         "tomorrow yesterday morning afternoon evening call phone address street city").split()
NAMES = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan",
         "judy", "mallory", "oscar", "peggy", "trent", "victor", "walter"]
DOMAINS = ["example.org", "example.com", "example.net", "mail.example.org"]


def make_corpus(rng, nlines=40000):
    """Lines of prose wrapped at 72 columns, with quoted replies, blank lines
    between paragraphs, a few lines starting with '.' (dot-stuffing) and
    signatures."""
    lines = []
    while len(lines) < nlines:
        kind = rng.random()
        para = []
        for _ in range(rng.randint(2, 8)):
            words = [rng.choice(WORDS) for _ in range(rng.randint(6, 13))]
            para.append(" ".join(words).capitalize() + rng.choice([".", ".", ",", "?", ":"]))
        text = " ".join(para)
        prefix = "> " if kind < 0.15 else ""
        cur = prefix
        for w in text.split():
            if len(cur) + len(w) + 1 > 72:
                lines.append(cur.rstrip())
                cur = prefix
            cur += w + " "
        lines.append(cur.rstrip())
        if kind > 0.97:
            lines.append("." + rng.choice(WORDS) + " starts with a dot")
        if kind > 0.93 and kind <= 0.97:
            lines += ["-- ", rng.choice(NAMES).capitalize() + " " + rng.choice(NAMES).capitalize(),
                      "Phone +1 555 %04d" % rng.randint(0, 9999)]
        lines.append("")
    return lines


def headers(rng, n):
    a, b = rng.choice(NAMES), rng.choice(NAMES)
    da, db = rng.choice(DOMAINS), rng.choice(DOMAINS)
    t = 1700000000 + n * 37
    date = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(t))
    subj = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 7))).capitalize()
    return [
        "Return-Path: <%s@%s>" % (a, da),
        "Delivered-To: %s@%s" % (b, db),
        "Received: from mx%d.%s (mx%d.%s [192.0.2.%d])" % (n % 7, da, n % 7, da, n % 250 + 1),
        "\tby mail.%s (Postfix) with ESMTPS id %08X" % (db, n * 2654435761 % (1 << 32)),
        "\tfor <%s@%s>; %s" % (b, db, date),
        "From: %s <%s@%s>" % (a.capitalize(), a, da),
        "To: %s <%s@%s>" % (b.capitalize(), b, db),
        "Subject: %s" % subj,
        "Date: %s" % date,
        "Message-ID: <%d.%d@%s>" % (t, n, da),
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: 8bit",
    ]


def text_message(rng, corpus, n, size):
    """A message of about `size` octets (LF line ends)."""
    hdr = "\n".join(headers(rng, n)) + "\n\n"
    need = max(size - len(hdr), 40)
    start = rng.randrange(0, len(corpus) - 1)
    body, got, i = [], 0, start
    while got < need:
        line = corpus[i % len(corpus)]
        body.append(line)
        got += len(line) + 1
        i += 1
    return (hdr + "\n".join(body) + "\n").encode()


def big_message(rng, n, size):
    """A text part and a base64 attachment (76-column lines), about size."""
    hdr = headers(rng, n)
    hdr[-2] = 'Content-Type: multipart/mixed; boundary="=-bench-boundary"'
    hdr.pop()
    head = "\n".join(hdr) + "\n\n--=-bench-boundary\nContent-Type: text/plain\n\n" \
        "The archive you asked for is attached.\n\n" \
        "--=-bench-boundary\nContent-Type: application/octet-stream; name=archive.bin\n" \
        "Content-Transfer-Encoding: base64\n\n"
    import base64
    raw = rng.randbytes(size * 3 // 4)
    b = base64.b64encode(raw)
    lines = [b[i:i + 76] for i in range(0, len(b), 76)]
    return head.encode() + b"\n".join(lines) + b"\n--=-bench-boundary--\n"


def wire_form(data):
    """What RETR sends for on-disk `data`: CRLF line ends, dot-stuffed, and
    the terminating '.CRLF'."""
    d = data.replace(b"\r\n", b"\n")
    if d and not d.endswith(b"\n"):
        d += b"\n"
    out = []
    for line in d.split(b"\n")[:-1]:
        out.append(b"." + line if line.startswith(b".") else line)
    return b"\r\n".join(out) + b"\r\n.\r\n"


class Fixtures:
    """One mail tree per server (so neither sees the other's index or cache
    files), identical contents, owned by the unprivileged user."""

    def __init__(self, top, p, uid, gid):
        self.top, self.p, self.uid, self.gid = top, p, uid, gid
        self.roots = {"evpop3d": os.path.join(top, "mail-evpop3d"),
                      "dovecot": os.path.join(top, "mail-dovecot")}
        self.users = []
        self.seq = 0

    def maildir(self, server, user):
        return os.path.join(self.roots[server], user, "Maildir")

    def name(self):
        self.seq += 1
        # Maildir names as delivery agents write them, without ,S= / ,W=
        # size fields, already seen (no flag changes).
        return "%d.M%06dP%dQ%d.bench.example.org:2,S" % (
            1700000000 + self.seq // 50, self.seq % 1000000, 4000 + self.seq % 3000, self.seq)

    def mailbox(self, user, msgs):
        """Write the messages (any iterable) into user's Maildir in every
        tree, under the same file names."""
        self.users.append(user)
        curs = []
        for root in self.roots.values():
            md = os.path.join(root, user, "Maildir")
            for sub in ("cur", "new", "tmp"):
                os.makedirs(os.path.join(md, sub))
            curs.append(os.path.join(md, "cur"))
        for data in msgs:
            nm = self.name()
            for cur in curs:
                with open(os.path.join(cur, nm), "wb") as f:
                    f.write(data)

    def build(self):
        p = self.p
        rng = random.Random(20240611)
        for r in self.roots.values():
            os.makedirs(r)
        corpus = make_corpus(rng)
        t0 = time.time()
        if "sessions" in p.workloads:
            for i in range(1, p.sess_mailboxes + 1):
                self.mailbox("u%d" % i, [text_message(rng, corpus, self.seq + k,
                                                      rng.randint(1024, 100 * 1024))
                                         for k in range(p.sess_msgs)])
        if "retr" in p.workloads:
            big = big_message(rng, 1, p.big_mib * 1024 * 1024)
            self.mailbox("big1", [big])
            self.wire = os.path.join(self.top, "big1.wire")
            wire = wire_form(big)
            with open(self.wire, "wb") as f:
                f.write(wire)
            self.wire_octets = len(wire) - 3
            self.big_size = len(big)
        if "idle" in p.workloads:
            for i in range(1, p.idle_n + 1):
                self.mailbox("idle%d" % i, [text_message(rng, corpus, self.seq + k,
                                                         rng.randint(1500, 6000))
                                            for k in range(2)])
        if "open" in p.workloads:
            msgs = (text_message(rng, corpus, k, rng.randint(800, 4000))
                    for k in range(p.huge_n))
            self.mailbox("huge1", msgs)
        subprocess.run(["chown", "-R", "%d:%d" % (self.uid, self.gid)] + list(self.roots.values()),
                       check=True)
        log("fixtures: %d mailboxes in %.1f s" % (len(self.users), time.time() - t0))

    def passwords(self):
        """SHA512-CRYPT hashes (openssl passwd -6, random salt each)."""
        users = self.users
        hashes = {}
        nproc = os.cpu_count() or 1
        chunks = [users[i::nproc] for i in range(nproc)]
        procs = []
        for ch in chunks:
            if not ch:
                continue
            pr = subprocess.Popen(["openssl", "passwd", "-6", "-stdin"], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)
            procs.append((ch, pr))
        outs = []
        for ch, pr in procs:
            out, _ = pr.communicate("".join(password_of(u) + "\n" for u in ch))
            outs.append((ch, out.split()))
        for ch, hs in outs:
            if len(hs) != len(ch) or not all(h.startswith("$6$") for h in hs):
                raise SetupError("openssl passwd -6 -stdin gave unexpected output")
            hashes.update(zip(ch, hs))
        return hashes


# ---------------------------------------------------------------------------
# Servers

def preexec_limits():
    raise_nofile()


class Server:
    name = "?"
    label = "?"

    def __init__(self, top, fx, uid, gid):
        self.top, self.fx, self.uid, self.gid = top, fx, uid, gid
        self.port = None
        self.proc = None
        self.logf = os.path.join(top, "%s.log" % self.name)

    def spawn(self, argv):
        """Start argv (a list, or a function of the port giving one)."""
        self.port = free_port()
        self.write_conf()
        if callable(argv):
            argv = argv(self.port)
        lf = open(self.logf, "ab")
        self.proc = subprocess.Popen(argv, stdout=lf, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, cwd=self.top,
                                     preexec_fn=preexec_limits)
        lf.close()
        if not wait_port(self.port, self.proc):
            tail = self.log_tail()
            kill_tree(self.proc)
            self.proc = None
            raise SetupError("%s did not start:\n%s" % (self.name, tail))

    def stop(self):
        kill_tree(self.proc)
        self.proc = None

    def log_tail(self, n=4000):
        try:
            with open(self.logf, "rb") as f:
                return f.read()[-n:].decode("latin-1")
        except OSError:
            return ""


class Evpop(Server):
    name = "evpop3d"
    label = "evpop3d"

    def __init__(self, top, fx, uid, gid, binary, hashes, user, group):
        super().__init__(top, fx, uid, gid)
        self.bin, self.user, self.group = binary, user, group
        self.passwd = os.path.join(top, "evpop3d.passwd")
        with open(self.passwd, "w") as f:
            for u in fx.users:
                f.write("%s:%s\n" % (u, hashes[u]))
        os.chmod(self.passwd, 0o600)
        self.conf = os.path.join(top, "evpop3d.conf")
        self.version = subprocess.run([binary, "-V"], capture_output=True,
                                      text=True).stdout.strip()

    def write_conf(self):
        with open(self.conf, "w") as f:
            f.write("# written by contrib/bench/run-bench.py\n"
                    "listen %s:%d\n" % (HOST, self.port) +
                    "passwd_file %s\n" % self.passwd +
                    "mail_location %s/%%u/Maildir\n" % self.fx.roots["evpop3d"] +
                    "allow_plaintext yes\n"
                    "auth_fail_delay_ms 0\n"
                    "max_connections 20000\n")
            if os.geteuid() == 0:
                f.write("user %s\ngroup %s\n" % (self.user, self.group))

    def start(self):
        self.spawn([self.bin, "-c", self.conf, "-F"])

    def drop_cache(self, user):
        md = self.fx.maildir("evpop3d", user)
        for fn in os.listdir(md):
            if fn.startswith("evpop3d"):
                os.unlink(os.path.join(md, fn))


class Dovecot(Server):
    name = "dovecot"
    label = "Dovecot"

    def __init__(self, top, fx, uid, gid, hashes, pop3_service):
        super().__init__(top, fx, uid, gid)
        self.dir = os.path.join(top, "dovecot")
        self.index = os.path.join(top, "dovecot-index")
        os.makedirs(os.path.join(self.dir, "state"))
        os.makedirs(self.index)
        os.chown(self.index, uid, gid)
        self.passwd = os.path.join(self.dir, "passwd")
        root = fx.roots["dovecot"]
        with open(self.passwd, "w") as f:
            for u in fx.users:
                f.write("%s:{SHA512-CRYPT}%s:%d:%d::%s::\n" % (u, hashes[u], uid, gid,
                                                             os.path.join(root, u)))
        # Read by the auth process, which runs as the dovecot user.
        os.chown(self.passwd, 0, grp.getgrnam("dovecot").gr_gid)
        os.chmod(self.passwd, 0o640)
        self.conf = os.path.join(self.dir, "dovecot.conf")
        self.pop3_service = pop3_service
        self.version = subprocess.run(["dovecot", "--version"], capture_output=True,
                                      text=True).stdout.strip()

    def write_conf(self):
        d = self.dir
        with open(self.conf, "w") as f:
            f.write("""# written by contrib/bench/run-bench.py: a self-contained instance
instance_name = popbench-%(pid)d
base_dir = %(d)s/run
state_dir = %(d)s/state
log_path = %(d)s/dovecot.log
protocols = pop3
listen = %(host)s
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
auth_cache_size = 0
login_trusted_networks = 127.0.0.0/8
first_valid_uid = %(uid)d
first_valid_gid = %(gid)d
mail_location = maildir:%(root)s/%%u/Maildir:INDEX=%(index)s/%%u
pop3_uidl_format = %%f
pop3_lock_session = yes
pop3_no_flag_updates = yes
default_client_limit = 20000
default_vsz_limit = 1G
passdb {
  driver = passwd-file
  args = %(passwd)s
}
userdb {
  driver = passwd-file
  args = %(passwd)s
}
service pop3-login {
  inet_listener pop3 {
    address = %(host)s
    port = %(port)d
  }
  inet_listener pop3s {
    port = 0
  }
  service_count = 0
  process_min_avail = 2
}
service pop3 {
%(pop3)s
}
""" % dict(pid=os.getpid(), d=d, host=HOST, uid=self.uid, gid=self.gid,
           root=self.fx.roots["dovecot"], index=self.index, passwd=self.passwd,
           port=self.port, pop3=self.pop3_service))

    def start(self):
        self.spawn(["dovecot", "-F", "-c", self.conf])
        # Let the pre-started login and pop3 processes come up.
        time.sleep(0.5)

    def log_tail(self, n=4000):
        out = super().log_tail(n)
        try:
            with open(os.path.join(self.dir, "dovecot.log"), "rb") as f:
                out += f.read()[-n:].decode("latin-1")
        except OSError:
            pass
        return out

    def warm(self, pattern):
        """Build the index of the users matching pattern (as their first
        POP3 login would), so that a workload sees returning users."""
        self.start()
        try:
            r = subprocess.run(["doveadm", "-c", self.conf, "mailbox", "status", "-u", pattern,
                                "messages vsize", "INBOX"], capture_output=True, text=True)
            if r.returncode != 0:
                raise SetupError("doveadm mailbox status failed: %s" % r.stderr[-1000:])
        finally:
            self.stop()

    def drop_cache(self, user):
        md = self.fx.maildir("dovecot", user)
        for fn in os.listdir(md):
            if fn.startswith("dovecot"):
                os.unlink(os.path.join(md, fn))
        shutil.rmtree(os.path.join(self.index, user), ignore_errors=True)


class Sendfile(Server):
    """popbench serve: the bare sender baseline for RETR."""
    name = "sendfile"
    label = "bare sendfile"

    def __init__(self, top, fx, uid, gid, popbench):
        super().__init__(top, fx, uid, gid)
        self.popbench = popbench

    def write_conf(self):
        pass

    def start(self):
        self.spawn(lambda port: [self.popbench, "serve", "-p", str(port), "-f", self.fx.wire])


# ---------------------------------------------------------------------------
# Client runs

class Run:
    """Run popbench with a timeout; parse its key=value result line."""

    def __init__(self, popbench):
        self.popbench = popbench

    def run(self, args, timeout):
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.time()
        p = subprocess.run([self.popbench] + args, capture_output=True, text=True,
                           timeout=timeout, preexec_fn=preexec_limits)
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        res = parse_kv(p.stdout)
        res["_client_cpu"] = (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)
        res["_wall"] = time.time() - t0
        if p.stderr.strip():
            res["_stderr"] = p.stderr.strip()[-1500:]
        if not res.get("_line"):
            raise SetupError("popbench %s gave no result (rc %d):\n%s\n%s" % (
                " ".join(args), p.returncode, p.stdout[-2000:], p.stderr[-2000:]))
        return res


def parse_kv(out):
    res = {}
    for line in out.splitlines():
        parts = line.split()
        if not parts or "=" in parts[0]:
            continue
        res = {"_line": line, "_kind": parts[0]}
        for kv in parts[1:]:
            k, _, v = kv.partition("=")
            try:
                res[k] = float(v) if "." in v else int(v)
            except ValueError:
                res[k] = v
    return res


class Bench:
    def __init__(self, args, p):
        self.a, self.p = args, p
        self.results = {}     # (metric, server) -> [values]
        self.details = []     # per-run lines for the raw data section
        self.errors = []
        self.cpu = {}         # (workload, server) -> [(server_cpu_s, client_cpu_s, wall_s)]
        self.popbench = os.path.abspath(args.popbench)
        self.client = Run(self.popbench)
        self.busy_runs = 0
        self.wait_left = args.wait_idle
        self.warmed = set()

    def add(self, metric, server, value):
        self.results.setdefault((metric, server), []).append(value)

    def note_cpu(self, workload, server, c0, c1, ccpu, wall):
        """Server, client and everything else's CPU seconds over a run."""
        scpu = c1[0] - c0[0]
        other = max(0.0, (c1[1] - c0[1]) - scpu - ccpu)
        self.cpu.setdefault((workload, server), []).append((scpu, ccpu, wall, other))

    def error(self, what, res):
        msg = "%s: %s %s" % (what, res.get("_line", ""), res.get("_stderr", ""))
        self.errors.append(msg)
        log("ERROR " + msg)

    # -- workloads ---------------------------------------------------------
    def w_sessions(self, srv, rep):
        p = self.p
        srv.start()
        try:
            c0 = snapshot(srv.proc.pid)
            res = self.client.run(["sessions", "-p", str(srv.port), "-c", str(p.sess_clients),
                                   "-n", str(p.sess_mailboxes), "-U", "u", "-w", "pw-%u-bench",
                                   "-s", str(p.sess_warmup), "-t", str(p.sess_seconds)],
                                  timeout=p.sess_warmup + p.sess_seconds + 60)
            c1 = snapshot(srv.proc.pid)
        finally:
            srv.stop()
        self.add("sessions", srv.name, res["rate"])
        self.add("sessions_p50", srv.name, res["p50_ms"])
        self.add("sessions_p99", srv.name, res["p99_ms"])
        self.note_cpu("sessions", srv.name, c0, c1, res["_client_cpu"], res["_wall"])
        if res.get("errors", 1) or res.get("sessions", 0) == 0:
            self.error("sessions %s rep %d" % (srv.name, rep), res)
        self.details.append("sessions %s rep %d: %s" % (srv.name, rep, res["_line"]))
        log("sessions %-8s %8.1f sessions/s  p50 %.1f ms  p99 %.1f ms  errors %s inuse %s" % (
            srv.name, res["rate"], res["p50_ms"], res["p99_ms"], res["errors"], res["inuse"]))

    def w_retr(self, srv, rep):
        p = self.p
        srv.start()
        try:
            c0 = snapshot(srv.proc.pid)
            res = self.client.run(["retr", "-p", str(srv.port), "-c", "1", "-U", "big",
                                   "-w", "pw-%u-bench", "-s", str(p.retr_warmup),
                                   "-t", str(p.retr_seconds)],
                                  timeout=p.retr_warmup + p.retr_seconds + 60)
            time.sleep(0.2)     # the bare sender's child is reaped
            c1 = snapshot(srv.proc.pid)
        finally:
            srv.stop()
        self.add("retr", srv.name, res["mbps"])
        self.note_cpu("retr", srv.name, c0, c1, res["_client_cpu"], res["_wall"])
        if res.get("errors", 1) or res.get("retrs", 0) == 0:
            self.error("retr %s rep %d" % (srv.name, rep), res)
        if res.get("retrs", 0) and res["octets"] != res["retrs"] * self.fx_wire_octets:
            self.error("retr %s rep %d: %d octets per RETR, want %d" % (
                srv.name, rep, res["octets"] // res["retrs"], self.fx_wire_octets), res)
        self.details.append("retr %s rep %d: %s" % (srv.name, rep, res["_line"]))
        log("retr     %-8s %8.1f MB/s  (%d RETRs)" % (srv.name, res["mbps"], res.get("retrs", 0)))

    def warm_idle(self, srv):
        """Before the first idle run, let every idle mailbox be opened once
        (Dovecot builds its index then, at about 230 KiB more per pop3
        process than a returning user costs): measure returning users."""
        if srv.name in self.warmed:
            return
        self.warmed.add(srv.name)
        t0 = time.time()
        if srv.name == "dovecot":
            srv.warm("idle*")
        else:
            srv.start()
            try:
                cl = subprocess.Popen([self.popbench, "idle", "-p", str(srv.port),
                                       "-N", str(self.p.idle_n), "-q", "100", "-U", "idle",
                                       "-w", "pw-%u-bench"], stdout=subprocess.PIPE,
                                      stderr=subprocess.DEVNULL, text=True,
                                      preexec_fn=preexec_limits)
                cl.stdout.readline()
                cl.send_signal(signal.SIGTERM)
                cl.communicate(timeout=60)
            finally:
                srv.stop()
        log("idle     %-8s mailboxes opened once beforehand in %.1f s" % (
            srv.name, time.time() - t0))

    def w_idle(self, srv, rep):
        p = self.p
        self.warm_idle(srv)
        srv.start()
        cl = None
        try:
            time.sleep(1.0)
            before = pss_kib(srv.proc.pid)
            procs_before = nprocs(srv.proc.pid)
            c0 = snapshot(srv.proc.pid)
            t0 = time.time()
            cl = subprocess.Popen([self.popbench, "idle", "-p", str(srv.port), "-N", str(p.idle_n),
                                   "-q", "100", "-U", "idle", "-w", "pw-%u-bench"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  preexec_fn=preexec_limits)
            line = ""
            end = time.time() + 300
            while time.time() < end:
                r, _, _ = select.select([cl.stdout], [], [], 1.0)
                if r:
                    line = cl.stdout.readline()
                    if not line or line.startswith("ready"):
                        break
                if cl.poll() is not None:
                    break
            res = parse_kv(line)
            setup = time.time() - t0
            time.sleep(1.0)
            after = pss_kib(srv.proc.pid)
            procs_after = nprocs(srv.proc.pid)
            c1 = snapshot(srv.proc.pid)
            cl.send_signal(signal.SIGTERM)
            out, err = cl.communicate(timeout=60)
            end_res = parse_kv(out)
        finally:
            if cl is not None and cl.poll() is None:
                cl.kill()
                cl.wait()
            srv.stop()
        ok = res.get("ok", 0)
        per = (after - before) / ok if ok else float("nan")
        self.add("idle", srv.name, per)
        self.note_cpu("idle", srv.name, c0, c1, 0.0, setup)
        line = "ok=%s errors=%s pss_before_kib=%d pss_after_kib=%d per_conn_kib=%.1f " \
               "processes=%d->%d login_all_s=%.1f end: %s" % (
                   ok, res.get("errors"), before, after, per, procs_before, procs_after, setup,
                   end_res.get("_line", "?"))
        self.details.append("idle %s rep %d: %s" % (srv.name, rep, line))
        if ok != p.idle_n or res.get("errors", 1) or end_res.get("ok") != p.idle_n:
            self.error("idle %s rep %d" % (srv.name, rep),
                       {"_line": line, "_stderr": err.strip()[-1500:]})
        log("idle     %-8s %8.1f KiB/connection (PSS %d -> %d KiB, %d connections, %.1f s)" % (
            srv.name, per, before, after, ok, setup))

    def w_open(self, srv, rep):
        p = self.p
        srv.drop_cache("huge1")
        warm_page_cache(self.fx.maildir(srv.name, "huge1"))
        srv.start()
        try:
            c0 = snapshot(srv.proc.pid)
            args = ["open", "-p", str(srv.port), "-U", "huge", "-w", "pw-%u-bench"]
            first = self.client.run(args, timeout=600)
            second = self.client.run(args, timeout=600)
            c1 = snapshot(srv.proc.pid)
        finally:
            srv.stop()
        for tag, res in (("first", first), ("second", second)):
            if res.get("ok") != 1 or res.get("messages") != p.huge_n or \
                    res.get("uidl_lines") != p.huge_n or res.get("list_lines") != p.huge_n:
                self.error("open %s %s rep %d" % (tag, srv.name, rep), res)
            self.details.append("open-%s %s rep %d: %s" % (tag, srv.name, rep, res["_line"]))
        self.add("open1", srv.name, first["stat_ms"])
        self.add("open2", srv.name, second["stat_ms"])
        self.add("uidl", srv.name, second["uidl_ms"])
        self.add("list", srv.name, second["list_ms"])
        self.note_cpu("open", srv.name, c0, c1, first["_client_cpu"] + second["_client_cpu"],
                      first["_wall"] + second["_wall"])
        log("open     %-8s first %.1f ms  second %.1f ms  UIDL %.1f ms  LIST %.1f ms" % (
            srv.name, first["stat_ms"], second["stat_ms"], second["uidl_ms"], second["list_ms"]))

    def w_hold(self, srv, rep):
        p = self.p
        srv.start()
        try:
            res = self.client.run(["hold", "-p", str(srv.port), "-N", str(p.hold_n), "-q", "500",
                                   "-t", "120"], timeout=180)
            pss = pss_kib(srv.proc.pid)
        finally:
            srv.stop()
        good = res.get("ok") == p.hold_n and res.get("answered") == p.hold_n and \
            res.get("errors") == 0 and res.get("refused") == 0
        self.add("hold", srv.name, res.get("answered", 0) if good else 0)
        self.details.append("hold %s rep %d: %s" % (srv.name, rep, res["_line"]))
        if not good:
            self.error("hold %s rep %d" % (srv.name, rep), res)
        log("hold     %-8s %d/%d connections answered, %s refused, %s errors, open in %s ms" % (
            srv.name, res.get("answered", 0), p.hold_n, res.get("refused"), res.get("errors"),
            res.get("open_ms")))

    def run_all(self, servers):
        ev, dc, sf = servers["evpop3d"], servers["dovecot"], servers.get("sendfile")
        plan = {
            "sessions": (self.w_sessions, [ev, dc]),
            "retr": (self.w_retr, [ev, dc, sf]),
            "idle": (self.w_idle, [ev, dc]),
            "open": (self.w_open, [ev, dc]),
            "hold": (self.w_hold, [ev]),
        }
        for rep in range(1, self.p.reps + 1):
            log("=== repetition %d of %d" % (rep, self.p.reps))
            for w in self.p.workloads:
                fn, order = plan[w]
                if w == "idle" and rep > self.p.idle_reps:
                    continue
                for srv in order:
                    self.wait_quiet()
                    fn(srv, rep)

    def wait_quiet(self):
        """On a shared machine, wait until other processes leave the CPUs
        mostly idle before a run: up to 20 s each time, --wait-idle
        seconds in all."""
        end = time.time() + min(20.0, self.wait_left)
        t0 = time.time()
        try:
            while True:
                share, busiest = machine_load(0.5)
                if share < 0.15:
                    return
                if time.time() >= end:
                    if self.wait_left > 0:
                        log("machine still %.0f%% busy (%s); running anyway" % (
                            share * 100, ", ".join(busiest)))
                    self.busy_runs += 1
                    return
                time.sleep(1.0)
        finally:
            self.wait_left = max(0.0, self.wait_left - (time.time() - t0))


# ---------------------------------------------------------------------------
# Report

def med(xs):
    return statistics.median(xs) if xs else float("nan")


def div(a, b):
    """a / b, NaN when either is missing or b is zero."""
    if a != a or b != b or b == 0:
        return float("nan")
    return a / b


def fmt(v, unit_digits=1):
    if v != v:
        return "n/a"
    if abs(v) >= 1000:
        return "%.0f" % v
    return "%.*f" % (unit_digits, v)


def cell(xs, digits=1):
    if not xs:
        return "n/a"
    return "%s (%s-%s)" % (fmt(med(xs), digits), fmt(min(xs), digits), fmt(max(xs), digits))


def build_table(b):
    """Rows: (workload, evpop3d, Dovecot, ratio text, target text, verdict or None)."""
    R = b.results
    rows = []

    def get(m, s):
        return R.get((m, s), [])

    if ("sessions", "evpop3d") in R:
        e, d = get("sessions", "evpop3d"), get("sessions", "dovecot")
        ratio = div(med(e), med(d))
        rows.append(("sessions/s (%d clients, %d mailboxes x %d msgs)" % (
            b.p.sess_clients, b.p.sess_mailboxes, b.p.sess_msgs), cell(e), cell(d),
                     "%.2fx" % ratio, ">= 2x Dovecot", ratio >= 2.0))
        rows.append(("  session latency p50, ms", cell(get("sessions_p50", "evpop3d")),
                     cell(get("sessions_p50", "dovecot")), "", "", None))
        rows.append(("  session latency p99, ms", cell(get("sessions_p99", "evpop3d")),
                     cell(get("sessions_p99", "dovecot")), "", "", None))
    if ("retr", "evpop3d") in R:
        e, d, s = get("retr", "evpop3d"), get("retr", "dovecot"), get("retr", "sendfile")
        ratio = div(med(e), med(s))
        rows.append(("RETR MB/s, %d MiB message, 1 client" % b.p.big_mib, cell(e), cell(d),
                     "%.2fx sendfile" % ratio, ">= 0.9x bare sendfile", ratio >= 0.9))
        rows.append(("  bare sendfile sender, MB/s", cell(s), "-", "", "", None))
        rows.append(("  RETR vs Dovecot", "", "", "%.2fx" % div(med(e), med(d)),
                     "", None))
    if ("idle", "evpop3d") in R:
        e, d = get("idle", "evpop3d"), get("idle", "dovecot")
        ratio = div(med(d), med(e))
        rows.append(("idle KiB/connection (PSS, %d logged in)" % b.p.idle_n, cell(e), cell(d),
                     "1/%.1f" % ratio, "<= 1/30 of Dovecot", ratio >= 30.0))
    if ("open1", "evpop3d") in R:
        for m, label, want in (("open1", "first open, ms to STAT reply", 1.0),
                               ("open2", "second open, ms to STAT reply", 3.0)):
            e, d = get(m, "evpop3d"), get(m, "dovecot")
            ratio = div(med(d), med(e))
            tgt = "no slower than Dovecot" if want == 1.0 else ">= 3x faster than Dovecot"
            rows.append(("%dk mailbox: %s" % (b.p.huge_n // 1000, label), cell(e), cell(d),
                         "%.2fx faster" % ratio, tgt, ratio >= want))
        for m, label in (("uidl", "full UIDL, ms"), ("list", "full LIST, ms")):
            e, d = get(m, "evpop3d"), get(m, "dovecot")
            ratio = div(med(d), med(e))
            rows.append(("%dk mailbox: %s" % (b.p.huge_n // 1000, label), cell(e), cell(d),
                         "%.2fx faster" % ratio, "", None))
    if ("hold", "evpop3d") in R:
        e = get("hold", "evpop3d")
        good = all(v == b.p.hold_n for v in e)
        rows.append(("%d concurrent connections held" % b.p.hold_n,
                     "%d/%d runs clean" % (sum(1 for v in e if v == b.p.hold_n), len(e)),
                     "-", "", "all answered, no errors", good))
    return rows


def table_text(rows):
    heads = ("workload", "evpop3d median (min-max)", "Dovecot median (min-max)", "ratio",
             "target", "result")
    data = [(r[0], r[1], r[2], r[3], r[4], "" if r[5] is None else ("PASS" if r[5] else "FAIL"))
            for r in rows]
    w = [max(len(x[i]) for x in data + [heads]) for i in range(6)]
    out = ["  ".join(h.ljust(w[i]) for i, h in enumerate(heads)),
           "  ".join("-" * w[i] for i in range(6))]
    for r in data:
        out.append("  ".join(c.ljust(w[i]) for i, c in enumerate(r)).rstrip())
    return "\n".join(out)


def table_md(rows):
    out = ["| workload | evpop3d median (min-max) | Dovecot median (min-max) | ratio | target | result |",
           "| --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        v = "" if r[5] is None else ("**PASS**" if r[5] else "**FAIL**")
        out.append("| %s | %s | %s | %s | %s | %s |" % (r[0].strip(), r[1], r[2], r[3], r[4], v))
    return "\n".join(out)


def cpu_md(b):
    out = ["| workload | server | server CPU, % of one CPU | client CPU | other processes |",
           "| --- | --- | --- | --- | --- |"]
    for (w, s), xs in sorted(b.cpu.items()):
        if w == "idle":
            continue
        sc = med([x[0] / x[2] * 100 for x in xs if x[2] > 0])
        cc = med([x[1] / x[2] * 100 for x in xs if x[2] > 0])
        oc = med([x[3] / x[2] * 100 for x in xs if x[2] > 0])
        out.append("| %s | %s | %.0f | %.0f | %.0f |" % (w, s, sc, cc, oc))
    return "\n".join(out)


def cpu_text(b):
    out = []
    for (w, s), xs in sorted(b.cpu.items()):
        if w == "idle":
            continue
        sc = med([x[0] / x[2] * 100 for x in xs if x[2] > 0])
        cc = med([x[1] / x[2] * 100 for x in xs if x[2] > 0])
        oc = med([x[3] / x[2] * 100 for x in xs if x[2] > 0])
        out.append("  %-9s %-9s server %4.0f%%  client %4.0f%%  other %4.0f%%" % (w, s, sc, cc, oc))
    return "\n".join(out)


def git_state():
    """Commit of the tree the daemon was built from, and whether src/ had
    uncommitted changes."""
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        head = subprocess.run(["git", "-C", here, "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", here, "status", "--porcelain", "--", "../../src"],
                               capture_output=True, text=True).stdout.strip()
    except OSError:
        return "?"
    if not head:
        return "?"
    return head + (" with uncommitted changes in src/" if dirty else "")


def machine_info(servers):
    def cmd(argv):
        try:
            return subprocess.run(argv, capture_output=True, text=True).stdout.strip()
        except OSError:
            return "?"
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = "?"
    try:
        with open("/proc/meminfo") as f:
            mem = "%.1f GiB" % (int(f.readline().split()[1]) / 1048576)
    except OSError:
        pass
    osname = "?"
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    osname = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return [
        ("date", datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")),
        ("CPU", "%s, nproc %s" % (model, cmd(["nproc"]))),
        ("memory", mem),
        ("OS", osname),
        ("kernel", platform.release()),
        ("evpop3d", "%s, source %s" % (servers["evpop3d"].version, servers["evpop3d"].source)),
        ("Dovecot", servers["dovecot"].version),
        ("libevent", cmd(["pkg-config", "--modversion", "libevent"])),
        ("OpenSSL", cmd(["openssl", "version"])),
        ("compiler", cmd(["cc", "--version"]).splitlines()[0] if cmd(["cc", "--version"]) else "?"),
        ("Python", platform.python_version()),
    ]


METHOD = """\
## How to rerun

    make bench          # full run: %(reps)d repetitions, about 10-15 minutes, as root
    make bench-quick    # one short repetition, a smoke test (under a minute)

`make bench` builds `src/evpop3d` and the load generator
`contrib/bench/popbench` (C, one libevent loop per process), then runs
`contrib/bench/run-bench.py` as root.  The script installs `dovecot-core` and
`dovecot-pop3d` with apt-get when they are missing, builds the mail in a fresh
temporary directory, runs every workload against both servers and rewrites this
file.  It exits non-zero when a target is missed, after printing all of them.
`run-bench.py --help` lists the knobs (repetitions, workloads, sizes).

## Method

- **Same box, loopback only.**  Servers listen on 127.0.0.1; the client runs on
  the same %(nproc)s CPUs, so client and server compete for them (noted per
  workload below).
- **A/B alternation.**  Each repetition runs every workload against evpop3d,
  then Dovecot (then the bare sender, for RETR), and each run starts a fresh
  server process and stops it afterwards.  %(reps)d repetitions; the table
  shows the median and the min-max range; ratios are ratios of medians.
- **Identical mail, one copy per server** (so neither sees the other's cache or
  index files), owned by the unprivileged user `%(user)s`, regenerated for each
  benchmark run.  Messages are realistic plain text (headers with Received
  lines, wrapped prose, quoted replies, signatures, a few lines starting with a
  dot), LF line ends, Maildir names *without* `,S=`/`,W=` size fields, in
  `cur/`, already flagged seen.  Nothing is ever deleted (no DELE).
- **Passwords** are SHA512-CRYPT (`openssl passwd -6`, a random salt per user,
  5000 rounds), the same hashes for both servers: evpop3d `passwd_file` lines
  `user:$6$...`, Dovecot passwd-file with the `{SHA512-CRYPT}` prefix.  Neither
  server caches authentication (`auth_cache_size = 0`), so every login pays
  one hash.
- **Descriptor limits** are raised to %(nofile)d for both servers and the client
  (%(nofile_note)s).
- **Shared machines.**  Before each run the script waits up to 20 s (%(wait_idle)g s
  in all) for other processes to leave the CPUs idle; the CPU table shows how
  much CPU other processes still took during the runs.

### Workloads

- **sessions** - %(sess_clients)d concurrent clients, %(sess_mailboxes)d mailboxes of
  %(sess_msgs)d messages of 1-100 KB.  Each client loops: connect, greeting,
  USER/PASS, STAT, UIDL, LIST, RETR of every message (read to the terminating
  ".", octets counted), QUIT, read +OK, wait for the server's close.  Client
  *i* uses mailboxes *i*, *i*+%(sess_clients)d, ... in turn, so no two clients ever
  share a mailbox (a session that meets `[IN-USE]` would move on and is not
  counted).  %(sess_warmup)g s warm-up, then sessions completed within %(sess_seconds)g s
  are counted; latency is connect to close.  The concurrency is chosen to load
  both servers fully: Dovecot is CPU-bound from 16 clients on (its rate at 16
  and at 64 clients is within about 10 %%), while evpop3d with 16 clients
  leaves its event loop partly idle waiting on round trips.
- **retr** - one client logs in to a mailbox holding one %(big_mib)d MiB message
  (text part plus a base64 attachment in 76-column lines) and RETRs it over and
  over, reading as fast as it can; MB/s is 10^6 octets received per second
  over %(retr_seconds)g s after a %(retr_warmup)g s warm-up.  The *bare sendfile*
  baseline is `popbench serve`: a process per connection that answers the login
  with +OK and each RETR with `sendfile()` of the same message already in wire
  form (CRLF, dot-stuffed, terminated); the same client reads it the same way.
- **idle** - %(idle_n)d connections log in, one mailbox each, and stay idle (%(idle_reps)d of the
  %(reps)d repetitions: Dovecot needs about a minute of CPU to start a pop3
  process per connection, and the result varies by about 1 %% between runs).
  Memory is PSS summed over every process of the server
  (`/proc/PID/smaps_rollup`; for Dovecot the master and all its children) once
  all are logged in, minus the same sum just before the connections, divided
  by the number of connections.  The mailboxes are returning users': before
  the first idle run each server has opened every idle mailbox once (Dovecot
  with `doveadm mailbox status -u 'idle*' "messages vsize" INBOX`, which builds
  its index; evpop3d with one login each), since a pop3 process that has to
  build the index of a never-seen mailbox holds about 230 KiB more.
- **open** - one mailbox of %(huge_n)d small messages (0.8-4 KB).  Before the
  *first open* the server is restarted and its own cache files are removed
  (evpop3d: files named `evpop3d*` in the Maildir's top folder; Dovecot: its
  `dovecot*` files there, i.e. `dovecot-uidlist` and `dovecot-uidvalidity*`,
  and the user's index directory with `dovecot.index*`).  The time is from
  connect to the STAT reply (greeting, USER/PASS, STAT).  The *second open* is
  a new connection right after the first one quits, same server process.
  UIDL and LIST are timed in full (command sent to terminating ".") in the
  second session.  **Both opens run with a warm page cache**: the kernel page
  cache is not dropped (that cannot be done reliably here); instead the script
  reads every file of the mailbox just before the first open, so "first open"
  means "no server-side cache or index", not "cold disk".
- **hold** - evpop3d only: %(hold_n)d connections opened at once (500 connects in
  flight at a time), each reads its greeting; once all are open, every one
  must answer CAPA.  Any refused, failed or unanswered connection fails it.

### Server configurations

evpop3d (no tuning beyond what the workloads need):

    listen 127.0.0.1:PORT
    passwd_file .../evpop3d.passwd
    mail_location .../mail-evpop3d/%%u/Maildir
    allow_plaintext yes
    auth_fail_delay_ms 0
    max_connections 20000
    user %(user)s
    group %(group)s

Dovecot %(dovecot)s, a self-contained instance tuned for throughput (generated
by `run-bench.py`; abridged):

    protocols = pop3
    ssl = no
    disable_plaintext_auth = no
    auth_mechanisms = plain
    auth_cache_size = 0
    login_trusted_networks = 127.0.0.0/8      # no auth penalty
    mail_location = maildir:.../%%u/Maildir:INDEX=.../dovecot-index/%%u
    pop3_uidl_format = %%f
    pop3_lock_session = yes
    pop3_no_flag_updates = yes                # no flag writes after RETR
    default_client_limit = 20000
    default_vsz_limit = 1G
    passdb { driver = passwd-file ... }       # {SHA512-CRYPT} hashes
    userdb { driver = passwd-file ... }
    service pop3-login {
      service_count = 0                       # high-performance login mode
      process_min_avail = 2
    }
    service pop3 {
%(pop3_indented)s
    }

`mmap_disable`, `maildir_very_dirty_syncs`, `pop3_fast_size_lookups` and the
fsync settings keep their defaults (the last would make Dovecot report sizes
that may differ from the octets it sends for LF files).
"""


ANALYSIS_BEGIN = "<!-- analysis: kept by run-bench.py across reruns -->"
ANALYSIS_END = "<!-- end of analysis -->"


def old_analysis(path):
    """The hand-written analysis section of an earlier doc, if any."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return None
    i, j = text.find(ANALYSIS_BEGIN), text.find(ANALYSIS_END)
    if i < 0 or j < i:
        return None
    return text[i:j + len(ANALYSIS_END)]


def write_doc(path, b, rows, servers, info, uid_name, gid_name, pop3_service, table_txt):
    p = b.p
    analysis = old_analysis(path)
    d = dict(reps=p.reps, nproc=os.cpu_count(), user=uid_name, group=gid_name,
             nofile=NOFILE_GOT, sess_clients=p.sess_clients, sess_mailboxes=p.sess_mailboxes,
             sess_msgs=p.sess_msgs, sess_warmup=p.sess_warmup, sess_seconds=p.sess_seconds,
             big_mib=p.big_mib, retr_seconds=p.retr_seconds, retr_warmup=p.retr_warmup,
             idle_n=p.idle_n, huge_n=p.huge_n, hold_n=p.hold_n,
             wait_idle=b.a.wait_idle, idle_reps=p.idle_reps,
             nofile_note="the most this machine allowed" if NOFILE_GOT < NOFILE else
             "the script asks for %d" % NOFILE,
             dovecot=servers["dovecot"].version,
             pop3_indented="\n".join("    " + l for l in pop3_service.splitlines()))
    out = ["# evpop3d benchmarks", "",
           "Written by `contrib/bench/run-bench.py` (%s run, %d repetition%s); do not edit "
           "by hand: rerun `make bench`." % ("quick" if p.quick else "full", p.reps,
                                               "" if p.reps == 1 else "s"), "",
           "## Results", "", table_md(rows), ""]
    if b.errors:
        out += ["**Errors during the run:**", ""] + ["- `%s`" % e.replace("`", "'")[:400]
                                                      for e in b.errors] + [""]
    out += ["Ratios: for rates (sessions/s, MB/s) evpop3d divided by the other; for times "
            "and memory the other divided by evpop3d (so bigger is better for evpop3d "
            "everywhere).", "",
            "### CPU use during the runs (medians)", "",
            "Server CPU is user+system time of all the server's processes (Dovecot's "
            "finished pop3 processes included through the master's reaped-children "
            "times), client CPU that of popbench, each divided by the run's wall time. "
            "The machine has %d CPUs in total (100 %% = one CPU busy)." % os.cpu_count(), "",
            cpu_md(b), "",
            "## Machine", ""]
    share, busiest = b.load_before
    info = info + [("load before the run", "%.0f%% of all CPUs busy%s" % (
        share * 100, (" (" + ", ".join(busiest) + ")") if busiest else ""))]
    out += ["- %s: %s" % (k, v) for k, v in info]
    out += [""]
    if analysis:
        out += [analysis, ""]
    out += [METHOD % d, "## Raw results", "", "```"] + b.details + ["```", ""]
    with open(path, "w") as f:
        f.write("\n".join(out))


# ---------------------------------------------------------------------------

DEFAULT_POP3_SERVICE = """\
process_limit = 10000
client_limit = 1
service_count = 100
process_min_avail = 4"""


def ensure_dovecot():
    need = []
    for pkg in ("dovecot-core", "dovecot-pop3d"):
        r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg], capture_output=True,
                           text=True)
        if "ok installed" not in r.stdout:
            need.append(pkg)
    if not need:
        return
    if not shutil.which("apt-get"):
        raise SetupError("missing %s and no apt-get here" % " ".join(need))
    log("installing %s with apt-get" % " ".join(need))
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    r = subprocess.run(["apt-get", "install", "-y", "-q"] + need, env=env)
    if r.returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env)
        r = subprocess.run(["apt-get", "install", "-y", "-q"] + need, env=env)
    if r.returncode != 0:
        raise SetupError("apt-get install %s failed" % " ".join(need))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--evpop3d", default="src/evpop3d", help="daemon binary")
    ap.add_argument("--popbench", default="contrib/bench/popbench", help="load generator")
    ap.add_argument("--quick", action="store_true", help="one short repetition (smoke test)")
    ap.add_argument("--reps", type=int, default=0, help="repetitions (default 5; quick 1)")
    ap.add_argument("--workloads", default="sessions,retr,idle,open,hold",
                    help="comma-separated subset of sessions,retr,idle,open,hold")
    ap.add_argument("--idle", type=int, default=0, help="idle connections (default 5000)")
    ap.add_argument("--sessions-clients", type=int, default=0,
                    help="concurrent clients in the sessions workload (default 64, at most 64)")
    ap.add_argument("--idle-reps", type=int, default=0,
                    help="repetitions of the idle workload (default 2, at most --reps)")
    ap.add_argument("--huge", type=int, default=0, help="messages in the big mailbox (100000)")
    ap.add_argument("--run-as", default="nobody", help="owner of the mail (default nobody)")
    ap.add_argument("--doc", default=None, help="write results and method here")
    ap.add_argument("--dovecot-pop3-service", default=DEFAULT_POP3_SERVICE,
                    help="body of Dovecot's 'service pop3 { }' block")
    ap.add_argument("--wait-idle", type=float, default=None,
                    help="seconds in all (at most 20 per run) to wait before runs for other "
                         "processes to leave the machine idle (default 180; 0 with --quick)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("--strict", action="store_true",
                    help="with --quick, also fail on missed targets")
    a = ap.parse_args()
    if a.wait_idle is None:
        a.wait_idle = 0.0 if a.quick else 180.0
    p = Params(a)
    for w in p.workloads:
        if w not in ("sessions", "retr", "idle", "open", "hold"):
            ap.error("unknown workload %s" % w)
    if p.sess_clients > p.sess_mailboxes:
        ap.error("--sessions-clients: at most %d (one mailbox each)" % p.sess_mailboxes)
    if os.geteuid() != 0:
        print("run-bench.py must run as root (apt-get, mail owned by %s, descriptor limits); "
              "try: sudo make bench" % a.run_as, file=sys.stderr)
        return 2
    state = {"top": None, "servers": {}}
    try:
        return bench_main(a, p, state)
    except KeyboardInterrupt:
        print("run-bench.py: interrupted", file=sys.stderr)
        return 2
    finally:
        for s in state["servers"].values():
            s.stop()
        if state["top"]:
            if a.keep:
                log("kept %s" % state["top"])
            else:
                shutil.rmtree(state["top"], ignore_errors=True)


def bench_main(a, p, state):
    """Set up, run every workload, report.  Servers and the temporary
    directory are left in state for the caller to clean up."""
    global NOFILE_GOT
    servers = state["servers"]
    try:
        ensure_dovecot()
        for b in (a.evpop3d, a.popbench):
            if not os.access(b, os.X_OK):
                raise SetupError("%s is not built" % b)
        NOFILE_GOT = raise_nofile()
        if NOFILE_GOT < NOFILE:
            log("descriptor limit: %d (the hard limit; %d not allowed here)" % (NOFILE_GOT, NOFILE))
        pw = pwd.getpwnam(a.run_as)
        uid, gid = pw.pw_uid, pw.pw_gid
        gname = grp.getgrgid(gid).gr_name
        top = state["top"] = tempfile.mkdtemp(prefix="popbench-")
        os.chmod(top, 0o755)
        log("temporary directory %s; mail owned by %s:%s" % (top, a.run_as, gname))
        # Private copies: a rebuild or `make clean` in the tree during the
        # run must not change or remove what is measured.
        source = git_state()
        bindir = os.path.join(top, "bin")
        os.mkdir(bindir)
        for b in (a.evpop3d, a.popbench):
            shutil.copy2(b, bindir)
        a.evpop3d = os.path.join(bindir, os.path.basename(a.evpop3d))
        a.popbench = os.path.join(bindir, os.path.basename(a.popbench))
        fx = Fixtures(top, p, uid, gid)
        fx.build()
        t0 = time.time()
        hashes = fx.passwords()
        log("%d SHA512-CRYPT hashes in %.1f s" % (len(hashes), time.time() - t0))
        servers["evpop3d"] = Evpop(top, fx, uid, gid, os.path.abspath(a.evpop3d), hashes,
                                   a.run_as, gname)
        servers["evpop3d"].source = source
        servers["dovecot"] = Dovecot(top, fx, uid, gid, hashes, a.dovecot_pop3_service)
        if "retr" in p.workloads:
            servers["sendfile"] = Sendfile(top, fx, uid, gid, os.path.abspath(a.popbench))
        log("%s against Dovecot %s" % (servers["evpop3d"].version, servers["dovecot"].version))
        share, busiest = machine_load()
        b = Bench(a, p)
        b.load_before = (share, busiest)
        if share > 0.10:
            log("WARNING: the machine is not idle (%.0f%% busy before the run: %s); "
                "the numbers will be noisy" % (share * 100, ", ".join(busiest)))
        b.fx_wire_octets = getattr(fx, "wire_octets", 0)
        b.fx = fx
        t0 = time.time()
        b.run_all(servers)
        log("all runs done in %.0f s" % (time.time() - t0))
    except (SetupError, subprocess.TimeoutExpired, OSError, KeyError) as e:
        print("run-bench.py: %s" % e, file=sys.stderr)
        for s in servers.values():
            if s.proc is not None:
                print("--- %s log tail:\n%s" % (s.name, s.log_tail()), file=sys.stderr)
        return 2
    for s in servers.values():
        s.stop()
    rows = build_table(b)
    txt = table_text(rows)
    print()
    print(txt)
    print()
    print("CPU use during the runs (medians; 100%% = one CPU of %d):" % os.cpu_count())
    print(cpu_text(b))
    print()
    if b.errors:
        print("%d workload run(s) had errors:" % len(b.errors))
        for e in b.errors:
            print("  " + e[:300])
    missed = [r[0].strip() for r in rows if r[5] is False]
    if missed:
        print("targets missed: %s" % "; ".join(missed))
    if a.doc:
        write_doc(a.doc, b, rows, servers, machine_info(servers), a.run_as, gname,
                  a.dovecot_pop3_service, txt)
        log("wrote %s" % a.doc)
    if b.errors:
        return 1
    if missed and (not p.quick or a.strict):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
