/* SPDX-License-Identifier: ISC */
/*
 * evpop3d - oauth.c: SASL OAUTHBEARER (RFC 7628).  A client proves who it
 * is with a bearer token from an OAuth 2.0 provider instead of a password.
 * The token is checked either locally, as a JWT (RFC 7519) signed with
 * the provider's public key (RS256, ES256) or a shared secret (HS256),
 * whose exp/nbf/iss/aud claims must fit; or by asking the provider's
 * token introspection endpoint (RFC 7662) over HTTP or HTTPS.  The user
 * name comes from one claim (email by default) and must be a user of the
 * passwd_file; cmd.c does that lookup.  Also holds the small JSON reader
 * these payloads need: strict, bounded in depth and size, no allocation.
 * Pure: libcrypto/libssl and libc; oauth_verify blocks and is called on
 * worker threads only.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "auth.h"
#include "oauth.h"
#include "params.h"
#include "util.h"

/* RFC 7518 section 3.2: an HS256 key must be at least 256 bits. */
#define OAUTH_SECRET_MIN	32
#define OAUTH_SECRET_MAX	4096
/* RFC 7518 section 3.3: RSA keys of 2048 bits or more. */
#define OAUTH_RSA_BITS_MIN	2048
#define OAUTH_HOST_MAX		255
#define OAUTH_CLAIM_MAX		64

enum oauth_keytype { OAUTH_KEY_NONE, OAUTH_KEY_RSA, OAUTH_KEY_EC };

struct oauth_conf {
	int			 refs;		/* atomic */
	char			*jwt_key;	/* paths as configured */
	char			*jwt_secret_file;
	char			*issuer;
	char			*audience;
	char			*claim;		/* default "email" */
	char			*url;
	char			*ca_file;
	char			*client_id;
	char			*client_secret;
	unsigned int		 timeout_sec;
	/* Loaded by oauth_conf_finish: */
	EVP_PKEY		*pkey;
	enum oauth_keytype	 keytype;
	unsigned char		*secret;
	size_t			 secretlen;
	int			 https;
	char			 host[OAUTH_HOST_MAX + 1];
	char			 port[8];
	char			*path;		/* with the query */
	SSL_CTX			*ssl_ctx;	/* https endpoint */
};

/* ---------------------------------------------------------------------
 * The JSON reader.
 */

static const char *
oauth_json_ws(const char *p, const char *e)
{
	while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

static int
oauth_json_hex(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Skip a string starting at its quote; *pp ends after the closing one. */
static int
oauth_json_skip_string(const char **pp, const char *e)
{
	const char *p = *pp + 1;
	int i;

	while (p < e) {
		unsigned char c = (unsigned char)*p;

		if (c == '"') {
			*pp = p + 1;
			return 0;
		}
		if (c < 0x20)
			return -1;
		if (c != '\\') {
			p++;
			continue;
		}
		if (++p >= e)
			return -1;
		switch (*p) {
		case '"': case '\\': case '/': case 'b': case 'f': case 'n':
		case 'r': case 't':
			p++;
			break;
		case 'u':
			if (e - p < 5)
				return -1;
			for (i = 1; i <= 4; i++)
				if (oauth_json_hex((unsigned char)p[i]) == -1)
					return -1;
			p += 5;
			break;
		default:
			return -1;
		}
	}
	return -1;
}

static int
oauth_json_skip_digits(const char **pp, const char *e)
{
	const char *p = *pp;

	while (p < e && *p >= '0' && *p <= '9')
		p++;
	if (p == *pp)
		return -1;
	*pp = p;
	return 0;
}

/* RFC 8259 section 6: -? (0 | [1-9][0-9]*) (.[0-9]+)? ([eE][+-]?[0-9]+)? */
static int
oauth_json_skip_number(const char **pp, const char *e)
{
	const char *p = *pp;

	if (p < e && *p == '-')
		p++;
	if (p < e && *p == '0')
		p++;
	else if (oauth_json_skip_digits(&p, e) == -1)
		return -1;
	if (p < e && *p == '.') {
		p++;
		if (oauth_json_skip_digits(&p, e) == -1)
			return -1;
	}
	if (p < e && (*p == 'e' || *p == 'E')) {
		p++;
		if (p < e && (*p == '+' || *p == '-'))
			p++;
		if (oauth_json_skip_digits(&p, e) == -1)
			return -1;
	}
	*pp = p;
	return 0;
}

static int
oauth_json_skip_word(const char **pp, const char *e, const char *w)
{
	size_t n = strlen(w);

	if ((size_t)(e - *pp) < n || memcmp(*pp, w, n) != 0)
		return -1;
	*pp += n;
	return 0;
}

/* Check the value at *pp (no leading blanks), set its type, move past it. */
static int
oauth_json_skip_value(const char **pp, const char *e, int depth,
    enum oauth_json_type *type)
{
	const char *p = *pp;
	enum oauth_json_type t;
	char close;

	if (p >= e)
		return -1;
	switch (*p) {
	case '"':
		*type = OAUTH_JSON_STRING;
		return oauth_json_skip_string(pp, e);
	case 't':
		*type = OAUTH_JSON_TRUE;
		return oauth_json_skip_word(pp, e, "true");
	case 'f':
		*type = OAUTH_JSON_FALSE;
		return oauth_json_skip_word(pp, e, "false");
	case 'n':
		*type = OAUTH_JSON_NULL;
		return oauth_json_skip_word(pp, e, "null");
	case '{':
	case '[':
		break;
	default:
		*type = OAUTH_JSON_NUMBER;
		return oauth_json_skip_number(pp, e);
	}
	if (depth >= OAUTH_JSON_DEPTH)
		return -1;
	*type = *p == '{' ? OAUTH_JSON_OBJECT : OAUTH_JSON_ARRAY;
	close = *p == '{' ? '}' : ']';
	p = oauth_json_ws(p + 1, e);
	if (p < e && *p == close) {
		*pp = p + 1;
		return 0;
	}
	for (;;) {
		if (close == '}') {
			if (p >= e || *p != '"' ||
			    oauth_json_skip_string(&p, e) == -1)
				return -1;
			p = oauth_json_ws(p, e);
			if (p >= e || *p != ':')
				return -1;
			p = oauth_json_ws(p + 1, e);
		}
		if (oauth_json_skip_value(&p, e, depth + 1, &t) == -1)
			return -1;
		p = oauth_json_ws(p, e);
		if (p >= e)
			return -1;
		if (*p == close) {
			*pp = p + 1;
			return 0;
		}
		if (*p != ',')
			return -1;
		p = oauth_json_ws(p + 1, e);
	}
}

int
oauth_json_parse(const char *text, size_t len, struct oauth_json_val *root)
{
	const char *p, *e = text + len, *start;

	if (text == NULL)
		return -1;
	start = p = oauth_json_ws(text, e);
	if (p >= e || *p != '{' ||
	    oauth_json_skip_value(&p, e, 0, &root->type) == -1 ||
	    oauth_json_ws(p, e) != e)
		return -1;
	root->p = start;
	root->len = (size_t)(p - start);
	return 0;
}

/*
 * Walk the members of an object or the elements of an array that has been
 * checked: *pp starts after the bracket; returns 1 with the next key (NULL
 * for arrays) and value, 0 at the end.
 */
static int
oauth_json_next(const char **pp, const char *e, int object,
    struct oauth_json_val *key, struct oauth_json_val *v)
{
	const char *p = oauth_json_ws(*pp, e);

	if (p >= e || *p == '}' || *p == ']')
		return 0;
	if (*p == ',')
		p = oauth_json_ws(p + 1, e);
	if (object) {
		key->type = OAUTH_JSON_STRING;
		key->p = p;
		if (oauth_json_skip_string(&p, e) == -1)
			return 0;
		key->len = (size_t)(p - key->p);
		p = oauth_json_ws(p, e);
		p = oauth_json_ws(p + 1, e);	/* the ':' */
	}
	v->p = p;
	if (oauth_json_skip_value(&p, e, 0, &v->type) == -1)
		return 0;
	v->len = (size_t)(p - v->p);
	*pp = p;
	return 1;
}

int
oauth_json_get(const struct oauth_json_val *obj, const char *key,
    struct oauth_json_val *v)
{
	struct oauth_json_val k, val;
	const char *p, *e;
	int found = 0;

	if (obj == NULL || obj->type != OAUTH_JSON_OBJECT || obj->len < 2)
		return 0;
	p = obj->p + 1;
	e = obj->p + obj->len - 1;
	while (oauth_json_next(&p, e, 1, &k, &val) == 1) {
		if (!oauth_json_streq(&k, key))
			continue;
		if (found)
			return -1;
		found = 1;
		*v = val;
	}
	return found;
}

int
oauth_json_index(const struct oauth_json_val *arr, size_t i,
    struct oauth_json_val *v)
{
	struct oauth_json_val k;
	const char *p, *e;
	size_t n = 0;

	if (arr == NULL || arr->type != OAUTH_JSON_ARRAY || arr->len < 2)
		return 0;
	p = arr->p + 1;
	e = arr->p + arr->len - 1;
	while (oauth_json_next(&p, e, 0, &k, v) == 1)
		if (n++ == i)
			return 1;
	return 0;
}

/* Read the 4 hex digits at p. */
static unsigned int
oauth_json_u4(const char *p)
{
	unsigned int v = 0;
	int i;

	for (i = 0; i < 4; i++)
		v = v << 4 | (unsigned int)oauth_json_hex((unsigned char)p[i]);
	return v;
}

long
oauth_json_string(const struct oauth_json_val *v, char *out, size_t outlen)
{
	const char *p, *e;
	size_t o = 0, n;
	unsigned int cp, lo;
	char tmp[4];

	if (v == NULL || v->type != OAUTH_JSON_STRING || v->len < 2 ||
	    outlen == 0)
		return -1;
	p = v->p + 1;
	e = v->p + v->len - 1;
	while (p < e) {
		if (*p != '\\') {
			tmp[0] = *p++;
			n = 1;
		} else {
			p++;
			switch (*p) {
			case 'b': tmp[0] = '\b'; break;
			case 'f': tmp[0] = '\f'; break;
			case 'n': tmp[0] = '\n'; break;
			case 'r': tmp[0] = '\r'; break;
			case 't': tmp[0] = '\t'; break;
			case 'u': break;
			default: tmp[0] = *p; break;	/* " \ / */
			}
			n = 1;
			if (*p++ == 'u') {
				cp = oauth_json_u4(p);
				p += 4;
				if (cp >= 0xdc00 && cp <= 0xdfff)
					return -1;	/* lone low surrogate */
				if (cp >= 0xd800 && cp <= 0xdbff) {
					if (e - p < 6 || p[0] != '\\' ||
					    p[1] != 'u')
						return -1;
					lo = oauth_json_u4(p + 2);
					if (lo < 0xdc00 || lo > 0xdfff)
						return -1;
					p += 6;
					cp = 0x10000 + ((cp - 0xd800) << 10) +
					    (lo - 0xdc00);
				}
				if (cp == 0)
					return -1;
				if (cp < 0x80) {
					tmp[0] = (char)cp;
				} else if (cp < 0x800) {
					tmp[0] = (char)(0xc0 | cp >> 6);
					tmp[1] = (char)(0x80 | (cp & 0x3f));
					n = 2;
				} else if (cp < 0x10000) {
					tmp[0] = (char)(0xe0 | cp >> 12);
					tmp[1] = (char)(0x80 | (cp >> 6 & 0x3f));
					tmp[2] = (char)(0x80 | (cp & 0x3f));
					n = 3;
				} else {
					tmp[0] = (char)(0xf0 | cp >> 18);
					tmp[1] = (char)(0x80 | (cp >> 12 & 0x3f));
					tmp[2] = (char)(0x80 | (cp >> 6 & 0x3f));
					tmp[3] = (char)(0x80 | (cp & 0x3f));
					n = 4;
				}
			}
		}
		if (n >= outlen - o)
			return -1;
		memcpy(out + o, tmp, n);
		o += n;
	}
	out[o] = '\0';
	return (long)o;
}

int
oauth_json_streq(const struct oauth_json_val *v, const char *s)
{
	char buf[512];
	long n;

	if (v == NULL || v->type != OAUTH_JSON_STRING)
		return 0;
	/* Fast path: no escapes, compare in place. */
	if (memchr(v->p, '\\', v->len) == NULL)
		return v->len - 2 == strlen(s) &&
		    memcmp(v->p + 1, s, v->len - 2) == 0;
	if (strlen(s) >= sizeof(buf) ||
	    (n = oauth_json_string(v, buf, sizeof(buf))) < 0)
		return 0;
	return strcmp(buf, s) == 0;
}

int
oauth_json_int(const struct oauth_json_val *v, long long *out)
{
	const char *p, *e;
	long long n = 0;
	int neg = 0;

	if (v == NULL || v->type != OAUTH_JSON_NUMBER || v->len == 0)
		return -1;
	p = v->p;
	e = v->p + v->len;
	if (memchr(p, 'e', v->len) != NULL || memchr(p, 'E', v->len) != NULL)
		return -1;
	if (*p == '-') {
		neg = 1;
		p++;
	}
	for (; p < e && *p != '.'; p++) {
		if (n > ((1LL << 62) - 9) / 10)
			return -1;
		n = n * 10 + (*p - '0');
	}
	*out = neg ? -n : n;
	return 0;
}

/* ---------------------------------------------------------------------
 * Configuration.
 */

static const char *const oauth_keys[] = {
	"oauth_jwt_key", "oauth_jwt_secret_file", "oauth_issuer",
	"oauth_audience", "oauth_username_claim", "oauth_introspection_url",
	"oauth_introspection_ca", "oauth_introspection_timeout",
	"oauth_client_id", "oauth_client_secret",
};

struct oauth_conf *
oauth_conf_new(void)
{
	struct oauth_conf *oc;

	if ((oc = calloc(1, sizeof(*oc))) == NULL)
		return NULL;
	oc->refs = 1;
	oc->timeout_sec = OAUTH_TIMEOUT_SEC_DEFAULT;
	return oc;
}

int
oauth_conf_is_key(const char *key)
{
	size_t i;

	for (i = 0; i < sizeof(oauth_keys) / sizeof(oauth_keys[0]); i++)
		if (strcmp(oauth_keys[i], key) == 0)
			return 1;
	return 0;
}

/*
 * Split "http[s]://HOST[:PORT][/PATH]" into the parts kept in oc.  HOST is
 * a name, an IPv4 address or a bracketed IPv6 address; no user info.
 */
static int
oauth_parse_url(struct oauth_conf *oc, const char *url, const char **why)
{
	const char *h, *he, *p;
	size_t hl, i;
	unsigned long long port;

	*why = "expected http://HOST[:PORT]/PATH or https://...";
	if (strncasecmp(url, "http://", 7) == 0) {
		oc->https = 0;
		h = url + 7;
	} else if (strncasecmp(url, "https://", 8) == 0) {
		oc->https = 1;
		h = url + 8;
	} else
		return -1;
	if (*h == '[') {
		if ((he = strchr(h, ']')) == NULL)
			return -1;
		h++;
		p = he + 1;
	} else {
		he = h + strcspn(h, ":/?#");
		p = he;
	}
	hl = (size_t)(he - h);
	if (hl == 0 || hl > OAUTH_HOST_MAX)
		return -1;
	for (i = 0; i < hl; i++)
		if (!isalnum((unsigned char)h[i]) && strchr(".-:_",
		    h[i]) == NULL)
			return -1;
	memcpy(oc->host, h, hl);
	oc->host[hl] = '\0';
	snprintf(oc->port, sizeof(oc->port), "%s", oc->https ? "443" : "80");
	if (*p == ':') {
		char num[8];
		size_t nl = strcspn(p + 1, "/?#");

		if (nl == 0 || nl >= sizeof(num))
			return -1;
		memcpy(num, p + 1, nl);
		num[nl] = '\0';
		if (util_strtonum(num, 1, 65535, &port, NULL) == -1) {
			*why = "the port must be a number from 1 to 65535";
			return -1;
		}
		snprintf(oc->port, sizeof(oc->port), "%llu", port);
		p += 1 + nl;
	}
	if (*p == '#')
		return -1;
	for (i = 0; p[i] != '\0'; i++)
		if ((unsigned char)p[i] <= 0x20 || (unsigned char)p[i] >= 0x7f)
			return -1;
	free(oc->path);
	if (*p == '\0')
		oc->path = strdup("/");
	else if (*p == '?') {
		if ((oc->path = malloc(strlen(p) + 2)) != NULL)
			snprintf(oc->path, strlen(p) + 2, "/%s", p);
	} else
		oc->path = strdup(p);
	if (oc->path == NULL) {
		*why = "out of memory";
		return -1;
	}
	return 0;
}

/* Store a copy of value in *field. */
static int
oauth_conf_str(char **field, const char *value, char *err, size_t errlen)
{
	free(*field);
	if ((*field = strdup(value)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

int
oauth_conf_set(struct oauth_conf *oc, const char *key, const char *value,
    char *err, size_t errlen)
{
	unsigned long long v;
	const char *why;
	size_t i;

	if (strcmp(key, "oauth_jwt_key") == 0)
		return oauth_conf_str(&oc->jwt_key, value, err, errlen);
	if (strcmp(key, "oauth_jwt_secret_file") == 0)
		return oauth_conf_str(&oc->jwt_secret_file, value, err, errlen);
	if (strcmp(key, "oauth_issuer") == 0)
		return oauth_conf_str(&oc->issuer, value, err, errlen);
	if (strcmp(key, "oauth_audience") == 0)
		return oauth_conf_str(&oc->audience, value, err, errlen);
	if (strcmp(key, "oauth_introspection_ca") == 0)
		return oauth_conf_str(&oc->ca_file, value, err, errlen);
	if (strcmp(key, "oauth_client_id") == 0)
		return oauth_conf_str(&oc->client_id, value, err, errlen);
	if (strcmp(key, "oauth_client_secret") == 0)
		return oauth_conf_str(&oc->client_secret, value, err, errlen);
	if (strcmp(key, "oauth_username_claim") == 0) {
		for (i = 0; value[i] != '\0'; i++)
			if (!isalnum((unsigned char)value[i]) &&
			    strchr("_-.:/", value[i]) == NULL)
				break;
		if (value[i] != '\0' || i == 0 || i > OAUTH_CLAIM_MAX) {
			snprintf(err, errlen, "%s: not a claim name "
			    "(letters, digits, _-.:/)", key);
			return -1;
		}
		return oauth_conf_str(&oc->claim, value, err, errlen);
	}
	if (strcmp(key, "oauth_introspection_timeout") == 0) {
		if (util_strtonum(value, 1, 60, &v, NULL) == -1) {
			snprintf(err, errlen, "%s: not a number of seconds "
			    "from 1 to 60", key);
			return -1;
		}
		oc->timeout_sec = (unsigned int)v;
		return 0;
	}
	if (strcmp(key, "oauth_introspection_url") == 0) {
		if (oauth_parse_url(oc, value, &why) == -1) {
			snprintf(err, errlen, "%s: %s", key, why);
			return -1;
		}
		return oauth_conf_str(&oc->url, value, err, errlen);
	}
	snprintf(err, errlen, "%s: not an oauth key", key);
	return -1;
}

/* Read the PEM public key (or certificate) of oauth_jwt_key. */
static int
oauth_load_pubkey(struct oauth_conf *oc, char *err, size_t errlen)
{
	BIO *bio;
	X509 *x;
	char group[64];
	size_t glen;

	if ((bio = BIO_new_file(oc->jwt_key, "r")) == NULL) {
		snprintf(err, errlen, "oauth_jwt_key %s: %s", oc->jwt_key,
		    strerror(errno != 0 ? errno : ENOENT));
		return -1;
	}
	oc->pkey = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
	if (oc->pkey == NULL) {
		(void)BIO_reset(bio);
		if ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
			oc->pkey = X509_get_pubkey(x);
			X509_free(x);
		}
	}
	BIO_free(bio);
	ERR_clear_error();
	if (oc->pkey == NULL) {
		snprintf(err, errlen, "oauth_jwt_key %s: not a PEM public key "
		    "or certificate", oc->jwt_key);
		return -1;
	}
	if (EVP_PKEY_is_a(oc->pkey, "RSA")) {
		if (EVP_PKEY_get_bits(oc->pkey) < OAUTH_RSA_BITS_MIN) {
			snprintf(err, errlen, "oauth_jwt_key %s: RSA key "
			    "shorter than %d bits", oc->jwt_key,
			    OAUTH_RSA_BITS_MIN);
			return -1;
		}
		oc->keytype = OAUTH_KEY_RSA;
		return 0;
	}
	if (EVP_PKEY_is_a(oc->pkey, "EC") &&
	    EVP_PKEY_get_group_name(oc->pkey, group, sizeof(group),
	    &glen) == 1 && (strcmp(group, "prime256v1") == 0 ||
	    strcmp(group, "P-256") == 0)) {
		oc->keytype = OAUTH_KEY_EC;
		return 0;
	}
	snprintf(err, errlen, "oauth_jwt_key %s: neither an RSA nor an EC "
	    "P-256 key", oc->jwt_key);
	return -1;
}

/* Read the HS256 secret of oauth_jwt_secret_file (a final newline is not
 * part of it). */
static int
oauth_load_secret(struct oauth_conf *oc, char *err, size_t errlen)
{
	unsigned char buf[OAUTH_SECRET_MAX + 1];
	size_t len = 0;
	ssize_t n;
	int fd;

	if ((fd = open(oc->jwt_secret_file, O_RDONLY | O_CLOEXEC)) == -1) {
		snprintf(err, errlen, "oauth_jwt_secret_file %s: %s",
		    oc->jwt_secret_file, strerror(errno));
		return -1;
	}
	while (len < sizeof(buf) &&
	    (n = read(fd, buf + len, sizeof(buf) - len)) != 0) {
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			snprintf(err, errlen, "oauth_jwt_secret_file %s: %s",
			    oc->jwt_secret_file, strerror(errno));
			close(fd);
			return -1;
		}
		len += (size_t)n;
	}
	close(fd);
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
		len--;
	if (len < OAUTH_SECRET_MIN || len > OAUTH_SECRET_MAX) {
		util_wipe(buf, sizeof(buf));
		snprintf(err, errlen, "oauth_jwt_secret_file %s: the secret "
		    "must be %d to %d octets", oc->jwt_secret_file,
		    OAUTH_SECRET_MIN, OAUTH_SECRET_MAX);
		return -1;
	}
	if ((oc->secret = malloc(len)) == NULL) {
		util_wipe(buf, sizeof(buf));
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	memcpy(oc->secret, buf, len);
	oc->secretlen = len;
	util_wipe(buf, sizeof(buf));
	return 0;
}

/* A TLS client context that checks the endpoint's certificate. */
static int
oauth_load_tls(struct oauth_conf *oc, char *err, size_t errlen)
{
	if ((oc->ssl_ctx = SSL_CTX_new(TLS_client_method())) == NULL ||
	    SSL_CTX_set_min_proto_version(oc->ssl_ctx, TLS1_2_VERSION) != 1) {
		snprintf(err, errlen, "oauth_introspection_url: cannot set "
		    "up TLS");
		return -1;
	}
	SSL_CTX_set_verify(oc->ssl_ctx, SSL_VERIFY_PEER, NULL);
	SSL_CTX_set_options(oc->ssl_ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
	if (oc->ca_file != NULL ? SSL_CTX_load_verify_locations(oc->ssl_ctx,
	    oc->ca_file, NULL) != 1 :
	    SSL_CTX_set_default_verify_paths(oc->ssl_ctx) != 1) {
		ERR_clear_error();
		snprintf(err, errlen, "oauth_introspection_ca %s: cannot read "
		    "the certificates", oc->ca_file != NULL ? oc->ca_file :
		    "(system default)");
		return -1;
	}
	return 0;
}

int
oauth_conf_finish(struct oauth_conf *oc, int load_files, char *err,
    size_t errlen, const char **key)
{
	*key = NULL;
	if (oc->jwt_key == NULL && oc->jwt_secret_file == NULL &&
	    oc->url == NULL) {
		snprintf(err, errlen, "OAUTHBEARER needs oauth_jwt_key, "
		    "oauth_jwt_secret_file or oauth_introspection_url");
		return -1;
	}
	if ((oc->client_id == NULL) != (oc->client_secret == NULL)) {
		*key = oc->client_id != NULL ? "oauth_client_id" :
		    "oauth_client_secret";
		snprintf(err, errlen, "oauth_client_id and "
		    "oauth_client_secret go together");
		return -1;
	}
	if (oc->url == NULL && (oc->client_id != NULL ||
	    oc->ca_file != NULL)) {
		*key = oc->client_id != NULL ? "oauth_client_id" :
		    "oauth_introspection_ca";
		snprintf(err, errlen, "%s needs oauth_introspection_url", *key);
		return -1;
	}
	if (oc->ca_file != NULL && !oc->https) {
		*key = "oauth_introspection_ca";
		snprintf(err, errlen, "oauth_introspection_ca needs an "
		    "https:// oauth_introspection_url");
		return -1;
	}
	if (oc->claim == NULL && (oc->claim = strdup("email")) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (!load_files)
		return 0;
	if (oc->jwt_key != NULL && oc->pkey == NULL &&
	    oauth_load_pubkey(oc, err, errlen) == -1) {
		*key = "oauth_jwt_key";
		return -1;
	}
	if (oc->jwt_secret_file != NULL && oc->secret == NULL &&
	    oauth_load_secret(oc, err, errlen) == -1) {
		*key = "oauth_jwt_secret_file";
		return -1;
	}
	if (oc->https && oc->ssl_ctx == NULL &&
	    oauth_load_tls(oc, err, errlen) == -1) {
		*key = oc->ca_file != NULL ? "oauth_introspection_ca" :
		    "oauth_introspection_url";
		return -1;
	}
	return 0;
}

int
oauth_conf_enabled(const struct oauth_conf *oc)
{
	return oc != NULL && (oc->jwt_key != NULL ||
	    oc->jwt_secret_file != NULL || oc->url != NULL);
}

struct oauth_conf *
oauth_conf_ref(struct oauth_conf *oc)
{
	if (oc != NULL)
		__atomic_add_fetch(&oc->refs, 1, __ATOMIC_RELAXED);
	return oc;
}

void
oauth_conf_unref(struct oauth_conf *oc)
{
	if (oc == NULL || __atomic_sub_fetch(&oc->refs, 1,
	    __ATOMIC_ACQ_REL) != 0)
		return;
	free(oc->jwt_key);
	free(oc->jwt_secret_file);
	free(oc->issuer);
	free(oc->audience);
	free(oc->claim);
	free(oc->url);
	free(oc->ca_file);
	free(oc->client_id);
	if (oc->client_secret != NULL) {
		util_wipe(oc->client_secret, strlen(oc->client_secret));
		free(oc->client_secret);
	}
	if (oc->secret != NULL) {
		util_wipe(oc->secret, oc->secretlen);
		free(oc->secret);
	}
	free(oc->path);
	EVP_PKEY_free(oc->pkey);
	SSL_CTX_free(oc->ssl_ctx);
	free(oc);
}

/* ---------------------------------------------------------------------
 * The SASL message.
 */

/* RFC 7628 section 3.1: b64token = 1*(ALPHA/DIGIT/-._~+/) *"=". */
static int
oauth_b64token_ok(const char *t, size_t n)
{
	size_t i = 0;

	while (i < n && (isalnum((unsigned char)t[i]) ||
	    strchr("-._~+/", t[i]) != NULL))
		i++;
	if (i == 0)
		return 0;
	while (i < n && t[i] == '=')
		i++;
	return i == n;
}

int
oauth_gs2_parse(char *buf, size_t len, char *authz, size_t authzlen,
    const char **token, size_t *toklen)
{
	char *p = buf, *e = buf + len, *kv, *eq, *end, *val;
	size_t o = 0, klen;
	int have_auth = 0;

	if (authzlen == 0)
		return -1;
	authz[0] = '\0';
	*token = NULL;
	*toklen = 0;
	if (len < 3 || memchr(buf, '\0', len) != NULL)
		return -1;
	/* gs2-cb-flag: "n" or "y"; "p=" asks for channel binding. */
	if ((*p != 'n' && *p != 'y') || p[1] != ',')
		return -1;
	p += 2;
	if (p + 1 < e && p[0] == 'a' && p[1] == '=') {
		p += 2;
		if (p >= e || *p == ',')
			return -1;
		while (p < e && *p != ',') {
			char c = *p;

			if (c == '=') {
				if (e - p < 3)
					return -1;
				if (p[1] == '2' && (p[2] == 'C' || p[2] == 'c'))
					c = ',';
				else if (p[1] == '3' && (p[2] == 'D' ||
				    p[2] == 'd'))
					c = '=';
				else
					return -1;
				p += 2;
			}
			if ((unsigned char)c < 0x20 || o + 1 >= authzlen)
				return -1;
			authz[o++] = c;
			p++;
		}
		authz[o] = '\0';
	}
	if (p >= e || *p != ',')
		return -1;
	p++;
	if (p >= e || *p != '\x01')
		return -1;
	p++;
	/* kvpairs, each ended by ^A; an empty one (^A) ends the message. */
	for (;;) {
		if (p >= e)
			return -1;
		if (*p == '\x01')
			break;
		kv = p;
		if ((end = memchr(kv, '\x01', (size_t)(e - kv))) == NULL)
			return -1;
		if ((eq = memchr(kv, '=', (size_t)(end - kv))) == NULL)
			return -1;
		klen = (size_t)(eq - kv);
		if (klen == 0)
			return -1;
		for (val = kv; val < eq; val++)
			if (!isalpha((unsigned char)*val))
				return -1;
		for (val = eq + 1; val < end; val++) {
			unsigned char c = (unsigned char)*val;
			if (c < 0x20 && c != '\t' && c != '\r' && c != '\n')
				return -1;
			if (c == 0x7f)
				return -1;
		}
		if (klen == 4 && memcmp(kv, "auth", 4) == 0) {
			val = eq + 1;
			if (have_auth || end - val < 8 ||
			    strncasecmp(val, "Bearer ", 7) != 0)
				return -1;
			val += 7;
			while (val < end && *val == ' ')
				val++;
			if (end - val > OAUTH_TOKEN_MAX ||
			    !oauth_b64token_ok(val, (size_t)(end - val)))
				return -1;
			have_auth = 1;
			*token = val;
			*toklen = (size_t)(end - val);
		}
		p = end + 1;
	}
	if (p + 1 != e || !have_auth)
		return -1;
	buf[*token - buf + *toklen] = '\0';
	return 0;
}

const char *
oauth_error_challenge(void)
{
	/* {"status":"invalid_token","schemes":"bearer"} */
	return "eyJzdGF0dXMiOiJpbnZhbGlkX3Rva2VuIiwic2NoZW1lcyI6ImJlYXJlciJ9";
}

/* ---------------------------------------------------------------------
 * Claims shared by both modes.
 */

/* Copy the user name claim of obj into user.  Returns 0 or -1 (*why). */
static int
oauth_user_claim(const struct oauth_conf *oc,
    const struct oauth_json_val *obj, char *user, size_t userlen,
    const char **why)
{
	struct oauth_json_val v;
	long n;

	if (oauth_json_get(obj, oc->claim, &v) != 1 ||
	    v.type != OAUTH_JSON_STRING) {
		*why = "no user name claim";
		return -1;
	}
	if ((n = oauth_json_string(&v, user, userlen)) < 0 ||
	    !auth_user_valid(user, (size_t)n)) {
		user[0] = '\0';
		*why = "invalid user name in the claim";
		return -1;
	}
	return 0;
}

/* iss must equal oauth_issuer, aud (string or array) hold oauth_audience;
 * absent claims pass only when not required. */
static int
oauth_iss_aud(const struct oauth_conf *oc, const struct oauth_json_val *obj,
    int required, const char **why)
{
	struct oauth_json_val v, el;
	size_t i;
	int r, ok;

	if (oc->issuer != NULL) {
		r = oauth_json_get(obj, "iss", &v);
		if ((r == 0 && required) || r == -1 ||
		    (r == 1 && !oauth_json_streq(&v, oc->issuer))) {
			*why = "wrong issuer";
			return -1;
		}
	}
	if (oc->audience != NULL) {
		r = oauth_json_get(obj, "aud", &v);
		ok = r == 0 && !required;
		if (r == 1 && v.type == OAUTH_JSON_STRING)
			ok = oauth_json_streq(&v, oc->audience);
		else if (r == 1 && v.type == OAUTH_JSON_ARRAY)
			for (i = 0; !ok && oauth_json_index(&v, i, &el); i++)
				ok = oauth_json_streq(&el, oc->audience);
		if (!ok) {
			*why = "wrong audience";
			return -1;
		}
	}
	return 0;
}

/* exp (required when asked) and nbf against now, with leeway. */
static int
oauth_times(const struct oauth_json_val *obj, time_t now, int exp_required,
    const char **why)
{
	struct oauth_json_val v;
	long long t;
	int r;

	r = oauth_json_get(obj, "exp", &v);
	if (r == -1 || (r == 0 && exp_required) ||
	    (r == 1 && oauth_json_int(&v, &t) == -1)) {
		*why = "missing or bad exp";
		return -1;
	}
	if (r == 1 && (long long)now > t + OAUTH_LEEWAY_SEC) {
		*why = "token expired";
		return -1;
	}
	r = oauth_json_get(obj, "nbf", &v);
	if (r == -1 || (r == 1 && oauth_json_int(&v, &t) == -1)) {
		*why = "bad nbf";
		return -1;
	}
	if (r == 1 && (long long)now + OAUTH_LEEWAY_SEC < t) {
		*why = "token not valid yet";
		return -1;
	}
	return 0;
}

/* ---------------------------------------------------------------------
 * JWT (RFC 7519, JWS compact form RFC 7515, algorithms RFC 7518).
 */

/* Decode unpadded base64url (RFC 7515 section 2) into a new buffer. */
static unsigned char *
oauth_b64url(const char *in, size_t n, size_t *outlen)
{
	char *tmp;
	unsigned char *out;
	size_t i;

	if (n % 4 == 1 || n > OAUTH_TOKEN_MAX)
		return NULL;
	if ((tmp = malloc(n + 3)) == NULL)
		return NULL;
	for (i = 0; i < n; i++) {
		if (in[i] == '-')
			tmp[i] = '+';
		else if (in[i] == '_')
			tmp[i] = '/';
		else if (isalnum((unsigned char)in[i]))
			tmp[i] = in[i];
		else {
			free(tmp);
			return NULL;
		}
	}
	while (i % 4 != 0)
		tmp[i++] = '=';
	*outlen = i / 4 * 3 + 1;
	if ((out = malloc(*outlen)) == NULL ||
	    util_b64_decode(tmp, i, out, outlen) == -1) {
		free(out);
		free(tmp);
		return NULL;
	}
	free(tmp);
	return out;
}

/* Verify sig over data with the public key and SHA-256. */
static int
oauth_pkey_verify(EVP_PKEY *pkey, const unsigned char *sig, size_t siglen,
    const char *data, size_t len)
{
	EVP_MD_CTX *md;
	int ok;

	if ((md = EVP_MD_CTX_new()) == NULL)
		return 0;
	ok = EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pkey) == 1 &&
	    EVP_DigestVerify(md, sig, siglen, (const unsigned char *)data,
	    len) == 1;
	EVP_MD_CTX_free(md);
	ERR_clear_error();
	return ok;
}

/* ES256: the JWS signature is r||s (32 octets each); OpenSSL wants DER. */
static int
oauth_es256_verify(EVP_PKEY *pkey, const unsigned char *sig, size_t siglen,
    const char *data, size_t len)
{
	ECDSA_SIG *es;
	BIGNUM *r, *s;
	unsigned char *der = NULL;
	int derlen, ok = 0;

	if (siglen != 64 || (es = ECDSA_SIG_new()) == NULL)
		return 0;
	r = BN_bin2bn(sig, 32, NULL);
	s = BN_bin2bn(sig + 32, 32, NULL);
	if (r == NULL || s == NULL || ECDSA_SIG_set0(es, r, s) != 1) {
		BN_free(r);
		BN_free(s);
		ECDSA_SIG_free(es);
		return 0;
	}
	if ((derlen = i2d_ECDSA_SIG(es, &der)) > 0)
		ok = oauth_pkey_verify(pkey, der, (size_t)derlen, data, len);
	OPENSSL_free(der);
	ECDSA_SIG_free(es);
	return ok;
}

/* Check the signature for the header's alg; the key decides what is
 * acceptable: HS256 only with the secret file, never with a public key. */
static int
oauth_jwt_signature(const struct oauth_conf *oc, const char *alg,
    const unsigned char *sig, size_t siglen, const char *data, size_t len,
    const char **why)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;

	if (strcmp(alg, "HS256") == 0) {
		if (oc->secret == NULL) {
			*why = "alg HS256 without oauth_jwt_secret_file";
			return 0;
		}
		if (HMAC(EVP_sha256(), oc->secret, (int)oc->secretlen,
		    (const unsigned char *)data, len, mac, &maclen) == NULL ||
		    !util_ct_equal(mac, maclen, sig, siglen)) {
			*why = "bad signature";
			return 0;
		}
		return 1;
	}
	if (strcmp(alg, "RS256") == 0) {
		if (oc->keytype != OAUTH_KEY_RSA) {
			*why = "alg RS256 without an RSA oauth_jwt_key";
			return 0;
		}
		if (siglen != (size_t)EVP_PKEY_get_size(oc->pkey) ||
		    !oauth_pkey_verify(oc->pkey, sig, siglen, data, len)) {
			*why = "bad signature";
			return 0;
		}
		return 1;
	}
	if (strcmp(alg, "ES256") == 0) {
		if (oc->keytype != OAUTH_KEY_EC) {
			*why = "alg ES256 without an EC P-256 oauth_jwt_key";
			return 0;
		}
		if (!oauth_es256_verify(oc->pkey, sig, siglen, data, len)) {
			*why = "bad signature";
			return 0;
		}
		return 1;
	}
	*why = "unsupported alg";
	return 0;
}

enum oauth_result
oauth_jwt_verify(const struct oauth_conf *oc, const char *token,
    size_t toklen, time_t now, char *user, size_t userlen, const char **why)
{
	const char *d1, *d2;
	unsigned char *hdr = NULL, *pay = NULL, *sig = NULL;
	size_t hlen, plen, slen;
	struct oauth_json_val obj, v;
	char alg[16];
	enum oauth_result res = OAUTH_INVALID;

	user[0] = '\0';
	*why = "malformed token";
	if (toklen > OAUTH_TOKEN_MAX ||
	    (d1 = memchr(token, '.', toklen)) == NULL ||
	    (d2 = memchr(d1 + 1, '.', toklen - (size_t)(d1 + 1 - token))) ==
	    NULL || memchr(d2 + 1, '.', toklen - (size_t)(d2 + 1 - token)) !=
	    NULL)
		return OAUTH_INVALID;
	if ((hdr = oauth_b64url(token, (size_t)(d1 - token), &hlen)) == NULL ||
	    (pay = oauth_b64url(d1 + 1, (size_t)(d2 - d1 - 1), &plen)) ==
	    NULL ||
	    (sig = oauth_b64url(d2 + 1, toklen - (size_t)(d2 + 1 - token),
	    &slen)) == NULL)
		goto out;
	/* The header: alg decides, crit (extensions we do not know) fails. */
	if (oauth_json_parse((char *)hdr, hlen, &obj) == -1)
		goto out;
	if (oauth_json_get(&obj, "alg", &v) != 1 ||
	    oauth_json_string(&v, alg, sizeof(alg)) < 0) {
		*why = "no alg";
		goto out;
	}
	if (strcasecmp(alg, "none") == 0) {
		*why = "alg none refused";
		goto out;
	}
	if (oauth_json_get(&obj, "crit", &v) != 0) {
		*why = "crit header not understood";
		goto out;
	}
	if (slen == 0 || !oauth_jwt_signature(oc, alg, sig, slen, token,
	    (size_t)(d2 - token), why))
		goto out;
	/* Signed by the provider: now the claims. */
	*why = "malformed claims";
	if (oauth_json_parse((char *)pay, plen, &obj) == -1)
		goto out;
	if (oauth_times(&obj, now, 1, why) == -1 ||
	    oauth_iss_aud(oc, &obj, 1, why) == -1 ||
	    oauth_user_claim(oc, &obj, user, userlen, why) == -1)
		goto out;
	*why = NULL;
	res = OAUTH_OK;
out:
	free(hdr);
	free(pay);
	free(sig);
	return res;
}

/* ---------------------------------------------------------------------
 * Token introspection (RFC 7662).
 */

enum oauth_result
oauth_introspection_result(const struct oauth_conf *oc, const char *body,
    size_t len, time_t now, char *user, size_t userlen, const char **why)
{
	struct oauth_json_val obj, v;

	user[0] = '\0';
	if (oauth_json_parse(body, len, &obj) == -1) {
		*why = "introspection answer is not a JSON object";
		return OAUTH_TEMP;
	}
	if (oauth_json_get(&obj, "active", &v) != 1 ||
	    v.type != OAUTH_JSON_TRUE) {
		*why = "token not active";
		return OAUTH_INVALID;
	}
	if (oauth_times(&obj, now, 0, why) == -1 ||
	    oauth_iss_aud(oc, &obj, 0, why) == -1 ||
	    oauth_user_claim(oc, &obj, user, userlen, why) == -1)
		return OAUTH_INVALID;
	*why = NULL;
	return OAUTH_OK;
}

/* One connection to the endpoint, plain or TLS, with a deadline. */
struct oauth_io {
	int		 fd;
	SSL		*ssl;
	struct timespec	 deadline;
};

/* Milliseconds left before the deadline (0 if past). */
static int
oauth_io_left(const struct oauth_io *io)
{
	struct timespec now;
	long long ms;

	clock_gettime(CLOCK_MONOTONIC, &now);
	ms = (io->deadline.tv_sec - now.tv_sec) * 1000LL +
	    (io->deadline.tv_nsec - now.tv_nsec) / 1000000;
	return ms <= 0 ? 0 : (int)ms;
}

/* Wait for events on the socket; -1 on timeout or error. */
static int
oauth_io_wait(struct oauth_io *io, short events)
{
	struct pollfd pfd;
	int ms, r;

	for (;;) {
		if ((ms = oauth_io_left(io)) == 0)
			return -1;
		pfd.fd = io->fd;
		pfd.events = events;
		pfd.revents = 0;
		r = poll(&pfd, 1, ms);
		if (r == -1 && errno == EINTR)
			continue;
		return r == 1 ? 0 : -1;
	}
}

/* Connect to one of the endpoint's addresses before the deadline. */
static int
oauth_io_connect(struct oauth_io *io, const struct oauth_conf *oc)
{
	struct addrinfo hints, *res, *ai;
	socklen_t sl;
	int fd, err;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	if (getaddrinfo(oc->host, oc->port, &hints, &res) != 0)
		return -1;
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, ai->ai_protocol);
		if (fd == -1)
			continue;
		io->fd = fd;
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 ||
		    (errno == EINPROGRESS && oauth_io_wait(io, POLLOUT) == 0 &&
		    (sl = sizeof(err), getsockopt(fd, SOL_SOCKET, SO_ERROR,
		    &err, &sl) == 0) && err == 0)) {
			freeaddrinfo(res);
			return 0;
		}
		close(fd);
		io->fd = -1;
	}
	freeaddrinfo(res);
	return -1;
}

/* Wait as the last SSL call asks; -1 if it failed for good. */
static int
oauth_io_ssl_wait(struct oauth_io *io, int r)
{
	switch (SSL_get_error(io->ssl, r)) {
	case SSL_ERROR_WANT_READ:
		return oauth_io_wait(io, POLLIN);
	case SSL_ERROR_WANT_WRITE:
		return oauth_io_wait(io, POLLOUT);
	default:
		return -1;
	}
}

/* TLS handshake, checking the certificate against the URL's host. */
static int
oauth_io_tls(struct oauth_io *io, const struct oauth_conf *oc)
{
	int r;

	if (oc->ssl_ctx == NULL || (io->ssl = SSL_new(oc->ssl_ctx)) == NULL ||
	    SSL_set_fd(io->ssl, io->fd) != 1 ||
	    SSL_set1_host(io->ssl, oc->host) != 1)
		return -1;
	/* SNI for names only (RFC 6066 section 3). */
	if (strchr(oc->host, ':') == NULL &&
	    strspn(oc->host, "0123456789.") != strlen(oc->host))
		SSL_set_tlsext_host_name(io->ssl, oc->host);
	while ((r = SSL_connect(io->ssl)) != 1)
		if (oauth_io_ssl_wait(io, r) == -1)
			return -1;
	return 0;
}

static int
oauth_io_write(struct oauth_io *io, const char *buf, size_t len)
{
	ssize_t n;
	int r;

	while (len > 0) {
		if (io->ssl != NULL) {
			r = SSL_write(io->ssl, buf, (int)len);
			if (r <= 0) {
				if (oauth_io_ssl_wait(io, r) == -1)
					return -1;
				continue;
			}
			n = r;
		} else if ((n = write(io->fd, buf, len)) == -1) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN || oauth_io_wait(io, POLLOUT) == -1)
				return -1;
			continue;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Read what comes, up to EOF.  Returns the octets read, 0 at EOF, -1. */
static ssize_t
oauth_io_read(struct oauth_io *io, char *buf, size_t len)
{
	ssize_t n;
	int r;

	for (;;) {
		if (io->ssl != NULL) {
			r = SSL_read(io->ssl, buf, (int)len);
			if (r > 0)
				return r;
			if (SSL_get_error(io->ssl, r) == SSL_ERROR_ZERO_RETURN)
				return 0;
			if (oauth_io_ssl_wait(io, r) == -1)
				return -1;
			continue;
		}
		if ((n = read(io->fd, buf, len)) >= 0)
			return n;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN || oauth_io_wait(io, POLLIN) == -1)
			return -1;
	}
}

/* application/x-www-form-urlencoded (RFC 6749 appendix B). */
static char *
oauth_form_encode(const char *s, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";
	char *out, *o;
	size_t i;

	if ((out = malloc(3 * n + 1)) == NULL)
		return NULL;
	for (o = out, i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~')
			*o++ = (char)c;
		else {
			*o++ = '%';
			*o++ = hex[c >> 4];
			*o++ = hex[c & 15];
		}
	}
	*o = '\0';
	return out;
}

/* Build the POST request; NULL if out of memory. */
static char *
oauth_http_request(const struct oauth_conf *oc, const char *token,
    size_t toklen, size_t *reqlen)
{
	char *tok, *id = NULL, *sec = NULL, *cred = NULL, *b64 = NULL;
	char *req = NULL, auth[1024];
	size_t body, clen;
	int n;

	auth[0] = '\0';
	if ((tok = oauth_form_encode(token, toklen)) == NULL)
		return NULL;
	if (oc->client_id != NULL) {
		/* RFC 6749 section 2.3.1: both form-encoded, then Basic. */
		id = oauth_form_encode(oc->client_id, strlen(oc->client_id));
		sec = oauth_form_encode(oc->client_secret,
		    strlen(oc->client_secret));
		if (id == NULL || sec == NULL)
			goto out;
		clen = strlen(id) + strlen(sec) + 2;
		if ((cred = malloc(clen)) == NULL ||
		    (b64 = malloc(4 * (clen + 2) / 3 + 4)) == NULL)
			goto out;
		snprintf(cred, clen, "%s:%s", id, sec);
		if (util_b64_encode((unsigned char *)cred, clen - 1, b64,
		    4 * (clen + 2) / 3 + 4) == -1 ||
		    (size_t)snprintf(auth, sizeof(auth),
		    "Authorization: Basic %s\r\n", b64) >= sizeof(auth))
			goto out;
	}
	body = strlen("token=&token_type_hint=access_token") + strlen(tok);
	*reqlen = strlen(oc->path) + strlen(oc->host) + strlen(auth) + body +
	    256;
	if ((req = malloc(*reqlen)) == NULL)
		goto out;
	n = snprintf(req, *reqlen, "POST %s HTTP/1.0\r\n"
	    "Host: %s%s%s%s%s\r\n"
	    "Content-Type: application/x-www-form-urlencoded\r\n"
	    "Accept: application/json\r\n"
	    "Content-Length: %zu\r\n"
	    "Connection: close\r\n"
	    "%s\r\n"
	    "token=%s&token_type_hint=access_token",
	    oc->path, strchr(oc->host, ':') != NULL ? "[" : "", oc->host,
	    strchr(oc->host, ':') != NULL ? "]" : "",
	    strcmp(oc->port, oc->https ? "443" : "80") != 0 ? ":" : "",
	    strcmp(oc->port, oc->https ? "443" : "80") != 0 ? oc->port : "",
	    body, auth, tok);
	if (n < 0 || (size_t)n >= *reqlen) {
		free(req);
		req = NULL;
		goto out;
	}
	*reqlen = (size_t)n;
out:
	util_wipe(auth, sizeof(auth));
	if (cred != NULL) {
		util_wipe(cred, strlen(cred));
		free(cred);
	}
	if (sec != NULL) {
		util_wipe(sec, strlen(sec));
		free(sec);
	}
	if (b64 != NULL) {
		util_wipe(b64, strlen(b64));
		free(b64);
	}
	free(id);
	util_wipe(tok, strlen(tok));
	free(tok);
	return req;
}

/*
 * Split an HTTP/1.x response: status 200 and a body (Content-Length if
 * given, else up to EOF; chunked bodies are refused - we asked with
 * HTTP/1.0).  Returns 0 with *body, *blen, or -1 (*why).
 */
static int
oauth_http_parse(char *resp, size_t len, const char **body, size_t *blen,
    const char **why)
{
	char *hend, *line, *nl;
	unsigned long long clen = 0;
	int have_clen = 0;

	*why = "introspection: malformed HTTP answer";
	if (len < 12 || strncmp(resp, "HTTP/1.", 7) != 0 || resp[8] != ' ')
		return -1;
	if (memcmp(resp + 9, "200", 3) != 0) {
		*why = "introspection: HTTP status is not 200";
		return -1;
	}
	if ((hend = memmem(resp, len, "\r\n\r\n", 4)) == NULL)
		return -1;
	*hend = '\0';
	for (line = strstr(resp, "\r\n"); line != NULL; line = nl) {
		line += 2;
		nl = strstr(line, "\r\n");
		if (nl != NULL)
			*nl = '\0';
		if (strncasecmp(line, "Transfer-Encoding:", 18) == 0) {
			*why = "introspection: chunked answer to HTTP/1.0";
			return -1;
		}
		if (strncasecmp(line, "Content-Length:", 15) == 0) {
			line += 15;
			while (*line == ' ' || *line == '\t')
				line++;
			line[strcspn(line, " \t")] = '\0';
			if (have_clen || util_strtonum(line, 0, OAUTH_HTTP_MAX,
			    &clen, NULL) == -1)
				return -1;
			have_clen = 1;
		}
		if (nl != NULL)
			*nl = '\r';
	}
	*body = hend + 4;
	*blen = len - (size_t)(hend + 4 - resp);
	if (have_clen) {
		if (*blen < clen) {
			*why = "introspection: answer cut short";
			return -1;
		}
		*blen = (size_t)clen;
	}
	return 0;
}

/* POST the token to the endpoint and read its verdict. */
static enum oauth_result
oauth_introspect(const struct oauth_conf *oc, const char *token,
    size_t toklen, time_t now, char *user, size_t userlen, const char **why)
{
	struct oauth_io io;
	char *req = NULL, *resp = NULL;
	const char *body;
	size_t reqlen = 0, len = 0, blen;
	ssize_t n;
	enum oauth_result res = OAUTH_TEMP;

	memset(&io, 0, sizeof(io));
	io.fd = -1;
	clock_gettime(CLOCK_MONOTONIC, &io.deadline);
	io.deadline.tv_sec += oc->timeout_sec;
	*why = "introspection: cannot connect";
	if (oauth_io_connect(&io, oc) == -1)
		goto out;
	*why = "introspection: TLS handshake failed";
	if (oc->https && oauth_io_tls(&io, oc) == -1)
		goto out;
	*why = "introspection: out of memory";
	if ((req = oauth_http_request(oc, token, toklen, &reqlen)) == NULL ||
	    (resp = malloc(OAUTH_HTTP_MAX + 1)) == NULL)
		goto out;
	*why = "introspection: timeout or error sending";
	if (oauth_io_write(&io, req, reqlen) == -1)
		goto out;
	*why = "introspection: timeout or error reading";
	while ((n = oauth_io_read(&io, resp + len, OAUTH_HTTP_MAX + 1 -
	    len)) > 0) {
		len += (size_t)n;
		if (len > OAUTH_HTTP_MAX) {
			*why = "introspection: answer too large";
			goto out;
		}
	}
	if (n == -1)
		goto out;
	resp[len] = '\0';
	if (oauth_http_parse(resp, len, &body, &blen, why) == -1)
		goto out;
	res = oauth_introspection_result(oc, body, blen, now, user, userlen,
	    why);
out:
	if (req != NULL) {
		util_wipe(req, reqlen);
		free(req);
	}
	free(resp);
	if (io.ssl != NULL) {
		SSL_free(io.ssl);
		ERR_clear_error();
	}
	if (io.fd != -1)
		close(io.fd);
	return res;
}

enum oauth_result
oauth_verify(const struct oauth_conf *oc, const char *token, size_t toklen,
    time_t now, char *user, size_t userlen, const char **why)
{
	size_t dots = 0, i;

	user[0] = '\0';
	if (oc == NULL) {
		*why = "OAUTHBEARER not configured";
		return OAUTH_INVALID;
	}
	for (i = 0; i < toklen; i++)
		dots += token[i] == '.';
	if (dots == 2 && (oc->pkey != NULL || oc->secret != NULL))
		return oauth_jwt_verify(oc, token, toklen, now, user, userlen,
		    why);
	if (oc->url != NULL)
		return oauth_introspect(oc, token, toklen, now, user, userlen,
		    why);
	*why = "not a JWT";
	return OAUTH_INVALID;
}
