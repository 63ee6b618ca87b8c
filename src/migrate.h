/* SPDX-License-Identifier: ISC */
/*
 * evpop3d - migrate.h: zero-surprise migration from another POP3 server.
 * Pure: no libevent, no global state (called from worker threads).
 *
 * A Maildir served before by Dovecot (dovecot-uidlist), Courier
 * (courierpop3dsizelist) or qpopper-style software (X-UIDL: headers) keeps
 * the UIDLs and the order its clients saw.  The first login that finds one
 * of these sources records what it imported in evpop3d.uidls (the
 * Maildir's top folder); later logins read only that file, so the old
 * server's files may be removed.  A message not imported never gets a UIDL
 * that an imported one had.
 */
#ifndef EVPOP3D_MIGRATE_H
#define EVPOP3D_MIGRATE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "maildir.h"

#define MIGRATE_STATE_FILE	"evpop3d.uidls"
#define MIGRATE_DOVECOT_FILE	"dovecot-uidlist"
#define MIGRATE_COURIER_FILE	"courierpop3dsizelist"
/* Longest dovecot_uidl_format accepted (Dovecot's own are ~10 octets). */
#define MIGRATE_FMT_MAX		128

struct config;
struct passwd_db;

/* What a login imports; a copy is owned by each login job. */
struct migrate_opts {
	char		dovecot_fmt[MIGRATE_FMT_MAX];	/* "" = off */
	int		courier;	/* courier_uidl yes */
	int		xuidl;		/* xuidl_header yes */
};

/* The values a pop3_uidl_format may name. */
struct migrate_vars {
	unsigned long long uid;		/* %u IMAP UID */
	unsigned long long uidvalidity;	/* %v */
	const char	*filename;	/* %f base name (before ':') */
	size_t		 filename_len;
	const char	*guid;		/* %g: G extension, else base name */
	size_t		 guid_len;
};

/* One imported UIDL: the message's base name and its place in the old
 * server's order (smaller first). */
struct migrate_entry {
	char		*base;
	char		 uidl[MAILDIR_UIDL_MAX + 1];
	uint64_t	 order;
};

struct migrate_map {
	struct migrate_entry *v;
	size_t		 n;
	size_t		 cap;
	/* Retired UIDLs: shown by the old server for messages deleted
	 * before the migration (NUL-separated in rbuf, at roff[i]). */
	char		*rbuf;
	size_t		 rlen, rcap;
	size_t		*roff;
	size_t		 nretired, roffcap;
};

/* Retired UIDLs kept at most (the newest UIDs: those most likely still
 * in clients' lists). */
#define MIGRATE_RETIRED_MAX	1000000

/* Fill opts from the configuration (the strings are copied). */
void	migrate_opts_from_conf(struct migrate_opts *, const struct config *);

/* Is any migration source enabled?  Returns 1 or 0. */
int	migrate_enabled(const struct migrate_opts *);

/*
 * Check a dovecot_uidl_format: %u %v %f %g and %{uid} %{uidvalidity}
 * %{filename} %{guid}, %% for a percent, with Dovecot's [-][0]W[.L]
 * offset/width and the modifiers L U X R.  %m (header MD5) is refused:
 * Dovecot's own Maildir storage cannot show it either.  Returns 0, or -1
 * with *errstr set.
 */
int	migrate_format_check(const char *fmt, const char **errstr);

/*
 * Expand fmt (already checked) as Dovecot's pop3_uidl_format would: X
 * prints lower-case hex (as Dovecot 2.3 does, despite the capital).
 * Returns the length, or -1 if the result does not fit outlen (with the
 * NUL) or the format is invalid.
 */
int	migrate_format_expand(const char *fmt, const struct migrate_vars *,
	    char *out, size_t outlen);

/* Is s (len octets) a valid RFC 1939 unique-id (1..70 of 0x21..0x7E)? */
int	migrate_uidl_valid(const char *s, size_t len);

/*
 * Parsers: each appends what it understood of text (len octets) to map
 * and skips what it does not (malformed lines, UIDLs that RFC 1939 does
 * not allow); an unknown version adds nothing.  Each returns the number
 * of entries added, or -1 when out of memory.
 *
 * dovecot-uidlist version 3 ("3 V<uidvalidity> N<next> ...", lines "<uid>
 * [ext ...] :<filename>", P<uidl> wins over fmt, O<n> gives the POP3
 * order) and version 1 ("1 <uidvalidity> <next>", lines "<uid> <filename>").
 * When fmt uses only %u and %v, the UIDLs of the UIDs below <next> that
 * are not listed (messages deleted under Dovecot) are retired: no new
 * message may take one.
 */
int	migrate_parse_dovecot(const char *text, size_t len, const char *fmt,
	    struct migrate_map *);
/*
 * courierpop3dsizelist: versions 2 and 3 ("/V <nextuid> <uidvalidity>",
 * lines "<filename> <size> <uid>:<uidv>[:<utf8>]", UIDL "UID<uid>-<uidv>",
 * or "UID<uid>" with uidv 0), and the headerless list of Courier before
 * 0.43 (lines "<filename> <size>", UIDL the base name with bytes outside
 * 0x21..0x7E and ' " + written as +XX).  Courier's order: the leading
 * number of the name (delivery time), then the base name.  UIDs below
 * <nextuid> not listed are retired as "UID<n>-<uidvalidity>".
 */
int	migrate_parse_courier(const char *text, size_t len,
	    struct migrate_map *);
/* evpop3d.uidls: "evpop3d-uidls 1", then lines "<order> <uidl> <base>"
 * and "R <uidl>" (retired). */
int	migrate_parse_state(const char *text, size_t len,
	    struct migrate_map *);

/*
 * The X-UIDL value of a message header (text holds at least the header or
 * the message's first octets): the first "X-UIDL:" field (any case) whose
 * value is a valid unique-id.  Returns 1 with out set, or 0.
 */
int	migrate_xuidl(const char *text, size_t len,
	    char out[MAILDIR_UIDL_MAX + 1]);

/* Write map to evpop3d.uidls in the directory dirfd (temporary file, then
 * rename).  Returns 0 or -1 with errno. */
int	migrate_state_write(int dirfd, const struct migrate_map *);

void	migrate_map_free(struct migrate_map *);

/*
 * The login hook: called by maildir_open once the snapshot is scanned,
 * sorted and has its default UIDLs.  A Maildir with evpop3d.uidls uses it
 * (whatever o enables: a finished import keeps holding); otherwise the
 * sources o enables are imported, and saved if any was found.  Gives
 * imported messages their old
 * UIDL and order (first, in the old server's order; the others follow in
 * the usual order), and any other message whose UIDL an imported message
 * has (now or when imported) the stable digest "X:" + SHA-1 of
 * "migrate/" and its base name.  dirfd is the Maildir.  Sources that
 * cannot be read are ignored.  Returns 0, or -1 when out of memory.
 */
int	migrate_apply(struct mailbox *, int dirfd, const struct migrate_opts *);

/*
 * --compare: log in to the old server at hostport ("HOST:PORT"; tls 1 for
 * implicit TLS, 2 for STLS) as user with password, get UIDL and LIST, open
 * the user's Maildir as a login would (under the mailbox lock), and print
 * every difference to out.  Returns 0 if both show the same messages (same
 * UIDLs, order and sizes), 1 if not, 2 on errors (printed to err).
 * The old server's certificate is not verified.
 */
int	migrate_compare(const struct config *, const struct passwd_db *,
	    const char *user, const char *hostport, const char *password,
	    int tls, FILE *out, FILE *err);

/*
 * The --compare command line: args are USER HOST:PORT [tls|stls|plain];
 * the password is the first line of standard input.  Prints to stdout;
 * returns the exit status (0 identical, 1 different, 2 error).
 */
int	migrate_compare_main(const struct config *, const struct passwd_db *,
	    char **args, int nargs);

#endif /* EVPOP3D_MIGRATE_H */
