/* SPDX-License-Identifier: ISC */
/*
 * evpop3d fuzz target: the passwd_file parser (auth_db_parse, auth.h).
 *
 * The input is a whole passwd_file in a heap buffer of exactly its size.
 * A loaded db must find every user named on an entry line, with a secret
 * and a maildir that obey auth.h; {PLAIN} entries are then run through the
 * cheap verifiers (PASS, APOP, CRAM-MD5).  crypt(3) hashes are never
 * verified here: a fuzzed "$2b$31$..." would take hours.
 *
 * A file with no entry line at all makes auth_db_parse hash a fresh
 * yescrypt dummy (about 50 ms); such inputs are skipped, except the empty
 * file, so the fuzzer keeps its speed and the path is still run once.
 */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "params.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define FPW_NAME	"fuzz.passwd"

static void
fpw_fail(const char *what)
{
	fprintf(stderr, "fuzz_passwd: %s\n", what);
	abort();
}

/* Length of line p (up to LF, without a CR before it), and the next. */
static size_t
fpw_line(const uint8_t *p, const uint8_t *end, const uint8_t **next)
{
	const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
	size_t len;

	if (nl == NULL)
		nl = end;
	*next = nl + 1;
	len = (size_t)(nl - p);
	if (len > 0 && p[len - 1] == '\r')
		len--;
	return len;
}

/* Is this line an entry (not blank, not a '#' comment)? */
static int
fpw_is_entry(const uint8_t *p, size_t len)
{
	size_t i;

	for (i = 0; i < len && (p[i] == ' ' || p[i] == '\t'); i++)
		;
	return i < len && p[i] != '#';
}

/* Cheap checks on a {PLAIN} entry: the verifiers must not crash and a
 * wrong credential must never match. */
static void
fpw_check_plain(const struct passwd_entry *e)
{
	const char *clear = e->secret + strlen("{PLAIN}");
	static const char ts[] = "<1234.5678@fuzz.example>";
	static const char zero[] = "00000000000000000000000000000000";

	if (auth_verify_password(e->secret, clear, 0) != 1)
		fpw_fail("{PLAIN} password does not verify");
	if (auth_verify_password(e->secret, clear, 1) != 0)
		fpw_fail("force_fail did not fail");
	if (strcmp(clear, "x") != 0 &&
	    auth_verify_password(e->secret, "x", 0) != 0)
		fpw_fail("wrong {PLAIN} password verified");
	auth_apop_verify(e->secret, ts, zero);
	auth_cram_verify(e->secret, ts, zero);
}

int
LLVMFuzzerTestOneInput(const uint8_t *in, size_t size)
{
	struct passwd_db *db;
	const struct passwd_entry *e;
	const uint8_t *p, *next, *end = in + size, *colon;
	char *text, *err, user[AUTH_USER_MAX + 2];
	size_t errlen, len, entries = 0;

	for (p = in; p < end; p = next) {
		len = fpw_line(p, end, &next);
		if (fpw_is_entry(p, len))
			entries++;
	}
	if (entries == 0 && size > 0)
		return 0;	/* would only hash a yescrypt dummy */

	errlen = size % 7 == 3 ? size % 13 : 512;
	if ((text = malloc(size > 0 ? size : 1)) == NULL ||
	    (err = malloc(errlen > 0 ? errlen : 1)) == NULL)
		abort();
	if (size > 0)
		memcpy(text, in, size);
	db = auth_db_parse(FPW_NAME, text, size, err, errlen);
	if (errlen > 0 && memchr(err, '\0', errlen) == NULL)
		fpw_fail("err not terminated");
	if (db == NULL) {
		if (errlen >= sizeof(FPW_NAME) &&
		    strncmp(err, FPW_NAME, sizeof(FPW_NAME) - 1) != 0)
			fpw_fail("error message does not name the file");
		goto done;
	}
	if (auth_db_count(db) != entries)
		fpw_fail("auth_db_count differs from the entry lines");
	if (auth_db_dummy(db) == NULL)
		fpw_fail("no dummy secret");

	/* Every entry line's user must be found, with a sane entry. */
	for (p = in; p < end; p = next) {
		len = fpw_line(p, end, &next);
		if (!fpw_is_entry(p, len))
			continue;
		if ((colon = memchr(p, ':', len)) == NULL ||
		    (size_t)(colon - p) > AUTH_USER_MAX)
			fpw_fail("an accepted line has no valid user field");
		memcpy(user, p, (size_t)(colon - p));
		user[colon - p] = '\0';
		if (!auth_user_valid(user, strlen(user)))
			fpw_fail("an accepted user name is not valid");
		if ((e = auth_db_lookup(db, user)) == NULL)
			fpw_fail("an accepted user is not found");
		if (strcmp(e->user, user) != 0 || e->secret == NULL ||
		    e->secret[0] == '\0')
			fpw_fail("lookup returned a wrong entry");
		if (e->maildir != NULL && e->maildir[0] != '/')
			fpw_fail("maildir is not absolute");
		if (auth_secret_is_plain(e->secret))
			fpw_check_plain(e);
	}
	if (auth_db_lookup(db, "") != NULL)
		fpw_fail("the empty name was found");
	auth_db_lookup(db, "alice");
	auth_db_lookup(db, "zzzzzzzz");
done:
	auth_db_free(db);
	free(text);
	free(err);
	return 0;
}
