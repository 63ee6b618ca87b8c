#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
#
# evpop3d SASL OAUTHBEARER (RFC 7628) against the real daemon: JWTs signed
# here (RS256 and ES256 with keys made by openssl at test time, HS256 with a
# shared secret) and checked by the daemon with oauth_jwt_key /
# oauth_jwt_secret_file, and opaque tokens checked by an RFC 7662
# introspection endpoint served by Python's http.server on 127.0.0.1
# (active, inactive, garbage, and one that hangs while the daemon keeps
# serving other sessions), over HTTP and HTTPS.  Logins by raw AUTH
# OAUTHBEARER and by curl --oauth2-bearer.  Signing uses the cryptography
# module when it is installed, else openssl dgst.
#
#   EVPOP3D_BIN=/abs/path/src/evpop3d python3 tests/integ/oauth.py [-k NAME]
#
# Conventions are those of tests/integ/run.py, whose helpers this script
# imports.

import base64
import hashlib
import hmac
import http.server
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as base  # noqa: E402  (tests/integ/run.py)
from run import (Fail, Skip, Conn, check, eq, short, three, HOST,  # noqa
                 SLOW)

try:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, padding
    from cryptography.hazmat.primitives.asymmetric.utils import (
        decode_dss_signature)
    HAVE_CRYPTOGRAPHY = True
except ImportError:
    HAVE_CRYPTOGRAPHY = False

ISS = "https://idp.example.test"
AUD = "pop.example.test"
SECRET = b"an-hs256-shared-secret-of-40-octets-long"

TESTS = []


def test(fn):
    TESTS.append((fn.__name__[2:], fn))
    return fn


# ---------------------------------------------------------------------------
# Keys and tokens.

class Keys:
    """RSA 2048 and EC P-256 key pairs, a secret file and a TLS
    certificate for 127.0.0.1, made once per run."""
    dir = None

    @classmethod
    def get(cls):
        if cls.dir is None:
            d = tempfile.mkdtemp(prefix="evpop3d-oauth-keys-")
            os.chmod(d, 0o755)

            def ossl(*args):
                r = subprocess.run(["openssl"] + list(args),
                                   capture_output=True, timeout=120)
                if r.returncode != 0:
                    shutil.rmtree(d, ignore_errors=True)
                    raise Skip("openssl %s failed: %s"
                               % (args[0], short(r.stderr, 300)))
            p = lambda n: os.path.join(d, n)  # noqa: E731
            ossl("genpkey", "-algorithm", "RSA", "-pkeyopt",
                 "rsa_keygen_bits:2048", "-out", p("rsa.key"))
            ossl("pkey", "-in", p("rsa.key"), "-pubout", "-out", p("rsa.pub"))
            ossl("genpkey", "-algorithm", "EC", "-pkeyopt",
                 "ec_paramgen_curve:P-256", "-out", p("ec.key"))
            ossl("pkey", "-in", p("ec.key"), "-pubout", "-out", p("ec.pub"))
            ossl("req", "-x509", "-newkey", "ec", "-pkeyopt",
                 "ec_paramgen_curve:prime256v1", "-nodes", "-subj",
                 "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                 "-days", "2", "-keyout", p("tls.key"), "-out",
                 p("tls.crt"))
            with open(p("hs.secret"), "wb") as f:
                f.write(SECRET + b"\n")
            for n in os.listdir(d):
                os.chmod(p(n), 0o644)
            cls.dir = d
        return cls.dir

    @classmethod
    def path(cls, name):
        return os.path.join(cls.get(), name)

    @classmethod
    def remove(cls):
        if cls.dir:
            shutil.rmtree(cls.dir, ignore_errors=True)


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def der_to_rs(der):
    """ECDSA DER signature to the JWS r||s form (openssl fallback)."""
    def integer(b, i):
        check(b[i] == 2, "DER INTEGER expected")
        n = b[i + 1]
        return int.from_bytes(b[i + 2:i + 2 + n], "big"), i + 2 + n
    check(der[0] == 0x30, "DER SEQUENCE expected")
    i = 3 if der[1] & 0x80 else 2
    r, i = integer(der, i)
    s, _ = integer(der, i)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def sign(alg, data):
    if alg == "HS256":
        return hmac.new(SECRET, data, hashlib.sha256).digest()
    key = Keys.path("rsa.key" if alg == "RS256" else "ec.key")
    if HAVE_CRYPTOGRAPHY:
        with open(key, "rb") as f:
            k = serialization.load_pem_private_key(f.read(), None)
        if alg == "RS256":
            return k.sign(data, padding.PKCS1v15(), hashes.SHA256())
        r, s = decode_dss_signature(k.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")
    r = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key],
                       input=data, capture_output=True, timeout=30)
    check(r.returncode == 0, "openssl dgst: %s" % short(r.stderr))
    return r.stdout if alg == "RS256" else der_to_rs(r.stdout)


def jwt(alg="RS256", user="alice@example.test", claim="email", exp=600,
        iss=ISS, aud=AUD, header=None, extra=None, sig=None):
    now = int(time.time())
    hdr = header if header is not None else {"alg": alg, "typ": "JWT"}
    claims = {"sub": "1234", "iat": now}
    if user is not None:
        claims[claim] = user
    if exp is not None:
        claims["exp"] = now + exp
    if iss is not None:
        claims["iss"] = iss
    if aud is not None:
        claims["aud"] = aud
    claims.update(extra or {})
    signing = (b64u(json.dumps(hdr).encode()) + "." +
               b64u(json.dumps(claims).encode())).encode()
    if sig is None:
        sig = sign(alg, signing) if alg in ("RS256", "ES256", "HS256") \
            else b""
    return signing.decode() + "." + b64u(sig)


def gs2(token, authz=None, host=True):
    msg = "n,%s," % ("a=" + authz if authz else "")
    msg += "\x01"
    if host:
        msg += "host=%s\x01port=110\x01" % HOST
    msg += "auth=Bearer %s\x01\x01" % token
    return base64.b64encode(msg.encode()).decode()


def oauth_login(port, token, authz=None, ir=False):
    """AUTH OAUTHBEARER; returns (connection, final reply, challenge)."""
    cn = Conn(port)
    if ir:
        r = cn.cmd("AUTH OAUTHBEARER " + gs2(token, authz))
    else:
        r = cn.cmd("AUTH OAUTHBEARER")
        eq(r, "+ ", "AUTH OAUTHBEARER continuation")
        r = cn.cmd(gs2(token, authz))
    chal = None
    if r.startswith("+ "):
        chal = json.loads(base64.b64decode(r[2:]))
        r = cn.cmd("AQ==")
    return cn, r, chal


def expect_ok(port, token, **kw):
    cn, r, chal = oauth_login(port, token, **kw)
    check(r.startswith("+OK Logged in"), "want +OK Logged in, got %s (%s)"
          % (short(r), chal))
    return cn


def expect_refused(port, token, **kw):
    cn, r, chal = oauth_login(port, token, **kw)
    check(chal is not None and chal.get("status") == "invalid_token",
          "want the invalid_token challenge, got %s / %s" % (chal, short(r)))
    check(r.startswith("-ERR [AUTH]"), "after AQ==: want -ERR [AUTH], got %s"
          % short(r))
    # Still in AUTHORIZATION: a fresh try is allowed.
    cn.ok("CAPA")
    cn.multi_body()
    cn.close()


def capa_sasl(cn):
    cn.ok("CAPA")
    for ln in cn.multi_body().decode().split("\r\n"):
        if ln.startswith("SASL "):
            return ln.split()[1:]
    return []


def jwt_conf(key="rsa.pub", secret=False, claim=None):
    out = ["oauth_jwt_key %s" % Keys.path(key),
           "oauth_issuer %s" % ISS, "oauth_audience %s" % AUD]
    if secret:
        out.append("oauth_jwt_secret_file %s" % Keys.path("hs.secret"))
    if claim:
        out.append("oauth_username_claim %s" % claim)
    return out


# ---------------------------------------------------------------------------
# JWT.

@test
def t_jwt_rs256(c):
    c.add_user("alice@example.test", "pw-a", msgs=three("oa"))
    d = c.start(jwt_conf())
    cn = Conn(d.port)
    check("OAUTHBEARER" in capa_sasl(cn), "CAPA SASL lacks OAUTHBEARER")
    cn.close()
    cn = expect_ok(d.port, jwt("RS256"))
    eq(cn.stat()[0], 3, "STAT after OAUTHBEARER login")
    cn.quit()
    d.log_lines("user=alice@example.test", "method=oauthbearer",
                "result=ok")
    # An authzid naming the same user.
    expect_ok(d.port, jwt("RS256"), authz="alice@example.test").quit()
    # RFC 5034 section 4: an initial response that makes the AUTH line
    # longer than 255 octets is not allowed; a JWT does not fit.
    cn = Conn(d.port)
    cn.err("AUTH OAUTHBEARER " + gs2(jwt("RS256")))
    cn.close()


@test
def t_jwt_es256_hs256(c):
    c.add_user("bob", "pw-b", msgs=three("ob"))
    d = c.start(jwt_conf("ec.pub", secret=True, claim="preferred_username"))
    tok = jwt("ES256", user="bob", claim="preferred_username")
    expect_ok(d.port, tok).quit()
    expect_ok(d.port, jwt("HS256", user="bob",
                          claim="preferred_username")).quit()
    # An RS256 token with an EC key configured: alg must fit the key.
    expect_refused(d.port, jwt("RS256", user="bob",
                               claim="preferred_username"))


@test
def t_jwt_refused(c):
    c.add_user("alice@example.test", "pw-a", msgs=three("or"))
    c.add_user("carol@example.test", "pw-c")
    d = c.start(jwt_conf())
    good = jwt("RS256")
    h, p, s = good.split(".")
    with open(Keys.path("rsa.pub"), "rb") as f:
        pub = f.read()
    cases = {
        "expired": jwt(exp=-3600),
        "no exp": jwt(exp=None),
        "not yet valid": jwt(extra={"nbf": int(time.time()) + 3600}),
        "wrong issuer": jwt(iss="https://evil.example.test"),
        "no issuer": jwt(iss=None),
        "wrong audience": jwt(aud=["other", "more"]),
        "alg none": jwt("none", sig=b""),
        "alg none signed": jwt(header={"alg": "none"}, sig=b"x" * 32),
        # HS256 "signed" with the public key: the classic confusion.
        "HS256 with the public key": (lambda t: t + "." + b64u(hmac.new(
            pub, t.encode(), hashlib.sha256).digest()))(
            jwt("HS256", sig=b"").rsplit(".", 1)[0]),
        "HS256 without a secret": jwt("HS256"),
        "bad signature": h + "." + p + "." + b64u(b"\x01" * 256),
        "tampered payload": h + "." + b64u(json.dumps(
            {"email": "carol@example.test", "iss": ISS, "aud": AUD,
             "exp": int(time.time()) + 600}).encode()) + "." + s,
        "unknown user": jwt(user="nobody@example.test"),
        "invalid user name": jwt(user="../etc"),
        "crit header": jwt(header={"alg": "RS256", "crit": ["x"]}),
        "not a JWT": "opaque-token",
    }
    for why, tok in cases.items():
        try:
            expect_refused(d.port, tok)
        except Fail as e:
            raise Fail("%s: %s" % (why, e))
    # A valid token for alice with authzid carol: refused.
    expect_refused(d.port, good, authz="carol@example.test")
    d.log_lines("event=oauth", 'reason="token expired"')
    d.log_lines("event=login", "method=oauthbearer", "result=fail")
    # The real thing still works afterwards.
    expect_ok(d.port, good).quit()


@test
def t_malformed_and_cancel(c):
    c.add_user("alice@example.test", "pw-a")
    d = c.start(jwt_conf())
    for raw in (b"n,a=alice\x01auth=Bearer x\x01\x01",   # no "," after a=
                b"p=tls-unique,,\x01auth=Bearer x\x01\x01",  # binding
                b"n,,\x01auth=Basic xyz\x01\x01",
                b"n,,\x01host=x\x01\x01",                # no auth
                b"n,,\x01auth=Bearer a b\x01\x01",
                b"n,,\x01auth=Bearer x\x01",              # no final ^A
                b"\x01"):
        bad = base64.b64encode(raw).decode()
        cn = Conn(d.port)
        eq(cn.cmd("AUTH OAUTHBEARER"), "+ ", "continuation")
        r = cn.cmd(bad)
        check(r.startswith("-ERR"), "%s: want -ERR, got %s" % (bad, short(r)))
        cn.close()
    cn = Conn(d.port)
    cn.cmd("AUTH OAUTHBEARER")
    r = cn.cmd("not base64!")
    check(r.startswith("-ERR"), "bad base64: %s" % short(r))
    cn.cmd("AUTH OAUTHBEARER")
    r = cn.cmd("*")
    check(r.startswith("-ERR"), "cancel: %s" % short(r))
    cn.close()


@test
def t_capa_and_tls_rules(c):
    c.add_user("alice@example.test", "pw-a")
    d = c.start()
    cn = Conn(d.port)
    check("OAUTHBEARER" not in capa_sasl(cn), "OAUTHBEARER offered but "
          "not configured")
    cn.err("AUTH OAUTHBEARER")
    cn.close()
    port = base.free_port()
    conf = c.write_conf(port, jwt_conf())
    with open(conf) as f:
        text = f.read().replace("allow_plaintext yes", "allow_plaintext no")
    with open(conf, "w") as f:
        f.write(text)
    d2 = base.Daemon(c, conf, port, conf + ".log")
    c.daemons.append(d2)
    d2.wait_ready()
    cn = Conn(d2.port)
    check("OAUTHBEARER" not in capa_sasl(cn), "OAUTHBEARER offered "
          "without TLS although allow_plaintext is no")
    r = cn.err("AUTH OAUTHBEARER", "AUTH")
    check("STLS" in r, "refusal should point to STLS: %s" % r)
    cn.close()


@test
def t_conf_check(c):
    c.add_user("alice", "pw")
    conf = c.write_conf(base.free_port(), ["oauth_jwt_key %s"
                                           % Keys.path("rsa.key")])
    r = c.run_bin(["-c", conf, "-t"])
    out = (r.stdout + r.stderr).decode()
    check(r.returncode == 1 and "oauth_jwt_key" in out and ":" in out,
          "-t with a private key as oauth_jwt_key: %d %s"
          % (r.returncode, short(out, 300)))
    conf = c.write_conf(base.free_port(), ["oauth_issuer x"])
    r = c.run_bin(["-c", conf, "-t"])
    check(r.returncode == 1, "-t with oauth_issuer alone should fail")
    conf = c.write_conf(base.free_port(), jwt_conf(secret=True))
    r = c.run_bin(["-c", conf, "-t"])
    eq(r.returncode, 0, "-t with a good oauth configuration (%s)"
       % short(r.stderr, 300))


@test
def t_curl(c):
    if shutil.which("curl") is None:
        raise Skip("curl is not installed")
    msgs = three("oc")
    c.add_user("alice@example.test", "pw-a", msgs=msgs)
    d = c.start(jwt_conf())
    url = "pop3://%s:%d/" % (HOST, d.port)
    out = base.curl([url, "--oauth2-bearer", jwt("RS256"), "-u",
                     "alice@example.test:"])
    eq(len(out.split(b"\r\n")) - 1, 3, "curl LIST lines: %r" % out[:200])
    d.log_lines("user=alice@example.test", "method=oauthbearer",
                "result=ok")
    r = subprocess.run(["curl", "-s", "-S", "--max-time", "20", url,
                        "--oauth2-bearer", jwt("RS256", exp=-3600), "-u",
                        "alice@example.test:"], capture_output=True,
                       timeout=60)
    check(r.returncode != 0, "curl with an expired token succeeded")


# ---------------------------------------------------------------------------
# Introspection.

class Endpoint:
    """RFC 7662 endpoint on 127.0.0.1: tokens "good-*" are active for the
    user after the dash, "inactive" is not, "garbage" gets non-JSON,
    "slow" hangs until release() (or 30 s)."""

    def __init__(self, tls=False):
        self.requests = []
        self.release_ev = threading.Event()
        ep = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n).decode()
                form = dict(kv.split("=", 1) for kv in body.split("&"))
                ep.requests.append((self.path, dict(self.headers), form))
                tok = form.get("token", "")
                if tok == "slow":
                    ep.release_ev.wait(30)
                    out = {"active": False}
                elif tok.startswith("good-"):
                    out = {"active": True, "username": tok[5:],
                           "exp": int(time.time()) + 600, "aud": AUD}
                elif tok == "expired":
                    out = {"active": True, "username": "dave",
                           "exp": int(time.time()) - 3600}
                else:
                    out = {"active": False}
                data = b"<html>oops" if tok == "garbage" else \
                    json.dumps(out).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                try:
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass        # the daemon gave up waiting

        self.srv = http.server.ThreadingHTTPServer((HOST, 0), H)
        self.srv.daemon_threads = True
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(Keys.path("tls.crt"), Keys.path("tls.key"))
            self.srv.socket = ctx.wrap_socket(self.srv.socket,
                                              server_side=True)
        self.port = self.srv.server_address[1]
        self.thread = threading.Thread(target=self.srv.serve_forever,
                                       daemon=True)
        self.thread.start()

    def url(self, scheme="http"):
        return "%s://%s:%d/introspect" % (scheme, HOST, self.port)

    def stop(self):
        self.release_ev.set()
        self.srv.shutdown()
        self.srv.server_close()


def introspection_case(c, tls=False):
    ep = Endpoint(tls)
    c.endpoints = getattr(c, "endpoints", []) + [ep]
    conf = ["oauth_introspection_url %s" % ep.url("https" if tls
                                                  else "http"),
            "oauth_username_claim username",
            "oauth_client_id pop3-server",
            "oauth_client_secret s3cret:x",
            "oauth_audience %s" % AUD,
            "oauth_introspection_timeout 2"]
    if tls:
        conf.append("oauth_introspection_ca %s" % Keys.path("tls.crt"))
    return ep, conf


@test
def t_introspection(c):
    c.add_user("dave", "pw-d", msgs=three("oi"))
    c.add_user("erin", "pw-e")
    ep, conf = introspection_case(c)
    d = c.start(conf)
    cn = expect_ok(d.port, "good-dave")
    eq(cn.stat()[0], 3, "STAT")
    cn.quit()
    path, headers, form = ep.requests[-1]
    eq(path, "/introspect", "request path")
    eq(form.get("token"), "good-dave", "token in the POST body")
    eq(headers.get("Authorization"), "Basic " + base64.b64encode(
        b"pop3-server:s3cret%3Ax").decode(), "client credentials")
    expect_refused(d.port, "inactive")
    expect_refused(d.port, "expired")
    expect_refused(d.port, "good-nobody")       # not in passwd_file
    expect_refused(d.port, "good-dave", authz="erin")
    # A short token fits an initial response (RFC 5034 section 4).
    expect_ok(d.port, "good-dave", ir=True, authz="dave").quit()
    cn, r, chal = oauth_login(d.port, "garbage")
    check(r.startswith("-ERR [SYS/TEMP]"), "garbage answer: %s" % short(r))
    cn.close()


@test
def t_introspection_hangs(c):
    c.add_user("dave", "pw-d", msgs=three("oh"))
    c.add_user("erin", "pw-e", msgs=three("oe"))
    ep, conf = introspection_case(c)
    d = c.start(conf)
    slow = Conn(d.port, timeout=20 * SLOW)
    eq(slow.cmd("AUTH OAUTHBEARER"), "+ ", "continuation")
    slow.send(gs2("slow") + "\r\n")
    # Wait until the endpoint has the request: the worker is blocked now.
    deadline = time.monotonic() + 10 * SLOW
    while not any(f.get("token") == "slow" for _, _, f in ep.requests):
        check(time.monotonic() < deadline, "the endpoint saw no request")
        time.sleep(0.02)
    # A reload frees the configuration the hung job started with: the job
    # keeps its own reference (ASan would see a use after free).
    d.send_signal(signal.SIGHUP)
    d.log_lines("reload: configuration")
    # Other sessions are served meanwhile, logins included.
    other = Conn(d.port)
    other.login("erin", "pw-e")
    eq(other.stat()[0], 3, "STAT of another session")
    other.quit()
    cn = expect_ok(d.port, "good-dave")
    cn.quit()
    # The hung request gives up after oauth_introspection_timeout.
    r = slow.line()
    check(r.startswith("-ERR [SYS/TEMP]"), "hung endpoint: %s" % short(r))
    slow.close()
    d.log_lines("event=oauth", "result=error", "timeout")


@test
def t_introspection_https(c):
    c.add_user("dave", "pw-d", msgs=three("os"))
    ep, conf = introspection_case(c, tls=True)
    d = c.start(conf)
    expect_ok(d.port, "good-dave").quit()
    expect_refused(d.port, "inactive")
    # Without the CA the endpoint's certificate is not trusted.
    d2 = c.start([ln for ln in conf if "_ca " not in ln])
    cn, r, chal = oauth_login(d2.port, "good-dave")
    check(r.startswith("-ERR [SYS/TEMP]"), "untrusted endpoint: %s"
          % short(r))
    cn.close()


def teardown(c):
    for ep in getattr(c, "endpoints", []):
        ep.stop()


def main():
    return base.run_suite(TESTS, "oauth.py", __doc__, teardown=teardown,
                          cleanup=Keys.remove)


if __name__ == "__main__":
    sys.exit(main())
