/* SPDX-License-Identifier: ISC */
/*
 * evpop3d unit tests for auth.c: passwd_file parsing (errors with their
 * line numbers, comments, 5000 users), crypt(3) verification ($6$ known
 * vector, yescrypt round trip, force_fail), {PLAIN}, the RFC 1939 APOP
 * and RFC 2195 CRAM-MD5 examples, RFC 4616 PLAIN messages and the dummy
 * secret for unknown users.
 */
#include "config.h"

#include <crypt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "auth.h"
#include "params.h"
#include "tests.h"

/* openssl passwd -6 -salt abc secret */
#define TEST_AUTH_SHA512 "$6$abc$IdWKNKTJEb8LxY7CGg8YBXlvtfZzFw7Mp/r6niK9Y" \
	"B2mdvgY..TKjv1T..8RadRt2qvUHYRLr/TsVArtr91iR1"
/* openssl passwd -5 -salt xyz other */
#define TEST_AUTH_SHA256 "$5$xyz$qYnaBTEELgRgPTlnY1fSZtxyku.Fqz0WGiDGlP3yXTA"

static char test_auth_err[512];

static struct passwd_db *
test_auth_parse(const char *text)
{
	return auth_db_parse("pw", text, strlen(text), test_auth_err,
	    sizeof(test_auth_err));
}

/* Expect text to be refused with exactly msg. */
static void
test_auth_expect_err(const char *text, const char *msg)
{
	struct passwd_db *db;

	db = test_auth_parse(text);
	CU_ASSERT_PTR_NULL(db);
	CU_ASSERT_STRING_EQUAL(test_auth_err, msg);
	if (db != NULL || strcmp(test_auth_err, msg) != 0)
		fprintf(stderr, "\n  got \"%s\"\n  want \"%s\"\n",
		    test_auth_err, msg);
	auth_db_free(db);
}

static void
test_auth_user_valid(void)
{
	char name[AUTH_USER_MAX + 2];

	CU_ASSERT_EQUAL(auth_user_valid("alice", 5), 1);
	CU_ASSERT_EQUAL(auth_user_valid("a.b@example.org", 15), 1);
	CU_ASSERT_EQUAL(auth_user_valid("a", 1), 1);
	CU_ASSERT_EQUAL(auth_user_valid("j\xc3\xb6rg", 5), 1);
	/* len is honoured, not the NUL. */
	CU_ASSERT_EQUAL(auth_user_valid("bob/../x", 3), 1);
	memset(name, 'x', sizeof(name));
	CU_ASSERT_EQUAL(auth_user_valid(name, AUTH_USER_MAX), 1);
	CU_ASSERT_EQUAL(auth_user_valid(name, AUTH_USER_MAX + 1), 0);
	CU_ASSERT_EQUAL(auth_user_valid("", 0), 0);
	CU_ASSERT_EQUAL(auth_user_valid(NULL, 0), 0);
	CU_ASSERT_EQUAL(auth_user_valid(".hidden", 7), 0);
	CU_ASSERT_EQUAL(auth_user_valid(".", 1), 0);
	CU_ASSERT_EQUAL(auth_user_valid("a/b", 3), 0);
	CU_ASSERT_EQUAL(auth_user_valid("a..b", 4), 0);
	CU_ASSERT_EQUAL(auth_user_valid("a..", 3), 0);
	CU_ASSERT_EQUAL(auth_user_valid("a:b", 3), 0);
	CU_ASSERT_EQUAL(auth_user_valid("a b", 3), 0);
	CU_ASSERT_EQUAL(auth_user_valid("a\tb", 3), 0);
	CU_ASSERT_EQUAL(auth_user_valid("ab\r", 3), 0);
	CU_ASSERT_EQUAL(auth_user_valid("a\x7f", 2), 0);
	CU_ASSERT_EQUAL(auth_user_valid("a\0b", 3), 0);
	/* One dot inside is fine. */
	CU_ASSERT_EQUAL(auth_user_valid("a.b.c", 5), 1);
}

static void
test_auth_parse_good(void)
{
	static const char text[] =
	    "# evpop3d passwd\n"
	    "\n"
	    "   \n"
	    "  # indented comment\n"
	    "alice:{PLAIN}wonder land\n"
	    "bob:" TEST_AUTH_SHA512 ":/srv/mail/bob/Maildir\r\n"
	    "carol:" TEST_AUTH_SHA256 "\n"
	    "dave:{PLAIN}x:y:/m/dave\n"	/* ':' cannot hide in a secret */
	    "eve:abcdefghijklm\n"	/* traditional DES */
	    "last@example.org:$2b$05$abcdefghijklmnopqrstuu5s2v8.iXieOjg/"
	    ".AySBTTZIIVFJeBui";
	static const char good[] =
	    "# evpop3d passwd\n"
	    "\n"
	    "   \n"
	    "  # indented comment\n"
	    "alice:{PLAIN}wonder land\n"
	    "bob:" TEST_AUTH_SHA512 ":/srv/mail/bob/Maildir\r\n"
	    "carol:" TEST_AUTH_SHA256 "\n"
	    "eve:abcdefghijklm\n"
	    "_bsdi:_J9..abcdEFGH1234567\n"
	    "last@example.org:$2b$05$abcdefghijklmnopqrstuu5s2v8.iXieOjg/"
	    ".AySBTTZIIVFJeBui";
	struct passwd_db *db;
	const struct passwd_entry *e;

	/* dave's secret would split into a relative maildir "y". */
	db = test_auth_parse(text);
	CU_ASSERT_PTR_NULL(db);
	CU_ASSERT_STRING_EQUAL(test_auth_err, "pw:8: too many ':' fields "
	    "(user:HASH[:MAILDIR])");
	auth_db_free(db);

	db = test_auth_parse(good);
	CU_ASSERT_PTR_NOT_NULL_FATAL(db);
	CU_ASSERT_EQUAL(auth_db_count(db), 6);
	e = auth_db_lookup(db, "alice");
	CU_ASSERT_PTR_NOT_NULL_FATAL(e);
	CU_ASSERT_STRING_EQUAL(e->user, "alice");
	CU_ASSERT_STRING_EQUAL(e->secret, "{PLAIN}wonder land");
	CU_ASSERT_PTR_NULL(e->maildir);
	e = auth_db_lookup(db, "bob");
	CU_ASSERT_PTR_NOT_NULL_FATAL(e);
	CU_ASSERT_STRING_EQUAL(e->secret, TEST_AUTH_SHA512);
	CU_ASSERT_STRING_EQUAL(e->maildir, "/srv/mail/bob/Maildir");
	e = auth_db_lookup(db, "carol");
	CU_ASSERT_PTR_NOT_NULL_FATAL(e);
	CU_ASSERT_STRING_EQUAL(e->secret, TEST_AUTH_SHA256);
	CU_ASSERT_PTR_NOT_NULL(auth_db_lookup(db, "eve"));
	CU_ASSERT_PTR_NOT_NULL(auth_db_lookup(db, "_bsdi"));
	CU_ASSERT_PTR_NOT_NULL(auth_db_lookup(db, "last@example.org"));
	/* Exact and case-sensitive. */
	CU_ASSERT_PTR_NULL(auth_db_lookup(db, "Alice"));
	CU_ASSERT_PTR_NULL(auth_db_lookup(db, "alic"));
	CU_ASSERT_PTR_NULL(auth_db_lookup(db, "alicea"));
	CU_ASSERT_PTR_NULL(auth_db_lookup(db, ""));
	CU_ASSERT_PTR_NULL(auth_db_lookup(db, NULL));
	/* The dummy is the first crypt hash in file order. */
	CU_ASSERT_STRING_EQUAL(auth_db_dummy(db), TEST_AUTH_SHA512);
	auth_db_free(db);
}

static void
test_auth_parse_errors(void)
{
	test_auth_expect_err("# c\nalice\n", "pw:2: missing ':' after the "
	    "user name");
	test_auth_expect_err("a:{PLAIN}x\nb:\n", "pw:2: empty password hash");
	test_auth_expect_err("b::/m/b\n", "pw:1: empty password hash");
	test_auth_expect_err("\n\n\nbad user:{PLAIN}x\n",
	    "pw:4: bad user name \"bad user\"");
	test_auth_expect_err(":{PLAIN}x\n", "pw:1: bad user name \"\"");
	test_auth_expect_err("../etc:{PLAIN}x\n",
	    "pw:1: bad user name \"../etc\"");
	test_auth_expect_err("a\x01:{PLAIN}x\n",
	    "pw:1: bad user name \"a\\x01\"");
	test_auth_expect_err("a:{PLAIN}x\nbob:{PLAIN}x:Maildir/bob\n",
	    "pw:2: maildir \"Maildir/bob\" is not an absolute path");
	test_auth_expect_err("bob:{PLAIN}x:\n", "pw:1: empty maildir");
	test_auth_expect_err("bob:{PLAIN}x:/m:/n\n",
	    "pw:1: too many ':' fields (user:HASH[:MAILDIR])");
	test_auth_expect_err("bob:{PLAIN}\n", "pw:1: empty {PLAIN} password");
	test_auth_expect_err("bob:secret\n",
	    "pw:1: not a crypt(3) hash, {PLAIN} password or {SCRAM-SHA-256} secret");
	test_auth_expect_err("bob:{plain}secret\n",
	    "pw:1: not a crypt(3) hash, {PLAIN} password or {SCRAM-SHA-256} secret");
	test_auth_expect_err("bob:$6$\n",
	    "pw:1: not a crypt(3) hash, {PLAIN} password or {SCRAM-SHA-256} secret");
	test_auth_expect_err("bob:$$a$bc\n",
	    "pw:1: not a crypt(3) hash, {PLAIN} password or {SCRAM-SHA-256} secret");
	test_auth_expect_err("bob:$6abc\n",
	    "pw:1: not a crypt(3) hash, {PLAIN} password or {SCRAM-SHA-256} secret");
	test_auth_expect_err("bob:$6$ab c$def\n",
	    "pw:1: not a crypt(3) hash, {PLAIN} password or {SCRAM-SHA-256} secret");
	test_auth_expect_err("bob:!" TEST_AUTH_SHA512 "\n",
	    "pw:1: not a crypt(3) hash, {PLAIN} password or {SCRAM-SHA-256} secret");
	test_auth_expect_err("a:{PLAIN}1\nb:{PLAIN}2\n# c\nc:{PLAIN}3\n"
	    "b:{PLAIN}4\na:{PLAIN}5\n",
	    "pw:5: duplicate user \"b\" (first on line 2)");
	test_auth_expect_err("z:{PLAIN}1\nz:{PLAIN}2\nz:{PLAIN}3\n",
	    "pw:2: duplicate user \"z\" (first on line 1)");
}

static void
test_auth_many_users(void)
{
	char *text, *p, user[32], want[64];
	const struct passwd_entry *e;
	struct passwd_db *db;
	size_t i, n = 5000, cap = n * 48;

	text = malloc(cap);
	CU_ASSERT_PTR_NOT_NULL_FATAL(text);
	/* Written in an order unrelated to name order. */
	for (i = 0, p = text; i < n; i++)
		p += snprintf(p, cap - (size_t)(p - text),
		    "user%zu:{PLAIN}pw-%zu\n", (i * 7919) % n, (i * 7919) % n);
	db = auth_db_parse("big", text, (size_t)(p - text), test_auth_err,
	    sizeof(test_auth_err));
	free(text);
	CU_ASSERT_PTR_NOT_NULL_FATAL(db);
	CU_ASSERT_EQUAL(auth_db_count(db), n);
	for (i = 0; i < n; i++) {
		snprintf(user, sizeof(user), "user%zu", i);
		snprintf(want, sizeof(want), "{PLAIN}pw-%zu", i);
		e = auth_db_lookup(db, user);
		CU_ASSERT_PTR_NOT_NULL_FATAL(e);
		CU_ASSERT_STRING_EQUAL(e->user, user);
		CU_ASSERT_STRING_EQUAL(e->secret, want);
	}
	CU_ASSERT_PTR_NULL(auth_db_lookup(db, "user5000"));
	CU_ASSERT_PTR_NULL(auth_db_lookup(db, "user"));
	CU_ASSERT_PTR_NULL(auth_db_lookup(db, "aaa"));
	CU_ASSERT_PTR_NULL(auth_db_lookup(db, "zzz"));
	/* Only {PLAIN} secrets: the dummy costs what they cost. */
	CU_ASSERT_EQUAL(auth_secret_is_plain(auth_db_dummy(db)), 1);
	CU_ASSERT_EQUAL(auth_verify_password(auth_db_dummy(db), "pw-1", 1),
	    0);
	auth_db_free(db);
}

static void
test_auth_load_file(void)
{
	char dir[512], path[600], want[700];
	struct passwd_db *db;

	snprintf(dir, sizeof(dir), "%s", test_tmpdir());
	snprintf(path, sizeof(path), "%s/passwd", dir);
	db = auth_db_load(path, test_auth_err, sizeof(test_auth_err));
	CU_ASSERT_PTR_NULL(db);
	snprintf(want, sizeof(want), "%s: No such file or directory", path);
	CU_ASSERT_STRING_EQUAL(test_auth_err, want);

	CU_ASSERT_EQUAL_FATAL(test_write_file(path,
	    "u1:{PLAIN}a\nu2:" TEST_AUTH_SHA512 "\n", 12 +
	    strlen("u2:" TEST_AUTH_SHA512 "\n")), 0);
	db = auth_db_load(path, test_auth_err, sizeof(test_auth_err));
	CU_ASSERT_PTR_NOT_NULL_FATAL(db);
	CU_ASSERT_EQUAL(auth_db_count(db), 2);
	CU_ASSERT_STRING_EQUAL(auth_db_lookup(db, "u1")->secret,
	    "{PLAIN}a");
	CU_ASSERT_STRING_EQUAL(auth_db_dummy(db), TEST_AUTH_SHA512);
	auth_db_free(db);

	CU_ASSERT_EQUAL_FATAL(test_write_file(path, "u1:{PLAIN}a\nu1\n", 15),
	    0);
	db = auth_db_load(path, test_auth_err, sizeof(test_auth_err));
	CU_ASSERT_PTR_NULL(db);
	snprintf(want, sizeof(want), "%s:2: missing ':' after the user name",
	    path);
	CU_ASSERT_STRING_EQUAL(test_auth_err, want);
	test_rmtree(dir);
}

static void
test_auth_crypt(void)
{
	CU_ASSERT_EQUAL(auth_verify_password(TEST_AUTH_SHA512, "secret", 0),
	    1);
	CU_ASSERT_EQUAL(auth_verify_password(TEST_AUTH_SHA512, "secret", 1),
	    0);
	CU_ASSERT_EQUAL(auth_verify_password(TEST_AUTH_SHA512, "Secret", 0),
	    0);
	CU_ASSERT_EQUAL(auth_verify_password(TEST_AUTH_SHA512, "secret ", 0),
	    0);
	CU_ASSERT_EQUAL(auth_verify_password(TEST_AUTH_SHA512, "", 0), 0);
	CU_ASSERT_EQUAL(auth_verify_password(TEST_AUTH_SHA256, "other", 0),
	    1);
	CU_ASSERT_EQUAL(auth_verify_password(TEST_AUTH_SHA256, "secret", 0),
	    0);
	/* A tampered hash, failure tokens and nonsense never match. */
	CU_ASSERT_EQUAL(auth_verify_password("$6$abc$IdWKNKTJEb8LxY7CGg8YBXlv"
	    "tfZzFw7Mp/r6niK9YB2mdvgY..TKjv1T..8RadRt2qvUHYRLr/TsVArtr91iR2",
	    "secret", 0), 0);
	CU_ASSERT_EQUAL(auth_verify_password("*0", "*0", 0), 0);
	CU_ASSERT_EQUAL(auth_verify_password("*", "", 0), 0);
	CU_ASSERT_EQUAL(auth_verify_password("$99$x$y", "x", 0), 0);
	CU_ASSERT_EQUAL(auth_verify_password("", "", 0), 0);
	CU_ASSERT_EQUAL(auth_verify_password(NULL, "x", 0), 0);
	CU_ASSERT_EQUAL(auth_verify_password(TEST_AUTH_SHA512, NULL, 0), 0);
	CU_ASSERT_EQUAL(auth_secret_is_plain(TEST_AUTH_SHA512), 0);
}

static void
test_auth_hash_roundtrip(void)
{
	char h1[512], h2[600];

	CU_ASSERT_EQUAL_FATAL(auth_hash_password("correct horse", h1,
	    sizeof(h1)), 0);
	CU_ASSERT(strncmp(h1, "$y$", 3) == 0 || strncmp(h1, "$6$", 3) == 0);
	/* yescrypt whenever libcrypt can make its salts. */
	if (crypt_gensalt_rn("$y$", 0, NULL, 0, h2, sizeof(h2)) != NULL)
		CU_ASSERT(strncmp(h1, "$y$", 3) == 0);
	CU_ASSERT_EQUAL(auth_verify_password(h1, "correct horse", 0), 1);
	CU_ASSERT_EQUAL(auth_verify_password(h1, "correct horse", 1), 0);
	CU_ASSERT_EQUAL(auth_verify_password(h1, "correct horsf", 0), 0);
	/* A fresh salt every time. */
	CU_ASSERT_EQUAL_FATAL(auth_hash_password("correct horse", h2,
	    sizeof(h2)), 0);
	CU_ASSERT(strcmp(h1, h2) != 0);
	CU_ASSERT_EQUAL(auth_verify_password(h2, "correct horse", 0), 1);
	/* The hash passes the passwd_file syntax check. */
	snprintf(h2, sizeof(h2), "u:%s\n", h1);
	auth_db_free(test_auth_parse(h2));
	CU_ASSERT_STRING_EQUAL(test_auth_err, "");
	/* Too small an output buffer. */
	CU_ASSERT_EQUAL(auth_hash_password("x", h2, 10), -1);
}

static void
test_auth_plain(void)
{
	CU_ASSERT_EQUAL(auth_secret_is_plain("{PLAIN}x"), 1);
	CU_ASSERT_EQUAL(auth_secret_is_plain("{PLAIN"), 0);
	CU_ASSERT_EQUAL(auth_secret_is_plain(NULL), 0);
	CU_ASSERT_EQUAL(auth_verify_password("{PLAIN}secret", "secret", 0), 1);
	CU_ASSERT_EQUAL(auth_verify_password("{PLAIN}secret", "secret", 1), 0);
	CU_ASSERT_EQUAL(auth_verify_password("{PLAIN}secret", "secreT", 0), 0);
	CU_ASSERT_EQUAL(auth_verify_password("{PLAIN}secret", "secre", 0), 0);
	CU_ASSERT_EQUAL(auth_verify_password("{PLAIN}secret", "secrets", 0),
	    0);
	CU_ASSERT_EQUAL(auth_verify_password("{PLAIN}secret", "", 0), 0);
	CU_ASSERT_EQUAL(auth_verify_password("{PLAIN}secret",
	    "{PLAIN}secret", 0), 0);
	CU_ASSERT_EQUAL(auth_verify_password("{PLAIN}a b:c", "a b:c", 0), 1);
}

static void
test_auth_dummy(void)
{
	struct passwd_db *db;
	const char *d;

	/* File order decides, not name order. */
	db = test_auth_parse("zed:{PLAIN}x\nyan:" TEST_AUTH_SHA256 "\n"
	    "amy:" TEST_AUTH_SHA512 "\n");
	CU_ASSERT_PTR_NOT_NULL_FATAL(db);
	CU_ASSERT_STRING_EQUAL(auth_db_dummy(db), TEST_AUTH_SHA256);
	CU_ASSERT_EQUAL(auth_verify_password(auth_db_dummy(db), "other", 1),
	    0);
	auth_db_free(db);

	/* No users at all: a real yescrypt (or SHA-512) hash. */
	db = test_auth_parse("# nobody yet\n");
	CU_ASSERT_PTR_NOT_NULL_FATAL(db);
	CU_ASSERT_EQUAL(auth_db_count(db), 0);
	d = auth_db_dummy(db);
	CU_ASSERT_PTR_NOT_NULL_FATAL(d);
	CU_ASSERT(strncmp(d, "$y$", 3) == 0 || strncmp(d, "$6$", 3) == 0);
	CU_ASSERT_EQUAL(auth_verify_password(d, "", 1), 0);
	CU_ASSERT_PTR_NULL(auth_db_lookup(db, "x"));
	auth_db_free(db);

	/* Two loads do not share a generated dummy. */
	db = test_auth_parse("a:{PLAIN}1\n");
	CU_ASSERT_PTR_NOT_NULL_FATAL(db);
	d = auth_db_dummy(db);
	CU_ASSERT_EQUAL(auth_secret_is_plain(d), 1);
	CU_ASSERT(strlen(d) > 20);
	auth_db_free(db);
}

static void
test_auth_apop(void)
{
	static const char ts[] = "<1896.697170952@dbc.mtview.ca.us>";

	CU_ASSERT_EQUAL(auth_apop_verify("{PLAIN}tanstaaf", ts,
	    "c4c9334bac560ecc979e58001b3e22fb"), 1);
	CU_ASSERT_EQUAL(auth_apop_verify("{PLAIN}tanstaaf", ts,
	    "C4C9334BAC560ECC979E58001B3E22FB"), 1);
	CU_ASSERT_EQUAL(auth_apop_verify("{PLAIN}tanstaaf", ts,
	    "c4c9334bac560ecc979e58001b3e22fc"), 0);
	CU_ASSERT_EQUAL(auth_apop_verify("{PLAIN}tanstaaF", ts,
	    "c4c9334bac560ecc979e58001b3e22fb"), 0);
	CU_ASSERT_EQUAL(auth_apop_verify("{PLAIN}tanstaaf",
	    "<1896.697170953@dbc.mtview.ca.us>",
	    "c4c9334bac560ecc979e58001b3e22fb"), 0);
	/* Wrong length or non-hex digits. */
	CU_ASSERT_EQUAL(auth_apop_verify("{PLAIN}tanstaaf", ts,
	    "c4c9334bac560ecc979e58001b3e22f"), 0);
	CU_ASSERT_EQUAL(auth_apop_verify("{PLAIN}tanstaaf", ts,
	    "c4c9334bac560ecc979e58001b3e22fb0"), 0);
	CU_ASSERT_EQUAL(auth_apop_verify("{PLAIN}tanstaaf", ts,
	    "g4c9334bac560ecc979e58001b3e22fb"), 0);
	CU_ASSERT_EQUAL(auth_apop_verify("{PLAIN}tanstaaf", ts, ""), 0);
	CU_ASSERT_EQUAL(auth_apop_verify("{PLAIN}tanstaaf", ts, NULL), 0);
	/* Only {PLAIN} secrets can do APOP. */
	CU_ASSERT_EQUAL(auth_apop_verify(TEST_AUTH_SHA512, ts,
	    "c4c9334bac560ecc979e58001b3e22fb"), 0);
	CU_ASSERT_EQUAL(auth_apop_verify("tanstaaf", ts,
	    "c4c9334bac560ecc979e58001b3e22fb"), 0);
}

static void
test_auth_cram(void)
{
	static const char ch[] = "<1896.697170952@postoffice.reston.mci.net>";

	CU_ASSERT_EQUAL(auth_cram_verify("{PLAIN}tanstaaftanstaaf", ch,
	    "b913a602c7eda7a495b4e6e7334d3890"), 1);
	CU_ASSERT_EQUAL(auth_cram_verify("{PLAIN}tanstaaftanstaaf", ch,
	    "B913A602C7EDA7A495B4E6E7334D3890"), 1);
	CU_ASSERT_EQUAL(auth_cram_verify("{PLAIN}tanstaaftanstaaf", ch,
	    "b913a602c7eda7a495b4e6e7334d3891"), 0);
	CU_ASSERT_EQUAL(auth_cram_verify("{PLAIN}tanstaaf", ch,
	    "b913a602c7eda7a495b4e6e7334d3890"), 0);
	CU_ASSERT_EQUAL(auth_cram_verify("{PLAIN}tanstaaftanstaaf",
	    "<1896.697170953@postoffice.reston.mci.net>",
	    "b913a602c7eda7a495b4e6e7334d3890"), 0);
	CU_ASSERT_EQUAL(auth_cram_verify("{PLAIN}tanstaaftanstaaf", ch,
	    "tim b913a602c7eda7a495b4e6e7334d3890"), 0);
	CU_ASSERT_EQUAL(auth_cram_verify(TEST_AUTH_SHA512, ch,
	    "b913a602c7eda7a495b4e6e7334d3890"), 0);
}

/* Split a PLAIN message held in an exactly sized heap buffer, so that a
 * write past len is caught by ASan. */
static int
test_auth_split(const char *msg, size_t len, const char **z, const char **u,
    const char **p, char **bufp)
{
	*bufp = malloc(len);
	if (*bufp == NULL)
		return -2;
	memcpy(*bufp, msg, len);
	return auth_plain_split(*bufp, len, z, u, p);
}

static void
test_auth_plain_split(void)
{
	const char *z, *u, *p;
	char *buf;

	CU_ASSERT_EQUAL(test_auth_split("\0tim\0tanstaaftanstaaf", 21, &z, &u,
	    &p, &buf), 0);
	CU_ASSERT_STRING_EQUAL(z, "");
	CU_ASSERT_STRING_EQUAL(u, "tim");
	CU_ASSERT_STRING_EQUAL(p, "tanstaaftanstaaf");
	free(buf);
	CU_ASSERT_EQUAL(test_auth_split("tim\0tim\0pass word", 17, &z, &u, &p,
	    &buf), 0);
	CU_ASSERT_STRING_EQUAL(z, "tim");
	CU_ASSERT_STRING_EQUAL(u, "tim");
	CU_ASSERT_STRING_EQUAL(p, "pass word");
	free(buf);
	CU_ASSERT_EQUAL(test_auth_split("\0u\0p", 4, &z, &u, &p, &buf), 0);
	CU_ASSERT_STRING_EQUAL(u, "u");
	CU_ASSERT_STRING_EQUAL(p, "p");
	free(buf);

	/* Malformed: NUL count, empty user or password. */
	CU_ASSERT_EQUAL(test_auth_split("tim\0pw", 6, &z, &u, &p, &buf), -1);
	free(buf);
	CU_ASSERT_EQUAL(test_auth_split("timpw", 5, &z, &u, &p, &buf), -1);
	free(buf);
	CU_ASSERT_EQUAL(test_auth_split("\0tim\0pw\0", 8, &z, &u, &p, &buf),
	    -1);
	free(buf);
	CU_ASSERT_EQUAL(test_auth_split("\0tim\0p\0w", 8, &z, &u, &p, &buf),
	    -1);
	free(buf);
	CU_ASSERT_EQUAL(test_auth_split("\0\0pw", 4, &z, &u, &p, &buf), -1);
	free(buf);
	CU_ASSERT_EQUAL(test_auth_split("\0tim\0", 5, &z, &u, &p, &buf), -1);
	free(buf);
	CU_ASSERT_EQUAL(test_auth_split("\0\0", 2, &z, &u, &p, &buf), -1);
	free(buf);
	CU_ASSERT_EQUAL(auth_plain_split(NULL, 0, &z, &u, &p), -1);
	/* Acting for another user (a foreign authzid) is refused. */
	CU_ASSERT_EQUAL(test_auth_split("admin\0tim\0pw", 12, &z, &u, &p,
	    &buf), -1);
	free(buf);
	CU_ASSERT_EQUAL(test_auth_split("tim2\0tim\0pw", 11, &z, &u, &p,
	    &buf), -1);
	free(buf);
}

void
test_auth_register(void)
{
	CU_pSuite s;

	s = CU_add_suite("auth", NULL, NULL);
	CU_add_test(s, "user_valid", test_auth_user_valid);
	CU_add_test(s, "parse good", test_auth_parse_good);
	CU_add_test(s, "parse errors", test_auth_parse_errors);
	CU_add_test(s, "5000 users", test_auth_many_users);
	CU_add_test(s, "load file", test_auth_load_file);
	CU_add_test(s, "crypt", test_auth_crypt);
	CU_add_test(s, "hash round trip", test_auth_hash_roundtrip);
	CU_add_test(s, "plain", test_auth_plain);
	CU_add_test(s, "dummy", test_auth_dummy);
	CU_add_test(s, "apop RFC 1939", test_auth_apop);
	CU_add_test(s, "cram-md5 RFC 2195", test_auth_cram);
	CU_add_test(s, "plain_split RFC 4616", test_auth_plain_split);
}
