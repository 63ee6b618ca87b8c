/* SPDX-License-Identifier: ISC */
/*
 * evpop3d - migrate.c: UIDLs and order imported from the server a Maildir
 * was served by before (migrate.h): Dovecot's dovecot-uidlist expanded
 * with its pop3_uidl_format, Courier's courierpop3dsizelist, qpopper-style
 * X-UIDL: headers, and evpop3d.uidls, where the first import is kept.
 * The login hook (migrate_apply) edits the snapshot maildir_open built.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/ssl.h>

#include "auth.h"
#include "conf.h"
#include "lock.h"
#include "maildir.h"
#include "migrate.h"
#include "util.h"

#define MIGRATE_STATE_MAGIC	"evpop3d-uidls 1\n"
#define MIGRATE_STATE_TMP	"evpop3d.uidls.tmp"
/* Source files bigger than this are not believed (10M messages). */
#define MIGRATE_FILE_MAX	(1024L * 1024 * 1024)
/* Octets of a message read to find its X-UIDL: header field. */
#define MIGRATE_HEADER_MAX	(16 * 1024)
/* Source ranks: Dovecot's messages first, then Courier's, then X-UIDL. */
#define MIGRATE_RANK_SHIFT	60

/* A message of the snapshot during migrate_apply. */
struct migrate_slot {
	size_t		 idx;		/* in the snapshot */
	const struct migrate_entry *e;	/* imported, or NULL */
};

/* Open-addressing set of UIDL strings (not owned). */
struct migrate_set {
	const char	**v;
	size_t		 mask;
};

static char	*migrate_slurp(int, const char *, size_t *);
static int	 migrate_add(struct migrate_map *, const char *, size_t,
		    const char *, size_t, uint64_t);
static int	 migrate_cmp_base(const void *, const void *);
static int	 migrate_cmp_order(const void *, const void *);

void
migrate_opts_from_conf(struct migrate_opts *o, const struct config *cf)
{
	memset(o, 0, sizeof(*o));
	if (cf->dovecot_uidl_format != NULL)
		snprintf(o->dovecot_fmt, sizeof(o->dovecot_fmt), "%s",
		    cf->dovecot_uidl_format);
	o->courier = cf->courier_uidl;
	o->xuidl = cf->xuidl_header;
}

int
migrate_enabled(const struct migrate_opts *o)
{
	return o != NULL && (o->dovecot_fmt[0] != '\0' || o->courier ||
	    o->xuidl);
}

int
migrate_uidl_valid(const char *s, size_t len)
{
	size_t i;

	if (len < 1 || len > MAILDIR_UIDL_MAX)
		return 0;
	for (i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
			return 0;
	return 1;
}

/* One %-directive of a format, parsed. */
struct migrate_dir {
	long		 offset;	/* from the start, or the end if < 0 */
	size_t		 width;		/* 0: whole value */
	int		 zero;		/* pad with '0' up to width */
	char		 mods[8];	/* L U X R, applied in order */
	char		 var;		/* u v f g m or '%' */
};

/*
 * Parse the directive after a '%' at *pp (Dovecot's var_expand syntax:
 * [-][0]digits[.[-]digits] modifiers variable).  Returns 0 and advances
 * *pp, or -1 with *errstr.
 */
static int
migrate_parse_dir(const char **pp, struct migrate_dir *d,
    const char **errstr)
{
	const char *p = *pp, *e;
	long n = 0, sign = 1;
	size_t nm = 0, len;

	memset(d, 0, sizeof(*d));
	if (*p == '%') {
		d->var = '%';
		*pp = p + 1;
		return 0;
	}
	if (*p == '-') {
		sign = -1;
		p++;
	}
	if (*p == '0')
		d->zero = 1;
	while (isdigit((unsigned char)*p) && n < 100000)
		n = n * 10 + (*p++ - '0');
	if (*p == '.') {
		d->offset = sign * n;
		d->zero = 0;
		p++;
		sign = 1;
		if (*p == '-') {
			sign = -1;
			p++;
		}
		n = 0;
		while (isdigit((unsigned char)*p) && n < 100000)
			n = n * 10 + (*p++ - '0');
	}
	d->width = (size_t)n;
	while (*p != '\0' && strchr("LUXR", *p) != NULL) {
		if (nm + 1 >= sizeof(d->mods)) {
			*errstr = "too many modifiers";
			return -1;
		}
		d->mods[nm++] = *p++;
	}
	if (*p != '\0' && strchr("EHNMDST", *p) != NULL && p[1] != '\0' &&
	    p[1] != '}') {
		*errstr = "unsupported modifier (only L, U, X and R)";
		return -1;
	}
	if (*p == '{') {
		if ((e = strchr(p, '}')) == NULL) {
			*errstr = "unterminated %{";
			return -1;
		}
		len = (size_t)(e - p - 1);
		if (len == 3 && memcmp(p + 1, "uid", 3) == 0)
			d->var = 'u';
		else if (len == 11 && memcmp(p + 1, "uidvalidity", 11) == 0)
			d->var = 'v';
		else if (len == 3 && memcmp(p + 1, "md5", 3) == 0)
			d->var = 'm';
		else if (len == 8 && memcmp(p + 1, "filename", 8) == 0)
			d->var = 'f';
		else if (len == 4 && memcmp(p + 1, "guid", 4) == 0)
			d->var = 'g';
		else {
			*errstr = "unknown %{variable} (uid, uidvalidity, "
			    "filename, guid)";
			return -1;
		}
		p = e + 1;
	} else if (*p != '\0' && strchr("uvfgm", *p) != NULL)
		d->var = *p++;
	else {
		*errstr = "unknown variable (%u, %v, %f, %g)";
		return -1;
	}
	if (d->var == 'm') {
		*errstr = "%m (header MD5) is not supported: Dovecot's Maildir "
		    "storage cannot show it either";
		return -1;
	}
	*pp = p;
	return 0;
}

int
migrate_format_check(const char *fmt, const char **errstr)
{
	struct migrate_dir d;
	const char *p = fmt;
	int vars = 0;

	if (strlen(fmt) >= MIGRATE_FMT_MAX) {
		*errstr = "format too long";
		return -1;
	}
	while (*p != '\0') {
		if (*p++ != '%')
			continue;
		if (migrate_parse_dir(&p, &d, errstr) == -1)
			return -1;
		if (d.var != '%')
			vars++;
	}
	if (vars == 0) {
		*errstr = "the format names no variable (%u, %v, %f, %g)";
		return -1;
	}
	return 0;
}

/* Apply one directive's modifiers, offset and width to v (NUL-terminated
 * in a buffer of vsize octets). */
static void
migrate_modify(const struct migrate_dir *d, char *v, size_t vsize)
{
	unsigned long long n;
	char *end, tmp[MIGRATE_FMT_MAX * 4];
	size_t i, len, start, pad;
	const char *m;

	for (m = d->mods; *m != '\0'; m++) {
		len = strlen(v);
		switch (*m) {
		case 'L':
			for (i = 0; i < len; i++)
				v[i] = tolower((unsigned char)v[i]);
			break;
		case 'U':
			for (i = 0; i < len; i++)
				v[i] = toupper((unsigned char)v[i]);
			break;
		case 'X':
			/* Dovecot prints hex with lower-case digits. */
			errno = 0;
			n = strtoull(v, &end, 10);
			if (len > 0 && *end == '\0' && errno == 0)
				snprintf(v, vsize, "%llx", n);
			break;
		case 'R':
			for (i = 0; i < len / 2; i++) {
				char c = v[i];
				v[i] = v[len - 1 - i];
				v[len - 1 - i] = c;
			}
			break;
		}
	}
	len = strlen(v);
	if (d->offset < 0)
		start = (size_t)-d->offset >= len ? 0 : len - (size_t)-d->offset;
	else
		start = (size_t)d->offset >= len ? len : (size_t)d->offset;
	memmove(v, v + start, len - start + 1);
	len -= start;
	if (d->zero && len < d->width && d->width < sizeof(tmp) &&
	    d->width < vsize) {
		pad = d->width - len;
		memset(tmp, '0', pad);
		memcpy(tmp + pad, v, len + 1);
		memcpy(v, tmp, d->width + 1);
	} else if (!d->zero && d->width > 0 && len > d->width)
		v[d->width] = '\0';
}

int
migrate_format_expand(const char *fmt, const struct migrate_vars *vars,
    char *out, size_t outlen)
{
	struct migrate_dir d;
	const char *p = fmt, *es;
	char v[MIGRATE_FMT_MAX * 4];
	size_t o = 0, len;

	while (*p != '\0') {
		if (*p != '%') {
			if (o + 1 >= outlen)
				return -1;
			out[o++] = *p++;
			continue;
		}
		p++;
		if (migrate_parse_dir(&p, &d, &es) == -1)
			return -1;
		switch (d.var) {
		case '%':
			snprintf(v, sizeof(v), "%%");
			break;
		case 'u':
			snprintf(v, sizeof(v), "%llu", vars->uid);
			break;
		case 'v':
			snprintf(v, sizeof(v), "%llu", vars->uidvalidity);
			break;
		case 'f':
		case 'g':
			if (d.var == 'f' || vars->guid == NULL)
				len = vars->filename_len;
			else
				len = vars->guid_len;
			if (len >= sizeof(v) / 2)
				return -1;
			memcpy(v, d.var == 'f' || vars->guid == NULL ?
			    vars->filename : vars->guid, len);
			v[len] = '\0';
			break;
		default:
			return -1;
		}
		migrate_modify(&d, v, sizeof(v));
		len = strlen(v);
		if (o + len >= outlen)
			return -1;
		memcpy(out + o, v, len);
		o += len;
	}
	if (o >= outlen)
		return -1;
	out[o] = '\0';
	return (int)o;
}

/* Append an entry (base name up to ':'); duplicates are left for the
 * caller's lookup to ignore.  Returns 1, 0 if unusable, -1 (ENOMEM). */
static int
migrate_add(struct migrate_map *m, const char *base, size_t blen,
    const char *uidl, size_t ulen, uint64_t order)
{
	struct migrate_entry *nv, *e;
	size_t ncap;

	blen = strnlen(base, blen);
	if (memchr(base, ':', blen) != NULL)
		blen = (size_t)((const char *)memchr(base, ':', blen) - base);
	if (blen == 0 || memchr(base, '/', blen) != NULL ||
	    !migrate_uidl_valid(uidl, ulen))
		return 0;
	if (m->n == m->cap) {
		ncap = m->cap == 0 ? 64 : m->cap * 2;
		if ((nv = reallocarray(m->v, ncap, sizeof(*nv))) == NULL)
			return -1;
		m->v = nv;
		m->cap = ncap;
	}
	e = &m->v[m->n];
	if ((e->base = strndup(base, blen)) == NULL)
		return -1;
	memcpy(e->uidl, uidl, ulen);
	e->uidl[ulen] = '\0';
	e->order = order;
	m->n++;
	return 1;
}

/* Add a retired UIDL (invalid ones are ignored).  Returns 0 or -1. */
static int
migrate_retire(struct migrate_map *m, const char *uidl, size_t len)
{
	size_t ncap, *no;
	char *nb;

	if (!migrate_uidl_valid(uidl, len))
		return 0;
	if (m->nretired == m->roffcap) {
		ncap = m->roffcap == 0 ? 256 : m->roffcap * 2;
		if ((no = reallocarray(m->roff, ncap, sizeof(*no))) == NULL)
			return -1;
		m->roff = no;
		m->roffcap = ncap;
	}
	if (m->rlen + len + 1 > m->rcap) {
		ncap = m->rcap == 0 ? 4096 : m->rcap;
		while (m->rlen + len + 1 > ncap)
			ncap *= 2;
		if ((nb = realloc(m->rbuf, ncap)) == NULL)
			return -1;
		m->rbuf = nb;
		m->rcap = ncap;
	}
	memcpy(m->rbuf + m->rlen, uidl, len);
	m->rbuf[m->rlen + len] = '\0';
	m->roff[m->nretired++] = m->rlen;
	m->rlen += len + 1;
	return 0;
}

static int
migrate_cmp_ull(const void *a, const void *b)
{
	unsigned long long x = *(const unsigned long long *)a;
	unsigned long long y = *(const unsigned long long *)b;

	return x < y ? -1 : x > y;
}

/*
 * Retire the UIDL of every UID in [1, next) not in seen (n of them,
 * sorted here), the newest MIGRATE_RETIRED_MAX at most; fmt is a
 * pop3_uidl_format or NULL for Courier's "UID<n>-<uidv>".
 */
static int
migrate_retire_gaps(struct migrate_map *m, unsigned long long *seen,
    size_t n, unsigned long long next, unsigned long long uidv,
    const char *fmt)
{
	struct migrate_vars vars;
	char uidl[MAILDIR_UIDL_MAX + 8];
	unsigned long long u, first;
	size_t i = 0;
	int len;

	if (n > 1)
		qsort(seen, n, sizeof(*seen), migrate_cmp_ull);
	first = next > MIGRATE_RETIRED_MAX ? next - MIGRATE_RETIRED_MAX : 1;
	memset(&vars, 0, sizeof(vars));
	vars.uidvalidity = uidv;
	for (u = first; u < next; u++) {
		while (i < n && seen[i] < u)
			i++;
		if (i < n && seen[i] == u)
			continue;
		vars.uid = u;
		if (fmt != NULL)
			len = migrate_format_expand(fmt, &vars, uidl,
			    sizeof(uidl));
		else if (uidv != 0)
			len = snprintf(uidl, sizeof(uidl), "UID%llu-%llu", u,
			    uidv);
		else
			len = snprintf(uidl, sizeof(uidl), "UID%llu", u);
		if (len > 0 && migrate_retire(m, uidl, (size_t)len) == -1)
			return -1;
	}
	return 0;
}

/* Does fmt name %f or %g (UIDLs of deleted messages then unknowable)? */
static int
migrate_format_names(const char *fmt)
{
	struct migrate_dir d;
	const char *p = fmt, *es;

	while (*p != '\0') {
		if (*p++ != '%')
			continue;
		if (migrate_parse_dir(&p, &d, &es) == -1)
			return 1;
		if (d.var == 'f' || d.var == 'g')
			return 1;
	}
	return 0;
}

/* Append uid to the growing array *seen. */
static int
migrate_seen(unsigned long long **seen, size_t *n, size_t *cap,
    unsigned long long uid)
{
	unsigned long long *nv;
	size_t ncap;

	if (*n == *cap) {
		ncap = *cap == 0 ? 256 : *cap * 2;
		if ((nv = reallocarray(*seen, ncap, sizeof(*nv))) == NULL)
			return -1;
		*seen = nv;
		*cap = ncap;
	}
	(*seen)[(*n)++] = uid;
	return 0;
}

void
migrate_map_free(struct migrate_map *m)
{
	size_t i;

	for (i = 0; i < m->n; i++)
		free(m->v[i].base);
	free(m->v);
	free(m->rbuf);
	free(m->roff);
	memset(m, 0, sizeof(*m));
}

/* Next line of text: sets *line, *llen (without the LF); returns 0 at
 * the end. */
static int
migrate_line(const char *text, size_t len, size_t *pos, const char **line,
    size_t *llen)
{
	const char *nl;

	if (*pos >= len)
		return 0;
	*line = text + *pos;
	nl = memchr(*line, '\n', len - *pos);
	*llen = nl != NULL ? (size_t)(nl - *line) : len - *pos;
	*pos += *llen + (nl != NULL);
	return 1;
}

/* Octets of s[0..max) before the first c (max if none). */
static size_t
migrate_span(const char *s, size_t max, int c)
{
	const char *p = memchr(s, c, max);

	return p != NULL ? (size_t)(p - s) : max;
}

/* Strict decimal of s[0..len); returns 0 or -1. */
static int
migrate_num(const char *s, size_t len, unsigned long long *v)
{
	unsigned long long n = 0;
	size_t i;

	if (len == 0 || len > 19)
		return -1;
	for (i = 0; i < len; i++) {
		if (!isdigit((unsigned char)s[i]))
			return -1;
		n = n * 10 + (unsigned long long)(s[i] - '0');
	}
	*v = n;
	return 0;
}

int
migrate_parse_dovecot(const char *text, size_t len, const char *fmt,
    struct migrate_map *m)
{
	struct migrate_vars vars;
	const char *line, *p, *end, *fname, *tok, *pop3;
	char uidl[MAILDIR_UIDL_MAX + 2];
	size_t pos = 0, llen, tl, plen = 0;
	unsigned long long uid, uidv = 0, ord, v, next = 0, *seen = NULL;
	size_t nseen = 0, seencap = 0, nnum;
	int version, r, added = 0, hasord;

	if (!migrate_line(text, len, &pos, &line, &llen) || llen < 2)
		return 0;
	if (line[0] == '3' && line[1] == ' ')
		version = 3;
	else if (line[0] == '1' && line[1] == ' ')
		version = 1;
	else
		return 0;
	/* Header: version 3 has V<uidvalidity> and N<next uid> among its
	 * fields, version 1 has them as its second and third numbers. */
	for (p = line + 2, end = line + llen, nnum = 0; p < end; p = tok + tl) {
		while (p < end && *p == ' ')
			p++;
		tok = p;
		tl = 0;
		while (tok + tl < end && tok[tl] != ' ')
			tl++;
		if (tl == 0)
			break;
		if (version == 3 && tl > 1 && tok[0] == 'V' &&
		    migrate_num(tok + 1, tl - 1, &v) == 0)
			uidv = v;
		if (version == 3 && tl > 1 && tok[0] == 'N' &&
		    migrate_num(tok + 1, tl - 1, &v) == 0)
			next = v;
		if (version == 1 && migrate_num(tok, tl, &v) == 0) {
			if (nnum == 0)
				uidv = v;
			else if (nnum == 1)
				next = v;
			nnum++;
		}
	}
	if (uidv == 0)
		return 0;
	while (migrate_line(text, len, &pos, &line, &llen)) {
		end = line + llen;
		tl = 0;
		while (tl < llen && line[tl] != ' ')
			tl++;
		if (migrate_num(line, tl, &uid) == -1 || uid == 0 ||
		    uid > 0xffffffffULL)
			continue;
		if (migrate_seen(&seen, &nseen, &seencap, uid) == -1)
			goto nomem;
		p = line + tl;
		fname = NULL;
		pop3 = NULL;
		hasord = 0;
		ord = 0;
		memset(&vars, 0, sizeof(vars));
		if (version == 1) {
			if (p < end && *p == ' ')
				p++;
			fname = p;
		}
		while (version == 3 && p < end) {
			while (p < end && *p == ' ')
				p++;
			if (p < end && *p == ':') {
				fname = p + 1;
				break;
			}
			tok = p;
			while (p < end && *p != ' ')
				p++;
			tl = (size_t)(p - tok);
			if (tl < 2)
				continue;
			switch (tok[0]) {
			case 'P':
				pop3 = tok + 1;
				plen = tl - 1;
				break;
			case 'O':
				if (migrate_num(tok + 1, tl - 1, &v) == 0) {
					hasord = 1;
					ord = v;
				}
				break;
			case 'G':
				vars.guid = tok + 1;
				vars.guid_len = tl - 1;
				break;
			}
		}
		if (fname == NULL || fname >= end)
			continue;
		vars.uid = uid;
		vars.uidvalidity = uidv;
		vars.filename = fname;
		vars.filename_len = migrate_span(fname,
		    (size_t)(end - fname), ':');
		if (pop3 != NULL) {
			if (plen > MAILDIR_UIDL_MAX)
				continue;
			memcpy(uidl, pop3, plen);
			uidl[plen] = '\0';
		} else if (fmt == NULL || migrate_format_expand(fmt, &vars,
		    uidl, sizeof(uidl)) == -1)
			continue;
		/* Messages with a POP3 order (O) come first, by it; the
		 * others follow by UID. */
		r = migrate_add(m, fname, vars.filename_len, uidl,
		    strlen(uidl), hasord ? ord : (1ULL << 40) + uid);
		if (r == -1)
			goto nomem;
		added += r;
	}
	if (fmt != NULL && !migrate_format_names(fmt) && next > 1 &&
	    next <= 0x100000000ULL && migrate_retire_gaps(m, seen, nseen,
	    next, uidv, fmt) == -1)
		goto nomem;
	free(seen);
	return added;
nomem:
	free(seen);
	return -1;
}

/* Courier's order key: the leading decimal number of the name, then
 * (ties) the caller's stable base-name order. */
static uint64_t
migrate_courier_key(const char *name, size_t len)
{
	unsigned long long n = 0;
	size_t i;

	for (i = 0; i < len && isdigit((unsigned char)name[i]) && i < 12; i++)
		n = n * 10 + (unsigned long long)(name[i] - '0');
	return (uint64_t)n;
}

int
migrate_parse_courier(const char *text, size_t len, struct migrate_map *m)
{
	const char *line, *sp1, *sp2, *p;
	char uidl[MAILDIR_UIDL_MAX + 8];
	size_t pos = 0, llen, blen, i, o, nseen = 0, seencap = 0;
	unsigned long long ver = 0, uidn, uidv, size, next = 0, huidv = 0;
	unsigned long long *seen = NULL;
	char hdr[128];
	int old, r, added = 0;

	if (len == 0)
		return 0;
	old = text[0] != '/';
	if (!old) {
		migrate_line(text, len, &pos, &line, &llen);
		p = line + 1;
		for (i = 0; i + 1 < llen && isdigit((unsigned char)p[i]); i++)
			;
		if (migrate_num(p, i, &ver) == -1 || (ver != 2 && ver != 3))
			return 0;
		/* "/V <nextuid> <uidvalidity>" */
		snprintf(hdr, sizeof(hdr), "%.*s", (int)(llen < 100 ? llen :
		    100), line + 1);
		if (sscanf(hdr, "%*u %llu %llu", &next, &huidv) != 2)
			next = 0;
	}
	while (migrate_line(text, len, &pos, &line, &llen)) {
		/* "<filename> <size>[ <uid>:<uidv>[:<utf8>]]": the name may
		 * hold spaces, so fields are taken from the end. */
		sp2 = NULL;
		for (p = line + llen; p > line; p--)
			if (p[-1] == ' ') {
				sp2 = p - 1;
				break;
			}
		if (sp2 == NULL)
			continue;
		if (old) {
			if (migrate_num(sp2 + 1, (size_t)(line + llen - sp2 - 1),
			    &size) == -1)
				continue;
			blen = migrate_span(line, (size_t)(sp2 - line), ':');
			/* Courier 0.x: the base name, bytes it may not
			 * show as +XX. */
			for (i = 0, o = 0; i < blen && o + 3 < sizeof(uidl);
			    i++) {
				unsigned char c = (unsigned char)line[i];
				if (c < 0x21 || c > 0x7e || c == '\'' ||
				    c == '"' || c == '+')
					o += (size_t)snprintf(uidl + o,
					    sizeof(uidl) - o, "+%02X", c);
				else
					uidl[o++] = (char)c;
			}
			if (i < blen)
				continue;
			uidl[o] = '\0';
		} else {
			sp1 = NULL;
			for (p = sp2; p > line; p--)
				if (p[-1] == ' ') {
					sp1 = p - 1;
					break;
				}
			if (sp1 == NULL || migrate_num(sp1 + 1,
			    (size_t)(sp2 - sp1 - 1), &size) == -1)
				continue;
			p = sp2 + 1;
			for (i = 0; p + i < line + llen && p[i] != ':'; i++)
				;
			if (migrate_num(p, i, &uidn) == -1 ||
			    p + i >= line + llen)
				continue;
			p += i + 1;
			for (i = 0; p + i < line + llen && p[i] != ':'; i++)
				;
			if (migrate_num(p, i, &uidv) == -1)
				continue;
			if (uidn == 0)
				continue;
			if (uidv == huidv && migrate_seen(&seen, &nseen,
			    &seencap, uidn) == -1)
				goto nomem;
			if (uidv != 0)
				snprintf(uidl, sizeof(uidl), "UID%llu-%llu",
				    uidn, uidv);
			else
				snprintf(uidl, sizeof(uidl), "UID%llu", uidn);
			blen = migrate_span(line, (size_t)(sp1 - line), ':');
		}
		r = migrate_add(m, line, blen, uidl, strlen(uidl),
		    migrate_courier_key(line, blen));
		if (r == -1)
			goto nomem;
		added += r;
	}
	if (!old && next > 1 && next <= 0x100000000ULL &&
	    migrate_retire_gaps(m, seen, nseen, next, huidv, NULL) == -1)
		goto nomem;
	free(seen);
	return added;
nomem:
	free(seen);
	return -1;
}

int
migrate_parse_state(const char *text, size_t len, struct migrate_map *m)
{
	const char *line, *u, *b;
	size_t pos = 0, llen, ol, ul;
	unsigned long long ord;
	int r, added = 0;

	if (!migrate_line(text, len, &pos, &line, &llen) ||
	    llen + 1 != sizeof(MIGRATE_STATE_MAGIC) - 1 ||
	    memcmp(line, MIGRATE_STATE_MAGIC, llen) != 0)
		return 0;
	while (migrate_line(text, len, &pos, &line, &llen)) {
		if (llen > 2 && line[0] == 'R' && line[1] == ' ') {
			if (migrate_retire(m, line + 2, llen - 2) == -1)
				return -1;
			continue;
		}
		for (ol = 0; ol < llen && line[ol] != ' '; ol++)
			;
		if (ol == llen || migrate_num(line, ol, &ord) == -1)
			continue;
		u = line + ol + 1;
		for (ul = 0; u + ul < line + llen && u[ul] != ' '; ul++)
			;
		b = u + ul + 1;
		if (b > line + llen)
			continue;
		r = migrate_add(m, b, (size_t)(line + llen - b), u, ul, ord);
		if (r == -1)
			return -1;
		added += r;
	}
	return added;
}

int
migrate_xuidl(const char *text, size_t len, char out[MAILDIR_UIDL_MAX + 1])
{
	const char *line, *v;
	size_t pos = 0, llen, vl;

	while (migrate_line(text, len, &pos, &line, &llen)) {
		if (llen > 0 && line[llen - 1] == '\r')
			llen--;
		if (llen == 0)
			break;		/* end of the header */
		if (llen < 7 || strncasecmp(line, "X-UIDL:", 7) != 0)
			continue;
		v = line + 7;
		vl = llen - 7;
		while (vl > 0 && (*v == ' ' || *v == '\t')) {
			v++;
			vl--;
		}
		while (vl > 0 && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
			vl--;
		if (!migrate_uidl_valid(v, vl))
			continue;
		memcpy(out, v, vl);
		out[vl] = '\0';
		return 1;
	}
	return 0;
}

int
migrate_state_write(int dirfd, const struct migrate_map *m)
{
	FILE *f;
	size_t i;

	if ((f = util_tmp_open_at(dirfd, MIGRATE_STATE_TMP)) == NULL)
		return -1;
	fputs(MIGRATE_STATE_MAGIC, f);
	for (i = 0; i < m->n; i++)
		if (strchr(m->v[i].base, '\n') == NULL)
			fprintf(f, "%llu %s %s\n",
			    (unsigned long long)m->v[i].order, m->v[i].uidl,
			    m->v[i].base);
	for (i = 0; i < m->nretired; i++)
		fprintf(f, "R %s\n", m->rbuf + m->roff[i]);
	/* Durable: once written, the old server's files may be removed. */
	if (util_tmp_commit_at(dirfd, f, MIGRATE_STATE_TMP,
	    MIGRATE_STATE_FILE) == -1)
		return -1;
	fsync(dirfd);
	return 0;
}

/* Read a whole file at dirfd/name (NULL if missing, unreadable, too big
 * or out of memory). */
static char *
migrate_slurp(int dirfd, const char *name, size_t *lenp)
{
	return util_read_file_at(dirfd, name, MIGRATE_FILE_MAX, lenp);
}

static int
migrate_cmp_base(const void *a, const void *b)
{
	const struct migrate_entry *ea = a, *eb = b;
	int c;

	if ((c = strcmp(ea->base, eb->base)) != 0)
		return c;
	/* The same base twice: the earliest in the old order wins. */
	return ea->order < eb->order ? -1 : ea->order > eb->order;
}

/* Find base (len octets) in m, sorted by base. */
static const struct migrate_entry *
migrate_lookup(const struct migrate_map *m, const char *base, size_t len)
{
	size_t lo = 0, hi = m->n, mid, bl;
	int c;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		bl = strlen(m->v[mid].base);
		c = memcmp(m->v[mid].base, base, bl < len ? bl : len);
		if (c == 0 && bl != len)
			c = bl < len ? -1 : 1;
		if (c == 0) {
			/* The first of equal bases (earliest order). */
			while (mid > 0 && strcmp(m->v[mid - 1].base,
			    m->v[mid].base) == 0)
				mid--;
			return &m->v[mid];
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static int
migrate_cmp_order(const void *a, const void *b)
{
	const struct migrate_slot *sa = a, *sb = b;

	/* Imported first, by their old order; then the rest, as scanned. */
	if (sa->e != NULL && sb->e != NULL && sa->e->order != sb->e->order)
		return sa->e->order < sb->e->order ? -1 : 1;
	if ((sa->e != NULL) != (sb->e != NULL))
		return sa->e != NULL ? -1 : 1;
	return sa->idx < sb->idx ? -1 : sa->idx > sb->idx;
}

/* FNV-1a of a string. */
static size_t
migrate_hash(const char *s)
{
	size_t h = 14695981039346656037ULL;

	while (*s != '\0')
		h = (h ^ (unsigned char)*s++) * 1099511628211ULL;
	return h;
}

static int
migrate_set_init(struct migrate_set *s, size_t n)
{
	size_t cap = 16;

	while (cap < n * 2 + 16)
		cap *= 2;
	if ((s->v = calloc(cap, sizeof(*s->v))) == NULL)
		return -1;
	s->mask = cap - 1;
	return 0;
}

/* Is u in s?  With add set, insert it when absent (s must have room). */
static int
migrate_set_has(struct migrate_set *s, const char *u, int add)
{
	size_t i = migrate_hash(u) & s->mask;

	while (s->v[i] != NULL) {
		if (strcmp(s->v[i], u) == 0)
			return 1;
		i = (i + 1) & s->mask;
	}
	if (add)
		s->v[i] = u;
	return 0;
}

/* The replacement UIDL of a message whose own is taken: "X:" and the
 * SHA-1 of "migrate/", a try number after the first, and the base name
 * ("migrate/" holds a '/', so no base name or maildir.c digest input
 * equals it). */
static void
migrate_digest(const char *base, size_t len, unsigned int try,
    char out[MAILDIR_UIDL_MAX + 1])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0, i;
	char pre[32];
	EVP_MD_CTX *ctx;
	int n;

	n = try == 0 ? snprintf(pre, sizeof(pre), "migrate/") :
	    snprintf(pre, sizeof(pre), "migrate/%u/", try);
	if ((ctx = EVP_MD_CTX_new()) == NULL ||
	    !EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) ||
	    !EVP_DigestUpdate(ctx, pre, (size_t)n) ||
	    !EVP_DigestUpdate(ctx, base, len) ||
	    !EVP_DigestFinal_ex(ctx, md, &mdlen) || mdlen != 20)
		abort();	/* SHA-1 is always in the default provider */
	EVP_MD_CTX_free(ctx);
	out[0] = 'X';
	out[1] = ':';
	for (i = 0; i < mdlen; i++) {
		out[2 + 2 * i] = hex[md[i] >> 4];
		out[3 + 2 * i] = hex[md[i] & 0xf];
	}
	out[2 + 2 * mdlen] = '\0';
}

/* Base name of a snapshot message ("cur/BASE:2,..."). */
static const char *
migrate_base(const struct maildir_msg *msg, size_t *len)
{
	*len = msg->base_len;
	return msg->name + 4;
}

/*
 * First login with migration on: read the old server's files (and, with
 * xuidl, the header of each message they do not cover) into m, ordered
 * by source then old order.  Returns 1 if the result should be saved, 0
 * if there was nothing to import, -1 when out of memory.
 */
static int
migrate_import(struct mailbox *mb, int dirfd, const struct migrate_opts *o,
    struct migrate_map *m)
{
	struct migrate_map view;
	char *text, *hdr = NULL, uidl[MAILDIR_UIDL_MAX + 1];
	const char *b;
	size_t len, i, n0, blen;
	ssize_t r;
	int fd, found = 0;

	if (o->dovecot_fmt[0] != '\0' &&
	    (text = migrate_slurp(dirfd, MIGRATE_DOVECOT_FILE, &len)) != NULL) {
		found = 1;
		if (migrate_parse_dovecot(text, len, o->dovecot_fmt, m) == -1) {
			free(text);
			return -1;
		}
		free(text);
	}
	if (o->courier &&
	    (text = migrate_slurp(dirfd, MIGRATE_COURIER_FILE, &len)) != NULL) {
		found = 1;
		n0 = m->n;
		if (migrate_parse_courier(text, len, m) == -1) {
			free(text);
			return -1;
		}
		free(text);
		for (i = n0; i < m->n; i++)
			m->v[i].order |= 1ULL << MIGRATE_RANK_SHIFT;
	}
	if (o->xuidl) {
		found = 1;
		if ((hdr = malloc(MIGRATE_HEADER_MAX)) == NULL)
			return -1;
		if (m->n > 1)
			qsort(m->v, m->n, sizeof(*m->v), migrate_cmp_base);
		n0 = m->n;
		for (i = 0; i < maildir_count(mb); i++) {
			/* Only the sorted part (other sources) is looked up;
			 * what this loop appends is not sorted. */
			view.v = m->v;
			view.n = n0;
			b = migrate_base(maildir_msg(mb, i), &blen);
			if (migrate_lookup(&view, b, blen) != NULL)
				continue;
			fd = openat(dirfd, maildir_msg(mb, i)->name,
			    O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
			if (fd == -1)
				continue;
			r = read(fd, hdr, MIGRATE_HEADER_MAX);
			close(fd);
			if (r <= 0 || !migrate_xuidl(hdr, (size_t)r, uidl))
				continue;
			if (migrate_add(m, b, blen, uidl, strlen(uidl),
			    (2ULL << MIGRATE_RANK_SHIFT) + i) == -1) {
				free(hdr);
				return -1;
			}
		}
		free(hdr);
	}
	return found;
}

int
migrate_apply(struct mailbox *mb, int dirfd, const struct migrate_opts *o)
{
	struct migrate_map m;
	struct migrate_slot *sl = NULL;
	struct migrate_set imported, used;
	struct maildir_msg *msg;
	size_t i, n, blen, *perm = NULL;
	const char *b;
	char *text, cand[MAILDIR_UIDL_MAX + 1];
	char (*uidls)[MAILDIR_UIDL_MAX + 1] = NULL;
	unsigned int try;
	int rc = -1, save = 0, r;

	if (o == NULL)
		return 0;
	memset(&m, 0, sizeof(m));
	memset(&imported, 0, sizeof(imported));
	memset(&used, 0, sizeof(used));
	/* A saved import holds even with every source turned off since:
	 * clients keep knowing those messages by their old UIDLs. */
	if ((text = migrate_slurp(dirfd, MIGRATE_STATE_FILE, &n)) != NULL) {
		r = migrate_parse_state(text, n, &m);
		free(text);
		if (r == -1)
			goto out;
	} else if (!migrate_enabled(o)) {
		rc = 0;
		goto out;
	} else {
		if ((r = migrate_import(mb, dirfd, o, &m)) == -1)
			goto out;
		save = r;
	}
	if (m.n > 1)
		qsort(m.v, m.n, sizeof(*m.v), migrate_cmp_base);
	/* Saved before use: the mapping, once shown, must not change. */
	if (save)
		(void)migrate_state_write(dirfd, &m);

	n = maildir_count(mb);
	if (n == 0) {
		rc = 0;
		goto out;
	}
	if ((sl = calloc(n + 1, sizeof(*sl))) == NULL ||
	    (perm = calloc(n + 1, sizeof(*perm))) == NULL ||
	    (uidls = calloc(n + 1, sizeof(*uidls))) == NULL ||
	    migrate_set_init(&imported, m.n + m.nretired) == -1 ||
	    migrate_set_init(&used, n) == -1)
		goto out;
	for (i = 0; i < m.n; i++)
		migrate_set_has(&imported, m.v[i].uidl, 1);
	for (i = 0; i < m.nretired; i++)
		migrate_set_has(&imported, m.rbuf + m.roff[i], 1);
	for (i = 0; i < n; i++) {
		b = migrate_base(maildir_msg(mb, i), &blen);
		sl[i].idx = i;
		sl[i].e = migrate_lookup(&m, b, blen);
	}
	if (n > 1)
		qsort(sl, n, sizeof(*sl), migrate_cmp_order);
	for (i = 0; i < n; i++) {
		msg = maildir_msg(mb, sl[i].idx);
		perm[i] = sl[i].idx;
		if (sl[i].e != NULL && !migrate_set_has(&used, sl[i].e->uidl,
		    0)) {
			snprintf(uidls[i], sizeof(uidls[i]), "%s",
			    sl[i].e->uidl);
			migrate_set_has(&used, uidls[i], 1);
			continue;
		}
		/* Not imported (or a duplicate of an earlier import): its
		 * usual UIDL, unless an imported message has or had it. */
		snprintf(cand, sizeof(cand), "%s", msg->uidl);
		b = migrate_base(msg, &blen);
		for (try = 0; migrate_set_has(&imported, cand, 0) ||
		    migrate_set_has(&used, cand, 0); try++)
			migrate_digest(b, blen, try, cand);
		snprintf(uidls[i], sizeof(uidls[i]), "%s", cand);
		migrate_set_has(&used, uidls[i], 1);
	}
	/* Written only now: the sets point into uidls, never into msgs. */
	if (maildir_reorder(mb, perm) == -1)
		goto out;
	for (i = 0; i < n; i++)
		memcpy(maildir_msg(mb, i)->uidl, uidls[i], sizeof(uidls[i]));
	rc = 0;
out:
	free(imported.v);
	free(used.v);
	free(uidls);
	free(perm);
	free(sl);
	migrate_map_free(&m);
	return rc;
}

/* --compare: a blocking POP3 client for the old server. */
struct migrate_pop {
	int		 fd;
	SSL_CTX		*ctx;
	SSL		*ssl;
	char		 buf[4096];
	size_t		 len;
};

/* One UIDL/LIST row of either side. */
struct migrate_row {
	char		 uidl[MAILDIR_UIDL_MAX + 1];
	uint64_t	 size;
};

/* Read one line (CRLF or LF stripped) into out; returns 0 or -1. */
static int
migrate_pop_line(struct migrate_pop *c, char *out, size_t outlen)
{
	char *nl;
	size_t n;
	int r;

	for (;;) {
		if ((nl = memchr(c->buf, '\n', c->len)) != NULL) {
			n = (size_t)(nl - c->buf);
			if (n > 0 && c->buf[n - 1] == '\r')
				n--;
			if (n >= outlen)
				n = outlen - 1;
			memcpy(out, c->buf, n);
			out[n] = '\0';
			n = (size_t)(nl - c->buf) + 1;
			memmove(c->buf, c->buf + n, c->len - n);
			c->len -= n;
			return 0;
		}
		if (c->len == sizeof(c->buf))
			return -1;	/* a line longer than POP3 allows */
		if (c->ssl != NULL)
			r = SSL_read(c->ssl, c->buf + c->len,
			    (int)(sizeof(c->buf) - c->len));
		else
			r = (int)read(c->fd, c->buf + c->len,
			    sizeof(c->buf) - c->len);
		if (r <= 0)
			return -1;
		c->len += (size_t)r;
	}
}

/* Send a command line; returns 0 or -1. */
static int
migrate_pop_send(struct migrate_pop *c, const char *cmd, const char *arg)
{
	char line[1024];
	int n;

	n = snprintf(line, sizeof(line), "%s%s%s\r\n", cmd,
	    arg != NULL ? " " : "", arg != NULL ? arg : "");
	if (n < 0 || (size_t)n >= sizeof(line))
		return -1;
	if (c->ssl != NULL)
		return SSL_write(c->ssl, line, n) == n ? 0 : -1;
	return write(c->fd, line, (size_t)n) == n ? 0 : -1;
}

/* Send cmd and read a +OK reply into reply; returns 0, or -1. */
static int
migrate_pop_cmd(struct migrate_pop *c, const char *cmd, const char *arg,
    char *reply, size_t rlen)
{
	if ((cmd != NULL && migrate_pop_send(c, cmd, arg) == -1) ||
	    migrate_pop_line(c, reply, rlen) == -1)
		return -1;
	return strncmp(reply, "+OK", 3) == 0 ? 0 : -1;
}

/* Start TLS on the connection (certificate not checked: the old server is
 * the administrator's own, often with a self-signed one). */
static int
migrate_pop_tls(struct migrate_pop *c, const char *host)
{
	if ((c->ctx = SSL_CTX_new(TLS_client_method())) == NULL ||
	    (c->ssl = SSL_new(c->ctx)) == NULL ||
	    SSL_set_fd(c->ssl, c->fd) != 1)
		return -1;
	SSL_set_tlsext_host_name(c->ssl, host);
	return SSL_connect(c->ssl) == 1 ? 0 : -1;
}

static void
migrate_pop_close(struct migrate_pop *c)
{
	if (c->ssl != NULL) {
		SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
	}
	SSL_CTX_free(c->ctx);
	if (c->fd != -1)
		close(c->fd);
}

/* Connect to "HOST:PORT" or "[V6]:PORT" with 30 s socket timeouts. */
static int
migrate_pop_connect(const char *hostport, char *host, size_t hlen,
    const char **errstr)
{
	struct addrinfo hints, *res, *ai;
	struct timeval tv = { 30, 0 };
	const char *colon, *h = hostport;
	size_t len;
	int fd = -1;

	if ((colon = strrchr(hostport, ':')) == NULL || colon[1] == '\0') {
		*errstr = "expected HOST:PORT";
		return -1;
	}
	len = (size_t)(colon - hostport);
	if (len >= 2 && h[0] == '[' && h[len - 1] == ']') {
		h++;
		len -= 2;
	}
	if (len == 0 || len >= hlen) {
		*errstr = "expected HOST:PORT";
		return -1;
	}
	memcpy(host, h, len);
	host[len] = '\0';
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	if (getaddrinfo(host, colon + 1, &hints, &res) != 0) {
		*errstr = "cannot resolve the host or port";
		return -1;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
		    ai->ai_protocol);
		if (fd == -1)
			continue;
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd == -1)
		*errstr = "cannot connect";
	return fd;
}

/* Read a multi-line answer of "N VALUE" rows into rows (indexed N-1). */
static int
migrate_pop_rows(struct migrate_pop *c, struct migrate_row **rows,
    size_t *nrows, int uidl)
{
	struct migrate_row *nv;
	unsigned long long num, size;
	char line[1024], *sp;
	size_t vl;

	for (;;) {
		if (migrate_pop_line(c, line, sizeof(line)) == -1)
			return -1;
		if (strcmp(line, ".") == 0)
			return 0;
		if ((sp = strchr(line, ' ')) == NULL ||
		    migrate_num(line, (size_t)(sp - line), &num) == -1 ||
		    num == 0 || num > 10000000)
			continue;
		if (num > *nrows) {
			if ((nv = reallocarray(*rows, num,
			    sizeof(*nv))) == NULL)
				return -1;
			memset(nv + *nrows, 0, (num - *nrows) * sizeof(*nv));
			*rows = nv;
			*nrows = num;
		}
		sp++;
		vl = strlen(sp);
		if (uidl) {
			if (vl > MAILDIR_UIDL_MAX)
				vl = MAILDIR_UIDL_MAX;
			memcpy((*rows)[num - 1].uidl, sp, vl);
			(*rows)[num - 1].uidl[vl] = '\0';
		} else if (migrate_num(sp, vl, &size) == 0)
			(*rows)[num - 1].size = size;
	}
}

/* The old server's UIDL and LIST for user. */
static int
migrate_old_rows(const char *hostport, int tls, const char *user,
    const char *password, struct migrate_row **rows, size_t *nrows,
    FILE *err)
{
	struct migrate_pop c;
	struct migrate_row *lr = NULL;
	size_t nl = 0, i;
	const char *es = NULL;
	char host[256], reply[1024];
	int rc = -1;

	memset(&c, 0, sizeof(c));
	if ((c.fd = migrate_pop_connect(hostport, host, sizeof(host),
	    &es)) == -1)
		goto out;
	es = "TLS handshake failed";
	if (tls == 1 && migrate_pop_tls(&c, host) == -1)
		goto out;
	es = "no +OK greeting";
	if (migrate_pop_cmd(&c, NULL, NULL, reply, sizeof(reply)) == -1)
		goto out;
	es = "STLS refused or failed";
	if (tls == 2 && (migrate_pop_cmd(&c, "STLS", NULL, reply,
	    sizeof(reply)) == -1 || migrate_pop_tls(&c, host) == -1))
		goto out;
	es = "login refused";
	if (migrate_pop_cmd(&c, "USER", user, reply, sizeof(reply)) == -1 ||
	    migrate_pop_cmd(&c, "PASS", password, reply, sizeof(reply)) == -1)
		goto out;
	es = "UIDL failed";
	if (migrate_pop_cmd(&c, "UIDL", NULL, reply, sizeof(reply)) == -1 ||
	    migrate_pop_rows(&c, rows, nrows, 1) == -1)
		goto out;
	es = "LIST failed";
	if (migrate_pop_cmd(&c, "LIST", NULL, reply, sizeof(reply)) == -1 ||
	    migrate_pop_rows(&c, &lr, &nl, 0) == -1)
		goto out;
	for (i = 0; i < nl && i < *nrows; i++)
		(*rows)[i].size = lr[i].size;
	/* QUIT from TRANSACTION: nothing was marked, nothing is removed. */
	migrate_pop_cmd(&c, "QUIT", NULL, reply, sizeof(reply));
	rc = 0;
	es = NULL;
out:
	if (es != NULL)
		fprintf(err, "evpop3d: --compare: %s: %s\n", hostport, es);
	free(lr);
	migrate_pop_close(&c);
	return rc;
}

/* What evpop3d shows for the Maildir at dir: a login's scan under the
 * mailbox lock. */
static int
migrate_new_rows(const struct config *cf, const char *dir,
    struct migrate_row **rows, size_t *nrows, FILE *err)
{
	struct migrate_opts o;
	struct mbox_lock *lk;
	struct mailbox *mb;
	const char *es = NULL;
	char holder[256];
	size_t i, n = 0;

	lock_init(cf->lock_stale_timeout);
	switch (lock_acquire_for(dir, "compare", &lk, holder,
	    sizeof(holder))) {
	case LOCK_OK:
		break;
	case LOCK_IN_USE:
		fprintf(err, "evpop3d: --compare: %s: mailbox in use by %s\n",
		    dir, holder);
		return -1;
	default:
		fprintf(err, "evpop3d: --compare: %s: lock: %s\n", dir,
		    strerror(errno));
		return -1;
	}
	migrate_opts_from_conf(&o, cf);
	if (maildir_open_migrate(dir, &mb, NULL, &es, &o) == -1) {
		fprintf(err, "evpop3d: --compare: %s: %s: %s\n", dir,
		    es != NULL ? es : "open", strerror(errno));
		lock_release(lk);
		return -1;
	}
	if ((*rows = calloc(maildir_count(mb) + 1, sizeof(**rows))) == NULL) {
		maildir_free(mb);
		lock_release(lk);
		return -1;
	}
	for (i = 0; i < maildir_count(mb); i++) {
		snprintf((*rows)[n].uidl, sizeof((*rows)[n].uidl), "%s",
		    maildir_msg(mb, i)->uidl);
		(*rows)[n++].size = maildir_msg(mb, i)->size;
	}
	*nrows = n;
	maildir_free(mb);
	lock_release(lk);
	return 0;
}

/* Index of uidl in rows (linear: an administrator's one-off check). */
static long
migrate_row_find(const struct migrate_row *rows, size_t n, const char *uidl)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(rows[i].uidl, uidl) == 0)
			return (long)i;
	return -1;
}

int
migrate_compare(const struct config *cf, const struct passwd_db *db,
    const char *user, const char *hostport, const char *password, int tls,
    FILE *out, FILE *err)
{
	const struct passwd_entry *pe;
	struct migrate_row *old = NULL, *new = NULL;
	size_t nold = 0, nnew = 0, i, j, a, b;
	char dir[PATH_MAX];
	long k;
	int diffs = 0, rc = 2;

	if (!auth_user_valid(user, strlen(user)) ||
	    (pe = auth_db_lookup(db, user)) == NULL) {
		fprintf(err, "evpop3d: --compare: no user %s in %s\n", user,
		    cf->passwd_file);
		return 2;
	}
	if (pe->maildir != NULL)
		snprintf(dir, sizeof(dir), "%s", pe->maildir);
	else if (conf_expand_location(cf->mail_location, user, dir,
	    sizeof(dir)) == -1)
		return 2;
	if (migrate_old_rows(hostport, tls, user, password, &old, &nold,
	    err) == -1 || migrate_new_rows(cf, dir, &new, &nnew, err) == -1)
		goto out;
	fprintf(out, "old server %s: %zu messages; evpop3d (%s): %zu "
	    "messages\n", hostport, nold, dir, nnew);
	for (i = 0; i < nold; i++) {
		if ((k = migrate_row_find(new, nnew, old[i].uidl)) == -1) {
			fprintf(out, "missing here: %zu %s (old server's "
			    "message %zu)\n", i + 1, old[i].uidl, i + 1);
			diffs++;
		} else if (new[k].size != old[i].size) {
			fprintf(out, "size: %s is %llu octets on the old "
			    "server, %llu here\n", old[i].uidl,
			    (unsigned long long)old[i].size,
			    (unsigned long long)new[k].size);
			diffs++;
		}
	}
	for (j = 0; j < nnew; j++)
		if (migrate_row_find(old, nold, new[j].uidl) == -1) {
			fprintf(out, "only here: %zu %s\n", j + 1,
			    new[j].uidl);
			diffs++;
		}
	/* Order: the UIDLs both sides have, in each side's order. */
	for (a = 0, b = 0; a < nold && b < nnew; a++, b++) {
		while (a < nold && migrate_row_find(new, nnew,
		    old[a].uidl) == -1)
			a++;
		while (b < nnew && migrate_row_find(old, nold,
		    new[b].uidl) == -1)
			b++;
		if (a >= nold || b >= nnew)
			break;
		if (strcmp(old[a].uidl, new[b].uidl) != 0) {
			fprintf(out, "order: the old server's message %zu is "
			    "%s, here message %zu is %s\n", a + 1, old[a].uidl,
			    b + 1, new[b].uidl);
			diffs++;
			break;
		}
	}
	fprintf(out, diffs == 0 ? "identical\n" : "%d difference%s\n", diffs,
	    diffs == 1 ? "" : "s");
	rc = diffs == 0 ? 0 : 1;
out:
	free(old);
	free(new);
	return rc;
}

int
migrate_compare_main(const struct config *cf, const struct passwd_db *db,
    char **args, int nargs)
{
	char pw[1024];
	size_t len;
	int tls = 0, rc;

	if (nargs < 2 || nargs > 3) {
		fprintf(stderr, "usage: evpop3d [-c file] --compare user "
		    "host:port [tls|stls] < password\n");
		return 2;
	}
	if (nargs == 3) {
		if (strcmp(args[2], "tls") == 0)
			tls = 1;
		else if (strcmp(args[2], "stls") == 0)
			tls = 2;
		else if (strcmp(args[2], "plain") != 0) {
			fprintf(stderr, "evpop3d: --compare: %s is not tls, "
			    "stls or plain\n", args[2]);
			return 2;
		}
	}
	if (fgets(pw, sizeof(pw), stdin) == NULL) {
		fprintf(stderr, "evpop3d: --compare: no password on standard "
		    "input\n");
		return 2;
	}
	len = strcspn(pw, "\r\n");
	pw[len] = '\0';
	rc = migrate_compare(cf, db, args[0], args[1], pw, tls, stdout,
	    stderr);
	explicit_bzero(pw, sizeof(pw));
	return rc;
}
