/*
 * evpop3d unit tests: the session state machine and command handlers,
 * driven in-process over a bufferevent pair (no sockets) against a real
 * Maildir in a temporary directory, with the real worker pool.
 */
#include "config.h"

#include <sys/stat.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/thread.h>

#include <CUnit/CUnit.h>

#include "auth.h"
#include "conf.h"
#include "lock.h"
#include "session.h"
#include "worker.h"
#include "tests.h"

static struct event_base	*tc_base;
static struct config		*tc_cfg;
static char			 tc_dir[512];
static char			 tc_md[600];

struct tc_client {
	struct bufferevent	*bev;
	int			 eof;
};

static void
tc_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct tc_client *c = arg;

	(void)bev;
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		c->eof = 1;
}

static void
tc_timeout_cb(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	*(int *)arg = 1;
}

/* Run the loop until cond(c) holds or 3 s pass; returns cond. */
static int
tc_run_until(struct tc_client *c, int (*cond)(struct tc_client *))
{
	int timedout = 0;
	struct event *t = evtimer_new(tc_base, tc_timeout_cb, &timedout);
	struct timeval tv = { 3, 0 };

	evtimer_add(t, &tv);
	while (!cond(c) && !timedout)
		event_base_loop(tc_base, EVLOOP_ONCE);
	event_free(t);
	return cond(c);
}

static int
tc_has_line(struct tc_client *c)
{
	return evbuffer_search_eol(bufferevent_get_input(c->bev), NULL, NULL,
	    EVBUFFER_EOL_CRLF_STRICT).pos != -1 || c->eof;
}

static int
tc_is_eof(struct tc_client *c)
{
	return c->eof;
}

/* One reply line without CRLF (static buffer), or "" at EOF. */
static const char *
tc_line(struct tc_client *c)
{
	static char buf[4096];
	char *l;
	size_t n;

	tc_run_until(c, tc_has_line);
	l = evbuffer_readln(bufferevent_get_input(c->bev), &n,
	    EVBUFFER_EOL_CRLF_STRICT);
	if (l == NULL)
		return "";
	snprintf(buf, sizeof(buf), "%s", l);
	free(l);
	return buf;
}

/* A multi-line body up to ".", lines joined with "\n", un-stuffed. */
static const char *
tc_multi(struct tc_client *c)
{
	static char out[65536];
	const char *l;
	size_t o = 0;

	out[0] = '\0';
	for (;;) {
		l = tc_line(c);
		if (strcmp(l, ".") == 0 || c->eof)
			break;
		if (l[0] == '.')
			l++;
		o += snprintf(out + o, sizeof(out) - o, "%s\n", l);
	}
	return out;
}

static void
tc_send(struct tc_client *c, const char *s)
{
	bufferevent_write(c->bev, s, strlen(s));
}

static const char *
tc_cmd(struct tc_client *c, const char *s)
{
	tc_send(c, s);
	return tc_line(c);
}

static int
tc_starts(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

static struct tc_client *
tc_connect(void)
{
	struct bufferevent *pair[2];
	struct tc_client *c = calloc(1, sizeof(*c));
	struct sockaddr_in sin;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(4242);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CU_ASSERT_FATAL(bufferevent_pair_new(tc_base,
	    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS, pair) == 0);
	c->bev = pair[1];
	bufferevent_setcb(c->bev, NULL, NULL, tc_event_cb, c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	CU_ASSERT_FATAL(session_start(pair[0], (struct sockaddr *)&sin,
	    sizeof(sin), 0, 0) == 0);
	CU_ASSERT(tc_starts(tc_line(c), "+OK"));
	return c;
}

static void
tc_close(struct tc_client *c)
{
	/* A pair tells its partner EOF only when flushed as finished. */
	bufferevent_flush(c->bev, EV_WRITE, BEV_FINISHED);
	bufferevent_free(c->bev);
	free(c);
	/* Let the session see EOF and its cleanup job finish. */
	for (int i = 0; i < 1000 && (session_count() > 0 ||
	    worker_pending() > 0 || lock_count() > 0); i++) {
		event_base_loop(tc_base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
		usleep(2000);
	}
}

/* Every session ended and gave its lock back. */
static void
tc_assert_idle(void)
{
	CU_ASSERT_EQUAL(session_count(), 0);
	CU_ASSERT_EQUAL(lock_count(), 0);
}

static void
tc_put(const char *sub, const char *name, const char *data)
{
	char path[1024];

	snprintf(path, sizeof(path), "%s/%s/%s", tc_md, sub, name);
	CU_ASSERT_FATAL(test_write_file(path, data, strlen(data)) == 0);
}

static int
tc_files(const char *sub)
{
	char path[1024];
	DIR *d;
	struct dirent *de;
	int n = 0;

	snprintf(path, sizeof(path), "%s/%s", tc_md, sub);
	if ((d = opendir(path)) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static int
tc_setup(void)
{
	char conf[2048], err[256], warn[256], path[700];
	struct passwd_db *db;

	snprintf(tc_dir, sizeof(tc_dir), "%s", test_tmpdir());
	snprintf(conf, sizeof(conf),
	    "listen 127.0.0.1:1\npasswd_file %s/passwd\n"
	    "mail_location %s/%%u/Maildir\nallow_plaintext yes\n"
	    "auth_fail_delay_ms 10\nidle_timeout 600\n", tc_dir, tc_dir);
	tc_cfg = conf_parse("test.conf", conf, strlen(conf), err,
	    sizeof(err), warn, sizeof(warn));
	if (tc_cfg == NULL) {
		fprintf(stderr, "conf: %s\n", err);
		return 1;
	}
	db = auth_db_parse("passwd", "alice:{PLAIN}secret\nbob:{PLAIN}pw\n",
	    strlen("alice:{PLAIN}secret\nbob:{PLAIN}pw\n"), err, sizeof(err));
	if (db == NULL) {
		fprintf(stderr, "passwd: %s\n", err);
		return 1;
	}
	evthread_use_pthreads();
	tc_base = event_base_new();
	lock_init(300);
	session_init(tc_base, tc_cfg, db);
	worker_init(tc_base, 2);
	snprintf(tc_md, sizeof(tc_md), "%s/alice/Maildir", tc_dir);
	snprintf(path, sizeof(path), "%s/alice", tc_dir);
	mkdir(path, 0700);
	return 0;
}

static int
tc_teardown(void)
{
	worker_shutdown();
	session_set_passwd(NULL);
	conf_free(tc_cfg);
	event_base_free(tc_base);
	test_rmtree(tc_dir);
	return 0;
}

/* A fresh mailbox with three messages. */
static void
tc_mailbox(void)
{
	char path[700];

	test_rmtree(tc_md);
	snprintf(path, sizeof(path), "%s", tc_md);
	CU_ASSERT_FATAL(mkdir(path, 0700) == 0);
	strcat(path, "/cur");
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/new", tc_md);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/tmp", tc_md);
	mkdir(path, 0700);
	tc_put("cur", "1000.A.host:2,", "Subject: a\n\nline\n.dot\n");
	tc_put("cur", "1001.B.host:2,S", "Subject: b\r\n\r\nbody\r\n");
	tc_put("new", "1002.C.host", "Subject: c\n\nno newline");
}

static struct tc_client *
tc_login(void)
{
	struct tc_client *c = tc_connect();

	CU_ASSERT(tc_starts(tc_cmd(c, "USER alice\r\n"), "+OK"));
	CU_ASSERT(tc_starts(tc_cmd(c, "PASS secret\r\n"), "+OK"));
	return c;
}

static void
test_greeting_timestamp(void)
{
	struct tc_client *c;
	struct bufferevent *pair[2];
	struct sockaddr_in sin = { .sin_family = AF_INET };
	const char *g, *lt;

	CU_ASSERT_FATAL(bufferevent_pair_new(tc_base, 0, pair) == 0);
	c = calloc(1, sizeof(*c));
	c->bev = pair[1];
	bufferevent_setcb(c->bev, NULL, NULL, tc_event_cb, c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	session_start(pair[0], (struct sockaddr *)&sin, sizeof(sin), 0, 0);
	g = tc_line(c);
	CU_ASSERT(tc_starts(g, "+OK"));
	/* One msg-id at the end, no other angle brackets. */
	lt = strchr(g, '<');
	CU_ASSERT_PTR_NOT_NULL_FATAL(lt);
	CU_ASSERT(strchr(lt + 1, '<') == NULL);
	CU_ASSERT(strchr(g, '>') == g + strlen(g) - 1);
	CU_ASSERT(strchr(lt, '@') != NULL);
	tc_close(c);
}

static void
test_wrong_state_and_unknown(void)
{
	struct tc_client *c;

	tc_mailbox();
	c = tc_connect();
	CU_ASSERT(tc_starts(tc_cmd(c, "STAT\r\n"), "-ERR"));
	CU_ASSERT(tc_starts(tc_cmd(c, "RETR 1\r\n"), "-ERR"));
	CU_ASSERT(tc_starts(tc_cmd(c, "XYZZY\r\n"), "-ERR"));
	CU_ASSERT(tc_starts(tc_cmd(c, "USER\r\n"), "-ERR"));
	CU_ASSERT(tc_starts(tc_cmd(c, "PASS secret\r\n"), "-ERR"));
	CU_ASSERT(tc_starts(tc_cmd(c, "USER a/../b\r\n"), "-ERR [AUTH]"));
	CU_ASSERT(tc_starts(tc_cmd(c, "user alice \t\r\n"), "+OK"));
	CU_ASSERT(tc_starts(tc_cmd(c, "pass secret\n"), "+OK"));
	CU_ASSERT(tc_starts(tc_cmd(c, "USER alice\r\n"), "-ERR"));
	CU_ASSERT(tc_starts(tc_cmd(c, "NOOP extra\r\n"), "-ERR"));
	CU_ASSERT(tc_starts(tc_cmd(c, "TOP 1\r\n"), "-ERR"));
	CU_ASSERT(tc_starts(tc_cmd(c, "noop\r\n"), "+OK"));
	tc_close(c);
}

static void
test_bad_auth_same_reply(void)
{
	struct tc_client *c;
	char r1[256], r2[256];

	tc_mailbox();
	c = tc_connect();
	tc_cmd(c, "USER alice\r\n");
	snprintf(r1, sizeof(r1), "%s", tc_cmd(c, "PASS wrong\r\n"));
	tc_cmd(c, "USER nosuch\r\n");
	snprintf(r2, sizeof(r2), "%s", tc_cmd(c, "PASS wrong\r\n"));
	CU_ASSERT(tc_starts(r1, "-ERR [AUTH]"));
	CU_ASSERT_STRING_EQUAL(r1, r2);
	/* "PASS secret extra" is a different password, not "secret". */
	tc_cmd(c, "USER alice\r\n");
	CU_ASSERT(tc_starts(tc_cmd(c, "PASS secret extra\r\n"), "-ERR"));
	tc_close(c);
}

static void
test_list_retr_sizes(void)
{
	struct tc_client *c;
	const char *r;
	unsigned long n, total;
	char buf[256];

	tc_mailbox();
	c = tc_login();
	r = tc_cmd(c, "STAT\r\n");
	CU_ASSERT(sscanf(r, "+OK %lu %lu", &n, &total) == 2);
	CU_ASSERT_EQUAL(n, 3);
	/* a: 4 lines LF -> +4; b: CRLF as is; c: final CRLF added. */
	CU_ASSERT_EQUAL(total, 26 + 20 + 26);
	CU_ASSERT(tc_starts(tc_cmd(c, "LIST 1\r\n"), "+OK 1 26"));
	CU_ASSERT(tc_starts(tc_cmd(c, "RETR 1\r\n"), "+OK 26 octets"));
	CU_ASSERT_STRING_EQUAL(tc_multi(c), "Subject: a\n\nline\n.dot\n");
	CU_ASSERT(tc_starts(tc_cmd(c, "TOP 3 0\r\n"), "+OK"));
	CU_ASSERT_STRING_EQUAL(tc_multi(c), "Subject: c\n\n");
	CU_ASSERT(tc_starts(tc_cmd(c, "UIDL 2\r\n"), "+OK 2 1001.B.host"));
	CU_ASSERT(tc_starts(tc_cmd(c, "UIDL\r\n"), "+OK"));
	snprintf(buf, sizeof(buf), "%s", tc_multi(c));
	CU_ASSERT_STRING_EQUAL(buf, "1 1000.A.host\n2 1001.B.host\n"
	    "3 1002.C.host\n");
	/* new/ was moved to cur/ with :2, and the same base name. */
	CU_ASSERT_EQUAL(tc_files("new"), 0);
	CU_ASSERT_EQUAL(tc_files("cur"), 3);
	for (const char *bad = "0\0" "4\0" "-1\0" "+1\0" "1x\0"
	    "99999999999999999999\0"; *bad; bad += strlen(bad) + 1) {
		snprintf(buf, sizeof(buf), "RETR %s\r\n", bad);
		CU_ASSERT(tc_starts(tc_cmd(c, buf), "-ERR"));
		CU_ASSERT(tc_starts(tc_cmd(c, "NOOP\r\n"), "+OK"));
	}
	tc_close(c);
}

static void
test_dele_quit_and_drop(void)
{
	struct tc_client *c;

	tc_mailbox();
	/* DELE then a dropped connection: nothing removed. */
	c = tc_login();
	CU_ASSERT(tc_starts(tc_cmd(c, "DELE 1\r\n"), "+OK"));
	CU_ASSERT(tc_starts(tc_cmd(c, "DELE 1\r\n"), "-ERR"));
	CU_ASSERT(tc_starts(tc_cmd(c, "RETR 1\r\n"), "-ERR"));
	CU_ASSERT(tc_starts(tc_cmd(c, "STAT\r\n"), "+OK 2 "));
	tc_close(c);
	tc_assert_idle();
	CU_ASSERT_EQUAL(tc_files("cur"), 3);

	/* RSET clears marks. */
	c = tc_login();
	tc_cmd(c, "DELE 2\r\n");
	CU_ASSERT(tc_starts(tc_cmd(c, "RSET\r\n"), "+OK"));
	CU_ASSERT(tc_starts(tc_cmd(c, "STAT\r\n"), "+OK 3 "));
	CU_ASSERT(tc_starts(tc_cmd(c, "QUIT\r\n"), "+OK"));
	CU_ASSERT(tc_run_until(c, tc_is_eof));
	tc_close(c);
	CU_ASSERT_EQUAL(tc_files("cur"), 3);

	/* DELE + QUIT removes exactly the marked one. */
	c = tc_login();
	tc_cmd(c, "DELE 2\r\n");
	CU_ASSERT(tc_starts(tc_cmd(c, "QUIT\r\n"), "+OK"));
	CU_ASSERT(tc_run_until(c, tc_is_eof));
	tc_close(c);
	CU_ASSERT_EQUAL(tc_files("cur"), 2);
	c = tc_login();
	CU_ASSERT(tc_starts(tc_cmd(c, "UIDL 2\r\n"), "+OK 2 1002.C.host"));
	tc_close(c);
}

static void
test_quit_then_close(void)
{
	struct tc_client *c;

	/* Outlook: QUIT and close without reading; UPDATE still runs. */
	tc_mailbox();
	c = tc_login();
	tc_send(c, "DELE 1\r\nDELE 3\r\nQUIT\r\n");
	tc_close(c);
	CU_ASSERT_EQUAL(tc_files("cur"), 1);
}

static void
test_pipelining_and_lines(void)
{
	struct tc_client *c;
	char big[400];
	char pipe[4096] = "";
	int i;

	tc_mailbox();
	c = tc_login();
	for (i = 0; i < 60; i++)
		strcat(pipe, i % 2 ? "NOOP\r\n" : "LIST 2\r\n");
	tc_send(c, pipe);
	for (i = 0; i < 60; i++)
		CU_ASSERT(tc_starts(tc_line(c), i % 2 ? "+OK" : "+OK 2 20"));
	/* Over 255 octets with a line end: -ERR, session goes on. */
	memset(big, 'A', sizeof(big));
	memcpy(big + sizeof(big) - 3, "\r\n", 3);
	CU_ASSERT(tc_starts(tc_cmd(c, big), "-ERR"));
	CU_ASSERT(tc_starts(tc_cmd(c, "NOOP\r\n"), "+OK"));
	/* NUL and control bytes. */
	bufferevent_write(c->bev, "NO\0OP\r\n", 7);
	CU_ASSERT(tc_starts(tc_line(c), "-ERR"));
	CU_ASSERT(tc_starts(tc_cmd(c, "NO\001OP\r\n"), "-ERR"));
	CU_ASSERT(tc_starts(tc_cmd(c, "STAT \t\r\n"), "+OK 3 "));
	tc_close(c);
}

static void
test_absurd_line_closes(void)
{
	struct tc_client *c;
	char *junk = malloc(10000);

	tc_mailbox();
	c = tc_connect();
	memset(junk, 'x', 10000);
	bufferevent_write(c->bev, junk, 10000);
	free(junk);
	CU_ASSERT(tc_starts(tc_line(c), "-ERR"));
	CU_ASSERT(tc_run_until(c, tc_is_eof));
	tc_close(c);
}

static void
test_bad_commands_cap(void)
{
	struct tc_client *c;
	int i;

	c = tc_connect();
	for (i = 0; i < 30 && !c->eof; i++)
		tc_cmd(c, "XYZZY\r\n");
	CU_ASSERT(tc_run_until(c, tc_is_eof));
	CU_ASSERT(i <= 21);
	tc_close(c);
}

static void
test_in_use(void)
{
	struct tc_client *a, *b;

	tc_mailbox();
	a = tc_login();
	b = tc_connect();
	tc_cmd(b, "USER alice\r\n");
	CU_ASSERT(tc_starts(tc_cmd(b, "PASS secret\r\n"), "-ERR [IN-USE]"));
	CU_ASSERT(tc_starts(tc_cmd(a, "STAT\r\n"), "+OK 3 "));
	CU_ASSERT(tc_starts(tc_cmd(a, "QUIT\r\n"), "+OK"));
	tc_run_until(a, tc_is_eof);
	tc_close(a);
	tc_cmd(b, "USER alice\r\n");
	CU_ASSERT(tc_starts(tc_cmd(b, "PASS secret\r\n"), "+OK"));
	tc_close(b);
	tc_assert_idle();
}

static void
test_sasl(void)
{
	struct tc_client *c;

	tc_mailbox();
	c = tc_connect();
	/* "\0alice\0secret" */
	CU_ASSERT(tc_starts(tc_cmd(c, "AUTH PLAIN\r\n"), "+"));
	CU_ASSERT(tc_starts(tc_cmd(c, "*\r\n"), "-ERR"));
	CU_ASSERT(tc_starts(tc_cmd(c, "AUTH PLAIN !!!\r\n"), "-ERR"));
	CU_ASSERT(tc_starts(tc_cmd(c,
	    "AUTH PLAIN Ym9iAGFsaWNlAHNlY3JldA==\r\n"), "-ERR"));
	CU_ASSERT(tc_starts(tc_cmd(c, "AUTH X-NOPE\r\n"), "-ERR"));
	CU_ASSERT(tc_starts(tc_cmd(c, "AUTH LOGIN\r\n"), "+ VXNlcm5hbWU6"));
	CU_ASSERT(tc_starts(tc_cmd(c, "YWxpY2U=\r\n"), "+ UGFzc3dvcmQ6"));
	CU_ASSERT(tc_starts(tc_cmd(c, "c2VjcmV0\r\n"), "+OK"));
	CU_ASSERT(tc_starts(tc_cmd(c, "STAT\r\n"), "+OK 3 "));
	tc_close(c);
	c = tc_connect();
	CU_ASSERT(tc_starts(tc_cmd(c,
	    "AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n"), "+OK"));
	tc_close(c);
}

void
test_cmd_register(void)
{
	CU_pSuite s = CU_add_suite("cmd", tc_setup, tc_teardown);

	CU_add_test(s, "greeting timestamp", test_greeting_timestamp);
	CU_add_test(s, "wrong state, unknown, arity", test_wrong_state_and_unknown);
	CU_add_test(s, "same reply for bad user and password", test_bad_auth_same_reply);
	CU_add_test(s, "LIST/RETR/TOP/UIDL and sizes", test_list_retr_sizes);
	CU_add_test(s, "DELE+QUIT removes, drop keeps", test_dele_quit_and_drop);
	CU_add_test(s, "QUIT then close still updates", test_quit_then_close);
	CU_add_test(s, "pipelining, long lines, NUL", test_pipelining_and_lines);
	CU_add_test(s, "absurd line closes", test_absurd_line_closes);
	CU_add_test(s, "bad command cap", test_bad_commands_cap);
	CU_add_test(s, "IN-USE", test_in_use);
	CU_add_test(s, "SASL PLAIN/LOGIN", test_sasl);
}
