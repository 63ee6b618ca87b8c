/* SPDX-License-Identifier: ISC */
/*
 * evpop3d - conf.c: reads the configuration file described in
 * SERVER-CONTRACT.md into a struct config that nothing changes afterwards.
 * Every problem is reported as "FILE:LINE: problem" and stops startup:
 * unknown keys, bad or empty values, keys given twice, and combinations
 * that cannot work (listen_tls without a certificate).  Also expands the
 * mail_location template and matches proxy_protocol_from CIDRs.  Pure: no
 * libevent, no logging (warnings are handed back as text).
 */
#include "config.h"

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"
#include "oauth.h"
#include "migrate.h"
#include "params.h"
#include "util.h"

/* A configuration file is a few dozen lines; refuse to slurp anything huge. */
#define CONF_FILE_MAX		(1024 * 1024)
/* RFC 1939 section 3: the autologout timer must be at least 10 minutes. */
#define CONF_IDLE_RFC_MIN	600
/* Room for an escaped value quoted in an error message. */
#define CONF_QUOTE_MAX		128

struct conf_parser;
struct conf_key;

typedef int conf_set_fn(struct conf_parser *, const struct conf_key *,
    char *);

/* One row of the key table: how to parse and where to store a key. */
struct conf_key {
	const char	*name;
	conf_set_fn	*fn;
	size_t		 off;		/* field in struct config */
	unsigned long long min, max;	/* numeric keys */
	int		 repeat;	/* may appear on several lines */
	int		 single;	/* value is one word */
};

struct conf_parser {
	const char	*name;
	struct config	*cf;
	char		*err;
	size_t		 errlen;
	char		*warn;
	size_t		 warnlen;
	size_t		 line;
	size_t		*seen;		/* first line of each key, 0 unseen */
	size_t		 tls_listen_line;	/* first listen_tls line */
};

static conf_set_fn conf_set_listen;
static conf_set_fn conf_set_string;
static conf_set_fn conf_set_number;
static conf_set_fn conf_set_location;
static conf_set_fn conf_set_plaintext;
static conf_set_fn conf_set_workers;
static conf_set_fn conf_set_proxy;
static conf_set_fn conf_set_loglevel;
static conf_set_fn conf_set_trusted;
static conf_set_fn conf_set_logformat;
static conf_set_fn conf_set_deletemode;
static conf_set_fn conf_set_expire;
static conf_set_fn conf_set_oauth;
static conf_set_fn conf_set_uidlfmt;
static conf_set_fn conf_set_yesno;

#define CONF_OFF(f)	offsetof(struct config, f)

static const struct conf_key conf_keys[] = {
	{ .name = "listen", .fn = conf_set_listen, .repeat = 1, .single = 1 },
	{ .name = "listen_tls", .fn = conf_set_listen, .repeat = 1,
	  .single = 1 },
	{ .name = "tls_cert", .fn = conf_set_string,
	  .off = CONF_OFF(tls_cert) },
	{ .name = "tls_key", .fn = conf_set_string, .off = CONF_OFF(tls_key) },
	{ .name = "passwd_file", .fn = conf_set_string,
	  .off = CONF_OFF(passwd_file) },
	{ .name = "mail_location", .fn = conf_set_location,
	  .off = CONF_OFF(mail_location) },
	{ .name = "allow_plaintext", .fn = conf_set_plaintext, .single = 1 },
	{ .name = "idle_timeout", .fn = conf_set_number,
	  .off = CONF_OFF(idle_timeout), .min = 1, .max = 86400 },
	{ .name = "auth_fail_delay_ms", .fn = conf_set_number,
	  .off = CONF_OFF(auth_fail_delay_ms), .min = 0, .max = 60000 },
	{ .name = "max_connections", .fn = conf_set_number,
	  .off = CONF_OFF(max_connections), .min = 1, .max = 1000000 },
	{ .name = "max_connections_per_ip", .fn = conf_set_number,
	  .off = CONF_OFF(max_connections_per_ip), .min = 0, .max = 1000000 },
	{ .name = "workers", .fn = conf_set_workers, .min = 1, .max = 256,
	  .single = 1 },
	{ .name = "proxy_protocol_from", .fn = conf_set_proxy, .repeat = 1 },
	{ .name = "dovecot_uidl_format", .fn = conf_set_uidlfmt,
	  .off = CONF_OFF(dovecot_uidl_format), .single = 1 },
	{ .name = "courier_uidl", .fn = conf_set_yesno,
	  .off = CONF_OFF(courier_uidl), .single = 1 },
	{ .name = "xuidl_header", .fn = conf_set_yesno,
	  .off = CONF_OFF(xuidl_header), .single = 1 },
	{ .name = "user", .fn = conf_set_string, .off = CONF_OFF(user),
	  .single = 1 },
	{ .name = "group", .fn = conf_set_string, .off = CONF_OFF(group),
	  .single = 1 },
	{ .name = "lock_stale_timeout", .fn = conf_set_number,
	  .off = CONF_OFF(lock_stale_timeout), .min = 10, .max = 86400 },
	{ .name = "login_delay", .fn = conf_set_number,
	  .off = CONF_OFF(login_delay), .min = 0, .max = 86400 },
	{ .name = "log_level", .fn = conf_set_loglevel, .single = 1 },
	{ .name = "log_format", .fn = conf_set_logformat, .single = 1 },
	{ .name = "delete_mode", .fn = conf_set_deletemode, .single = 1 },
	{ .name = "expire_days", .fn = conf_set_expire, .single = 1 },
	{ .name = "trash_days", .fn = conf_set_number,
	  .off = CONF_OFF(trash_days), .min = 0, .max = 3650 },
	{ .name = "pid_file", .fn = conf_set_string,
	  .off = CONF_OFF(pid_file) },
	{ .name = "login_timeout", .fn = conf_set_number,
	  .off = CONF_OFF(login_timeout), .min = 1, .max = 86400 },
	{ .name = "login_trusted_networks", .fn = conf_set_trusted },
	{ .name = "auth_fail_max", .fn = conf_set_number,
	  .off = CONF_OFF(auth_fail_max), .min = 1, .max = 1000 },
	/* SASL OAUTHBEARER: oauth.c checks the values. */
	{ .name = "oauth_jwt_key", .fn = conf_set_oauth, .single = 1 },
	{ .name = "oauth_jwt_secret_file", .fn = conf_set_oauth, .single = 1 },
	{ .name = "oauth_issuer", .fn = conf_set_oauth, .single = 1 },
	{ .name = "oauth_audience", .fn = conf_set_oauth, .single = 1 },
	{ .name = "oauth_username_claim", .fn = conf_set_oauth, .single = 1 },
	{ .name = "oauth_introspection_url", .fn = conf_set_oauth,
	  .single = 1 },
	{ .name = "oauth_introspection_ca", .fn = conf_set_oauth,
	  .single = 1 },
	{ .name = "oauth_introspection_timeout", .fn = conf_set_oauth,
	  .single = 1 },
	{ .name = "oauth_client_id", .fn = conf_set_oauth, .single = 1 },
	{ .name = "oauth_client_secret", .fn = conf_set_oauth, .single = 1 },
};
#define CONF_NKEYS	(sizeof(conf_keys) / sizeof(conf_keys[0]))

static int	conf_verror(struct conf_parser *, size_t, const char *,
		    va_list) __attribute__((format(printf, 3, 0)));
static int	conf_error(struct conf_parser *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
static int	conf_error_at(struct conf_parser *, size_t, const char *, ...)
		    __attribute__((format(printf, 3, 4)));

/* Write "NAME:LINE: message" (or "NAME: message" for line 0) to err. */
static int
conf_verror(struct conf_parser *p, size_t line, const char *fmt, va_list ap)
{
	int n;

	if (p->err == NULL || p->errlen == 0)
		return -1;
	if (line != 0)
		n = snprintf(p->err, p->errlen, "%s:%zu: ", p->name, line);
	else
		n = snprintf(p->err, p->errlen, "%s: ", p->name);
	if (n >= 0 && (size_t)n < p->errlen)
		vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
	return -1;
}

/* Report a problem on the line being parsed; always returns -1. */
static int
conf_error(struct conf_parser *p, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	conf_verror(p, p->line, fmt, ap);
	va_end(ap);
	return -1;
}

/* Report a problem found after parsing, at a remembered line (0: none). */
static int
conf_error_at(struct conf_parser *p, size_t line, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	conf_verror(p, line, fmt, ap);
	va_end(ap);
	return -1;
}

/* Quote untrusted file text safely for an error message. */
static const char *
conf_quote(char *buf, size_t cap, const char *s)
{
	util_log_escape(buf, cap, s, strlen(s));
	return buf;
}

static int
conf_isblank(char c)
{
	return c == ' ' || c == '\t';
}

/* Store a copy of the value in a char * field of struct config. */
static int
conf_store_string(struct conf_parser *p, const struct conf_key *k,
    const char *value)
{
	char **field = (char **)(void *)((char *)p->cf + k->off);

	free(*field);
	if ((*field = strdup(value)) == NULL)
		return conf_error(p, "out of memory");
	return 0;
}

/* Keys whose value is kept as written (paths, names, formats). */
static int
conf_set_string(struct conf_parser *p, const struct conf_key *k,
    char *value)
{
	return conf_store_string(p, k, value);
}

/* Parse a bounded decimal into an unsigned int field. */
static int
conf_set_number(struct conf_parser *p, const struct conf_key *k,
    char *value)
{
	unsigned int *field = (unsigned int *)(void *)((char *)p->cf + k->off);
	unsigned long long v;
	const char *errstr;
	char q[CONF_QUOTE_MAX];

	if (util_strtonum(value, k->min, k->max, &v, &errstr) == -1) {
		if (strcmp(errstr, "invalid") == 0)
			return conf_error(p, "%s: \"%s\" is not a number",
			    k->name, conf_quote(q, sizeof(q), value));
		return conf_error(p, "%s: %s is out of range (%llu..%llu)",
		    k->name, conf_quote(q, sizeof(q), value), k->min, k->max);
	}
	*field = (unsigned int)v;
	if (k->off == CONF_OFF(idle_timeout) && v < CONF_IDLE_RFC_MIN &&
	    p->warn != NULL && p->warnlen > 0)
		snprintf(p->warn, p->warnlen,
		    "%s:%zu: idle_timeout %llu is below the %d seconds "
		    "RFC 1939 asks for", p->name, p->line, v,
		    CONF_IDLE_RFC_MIN);
	return 0;
}

/* workers N or auto (0: one per CPU, decided at startup). */
static int
conf_set_workers(struct conf_parser *p, const struct conf_key *k,
    char *value)
{
	unsigned long long v;
	const char *errstr;
	char q[CONF_QUOTE_MAX];

	if (strcmp(value, "auto") == 0) {
		p->cf->workers = 0;
		return 0;
	}
	if (util_strtonum(value, k->min, k->max, &v, &errstr) == -1) {
		if (strcmp(errstr, "invalid") == 0)
			return conf_error(p, "%s: \"%s\" is neither a number "
			    "nor auto", k->name,
			    conf_quote(q, sizeof(q), value));
		return conf_error(p, "%s: %s is out of range (%llu..%llu)",
		    k->name, conf_quote(q, sizeof(q), value), k->min, k->max);
	}
	p->cf->workers = (unsigned int)v;
	return 0;
}

/* allow_plaintext: when USER/PASS and AUTH PLAIN need no TLS. */
static int
conf_set_plaintext(struct conf_parser *p, const struct conf_key *k,
    char *value)
{
	char q[CONF_QUOTE_MAX];

	if (strcmp(value, "yes") == 0)
		p->cf->allow_plaintext = CONF_PLAINTEXT_YES;
	else if (strcmp(value, "no") == 0)
		p->cf->allow_plaintext = CONF_PLAINTEXT_NO;
	else if (strcmp(value, "local") == 0)
		p->cf->allow_plaintext = CONF_PLAINTEXT_LOCAL;
	else
		return conf_error(p, "%s: \"%s\" is not yes, no or local",
		    k->name, conf_quote(q, sizeof(q), value));
	return 0;
}

/* log_level info or debug (evpop3d extension). */
static int
conf_set_loglevel(struct conf_parser *p, const struct conf_key *k,
    char *value)
{
	char q[CONF_QUOTE_MAX];

	if (strcmp(value, "info") == 0)
		p->cf->log_debug = 0;
	else if (strcmp(value, "debug") == 0)
		p->cf->log_debug = 1;
	else
		return conf_error(p, "%s: \"%s\" is not info or debug",
		    k->name, conf_quote(q, sizeof(q), value));
	return 0;
}

/* expire_days N or never (RFC 2449 EXPIRE). */
static int
conf_set_expire(struct conf_parser *p, const struct conf_key *k,
    char *value)
{
	unsigned long long v;
	const char *errstr;
	char q[CONF_QUOTE_MAX];

	if (strcmp(value, "never") == 0) {
		p->cf->expire_days = -1;
		return 0;
	}
	if (util_strtonum(value, 0, 3650, &v, &errstr) == -1)
		return conf_error(p, "%s: \"%s\" is not never or 0..3650",
		    k->name, conf_quote(q, sizeof(q), value));
	p->cf->expire_days = (int)v;
	return 0;
}

/* dovecot_uidl_format: checked now, so a login never meets a bad one. */
static int
conf_set_uidlfmt(struct conf_parser *p, const struct conf_key *k,
    char *value)
{
	const char *errstr;
	char q[CONF_QUOTE_MAX];

	if (strcmp(value, "none") == 0)
		return 0;
	if (migrate_format_check(value, &errstr) == -1)
		return conf_error(p, "%s: \"%s\": %s", k->name,
		    conf_quote(q, sizeof(q), value), errstr);
	return conf_set_string(p, k, value);
}

/* A yes/no key stored as an int. */
static int
conf_set_yesno(struct conf_parser *p, const struct conf_key *k,
    char *value)
{
	int *dst = (int *)(void *)((char *)p->cf + k->off);
	char q[CONF_QUOTE_MAX];

	if (strcmp(value, "yes") == 0)
		*dst = 1;
	else if (strcmp(value, "no") == 0)
		*dst = 0;
	else
		return conf_error(p, "%s: \"%s\" is not yes or no",
		    k->name, conf_quote(q, sizeof(q), value));
	return 0;
}

/* delete_mode unlink or trash (soft delete). */
static int
conf_set_deletemode(struct conf_parser *p, const struct conf_key *k,
    char *value)
{
	char q[CONF_QUOTE_MAX];

	if (strcmp(value, "unlink") == 0)
		p->cf->delete_trash = 0;
	else if (strcmp(value, "trash") == 0)
		p->cf->delete_trash = 1;
	else
		return conf_error(p, "%s: \"%s\" is not unlink or trash",
		    k->name, conf_quote(q, sizeof(q), value));
	return 0;
}

/* log_format text or json: the form of the session record. */
static int
conf_set_logformat(struct conf_parser *p, const struct conf_key *k,
    char *value)
{
	char q[CONF_QUOTE_MAX];

	if (strcmp(value, "text") == 0)
		p->cf->log_json = 0;
	else if (strcmp(value, "json") == 0)
		p->cf->log_json = 1;
	else
		return conf_error(p, "%s: \"%s\" is not text or json",
		    k->name, conf_quote(q, sizeof(q), value));
	return 0;
}

/*
 * Check a mail_location template: an absolute path whose escapes are all
 * known, with at least one that depends on the user (else every user would
 * share one Maildir).
 */
static int
conf_set_location(struct conf_parser *p, const struct conf_key *k,
    char *value)
{
	const char *s;
	int peruser = 0;
	char q[CONF_QUOTE_MAX];

	if (value[0] != '/')
		return conf_error(p, "%s: \"%s\" is not an absolute path",
		    k->name, conf_quote(q, sizeof(q), value));
	for (s = value; *s != '\0'; s++) {
		if (*s != '%')
			continue;
		s++;
		switch (*s) {
		case 'u':
		case 'n':
		case 'd':
			peruser = 1;
			break;
		case '%':
			break;
		case '\0':
			return conf_error(p, "%s: \"%s\" ends in a lone %%",
			    k->name, conf_quote(q, sizeof(q), value));
		default:
			q[0] = '%';
			util_log_escape(q + 1, sizeof(q) - 1, s, 1);
			return conf_error(p, "%s: unknown escape \"%s\" "
			    "(use %%u, %%n, %%d or %%%%)", k->name, q);
		}
	}
	if (!peruser)
		return conf_error(p, "%s: \"%s\" contains none of "
		    "%%u, %%n, %%d", k->name, conf_quote(q, sizeof(q), value));
	return conf_store_string(p, k, value);
}

/* The oauth_* keys (OAUTHBEARER): stored and checked by oauth.c. */
static int
conf_set_oauth(struct conf_parser *p, const struct conf_key *k,
    char *value)
{
	char msg[256];

	if (p->cf->oauth == NULL && (p->cf->oauth = oauth_conf_new()) == NULL)
		return conf_error(p, "out of memory");
	if (oauth_conf_set(p->cf->oauth, k->name, value, msg,
	    sizeof(msg)) == -1)
		return conf_error(p, "%s", msg);
	return 0;
}

/* Same address and port (and IPv6 scope) as an existing listener? */
static int
conf_listen_dup(const struct config *cf, const struct sockaddr_storage *ss)
{
	const struct sockaddr_in *a4 = (const struct sockaddr_in *)ss, *b4;
	const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)ss, *b6;
	size_t i;

	for (i = 0; i < cf->nlistens; i++) {
		if (cf->listens[i].ss.ss_family != ss->ss_family)
			continue;
		if (ss->ss_family == AF_INET) {
			b4 = (const struct sockaddr_in *)&cf->listens[i].ss;
			if (a4->sin_port == b4->sin_port &&
			    a4->sin_addr.s_addr == b4->sin_addr.s_addr)
				return 1;
		} else {
			b6 = (const struct sockaddr_in6 *)&cf->listens[i].ss;
			if (a6->sin6_port == b6->sin6_port &&
			    a6->sin6_scope_id == b6->sin6_scope_id &&
			    memcmp(&a6->sin6_addr, &b6->sin6_addr,
			    sizeof(a6->sin6_addr)) == 0)
				return 1;
		}
	}
	return 0;
}

/*
 * Parse "1.2.3.4:110" or "[::1]:110" (numeric only) into a sockaddr.
 * Returns 0 or -1 with a short reason in *why.
 */
static int
conf_parse_hostport(const char *text, struct sockaddr_storage *ss,
    socklen_t *sslen, const char **why)
{
	char buf[sizeof(((struct conf_listen *)NULL)->text)];
	char *host, *port, *end;
	unsigned char probe[sizeof(struct in6_addr)];
	struct addrinfo hints, *res;
	int family;

	*why = "expected ADDR:PORT or [ADDR6]:PORT";
	if (strlen(text) >= sizeof(buf))
		return -1;
	memcpy(buf, text, strlen(text) + 1);
	if (buf[0] == '[') {
		host = buf + 1;
		if ((end = strchr(host, ']')) == NULL || end[1] != ':')
			return -1;
		*end = '\0';
		port = end + 2;
		family = AF_INET6;
	} else {
		if ((end = strrchr(buf, ':')) == NULL)
			return -1;
		*end = '\0';
		host = buf;
		port = end + 1;
		if (strchr(host, ':') != NULL) {
			*why = "an IPv6 address needs brackets: [ADDR6]:PORT";
			return -1;
		}
		family = AF_INET;
	}
	if (*host == '\0')
		return -1;
	if (util_strtonum(port, 1, 65535, NULL, NULL) == -1) {
		*why = "the port must be a number from 1 to 65535";
		return -1;
	}
	/* inet_pton first: getaddrinfo would also take "127.1" or "0x7f.1". */
	if (family == AF_INET && inet_pton(AF_INET, host, probe) != 1) {
		*why = "not a numeric IPv4 address";
		return -1;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = family;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
	if (getaddrinfo(host, port, &hints, &res) != 0) {
		*why = family == AF_INET6 ? "not a numeric IPv6 address" :
		    "not a numeric IPv4 address";
		return -1;
	}
	if (res->ai_addrlen > sizeof(*ss)) {
		freeaddrinfo(res);
		return -1;
	}
	memset(ss, 0, sizeof(*ss));
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*sslen = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

/* Append a listen or listen_tls address to the listener list. */
static int
conf_set_listen(struct conf_parser *p, const struct conf_key *k,
    char *value)
{
	struct config *cf = p->cf;
	struct conf_listen *l, *nl;
	struct sockaddr_storage ss;
	socklen_t sslen;
	const char *why;
	char q[CONF_QUOTE_MAX];

	if (conf_parse_hostport(value, &ss, &sslen, &why) == -1)
		return conf_error(p, "%s: \"%s\": %s", k->name,
		    conf_quote(q, sizeof(q), value), why);
	if (conf_listen_dup(cf, &ss))
		return conf_error(p, "%s: %s is already a listener", k->name,
		    value);
	nl = reallocarray(cf->listens, cf->nlistens + 1, sizeof(*nl));
	if (nl == NULL)
		return conf_error(p, "out of memory");
	cf->listens = nl;
	l = &cf->listens[cf->nlistens++];
	memset(l, 0, sizeof(*l));
	l->ss = ss;
	l->sslen = sslen;
	l->tls = strcmp(k->name, "listen_tls") == 0;
	/* conf_parse_hostport refused anything longer than text. */
	memcpy(l->text, value, strlen(value) + 1);
	if (l->tls && p->tls_listen_line == 0)
		p->tls_listen_line = p->line;
	return 0;
}

/* Parse one "ADDR[/PREFIX]" word; host bits past the prefix are cleared. */
static int
conf_parse_cidr(const char *word, struct conf_cidr *c)
{
	char buf[INET6_ADDRSTRLEN + 8];
	char *slash;
	unsigned long long prefix;
	unsigned int maxbits, i;

	if (strlen(word) >= sizeof(buf))
		return -1;
	memcpy(buf, word, strlen(word) + 1);
	if ((slash = strchr(buf, '/')) != NULL)
		*slash++ = '\0';
	memset(c, 0, sizeof(*c));
	if (strchr(buf, ':') != NULL) {
		c->family = AF_INET6;
		maxbits = 128;
	} else {
		c->family = AF_INET;
		maxbits = 32;
	}
	if (inet_pton(c->family, buf, c->addr) != 1)
		return -1;
	if (slash == NULL)
		prefix = maxbits;
	else if (util_strtonum(slash, 0, maxbits, &prefix, NULL) == -1)
		return -1;
	c->prefix = (unsigned int)prefix;
	for (i = 0; i < maxbits / 8; i++) {
		if (i * 8 >= prefix)
			c->addr[i] = 0;
		else if (i * 8 + 8 > prefix)
			c->addr[i] &= (unsigned char)(0xff << (8 - (prefix -
			    i * 8)));
	}
	return 0;
}

/* Add every CIDR of a proxy_protocol_from line. */
static int
conf_set_proxy(struct conf_parser *p, const struct conf_key *k,
    char *value)
{
	struct config *cf = p->cf;
	struct conf_cidr c, *nc;
	char *word, *save = NULL;
	char q[CONF_QUOTE_MAX];

	for (word = strtok_r(value, " \t", &save); word != NULL;
	    word = strtok_r(NULL, " \t", &save)) {
		if (conf_parse_cidr(word, &c) == -1)
			return conf_error(p, "%s: \"%s\" is not an address or "
			    "CIDR", k->name, conf_quote(q, sizeof(q), word));
		nc = reallocarray(cf->proxy_from, cf->nproxy_from + 1,
		    sizeof(*nc));
		if (nc == NULL)
			return conf_error(p, "out of memory");
		cf->proxy_from = nc;
		cf->proxy_from[cf->nproxy_from++] = c;
	}
	return 0;
}

/* login_trusted_networks: CIDRs exempt from the growing failure delay,
 * or "none". */
static int
conf_set_trusted(struct conf_parser *p, const struct conf_key *k,
    char *value)
{
	struct config *cf = p->cf;
	struct conf_cidr c, *nc;
	char *word, *save = NULL;
	char q[CONF_QUOTE_MAX];

	cf->trusted_set = 1;
	if (strcmp(value, "none") == 0)
		return 0;
	for (word = strtok_r(value, " \t", &save); word != NULL;
	    word = strtok_r(NULL, " \t", &save)) {
		if (conf_parse_cidr(word, &c) == -1)
			return conf_error(p, "%s: \"%s\" is not an address or "
			    "CIDR", k->name, conf_quote(q, sizeof(q), word));
		nc = reallocarray(cf->trusted, cf->ntrusted + 1, sizeof(*nc));
		if (nc == NULL)
			return conf_error(p, "out of memory");
		cf->trusted = nc;
		cf->trusted[cf->ntrusted++] = c;
	}
	return 0;
}

/*
 * Split one line into key and value (comments and surrounding blanks
 * removed) and hand the value to the key's parser.
 */
static int
conf_line(struct conf_parser *p, char *s)
{
	const struct conf_key *k = NULL;
	char *key, *value, *e;
	size_t i;
	char q[CONF_QUOTE_MAX];

	for (e = s; *e != '\0'; e++) {
		if (*e == '\r' && e[1] == '\0')
			*e = '\0';
		else if ((unsigned char)*e < 0x20 && *e != '\t')
			return conf_error(p, "control character 0x%02x",
			    (unsigned char)*e);
		else if (*e == 0x7f)
			return conf_error(p, "control character 0x7f");
	}
	while (conf_isblank(*s))
		s++;
	for (e = s; *e != '\0'; e++) {
		if (*e == '#' && (e == s || conf_isblank(e[-1]))) {
			*e = '\0';
			break;
		}
	}
	while (e > s && conf_isblank(e[-1]))
		*--e = '\0';
	if (*s == '\0')
		return 0;

	key = s;
	for (value = s; *value != '\0' && !conf_isblank(*value); value++)
		;
	if (*value != '\0')
		*value++ = '\0';
	while (conf_isblank(*value))
		value++;

	for (i = 0; i < CONF_NKEYS; i++) {
		if (strcmp(conf_keys[i].name, key) == 0) {
			k = &conf_keys[i];
			break;
		}
	}
	if (k == NULL)
		return conf_error(p, "unknown key \"%s\"",
		    conf_quote(q, sizeof(q), key));
	if (*value == '\0')
		return conf_error(p, "%s: missing value", k->name);
	if (!k->repeat && p->seen[i] != 0)
		return conf_error(p, "%s given twice (first on line %zu)",
		    k->name, p->seen[i]);
	if (p->seen[i] == 0)
		p->seen[i] = p->line;
	if (k->single && strpbrk(value, " \t") != NULL)
		return conf_error(p, "%s: one value expected, got \"%s\"",
		    k->name, conf_quote(q, sizeof(q), value));
	return k->fn(p, k, value);
}

/* Line a key was first seen on, or 0. */
static size_t
conf_seen(const struct conf_parser *p, const char *name)
{
	size_t i;

	for (i = 0; i < CONF_NKEYS; i++)
		if (strcmp(conf_keys[i].name, name) == 0)
			return p->seen[i];
	return 0;
}

/* Is one of the files the config names missing or unreadable? */
static int
conf_check_file(struct conf_parser *p, const char *key, const char *path)
{
	if (path == NULL)
		return 0;
	if (access(path, R_OK) == -1)
		return conf_error_at(p, conf_seen(p, key), "%s %s: %s", key,
		    path, strerror(errno));
	return 0;
}

/* Checks that need the whole file: pairs, requirements, defaults. */
static int
conf_finish(struct conf_parser *p, int check_files)
{
	struct config *cf = p->cf;
	struct conf_listen *l;
	struct sockaddr_in *sin;

	if (cf->tls_cert != NULL && cf->tls_key == NULL)
		return conf_error_at(p, conf_seen(p, "tls_cert"),
		    "tls_cert given without tls_key");
	if (cf->tls_key != NULL && cf->tls_cert == NULL)
		return conf_error_at(p, conf_seen(p, "tls_key"),
		    "tls_key given without tls_cert");
	if (p->tls_listen_line != 0 && cf->tls_cert == NULL)
		return conf_error_at(p, p->tls_listen_line,
		    "listen_tls needs tls_cert and tls_key");
	if (cf->passwd_file == NULL)
		return conf_error_at(p, 0, "passwd_file is required");
	if (cf->mail_location == NULL)
		return conf_error_at(p, 0, "mail_location is required");
	if (cf->nlistens == 0) {
		if ((cf->listens = calloc(1, sizeof(*l))) == NULL)
			return conf_error_at(p, 0, "out of memory");
		l = &cf->listens[0];
		sin = (struct sockaddr_in *)&l->ss;
		sin->sin_family = AF_INET;
		sin->sin_port = htons(110);
		sin->sin_addr.s_addr = htonl(INADDR_ANY);
		l->sslen = sizeof(*sin);
		snprintf(l->text, sizeof(l->text), "0.0.0.0:110");
		cf->nlistens = 1;
	}
	if (cf->oauth != NULL) {
		char msg[512];
		const char *key;
		size_t line = 0, i;

		if (oauth_conf_finish(cf->oauth, check_files, msg, sizeof(msg),
		    &key) == -1) {
			if (key != NULL)
				line = conf_seen(p, key);
			/* Else the first oauth_* line. */
			for (i = 0; key == NULL && i < CONF_NKEYS; i++)
				if (conf_keys[i].fn == conf_set_oauth &&
				    p->seen[i] != 0 && (line == 0 ||
				    p->seen[i] < line))
					line = p->seen[i];
			return conf_error_at(p, line, "%s", msg);
		}
	}
	if (check_files) {
		if (conf_check_file(p, "passwd_file", cf->passwd_file) == -1 ||
		    conf_check_file(p, "tls_cert", cf->tls_cert) == -1 ||
		    conf_check_file(p, "tls_key", cf->tls_key) == -1)
			return -1;
	}
	return 0;
}

/* Parse a whole file's text; the common body of conf_load and conf_parse. */
static struct config *
conf_parse_text(const char *name, const char *text, size_t len,
    int check_files, char *err, size_t errlen, char *warn, size_t warnlen)
{
	struct conf_parser p;
	struct config *cf;
	size_t seen[CONF_NKEYS];
	char *buf = NULL, *line, *nl;
	const char *z;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (warn != NULL && warnlen > 0)
		warn[0] = '\0';
	memset(&p, 0, sizeof(p));
	memset(seen, 0, sizeof(seen));
	p.name = name;
	p.err = err;
	p.errlen = errlen;
	p.warn = warn;
	p.warnlen = warnlen;
	p.seen = seen;
	if (text == NULL)
		len = 0;

	if ((cf = calloc(1, sizeof(*cf))) == NULL ||
	    (cf->path = strdup(name)) == NULL ||
	    (buf = malloc(len + 1)) == NULL) {
		conf_error_at(&p, 0, "out of memory");
		goto fail;
	}
	p.cf = cf;
	cf->allow_plaintext = CONF_PLAINTEXT_LOCAL;
	cf->idle_timeout = CONF_IDLE_RFC_MIN;
	cf->auth_fail_delay_ms = 1000;
	cf->max_connections = 10000;
	cf->max_connections_per_ip = 0;
	cf->workers = 0;
	cf->lock_stale_timeout = LOCK_STALE_SEC_DEFAULT;
	cf->login_delay = 0;
	cf->log_debug = 0;
	cf->login_timeout = 60;
	cf->trash_days = 7;
	cf->expire_days = -1;
	cf->auth_fail_max = 3;

	if (len > 0)
		memcpy(buf, text, len);
	buf[len] = '\0';
	if ((z = memchr(buf, '\0', len)) != NULL) {
		for (p.line = 1, line = buf; line < z; line++)
			if (*line == '\n')
				p.line++;
		conf_error(&p, "NUL byte in the file");
		goto fail;
	}
	for (line = buf, p.line = 1; *line != '\0'; line = nl + 1, p.line++) {
		if ((nl = strchr(line, '\n')) != NULL)
			*nl = '\0';
		if (conf_line(&p, line) == -1)
			goto fail;
		if (nl == NULL)
			break;
	}
	if (conf_finish(&p, check_files) == -1)
		goto fail;
	free(buf);
	return cf;

fail:
	free(buf);
	conf_free(cf);
	if (warn != NULL && warnlen > 0)
		warn[0] = '\0';
	return NULL;
}

struct config *
conf_parse(const char *name, const char *text, size_t len, char *err,
    size_t errlen, char *warn, size_t warnlen)
{
	return conf_parse_text(name, text, len, 0, err, errlen, warn, warnlen);
}

/* Report a problem reading the file itself, "PATH: problem". */
static void
conf_load_error(char *err, size_t errlen, const char *path, const char *why)
{
	if (err != NULL && errlen > 0)
		snprintf(err, errlen, "%s: %s", path, why);
}

/* Read the file whole (it is small), then parse it. */
struct config *
conf_load(const char *path, int check_files, char *err, size_t errlen,
    char *warn, size_t warnlen)
{
	struct config *cf;
	char *buf = NULL, *nb;
	size_t len = 0, cap = 0;
	ssize_t n;
	int fd;

	if (warn != NULL && warnlen > 0)
		warn[0] = '\0';
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		conf_load_error(err, errlen, path, strerror(errno));
		return NULL;
	}
	for (;;) {
		if (len == cap) {
			if (cap >= CONF_FILE_MAX) {
				conf_load_error(err, errlen, path,
				    "larger than 1 MiB");
				goto fail;
			}
			cap = cap == 0 ? 4096 : cap * 2;
			if ((nb = realloc(buf, cap)) == NULL) {
				conf_load_error(err, errlen, path,
				    "out of memory");
				goto fail;
			}
			buf = nb;
		}
		n = read(fd, buf + len, cap - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			conf_load_error(err, errlen, path, strerror(errno));
			goto fail;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	cf = conf_parse_text(path, buf, len, check_files, err, errlen, warn,
	    warnlen);
	free(buf);
	return cf;

fail:
	close(fd);
	free(buf);
	return NULL;
}

void
conf_free(struct config *cf)
{
	if (cf == NULL)
		return;
	free(cf->path);
	free(cf->listens);
	free(cf->tls_cert);
	free(cf->tls_key);
	free(cf->passwd_file);
	free(cf->mail_location);
	free(cf->proxy_from);
	free(cf->dovecot_uidl_format);
	free(cf->user);
	free(cf->group);
	free(cf->pid_file);
	free(cf->trusted);
	oauth_conf_unref(cf->oauth);
	free(cf);
}

/* Append n bytes to out at *o, failing instead of truncating. */
static int
conf_append(char *out, size_t outlen, size_t *o, const char *s, size_t n)
{
	if (n >= outlen - *o)
		return -1;
	memcpy(out + *o, s, n);
	*o += n;
	out[*o] = '\0';
	return 0;
}

/* Build a user's Maildir path; -1 rather than a truncated path. */
int
conf_expand_location(const char *tmpl, const char *user, char *out,
    size_t outlen)
{
	const char *at, *s;
	size_t o = 0, ulen;
	int r;

	if (tmpl == NULL || user == NULL || out == NULL || outlen == 0)
		return -1;
	out[0] = '\0';
	ulen = strlen(user);
	at = strchr(user, '@');
	for (s = tmpl; *s != '\0'; s++) {
		if (*s != '%') {
			r = conf_append(out, outlen, &o, s, 1);
		} else {
			switch (*++s) {
			case 'u':
				r = conf_append(out, outlen, &o, user, ulen);
				break;
			case 'n':
				r = conf_append(out, outlen, &o, user,
				    at != NULL ? (size_t)(at - user) : ulen);
				break;
			case 'd':
				r = at == NULL ? 0 : conf_append(out, outlen,
				    &o, at + 1, strlen(at + 1));
				break;
			case '%':
				r = conf_append(out, outlen, &o, "%", 1);
				break;
			default:
				r = -1;
				break;
			}
		}
		if (r == -1) {
			out[0] = '\0';
			return -1;
		}
	}
	return 0;
}

/*
 * Turn an address into the IPv6 form, IPv4 as ::ffff:a.b.c.d, so that one
 * comparison serves IPv4, IPv6 and IPv4-mapped peers.  Returns the number
 * of leading bits added by the mapping (96 for IPv4), or -1.
 */
static int
conf_addr_v6(int family, const void *addr, unsigned char out[16])
{
	memset(out, 0, 16);
	if (family == AF_INET) {
		out[10] = 0xff;
		out[11] = 0xff;
		memcpy(out + 12, addr, 4);
		return 96;
	}
	if (family == AF_INET6) {
		memcpy(out, addr, 16);
		return 0;
	}
	return -1;
}

/* Do the first bits bits of a and b agree? */
static int
conf_prefix_match(const unsigned char *a, const unsigned char *b,
    unsigned int bits)
{
	unsigned int full = bits / 8, rest = bits % 8;
	unsigned char mask;

	if (memcmp(a, b, full) != 0)
		return 0;
	if (rest == 0)
		return 1;
	mask = (unsigned char)(0xff << (8 - rest));
	return (a[full] & mask) == (b[full] & mask);
}

/* Compare in one IPv6 space so mapped peers meet IPv4 CIDRs. */
/* Is addr inside one of the n CIDRs of list? */
static int
conf_cidr_match(const struct conf_cidr *list, size_t n,
    const struct sockaddr *addr)
{
	unsigned char peer[16], net[16];
	const struct sockaddr_in *sin;
	const struct sockaddr_in6 *sin6;
	const void *raw;
	size_t i;
	int off;

	if (addr == NULL)
		return 0;
	if (addr->sa_family == AF_INET) {
		sin = (const struct sockaddr_in *)(const void *)addr;
		raw = &sin->sin_addr;
	} else if (addr->sa_family == AF_INET6) {
		sin6 = (const struct sockaddr_in6 *)(const void *)addr;
		raw = &sin6->sin6_addr;
	} else
		return 0;
	if (conf_addr_v6(addr->sa_family, raw, peer) == -1)
		return 0;
	for (i = 0; i < n; i++) {
		off = conf_addr_v6(list[i].family, list[i].addr, net);
		if (off == -1)
			continue;
		if (conf_prefix_match(peer, net,
		    (unsigned int)off + list[i].prefix))
			return 1;
	}
	return 0;
}

int
conf_proxy_trusted(const struct config *cf, const struct sockaddr *addr)
{
	if (cf == NULL)
		return 0;
	return conf_cidr_match(cf->proxy_from, cf->nproxy_from, addr);
}

int
conf_login_trusted(const struct config *cf, const struct sockaddr *addr)
{
	static const struct conf_cidr loopback[2] = {
		{ AF_INET, { 127 }, 8 },
		{ AF_INET6, { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1 },
		  128 },
	};

	if (cf == NULL)
		return 0;
	if (!cf->trusted_set)
		return conf_cidr_match(loopback, 2, addr);
	return conf_cidr_match(cf->trusted, cf->ntrusted, addr);
}
