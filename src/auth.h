/*
 * evpop3d - auth.h: the passwd_file, password verification (crypt(3) via
 * libcrypt's crypt_rn, {PLAIN} in constant time), APOP and SASL helpers.
 * Pure: no libevent.  Verification functions are thread-safe and are run
 * on worker threads, never on the event loop.
 */
#ifndef EVPOP3D_AUTH_H
#define EVPOP3D_AUTH_H

#include <stddef.h>

struct passwd_db;

struct passwd_entry {
	char	*user;
	char	*secret;	/* crypt(3) hash, or "{PLAIN}cleartext" */
	char	*maildir;	/* third field, or NULL: use mail_location */
};

/*
 * Load a passwd_file: lines "user:HASH" or "user:HASH:MAILDIR"; '#'
 * comment lines and blank lines are skipped; a user name must pass
 * auth_user_valid; HASH must be a crypt(3) string ("$id$...", or a
 * traditional DES one) or "{PLAIN}secret"; MAILDIR must be absolute.
 * Returns the db, or NULL with "FILE:LINE: problem" (or "FILE: strerror")
 * in err.
 */
struct passwd_db *auth_db_load(const char *path, char *err, size_t errlen);
struct passwd_db *auth_db_parse(const char *name, const char *text,
	    size_t len, char *err, size_t errlen);
void	auth_db_free(struct passwd_db *);
size_t	auth_db_count(const struct passwd_db *);

/* Entry for user (exact, case-sensitive), or NULL. */
const struct passwd_entry *auth_db_lookup(const struct passwd_db *,
	    const char *user);

/*
 * A secret of the same kind and cost as the db's real ones (the first crypt
 * hash in the file, else a fixed yescrypt hash), to verify against when the
 * user is unknown so that both cases take the same time.
 */
const char *auth_db_dummy(const struct passwd_db *);

/*
 * Syntax check of a user name before any lookup or path: 1..AUTH_USER_MAX
 * octets, no '/', no "..", no ':', no control bytes or spaces, not starting
 * with '.'.  Returns 1 if acceptable.
 */
int	auth_user_valid(const char *user, size_t len);

/*
 * Verify password against secret.  secret is a crypt(3) hash (crypt_rn
 * with a heap struct crypt_data) or "{PLAIN}x" (constant-time compare).
 * With force_fail set the work is done but 0 is returned (dummy checks for
 * unknown users).  Returns 1 on match, 0 otherwise.
 */
int	auth_verify_password(const char *secret, const char *password,
	    int force_fail);

/* 1 if secret is "{PLAIN}..." (APOP and CRAM-MD5 can be used). */
int	auth_secret_is_plain(const char *secret);

/*
 * APOP (RFC 1939 section 7): digest_hex must be the 32 lower- or upper-case
 * hex digits of MD5(timestamp || cleartext).  Only {PLAIN} secrets can
 * match.  Constant-time compare.  Returns 1 on match.
 */
int	auth_apop_verify(const char *secret, const char *timestamp,
	    const char *digest_hex);

/*
 * CRAM-MD5 (RFC 2195): response is "user hexdigest" already decoded; checks
 * HMAC-MD5(cleartext, challenge).  Returns 1 on match.
 */
int	auth_cram_verify(const char *secret, const char *challenge,
	    const char *digest_hex);

/*
 * Decode a SASL PLAIN message (RFC 4616) "authzid\0authcid\0passwd" that
 * was base64-decoded into buf (len octets; modified in place).  Returns 0
 * and points *authz, *user, *pass into buf (authz may be ""), or -1 if
 * malformed (wrong number of NULs, empty user or password).
 */
int	auth_plain_split(char *buf, size_t len, const char **authz,
	    const char **user, const char **pass);

/*
 * Hash a new password for the passwd file: yescrypt ("$y$") when libcrypt
 * has it, else SHA-512 crypt ("$6$").  Returns 0 or -1.
 */
int	auth_hash_password(const char *password, char *out, size_t outlen);

#endif /* EVPOP3D_AUTH_H */
