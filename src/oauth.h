/*
 * evpop3d - oauth.h: SASL OAUTHBEARER (RFC 7628) for AUTH (RFC 5034).
 * Reads the client's GS2 message, and checks a bearer token either as a
 * JWT signed with a configured key (RS256, ES256 or HS256) or by asking
 * an RFC 7662 token introspection endpoint over HTTP.  Includes the small
 * strict JSON reader both need.  Pure: OpenSSL's libcrypto and libc;
 * oauth_verify blocks (network I/O) and runs on worker threads only.
 */
#ifndef EVPOP3D_OAUTH_H
#define EVPOP3D_OAUTH_H

#include <stddef.h>
#include <time.h>

struct oauth_conf;

/* ---- configuration (the oauth_* keys of evpop3d.conf) ---- */

/* A new, empty settings object (refcount 1), or NULL if out of memory. */
struct oauth_conf *oauth_conf_new(void);

/* 1 if key is one of the oauth_* configuration keys. */
int	oauth_conf_is_key(const char *key);

/*
 * Set one oauth_* key from the configuration file.  Returns 0, or -1 with
 * a message ("key: problem") in err.
 */
int	oauth_conf_set(struct oauth_conf *, const char *key,
	    const char *value, char *err, size_t errlen);

/*
 * Check the keys together and, with load_files, read the key files (so a
 * configuration check names a bad key).  Returns 0, or -1 with a message
 * in err and the key it concerns (for its line number) in *key.
 */
int	oauth_conf_finish(struct oauth_conf *, int load_files, char *err,
	    size_t errlen, const char **key);

/* 1 if OAUTHBEARER is configured (a key, a secret or an endpoint). */
int	oauth_conf_enabled(const struct oauth_conf *);

/* Take and drop a reference: jobs keep the settings they started with
 * across a SIGHUP that frees the configuration.  Thread-safe; NULL ok. */
struct oauth_conf *oauth_conf_ref(struct oauth_conf *);
void	oauth_conf_unref(struct oauth_conf *);

/* ---- the SASL message (RFC 7628 section 3.1) ---- */

/*
 * Parse a decoded client response "n,a=user,^Aauth=Bearer TOKEN^A^A"
 * (gs2 flag n or y, authzid optional, host= and port= and other keys
 * ignored) held in buf (len octets, modified in place).  Writes the
 * authzid (or "") to authz and points *token into buf (NUL-terminated).
 * Returns 0, or -1 if malformed, if channel binding is asked for, or if a
 * field is too long.
 */
int	oauth_gs2_parse(char *buf, size_t len, char *authz, size_t authzlen,
	    const char **token, size_t *toklen);

/* ---- verification ---- */

enum oauth_result {
	OAUTH_OK = 1,		/* valid: *user holds the user name */
	OAUTH_INVALID = 0,	/* refused: *why says why (for the log) */
	OAUTH_TEMP = -1		/* endpoint unreachable or broken */
};

/*
 * Check a bearer token at time now: a JWT when a JWT key or secret is
 * configured and the token has three parts; otherwise the introspection
 * endpoint, if configured.  On OAUTH_OK the user name from the configured
 * claim (checked with auth_user_valid) is in user.  Blocks up to
 * oauth_introspection_timeout: worker threads only.
 */
enum oauth_result oauth_verify(const struct oauth_conf *, const char *token,
	    size_t toklen, time_t now, char *user, size_t userlen,
	    const char **why);

/* The JWT check alone (same results, never OAUTH_TEMP). */
enum oauth_result oauth_jwt_verify(const struct oauth_conf *,
	    const char *token, size_t toklen, time_t now, char *user,
	    size_t userlen, const char **why);

/*
 * Read an RFC 7662 introspection response body (JSON) at time now: active
 * must be true, and the user comes from the configured claim.  Returns
 * OAUTH_OK, OAUTH_INVALID (inactive, expired, wrong issuer or audience),
 * or OAUTH_TEMP if body is not a JSON object.
 */
enum oauth_result oauth_introspection_result(const struct oauth_conf *,
	    const char *body, size_t len, time_t now, char *user,
	    size_t userlen, const char **why);

/* The base64 of the RFC 7628 section 3.2.2 error the server sends when a
 * token is refused (a constant string). */
const char *oauth_error_challenge(void);

/* ---- the JSON reader (RFC 8259 subset, bounded) ---- */

enum oauth_json_type {
	OAUTH_JSON_STRING, OAUTH_JSON_NUMBER, OAUTH_JSON_TRUE,
	OAUTH_JSON_FALSE, OAUTH_JSON_NULL, OAUTH_JSON_OBJECT, OAUTH_JSON_ARRAY
};

/* A value inside a JSON text: its type and its raw octets. */
struct oauth_json_val {
	enum oauth_json_type	 type;
	const char		*p;
	size_t			 len;
};

/*
 * Check that text is exactly one JSON object (whitespace around allowed),
 * nested at most OAUTH_JSON_DEPTH deep, with no control bytes in strings
 * and valid escapes, and make root that object.  The values found from
 * root point into text.  Returns 0 or -1.
 */
int	oauth_json_parse(const char *text, size_t len,
	    struct oauth_json_val *root);

/*
 * Find member key of the object obj (a root from oauth_json_parse, or an
 * OBJECT value inside it).  Returns 1 and fills *v, 0 if absent, -1 if key
 * occurs twice (ambiguous: refused).
 */
int	oauth_json_get(const struct oauth_json_val *obj, const char *key,
	    struct oauth_json_val *v);

/* The i-th element of an ARRAY value.  Returns 1, or 0 past the end. */
int	oauth_json_index(const struct oauth_json_val *arr, size_t i,
	    struct oauth_json_val *v);

/* Unescape a STRING value into out (NUL-terminated).  Returns the length,
 * or -1 if it does not fit, is not a string or holds a NUL. */
long	oauth_json_string(const struct oauth_json_val *, char *out,
	    size_t outlen);

/* 1 if v is a STRING whose unescaped text equals s. */
int	oauth_json_streq(const struct oauth_json_val *v, const char *s);

/* A NUMBER value as an integer (a fraction is cut off; exponents and
 * values beyond +-2^62 are refused).  Returns 0 or -1. */
int	oauth_json_int(const struct oauth_json_val *, long long *out);

#endif /* EVPOP3D_OAUTH_H */
