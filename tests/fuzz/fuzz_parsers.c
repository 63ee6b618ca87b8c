/* SPDX-License-Identifier: ISC */
/*
 * evpop3d fuzz target: the pure parsers that take client or file text.
 * util_strtonum (message numbers, TOP counts), util_b64_decode and
 * util_b64_encode (SASL), auth_plain_split (AUTH PLAIN), auth_user_valid
 * (every user name), conf_expand_location (mail_location and a user name),
 * util_log_escape (client text in log lines), and the OAUTHBEARER parsers:
 * the GS2 message, the JSON reader, JWTs and introspection answers.
 *
 * Input: octet 0 picks the numeric bounds, octet 1 the output buffer sizes,
 * the rest is the text.  Every function writes into a heap buffer of
 * exactly the size it is given, so AddressSanitizer sees any overrun, and
 * every answer is compared with a simple reference written here from the
 * contracts in util.h, auth.h and conf.h.  A difference aborts.
 */
#include "config.h"

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "conf.h"
#include "params.h"
#include "util.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#include "migrate.h"
#include "oauth.h"
#include "proxy.h"
#include "scram.h"


static const char fp_b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void
fp_fail(const char *what)
{
	fprintf(stderr, "fuzz_parsers: %s\n", what);
	abort();
}

static void *
fp_alloc(size_t n)
{
	void *p = malloc(n > 0 ? n : 1);

	if (p == NULL)
		abort();
	return p;
}

/* A NUL-terminated heap copy of n octets (stops at an embedded NUL). */
static char *
fp_cstr(const uint8_t *d, size_t n)
{
	const uint8_t *z = memchr(d, '\0', n);
	char *s;

	if (z != NULL)
		n = (size_t)(z - d);
	s = fp_alloc(n + 1);
	memcpy(s, d, n);
	s[n] = '\0';
	return s;
}

/* ------------------------------------------------------------------ */

static const unsigned long long fp_bounds[8] = {
	0, 1, 9, 10, 65535, LLONG_MAX, ULLONG_MAX - 1, ULLONG_MAX
};

/* util_strtonum against a digit-by-digit reference with overflow flag. */
static void
fp_strtonum(const char *s, uint8_t sel)
{
	unsigned long long min = fp_bounds[sel & 7], max = fp_bounds[sel >> 5];
	unsigned long long v = 0, got = 0xdeadbeef;
	const char *errstr = NULL, *want;
	const char *p;
	int overflow = 0, rc, digits = *s != '\0';

	for (p = s; *p != '\0'; p++) {
		if (*p < '0' || *p > '9') {
			digits = 0;
			break;
		}
		if (v > ULLONG_MAX / 10 ||
		    v * 10 > ULLONG_MAX - (unsigned long long)(*p - '0'))
			overflow = 1;
		v = v * 10 + (unsigned long long)(*p - '0');
	}
	if (!digits)
		want = "invalid";
	else if (overflow)
		want = "too large";
	else if (v < min)
		want = "too small";
	else if (v > max)
		want = "too large";
	else
		want = NULL;
	rc = util_strtonum(s, min, max, &got, &errstr);
	if ((rc == 0) != (want == NULL))
		fp_fail("util_strtonum accepts/refuses unlike the reference");
	if (want == NULL) {
		if (errstr != NULL || got != v)
			fp_fail("util_strtonum: wrong value or errstr set");
	} else if (errstr == NULL || strcmp(errstr, want) != 0)
		fp_fail("util_strtonum: wrong errstr");
	/* The NULL out and NULL errstr forms must agree. */
	if (util_strtonum(s, min, max, NULL, NULL) != rc)
		fp_fail("util_strtonum: NULL arguments change the answer");
}

/* ------------------------------------------------------------------ */

static int
fp_b64_val(unsigned char c)
{
	const char *p;

	if (c == '\0' || (p = strchr(fp_b64, c)) == NULL)
		return -1;
	return (int)(p - fp_b64);
}

/* Strict RFC 4648 reference decoder; returns the length or -1. */
static long
fp_b64_ref(const uint8_t *in, size_t n, uint8_t *out)
{
	size_t i, pad = 0, o = 0;
	uint32_t w;
	int k, v;

	if (n % 4 != 0)
		return -1;
	if (n >= 1 && in[n - 1] == '=')
		pad++;
	if (n >= 2 && in[n - 2] == '=')
		pad++;
	if (pad == 1 && n >= 2 && in[n - 2] == '=')
		return -1;
	for (i = 0; i < n; i += 4) {
		w = 0;
		for (k = 0; k < 4; k++) {
			if (i + 4 == n && k >= 4 - (int)pad)
				v = 0;
			else if ((v = fp_b64_val(in[i + k])) == -1)
				return -1;
			w = w << 6 | (uint32_t)v;
		}
		if (i + 4 == n && pad == 2 && (w & 0xffff) != 0)
			return -1;
		if (i + 4 == n && pad == 1 && (w & 0xff) != 0)
			return -1;
		out[o++] = (uint8_t)(w >> 16);
		if (!(i + 4 == n && pad == 2))
			out[o++] = (uint8_t)(w >> 8);
		if (!(i + 4 == n && pad >= 1))
			out[o++] = (uint8_t)w;
	}
	return (long)o;
}

/* Decode with an exact output buffer; check against the reference and
 * that a decoded text re-encodes to the very same input (canonical). */
static void
fp_b64_decode(const uint8_t *in, size_t n, uint8_t sel)
{
	size_t need = n / 4 * 3, cap, outlen;
	uint8_t *out, *ref;
	char *enc;
	long rlen;
	int rc;

	cap = need;
	if ((sel & 3) == 1)
		cap = need > 0 ? need - 1 - (sel >> 6) % 2 : 0;
	else if ((sel & 3) == 2)
		cap = need + sel % 5;
	if (cap > need + 8)	/* need - 2 wrapped */
		cap = 0;
	out = fp_alloc(cap);
	ref = fp_alloc(need + 3);
	rlen = fp_b64_ref(in, n, ref);
	outlen = cap;
	rc = util_b64_decode((const char *)in, n, out, &outlen);
	if (rc == 0) {
		if (rlen < 0)
			fp_fail("b64 decode accepts what the reference refuses");
		if (outlen != (size_t)rlen || outlen > cap ||
		    (outlen > 0 && memcmp(out, ref, outlen) != 0))
			fp_fail("b64 decode differs from the reference");
		enc = fp_alloc(4 * ((outlen + 2) / 3) + 1);
		if (util_b64_encode(out, outlen, enc,
		    4 * ((outlen + 2) / 3) + 1) != (int)n ||
		    memcmp(enc, in, n) != 0)
			fp_fail("b64 decode is not canonical");
		free(enc);
	} else if (rlen >= 0 && (size_t)rlen <= cap)
		fp_fail("b64 decode refuses what the reference accepts");
	free(out);
	free(ref);
}

/* Encode into an exact buffer, refuse one octet less, decode back. */
static void
fp_b64_roundtrip(const uint8_t *in, size_t n)
{
	size_t need = 4 * ((n + 2) / 3) + 1, outlen;
	char *enc;
	uint8_t *dec;
	int len;

	enc = fp_alloc(need);
	if ((len = util_b64_encode(in, n, enc, need)) < 0 ||
	    (size_t)len != need - 1 || enc[len] != '\0')
		fp_fail("b64 encode failed or wrong length");
	if (util_b64_encode(in, n, enc, need - 1) != -1)
		fp_fail("b64 encode ignored a short buffer");
	outlen = n;
	dec = fp_alloc(n);
	if (util_b64_decode(enc, (size_t)len, dec, &outlen) == -1 ||
	    outlen != n || (n > 0 && memcmp(dec, in, n) != 0))
		fp_fail("b64 round trip lost data");
	free(enc);
	free(dec);
}

/* ------------------------------------------------------------------ */

/* auth_plain_split on an exact copy, against a split done here. */
static void
fp_plain_split(const uint8_t *in, size_t n)
{
	const uint8_t *z1 = NULL, *z2 = NULL;
	const char *authz, *user, *pass;
	size_t zlen = 0, ulen = 0, plen = 0;
	char *buf;
	int ok, rc;

	ok = n > 0 && (z1 = memchr(in, '\0', n)) != NULL &&
	    (z2 = memchr(z1 + 1, '\0', n - (size_t)(z1 - in) - 1)) != NULL;
	if (ok) {
		zlen = (size_t)(z1 - in);
		ulen = (size_t)(z2 - z1 - 1);
		plen = n - zlen - ulen - 2;
		ok = ulen > 0 && plen > 0 &&
		    memchr(z2 + 1, '\0', plen) == NULL &&
		    (zlen == 0 || (zlen == ulen && memcmp(in, z1 + 1,
		    ulen) == 0));
	}
	buf = fp_alloc(n);
	if (n > 0)
		memcpy(buf, in, n);
	rc = auth_plain_split(buf, n, &authz, &user, &pass);
	if ((rc == 0) != ok)
		fp_fail("auth_plain_split accepts/refuses unlike the reference");
	if (ok) {
		if (strlen(user) != ulen || memcmp(user, z1 + 1, ulen) != 0)
			fp_fail("auth_plain_split: wrong user");
		if (strlen(pass) != plen || memcmp(pass, z2 + 1, plen) != 0)
			fp_fail("auth_plain_split: wrong password");
		if (strcmp(authz, zlen == 0 ? "" : user) != 0)
			fp_fail("auth_plain_split: wrong authzid");
		/* All three must lie inside buf or be the literal "". */
		if (user < buf || pass + plen >= buf + n)
			fp_fail("auth_plain_split: pointers outside buf");
	}
	free(buf);
}

/* auth_user_valid against the rule written in auth.h. */
static void
fp_user_valid(const uint8_t *in, size_t n)
{
	size_t i;
	int want = n >= 1 && n <= AUTH_USER_MAX && in[0] != '.';
	char *buf;

	for (i = 0; want && i < n; i++) {
		if (in[i] <= 0x20 || in[i] == 0x7f || in[i] == '/' ||
		    in[i] == ':')
			want = 0;
		else if (in[i] == '.' && i + 1 < n && in[i + 1] == '.')
			want = 0;
	}
	buf = fp_alloc(n);
	if (n > 0)
		memcpy(buf, in, n);
	if (auth_user_valid(buf, n) != want)
		fp_fail("auth_user_valid differs from the rule");
	free(buf);
}

/* ------------------------------------------------------------------ */

/* Reference %-expansion into a large buffer; -1 on a bad escape. */
static long
fp_expand_ref(const char *t, const char *user, char *out, size_t cap)
{
	const char *at = strchr(user, '@');
	size_t o = 0, add;
	const char *src;

	for (; *t != '\0'; t++) {
		if (*t != '%') {
			src = t;
			add = 1;
		} else {
			t++;
			if (*t == 'u') {
				src = user;
				add = strlen(user);
			} else if (*t == 'n') {
				src = user;
				add = at != NULL ? (size_t)(at - user) :
				    strlen(user);
			} else if (*t == 'd') {
				src = at != NULL ? at + 1 : "";
				add = strlen(src);
			} else if (*t == '%') {
				src = "%";
				add = 1;
			} else
				return -1;
		}
		if (o + add >= cap)
			return -2;
		memcpy(out + o, src, add);
		o += add;
	}
	out[o] = '\0';
	return (long)o;
}

/* The first line is the template, the second the user name. */
static void
fp_expand(const uint8_t *in, size_t n, uint8_t sel)
{
	const uint8_t *nl = memchr(in, '\n', n);
	size_t tlen = nl != NULL ? (size_t)(nl - in) : n, outlen;
	char *tmpl, *user, *out, ref[8192];
	long rlen;
	int rc;

	tmpl = fp_cstr(in, tlen);
	user = nl != NULL ? fp_cstr(nl + 1, n - tlen - 1) : fp_cstr(in, 0);
	outlen = (sel & 0x80) ? 1 + (size_t)(sel & 0x7f) * 8 :
	    1 + (size_t)(sel & 0x3f);
	out = fp_alloc(outlen);
	rlen = fp_expand_ref(tmpl, user, ref, sizeof(ref));
	if (rlen == -2)
		goto done;	/* larger than the reference's buffer */
	rc = conf_expand_location(tmpl, user, out, outlen);
	if (rlen >= 0 && (size_t)rlen < outlen) {
		if (rc != 0 || strcmp(out, ref) != 0)
			fp_fail("conf_expand_location differs from the reference");
	} else if (rc != -1)
		fp_fail("conf_expand_location accepted a bad template or "
		    "overflowed");
	else if (out[0] != '\0')
		fp_fail("conf_expand_location left text after failing");
done:
	free(tmpl);
	free(user);
	free(out);
}

/* Escaped text fits dstcap, is printable, and is a prefix of the full
 * escape. */
static void
fp_log_escape(const uint8_t *in, size_t n, uint8_t sel)
{
	size_t cap = sel % 48, i;
	char *dst, *full;

	full = fp_alloc(4 * n + 1);
	util_log_escape(full, 4 * n + 1, (const char *)in, n);
	if (strlen(full) > 4 * n)
		fp_fail("util_log_escape: too long");
	for (i = 0; full[i] != '\0'; i++)
		if (full[i] < 0x20 || full[i] >= 0x7f)
			fp_fail("util_log_escape: unprintable output");
	dst = fp_alloc(cap);
	dst[0] = 'Z';
	util_log_escape(dst, cap, (const char *)in, n);
	if (cap > 0) {
		if (memchr(dst, '\0', cap) == NULL)
			fp_fail("util_log_escape: not terminated");
		if (strncmp(dst, full, strlen(dst)) != 0)
			fp_fail("util_log_escape: not a prefix of the whole");
	} else if (dst[0] != 'Z')
		fp_fail("util_log_escape wrote into a 0-octet buffer");
	free(dst);
	free(full);
}

/*
 * The PROXY header parser: a header is accepted only whole, its length
 * never exceeds the input, and every prefix of an accepted header asks
 * for more rather than giving another answer.
 */
static void
fp_proxy(const uint8_t *d, size_t n)
{
	struct proxy_info pi;
	size_t used, u2, i;
	enum proxy_result r = proxy_parse(d, n, &used, &pi);

	if (r == PROXY_OK) {
		if (used == 0 || used > n || used > PROXY_HEADER_MAX)
			fp_fail("proxy: bad length");
		if (!pi.local && pi.src.ss_family != AF_INET &&
		    pi.src.ss_family != AF_INET6)
			fp_fail("proxy: no address");
		for (i = 1; i < used && i < 64; i++)
			if (proxy_parse(d, i, &u2, &pi) != PROXY_MORE)
				fp_fail("proxy: a prefix of a header decided");
	}
}

/* SCRAM messages from a client: parsing never overruns, and a random
 * proof is never accepted. */
static void
fp_scram(const uint8_t *d, size_t n)
{
	struct scram_state st;
	struct scram_secret sec;
	char out[512];
	size_t half = n / 2;

	memset(&sec, 0x5a, sizeof(sec));
	sec.iter = 4096;
	sec.saltlen = 16;
	if (scram_client_first(&st, (const char *)d, half) == 0 &&
	    scram_server_first(&st, &sec, out, sizeof(out)) == 0 &&
	    scram_client_final(&st, (const char *)d + half, n - half, out,
	    sizeof(out)) == 1)
		fp_fail("scram: a proof from nowhere was accepted");
	scram_state_clear(&st);
	if (n < 400) {
		char *s = fp_cstr(d, n);
		scram_parse_secret(s, &sec);
		free(s);
	}
}

/* Walk every member of an object (nested ones too), reading each value
 * the way the claims code does. */
static void
fp_json_walk(const struct oauth_json_val *obj, int depth)
{
	static const char *const keys[] = { "exp", "aud", "iss", "active",
	    "email", "alg", "a", "" };
	struct oauth_json_val v, el;
	char out[64];
	long long n;
	long len;
	size_t i, j;

	if (depth > OAUTH_JSON_DEPTH)
		fp_fail("json: deeper than OAUTH_JSON_DEPTH");
	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		if (oauth_json_get(obj, keys[i], &v) != 1)
			continue;
		if (v.len == 0)
			fp_fail("json: empty value");
		len = oauth_json_string(&v, out, sizeof(out));
		if (len >= 0 && ((size_t)len >= sizeof(out) ||
		    strlen(out) != (size_t)len))
			fp_fail("json: string length wrong");
		oauth_json_int(&v, &n);
		if (v.type == OAUTH_JSON_OBJECT)
			fp_json_walk(&v, depth + 1);
		for (j = 0; j < 4 && oauth_json_index(&v, j, &el); j++)
			if (el.type == OAUTH_JSON_OBJECT)
				fp_json_walk(&el, depth + 1);
	}
}

/*
 * OAUTHBEARER: the GS2 message (a token it returns lies inside the input
 * and is a b64token), the JSON reader, JWTs (no key: must never be
 * valid) and introspection answers (no network involved).
 */
static void
fp_oauth(const uint8_t *d, size_t n)
{
	static struct oauth_conf *oc;
	struct oauth_json_val root;
	char authz[AUTH_USER_MAX + 1], user[AUTH_USER_MAX + 1], err[256];
	const char *tok, *why, *key;
	size_t toklen;
	char *buf;

	if (oc == NULL) {
		if ((oc = oauth_conf_new()) == NULL ||
		    oauth_conf_set(oc, "oauth_introspection_url",
		    "http://127.0.0.1:1/", err, sizeof(err)) == -1 ||
		    oauth_conf_set(oc, "oauth_audience", "a", err,
		    sizeof(err)) == -1 ||
		    oauth_conf_finish(oc, 0, err, sizeof(err), &key) == -1)
			fp_fail("oauth: configuration");
	}
	buf = fp_alloc(n);
	if (n > 0)
		memcpy(buf, d, n);
	if (oauth_gs2_parse(buf, n, authz, sizeof(authz), &tok,
	    &toklen) == 0) {
		if (tok < buf || tok + toklen >= buf + n || toklen == 0 ||
		    strlen(tok) != toklen || strlen(authz) >= sizeof(authz))
			fp_fail("oauth: gs2 token outside the message");
	}
	free(buf);
	if (oauth_json_parse((const char *)d, n, &root) == 0) {
		if (root.type != OAUTH_JSON_OBJECT ||
		    root.p < (const char *)d || root.p + root.len > (const
		    char *)d + n)
			fp_fail("oauth: json root outside the text");
		fp_json_walk(&root, 0);
		oauth_introspection_result(oc, (const char *)d, n, 0, user,
		    sizeof(user), &why);
	}
	if (oauth_jwt_verify(oc, (const char *)d, n, 0, user, sizeof(user),
	    &why) != OAUTH_INVALID)
		fp_fail("oauth: a JWT without any key was accepted");
}

/* Migration sources (dovecot-uidlist, courierpop3dsizelist, our
 * evpop3d.uidls, X-UIDL headers): never a crash, and every UIDL they
 * yield is one RFC 1939 allows. */
static void
fp_migrate(const uint8_t *d, size_t n, uint8_t sel)
{
	static const char *const fmts[] = { "%08Xu%08Xv", "%f", "%v.%u",
	    "%g", "%u" };
	struct migrate_map m;
	char out[MAILDIR_UIDL_MAX + 1];
	size_t i;
	int r;

	memset(&m, 0, sizeof(m));
	switch (sel % 3) {
	case 0:
		r = migrate_parse_dovecot((const char *)d, n,
		    fmts[(sel / 3) % 5], &m);
		break;
	case 1:
		r = migrate_parse_courier((const char *)d, n, &m);
		break;
	default:
		r = migrate_parse_state((const char *)d, n, &m);
		break;
	}
	if (r >= 0)
		for (i = 0; i < m.n; i++)
			if (!migrate_uidl_valid(m.v[i].uidl,
			    strlen(m.v[i].uidl)))
				fp_fail("migrate: invalid UIDL imported");
	migrate_map_free(&m);
	if (migrate_xuidl((const char *)d, n, out) == 1 &&
	    !migrate_uidl_valid(out, strlen(out)))
		fp_fail("migrate: invalid X-UIDL");
}

int
LLVMFuzzerTestOneInput(const uint8_t *in, size_t size)
{
	const uint8_t *d;
	uint8_t sel, sel2;
	size_t n;
	char *s;

	if (size < 2)
		return 0;
	sel = in[0];
	sel2 = in[1];
	d = in + 2;
	n = size - 2;

	s = fp_cstr(d, n);
	fp_strtonum(s, sel);
	free(s);
	fp_b64_decode(d, n, sel2);
	fp_b64_roundtrip(d, n);
	fp_plain_split(d, n);
	fp_user_valid(d, n);
	fp_expand(d, n, sel2);
	fp_log_escape(d, n, sel ^ sel2);
	fp_proxy(d, n);
	fp_scram(d, n);
	fp_oauth(d, n);
	fp_migrate(d, n, sel);
	return 0;
}
