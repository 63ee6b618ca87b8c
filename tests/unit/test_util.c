/* SPDX-License-Identifier: ISC */
/*
 * evpop3d unit tests for util.c: strict number parsing, base64 (RFC 4648
 * vectors and every kind of malformed input), wiping, constant-time
 * comparison, log escaping and hex.
 */
#include "config.h"

#include <limits.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "tests.h"
#include "util.h"

static void
test_util_strtonum_good(void)
{
	unsigned long long v = 7;
	const char *errstr = "x";

	CU_ASSERT_EQUAL(util_strtonum("0", 0, 10, &v, &errstr), 0);
	CU_ASSERT_EQUAL(v, 0);
	CU_ASSERT_PTR_NULL(errstr);
	CU_ASSERT_EQUAL(util_strtonum("42", 1, 100, &v, &errstr), 0);
	CU_ASSERT_EQUAL(v, 42);
	CU_ASSERT_EQUAL(util_strtonum("007", 1, 100, &v, &errstr), 0);
	CU_ASSERT_EQUAL(v, 7);
	CU_ASSERT_EQUAL(util_strtonum("18446744073709551615", 0, ULLONG_MAX,
	    &v, &errstr), 0);
	CU_ASSERT_EQUAL(v, ULLONG_MAX);
	/* The bounds themselves are inside the range. */
	CU_ASSERT_EQUAL(util_strtonum("1", 1, 65535, &v, NULL), 0);
	CU_ASSERT_EQUAL(util_strtonum("65535", 1, 65535, &v, NULL), 0);
	CU_ASSERT_EQUAL(v, 65535);
}

static void
test_util_strtonum_bad(void)
{
	static const char *const bad[] = {
		"", "+1", "-1", " 1", "1 ", "0x1", "1x", "1.0", "1e3", "\t1",
		"1\n", "\xd9\xa3",	/* ARABIC-INDIC DIGIT THREE */
	};
	unsigned long long v;
	const char *errstr;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		errstr = NULL;
		CU_ASSERT_EQUAL(util_strtonum(bad[i], 0, ULLONG_MAX, &v,
		    &errstr), -1);
		CU_ASSERT_PTR_NOT_NULL_FATAL(errstr);
		CU_ASSERT_STRING_EQUAL(errstr, "invalid");
	}
	CU_ASSERT_EQUAL(util_strtonum(NULL, 0, 1, &v, &errstr), -1);
	CU_ASSERT_EQUAL(util_strtonum("99999999999999999999", 0, ULLONG_MAX,
	    &v, &errstr), -1);
	CU_ASSERT_STRING_EQUAL(errstr, "too large");
	CU_ASSERT_EQUAL(util_strtonum("18446744073709551616", 0, ULLONG_MAX,
	    &v, &errstr), -1);
	CU_ASSERT_STRING_EQUAL(errstr, "too large");
	CU_ASSERT_EQUAL(util_strtonum("0", 1, 65535, &v, &errstr), -1);
	CU_ASSERT_STRING_EQUAL(errstr, "too small");
	CU_ASSERT_EQUAL(util_strtonum("65536", 1, 65535, &v, &errstr), -1);
	CU_ASSERT_STRING_EQUAL(errstr, "too large");
	/* errstr may be NULL. */
	CU_ASSERT_EQUAL(util_strtonum("x", 0, 1, &v, NULL), -1);
}

/* RFC 4648 section 10. */
static const struct {
	const char *plain, *enc;
} test_util_b64_vectors[] = {
	{ "", "" }, { "f", "Zg==" }, { "fo", "Zm8=" }, { "foo", "Zm9v" },
	{ "foob", "Zm9vYg==" }, { "fooba", "Zm9vYmE=" },
	{ "foobar", "Zm9vYmFy" },
};

static void
test_util_b64_rfc(void)
{
	char enc[64];
	unsigned char dec[64];
	size_t i, n, pl;

	for (i = 0; i < sizeof(test_util_b64_vectors) /
	    sizeof(test_util_b64_vectors[0]); i++) {
		pl = strlen(test_util_b64_vectors[i].plain);
		CU_ASSERT_EQUAL(util_b64_encode((const unsigned char *)
		    test_util_b64_vectors[i].plain, pl, enc, sizeof(enc)),
		    (int)strlen(test_util_b64_vectors[i].enc));
		CU_ASSERT_STRING_EQUAL(enc, test_util_b64_vectors[i].enc);
		n = sizeof(dec);
		CU_ASSERT_EQUAL_FATAL(util_b64_decode(
		    test_util_b64_vectors[i].enc,
		    strlen(test_util_b64_vectors[i].enc), dec, &n), 0);
		CU_ASSERT_EQUAL(n, pl);
		CU_ASSERT(memcmp(dec, test_util_b64_vectors[i].plain, pl) == 0);
	}
}

static void
test_util_b64_roundtrip(void)
{
	unsigned char in[300], dec[300];
	char enc[4 * 100 + 1];
	size_t len, n, i;
	int r;

	for (i = 0; i < sizeof(in); i++)
		in[i] = (unsigned char)(i * 7 + 3);
	for (len = 0; len <= 300; len += 1 + len / 8) {
		r = util_b64_encode(in, len, enc, 4 * ((len + 2) / 3) + 1);
		CU_ASSERT_EQUAL_FATAL(r, (int)(4 * ((len + 2) / 3)));
		CU_ASSERT_EQUAL(strlen(enc), (size_t)r);
		n = sizeof(dec);
		CU_ASSERT_EQUAL_FATAL(util_b64_decode(enc, (size_t)r, dec, &n),
		    0);
		CU_ASSERT_EQUAL(n, len);
		CU_ASSERT(memcmp(in, dec, len) == 0);
	}
	/* Every byte value, including the ones that map to '+' and '/'. */
	for (i = 0; i < 256 && i < sizeof(in); i++)
		in[i] = (unsigned char)(255 - i);
	r = util_b64_encode(in, 255, enc, sizeof(enc));
	CU_ASSERT(r > 0);
	CU_ASSERT(strchr(enc, '+') != NULL && strchr(enc, '/') != NULL);
	n = sizeof(dec);
	CU_ASSERT_EQUAL(util_b64_decode(enc, (size_t)r, dec, &n), 0);
	CU_ASSERT_EQUAL(n, 255);
	CU_ASSERT(memcmp(in, dec, 255) == 0);
}

static void
test_util_b64_bad(void)
{
	static const char *const bad[] = {
		"Zg", "Zg=", "Zm9", "Z===", "====", "=Zg=", "Zm=v",
		"Zg==Zg==", "Zm9v!A==", " Zg==", "Zg==\n", "Zm9v\r\n",
		"Zm9-", "Zm9_",
		"Zh==",		/* non-zero bits under the padding */
		"Zm9=",
	};
	unsigned char out[16];
	size_t i, n;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		n = sizeof(out);
		CU_ASSERT_EQUAL(util_b64_decode(bad[i], strlen(bad[i]), out,
		    &n), -1);
	}
	/* A NUL inside the counted input is a bad character too. */
	n = sizeof(out);
	CU_ASSERT_EQUAL(util_b64_decode("Zm\0v", 4, out, &n), -1);
	/* Empty input decodes to nothing. */
	n = sizeof(out);
	CU_ASSERT_EQUAL(util_b64_decode("", 0, out, &n), 0);
	CU_ASSERT_EQUAL(n, 0);
}

static void
test_util_b64_short_buffers(void)
{
	unsigned char out[8];
	char enc[8];
	size_t n;

	memset(out, 0xaa, sizeof(out));
	n = 2;
	CU_ASSERT_EQUAL(util_b64_decode("Zm9v", 4, out, &n), -1);
	n = 3;
	CU_ASSERT_EQUAL(util_b64_decode("Zm9v", 4, out, &n), 0);
	CU_ASSERT_EQUAL(n, 3);
	CU_ASSERT_EQUAL(out[3], 0xaa);
	n = 1;
	CU_ASSERT_EQUAL(util_b64_decode("Zg==", 4, out, &n), 0);
	CU_ASSERT_EQUAL(n, 1);
	CU_ASSERT_EQUAL(out[0], 'f');

	/* "foo" needs 4 characters plus the NUL. */
	CU_ASSERT_EQUAL(util_b64_encode((const unsigned char *)"foo", 3, enc,
	    4), -1);
	CU_ASSERT_EQUAL(util_b64_encode((const unsigned char *)"foo", 3, enc,
	    5), 4);
	CU_ASSERT_STRING_EQUAL(enc, "Zm9v");
	CU_ASSERT_EQUAL(util_b64_encode((const unsigned char *)"", 0, enc,
	    1), 0);
	CU_ASSERT_STRING_EQUAL(enc, "");
}

static void
test_util_wipe(void)
{
	unsigned char buf[64], zero[64];

	memset(buf, 0x5a, sizeof(buf));
	memset(zero, 0, sizeof(zero));
	util_wipe(buf + 8, 32);
	CU_ASSERT(memcmp(buf + 8, zero, 32) == 0);
	CU_ASSERT_EQUAL(buf[7], 0x5a);
	CU_ASSERT_EQUAL(buf[40], 0x5a);
	util_wipe(buf, 0);
	CU_ASSERT_EQUAL(buf[0], 0x5a);
}

static void
test_util_ct_equal(void)
{
	CU_ASSERT_EQUAL(util_ct_equal("abc", 3, "abc", 3), 1);
	CU_ASSERT_EQUAL(util_ct_equal("abc", 3, "abd", 3), 0);
	CU_ASSERT_EQUAL(util_ct_equal("abc", 3, "xbc", 3), 0);
	CU_ASSERT_EQUAL(util_ct_equal("abc", 3, "abcd", 4), 0);
	CU_ASSERT_EQUAL(util_ct_equal("abc", 2, "abd", 2), 1);
	CU_ASSERT_EQUAL(util_ct_equal("", 0, "", 0), 1);
	CU_ASSERT_EQUAL(util_ct_equal("a\0b", 3, "a\0c", 3), 0);
	CU_ASSERT_EQUAL(util_ct_equal("\x80", 1, "\x00", 1), 0);
}

static void
test_util_log_escape(void)
{
	char out[64];

	util_log_escape(out, sizeof(out), "USER bob\r\n", 10);
	CU_ASSERT_STRING_EQUAL(out, "USER bob\\x0d\\x0a");
	util_log_escape(out, sizeof(out), "a\0b\x7f\xff~", 6);
	CU_ASSERT_STRING_EQUAL(out, "a\\x00b\\x7f\\xff~");
	util_log_escape(out, sizeof(out), "\x1b[2J", 4);
	CU_ASSERT_STRING_EQUAL(out, "\\x1b[2J");
	/* Truncation keeps the NUL and never splits an escape. */
	util_log_escape(out, 4, "abcdef", 6);
	CU_ASSERT_STRING_EQUAL(out, "abc");
	util_log_escape(out, 6, "ab\ncd", 5);
	CU_ASSERT_STRING_EQUAL(out, "ab");
	util_log_escape(out, 7, "ab\ncd", 5);
	CU_ASSERT_STRING_EQUAL(out, "ab\\x0a");
	util_log_escape(out, 1, "abc", 3);
	CU_ASSERT_STRING_EQUAL(out, "");
	util_log_escape(out, sizeof(out), "", 0);
	CU_ASSERT_STRING_EQUAL(out, "");
}

static void
test_util_hex(void)
{
	static const unsigned char in[] = { 0x00, 0x0f, 0xa5, 0xff, 0x10 };
	char out[2 * sizeof(in) + 1];

	memset(out, 'x', sizeof(out));
	util_hex(in, sizeof(in), out);
	CU_ASSERT_STRING_EQUAL(out, "000fa5ff10");
	util_hex(in, 0, out);
	CU_ASSERT_STRING_EQUAL(out, "");
}

void
test_util_register(void)
{
	CU_pSuite s;

	s = CU_add_suite("util", NULL, NULL);
	CU_add_test(s, "strtonum good", test_util_strtonum_good);
	CU_add_test(s, "strtonum bad", test_util_strtonum_bad);
	CU_add_test(s, "base64 RFC 4648 vectors", test_util_b64_rfc);
	CU_add_test(s, "base64 round trip", test_util_b64_roundtrip);
	CU_add_test(s, "base64 malformed", test_util_b64_bad);
	CU_add_test(s, "base64 short buffers", test_util_b64_short_buffers);
	CU_add_test(s, "wipe", test_util_wipe);
	CU_add_test(s, "ct_equal", test_util_ct_equal);
	CU_add_test(s, "log_escape", test_util_log_escape);
	CU_add_test(s, "hex", test_util_hex);
}
