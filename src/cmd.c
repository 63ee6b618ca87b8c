/*
 * evpop3d - cmd.c: the POP3 state machine's commands (RFC 1939, RFC 2449
 * CAPA, RFC 2595 STLS, RFC 5034 AUTH).
 *
 * Commands are found in a table that says in which states each is valid
 * and how many arguments it takes; the dispatcher checks all of that, so
 * handlers hold only protocol logic.  Blocking work (password hashing, the
 * lock, the Maildir scan, UPDATE's unlinks) runs as worker jobs; the
 * session is busy until their done callback answers.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "cmd.h"
#include "conf.h"
#include "lock.h"
#include "log.h"
#include "maildir.h"
#include "oauth.h"
#include "migrate.h"
#include "params.h"
#include "retr.h"
#include "scram.h"
#include "session.h"
#include "util.h"
#include "worker.h"

#define CMD_ARGS_MAX	3

#define CMDF_REST	0x01	/* last argument: rest of the line, verbatim */
#define CMDF_SECRET	0x02	/* do not log the arguments */

typedef void (*cmd_fn)(struct session *, int, char **);

struct pop_cmd {
	const char	*name;
	int		 states;
	int		 min_args;
	int		 max_args;
	int		 flags;
	cmd_fn		 fn;
};

static void	cmd_user(struct session *, int, char **);
static void	cmd_pass(struct session *, int, char **);
static void	cmd_apop(struct session *, int, char **);
static void	cmd_auth(struct session *, int, char **);
static void	cmd_stls(struct session *, int, char **);
static void	cmd_capa(struct session *, int, char **);
static void	cmd_stat(struct session *, int, char **);
static void	cmd_list(struct session *, int, char **);
static void	cmd_uidl(struct session *, int, char **);
static void	cmd_retr(struct session *, int, char **);
static void	cmd_top(struct session *, int, char **);
static void	cmd_dele(struct session *, int, char **);
static void	cmd_rset(struct session *, int, char **);
static void	cmd_noop(struct session *, int, char **);
static void	cmd_quit(struct session *, int, char **);
static void	cmd_utf8(struct session *, int, char **);
static void	cmd_sasl_fail(struct session *, const char *);
static char	*cmd_b64(const char *, size_t, size_t *);
static void	cmd_lang(struct session *, int, char **);

#define ST_AUTH	ST_AUTHORIZATION
#define ST_TRAN	ST_TRANSACTION

static const struct pop_cmd cmd_table[] = {
	{ "USER", ST_AUTH, 1, 1, 0, cmd_user },
	{ "PASS", ST_AUTH, 1, 1, CMDF_REST | CMDF_SECRET, cmd_pass },
	{ "APOP", ST_AUTH, 2, 2, CMDF_SECRET, cmd_apop },
	{ "AUTH", ST_AUTH, 0, 2, CMDF_SECRET, cmd_auth },
	{ "STLS", ST_AUTH, 0, 0, 0, cmd_stls },
	{ "CAPA", ST_AUTH | ST_TRAN, 0, 0, 0, cmd_capa },
	{ "QUIT", ST_AUTH | ST_TRAN, 0, 0, 0, cmd_quit },
	{ "STAT", ST_TRAN, 0, 0, 0, cmd_stat },
	{ "LIST", ST_TRAN, 0, 1, 0, cmd_list },
	{ "UIDL", ST_TRAN, 0, 1, 0, cmd_uidl },
	{ "RETR", ST_TRAN, 1, 1, 0, cmd_retr },
	{ "TOP", ST_TRAN, 2, 2, 0, cmd_top },
	{ "DELE", ST_TRAN, 1, 1, 0, cmd_dele },
	{ "RSET", ST_TRAN, 0, 0, 0, cmd_rset },
	{ "NOOP", ST_TRAN, 0, 0, 0, cmd_noop },
	{ "UTF8", ST_AUTH, 0, 0, 0, cmd_utf8 },
	{ "LANG", ST_AUTH | ST_TRAN, 0, 1, 0, cmd_lang },
};

#define AUTH_FAILED	"-ERR [AUTH] Authentication failed."

static int
cmd_is_blank(char c)
{
	return c == ' ' || c == '\t';
}

/* Split line into the command word and arguments (blanks separate; a
 * CMDF_REST command's one argument is everything after the first blank).
 * Returns argc or -1 if there are more than max words. */
static int
cmd_split(char *line, char **argv, int max, int rest)
{
	int argc = 0;
	char *p = line;

	for (;;) {
		while (argc > 0 && cmd_is_blank(*p))
			p++;
		if (*p == '\0')
			break;
		if (argc > max)
			return -1;
		argv[argc++] = p;
		if (rest && argc == 2)
			break;	/* PASS: the rest of the line, blanks kept */
		while (*p != '\0' && !cmd_is_blank(*p))
			p++;
		if (*p == '\0')
			break;
		*p++ = '\0';
		if (rest && argc == 1) {
			/* One separator only; an empty rest is no argument. */
			if (*p == '\0')
				break;
			argv[argc++] = p;
			break;
		}
	}
	return argc;
}

/* Look up the command, check state and arity, run the handler. */
void
cmd_dispatch(struct session *s, char *line, size_t len)
{
	const struct pop_cmd *c = NULL;
	char *argv[CMD_ARGS_MAX + 2], *name;
	size_t i, nlen;
	int argc;

	(void)len;
	name = line;
	for (nlen = 0; name[nlen] != '\0' && !cmd_is_blank(name[nlen]); nlen++)
		;
	for (i = 0; i < sizeof(cmd_table) / sizeof(cmd_table[0]); i++) {
		if (strlen(cmd_table[i].name) == nlen &&
		    strncasecmp(cmd_table[i].name, name, nlen) == 0) {
			c = &cmd_table[i];
			break;
		}
	}
	if (c == NULL) {
		if (log_debug_enabled()) {
			char esc[128];
			util_log_escape(esc, sizeof(esc), line, len);
			log_debug("session=%016llx unknown command \"%s\"",
			    (unsigned long long)s->id, esc);
		}
		session_error(s, "Unknown command.");
		return;
	}
	if (log_debug_enabled())
		log_debug("session=%016llx command %s%s",
		    (unsigned long long)s->id, c->name,
		    c->flags & CMDF_SECRET ? " ********" : "");
	if (!(c->states & s->state)) {
		session_error(s, "%s not valid in this state.", c->name);
		return;
	}
	argc = cmd_split(line, argv, c->max_args, c->flags & CMDF_REST);
	if (argc < 0) {
		session_error(s, "Too many arguments for %s.", c->name);
		return;
	}
	if (argc - 1 < c->min_args) {
		session_error(s, "Missing argument for %s.", c->name);
		return;
	}
	c->fn(s, argc - 1, argv + 1);
}

/* ---------------------------------------------------------------------
 * AUTHORIZATION: the login job.
 */

enum login_method { LOGIN_PASS, LOGIN_APOP, LOGIN_CRAM, LOGIN_PROVEN };
enum login_result { LR_OK, LR_AUTH, LR_IN_USE, LR_DELAY, LR_SYS };

struct login_job {
	struct session		*s;
	enum login_method	 method;
	const char		*mech;		/* for the log */
	char			*user;
	char			*secret;
	int			 unknown;	/* verify, then fail */
	char			*cred;		/* password or digest */
	char			*challenge;	/* APOP/CRAM timestamp */
	char			*maildir;
	char			 client[INET6_ADDRSTRLEN + 16];
	unsigned int		 login_delay;	/* seconds, 0 = none */
	int			 trash;		/* delete_mode trash */
	int			 expire_days;	/* -1 never */
	unsigned int		 trash_days;
	struct migrate_opts	 migrate;	/* copied: SIGHUP may free cfg */
	long			 delay_left;
	enum login_result	 result;
	char			 holder[192];
	struct mailbox		*mbox;
	struct mbox_lock	*lock;
	size_t			 skipped;
	int			 err;
	const char		*errstr;
};

static void
cmd_login_job_free(struct login_job *j)
{
	if (j->cred != NULL) {
		util_wipe(j->cred, strlen(j->cred));
		free(j->cred);
	}
	if (j->secret != NULL) {
		util_wipe(j->secret, strlen(j->secret));
		free(j->secret);
	}
	free(j->user);
	free(j->challenge);
	free(j->maildir);
	free(j);
}

/* Worker thread: check the credentials, then lock and scan the Maildir. */
static void
cmd_login_run(void *arg)
{
	struct login_job *j = arg;
	int ok = 0;
	enum lock_result lr;

	switch (j->method) {
	case LOGIN_PASS:
		ok = auth_verify_password(j->secret, j->cred, j->unknown);
		break;
	case LOGIN_APOP:
		ok = !j->unknown &&
		    auth_apop_verify(j->secret, j->challenge, j->cred);
		break;
	case LOGIN_CRAM:
		ok = !j->unknown &&
		    auth_cram_verify(j->secret, j->challenge, j->cred);
		break;
	case LOGIN_PROVEN:
		/* SCRAM: the proof was checked during the exchange. */
		ok = !j->unknown;
		break;
	}
	if (!ok) {
		j->result = LR_AUTH;
		return;
	}
	if (maildir_create(j->maildir) == -1) {
		j->err = errno;
		j->errstr = "create Maildir";
		j->result = LR_SYS;
		return;
	}
	lr = lock_acquire_for(j->maildir, j->client, &j->lock, j->holder,
	    sizeof(j->holder));
	if (lr == LOCK_IN_USE) {
		j->result = LR_IN_USE;
		return;
	}
	if (lr != LOCK_OK) {
		j->err = errno;
		j->errstr = "lock";
		j->result = LR_SYS;
		return;
	}
	if (j->login_delay > 0 && maildir_login_delay(j->maildir,
	    j->login_delay, time(NULL), &j->delay_left) == 1) {
		lock_release(j->lock);
		j->lock = NULL;
		j->result = LR_DELAY;
		return;
	}
	/* EXPIRE: messages retrieved long enough ago go before the scan. */
	if (j->expire_days > 0)
		maildir_expire(j->maildir, (unsigned int)j->expire_days,
		    time(NULL), j->trash);
	if (maildir_open_migrate(j->maildir, &j->mbox, &j->skipped,
	    &j->errstr, &j->migrate) == -1) {
		j->err = errno;
		lock_release(j->lock);
		j->lock = NULL;
		j->result = LR_SYS;
		return;
	}
	maildir_set_trash(j->mbox, j->trash);
	/* Soft-deleted messages past their time go (cheap if none). */
	maildir_trash_purge(j->maildir, j->trash_days, time(NULL));
	j->result = LR_OK;
}

struct cmd_release_job {
	struct mailbox		*mbox;
	struct mbox_lock	*lock;
};

static void
cmd_release_run(void *arg)
{
	struct cmd_release_job *r = arg;

	lock_release(r->lock);
	if (r->mbox != NULL)
		maildir_free(r->mbox);
	free(r);
}

/* Loop thread: answer the login. */
static void
cmd_login_done(void *arg)
{
	struct login_job *j = arg;
	struct session *s = j->s;
	struct cmd_release_job *r;
	size_t count;
	uint64_t octets;

	if (s->state == ST_CLOSING) {
		/* The client left meanwhile: give the mailbox back. */
		if (j->lock != NULL || j->mbox != NULL) {
			if ((r = malloc(sizeof(*r))) != NULL) {
				r->mbox = j->mbox;
				r->lock = j->lock;
				if (worker_submit(cmd_release_run, NULL, r) == -1)
					cmd_release_run(r);
			} else {
				lock_release(j->lock);
				if (j->mbox != NULL)
					maildir_free(j->mbox);
			}
		}
		session_unhold(s);
		cmd_login_job_free(j);
		return;
	}
	session_unhold(s);
	s->have_user = 0;
	switch (j->result) {
	case LR_OK:
		s->mbox = j->mbox;
		s->lock = j->lock;
		s->mech = j->mech;
		snprintf(s->user, sizeof(s->user), "%s", j->user);
		s->have_user = 1;
		maildir_stat(s->mbox, &count, &octets);
		s->listed = count;
		log_info("session=%016llx event=login peer=%s user=%s "
		    "method=%s result=ok messages=%zu octets=%llu%s",
		    (unsigned long long)s->id, s->peer, j->user, j->mech,
		    count, (unsigned long long)octets,
		    j->skipped ? " unreadable=yes" : "");
		if (j->skipped)
			log_warnx("session=%016llx user=%s %zu unreadable "
			    "message files left out", (unsigned long long)s->id,
			    j->user, j->skipped);
		session_logged_in(s);
		session_enter_state(s, ST_TRANSACTION);
		session_reply(s, "+OK Logged in, %zu messages (%llu octets).",
		    count, (unsigned long long)octets);
		session_resume(s);
		break;
	case LR_AUTH:
		log_info("session=%016llx event=login peer=%s user=%s "
		    "method=%s result=fail", (unsigned long long)s->id,
		    s->peer, j->user, j->mech);
		session_auth_failed(s, AUTH_FAILED);
		break;
	case LR_IN_USE:
		log_info("session=%016llx event=login peer=%s user=%s "
		    "method=%s result=in-use holder=\"%s\"",
		    (unsigned long long)s->id, s->peer, j->user, j->mech,
		    j->holder);
		session_reply(s, "-ERR [IN-USE] Mailbox is locked by another "
		    "session (%s).", j->holder);
		session_resume(s);
		break;
	case LR_DELAY:
		log_info("session=%016llx event=login peer=%s user=%s "
		    "method=%s result=login-delay wait=%ld",
		    (unsigned long long)s->id, s->peer, j->user, j->mech,
		    j->delay_left);
		session_reply(s, "-ERR [LOGIN-DELAY] Minimum time between "
		    "logins is %u seconds; try again in %ld.", j->login_delay,
		    j->delay_left);
		session_resume(s);
		break;
	case LR_SYS:
		log_warnx("session=%016llx event=login peer=%s user=%s "
		    "result=error step=\"%s\" error=\"%s\"",
		    (unsigned long long)s->id, s->peer, j->user,
		    j->errstr != NULL ? j->errstr : "?", strerror(j->err));
		session_reply(s, "-ERR [SYS/TEMP] Cannot open the mailbox, "
		    "try again later.");
		session_resume(s);
		break;
	}
	cmd_login_job_free(j);
}

/*
 * Start a login for user with the given credential.  Unknown users are
 * checked against a dummy secret of the same kind, so both answers come
 * after the same work and the same delay.
 */
static void
cmd_login_start(struct session *s, enum login_method method,
    const char *mech, const char *user, const char *cred,
    const char *challenge)
{
	const struct passwd_db *db = session_passwd();
	const struct passwd_entry *pe;
	struct login_job *j;
	char path[PATH_MAX];

	if ((j = calloc(1, sizeof(*j))) == NULL)
		goto fail;
	j->s = s;
	j->method = method;
	j->mech = mech;
	snprintf(j->client, sizeof(j->client), "%s", s->peer);
	j->login_delay = session_config()->login_delay;
	j->trash = session_config()->delete_trash;
	j->expire_days = session_config()->expire_days;
	j->trash_days = session_config()->trash_days;
	migrate_opts_from_conf(&j->migrate, session_config());
	pe = auth_db_lookup(db, user);
	if (pe == NULL) {
		j->unknown = 1;
		j->secret = strdup(auth_db_dummy(db));
		path[0] = '\0';
	} else {
		j->secret = strdup(pe->secret);
		if (pe->maildir != NULL)
			snprintf(path, sizeof(path), "%s", pe->maildir);
		else if (conf_expand_location(session_config()->mail_location,
		    user, path, sizeof(path)) == -1) {
			log_warnx("user %s: mail_location too long", user);
			j->unknown = 1;
		}
	}
	j->user = strdup(user);
	j->cred = strdup(cred);
	j->maildir = strdup(path);
	j->challenge = strdup(challenge != NULL ? challenge : "");
	if (j->secret == NULL || j->user == NULL || j->cred == NULL ||
	    j->maildir == NULL || j->challenge == NULL)
		goto fail;
	session_busy(s);
	session_hold(s);
	if (worker_submit(cmd_login_run, cmd_login_done, j) == -1) {
		session_unhold(s);
		goto fail;
	}
	return;
fail:
	if (j != NULL)
		cmd_login_job_free(j);
	session_reply(s, "-ERR [SYS/TEMP] Out of memory.");
	session_close(s, END_ERROR);
}

static void
cmd_user(struct session *s, int argc, char **argv)
{
	(void)argc;
	if (!session_plaintext_ok(s)) {
		session_error(s, "[AUTH] Plaintext authentication disallowed "
		    "on non-secure connections; use STLS.");
		return;
	}
	if (!auth_user_valid(argv[0], strlen(argv[0]))) {
		session_error(s, "[AUTH] Invalid user name.");
		return;
	}
	snprintf(s->user, sizeof(s->user), "%s", argv[0]);
	s->have_user = 1;
	session_reply(s, "+OK");
}

static void
cmd_pass(struct session *s, int argc, char **argv)
{
	(void)argc;
	if (!session_plaintext_ok(s)) {
		session_error(s, "[AUTH] Plaintext authentication disallowed "
		    "on non-secure connections; use STLS.");
		return;
	}
	if (!s->have_user) {
		session_error(s, "USER first.");
		return;
	}
	cmd_login_start(s, LOGIN_PASS, "pass", s->user, argv[0], NULL);
}

static int
cmd_is_hex_digest(const char *d)
{
	size_t i;

	for (i = 0; d[i] != '\0'; i++)
		if (!isxdigit((unsigned char)d[i]))
			return 0;
	return i == 32;
}

/* RFC 1939 section 7. */
static void
cmd_apop(struct session *s, int argc, char **argv)
{
	(void)argc;
	if (!auth_user_valid(argv[0], strlen(argv[0])) ||
	    !cmd_is_hex_digest(argv[1])) {
		session_auth_failed(s, AUTH_FAILED);
		return;
	}
	cmd_login_start(s, LOGIN_APOP, "apop", argv[0], argv[1],
	    s->timestamp);
}

/* ---------------------------------------------------------------------
 * SASL (RFC 5034): PLAIN, LOGIN, CRAM-MD5, SCRAM-SHA-256, OAUTHBEARER.
 */

/* SASL_OAUTH_ERR keeps the name for the log in sasl_data (a string, like
 * LOGIN's); only the SCRAM states hold a struct scram_state. */
enum sasl_mech { SASL_NONE, SASL_PLAIN, SASL_LOGIN_USER, SASL_LOGIN_PASS,
    SASL_CRAM, SASL_OAUTH, SASL_OAUTH_ERR, SASL_SCRAM_FIRST,
    SASL_SCRAM_FINAL, SASL_SCRAM_DONE };

/* A bearer token is a secret sent in the clear: OAUTHBEARER is offered
 * only where PLAIN is, and only when configured. */
static int
cmd_oauth_ok(const struct session *s)
{
	return oauth_conf_enabled(session_config()->oauth) &&
	    session_plaintext_ok(s);
}

/* The mechanisms usable on this connection now (CAPA SASL, AUTH). */
static void
cmd_sasl_list(const struct session *s, char *buf, size_t len)
{
	snprintf(buf, len, "%s%sSCRAM-SHA-256 CRAM-MD5",
	    session_plaintext_ok(s) ? "PLAIN LOGIN " : "",
	    cmd_oauth_ok(s) ? "OAUTHBEARER " : "");
}

void
cmd_sasl_free(struct session *s)
{
	if (s->sasl_data != NULL) {
		if (s->sasl_mech >= SASL_SCRAM_FIRST)
			scram_state_clear(s->sasl_data);
		else
			util_wipe(s->sasl_data, strlen(s->sasl_data));
		free(s->sasl_data);
		s->sasl_data = NULL;
	}
	s->sasl_mech = SASL_NONE;
}

/*
 * SCRAM-SHA-256 (RFC 5802, 7677): client-first, server-first, client-final
 * with the proof, server-final with the server's signature, then an empty
 * client response and the login.  An unknown user (or one without a SCRAM
 * secret) gets a stable fake salt and fails at the proof, like the rest.
 */
static void
cmd_sasl_scram(struct session *s, const char *line, size_t len)
{
	struct scram_state *st = s->sasl_data;
	const struct passwd_entry *pe;
	struct scram_secret sec;
	char *buf, out[512], b64[700];
	size_t n;
	int r;

	if (s->sasl_mech == SASL_SCRAM_DONE) {
		if (len != 0) {
			cmd_sasl_fail(s, "Expected an empty response.");
			return;
		}
		snprintf(out, sizeof(out), "%s", st->user);
		cmd_sasl_free(s);
		session_enter_state(s, ST_AUTHORIZATION);
		cmd_login_start(s, LOGIN_PROVEN, "scram-sha-256", out, "",
		    NULL);
		return;
	}
	if ((buf = cmd_b64(line, len, &n)) == NULL) {
		cmd_sasl_fail(s, "Invalid base64 data.");
		return;
	}
	if (s->sasl_mech == SASL_SCRAM_FIRST) {
		if (st == NULL && (st = calloc(1, sizeof(*st))) == NULL) {
			free(buf);
			cmd_sasl_fail(s, "[SYS/TEMP] Out of memory.");
			return;
		}
		s->sasl_data = st;
		if (scram_client_first(st, buf, n) == -1 ||
		    !auth_user_valid(st->user, strlen(st->user))) {
			free(buf);
			cmd_sasl_fail(s, "Invalid SCRAM client-first message.");
			return;
		}
		free(buf);
		pe = auth_db_lookup(session_passwd(), st->user);
		r = pe != NULL && scram_parse_secret(pe->secret, &sec) == 0 ?
		    scram_server_first(st, &sec, out, sizeof(out)) :
		    scram_server_first(st, NULL, out, sizeof(out));
		util_wipe(&sec, sizeof(sec));
		if (r == -1 || util_b64_encode((unsigned char *)out,
		    strlen(out), b64, sizeof(b64)) == -1) {
			cmd_sasl_fail(s, "[SYS/TEMP] SCRAM failed.");
			return;
		}
		s->sasl_mech = SASL_SCRAM_FINAL;
		session_reply(s, "+ %s", b64);
		return;
	}
	r = scram_client_final(st, buf, n, out, sizeof(out));
	free(buf);
	if (r == -1) {
		cmd_sasl_fail(s, "Invalid SCRAM client-final message.");
		return;
	}
	if (r == 0) {
		snprintf(s->user, sizeof(s->user), "%s", st->user);
		cmd_sasl_free(s);
		session_enter_state(s, ST_AUTHORIZATION);
		log_info("session=%016llx event=login peer=%s user=%s "
		    "method=scram-sha-256 result=fail",
		    (unsigned long long)s->id, s->peer, s->user);
		session_auth_failed(s, AUTH_FAILED);
		return;
	}
	util_b64_encode((unsigned char *)out, strlen(out), b64, sizeof(b64));
	s->sasl_mech = SASL_SCRAM_DONE;
	session_reply(s, "+ %s", b64);
}

/*
 * OAUTHBEARER (RFC 7628): the token is checked on a worker thread (a JWT
 * signature, or an HTTP request to the introspection endpoint), then a
 * valid token's user logs in through the usual login job.  A refused
 * token gets the error challenge of section 3.2.2; the client's answer
 * (a lone ^A) then fails like any other login, delay and penalty included.
 */
struct oauth_job {
	struct session		*s;
	struct oauth_conf	*oc;
	char			*token;
	size_t			 toklen;
	char			 authz[AUTH_USER_MAX + 1];
	char			 user[AUTH_USER_MAX + 1];
	enum oauth_result	 result;
	const char		*why;
};

static void
cmd_oauth_job_free(struct oauth_job *j)
{
	if (j->token != NULL) {
		util_wipe(j->token, j->toklen);
		free(j->token);
	}
	oauth_conf_unref(j->oc);
	free(j);
}

/* Worker thread: is the token good, and for whom? */
static void
cmd_oauth_run(void *arg)
{
	struct oauth_job *j = arg;

	j->result = oauth_verify(j->oc, j->token, j->toklen, time(NULL),
	    j->user, sizeof(j->user), &j->why);
	if (j->result == OAUTH_OK && j->authz[0] != '\0' &&
	    strcmp(j->authz, j->user) != 0) {
		/* Acting as another user is not offered. */
		j->result = OAUTH_INVALID;
		j->why = "authzid is not the token's user";
	}
}

/* Loop thread: log in, or send the error challenge. */
static void
cmd_oauth_done(void *arg)
{
	struct oauth_job *j = arg;
	struct session *s = j->s;
	const char *who;

	if (s->state == ST_CLOSING) {
		session_unhold(s);
		cmd_oauth_job_free(j);
		return;
	}
	session_unhold(s);
	if (j->result == OAUTH_OK &&
	    auth_db_lookup(session_passwd(), j->user) == NULL) {
		j->result = OAUTH_INVALID;
		j->why = "user not in passwd_file";
	}
	who = j->user[0] != '\0' ? j->user : j->authz;
	switch (j->result) {
	case OAUTH_OK:
		cmd_sasl_free(s);
		session_enter_state(s, ST_AUTHORIZATION);
		cmd_login_start(s, LOGIN_PROVEN, "oauthbearer", j->user, "",
		    NULL);
		break;
	case OAUTH_INVALID:
		log_info("session=%016llx event=oauth peer=%s user=%s "
		    "result=invalid reason=\"%s\"", (unsigned long long)s->id,
		    s->peer, who, j->why != NULL ? j->why : "?");
		s->sasl_mech = SASL_OAUTH_ERR;
		s->sasl_data = strdup(who);
		session_reply(s, "+ %s", oauth_error_challenge());
		session_resume(s);
		break;
	case OAUTH_TEMP:
		log_warnx("session=%016llx event=oauth peer=%s user=%s "
		    "result=error reason=\"%s\"", (unsigned long long)s->id,
		    s->peer, who, j->why != NULL ? j->why : "?");
		cmd_sasl_free(s);
		session_enter_state(s, ST_AUTHORIZATION);
		session_reply(s, "-ERR [SYS/TEMP] Cannot check the token now, "
		    "try again later.");
		session_resume(s);
		break;
	}
	cmd_oauth_job_free(j);
}

/* The client's OAUTHBEARER message, or its answer to the error. */
static void
cmd_sasl_oauth(struct session *s, const char *line, size_t len)
{
	struct oauth_job *j;
	const char *tok, *who;
	char *buf;
	size_t n, toklen;

	if (s->sasl_mech == SASL_OAUTH_ERR) {
		/* RFC 7628 section 3.2.3: whatever it says, it failed. */
		who = s->sasl_data != NULL ? s->sasl_data : "";
		log_info("session=%016llx event=login peer=%s user=%s "
		    "method=oauthbearer result=fail", (unsigned long long)s->id,
		    s->peer, who);
		cmd_sasl_free(s);
		session_enter_state(s, ST_AUTHORIZATION);
		session_auth_failed(s, AUTH_FAILED);
		return;
	}
	if ((buf = cmd_b64(line, len, &n)) == NULL) {
		cmd_sasl_fail(s, "Invalid base64 data.");
		return;
	}
	if ((j = calloc(1, sizeof(*j))) == NULL) {
		util_wipe(buf, n);
		free(buf);
		cmd_sasl_fail(s, "[SYS/TEMP] Out of memory.");
		return;
	}
	if (oauth_gs2_parse(buf, n, j->authz, sizeof(j->authz), &tok,
	    &toklen) == -1 || (j->authz[0] != '\0' &&
	    !auth_user_valid(j->authz, strlen(j->authz)))) {
		util_wipe(buf, n);
		free(buf);
		cmd_oauth_job_free(j);
		log_info("session=%016llx event=login peer=%s user= "
		    "method=oauthbearer result=fail",
		    (unsigned long long)s->id, s->peer);
		cmd_sasl_free(s);
		session_enter_state(s, ST_AUTHORIZATION);
		session_auth_failed(s, AUTH_FAILED);
		return;
	}
	j->s = s;
	j->toklen = toklen;
	j->token = strndup(tok, toklen);
	j->oc = oauth_conf_ref(session_config()->oauth);
	util_wipe(buf, n);
	free(buf);
	if (j->token == NULL) {
		cmd_oauth_job_free(j);
		cmd_sasl_fail(s, "[SYS/TEMP] Out of memory.");
		return;
	}
	session_busy(s);
	session_hold(s);
	if (worker_submit(cmd_oauth_run, cmd_oauth_done, j) == -1) {
		session_unhold(s);
		cmd_oauth_job_free(j);
		session_reply(s, "-ERR [SYS/TEMP] Out of memory.");
		session_close(s, END_ERROR);
	}
}

/* Leave the SASL exchange with an error; back to AUTHORIZATION. */
static void
cmd_sasl_fail(struct session *s, const char *msg)
{
	cmd_sasl_free(s);
	session_enter_state(s, ST_AUTHORIZATION);
	session_error(s, "%s", msg);
}

/* Decode a base64 line into a NUL-terminated buffer; NULL if invalid. */
static char *
cmd_b64(const char *in, size_t inlen, size_t *outlen)
{
	char *out;
	size_t cap = inlen / 4 * 3 + 1;

	if ((out = malloc(cap + 1)) == NULL)
		return NULL;
	*outlen = cap;
	if (inlen == 1 && in[0] == '=') {
		/* RFC 5034 section 4: "=" is an empty initial response. */
		*outlen = 0;
	} else if (util_b64_decode(in, inlen, (unsigned char *)out,
	    outlen) == -1) {
		free(out);
		return NULL;
	}
	out[*outlen] = '\0';
	return out;
}

/* A complete PLAIN message (RFC 4616). */
static void
cmd_sasl_plain(struct session *s, const char *b64, size_t len)
{
	char *buf;
	size_t n;
	const char *authz, *user, *pass;

	if ((buf = cmd_b64(b64, len, &n)) == NULL) {
		cmd_sasl_fail(s, "Invalid base64 data.");
		return;
	}
	cmd_sasl_free(s);
	session_enter_state(s, ST_AUTHORIZATION);
	if (auth_plain_split(buf, n, &authz, &user, &pass) == -1 ||
	    !auth_user_valid(user, strlen(user)) ||
	    (*authz != '\0' && strcmp(authz, user) != 0)) {
		/* Acting as another user is not offered: a failed login. */
		util_wipe(buf, n);
		free(buf);
		session_auth_failed(s, AUTH_FAILED);
		return;
	}
	cmd_login_start(s, LOGIN_PASS, "plain", user, pass, NULL);
	util_wipe(buf, n);
	free(buf);
}

static void
cmd_auth(struct session *s, int argc, char **argv)
{
	char mechs[64];
	char chal[128];
	const char *ir = argc > 1 ? argv[1] : NULL;
	int plain_ok = session_plaintext_ok(s);

	cmd_sasl_list(s, mechs, sizeof(mechs));
	if (argc == 0) {
		/* Outlook's bare AUTH probe: list what can be used. */
		session_reply(s, "+OK");
		char *save, *p;
		for (p = strtok_r(mechs, " ", &save); p != NULL;
		    p = strtok_r(NULL, " ", &save))
			session_reply(s, "%s", p);
		session_reply(s, ".");
		return;
	}
	if (strcasecmp(argv[0], "PLAIN") == 0 && plain_ok) {
		if (ir != NULL) {
			cmd_sasl_plain(s, ir, strlen(ir));
			return;
		}
		s->sasl_mech = SASL_PLAIN;
		session_enter_state(s, ST_SASL);
		session_reply(s, "+ ");
	} else if (strcasecmp(argv[0], "LOGIN") == 0 && plain_ok) {
		s->sasl_mech = SASL_LOGIN_USER;
		session_enter_state(s, ST_SASL);
		if (ir != NULL) {
			cmd_sasl_line(s, ir, strlen(ir));
			return;
		}
		session_reply(s, "+ VXNlcm5hbWU6");	/* "Username:" */
	} else if (strcasecmp(argv[0], "OAUTHBEARER") == 0 &&
	    cmd_oauth_ok(s)) {
		s->sasl_mech = SASL_OAUTH;
		session_enter_state(s, ST_SASL);
		if (ir != NULL) {
			cmd_sasl_oauth(s, ir, strlen(ir));
			return;
		}
		session_reply(s, "+ ");
	} else if (strcasecmp(argv[0], "SCRAM-SHA-256") == 0) {
		s->sasl_mech = SASL_SCRAM_FIRST;
		session_enter_state(s, ST_SASL);
		if (ir != NULL) {
			cmd_sasl_scram(s, ir, strlen(ir));
			return;
		}
		session_reply(s, "+ ");
	} else if (strcasecmp(argv[0], "CRAM-MD5") == 0 && ir == NULL) {
		s->sasl_mech = SASL_CRAM;
		session_enter_state(s, ST_SASL);
		if (util_b64_encode((const unsigned char *)s->timestamp,
		    strlen(s->timestamp), chal, sizeof(chal)) == -1) {
			cmd_sasl_fail(s, "[SYS/PERM] Challenge too long.");
			return;
		}
		session_reply(s, "+ %s", chal);
	} else if ((strcasecmp(argv[0], "PLAIN") == 0 ||
	    strcasecmp(argv[0], "LOGIN") == 0 ||
	    (strcasecmp(argv[0], "OAUTHBEARER") == 0 &&
	    oauth_conf_enabled(session_config()->oauth))) && !plain_ok)
		session_error(s, "[AUTH] Plaintext authentication disallowed "
		    "on non-secure connections; use STLS.");
	else
		session_error(s, "Unsupported authentication mechanism.");
}

/* One client response during an AUTH exchange. */
void
cmd_sasl_line(struct session *s, const char *line, size_t len)
{
	char *buf, *sp;
	size_t n;

	if (s->sasl_mech == SASL_OAUTH_ERR) {
		/* Even "*" here: the failure is already decided. */
		cmd_sasl_oauth(s, line, len);
		return;
	}
	if (len == 1 && line[0] == '*') {
		cmd_sasl_fail(s, "Authentication cancelled.");
		return;
	}
	if (len > POP_LINE_ABSURD) {
		cmd_sasl_fail(s, "Response too long.");
		return;
	}
	switch (s->sasl_mech) {
	case SASL_PLAIN:
		cmd_sasl_plain(s, line, len);
		return;
	case SASL_LOGIN_USER:
		if ((buf = cmd_b64(line, len, &n)) == NULL) {
			cmd_sasl_fail(s, "Invalid base64 data.");
			return;
		}
		s->sasl_data = buf;
		s->sasl_mech = SASL_LOGIN_PASS;
		session_reply(s, "+ UGFzc3dvcmQ6");	/* "Password:" */
		return;
	case SASL_LOGIN_PASS:
		if ((buf = cmd_b64(line, len, &n)) == NULL) {
			cmd_sasl_fail(s, "Invalid base64 data.");
			return;
		}
		sp = s->sasl_data;
		s->sasl_data = NULL;
		cmd_sasl_free(s);
		session_enter_state(s, ST_AUTHORIZATION);
		if (sp == NULL || !auth_user_valid(sp, strlen(sp)) ||
		    strlen(buf) != n || n == 0) {
			session_auth_failed(s, AUTH_FAILED);
		} else
			cmd_login_start(s, LOGIN_PASS, "login", sp, buf, NULL);
		if (sp != NULL) {
			util_wipe(sp, strlen(sp));
			free(sp);
		}
		util_wipe(buf, n);
		free(buf);
		return;
	case SASL_CRAM:
		if ((buf = cmd_b64(line, len, &n)) == NULL) {
			cmd_sasl_fail(s, "Invalid base64 data.");
			return;
		}
		cmd_sasl_free(s);
		session_enter_state(s, ST_AUTHORIZATION);
		sp = strrchr(buf, ' ');
		if (sp == NULL || strlen(buf) != n ||
		    !cmd_is_hex_digest(sp + 1)) {
			free(buf);
			session_auth_failed(s, AUTH_FAILED);
			return;
		}
		*sp++ = '\0';
		if (!auth_user_valid(buf, strlen(buf))) {
			free(buf);
			session_auth_failed(s, AUTH_FAILED);
			return;
		}
		cmd_login_start(s, LOGIN_CRAM, "cram-md5", buf, sp,
		    s->timestamp);
		free(buf);
		return;
	case SASL_OAUTH:
		cmd_sasl_oauth(s, line, len);
		return;
	case SASL_SCRAM_FIRST:
	case SASL_SCRAM_FINAL:
	case SASL_SCRAM_DONE:
		cmd_sasl_scram(s, line, len);
		return;
	default:
		cmd_sasl_fail(s, "No authentication in progress.");
		return;
	}
}

static void
cmd_stls(struct session *s, int argc, char **argv)
{
	(void)argc;
	(void)argv;
	if (s->flags & SF_TLS) {
		session_error(s, "TLS is already active.");
		return;
	}
	if (!session_stls_ok(s)) {
		session_error(s, "STLS not available.");
		return;
	}
	session_reply(s, "+OK Begin TLS negotiation now.");
	if (session_starttls(s) == -1) {
		log_warnx("session=%016llx STLS failed", (unsigned long long)s->id);
		session_close(s, END_ERROR);
	}
}

/* RFC 2449 section 5: what this connection can do in its state. */
static void
cmd_capa(struct session *s, int argc, char **argv)
{
	const struct config *cfg = session_config();
	char mechs[64];

	(void)argc;
	(void)argv;
	session_reply(s, "+OK Capability list follows");
	session_reply(s, "TOP");
	if (s->state == ST_AUTHORIZATION && session_plaintext_ok(s))
		session_reply(s, "USER");
	session_reply(s, "UIDL");
	session_reply(s, "RESP-CODES");
	session_reply(s, "AUTH-RESP-CODE");
	session_reply(s, "PIPELINING");
	if (cfg->expire_days < 0)
		session_reply(s, "EXPIRE NEVER");
	else
		session_reply(s, "EXPIRE %d", cfg->expire_days);
	if (cfg->login_delay > 0)
		session_reply(s, "LOGIN-DELAY %u", cfg->login_delay);
	if (s->state == ST_AUTHORIZATION) {
		cmd_sasl_list(s, mechs, sizeof(mechs));
		session_reply(s, "SASL %s", mechs);
		if (session_stls_ok(s))
			session_reply(s, "STLS");
	}
	session_reply(s, "UTF8 USER");
	session_reply(s, "LANG");
	session_reply(s, "IMPLEMENTATION evpop3d-%s", PACKAGE_VERSION);
	session_reply(s, ".");
}

/*
 * RFC 6856 section 2: UTF8 mode.  User names and passwords are taken as
 * UTF-8 (UTF8 USER), and messages go out as stored: evpop3d never
 * down-converts, so nothing changes on the wire but the promise.
 */
static void
cmd_utf8(struct session *s, int argc, char **argv)
{
	(void)argc;
	(void)argv;
	s->flags |= SF_UTF8;
	session_reply(s, "+OK UTF8 enabled");
}

/* RFC 6856 section 3: replies are in English, the one language here. */
static void
cmd_lang(struct session *s, int argc, char **argv)
{
	if (argc == 0) {
		session_reply(s, "+OK Language listing follows");
		session_reply(s, "en English");
		session_reply(s, ".");
		return;
	}
	if (strcmp(argv[0], "*") == 0 || strcasecmp(argv[0], "en") == 0 ||
	    strncasecmp(argv[0], "en-", 3) == 0 ||
	    strcasecmp(argv[0], "i-default") == 0) {
		session_reply(s, "+OK en Language changed");
		return;
	}
	session_error(s, "Unsupported language %s.", "requested");
}

/* ---------------------------------------------------------------------
 * TRANSACTION.
 */

/*
 * The message a number argument names, or NULL after an -ERR reply: not a
 * plain decimal, 0, beyond the snapshot, or marked deleted.
 */
static struct maildir_msg *
cmd_msg_arg(struct session *s, const char *arg, size_t *idx)
{
	unsigned long long n;
	const char *errstr;
	struct maildir_msg *m;

	if (util_strtonum(arg, 0, ULLONG_MAX, &n, &errstr) == -1 &&
	    strcmp(errstr, "too large") != 0) {
		session_error(s, "Invalid message number.");
		return NULL;
	}
	if (errstr != NULL || n == 0 || n > maildir_count(s->mbox)) {
		session_error(s, "No such message.");
		return NULL;
	}
	m = maildir_msg(s->mbox, n - 1);
	if (m->deleted) {
		session_error(s, "Message %llu has been deleted.", n);
		return NULL;
	}
	*idx = n - 1;
	return m;
}

static void
cmd_stat(struct session *s, int argc, char **argv)
{
	size_t count;
	uint64_t octets;

	(void)argc;
	(void)argv;
	maildir_stat(s->mbox, &count, &octets);
	session_reply(s, "+OK %zu %llu", count, (unsigned long long)octets);
}

/* LIST and UIDL share their shape: one message, or all not deleted. */
static void
cmd_listing(struct session *s, int argc, char **argv, int uidl)
{
	struct maildir_msg *m;
	size_t i, n, count;
	uint64_t octets;

	if (argc == 1) {
		if ((m = cmd_msg_arg(s, argv[0], &i)) == NULL)
			return;
		if (uidl)
			session_reply(s, "+OK %zu %s", i + 1, m->uidl);
		else
			session_reply(s, "+OK %zu %llu", i + 1,
			    (unsigned long long)m->size);
		return;
	}
	maildir_stat(s->mbox, &count, &octets);
	if (uidl)
		session_reply(s, "+OK Unique-ID listing follows");
	else
		session_reply(s, "+OK %zu messages (%llu octets)", count,
		    (unsigned long long)octets);
	n = maildir_count(s->mbox);
	for (i = 0; i < n; i++) {
		m = maildir_msg(s->mbox, i);
		if (m->deleted)
			continue;
		if (uidl)
			session_reply(s, "%zu %s", i + 1, m->uidl);
		else
			session_reply(s, "%zu %llu", i + 1,
			    (unsigned long long)m->size);
	}
	session_reply(s, ".");
}

static void
cmd_list(struct session *s, int argc, char **argv)
{
	cmd_listing(s, argc, argv, 0);
}

static void
cmd_uidl(struct session *s, int argc, char **argv)
{
	cmd_listing(s, argc, argv, 1);
}

/* Open message idx and start streaming it after first line. */
static void
cmd_send_message(struct session *s, size_t idx, long long top_lines)
{
	struct maildir_msg *m = maildir_msg(s->mbox, idx);
	int fd;

	if ((fd = maildir_msg_open(s->mbox, idx)) == -1) {
		if (errno == ENOENT)
			session_reply(s, "-ERR Message %zu was removed by "
			    "another program.", idx + 1);
		else if (errno == ESTALE) {
			log_warnx("session=%016llx user=%s message %s was "
			    "rewritten on disk since login",
			    (unsigned long long)s->id, s->user, m->name);
			session_reply(s, "-ERR [SYS/TEMP] Message %zu changed "
			    "on disk; log in again.", idx + 1);
		} else {
			log_warn("session=%016llx user=%s open message %s",
			    (unsigned long long)s->id, s->user, m->name);
			session_reply(s, "-ERR [SYS/TEMP] Cannot read message "
			    "%zu.", idx + 1);
		}
		return;
	}
	if (top_lines < 0) {
		session_reply(s, "+OK %llu octets",
		    (unsigned long long)m->size);
		s->retr_msgs++;
		m->retrieved = 1;
		s->retr_octets += m->size;
	} else
		session_reply(s, "+OK");
	if (retr_start(s, fd, top_lines, m->size) == -1) {
		session_reply(s, "-ERR [SYS/TEMP] Out of memory.");
		session_close(s, END_ERROR);
	}
}

static void
cmd_retr(struct session *s, int argc, char **argv)
{
	size_t idx;

	(void)argc;
	if (cmd_msg_arg(s, argv[0], &idx) == NULL)
		return;
	cmd_send_message(s, idx, -1);
}

static void
cmd_top(struct session *s, int argc, char **argv)
{
	size_t idx;
	unsigned long long lines;
	const char *errstr;

	(void)argc;
	/* The line count first: "TOP 0 x" and "TOP 1 x" both fail on x. */
	if (util_strtonum(argv[1], 0, LLONG_MAX, &lines, &errstr) == -1) {
		if (strcmp(errstr, "too large") != 0) {
			session_error(s, "Invalid line count.");
			return;
		}
		lines = LLONG_MAX;	/* more lines than any message has */
	}
	if (cmd_msg_arg(s, argv[0], &idx) == NULL)
		return;
	cmd_send_message(s, idx, (long long)lines);
}

static void
cmd_dele(struct session *s, int argc, char **argv)
{
	struct maildir_msg *m;
	size_t idx;

	(void)argc;
	if ((m = cmd_msg_arg(s, argv[0], &idx)) == NULL)
		return;
	m->deleted = 1;
	session_reply(s, "+OK Message %zu deleted.", idx + 1);
}

static void
cmd_rset(struct session *s, int argc, char **argv)
{
	size_t count;
	uint64_t octets;

	(void)argc;
	(void)argv;
	maildir_unmark_all(s->mbox);
	maildir_stat(s->mbox, &count, &octets);
	session_reply(s, "+OK Maildrop has %zu messages (%llu octets).",
	    count, (unsigned long long)octets);
}

static void
cmd_noop(struct session *s, int argc, char **argv)
{
	(void)argc;
	(void)argv;
	session_reply(s, "+OK");
}

/* ---------------------------------------------------------------------
 * QUIT and UPDATE.
 */

struct update_job {
	int			 expire_days;
	struct session		*s;
	struct mailbox		*mbox;
	struct mbox_lock	*lock;
	size_t			 marked, removed, failed, left;
	uint64_t		 left_octets;
	int			 rc;
};

/* Worker thread: RFC 1939 section 6, then give the mailbox back. */
static void
cmd_update_run(void *arg)
{
	struct update_job *u = arg;

	u->rc = u->marked > 0 ?
	    maildir_update(u->mbox, &u->removed, &u->failed) : 0;
	if (u->rc == 0 && u->expire_days > 0)
		maildir_note_retrieved(u->mbox, time(NULL));
	maildir_stat(u->mbox, &u->left, &u->left_octets);
	lock_release(u->lock);
	maildir_free(u->mbox);
}

static void
cmd_update_done(void *arg)
{
	struct update_job *u = arg;
	struct session *s = u->s;

	s->left_msgs = u->left;
	s->left_octets = u->left_octets;
	s->removed = u->removed;
	if (u->rc == -1) {
		log_warnx("session=%016llx user=%s UPDATE: %zu of %zu marked "
		    "messages could not be removed", (unsigned long long)s->id,
		    s->user, u->failed, u->marked);
		s->del_msgs = u->removed;
		session_reply(s, "-ERR [SYS/TEMP] Some deleted messages could "
		    "not be removed.");
	} else
		session_reply(s, "+OK Bye, %zu messages removed.",
		    u->removed);
	free(u);
	if (s->state != ST_CLOSING)
		session_close(s, s->flags & SF_PEER_GONE ? END_QUIT_UNSENT :
		    END_QUIT);
	session_unhold(s);
}

static void
cmd_quit(struct session *s, int argc, char **argv)
{
	struct update_job *u;
	size_t i, n;

	(void)argc;
	(void)argv;
	if (s->state == ST_AUTHORIZATION) {
		session_reply(s, "+OK Bye.");
		session_close(s, END_QUIT);
		return;
	}
	if ((u = calloc(1, sizeof(*u))) == NULL) {
		session_reply(s, "-ERR [SYS/TEMP] Out of memory.");
		session_close(s, END_ERROR);
		return;
	}
	u->expire_days = session_config()->expire_days;
	n = maildir_count(s->mbox);
	for (i = 0; i < n; i++) {
		struct maildir_msg *m = maildir_msg(s->mbox, i);
		/* EXPIRE 0: what was retrieved goes with the QUIT. */
		if (u->expire_days == 0 && m->retrieved)
			m->deleted = 1;
		if (m->deleted) {
			u->marked++;
			s->del_octets += m->size;
		}
	}
	s->del_msgs = u->marked;
	u->s = s;
	u->mbox = s->mbox;
	u->lock = s->lock;
	s->mbox = NULL;
	s->lock = NULL;
	session_enter_state(s, ST_UPDATE);
	session_busy(s);
	session_hold(s);
	if (worker_submit(cmd_update_run, cmd_update_done, u) == -1) {
		cmd_update_run(u);
		cmd_update_done(u);
	}
}
