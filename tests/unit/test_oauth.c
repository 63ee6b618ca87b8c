/* SPDX-License-Identifier: ISC */
/*
 * evpop3d unit tests for oauth.c: the RFC 7628 GS2 message (valid forms,
 * escapes, and what must be refused), the JSON reader on good and
 * malformed input, JWT verification with RS256, ES256 and HS256 tokens
 * signed here with keys made by OpenSSL (and the tokens that must fail:
 * expired, early, wrong issuer or audience, alg none, alg confusion, bad
 * signature, tampered claims), introspection answers, and the oauth_*
 * configuration keys.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <CUnit/CUnit.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include "conf.h"
#include "oauth.h"
#include "params.h"
#include "tests.h"
#include "util.h"

#define TEST_OAUTH_SECRET "0123456789abcdef0123456789abcdef-hs256"
#define TEST_OAUTH_ISS	"https://idp.example"
#define TEST_OAUTH_AUD	"pop3"

/* ------------------------------------------------------------------ */

/* Parse a GS2 message given with its length (it holds ^A octets). */
static int
test_oauth_gs2(const char *msg, char *authz, size_t authzlen,
    char *tok, size_t toklen)
{
	char buf[1024];
	const char *t;
	size_t n = strlen(msg), tl;
	int r;

	memcpy(buf, msg, n);
	r = oauth_gs2_parse(buf, n, authz, authzlen, &t, &tl);
	if (r == 0)
		snprintf(tok, toklen, "%.*s", (int)tl, t);
	return r;
}

static void
test_oauth_gs2_good(void)
{
	char az[64], tok[256];

	CU_ASSERT_EQUAL(test_oauth_gs2("n,a=user@example.com,\001host=server."
	    "example.com\001port=143\001auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHR"
	    "hdmlzdGEuY29tCg==\001\001", az, sizeof(az), tok, sizeof(tok)), 0);
	CU_ASSERT_STRING_EQUAL(az, "user@example.com");
	CU_ASSERT_STRING_EQUAL(tok,
	    "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==");
	/* No authzid, flag y, scheme in lower case, unknown keys. */
	CU_ASSERT_EQUAL(test_oauth_gs2("y,,\001auth=bearer a.b-c_d~e+f/\001"
	    "qs=x y\001\001", az, sizeof(az), tok, sizeof(tok)), 0);
	CU_ASSERT_STRING_EQUAL(az, "");
	CU_ASSERT_STRING_EQUAL(tok, "a.b-c_d~e+f/");
	/* saslname escapes. */
	CU_ASSERT_EQUAL(test_oauth_gs2("n,a=a=2Cb=3Dc,\001auth=Bearer t\001"
	    "\001", az, sizeof(az), tok, sizeof(tok)), 0);
	CU_ASSERT_STRING_EQUAL(az, "a,b=c");
}

static void
test_oauth_gs2_bad(void)
{
	static const char *const bad[] = {
		"",
		"\001",				/* the answer to an error */
		"p=tls-unique,,\001auth=Bearer t\001\001",
		"n,,\001auth=Bearer t\001",	/* no final ^A */
		"n,,\001auth=Bearer t\001\001x",	/* junk after */
		"n,,auth=Bearer t\001\001",	/* no ^A after the header */
		"n,\001auth=Bearer t\001\001",
		"n,a=,\001auth=Bearer t\001\001",	/* empty authzid */
		"n,a=x=41,\001auth=Bearer t\001\001",	/* bad escape */
		"n,a=x=2,\001auth=Bearer t\001\001",
		"n,a=u\001auth=Bearer t\001\001",
		"n,,\001host=x\001\001",		/* no auth */
		"n,,\001auth=Basic dXNlcjpwdw==\001\001",
		"n,,\001auth=Bearer\001\001",
		"n,,\001auth=Bearer \001\001",
		"n,,\001auth=Bearer a b\001\001",
		"n,,\001auth=Bearer t=x\001\001",	/* = inside */
		"n,,\001auth=Bearer t\001auth=Bearer u\001\001",
		"n,,\001au1h=x\001auth=Bearer t\001\001",
		"n,,\001=x\001auth=Bearer t\001\001",
		"n,,\001novalue\001auth=Bearer t\001\001",
		"n,,\001x=\002\001auth=Bearer t\001\001",
	};
	char az[64], tok[256], buf[32];
	const char *t;
	size_t i, tl;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (test_oauth_gs2(bad[i], az, sizeof(az), tok,
		    sizeof(tok)) != -1)
			CU_FAIL(bad[i]);
	}
	/* An authzid longer than the caller's buffer. */
	CU_ASSERT_EQUAL(test_oauth_gs2("n,a=0123456789abcdef,\001auth=Bearer "
	    "t\001\001", az, 8, tok, sizeof(tok)), -1);
	/* An embedded NUL. */
	memcpy(buf, "n,,\001auth=Bearer t\0\001\001", 21);
	CU_ASSERT_EQUAL(oauth_gs2_parse(buf, 21, az, sizeof(az), &t, &tl), -1);
}

/* ------------------------------------------------------------------ */

static int
test_oauth_json(const char *text, struct oauth_json_val *root)
{
	return oauth_json_parse(text, strlen(text), root);
}

static void
test_oauth_json_good(void)
{
	struct oauth_json_val root, v, el;
	char s[64];
	long long n;

	CU_ASSERT_EQUAL_FATAL(test_oauth_json(" {\"a\" : \"x\\\"y\\u00e9\\n\","
	    " \"n\": -12.5, \"big\": 1700000000, \"t\": true, \"f\": false,"
	    " \"z\": null, \"o\": {\"deep\": [1, {\"x\": []}, \"s\"]},"
	    " \"arr\": [\"p\", \"q\"], \"e\": 1e3, \"emoji\": "
	    "\"\\ud83d\\ude00\", \"esc\\u0061pe\": 1} \n", &root), 0);
	CU_ASSERT_EQUAL(oauth_json_get(&root, "a", &v), 1);
	CU_ASSERT_EQUAL(oauth_json_string(&v, s, sizeof(s)), 6);
	CU_ASSERT_STRING_EQUAL(s, "x\"y\xc3\xa9\n");
	CU_ASSERT_EQUAL(oauth_json_string(&v, s, 6), -1);	/* too small */
	CU_ASSERT_EQUAL(oauth_json_get(&root, "n", &v), 1);
	CU_ASSERT_EQUAL(oauth_json_int(&v, &n), 0);
	CU_ASSERT_EQUAL(n, -12);
	CU_ASSERT_EQUAL(oauth_json_get(&root, "big", &v), 1);
	CU_ASSERT_EQUAL(oauth_json_int(&v, &n), 0);
	CU_ASSERT_EQUAL(n, 1700000000LL);
	CU_ASSERT_EQUAL(oauth_json_get(&root, "e", &v), 1);
	CU_ASSERT_EQUAL(oauth_json_int(&v, &n), -1);	/* exponent */
	CU_ASSERT_EQUAL(oauth_json_get(&root, "t", &v), 1);
	CU_ASSERT_EQUAL(v.type, OAUTH_JSON_TRUE);
	CU_ASSERT_EQUAL(oauth_json_get(&root, "f", &v), 1);
	CU_ASSERT_EQUAL(v.type, OAUTH_JSON_FALSE);
	CU_ASSERT_EQUAL(oauth_json_get(&root, "z", &v), 1);
	CU_ASSERT_EQUAL(v.type, OAUTH_JSON_NULL);
	CU_ASSERT_EQUAL(oauth_json_string(&v, s, sizeof(s)), -1);
	/* Keys inside nested values are not members of the root. */
	CU_ASSERT_EQUAL(oauth_json_get(&root, "deep", &v), 0);
	CU_ASSERT_EQUAL(oauth_json_get(&root, "x", &v), 0);
	CU_ASSERT_EQUAL(oauth_json_get(&root, "o", &v), 1);
	CU_ASSERT_EQUAL(v.type, OAUTH_JSON_OBJECT);
	CU_ASSERT_EQUAL(oauth_json_get(&v, "deep", &el), 1);
	CU_ASSERT_EQUAL(el.type, OAUTH_JSON_ARRAY);
	CU_ASSERT_EQUAL(oauth_json_get(&root, "arr", &v), 1);
	CU_ASSERT_EQUAL(oauth_json_index(&v, 0, &el), 1);
	CU_ASSERT(oauth_json_streq(&el, "p"));
	CU_ASSERT_EQUAL(oauth_json_index(&v, 1, &el), 1);
	CU_ASSERT(oauth_json_streq(&el, "q"));
	CU_ASSERT_EQUAL(oauth_json_index(&v, 2, &el), 0);
	CU_ASSERT_EQUAL(oauth_json_get(&root, "emoji", &v), 1);
	CU_ASSERT_EQUAL(oauth_json_string(&v, s, sizeof(s)), 4);
	CU_ASSERT_STRING_EQUAL(s, "\xf0\x9f\x98\x80");
	/* An escaped key matches its unescaped name. */
	CU_ASSERT_EQUAL(oauth_json_get(&root, "escape", &v), 1);
	CU_ASSERT_EQUAL(oauth_json_get(&root, "missing", &v), 0);
	/* A key given twice is ambiguous. */
	CU_ASSERT_EQUAL_FATAL(test_oauth_json("{\"exp\":1,\"exp\":2}",
	    &root), 0);
	CU_ASSERT_EQUAL(oauth_json_get(&root, "exp", &v), -1);
	CU_ASSERT_EQUAL(test_oauth_json("{}", &root), 0);
	CU_ASSERT_EQUAL(oauth_json_get(&root, "a", &v), 0);
}

static void
test_oauth_json_bad(void)
{
	static const char *const bad[] = {
		"", " ", "[]", "\"s\"", "1", "{", "}", "{\"a\"}", "{\"a\":}",
		"{\"a\":1,}", "{,}", "{\"a\":1 \"b\":2}", "{a:1}", "{'a':1}",
		"{\"a\":01}", "{\"a\":1.}", "{\"a\":.5}", "{\"a\":-}",
		"{\"a\":1e}", "{\"a\":+1}", "{\"a\":tru}", "{\"a\":nul}",
		"{\"a\":True}", "{\"a\":\"\\q\"}", "{\"a\":\"\\u12\"}",
		"{\"a\":\"\\u12g4\"}", "{\"a\":\"x}", "{\"a\":\"\x01\"}",
		"{\"a\":\"\t\"}", "{\"a\":[1,]}", "{\"a\":[1 2]}", "{\"a\":[}",
		"{} x", "{}{}", "{\"a\":1}}", "{\"a\":NaN}", "{\"a\":-Infinity}",
	};
	struct oauth_json_val root, v;
	char deep[128], s[32];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (test_oauth_json(bad[i], &root) != -1)
			CU_FAIL(bad[i]);
	/* Nesting: OAUTH_JSON_DEPTH levels are fine, one more is not. */
	memset(deep, 0, sizeof(deep));
	for (i = 0; i < OAUTH_JSON_DEPTH; i++)
		strcat(deep, i == 0 ? "{\"a\":" : "[");
	strcat(deep, "1");
	for (i = 1; i < OAUTH_JSON_DEPTH; i++)
		strcat(deep, "]");
	strcat(deep, "}");
	CU_ASSERT_EQUAL(test_oauth_json(deep, &root), 0);
	memset(deep, 0, sizeof(deep));
	for (i = 0; i <= OAUTH_JSON_DEPTH; i++)
		strcat(deep, i == 0 ? "{\"a\":" : "[");
	for (i = 1; i <= OAUTH_JSON_DEPTH; i++)
		strcat(deep, "]");
	strcat(deep, "}");
	CU_ASSERT_EQUAL(test_oauth_json(deep, &root), -1);
	/* Well-formed, but refused by the string reader: NUL, lone
	 * surrogates. */
	CU_ASSERT_EQUAL_FATAL(test_oauth_json("{\"z\":\"a\\u0000b\","
	    "\"lo\":\"\\udc00\",\"hi\":\"\\ud800x\"}", &root), 0);
	CU_ASSERT_EQUAL(oauth_json_get(&root, "z", &v), 1);
	CU_ASSERT_EQUAL(oauth_json_string(&v, s, sizeof(s)), -1);
	CU_ASSERT_EQUAL(oauth_json_get(&root, "lo", &v), 1);
	CU_ASSERT_EQUAL(oauth_json_string(&v, s, sizeof(s)), -1);
	CU_ASSERT_EQUAL(oauth_json_get(&root, "hi", &v), 1);
	CU_ASSERT_EQUAL(oauth_json_string(&v, s, sizeof(s)), -1);
	/* Length is honoured: no reading past len. */
	CU_ASSERT_EQUAL(oauth_json_parse("{\"a\":1}", 6, &root), -1);
}

/* ------------------------------------------------------------------ */

static EVP_PKEY *test_oauth_rsa, *test_oauth_ec;
static char test_oauth_dir[256];

/* base64url without padding. */
static void
test_oauth_b64u(const unsigned char *in, size_t n, char *out, size_t cap)
{
	char *p;

	CU_ASSERT_FATAL(util_b64_encode(in, n, out, cap) >= 0);
	for (p = out; *p != '\0'; p++) {
		if (*p == '+')
			*p = '-';
		else if (*p == '/')
			*p = '_';
		else if (*p == '=') {
			*p = '\0';
			break;
		}
	}
}

/* Sign data with alg the way a provider would; returns the length. */
static size_t
test_oauth_sign(const char *alg, const char *data, unsigned char *sig)
{
	EVP_MD_CTX *md;
	EVP_PKEY *k;
	size_t len = 512;
	unsigned int ml;
	unsigned char der[128];
	const unsigned char *dp = der;
	ECDSA_SIG *es;
	const BIGNUM *r, *s;

	if (strcmp(alg, "HS256") == 0) {
		HMAC(EVP_sha256(), TEST_OAUTH_SECRET,
		    (int)strlen(TEST_OAUTH_SECRET),
		    (const unsigned char *)data, strlen(data), sig, &ml);
		return ml;
	}
	k = strcmp(alg, "RS256") == 0 ? test_oauth_rsa : test_oauth_ec;
	md = EVP_MD_CTX_new();
	CU_ASSERT_FATAL(md != NULL);
	if (k == test_oauth_ec) {
		len = sizeof(der);
		CU_ASSERT_FATAL(EVP_DigestSignInit(md, NULL, EVP_sha256(),
		    NULL, k) == 1 && EVP_DigestSign(md, der, &len,
		    (const unsigned char *)data, strlen(data)) == 1);
		es = d2i_ECDSA_SIG(NULL, &dp, (long)len);
		CU_ASSERT_FATAL(es != NULL);
		ECDSA_SIG_get0(es, &r, &s);
		BN_bn2binpad(r, sig, 32);
		BN_bn2binpad(s, sig + 32, 32);
		ECDSA_SIG_free(es);
		len = 64;
	} else
		CU_ASSERT_FATAL(EVP_DigestSignInit(md, NULL, EVP_sha256(),
		    NULL, k) == 1 && EVP_DigestSign(md, sig, &len,
		    (const unsigned char *)data, strlen(data)) == 1);
	EVP_MD_CTX_free(md);
	return len;
}

/* A token with this header and payload, signed with alg (or unsigned). */
static char *
test_oauth_jwt(const char *alg, const char *hdr, const char *payload)
{
	static char tok[4096];
	char part[2048];
	unsigned char sig[512];
	size_t n;

	test_oauth_b64u((const unsigned char *)hdr, strlen(hdr), part,
	    sizeof(part));
	snprintf(tok, sizeof(tok), "%s.", part);
	test_oauth_b64u((const unsigned char *)payload, strlen(payload), part,
	    sizeof(part));
	strcat(tok, part);
	if (alg == NULL) {
		strcat(tok, ".");
		return tok;
	}
	n = test_oauth_sign(alg, tok, sig);
	test_oauth_b64u(sig, n, part, sizeof(part));
	strcat(tok, ".");
	strcat(tok, part);
	return tok;
}

/* Standard claims for user, expiring exp seconds from now. */
static const char *
test_oauth_claims(const char *user, long exp, const char *extra)
{
	static char buf[1024];

	snprintf(buf, sizeof(buf), "{\"iss\":\"%s\",\"aud\":[\"other\",\"%s\"],"
	    "\"email\":\"%s\",\"exp\":%lld%s}", TEST_OAUTH_ISS, TEST_OAUTH_AUD,
	    user, (long long)time(NULL) + exp, extra);
	return buf;
}

/* Write k's public half as PEM; no CUnit asserts (used in suite init). */
static int
test_oauth_write_pub(EVP_PKEY *k, const char *name)
{
	char path[512];
	FILE *f;
	int ok;

	snprintf(path, sizeof(path), "%s/%s", test_oauth_dir, name);
	if ((f = fopen(path, "w")) == NULL)
		return -1;
	ok = PEM_write_PUBKEY(f, k) == 1;
	return fclose(f) == 0 && ok ? 0 : -1;
}

static int
test_oauth_init(void)
{
	char path[512];

	snprintf(test_oauth_dir, sizeof(test_oauth_dir), "%s", test_tmpdir());
	test_oauth_rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	test_oauth_ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	if (test_oauth_rsa == NULL || test_oauth_ec == NULL)
		return -1;
	if (test_oauth_write_pub(test_oauth_rsa, "rsa.pub") == -1 ||
	    test_oauth_write_pub(test_oauth_ec, "ec.pub") == -1)
		return -1;
	snprintf(path, sizeof(path), "%s/hs.secret", test_oauth_dir);
	return test_write_file(path, TEST_OAUTH_SECRET "\n",
	    strlen(TEST_OAUTH_SECRET) + 1);
}

static int
test_oauth_cleanup(void)
{
	EVP_PKEY_free(test_oauth_rsa);
	EVP_PKEY_free(test_oauth_ec);
	test_rmtree(test_oauth_dir);
	return 0;
}

/* Settings with a key file (NULL: none) and, if secret, the HS256 file. */
static struct oauth_conf *
test_oauth_conf(const char *keyfile, int secret)
{
	struct oauth_conf *oc = oauth_conf_new();
	char path[512], err[512];
	const char *key;

	CU_ASSERT_FATAL(oc != NULL);
	if (keyfile != NULL) {
		snprintf(path, sizeof(path), "%s/%s", test_oauth_dir, keyfile);
		CU_ASSERT_EQUAL(oauth_conf_set(oc, "oauth_jwt_key", path, err,
		    sizeof(err)), 0);
	}
	if (secret) {
		snprintf(path, sizeof(path), "%s/hs.secret", test_oauth_dir);
		CU_ASSERT_EQUAL(oauth_conf_set(oc, "oauth_jwt_secret_file",
		    path, err, sizeof(err)), 0);
	}
	CU_ASSERT_EQUAL(oauth_conf_set(oc, "oauth_issuer", TEST_OAUTH_ISS,
	    err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(oauth_conf_set(oc, "oauth_audience", TEST_OAUTH_AUD,
	    err, sizeof(err)), 0);
	if (oauth_conf_finish(oc, 1, err, sizeof(err), &key) != 0) {
		CU_FAIL(err);
	}
	return oc;
}

/* Verify tok against oc; returns the result, the user in user. */
static enum oauth_result
test_oauth_check(struct oauth_conf *oc, const char *tok, char *user)
{
	const char *why;

	return oauth_verify(oc, tok, strlen(tok), time(NULL), user,
	    AUTH_USER_MAX + 1, &why);
}

static void
test_oauth_jwt_valid(void)
{
	struct oauth_conf *rsa = test_oauth_conf("rsa.pub", 1);
	struct oauth_conf *ec = test_oauth_conf("ec.pub", 0);
	const char *hdr_rs = "{\"alg\":\"RS256\",\"typ\":\"JWT\",\"kid\":\"1\"}";
	char user[AUTH_USER_MAX + 1];

	CU_ASSERT_EQUAL(test_oauth_check(rsa, test_oauth_jwt("RS256", hdr_rs,
	    test_oauth_claims("alice@example.org", 600, "")), user), OAUTH_OK);
	CU_ASSERT_STRING_EQUAL(user, "alice@example.org");
	CU_ASSERT_EQUAL(test_oauth_check(rsa, test_oauth_jwt("HS256",
	    "{\"alg\":\"HS256\"}", test_oauth_claims("bob", 600, "")), user),
	    OAUTH_OK);
	CU_ASSERT_STRING_EQUAL(user, "bob");
	CU_ASSERT_EQUAL(test_oauth_check(ec, test_oauth_jwt("ES256",
	    "{\"alg\":\"ES256\"}", test_oauth_claims("carol", 600, "")), user),
	    OAUTH_OK);
	CU_ASSERT_STRING_EQUAL(user, "carol");
	/* Expired a few seconds ago: inside the leeway. */
	CU_ASSERT_EQUAL(test_oauth_check(rsa, test_oauth_jwt("RS256", hdr_rs,
	    test_oauth_claims("alice", -(OAUTH_LEEWAY_SEC / 2), "")), user),
	    OAUTH_OK);
	/* aud as a plain string. */
	{
		char p[256];

		snprintf(p, sizeof(p), "{\"iss\":\"%s\",\"aud\":\"%s\","
		    "\"email\":\"d\",\"exp\":%lld}", TEST_OAUTH_ISS,
		    TEST_OAUTH_AUD, (long long)time(NULL) + 60);
		CU_ASSERT_EQUAL(test_oauth_check(rsa, test_oauth_jwt("RS256",
		    hdr_rs, p), user), OAUTH_OK);
	}
	oauth_conf_unref(rsa);
	oauth_conf_unref(ec);
}

static void
test_oauth_jwt_refused(void)
{
	struct oauth_conf *rsa = test_oauth_conf("rsa.pub", 0);
	struct oauth_conf *both = test_oauth_conf("rsa.pub", 1);
	const char *hdr = "{\"alg\":\"RS256\"}";
	char user[AUTH_USER_MAX + 1], tok[4096], pem[4096], part[2048];
	char *dot;
	unsigned char mac[64];
	unsigned int ml;
	BIO *bio;
	long pemlen;
	struct { const char *what; const char *alg, *hdr, *claims; } c[] = {
		{ "expired", "RS256", hdr, NULL },
		{ "not yet", "RS256", hdr, NULL },
		{ "no exp", "RS256", hdr, "{\"iss\":\"" TEST_OAUTH_ISS "\","
		  "\"aud\":\"" TEST_OAUTH_AUD "\",\"email\":\"a\"}" },
		{ "wrong iss", "RS256", hdr, NULL },
		{ "wrong aud", "RS256", hdr, NULL },
		{ "no user", "RS256", hdr, NULL },
		{ "bad user", "RS256", hdr, NULL },
		{ "none", NULL, "{\"alg\":\"none\"}", NULL },
		{ "None", NULL, "{\"alg\":\"None\"}", NULL },
		{ "RS512", "RS256", "{\"alg\":\"RS512\"}", NULL },
		{ "ES256 with RSA key", "ES256", "{\"alg\":\"ES256\"}", NULL },
		{ "HS256 without secret", "HS256", "{\"alg\":\"HS256\"}", NULL },
		{ "crit", "RS256", "{\"alg\":\"RS256\",\"crit\":[\"b64\"]}",
		  NULL },
		{ "no alg", "RS256", "{\"typ\":\"JWT\"}", NULL },
		{ "dup exp", "RS256", hdr, NULL },
	};
	char claims[1024];
	size_t i;
	long long now = (long long)time(NULL);

	for (i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		const char *p = c[i].claims;

		if (p == NULL) {
			const char *iss = TEST_OAUTH_ISS, *aud = TEST_OAUTH_AUD;
			const char *u = "alice", *extra = "";
			long long exp = now + 600;

			if (strcmp(c[i].what, "expired") == 0)
				exp = now - OAUTH_LEEWAY_SEC - 5;
			if (strcmp(c[i].what, "not yet") == 0)
				extra = ",\"nbf\":99999999999";
			if (strcmp(c[i].what, "wrong iss") == 0)
				iss = "https://evil.example";
			if (strcmp(c[i].what, "wrong aud") == 0)
				aud = "pop3x";
			if (strcmp(c[i].what, "no user") == 0)
				u = NULL;
			if (strcmp(c[i].what, "bad user") == 0)
				u = "../../etc";
			if (strcmp(c[i].what, "dup exp") == 0)
				extra = ",\"exp\":99999999999";
			if (u != NULL)
				snprintf(claims, sizeof(claims), "{\"iss\":\"%s\","
				    "\"aud\":\"%s\",\"email\":\"%s\",\"exp\":%lld"
				    "%s}", iss, aud, u, exp, extra);
			else
				snprintf(claims, sizeof(claims), "{\"iss\":\"%s\","
				    "\"aud\":\"%s\",\"sub\":\"x\",\"exp\":%lld}",
				    iss, aud, exp);
			p = claims;
		}
		if (test_oauth_check(strcmp(c[i].what, "HS256 without secret")
		    == 0 ? rsa : both, test_oauth_jwt(c[i].alg, c[i].hdr, p),
		    user) != OAUTH_INVALID)
			CU_FAIL(c[i].what);
	}

	/* Alg confusion: HS256 keyed with the RSA public key's PEM text. */
	bio = BIO_new(BIO_s_mem());
	CU_ASSERT_FATAL(bio != NULL && PEM_write_bio_PUBKEY(bio,
	    test_oauth_rsa) == 1);
	pemlen = BIO_read(bio, pem, sizeof(pem));
	BIO_free(bio);
	snprintf(tok, sizeof(tok), "%s", test_oauth_jwt(NULL,
	    "{\"alg\":\"HS256\"}", test_oauth_claims("alice", 600, "")));
	tok[strlen(tok) - 1] = '\0';
	HMAC(EVP_sha256(), pem, (int)pemlen, (unsigned char *)tok, strlen(tok),
	    mac, &ml);
	test_oauth_b64u(mac, ml, part, sizeof(part));
	strcat(tok, ".");
	strcat(tok, part);
	CU_ASSERT_EQUAL(test_oauth_check(rsa, tok, user), OAUTH_INVALID);
	CU_ASSERT_EQUAL(test_oauth_check(both, tok, user), OAUTH_INVALID);

	/* A good token, then spoilt. */
	snprintf(tok, sizeof(tok), "%s", test_oauth_jwt("RS256", hdr,
	    test_oauth_claims("alice", 600, "")));
	CU_ASSERT_EQUAL(test_oauth_check(rsa, tok, user), OAUTH_OK);
	/* Flip one signature character. */
	dot = strrchr(tok, '.');
	dot[5] = dot[5] == 'A' ? 'B' : 'A';
	CU_ASSERT_EQUAL(test_oauth_check(rsa, tok, user), OAUTH_INVALID);
	dot[5] = dot[5] == 'A' ? 'B' : 'A';
	/* Swap in another payload, keep the signature. */
	{
		char good[1024], evil[1024];
		const char *pl = test_oauth_claims("mallory", 600, "");
		char *d1;

		CU_ASSERT_FATAL(strlen(tok) < sizeof(good));
		memcpy(good, tok, strlen(tok) + 1);
		test_oauth_b64u((const unsigned char *)pl, strlen(pl), evil,
		    sizeof(evil));
		d1 = strchr(good, '.');
		*d1 = '\0';
		snprintf(tok, sizeof(tok), "%s.%s%s", good, evil,
		    strrchr(d1 + 1, '.'));
		CU_ASSERT_EQUAL(test_oauth_check(rsa, tok, user),
		    OAUTH_INVALID);
		CU_ASSERT_STRING_EQUAL(user, "");
	}
	/* Malformed forms. */
	CU_ASSERT_EQUAL(test_oauth_check(rsa, "a.b", user), OAUTH_INVALID);
	CU_ASSERT_EQUAL(test_oauth_check(rsa, "a.b.c.d", user), OAUTH_INVALID);
	CU_ASSERT_EQUAL(test_oauth_check(rsa, "..", user), OAUTH_INVALID);
	CU_ASSERT_EQUAL(test_oauth_check(rsa, "e30=.e30.", user),
	    OAUTH_INVALID);
	CU_ASSERT_EQUAL(test_oauth_check(rsa, "e30.e30.x", user),
	    OAUTH_INVALID);
	oauth_conf_unref(rsa);
	oauth_conf_unref(both);
}

/* ------------------------------------------------------------------ */

static void
test_oauth_introspection(void)
{
	struct oauth_conf *oc = oauth_conf_new();
	char err[256], user[AUTH_USER_MAX + 1], body[512];
	const char *key, *why;
	time_t now = time(NULL);

#define TEST_OAUTH_INTRO(b) \
	oauth_introspection_result(oc, (b), strlen(b), now, user, \
	    sizeof(user), &why)

	CU_ASSERT_FATAL(oc != NULL);
	CU_ASSERT_EQUAL(oauth_conf_set(oc, "oauth_introspection_url",
	    "http://127.0.0.1:1/introspect?x=1", err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(oauth_conf_set(oc, "oauth_username_claim", "username",
	    err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(oauth_conf_set(oc, "oauth_issuer", "idp", err,
	    sizeof(err)), 0);
	CU_ASSERT_EQUAL(oauth_conf_finish(oc, 1, err, sizeof(err), &key), 0);
	CU_ASSERT_EQUAL(TEST_OAUTH_INTRO("{\"active\":true,\"username\":"
	    "\"dave\"}"), OAUTH_OK);
	CU_ASSERT_STRING_EQUAL(user, "dave");
	snprintf(body, sizeof(body), "{\"active\":true,\"username\":\"dave\","
	    "\"iss\":\"idp\",\"exp\":%lld}", (long long)now + 60);
	CU_ASSERT_EQUAL(TEST_OAUTH_INTRO(body), OAUTH_OK);
	CU_ASSERT_EQUAL(TEST_OAUTH_INTRO("{\"active\":false,\"username\":"
	    "\"dave\"}"), OAUTH_INVALID);
	CU_ASSERT_EQUAL(TEST_OAUTH_INTRO("{\"active\":\"true\",\"username\":"
	    "\"dave\"}"), OAUTH_INVALID);
	CU_ASSERT_EQUAL(TEST_OAUTH_INTRO("{\"username\":\"dave\"}"),
	    OAUTH_INVALID);
	CU_ASSERT_EQUAL(TEST_OAUTH_INTRO("{\"active\":true}"), OAUTH_INVALID);
	CU_ASSERT_EQUAL(TEST_OAUTH_INTRO("{\"active\":true,\"username\":"
	    "\"dave\",\"iss\":\"other\"}"), OAUTH_INVALID);
	CU_ASSERT_EQUAL(TEST_OAUTH_INTRO("{\"active\":true,\"username\":"
	    "\"dave\",\"exp\":1000}"), OAUTH_INVALID);
	CU_ASSERT_EQUAL(TEST_OAUTH_INTRO("{\"active\":true,\"active\":false,"
	    "\"username\":\"dave\"}"), OAUTH_INVALID);
	CU_ASSERT_EQUAL(TEST_OAUTH_INTRO("<html>"), OAUTH_TEMP);
	CU_ASSERT_EQUAL(TEST_OAUTH_INTRO(""), OAUTH_TEMP);
	/* No endpoint listening: a temporary failure, not a refusal. */
	CU_ASSERT_EQUAL(oauth_verify(oc, "tok", 3, now, user, sizeof(user),
	    &why), OAUTH_TEMP);
	oauth_conf_unref(oc);
#undef TEST_OAUTH_INTRO
}

static void
test_oauth_conf_keys(void)
{
	static const char *const bad[][2] = {
		{ "oauth_introspection_url", "ftp://x/" },
		{ "oauth_introspection_url", "http://" },
		{ "oauth_introspection_url", "http://h:0/" },
		{ "oauth_introspection_url", "http://h:70000/" },
		{ "oauth_introspection_url", "http://us@er@h/" },
		{ "oauth_introspection_url", "http://h/a b" },
		{ "oauth_introspection_timeout", "0" },
		{ "oauth_introspection_timeout", "61" },
		{ "oauth_username_claim", "a b" },
		{ "oauth_username_claim", "" },
		{ "oauth_nonsense", "x" },
	};
	struct oauth_conf *oc;
	struct config *cf;
	char err[512], warn[64], text[1024], path[512];
	const char *key;
	size_t i;
	EVP_PKEY *small;

	CU_ASSERT(oauth_conf_is_key("oauth_jwt_key"));
	CU_ASSERT(!oauth_conf_is_key("passwd_file"));
	oc = oauth_conf_new();
	CU_ASSERT_FATAL(oc != NULL);
	CU_ASSERT(!oauth_conf_enabled(oc));
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (oauth_conf_set(oc, bad[i][0], bad[i][1], err,
		    sizeof(err)) != -1)
			CU_FAIL(bad[i][1]);
	/* Nothing to check tokens with. */
	CU_ASSERT_EQUAL(oauth_conf_finish(oc, 0, err, sizeof(err), &key), -1);
	CU_ASSERT(strstr(err, "oauth_jwt_key") != NULL);
	CU_ASSERT_EQUAL(oauth_conf_set(oc, "oauth_introspection_url",
	    "http://[::1]:9/x", err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(oauth_conf_set(oc, "oauth_client_id", "id", err,
	    sizeof(err)), 0);
	CU_ASSERT_EQUAL(oauth_conf_finish(oc, 0, err, sizeof(err), &key), -1);
	CU_ASSERT(strstr(err, "oauth_client_secret") != NULL);
	CU_ASSERT(oauth_conf_enabled(oc));
	oauth_conf_unref(oc);

	/* Key files: a private key, a short RSA key, a short secret. */
	oc = oauth_conf_new();
	snprintf(path, sizeof(path), "%s/priv.pem", test_oauth_dir);
	{
		FILE *f = fopen(path, "w");

		CU_ASSERT_FATAL(f != NULL);
		PEM_write_PrivateKey(f, test_oauth_ec, NULL, NULL, 0, NULL,
		    NULL);
		fclose(f);
	}
	oauth_conf_set(oc, "oauth_jwt_key", path, err, sizeof(err));
	CU_ASSERT_EQUAL(oauth_conf_finish(oc, 1, err, sizeof(err), &key), -1);
	CU_ASSERT_STRING_EQUAL(key, "oauth_jwt_key");
	oauth_conf_unref(oc);
	small = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
	CU_ASSERT_FATAL(small != NULL);
	CU_ASSERT_EQUAL(test_oauth_write_pub(small, "small.pub"), 0);
	EVP_PKEY_free(small);
	oc = oauth_conf_new();
	snprintf(path, sizeof(path), "%s/small.pub", test_oauth_dir);
	oauth_conf_set(oc, "oauth_jwt_key", path, err, sizeof(err));
	CU_ASSERT_EQUAL(oauth_conf_finish(oc, 1, err, sizeof(err), &key), -1);
	CU_ASSERT(strstr(err, "2048") != NULL);
	oauth_conf_unref(oc);
	oc = oauth_conf_new();
	snprintf(path, sizeof(path), "%s/short.secret", test_oauth_dir);
	test_write_file(path, "short\n", 6);
	oauth_conf_set(oc, "oauth_jwt_secret_file", path, err, sizeof(err));
	CU_ASSERT_EQUAL(oauth_conf_finish(oc, 1, err, sizeof(err), &key), -1);
	oauth_conf_unref(oc);

	/* Through conf_parse: errors name the line. */
	snprintf(text, sizeof(text), "passwd_file /x\nmail_location /m/%%u\n"
	    "oauth_issuer https://idp\n");
	cf = conf_parse("c", text, strlen(text), err, sizeof(err), warn,
	    sizeof(warn));
	CU_ASSERT_PTR_NULL(cf);
	CU_ASSERT(strncmp(err, "c:3: ", 5) == 0);
	snprintf(text, sizeof(text), "passwd_file /x\nmail_location /m/%%u\n"
	    "oauth_introspection_timeout 99\n");
	cf = conf_parse("c", text, strlen(text), err, sizeof(err), warn,
	    sizeof(warn));
	CU_ASSERT_PTR_NULL(cf);
	CU_ASSERT(strncmp(err, "c:3: ", 5) == 0);
	snprintf(text, sizeof(text), "passwd_file /x\nmail_location /m/%%u\n"
	    "oauth_introspection_url http://127.0.0.1/i\n");
	cf = conf_parse("c", text, strlen(text), err, sizeof(err), warn,
	    sizeof(warn));
	CU_ASSERT_PTR_NOT_NULL_FATAL(cf);
	CU_ASSERT(oauth_conf_enabled(cf->oauth));
	conf_free(cf);
}

static void
test_oauth_challenge(void)
{
	unsigned char out[128];
	size_t n = sizeof(out) - 1;
	struct oauth_json_val root, v;

	CU_ASSERT_EQUAL_FATAL(util_b64_decode(oauth_error_challenge(),
	    strlen(oauth_error_challenge()), out, &n), 0);
	CU_ASSERT_EQUAL_FATAL(oauth_json_parse((char *)out, n, &root), 0);
	CU_ASSERT_EQUAL(oauth_json_get(&root, "status", &v), 1);
	CU_ASSERT(oauth_json_streq(&v, "invalid_token"));
}

void
test_oauth_register(void)
{
	CU_pSuite s;

	s = CU_add_suite("oauth", test_oauth_init, test_oauth_cleanup);
	CU_add_test(s, "GS2 message: good", test_oauth_gs2_good);
	CU_add_test(s, "GS2 message: refused", test_oauth_gs2_bad);
	CU_add_test(s, "JSON: good", test_oauth_json_good);
	CU_add_test(s, "JSON: malformed", test_oauth_json_bad);
	CU_add_test(s, "JWT: RS256 ES256 HS256", test_oauth_jwt_valid);
	CU_add_test(s, "JWT: refused", test_oauth_jwt_refused);
	CU_add_test(s, "introspection answers", test_oauth_introspection);
	CU_add_test(s, "configuration keys", test_oauth_conf_keys);
	CU_add_test(s, "error challenge", test_oauth_challenge);
}
