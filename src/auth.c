/* SPDX-License-Identifier: ISC */
/*
 * evpop3d - auth.c: the passwd_file and everything that checks a password.
 * The file is loaded once into an array sorted by user name (binary search
 * keeps lookups fast for 100k+ users).  crypt(3) hashes are checked with
 * libcrypt's crypt_rn on a heap struct crypt_data (it is about 32 KiB, too
 * big for a worker thread's stack); {PLAIN} secrets, APOP (RFC 1939) and
 * CRAM-MD5 (RFC 2195) digests are compared in constant time.  Pure: no
 * libevent; the verification functions are thread-safe.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/stat.h>

#include <crypt.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "auth.h"
#include "scram.h"
#include "params.h"
#include "util.h"

#define AUTH_PLAIN_PREFIX	"{PLAIN}"
#define AUTH_PLAIN_PREFIX_LEN	(sizeof(AUTH_PLAIN_PREFIX) - 1)
/* A passwd_file of 100k users is a few MB; anything this big is a mistake. */
#define AUTH_FILE_MAX		((size_t)512 * 1024 * 1024)
/* MD5 digests (APOP, CRAM-MD5). */
#define AUTH_MD5_LEN		16
/* Random bytes in the cleartext behind a generated dummy secret. */
#define AUTH_DUMMY_RANDOM	24
/* Room for an escaped user name in an error message. */
#define AUTH_QUOTE_MAX		(AUTH_USER_MAX * 4 + 1)

/* One passwd_file line; ent.user heads a single block holding all three
 * strings, so one free (after a wipe of len octets) releases them. */
struct auth_slot {
	struct passwd_entry	 ent;
	size_t			 len;
	size_t			 line;
};

struct passwd_db {
	struct auth_slot	*slots;		/* sorted by ent.user */
	size_t			 n;
	const char		*dummy;		/* slot secret or own_dummy */
	char			*own_dummy;
};

/* Write "NAME:LINE: problem" into err; returns -1 for the caller. */
static int	auth_error(char *, size_t, const char *, size_t,
		    const char *, ...) __attribute__((format(printf, 5, 6)));

static int
auth_error(char *err, size_t errlen, const char *name, size_t line,
    const char *fmt, ...)
{
	va_list ap;
	int n;

	if (err == NULL || errlen == 0)
		return -1;
	if (line != 0)
		n = snprintf(err, errlen, "%s:%zu: ", name, line);
	else
		n = snprintf(err, errlen, "%s: ", name);
	if (n >= 0 && (size_t)n < errlen) {
		va_start(ap, fmt);
		vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
		va_end(ap);
	}
	return -1;
}

/* Refuse names that could escape or confuse a path or a log line. */
int
auth_user_valid(const char *user, size_t len)
{
	size_t i;
	unsigned char c;

	if (user == NULL || len == 0 || len > AUTH_USER_MAX || user[0] == '.')
		return 0;
	for (i = 0; i < len; i++) {
		c = (unsigned char)user[i];
		if (c <= 0x20 || c == 0x7f || c == '/' || c == ':')
			return 0;
		if (c == '.' && i + 1 < len && user[i + 1] == '.')
			return 0;
	}
	return 1;
}

int
auth_secret_is_plain(const char *secret)
{
	return secret != NULL && strncmp(secret, AUTH_PLAIN_PREFIX,
	    AUTH_PLAIN_PREFIX_LEN) == 0;
}

/* Character of the crypt(3) salt/hash alphabet ("./0-9A-Za-z")? */
static int
auth_crypt64(unsigned char c)
{
	return c == '.' || c == '/' || (c >= '0' && c <= '9') ||
	    (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

/*
 * Is s a plausible crypt(3) string: "$id$..." (modular formats: yescrypt,
 * SHA-crypt with rounds=, bcrypt, ...), traditional DES (13 characters)
 * or BSDi extended DES ("_" and 19)?  The file is checked once at load, so
 * a typo is reported with its line rather than failing every login.
 */
static int
auth_crypt_syntax(const char *s, size_t len)
{
	const char *p;
	size_t i;
	unsigned char c;

	if (len >= 4 && s[0] == '$') {
		/* A non-empty id, its closing '$', then the rest. */
		p = memchr(s + 2, '$', len - 2);
		if (s[1] == '$' || p == NULL || p == s + len - 1)
			return 0;
		for (i = 1; i < len; i++) {
			c = (unsigned char)s[i];
			if (!auth_crypt64(c) && c != '$' && c != '=' &&
			    c != ',' && c != '+' && c != '-')
				return 0;
		}
		return 1;
	}
	if (len == 13 || (len == 20 && s[0] == '_')) {
		for (i = len == 20 ? 1 : 0; i < len; i++)
			if (!auth_crypt64((unsigned char)s[i]))
				return 0;
		return 1;
	}
	return 0;
}

/* Order slots by user name, equal names by line (for duplicate reports). */
static int
auth_slot_cmp(const void *a, const void *b)
{
	const struct auth_slot *x = a, *y = b;
	int r;

	if ((r = strcmp(x->ent.user, y->ent.user)) != 0)
		return r;
	return x->line < y->line ? -1 : x->line > y->line;
}

static int
auth_slot_find(const void *key, const void *elem)
{
	const struct auth_slot *s = elem;

	return strcmp(key, s->ent.user);
}

/* Forget a slot's strings, wiping the secret first. */
static void
auth_slot_clear(struct auth_slot *s)
{
	if (s->ent.user != NULL) {
		util_wipe(s->ent.user, s->len);
		free(s->ent.user);
	}
	memset(s, 0, sizeof(*s));
}

void
auth_db_free(struct passwd_db *db)
{
	size_t i;

	if (db == NULL)
		return;
	for (i = 0; i < db->n; i++)
		auth_slot_clear(&db->slots[i]);
	free(db->slots);
	if (db->own_dummy != NULL) {
		util_wipe(db->own_dummy, strlen(db->own_dummy));
		free(db->own_dummy);
	}
	free(db);
}

size_t
auth_db_count(const struct passwd_db *db)
{
	return db == NULL ? 0 : db->n;
}

/* Binary search: the slots are sorted by name at load. */
const struct passwd_entry *
auth_db_lookup(const struct passwd_db *db, const char *user)
{
	const struct auth_slot *s;

	if (db == NULL || user == NULL || db->n == 0)
		return NULL;
	s = bsearch(user, db->slots, db->n, sizeof(*db->slots),
	    auth_slot_find);
	return s == NULL ? NULL : &s->ent;
}

const char *
auth_db_dummy(const struct passwd_db *db)
{
	return db == NULL ? NULL : db->dummy;
}

/*
 * Parse one non-comment line into slot s.  Returns 0, or -1 with the
 * problem in err.
 */
static int
auth_parse_line(const char *name, size_t line, const char *p, size_t len,
    struct auth_slot *s, char *err, size_t errlen)
{
	const char *c1, *c2 = NULL, *hash, *dir = NULL;
	size_t ulen, hlen, dlen = 0;
	char q[AUTH_QUOTE_MAX];
	char *blk;

	if (memchr(p, '\0', len) != NULL)
		return auth_error(err, errlen, name, line, "NUL byte");
	if ((c1 = memchr(p, ':', len)) == NULL)
		return auth_error(err, errlen, name, line,
		    "missing ':' after the user name");
	ulen = (size_t)(c1 - p);
	if (!auth_user_valid(p, ulen)) {
		util_log_escape(q, sizeof(q), p, ulen < AUTH_USER_MAX + 1 ?
		    ulen : AUTH_USER_MAX + 1);
		return auth_error(err, errlen, name, line,
		    "bad user name \"%s\"", q);
	}
	hash = c1 + 1;
	hlen = len - ulen - 1;
	if ((c2 = memchr(hash, ':', hlen)) != NULL) {
		dir = c2 + 1;
		dlen = hlen - (size_t)(dir - hash);
		hlen = (size_t)(c2 - hash);
		if (memchr(dir, ':', dlen) != NULL)
			return auth_error(err, errlen, name, line,
			    "too many ':' fields (user:HASH[:MAILDIR])");
		if (dlen == 0)
			return auth_error(err, errlen, name, line,
			    "empty maildir");
		if (dir[0] != '/') {
			util_log_escape(q, sizeof(q), dir, dlen);
			return auth_error(err, errlen, name, line,
			    "maildir \"%s\" is not an absolute path", q);
		}
	}
	if (hlen == 0)
		return auth_error(err, errlen, name, line,
		    "empty password hash");
	if (hlen >= AUTH_PLAIN_PREFIX_LEN && memcmp(hash, AUTH_PLAIN_PREFIX,
	    AUTH_PLAIN_PREFIX_LEN) == 0) {
		if (hlen == AUTH_PLAIN_PREFIX_LEN)
			return auth_error(err, errlen, name, line,
			    "empty {PLAIN} password");
	} else if (hlen > strlen(SCRAM_PREFIX) &&
	    memcmp(hash, SCRAM_PREFIX, strlen(SCRAM_PREFIX)) == 0) {
		struct scram_secret sec;
		char tmp[512];

		if (hlen >= sizeof(tmp))
			return auth_error(err, errlen, name, line,
			    "{SCRAM-SHA-256} secret too long");
		memcpy(tmp, hash, hlen);
		tmp[hlen] = '\0';
		if (scram_parse_secret(tmp, &sec) == -1)
			return auth_error(err, errlen, name, line,
			    "malformed {SCRAM-SHA-256} secret (want "
			    "ITERATIONS,SALT,STOREDKEY,SERVERKEY in base64)");
	} else if (!auth_crypt_syntax(hash, hlen))
		return auth_error(err, errlen, name, line,
		    "not a crypt(3) hash, {PLAIN} password or {SCRAM-SHA-256} "
		    "secret");

	s->len = ulen + 1 + hlen + 1 + (dir != NULL ? dlen + 1 : 0);
	if ((blk = malloc(s->len)) == NULL)
		return auth_error(err, errlen, name, line, "out of memory");
	memcpy(blk, p, ulen);
	blk[ulen] = '\0';
	memcpy(blk + ulen + 1, hash, hlen);
	blk[ulen + 1 + hlen] = '\0';
	s->ent.user = blk;
	s->ent.secret = blk + ulen + 1;
	if (dir != NULL) {
		s->ent.maildir = blk + ulen + 1 + hlen + 1;
		memcpy(s->ent.maildir, dir, dlen);
		s->ent.maildir[dlen] = '\0';
	}
	s->line = line;
	return 0;
}

/*
 * Choose the secret that unknown users are checked against: the first
 * crypt hash in the file costs what real users cost; a file of {PLAIN}
 * secrets only gets a random {PLAIN} one (a slow hash there would tell
 * unknown users apart by timing); an empty file gets a fresh yescrypt hash.
 */
static int
auth_pick_dummy(struct passwd_db *db, const char *first_crypt)
{
	unsigned char rnd[AUTH_DUMMY_RANDOM];
	char hex[2 * AUTH_DUMMY_RANDOM + 1];
	char hash[CRYPT_OUTPUT_SIZE];
	size_t len;

	if (first_crypt != NULL) {
		db->dummy = first_crypt;
		return 0;
	}
	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		return -1;
	util_hex(rnd, sizeof(rnd), hex);
	util_wipe(rnd, sizeof(rnd));
	if (db->n > 0) {
		len = AUTH_PLAIN_PREFIX_LEN + sizeof(hex);
		if ((db->own_dummy = malloc(len)) == NULL)
			return -1;
		snprintf(db->own_dummy, len, "%s%s", AUTH_PLAIN_PREFIX, hex);
	} else {
		if (auth_hash_password(hex, hash, sizeof(hash)) == -1)
			return -1;
		db->own_dummy = strdup(hash);
	}
	util_wipe(hex, sizeof(hex));
	if (db->own_dummy == NULL)
		return -1;
	db->dummy = db->own_dummy;
	return 0;
}

/* Parse every line, then sort by name for lookups and duplicates. */
struct passwd_db *
auth_db_parse(const char *name, const char *text, size_t len, char *err,
    size_t errlen)
{
	struct passwd_db *db;
	struct auth_slot *ns;
	const char *p, *end, *nl, *first_crypt = NULL;
	size_t cap = 0, line, llen, i, dup = 0, i0;
	char q[AUTH_QUOTE_MAX];

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if ((db = calloc(1, sizeof(*db))) == NULL) {
		auth_error(err, errlen, name, 0, "out of memory");
		return NULL;
	}
	if (text == NULL)
		len = 0;
	end = text + len;
	for (p = text, line = 1; p != NULL && p < end; line++) {
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL)
			nl = end;
		llen = (size_t)(nl - p);
		if (llen > 0 && p[llen - 1] == '\r')
			llen--;
		for (i = 0; i < llen && (p[i] == ' ' || p[i] == '\t'); i++)
			;
		if (i == llen || p[i] == '#') {
			p = nl + 1;
			continue;
		}
		if (db->n == cap) {
			cap = cap == 0 ? 64 : cap * 2;
			ns = reallocarray(db->slots, cap, sizeof(*ns));
			if (ns == NULL) {
				auth_error(err, errlen, name, line,
				    "out of memory");
				goto fail;
			}
			db->slots = ns;
		}
		memset(&db->slots[db->n], 0, sizeof(db->slots[db->n]));
		if (auth_parse_line(name, line, p, llen, &db->slots[db->n],
		    err, errlen) == -1)
			goto fail;
		if (first_crypt == NULL &&
		    !auth_secret_is_plain(db->slots[db->n].ent.secret))
			first_crypt = db->slots[db->n].ent.secret;
		db->n++;
		p = nl + 1;
	}

	if (db->n > 1)
		qsort(db->slots, db->n, sizeof(*db->slots), auth_slot_cmp);
	/* Report the duplicate that comes first in the file. */
	for (i = 1; i < db->n; i++) {
		if (strcmp(db->slots[i - 1].ent.user,
		    db->slots[i].ent.user) == 0 &&
		    (dup == 0 || db->slots[i].line < db->slots[dup].line))
			dup = i;
	}
	if (dup != 0) {
		for (i0 = dup; i0 > 0 && strcmp(db->slots[i0 - 1].ent.user,
		    db->slots[dup].ent.user) == 0; i0--)
			;
		util_log_escape(q, sizeof(q), db->slots[dup].ent.user,
		    strlen(db->slots[dup].ent.user));
		auth_error(err, errlen, name, db->slots[dup].line,
		    "duplicate user \"%s\" (first on line %zu)", q,
		    db->slots[i0].line);
		goto fail;
	}
	if (auth_pick_dummy(db, first_crypt) == -1) {
		auth_error(err, errlen, name, 0,
		    "cannot make the dummy password hash");
		goto fail;
	}
	return db;

fail:
	auth_db_free(db);
	return NULL;
}

/* Read the whole file, parse it, and wipe the copy that held secrets. */
struct passwd_db *
auth_db_load(const char *path, char *err, size_t errlen)
{
	struct passwd_db *db = NULL;
	struct stat st;
	char *buf = NULL, *nb;
	size_t len = 0, cap;
	ssize_t n;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		auth_error(err, errlen, path, 0, "%s", strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) == -1) {
		auth_error(err, errlen, path, 0, "%s", strerror(errno));
		goto done;
	}
	cap = st.st_size > 0 && (size_t)st.st_size < AUTH_FILE_MAX ?
	    (size_t)st.st_size + 1 : 4096;
	if ((buf = malloc(cap)) == NULL) {
		auth_error(err, errlen, path, 0, "out of memory");
		goto done;
	}
	for (;;) {
		if (len == cap) {
			/* The file grew while we read it. */
			if (cap >= AUTH_FILE_MAX) {
				auth_error(err, errlen, path, 0, "too large");
				goto done;
			}
			if ((nb = malloc(cap * 2)) == NULL) {
				auth_error(err, errlen, path, 0,
				    "out of memory");
				goto done;
			}
			memcpy(nb, buf, len);
			util_wipe(buf, len);
			free(buf);
			buf = nb;
			cap *= 2;
		}
		n = read(fd, buf + len, cap - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			auth_error(err, errlen, path, 0, "%s",
			    strerror(errno));
			goto done;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	db = auth_db_parse(path, buf, len, err, errlen);
done:
	if (buf != NULL) {
		util_wipe(buf, len);
		free(buf);
	}
	close(fd);
	return db;
}

/*
 * Compare two cleartexts through SHA-256 so that neither the contents nor
 * the lengths of the stored secret show in the timing.
 */
static int
auth_plain_equal(const char *a, const char *b)
{
	unsigned char da[EVP_MAX_MD_SIZE], db[EVP_MAX_MD_SIZE];
	unsigned int la = 0, lb = 0;
	int ok;

	if (EVP_Digest(a, strlen(a), da, &la, EVP_sha256(), NULL) != 1 ||
	    EVP_Digest(b, strlen(b), db, &lb, EVP_sha256(), NULL) != 1)
		return 0;
	ok = util_ct_equal(da, la, db, lb);
	util_wipe(da, sizeof(da));
	util_wipe(db, sizeof(db));
	return ok;
}

/* Hash password with setting (a full hash or a salt) via crypt_rn on the
 * heap; returns 1 and the result in out, or 0 (failure token or error). */
static int
auth_crypt(const char *password, const char *setting, char *out,
    size_t outlen)
{
	struct crypt_data *cd;
	const char *r;
	int ok = 0;

	if ((cd = calloc(1, sizeof(*cd))) == NULL)
		return 0;
	r = crypt_rn(password, setting, cd, sizeof(*cd));
	if (r != NULL && r[0] != '*' && strlen(r) < outlen) {
		memcpy(out, r, strlen(r) + 1);
		ok = 1;
	}
	util_wipe(cd, sizeof(*cd));
	free(cd);
	return ok;
}

/* Do the full work whatever the outcome, so force_fail costs the same. */
int
auth_verify_password(const char *secret, const char *password,
    int force_fail)
{
	char out[CRYPT_OUTPUT_SIZE];
	int ok;

	if (secret == NULL || password == NULL)
		return 0;
	if (auth_secret_is_plain(secret))
		ok = auth_plain_equal(secret + AUTH_PLAIN_PREFIX_LEN,
		    password);
	else if (scram_is_secret(secret)) {
		struct scram_secret sec;

		ok = scram_parse_secret(secret, &sec) == 0 &&
		    scram_verify_password(&sec, password);
		util_wipe(&sec, sizeof(sec));
	} else {
		ok = auth_crypt(password, secret, out, sizeof(out)) &&
		    util_ct_equal(out, strlen(out), secret, strlen(secret));
		util_wipe(out, sizeof(out));
	}
	return force_fail ? 0 : ok;
}

/* Decode exactly 2*n hex digits of either case; -1 if anything else. */
static int
auth_unhex(const char *hex, unsigned char *out, size_t n)
{
	size_t i;
	int hi = 0, lo;
	char c;

	if (hex == NULL || strlen(hex) != 2 * n)
		return -1;
	for (i = 0; i < 2 * n; i++) {
		c = hex[i];
		if (c >= '0' && c <= '9')
			lo = c - '0';
		else if (c >= 'a' && c <= 'f')
			lo = c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			lo = c - 'A' + 10;
		else
			return -1;
		if (i % 2 == 0)
			hi = lo;
		else
			out[i / 2] = (unsigned char)(hi << 4 | lo);
	}
	return 0;
}

/* RFC 1939 section 7: MD5 of the greeting timestamp and the secret. */
int
auth_apop_verify(const char *secret, const char *timestamp,
    const char *digest_hex)
{
	unsigned char want[AUTH_MD5_LEN], got[EVP_MAX_MD_SIZE];
	unsigned int glen = 0;
	const char *clear;
	EVP_MD_CTX *ctx;
	int ok = 0;

	if (!auth_secret_is_plain(secret) || timestamp == NULL ||
	    auth_unhex(digest_hex, want, sizeof(want)) == -1)
		return 0;
	clear = secret + AUTH_PLAIN_PREFIX_LEN;
	if ((ctx = EVP_MD_CTX_new()) == NULL)
		return 0;
	if (EVP_DigestInit_ex(ctx, EVP_md5(), NULL) == 1 &&
	    EVP_DigestUpdate(ctx, timestamp, strlen(timestamp)) == 1 &&
	    EVP_DigestUpdate(ctx, clear, strlen(clear)) == 1 &&
	    EVP_DigestFinal_ex(ctx, got, &glen) == 1)
		ok = util_ct_equal(got, glen, want, sizeof(want));
	EVP_MD_CTX_free(ctx);
	util_wipe(got, sizeof(got));
	return ok;
}

/* RFC 2195 section 2: HMAC-MD5 keyed with the secret over the challenge. */
int
auth_cram_verify(const char *secret, const char *challenge,
    const char *digest_hex)
{
	unsigned char want[AUTH_MD5_LEN], got[EVP_MAX_MD_SIZE];
	unsigned int glen = 0;
	const char *clear;
	int ok = 0;

	if (!auth_secret_is_plain(secret) || challenge == NULL ||
	    auth_unhex(digest_hex, want, sizeof(want)) == -1)
		return 0;
	clear = secret + AUTH_PLAIN_PREFIX_LEN;
	if (HMAC(EVP_md5(), clear, (int)strlen(clear),
	    (const unsigned char *)challenge, strlen(challenge), got,
	    &glen) != NULL)
		ok = util_ct_equal(got, glen, want, sizeof(want));
	util_wipe(got, sizeof(got));
	return ok;
}

/*
 * RFC 4616 section 2: message = [authzid] NUL authcid NUL passwd.  The
 * three strings plus their terminators need one octet more than the
 * message holds, so they are laid out again from the start of buf; that
 * fits when authzid is empty or names the authcid itself (then *authz
 * points at *user).  evpop3d lets nobody act for another user, so a
 * different authzid is refused here as well.
 */
int
auth_plain_split(char *buf, size_t len, const char **authz,
    const char **user, const char **pass)
{
	char *n1, *n2;
	size_t zlen, ulen, plen;

	if (buf == NULL || len == 0)
		return -1;
	if ((n1 = memchr(buf, '\0', len)) == NULL)
		return -1;
	zlen = (size_t)(n1 - buf);
	if ((n2 = memchr(n1 + 1, '\0', len - zlen - 1)) == NULL)
		return -1;
	ulen = (size_t)(n2 - n1 - 1);
	plen = len - zlen - 1 - ulen - 1;
	if (ulen == 0 || plen == 0 || memchr(n2 + 1, '\0', plen) != NULL)
		return -1;
	if (zlen != 0 && (zlen != ulen || memcmp(buf, n1 + 1, ulen) != 0))
		return -1;
	/* user at buf, password right after it, both NUL-terminated. */
	memmove(buf, n1 + 1, ulen);
	buf[ulen] = '\0';
	memmove(buf + ulen + 1, buf + len - plen, plen);
	buf[ulen + 1 + plen] = '\0';
	*user = buf;
	*pass = buf + ulen + 1;
	*authz = zlen == 0 ? "" : buf;
	return 0;
}

/* Prefer yescrypt; older libcrypts only have SHA-512 crypt. */
int
auth_hash_password(const char *password, char *out, size_t outlen)
{
	static const char *const prefixes[] = { "$y$", "$6$" };
	char salt[CRYPT_GENSALT_OUTPUT_SIZE];
	size_t i;

	if (password == NULL || out == NULL)
		return -1;
	for (i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
		if (crypt_gensalt_rn(prefixes[i], 0, NULL, 0, salt,
		    sizeof(salt)) == NULL)
			continue;
		if (auth_crypt(password, salt, out, outlen))
			return 0;
	}
	return -1;
}
