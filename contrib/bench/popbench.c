/* SPDX-License-Identifier: ISC */
/*
 * popbench - a POP3 load generator on one libevent loop per process, for
 * comparing POP3 servers on the same machine (contrib/bench/run-bench.py
 * drives it; doc/benchmarks.md explains the method).
 *
 * Modes:
 *   sessions  C clients, each looping connect, greeting, USER/PASS, STAT,
 *             UIDL, LIST, RETR of every message, QUIT, wait for the close;
 *             client i uses mailboxes i, i+C, i+2C... so that no two
 *             clients ever share one.  Prints sessions/s and latencies.
 *   retr      C clients log in and RETR one message over and over, reading
 *             as fast as they can.  Prints MB/s (10^6 octets per second).
 *   idle      N connections log in, one mailbox each, then stay idle;
 *             prints "ready" and waits for SIGTERM.
 *   open      one connection: time to the STAT reply, then UIDL and LIST.
 *   hold      N connections read their greeting (or log in, -l), then each
 *             must answer CAPA while all are open.
 *   serve     the bare sender baseline: answers USER/PASS/STAT/NOOP with
 *             +OK and RETR with sendfile() of a file already in wire form
 *             (CRLF, dot-stuffed, ".\r\n" at the end); one process per
 *             connection, blocking I/O, nothing else.
 *
 * Results are printed as one line of key=value pairs, for scripts.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

/* Latency histogram: exact below 64 us, then 64 buckets per power of two
 * (about 1.1 % resolution) up to 2^46 us. */
#define POPBENCH_HIST_SUB	64
#define POPBENCH_HIST_BUCKETS	(POPBENCH_HIST_SUB * 42)
/* Input buffer of one connection: enough for any reply line, and large
 * reads while a message streams in. */
#define POPBENCH_IN_SMALL	4096
#define POPBENCH_IN_LARGE	(512 * 1024)
#define POPBENCH_OUT_MAX	512
/* Errors reported in detail on stderr (the rest are only counted). */
#define POPBENCH_ERR_SHOWN	5
/* Pause before a client retries after an error (no busy loop against a
 * server that refuses). */
#define POPBENCH_RETRY_MSEC	20

enum popbench_mode {
	PM_SESSIONS, PM_RETR, PM_IDLE, PM_OPEN, PM_HOLD, PM_SERVE
};

enum popbench_state {
	PS_FREE,	/* no socket */
	PS_CONNECT,	/* connect() in progress */
	PS_GREET,
	PS_USER,
	PS_PASS,
	PS_STAT,
	PS_UIDL,
	PS_LIST,
	PS_RETR,
	PS_CAPA,
	PS_QUIT,
	PS_QUIT_INUSE,	/* mailbox was locked: leaving, not counted */
	PS_WAIT_EOF,	/* QUIT answered: wait for the server's close */
	PS_READY	/* idle/hold: parked, nothing expected */
};

struct popbench_opts {
	enum popbench_mode	 mode;
	const char		*host;
	int			 port;
	int			 clients;	/* -c */
	int			 mailboxes;	/* -n */
	int			 first;		/* -o: number of mailbox 0 */
	const char		*prefix;	/* -U: user name prefix */
	const char		*passfmt;	/* -w: %u becomes the user */
	const char		*passfile;	/* -W: user:password lines */
	double			 seconds;	/* -t */
	double			 warmup;	/* -s */
	int			 procs;		/* -j */
	int			 count;		/* -N */
	int			 conc;		/* -q: connects in flight */
	int			 login;		/* -l (hold) */
	int			 msg;		/* -m: RETR this message */
	const char		*file;		/* -f (serve) */
};

struct popbench_result {
	uint64_t	 sessions;	/* sessions or RETRs completed */
	uint64_t	 errors;
	uint64_t	 inuse;
	uint64_t	 octets;	/* message octets (RETR bodies) */
	uint64_t	 bytes;		/* every byte read in the window */
	uint64_t	 ok;		/* idle/hold: connections that worked */
	uint64_t	 refused;	/* hold: refused or -ERR greeting */
	uint64_t	 hist[POPBENCH_HIST_BUCKETS];
};

struct popbench_conn {
	int			 id;		/* client number (global) */
	int			 fd;
	enum popbench_state	 state;
	struct event		*rev;
	struct event		*wev;
	char			*in;
	size_t			 incap;
	size_t			 inoff;		/* first unparsed byte */
	size_t			 inlen;
	int			 multi;		/* reply has a body */
	int			 in_body;
	size_t			 body_off;	/* body scan start in in[] */
	uint64_t		 body_drop;	/* body bytes already dropped */
	uint64_t		 body_lines;
	char			 out[POPBENCH_OUT_MAX];
	size_t			 outoff;
	size_t			 outlen;
	int			 mbox;		/* current mailbox number */
	int			 round;		/* sessions: next mailbox */
	long			 nmsgs;
	long			 msgno;
	uint64_t		 t_start;	/* session start, ns */
	uint64_t		 t_cmd;		/* last command sent, ns */
};

struct popbench_pass {
	char	*user;
	char	*pass;
};

static struct popbench_opts	 popbench_o;
static struct popbench_result	 popbench_r;
static struct event_base	*popbench_base;
static struct popbench_conn	*popbench_conns;
static int			 popbench_total_clients;
static struct sockaddr_in	 popbench_addr;
static uint64_t			 popbench_t0;		/* run start */
static uint64_t			 popbench_tw;		/* window start */
static uint64_t			 popbench_te;		/* window end */
static int			 popbench_stopping;
static int			 popbench_started;	/* idle/hold connects */
static int			 popbench_settled;	/* ok or failed */
static int			 popbench_phase;	/* hold: 1 in CAPA */
static int			 popbench_capa_left;
static uint64_t			 popbench_hold_ms;	/* time to open all */
static struct popbench_pass	*popbench_passes;
static size_t			 popbench_npasses;
static uint64_t			 popbench_open_ns[3];	/* stat uidl list */
static uint64_t			 popbench_open_lines[2];
static uint64_t			 popbench_open_octets[2];
static long			 popbench_open_msgs;

static void	popbench_conn_start(struct popbench_conn *);
static void	popbench_read_cb(evutil_socket_t, short, void *);
static void	popbench_write_cb(evutil_socket_t, short, void *);
static void	popbench_settle(void);
static void	popbench_die(const char *, ...)
		    __attribute__((format(printf, 1, 2), noreturn));
static void	popbench_note(struct popbench_conn *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
static void	popbench_error(struct popbench_conn *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
static void	popbench_send(struct popbench_conn *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));

/* Monotonic clock in nanoseconds. */
static uint64_t
popbench_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* Fatal error before or outside the measurement. */
static void
popbench_die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "popbench: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(2);
}

/* Map a latency in microseconds to its histogram bucket. */
static size_t
popbench_hist_bucket(uint64_t us)
{
	int e;
	uint64_t m;

	if (us < POPBENCH_HIST_SUB)
		return (size_t)us;
	e = 63 - __builtin_clzll(us);		/* e >= 6 */
	m = (us >> (e - 6)) & (POPBENCH_HIST_SUB - 1);
	if ((size_t)(e - 5) * POPBENCH_HIST_SUB + m >= POPBENCH_HIST_BUCKETS)
		return POPBENCH_HIST_BUCKETS - 1;
	return (size_t)(e - 5) * POPBENCH_HIST_SUB + (size_t)m;
}

/* Middle of a histogram bucket, in microseconds. */
static double
popbench_hist_value(size_t b)
{
	size_t e, m;

	if (b < POPBENCH_HIST_SUB)
		return (double)b + 0.5;
	e = b / POPBENCH_HIST_SUB + 5;
	m = b % POPBENCH_HIST_SUB;
	return ((double)(POPBENCH_HIST_SUB + m) + 0.5) *
	    (double)(1ULL << (e - 6));
}

/* The q-quantile (0..1) of the histogram, in milliseconds. */
static double
popbench_hist_quantile(const uint64_t *h, uint64_t n, double q)
{
	uint64_t want, seen = 0;
	size_t b;

	if (n == 0)
		return 0.0;
	want = (uint64_t)(q * (double)n);
	if (want >= n)
		want = n - 1;
	for (b = 0; b < POPBENCH_HIST_BUCKETS; b++) {
		seen += h[b];
		if (seen > want)
			return popbench_hist_value(b) / 1000.0;
	}
	return popbench_hist_value(POPBENCH_HIST_BUCKETS - 1) / 1000.0;
}

/* Show the first few problems on stderr (all are counted elsewhere). */
static void
popbench_vnote(struct popbench_conn *c, const char *fmt, va_list ap)
{
	static int shown;

	if (++shown > POPBENCH_ERR_SHOWN)
		return;
	fprintf(stderr, "popbench: client %d mailbox %s%d: ", c->id,
	    popbench_o.prefix, c->mbox);
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
}

/* A problem counted by the caller: only show it. */
static void
popbench_note(struct popbench_conn *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	popbench_vnote(c, fmt, ap);
	va_end(ap);
}

/* Count a failure and show it. */
static void
popbench_error(struct popbench_conn *c, const char *fmt, ...)
{
	va_list ap;

	popbench_r.errors++;
	va_start(ap, fmt);
	popbench_vnote(c, fmt, ap);
	va_end(ap);
}

/* Order of the password table: by user name. */
static int
popbench_pass_cmp(const void *a, const void *b)
{
	return strcmp(((const struct popbench_pass *)a)->user,
	    ((const struct popbench_pass *)b)->user);
}

/* Read user:password lines into a sorted table. */
static void
popbench_pass_load(const char *path)
{
	FILE *f;
	char *line = NULL, *colon;
	size_t cap = 0, alloc = 0;
	ssize_t n;

	if ((f = fopen(path, "r")) == NULL)
		popbench_die("%s: %s", path, strerror(errno));
	while ((n = getline(&line, &cap, f)) != -1) {
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		if ((colon = strchr(line, ':')) == NULL)
			continue;
		*colon = '\0';
		if (popbench_npasses == alloc) {
			alloc = alloc ? alloc * 2 : 256;
			popbench_passes = reallocarray(popbench_passes, alloc,
			    sizeof(*popbench_passes));
			if (popbench_passes == NULL)
				popbench_die("out of memory");
		}
		popbench_passes[popbench_npasses].user = strdup(line);
		popbench_passes[popbench_npasses].pass = strdup(colon + 1);
		if (popbench_passes[popbench_npasses].user == NULL ||
		    popbench_passes[popbench_npasses].pass == NULL)
			popbench_die("out of memory");
		popbench_npasses++;
	}
	free(line);
	fclose(f);
	qsort(popbench_passes, popbench_npasses, sizeof(*popbench_passes),
	    popbench_pass_cmp);
}

/* Password of user into buf: from the file, else from the pattern. */
static void
popbench_password(const char *user, char *buf, size_t len)
{
	struct popbench_pass key, *p;
	const char *s;
	size_t o = 0, ul = strlen(user);

	if (popbench_npasses > 0) {
		key.user = (char *)(uintptr_t)user;
		p = bsearch(&key, popbench_passes, popbench_npasses,
		    sizeof(*popbench_passes), popbench_pass_cmp);
		snprintf(buf, len, "%s", p ? p->pass : "");
		return;
	}
	for (s = popbench_o.passfmt; *s != '\0' && o + 1 < len; s++) {
		if (s[0] == '%' && s[1] == 'u' && o + ul + 1 < len) {
			memcpy(buf + o, user, ul);
			o += ul;
			s++;
		} else
			buf[o++] = *s;
	}
	buf[o] = '\0';
}

/* Queue a command line and try to write it at once. */
static void
popbench_send(struct popbench_conn *c, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (c->outoff == c->outlen)
		c->outoff = c->outlen = 0;
	va_start(ap, fmt);
	n = vsnprintf(c->out + c->outlen, sizeof(c->out) - c->outlen - 2,
	    fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(c->out) - c->outlen - 2)
		popbench_die("command too long");
	c->outlen += (size_t)n;
	c->out[c->outlen++] = '\r';
	c->out[c->outlen++] = '\n';
	c->t_cmd = popbench_now();
	popbench_write_cb(c->fd, EV_WRITE, c);
}

/* Drop the connection; the conn slot stays for reuse. */
static void
popbench_conn_close(struct popbench_conn *c)
{
	if (c->rev != NULL)
		event_free(c->rev);
	if (c->wev != NULL)
		event_free(c->wev);
	c->rev = c->wev = NULL;
	if (c->fd != -1)
		close(c->fd);
	c->fd = -1;
	c->state = PS_FREE;
	c->inoff = c->inlen = 0;
	c->outoff = c->outlen = 0;
	c->in_body = 0;
}

/* The pause after an error is over: start the client again. */
static void
popbench_retry_cb(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	if (!popbench_stopping)
		popbench_conn_start(arg);
}

/* Sessions/retr: close and start over after a short pause. */
static void
popbench_conn_restart(struct popbench_conn *c, int delay)
{
	struct timeval tv = { 0, POPBENCH_RETRY_MSEC * 1000 };

	popbench_conn_close(c);
	if (popbench_stopping)
		return;
	if (delay)
		event_base_once(popbench_base, -1, EV_TIMEOUT,
		    popbench_retry_cb, c, &tv);
	else
		popbench_conn_start(c);
}

/* Idle/hold: one connection finished its setup (or failed): start the
 * next one, and report when every connection has settled. */
static void
popbench_settled_one(void)
{
	popbench_settled++;
	/* Count a start before making it: a connect() that fails at once
	 * comes back here. */
	while (popbench_started < popbench_o.count &&
	    popbench_started - popbench_settled < popbench_o.conc)
		popbench_conn_start(&popbench_conns[popbench_started++]);
	if (popbench_settled == popbench_o.count)
		popbench_settle();
}

/* A failed connection in idle/hold. */
static void
popbench_conn_fail(struct popbench_conn *c, int refused)
{
	int was_ready = c->state == PS_READY || c->state == PS_CAPA;
	int in_capa = c->state == PS_CAPA;

	popbench_conn_close(c);
	if (refused)
		popbench_r.refused++;
	else
		popbench_r.errors++;
	if (popbench_o.mode == PM_IDLE && was_ready) {
		popbench_r.ok--;
		return;
	}
	if (popbench_o.mode == PM_HOLD && popbench_phase == 1) {
		if (in_capa && --popbench_capa_left == 0)
			event_base_loopbreak(popbench_base);
		return;
	}
	if (!was_ready)
		popbench_settled_one();
}

/* A connection failed (already shown): count it the way its mode does;
 * sessions and retr clients start over after a pause, open gives up. */
static void
popbench_conn_failed(struct popbench_conn *c, int refused)
{
	switch (popbench_o.mode) {
	case PM_IDLE:
	case PM_HOLD:
		popbench_conn_fail(c, refused);
		break;
	case PM_OPEN:
		popbench_r.errors++;
		popbench_conn_close(c);
		event_base_loopbreak(popbench_base);
		break;
	default:
		popbench_r.errors++;
		popbench_conn_restart(c, 1);
		break;
	}
}

/* Start a session (or connection) for conn c. */
static void
popbench_conn_start(struct popbench_conn *c)
{
	int fd, one = 1, k;

	if (popbench_o.mode == PM_SESSIONS) {
		/* Mailboxes id, id+C, id+2C... below M, round robin. */
		k = (popbench_o.mailboxes - 1 - c->id) /
		    popbench_total_clients + 1;
		c->mbox = popbench_o.first + c->id +
		    (c->round % k) * popbench_total_clients;
		c->round++;
	} else
		c->mbox = popbench_o.first + c->id;
	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0)) == -1) {
		popbench_note(c, "socket: %s", strerror(errno));
		popbench_conn_failed(c, 0);
		return;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->fd = fd;
	c->rev = event_new(popbench_base, fd, EV_READ | EV_PERSIST,
	    popbench_read_cb, c);
	c->wev = event_new(popbench_base, fd, EV_WRITE, popbench_write_cb, c);
	if (c->rev == NULL || c->wev == NULL)
		popbench_die("out of memory");
	c->t_start = popbench_now();
	c->inoff = c->inlen = 0;
	c->in_body = 0;
	c->multi = 0;
	if (connect(fd, (struct sockaddr *)&popbench_addr,
	    sizeof(popbench_addr)) == -1 && errno != EINPROGRESS) {
		int refused = errno == ECONNREFUSED;

		popbench_note(c, "connect: %s", strerror(errno));
		popbench_conn_failed(c, refused);
		return;
	}
	c->state = PS_CONNECT;
	event_add(c->wev, NULL);
}

/* Socket writable: connect() finished, or queued output can go out. */
static void
popbench_write_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct popbench_conn *c = arg;
	ssize_t n;
	int err = 0;
	socklen_t len = sizeof(err);

	(void)ev;
	if (c->state == PS_CONNECT) {
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
			err = errno;
		if (err != 0) {
			popbench_note(c, "connect: %s", strerror(err));
			popbench_conn_failed(c, err == ECONNREFUSED);
			return;
		}
		c->state = PS_GREET;
		c->multi = 0;
		event_add(c->rev, NULL);
		return;
	}
	while (c->outoff < c->outlen) {
		n = write(fd, c->out + c->outoff, c->outlen - c->outoff);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				event_add(c->wev, NULL);
				return;
			}
			/* The read side sees the reset and reports it. */
			return;
		}
		c->outoff += (size_t)n;
	}
}

/* Count LF bytes in [p, p+n). */
static uint64_t
popbench_count_lf(const char *p, size_t n)
{
	const char *e = p + n;
	uint64_t k = 0;

	while (p < e && (p = memchr(p, '\n', (size_t)(e - p))) != NULL) {
		k++;
		p++;
	}
	return k;
}

/*
 * Find the end of a multi-line body, CRLF "." CRLF, in [p, p+n); returns
 * the offset of its first CR, or -1.  Looks for the dot first: memchr
 * runs far faster than memmem, and a dot is rare in most mail (base64
 * has none).  A dot with fewer than 2 bytes on either side inside the
 * range is decided on the next call, which the caller arranges by keeping
 * the last 4 bytes.
 */
static ssize_t
popbench_find_end(const char *p, size_t n)
{
	const char *d = p + 2, *e = p + n;

	while (d + 2 < e && (d = memchr(d, '.', (size_t)(e - 2 - d))) != NULL) {
		if (d[-2] == '\r' && d[-1] == '\n' && d[1] == '\r' &&
		    d[2] == '\n')
			return d - 2 - p;
		d++;
	}
	return -1;
}

/* Parse "+OK n m" (STAT). */
static long
popbench_stat_count(const char *line)
{
	char *end;
	long v;

	if (strncmp(line, "+OK ", 4) != 0)
		return -1;
	errno = 0;
	v = strtol(line + 4, &end, 10);
	if (errno != 0 || end == line + 4 || v < 0)
		return -1;
	return v;
}

/* Session ended cleanly: count it if it ended inside the window. */
static void
popbench_session_done(struct popbench_conn *c, int counted)
{
	uint64_t now = popbench_now();

	if (counted && now >= popbench_tw && now <= popbench_te) {
		popbench_r.sessions++;
		popbench_r.hist[popbench_hist_bucket((now - c->t_start) /
		    1000)]++;
	}
	popbench_conn_close(c);
	if (!popbench_stopping)
		popbench_conn_start(c);
}

/* Sessions mode: the next step after a reply.  Returns -1 when c was
 * closed (its buffers are gone). */
static int
popbench_sessions_reply(struct popbench_conn *c, int ok, const char *line,
    uint64_t octets)
{
	char pw[256], user[160];

	switch (c->state) {
	case PS_GREET:
		if (!ok)
			break;
		c->state = PS_USER;
		popbench_send(c, "USER %s%d", popbench_o.prefix, c->mbox);
		return 0;
	case PS_USER:
		if (!ok)
			break;
		snprintf(user, sizeof(user), "%s%d", popbench_o.prefix,
		    c->mbox);
		popbench_password(user, pw, sizeof(pw));
		c->state = PS_PASS;
		popbench_send(c, "PASS %s", pw);
		return 0;
	case PS_PASS:
		if (!ok && strstr(line, "[IN-USE]") != NULL) {
			popbench_r.inuse++;
			c->state = PS_QUIT_INUSE;
			popbench_send(c, "QUIT");
			return 0;
		}
		if (!ok)
			break;
		c->state = PS_STAT;
		popbench_send(c, "STAT");
		return 0;
	case PS_STAT:
		if ((c->nmsgs = popbench_stat_count(line)) < 0)
			break;
		c->state = PS_UIDL;
		c->multi = 1;
		popbench_send(c, "UIDL");
		return 0;
	case PS_UIDL:
		if (!ok)
			break;
		c->state = PS_LIST;
		c->multi = 1;
		popbench_send(c, "LIST");
		return 0;
	case PS_LIST:
	case PS_RETR:
		if (!ok)
			break;
		if (c->state == PS_RETR) {
			if (popbench_now() >= popbench_tw)
				popbench_r.octets += octets;
			c->msgno++;
		} else
			c->msgno = 1;
		if (c->msgno <= c->nmsgs) {
			c->state = PS_RETR;
			c->multi = 1;
			popbench_send(c, "RETR %ld", c->msgno);
			return 0;
		}
		c->state = PS_QUIT;
		c->multi = 0;
		popbench_send(c, "QUIT");
		return 0;
	case PS_QUIT:
	case PS_QUIT_INUSE:
		if (!ok)
			break;
		if (c->state == PS_QUIT_INUSE) {
			/* Another session holds this mailbox: try the
			 * next one (after a pause: it may be the only
			 * one), not counting this attempt. */
			popbench_conn_restart(c, 1);
			return -1;
		}
		c->state = PS_WAIT_EOF;
		return 0;
	default:
		break;
	}
	popbench_error(c, "unexpected reply in state %d: %.80s", c->state,
	    line);
	popbench_conn_restart(c, 1);
	return -1;
}

/* Retr mode: log in, then RETR the same message forever. */
static int
popbench_retr_reply(struct popbench_conn *c, int ok, const char *line,
    uint64_t octets)
{
	char pw[256], user[160];

	switch (c->state) {
	case PS_GREET:
		if (!ok)
			break;
		c->state = PS_USER;
		popbench_send(c, "USER %s%d", popbench_o.prefix, c->mbox);
		return 0;
	case PS_USER:
		if (!ok)
			break;
		snprintf(user, sizeof(user), "%s%d", popbench_o.prefix,
		    c->mbox);
		popbench_password(user, pw, sizeof(pw));
		c->state = PS_PASS;
		popbench_send(c, "PASS %s", pw);
		return 0;
	case PS_PASS:
	case PS_RETR:
		if (!ok)
			break;
		if (c->state == PS_RETR && popbench_now() >= popbench_tw) {
			popbench_r.sessions++;
			popbench_r.octets += octets;
		}
		c->state = PS_RETR;
		c->multi = 1;
		popbench_send(c, "RETR %d", popbench_o.msg);
		return 0;
	default:
		break;
	}
	popbench_error(c, "unexpected reply in state %d: %.80s", c->state,
	    line);
	popbench_conn_restart(c, 1);
	return -1;
}

/* Open mode: log in, STAT, UIDL, LIST, QUIT; time each step. */
static int
popbench_open_reply(struct popbench_conn *c, int ok, const char *line,
    uint64_t octets)
{
	char pw[256], user[160];
	uint64_t now = popbench_now();

	switch (c->state) {
	case PS_GREET:
		if (!ok)
			break;
		c->state = PS_USER;
		popbench_send(c, "USER %s%d", popbench_o.prefix, c->mbox);
		return 0;
	case PS_USER:
		if (!ok)
			break;
		snprintf(user, sizeof(user), "%s%d", popbench_o.prefix,
		    c->mbox);
		popbench_password(user, pw, sizeof(pw));
		c->state = PS_PASS;
		popbench_send(c, "PASS %s", pw);
		return 0;
	case PS_PASS:
		if (!ok)
			break;
		c->state = PS_STAT;
		popbench_send(c, "STAT");
		return 0;
	case PS_STAT:
		if ((popbench_open_msgs = popbench_stat_count(line)) < 0)
			break;
		popbench_open_ns[0] = now - c->t_start;
		c->state = PS_UIDL;
		c->multi = 1;
		popbench_send(c, "UIDL");
		return 0;
	case PS_UIDL:
		if (!ok)
			break;
		popbench_open_ns[1] = now - c->t_cmd;
		popbench_open_lines[0] = c->body_lines;
		popbench_open_octets[0] = octets;
		c->state = PS_LIST;
		c->multi = 1;
		popbench_send(c, "LIST");
		return 0;
	case PS_LIST:
		if (!ok)
			break;
		popbench_open_ns[2] = now - c->t_cmd;
		popbench_open_lines[1] = c->body_lines;
		popbench_open_octets[1] = octets;
		c->state = PS_QUIT;
		c->multi = 0;
		popbench_send(c, "QUIT");
		return 0;
	case PS_QUIT:
		if (!ok)
			break;
		popbench_r.ok = 1;
		popbench_conn_close(c);
		event_base_loopbreak(popbench_base);
		return -1;
	default:
		break;
	}
	popbench_error(c, "unexpected reply in state %d: %.80s", c->state,
	    line);
	popbench_conn_close(c);
	event_base_loopbreak(popbench_base);
	return -1;
}

/* Idle and hold modes. */
static int
popbench_park_reply(struct popbench_conn *c, int ok, const char *line)
{
	char pw[256], user[160];

	switch (c->state) {
	case PS_GREET:
		if (!ok) {
			popbench_note(c, "greeting: %.80s", line);
			popbench_conn_fail(c, 1);
			return -1;
		}
		if (popbench_o.mode == PM_HOLD && !popbench_o.login) {
			c->state = PS_READY;
			popbench_r.ok++;
			popbench_settled_one();
			return 0;
		}
		c->state = PS_USER;
		popbench_send(c, "USER %s%d", popbench_o.prefix, c->mbox);
		return 0;
	case PS_USER:
		if (!ok)
			break;
		snprintf(user, sizeof(user), "%s%d", popbench_o.prefix,
		    c->mbox);
		popbench_password(user, pw, sizeof(pw));
		c->state = PS_PASS;
		popbench_send(c, "PASS %s", pw);
		return 0;
	case PS_PASS:
		if (!ok)
			break;
		c->state = PS_READY;
		popbench_r.ok++;
		popbench_settled_one();
		return 0;
	case PS_CAPA:
		if (!ok)
			break;
		c->state = PS_READY;
		c->multi = 0;
		popbench_r.sessions++;
		if (--popbench_capa_left == 0)
			event_base_loopbreak(popbench_base);
		return 0;
	default:
		break;
	}
	popbench_note(c, "unexpected reply in state %d: %.80s", c->state,
	    line);
	popbench_conn_fail(c, 0);
	return -1;
}

/* Hand one complete reply to the mode.  Returns -1 when c was closed. */
static int
popbench_reply(struct popbench_conn *c, const char *line, uint64_t octets)
{
	int ok = strncmp(line, "+OK", 3) == 0;

	switch (popbench_o.mode) {
	case PM_SESSIONS:
		return popbench_sessions_reply(c, ok, line, octets);
	case PM_RETR:
		return popbench_retr_reply(c, ok, line, octets);
	case PM_OPEN:
		return popbench_open_reply(c, ok, line, octets);
	default:
		return popbench_park_reply(c, ok, line);
	}
}

/*
 * Parse what is buffered: status lines, and multi-line bodies which are
 * only scanned for their "CRLF.CRLF" end and counted, never kept.  The
 * status line's own CRLF starts the scan, so an empty body (".\r\n" at
 * once) ends the same way.  Returns -1 when c was closed.
 */
static int
popbench_parse(struct popbench_conn *c)
{
	char *nl, *p, line[POPBENCH_IN_SMALL];
	size_t len, n;
	ssize_t at;
	uint64_t octets;

	for (;;) {
		if (c->in_body) {
			len = c->inlen - c->body_off;
			at = popbench_find_end(c->in + c->body_off, len);
			if (at == -1) {
				if (len <= 4)
					return 0;
				/* Keep the last 4 bytes: the end marker may
				 * straddle this read and the next. */
				n = len - 4;
				if (popbench_o.mode == PM_OPEN)
					c->body_lines += popbench_count_lf(
					    c->in + c->body_off, n);
				c->body_drop += n;
				memmove(c->in, c->in + c->body_off + n, 4);
				c->body_off = c->inoff = 0;
				c->inlen = 4;
				return 0;
			}
			p = c->in + c->body_off + at;
			n = (size_t)at + 2;
			if (popbench_o.mode == PM_OPEN)
				c->body_lines += popbench_count_lf(
				    c->in + c->body_off, n);
			/* Minus the status line's CRLF. */
			octets = c->body_drop + n - 2;
			if (popbench_o.mode == PM_OPEN)
				c->body_lines--;
			c->inoff = (size_t)(p - c->in) + 5;
			c->in_body = 0;
			c->multi = 0;
			if (popbench_reply(c, "+OK", octets) == -1)
				return -1;
			continue;
		}
		if (c->inoff == c->inlen) {
			c->inoff = c->inlen = 0;
			return 0;
		}
		nl = memchr(c->in + c->inoff, '\n', c->inlen - c->inoff);
		if (nl == NULL) {
			if (c->inoff > 0) {
				memmove(c->in, c->in + c->inoff,
				    c->inlen - c->inoff);
				c->inlen -= c->inoff;
				c->inoff = 0;
			}
			if (c->inlen >= sizeof(line) - 1) {
				popbench_error(c, "reply line too long");
				goto fail;
			}
			return 0;
		}
		len = (size_t)(nl - (c->in + c->inoff));
		if (len == 0 || nl[-1] != '\r') {
			popbench_note(c, "reply line not ended by CRLF");
			goto fail;
		}
		if (len - 1 >= sizeof(line))
			len = sizeof(line);
		memcpy(line, c->in + c->inoff, len - 1);
		line[len - 1] = '\0';
		if (c->multi && strncmp(line, "+OK", 3) == 0) {
			c->in_body = 1;
			c->body_off = (size_t)(nl - c->in) - 1;
			c->body_drop = 0;
			c->body_lines = 0;
			c->inoff = c->body_off;
			continue;
		}
		c->inoff = (size_t)(nl - c->in) + 1;
		c->multi = 0;
		if (c->state == PS_READY || c->state == PS_WAIT_EOF) {
			popbench_note(c, "unsolicited: %.80s", line);
			goto fail;
		}
		if (popbench_reply(c, line, 0) == -1)
			return -1;
	}
fail:
	popbench_conn_failed(c, 0);
	return -1;
}

/* Socket readable: read a batch, parse it, handle the end of stream. */
static void
popbench_read_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct popbench_conn *c = arg;
	ssize_t n;
	int rounds;

	(void)ev;
	for (rounds = 0; rounds < 8; rounds++) {
		if (c->inlen == c->incap)
			popbench_die("input buffer full");
		n = read(fd, c->in + c->inlen, c->incap - c->inlen);
		if (n > 0) {
			size_t space = c->incap - c->inlen;

			if (popbench_o.mode == PM_RETR) {
				uint64_t now = popbench_now();

				if (now >= popbench_tw && now <= popbench_te)
					popbench_r.bytes += (uint64_t)n;
			}
			c->inlen += (size_t)n;
			if (popbench_parse(c) == -1)
				return;
			if ((size_t)n < space)
				return;
			continue;
		}
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN)
			return;
		break;
	}
	if (rounds == 8)
		return;
	/* End of stream or error. */
	if (c->state == PS_WAIT_EOF) {
		popbench_session_done(c, 1);
		return;
	}
	popbench_note(c, "connection closed in state %d (%s)", c->state,
	    n == 0 ? "EOF" : strerror(errno));
	popbench_conn_failed(c, c->state == PS_GREET);
}

/* The measured time is over (or the hold deadline passed). */
static void
popbench_stop_cb(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	(void)arg;
	popbench_stopping = 1;
	event_base_loopbreak(popbench_base);
}

/* Idle/hold: every connection has settled. */
static void
popbench_settle(void)
{
	double secs = (double)(popbench_now() - popbench_t0) / 1e9;
	int i;

	if (popbench_o.mode == PM_IDLE) {
		printf("ready ok=%llu errors=%llu refused=%llu seconds=%.3f\n",
		    (unsigned long long)popbench_r.ok,
		    (unsigned long long)popbench_r.errors,
		    (unsigned long long)popbench_r.refused, secs);
		fflush(stdout);
		return;
	}
	/* Hold: all open at once; now every one must still answer. */
	popbench_phase = 1;
	popbench_capa_left = 0;
	for (i = 0; i < popbench_o.count; i++) {
		struct popbench_conn *c = &popbench_conns[i];

		if (c->state != PS_READY)
			continue;
		c->state = PS_CAPA;
		c->multi = 1;
		popbench_capa_left++;
		popbench_send(c, "CAPA");
	}
	popbench_hold_ms = (uint64_t)(secs * 1000.0);
	if (popbench_capa_left == 0)
		event_base_loopbreak(popbench_base);
}

/* SIGTERM/SIGINT: leave the loop; connections close at exit. */
static void
popbench_term_cb(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	(void)arg;
	event_base_loopbreak(popbench_base);
}

/* Allocate this process's connections: ids first, first+step... */
static void
popbench_conns_init(int n, int first, int step, size_t incap)
{
	int i;

	if ((popbench_conns = calloc((size_t)n, sizeof(*popbench_conns))) ==
	    NULL)
		popbench_die("out of memory");
	for (i = 0; i < n; i++) {
		popbench_conns[i].id = first + i * step;
		popbench_conns[i].fd = -1;
		popbench_conns[i].incap = incap;
		if ((popbench_conns[i].in = malloc(incap)) == NULL)
			popbench_die("out of memory");
	}
}

/* Run the sessions or retr loop for this process's share of clients. */
static void
popbench_run_load(int nclients, int first, int step)
{
	struct event *stop;
	struct timeval tv;
	double total = popbench_o.warmup + popbench_o.seconds;
	int i;

	popbench_conns_init(nclients, first, step, popbench_o.mode == PM_RETR ?
	    POPBENCH_IN_LARGE : POPBENCH_IN_LARGE / 4);
	popbench_t0 = popbench_now();
	popbench_tw = popbench_t0 + (uint64_t)(popbench_o.warmup * 1e9);
	popbench_te = popbench_tw + (uint64_t)(popbench_o.seconds * 1e9);
	tv.tv_sec = (time_t)total;
	tv.tv_usec = (suseconds_t)((total - (double)tv.tv_sec) * 1e6);
	stop = evtimer_new(popbench_base, popbench_stop_cb, NULL);
	evtimer_add(stop, &tv);
	for (i = 0; i < nclients; i++)
		popbench_conn_start(&popbench_conns[i]);
	event_base_dispatch(popbench_base);
	popbench_stopping = 1;
	for (i = 0; i < nclients; i++)
		popbench_conn_close(&popbench_conns[i]);
	event_free(stop);
}

/* The sessions/retr result line. */
static void
popbench_print_load(const struct popbench_result *r, double secs)
{
	uint64_t n = r->sessions;

	if (popbench_o.mode == PM_SESSIONS)
		printf("sessions rate=%.2f sessions=%llu seconds=%.3f "
		    "errors=%llu inuse=%llu p50_ms=%.3f p99_ms=%.3f "
		    "max_ms=%.3f octets=%llu clients=%d\n",
		    (double)n / secs, (unsigned long long)n, secs,
		    (unsigned long long)r->errors,
		    (unsigned long long)r->inuse,
		    popbench_hist_quantile(r->hist, n, 0.50),
		    popbench_hist_quantile(r->hist, n, 0.99),
		    popbench_hist_quantile(r->hist, n, 1.0),
		    (unsigned long long)r->octets, popbench_total_clients);
	else
		printf("retr mbps=%.2f bytes=%llu seconds=%.3f retrs=%llu "
		    "octets=%llu errors=%llu clients=%d\n",
		    (double)r->bytes / secs / 1e6,
		    (unsigned long long)r->bytes, secs,
		    (unsigned long long)n, (unsigned long long)r->octets,
		    (unsigned long long)r->errors, popbench_total_clients);
}

/* Write all of buf to fd (result pipe). */
static int
popbench_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	ssize_t n;

	while (len > 0) {
		if ((n = write(fd, p, len)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Read exactly len bytes (a worker's result), or -1. */
static int
popbench_read_all(int fd, void *buf, size_t len)
{
	char *p = buf;
	ssize_t n;

	while (len > 0) {
		if ((n = read(fd, p, len)) <= 0) {
			if (n == -1 && errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Sessions/retr, possibly over several processes. */
static void
popbench_load(void)
{
	struct popbench_result *sum = &popbench_r, part;
	int procs = popbench_o.procs, p, fds[2], *pipes;
	pid_t pid;
	size_t b;

	popbench_total_clients = popbench_o.clients;
	if (popbench_o.mode == PM_SESSIONS &&
	    popbench_o.clients > popbench_o.mailboxes)
		popbench_die("more clients (%d) than mailboxes (%d)",
		    popbench_o.clients, popbench_o.mailboxes);
	if (procs > popbench_o.clients)
		procs = popbench_o.clients;
	if (procs <= 1) {
		popbench_base = event_base_new();
		if (popbench_base == NULL)
			popbench_die("event_base_new failed");
		popbench_run_load(popbench_o.clients, 0, 1);
		popbench_print_load(sum, popbench_o.seconds);
		return;
	}
	if ((pipes = calloc((size_t)procs, sizeof(int))) == NULL)
		popbench_die("out of memory");
	for (p = 0; p < procs; p++) {
		if (pipe(fds) == -1)
			popbench_die("pipe: %s", strerror(errno));
		if ((pid = fork()) == -1)
			popbench_die("fork: %s", strerror(errno));
		if (pid == 0) {
			close(fds[0]);
			popbench_base = event_base_new();
			if (popbench_base == NULL)
				popbench_die("event_base_new failed");
			/* Clients p, p+procs, p+2*procs... */
			popbench_run_load((popbench_o.clients - 1 - p) /
			    procs + 1, p, procs);
			if (popbench_write_all(fds[1], &popbench_r,
			    sizeof(popbench_r)) == -1)
				_exit(3);
			_exit(0);
		}
		close(fds[1]);
		pipes[p] = fds[0];
	}
	memset(sum, 0, sizeof(*sum));
	for (p = 0; p < procs; p++) {
		if (popbench_read_all(pipes[p], &part, sizeof(part)) == -1)
			popbench_die("worker process %d gave no result", p);
		close(pipes[p]);
		sum->sessions += part.sessions;
		sum->errors += part.errors;
		sum->inuse += part.inuse;
		sum->octets += part.octets;
		sum->bytes += part.bytes;
		for (b = 0; b < POPBENCH_HIST_BUCKETS; b++)
			sum->hist[b] += part.hist[b];
	}
	while (wait(NULL) > 0)
		;
	free(pipes);
	popbench_print_load(sum, popbench_o.seconds);
}

/* Idle (-N logged-in connections until SIGTERM) or hold. */
static void
popbench_park(void)
{
	struct event *term, *intr, *stop = NULL;
	struct timeval tv;
	int i;

	popbench_base = event_base_new();
	if (popbench_base == NULL)
		popbench_die("event_base_new failed");
	popbench_total_clients = popbench_o.count;
	popbench_conns_init(popbench_o.count, 0, 1, POPBENCH_IN_SMALL);
	popbench_t0 = popbench_now();
	popbench_tw = popbench_t0;
	popbench_te = UINT64_MAX;
	term = evsignal_new(popbench_base, SIGTERM, popbench_term_cb, NULL);
	intr = evsignal_new(popbench_base, SIGINT, popbench_term_cb, NULL);
	evsignal_add(term, NULL);
	evsignal_add(intr, NULL);
	if (popbench_o.mode == PM_HOLD) {
		/* A hard deadline: whatever is not done by then failed. */
		tv.tv_sec = (time_t)popbench_o.seconds;
		tv.tv_usec = 0;
		stop = evtimer_new(popbench_base, popbench_stop_cb, NULL);
		evtimer_add(stop, &tv);
	}
	while (popbench_started < popbench_o.count &&
	    popbench_started < popbench_o.conc)
		popbench_conn_start(&popbench_conns[popbench_started++]);
	event_base_dispatch(popbench_base);
	if (popbench_o.mode == PM_IDLE) {
		printf("idle-end ok=%llu errors=%llu refused=%llu\n",
		    (unsigned long long)popbench_r.ok,
		    (unsigned long long)popbench_r.errors,
		    (unsigned long long)popbench_r.refused);
	} else {
		printf("hold n=%d ok=%llu answered=%llu refused=%llu "
		    "errors=%llu unfinished=%d open_ms=%llu seconds=%.3f\n",
		    popbench_o.count, (unsigned long long)popbench_r.ok,
		    (unsigned long long)popbench_r.sessions,
		    (unsigned long long)popbench_r.refused,
		    (unsigned long long)popbench_r.errors,
		    popbench_phase == 1 ? popbench_capa_left :
		    popbench_o.count - popbench_settled,
		    (unsigned long long)popbench_hold_ms,
		    (double)(popbench_now() - popbench_t0) / 1e9);
	}
	fflush(stdout);
	for (i = 0; i < popbench_o.count; i++)
		popbench_conn_close(&popbench_conns[i]);
	event_free(term);
	event_free(intr);
	if (stop != NULL)
		event_free(stop);
}

/* Open: one connection, timings of STAT, UIDL and LIST. */
static void
popbench_open(void)
{
	popbench_base = event_base_new();
	if (popbench_base == NULL)
		popbench_die("event_base_new failed");
	popbench_total_clients = 1;
	popbench_conns_init(1, 0, 1, POPBENCH_IN_LARGE);
	popbench_t0 = popbench_tw = popbench_now();
	popbench_te = UINT64_MAX;
	popbench_conn_start(&popbench_conns[0]);
	event_base_dispatch(popbench_base);
	printf("open ok=%llu stat_ms=%.3f uidl_ms=%.3f list_ms=%.3f "
	    "messages=%ld uidl_lines=%llu list_lines=%llu uidl_octets=%llu "
	    "list_octets=%llu errors=%llu\n",
	    (unsigned long long)popbench_r.ok,
	    (double)popbench_open_ns[0] / 1e6,
	    (double)popbench_open_ns[1] / 1e6,
	    (double)popbench_open_ns[2] / 1e6, popbench_open_msgs,
	    (unsigned long long)popbench_open_lines[0],
	    (unsigned long long)popbench_open_lines[1],
	    (unsigned long long)popbench_open_octets[0],
	    (unsigned long long)popbench_open_octets[1],
	    (unsigned long long)popbench_r.errors);
}

/* Serve: write a whole string to a blocking socket. */
static int
popbench_serve_puts(int fd, const char *s)
{
	return popbench_write_all(fd, s, strlen(s));
}

/* One bare-sender connection: minimal POP3, RETR by sendfile(). */
static void
popbench_serve_conn(int fd, int file, off_t size)
{
	char buf[1024], hdr[64];
	size_t have = 0;
	ssize_t n;
	char *nl;
	off_t off;

	if (popbench_serve_puts(fd, "+OK popbench sendfile ready\r\n") == -1)
		return;
	for (;;) {
		while ((nl = memchr(buf, '\n', have)) == NULL) {
			if (have == sizeof(buf))
				return;
			n = read(fd, buf + have, sizeof(buf) - have);
			if (n <= 0)
				return;
			have += (size_t)n;
		}
		if (strncasecmp(buf, "RETR", 4) == 0) {
			snprintf(hdr, sizeof(hdr), "+OK %lld octets\r\n",
			    (long long)size);
			if (popbench_serve_puts(fd, hdr) == -1)
				return;
			off = 0;
			while (off < size) {
				n = sendfile(fd, file, &off,
				    (size_t)(size - off));
				if (n <= 0 && errno != EINTR)
					return;
			}
		} else if (strncasecmp(buf, "QUIT", 4) == 0) {
			popbench_serve_puts(fd, "+OK bye\r\n");
			return;
		} else if (popbench_serve_puts(fd, "+OK\r\n") == -1)
			return;
		have -= (size_t)(nl + 1 - buf);
		memmove(buf, nl + 1, have);
	}
}

/* Serve: reap finished children, so that their CPU time is added to
 * ours (a parent ignoring SIGCHLD gets none of it). */
static void
popbench_serve_reap(int sig)
{
	int save = errno;

	(void)sig;
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	errno = save;
}

/* Serve: accept forever, one child process per connection. */
static void
popbench_serve(void)
{
	struct sigaction sa;
	struct stat st;
	int lfd, fd, file, one = 1;

	if ((file = open(popbench_o.file, O_RDONLY)) == -1 ||
	    fstat(file, &st) == -1)
		popbench_die("%s: %s", popbench_o.file, strerror(errno));
	if ((lfd = socket(AF_INET, SOCK_STREAM, 0)) == -1)
		popbench_die("socket: %s", strerror(errno));
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lfd, (struct sockaddr *)&popbench_addr,
	    sizeof(popbench_addr)) == -1 || listen(lfd, 128) == -1)
		popbench_die("bind/listen port %d: %s", popbench_o.port,
		    strerror(errno));
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = popbench_serve_reap;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
	sigaction(SIGCHLD, &sa, NULL);
	for (;;) {
		if ((fd = accept(lfd, NULL, NULL)) == -1) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			popbench_die("accept: %s", strerror(errno));
		}
		switch (fork()) {
		case -1:
			close(fd);
			break;
		case 0:
			close(lfd);
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
			    sizeof(one));
			popbench_serve_conn(fd, file, st.st_size);
			_exit(0);
		default:
			close(fd);
		}
	}
}

/* As many descriptors as the hard limit allows. */
static void
popbench_raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/* A decimal option argument within [min, max], or exit. */
static int
popbench_atoi(const char *s, const char *what, int min, int max)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *s == '\0' || *end != '\0' || v < min || v > max)
		popbench_die("bad %s: %s", what, s);
	return (int)v;
}

/* A non-negative decimal option argument, or exit. */
static double
popbench_atof(const char *s, const char *what)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || *s == '\0' || *end != '\0' || v < 0)
		popbench_die("bad %s: %s", what, s);
	return v;
}

static void
popbench_usage(void)
{
	fprintf(stderr,
	    "usage: popbench MODE [-H host] [-p port] [options]\n"
	    "modes: sessions retr idle open hold serve\n"
	    "  -c clients   concurrent clients (sessions, retr)\n"
	    "  -n count     mailboxes (sessions)\n"
	    "  -o first     number of the first mailbox (default 1)\n"
	    "  -U prefix    user name prefix (default u): users u1, u2...\n"
	    "  -w pattern   password, %%u is the user (default pw-%%u)\n"
	    "  -W file      user:password lines instead of -w\n"
	    "  -t seconds   measured time (sessions, retr); deadline (hold)\n"
	    "  -s seconds   warm-up before the measured time\n"
	    "  -j procs     client processes (sessions, retr)\n"
	    "  -N count     connections (idle, hold)\n"
	    "  -q count     connection setups in flight (idle, hold)\n"
	    "  -l           hold: log in too\n"
	    "  -m msg       retr: message number (default 1)\n"
	    "  -f file      serve: the message in wire form\n");
	exit(2);
}

int
main(int argc, char *argv[])
{
	const char *m;
	int ch;

	if (argc < 2)
		popbench_usage();
	m = argv[1];
	if (strcmp(m, "sessions") == 0)
		popbench_o.mode = PM_SESSIONS;
	else if (strcmp(m, "retr") == 0)
		popbench_o.mode = PM_RETR;
	else if (strcmp(m, "idle") == 0)
		popbench_o.mode = PM_IDLE;
	else if (strcmp(m, "open") == 0)
		popbench_o.mode = PM_OPEN;
	else if (strcmp(m, "hold") == 0)
		popbench_o.mode = PM_HOLD;
	else if (strcmp(m, "serve") == 0)
		popbench_o.mode = PM_SERVE;
	else
		popbench_usage();
	popbench_o.host = "127.0.0.1";
	popbench_o.port = 110;
	popbench_o.clients = 1;
	popbench_o.mailboxes = 0;
	popbench_o.first = 1;
	popbench_o.prefix = "u";
	popbench_o.passfmt = "pw-%u";
	popbench_o.seconds = 10;
	popbench_o.procs = 1;
	popbench_o.count = 1;
	popbench_o.conc = 200;
	popbench_o.msg = 1;
	optind = 2;
	while ((ch = getopt(argc, argv, "H:p:c:n:o:U:w:W:t:s:j:N:q:lm:f:")) !=
	    -1) {
		switch (ch) {
		case 'H':
			popbench_o.host = optarg;
			break;
		case 'p':
			popbench_o.port = popbench_atoi(optarg, "port", 1,
			    65535);
			break;
		case 'c':
			popbench_o.clients = popbench_atoi(optarg, "clients",
			    1, 1000000);
			break;
		case 'n':
			popbench_o.mailboxes = popbench_atoi(optarg,
			    "mailboxes", 1, INT_MAX / 2);
			break;
		case 'o':
			popbench_o.first = popbench_atoi(optarg, "first", 0,
			    INT_MAX / 2);
			break;
		case 'U':
			popbench_o.prefix = optarg;
			break;
		case 'w':
			popbench_o.passfmt = optarg;
			break;
		case 'W':
			popbench_o.passfile = optarg;
			break;
		case 't':
			popbench_o.seconds = popbench_atof(optarg, "seconds");
			break;
		case 's':
			popbench_o.warmup = popbench_atof(optarg, "warm-up");
			break;
		case 'j':
			popbench_o.procs = popbench_atoi(optarg, "procs", 1,
			    256);
			break;
		case 'N':
			popbench_o.count = popbench_atoi(optarg, "count", 1,
			    1000000);
			break;
		case 'q':
			popbench_o.conc = popbench_atoi(optarg, "in-flight",
			    1, 1000000);
			break;
		case 'l':
			popbench_o.login = 1;
			break;
		case 'm':
			popbench_o.msg = popbench_atoi(optarg, "message", 1,
			    INT_MAX);
			break;
		case 'f':
			popbench_o.file = optarg;
			break;
		default:
			popbench_usage();
		}
	}
	if (popbench_o.mailboxes == 0)
		popbench_o.mailboxes = popbench_o.clients;
	memset(&popbench_addr, 0, sizeof(popbench_addr));
	popbench_addr.sin_family = AF_INET;
	popbench_addr.sin_port = htons((uint16_t)popbench_o.port);
	if (inet_pton(AF_INET, popbench_o.host, &popbench_addr.sin_addr) != 1)
		popbench_die("bad IPv4 address: %s", popbench_o.host);
	signal(SIGPIPE, SIG_IGN);
	popbench_raise_nofile();
	if (popbench_o.passfile != NULL)
		popbench_pass_load(popbench_o.passfile);
	switch (popbench_o.mode) {
	case PM_SESSIONS:
	case PM_RETR:
		popbench_load();
		break;
	case PM_IDLE:
	case PM_HOLD:
		popbench_park();
		break;
	case PM_OPEN:
		popbench_open();
		break;
	case PM_SERVE:
		if (popbench_o.file == NULL)
			popbench_die("serve needs -f FILE");
		popbench_serve();
		break;
	}
	return popbench_r.errors == 0 && popbench_r.refused == 0 ? 0 : 1;
}
