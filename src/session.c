/*
 * evpop3d - session.c: the life of one POP3 connection.
 *
 * A session owns its bufferevent, mailbox snapshot, lock, RETR stream and
 * timers; session_free() is the only teardown.  Input is framed into lines
 * here and handed to cmd_dispatch(); parsing pauses (SF_BUSY) while a
 * worker job, an authentication delay or a RETR stream is in progress, and
 * while a client that does not read has SESSION_OUTPUT_HIWAT octets
 * waiting, so pipelined commands queue in the kernel, not in our memory.
 *
 * A session referenced by a worker job (jobs > 0) is never freed: the job's
 * done callback finishes what session_close() started.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "auth.h"
#include "cmd.h"
#include "conf.h"
#include "connlimit.h"
#include "lock.h"
#include "log.h"
#include "maildir.h"
#include "params.h"
#include "penalty.h"
#include "proxy.h"
#include "retr.h"
#include "session.h"
#include "tls.h"
#include "worker.h"

TAILQ_HEAD(session_list, session);

static struct event_base	*session_evbase;
static const struct config	*session_cfg;
static struct passwd_db		*session_pwdb;
static struct session_list	 session_all =
    TAILQ_HEAD_INITIALIZER(session_all);
static unsigned int		 session_n;
static uint64_t			 session_next_id;
static char			 session_host[GREETING_HOST_MAX + 1];

static void	session_read_cb(struct bufferevent *, void *);
static void	session_write_cb(struct bufferevent *, void *);
static void	session_event_cb(struct bufferevent *, short, void *);
static void	session_resume_cb(evutil_socket_t, short, void *);
static void	session_timer_cb(evutil_socket_t, short, void *);
static void	session_login_timeout_cb(evutil_socket_t, short, void *);
static void	session_process(struct session *);
static int	session_untrusted_proxy(struct session *);
static void	session_free(struct session *);
static void	session_update_io(struct session *);
static void	session_cleanup_run(void *);

/* Remember the loop and make the greeting's host part once. */
void
session_init(struct event_base *base, const struct config *cfg,
    struct passwd_db *db)
{
	char host[256];
	size_t i, j;

	session_evbase = base;
	session_cfg = cfg;
	session_pwdb = db;
	if (gethostname(host, sizeof(host)) == -1)
		strcpy(host, "localhost");
	host[sizeof(host) - 1] = '\0';
	/* Only characters that cannot break the <...> msg-id form. */
	for (i = j = 0; host[i] != '\0' && j < GREETING_HOST_MAX; i++) {
		unsigned char c = host[i];
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '-')
			session_host[j++] = c;
	}
	if (j == 0)
		strcpy(session_host, "localhost");
	else
		session_host[j] = '\0';
}

void
session_set_config(const struct config *cfg)
{
	session_cfg = cfg;
}

void
session_set_passwd(struct passwd_db *db)
{
	struct passwd_db *old = session_pwdb;

	/* Jobs hold copies of what they need from the db, so the old one
	 * can go at once. */
	session_pwdb = db;
	if (old != NULL && old != db)
		auth_db_free(old);
}

const struct config *
session_config(void)
{
	return session_cfg;
}

const struct passwd_db *
session_passwd(void)
{
	return session_pwdb;
}

struct event_base *
session_base(void)
{
	return session_evbase;
}

unsigned int
session_count(void)
{
	return session_n;
}

/* Same client address (port ignored)? */
static int
session_same_addr(const struct sockaddr_storage *a, const struct sockaddr *b)
{
	if (a->ss_family != b->sa_family)
		return 0;
	if (b->sa_family == AF_INET)
		return ((const struct sockaddr_in *)(const void *)a)->
		    sin_addr.s_addr == ((const struct sockaddr_in *)
		    (const void *)b)->sin_addr.s_addr;
	if (b->sa_family == AF_INET6)
		return memcmp(&((const struct sockaddr_in6 *)(const void *)a)->
		    sin6_addr, &((const struct sockaddr_in6 *)(const void *)b)->
		    sin6_addr, 16) == 0;
	return 0;
}

/* Sessions whose peer address same() matches sa (per-IP limit). */
unsigned int
session_count_peer(const struct sockaddr *sa,
    int (*same)(const struct sockaddr_storage *, const struct sockaddr *))
{
	struct session *s;
	unsigned int n = 0;

	TAILQ_FOREACH(s, &session_all, entry)
		if (same(&s->peer_ss, sa))
			n++;
	return n;
}

/* Is this address on the loopback interface (allow_plaintext local)? */
static int
session_is_loopback(const struct sockaddr *sa)
{
	const struct sockaddr_in *sin;
	const struct sockaddr_in6 *sin6;

	if (sa->sa_family == AF_UNIX)
		return 1;	/* inetd mode over pipes: a local client */
	if (sa->sa_family == AF_INET) {
		sin = (const struct sockaddr_in *)sa;
		return (ntohl(sin->sin_addr.s_addr) >> 24) == 127;
	}
	if (sa->sa_family == AF_INET6) {
		sin6 = (const struct sockaddr_in6 *)sa;
		if (IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr))
			return 1;
		if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr))
			return sin6->sin6_addr.s6_addr[12] == 127;
	}
	return 0;
}

/* "addr:port" or "[addr]:port" for logs. */
static void
session_format_peer(struct session *s, const struct sockaddr *sa)
{
	char addr[INET6_ADDRSTRLEN];

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const void *)sa;
		inet_ntop(AF_INET, &sin->sin_addr, addr, sizeof(addr));
		snprintf(s->peer, sizeof(s->peer), "%s:%u", addr,
		    ntohs(sin->sin_port));
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const void *)sa;
		inet_ntop(AF_INET6, &sin6->sin6_addr, addr, sizeof(addr));
		snprintf(s->peer, sizeof(s->peer), "[%s]:%u", addr,
		    ntohs(sin6->sin6_port));
	} else
		strcpy(s->peer, "local");
}

/* Make the RFC 1939 APOP timestamp: unique per session, msg-id form. */
static void
session_make_timestamp(struct session *s)
{
	unsigned char rnd[6];
	char hex[13];
	int i;

	if (tls_random(rnd, sizeof(rnd)) == -1) {
		for (i = 0; i < (int)sizeof(rnd); i++)
			rnd[i] = (unsigned char)(random() >> 8);
	}
	for (i = 0; i < (int)sizeof(rnd); i++)
		snprintf(hex + 2 * i, 3, "%02x", rnd[i]);
	snprintf(s->timestamp, sizeof(s->timestamp), "<%ld.%s.%lld@%s>",
	    (long)getpid(), hex, (long long)time(NULL), session_host);
}

/* Our callbacks, watermarks and idle timeout on s->bev (new or after
 * STLS replaced it). */
static void
session_setup_bev(struct session *s)
{
	struct timeval tv;

	bufferevent_setcb(s->bev, session_read_cb, session_write_cb,
	    session_event_cb, s);
	bufferevent_setwatermark(s->bev, EV_READ, 0, SESSION_INPUT_HIWAT);
	bufferevent_setwatermark(s->bev, EV_WRITE, RETR_LOWAT, 0);
	tv.tv_sec = session_cfg->idle_timeout;
	tv.tv_usec = 0;
	bufferevent_set_timeouts(s->bev, &tv, &tv);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
}

/* Accept a connection: wrap the socket, then start the session. */
int
session_accept(int fd, const struct sockaddr *sa, socklen_t salen, int tls,
    int stls, int proxy, int counted)
{
	struct bufferevent *bev;
	struct session *s;
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (proxy) {
		/* The header comes in clear, before any TLS. */
		bev = bufferevent_socket_new(session_evbase, fd,
		    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
		if (bev == NULL) {
			close(fd);
			return -1;
		}
		if (session_start(bev, sa, salen, -1, stls) == -1)
			return -1;
		s = TAILQ_LAST(&session_all, session_list);
		if (tls)
			s->flags |= SF_TLS_LATER;
		if (counted)
			s->flags |= SF_COUNTED;
		return 0;
	}
	if (tls)
		bev = tls_accept_bev(session_evbase, fd);
	else
		bev = bufferevent_socket_new(session_evbase, fd,
		    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (bev == NULL) {
		log_warnx("session: cannot create bufferevent");
		close(fd);
		return -1;
	}
	if (session_start(bev, sa, salen, tls, stls) == -1)
		return -1;
	if (counted)
		TAILQ_LAST(&session_all, session_list)->flags |= SF_COUNTED;
	return 0;
}

void
session_set_worker(unsigned int w)
{
	session_next_id = (uint64_t)(w & 0xffff) << 48;
}

/* Make the session around a connected bufferevent, send the greeting. */
int
session_start(struct bufferevent *bev, const struct sockaddr *sa,
    socklen_t salen, int tls, int stls)
{
	struct session *s;
	struct timeval tv;

	if ((s = calloc(1, sizeof(*s))) == NULL) {
		log_warn("session: calloc");
		bufferevent_free(bev);
		return -1;
	}
	s->id = ++session_next_id;
	s->bev = bev;
	if (salen > sizeof(s->peer_ss))
		salen = sizeof(s->peer_ss);
	memcpy(&s->peer_ss, sa, salen);
	session_format_peer(s, sa);
	if (session_is_loopback(sa))
		s->flags |= SF_LOOPBACK;
	if (stls)
		s->flags |= SF_STLS_OFFER;
	if (tls)
		s->flags |= SF_TLS;
	clock_gettime(CLOCK_MONOTONIC, &s->start);
	s->state = tls == -1 ? ST_PROXY : ST_AUTHORIZATION;
	if (tls == -1)
		s->flags &= ~SF_TLS;
	s->resume_ev = event_new(session_evbase, -1, 0, session_resume_cb, s);
	s->timer = evtimer_new(session_evbase, session_timer_cb, s);
	s->login_ev = evtimer_new(session_evbase, session_login_timeout_cb, s);
	if (s->resume_ev == NULL || s->timer == NULL || s->login_ev == NULL) {
		log_warnx("session: out of memory");
		bufferevent_free(s->bev);
		if (s->resume_ev != NULL)
			event_free(s->resume_ev);
		if (s->timer != NULL)
			event_free(s->timer);
		if (s->login_ev != NULL)
			event_free(s->login_ev);
		free(s);
		return -1;
	}
	TAILQ_INSERT_TAIL(&session_all, s, entry);
	session_n++;

	session_setup_bev(s);
	tv.tv_sec = session_cfg->login_timeout;
	tv.tv_usec = 0;
	evtimer_add(s->login_ev, &tv);

	session_make_timestamp(s);
	log_debug("session=%016llx event=connect peer=%s tls=%d",
	    (unsigned long long)s->id, s->peer, tls);
	if (s->state != ST_PROXY)
		session_reply(s, "+OK evpop3d ready %s", s->timestamp);
	return 0;
}

/*
 * The PROXY protocol header from a trusted proxy: from here on the client
 * is the address it names (for logs, limits and allow_plaintext local).
 * Returns 1 when the session can go on, 0 to wait for more input, -1 if
 * it was closed.
 */
static int
session_proxy_header(struct session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	size_t len = evbuffer_get_length(in), used;
	struct proxy_info info;
	struct bufferevent *tbev;
	enum proxy_result r;
	const struct config *cfg = session_cfg;
	unsigned char *buf;

	if (len > PROXY_HEADER_MAX)
		len = PROXY_HEADER_MAX;
	buf = evbuffer_pullup(in, (ev_ssize_t)len);
	r = proxy_parse(buf, len, &used, &info);
	if (r == PROXY_MORE && len < PROXY_HEADER_MAX &&
	    !(s->flags & SF_PEER_GONE))
		return 0;
	if (r != PROXY_OK) {
		log_warnx("session=%016llx peer=%s missing or malformed "
		    "PROXY header", (unsigned long long)s->id, s->peer);
		session_close(s, END_PROXY);
		return -1;
	}
	evbuffer_drain(in, used);
	if (!info.local) {
		unsigned int n;

		if (s->flags & SF_COUNTED)
			n = connlimit_move((struct sockaddr *)&s->peer_ss,
			    (struct sockaddr *)&info.src);
		else
			n = session_count_peer((struct sockaddr *)&info.src,
			    session_same_addr) + 1;
		snprintf(s->proxy, sizeof(s->proxy), "%s", s->peer);
		memcpy(&s->peer_ss, &info.src, info.srclen);
		session_format_peer(s, (struct sockaddr *)&info.src);
		s->flags &= ~SF_LOOPBACK;
		if (session_is_loopback((struct sockaddr *)&info.src))
			s->flags |= SF_LOOPBACK;
		s->flags |= SF_PROXIED;
		if (cfg->max_connections_per_ip > 0 &&
		    n > cfg->max_connections_per_ip) {
			log_warnx("session=%016llx peer=%s via=%s: "
			    "max_connections_per_ip %u reached, refusing",
			    (unsigned long long)s->id, s->peer, s->proxy,
			    cfg->max_connections_per_ip);
			if (!(s->flags & SF_TLS_LATER))
				session_reply(s, "-ERR [SYS/TEMP] Too many "
				    "connections from your address.");
			session_close(s, END_ERROR);
			return -1;
		}
	}
	log_debug("session=%016llx PROXY header: client %s%s",
	    (unsigned long long)s->id, s->peer, info.local ? " (local)" : "");
	if (s->flags & SF_TLS_LATER) {
		/* What follows the header (the ClientHello) stays in the
		 * input buffer for the TLS filter to read. */
		if ((tbev = tls_filter_bev(session_evbase, s->bev)) == NULL) {
			session_close(s, END_ERROR);
			return -1;
		}
		s->bev = tbev;
		s->flags |= SF_TLS;
		s->flags &= ~SF_TLS_LATER;
		session_setup_bev(s);
	}
	s->state = ST_AUTHORIZATION;
	session_reply(s, "+OK evpop3d ready %s", s->timestamp);
	return 1;
}

/* Queue one reply line, CRLF added. */
void
session_reply(struct session *s, const char *fmt, ...)
{
	struct evbuffer *out;
	va_list ap;

	if (s->flags & SF_FREEING)
		return;
	out = bufferevent_get_output(s->bev);
	va_start(ap, fmt);
	evbuffer_add_vprintf(out, fmt, ap);
	va_end(ap);
	evbuffer_add(out, "\r\n", 2);
	if (*fmt == '+')
		s->bad_cmds = 0;
}

/* An -ERR reply; too many of them in a row end the session (a client
 * that only sends garbage is not a client). */
void
session_error(struct session *s, const char *fmt, ...)
{
	struct evbuffer *out;
	va_list ap;

	if (s->flags & SF_FREEING)
		return;
	out = bufferevent_get_output(s->bev);
	evbuffer_add(out, "-ERR ", 5);
	va_start(ap, fmt);
	evbuffer_add_vprintf(out, fmt, ap);
	va_end(ap);
	evbuffer_add(out, "\r\n", 2);
	if (++s->bad_cmds >= SESSION_BAD_CMDS_MAX) {
		session_reply(s, "-ERR Too many bad commands, closing.");
		session_close(s, END_BAD_CMDS);
	}
}

void
session_write(struct session *s, const void *data, size_t len)
{
	if (s->flags & SF_FREEING)
		return;
	evbuffer_add(bufferevent_get_output(s->bev), data, len);
}

size_t
session_output_len(const struct session *s)
{
	return evbuffer_get_length(bufferevent_get_output(s->bev));
}

static const char *
session_state_name(enum session_state st)
{
	switch (st) {
	case ST_AUTHORIZATION:
		return "AUTHORIZATION";
	case ST_SASL:
		return "SASL";
	case ST_TRANSACTION:
		return "TRANSACTION";
	case ST_UPDATE:
		return "UPDATE";
	case ST_CLOSING:
		return "CLOSING";
	case ST_PROXY:
		return "PROXY";
	}
	return "?";
}

void
session_enter_state(struct session *s, enum session_state st)
{
	if (s->state == ST_CLOSING)
		return;
	log_debug("session=%016llx state %s -> %s",
	    (unsigned long long)s->id, session_state_name(s->state),
	    session_state_name(st));
	s->state = st;
}

int
session_plaintext_ok(const struct session *s)
{
	if (s->flags & SF_TLS)
		return 1;
	switch (session_cfg->allow_plaintext) {
	case CONF_PLAINTEXT_YES:
		return 1;
	case CONF_PLAINTEXT_NO:
		return 0;
	case CONF_PLAINTEXT_LOCAL:
		return (s->flags & SF_LOOPBACK) != 0;
	}
	return 0;
}

int
session_stls_ok(const struct session *s)
{
	return (s->flags & (SF_STLS_OFFER | SF_TLS)) == SF_STLS_OFFER &&
	    tls_available();
}

void
session_busy(struct session *s)
{
	s->flags |= SF_BUSY;
	session_update_io(s);
}

/* Leave the busy state and go on with pipelined input, from the loop
 * rather than from here, so a handler never re-enters the parser. */
void
session_resume(struct session *s)
{
	s->flags &= ~SF_BUSY;
	if (s->state == ST_CLOSING)
		return;
	event_active(s->resume_ev, EV_TIMEOUT, 0);
}

/*
 * A closing session goes once no job holds it and its output is out (or
 * can never go out).  Returns 1 if it was freed.
 */
static int
session_try_free(struct session *s)
{
	struct bufferevent *under;
	struct timeval tv = { 0, 10000 };

	if (s->jobs > 0)
		return 0;
	if (!(s->flags & SF_PEER_GONE) && s->close_polls < 500) {
		if (evbuffer_get_length(bufferevent_get_output(s->bev)) > 0)
			return 0;	/* the write callback comes back */
		if ((s->flags & (SF_TLS | SF_TLS_SHUT)) == SF_TLS) {
			s->flags |= SF_TLS_SHUT;
			tls_close_notify(s->bev);
		}
		under = bufferevent_get_underlying(s->bev);
		if (under != NULL &&
		    evbuffer_get_length(bufferevent_get_output(under)) > 0) {
			/* STLS filter: its socket calls no callback of ours,
			 * so look again shortly (at most 5 s). */
			s->close_polls++;
			evtimer_add(s->timer, &tv);
			return 0;
		}
	}
	session_free(s);
	return 1;
}

void
session_hold(struct session *s)
{
	s->jobs++;
}

int
session_unhold(struct session *s)
{
	s->jobs--;
	if (s->state == ST_CLOSING)
		return session_try_free(s);
	return 0;
}

/* Reading is enabled only when we would parse what arrives: otherwise
 * the kernel's socket buffer holds the client's pipelined commands. */
static void
session_update_io(struct session *s)
{
	if (s->state == ST_CLOSING || s->flags & (SF_BUSY | SF_PEER_GONE) ||
	    session_output_len(s) >= SESSION_OUTPUT_HIWAT)
		bufferevent_disable(s->bev, EV_READ);
	else
		bufferevent_enable(s->bev, EV_READ);
}

/* Does this command line contain a byte no POP3 command may carry? */
static int
session_line_bad_bytes(const char *line, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		unsigned char c = line[i];
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return 1;
	}
	return 0;
}

/*
 * Parse and execute complete lines until the session is busy, the output
 * backs up, or SESSION_CMDS_PER_EVENT lines have run (then yield to other
 * sessions and continue from the loop).
 */
static void
session_process(struct session *s)
{
	struct evbuffer *in;
	char *line;
	size_t len;
	int n = 0;

	if (s->state == ST_PROXY && session_proxy_header(s) != 1) {
		if (s->state == ST_PROXY && (s->flags & SF_PEER_GONE))
			session_close(s, END_DISCONNECT);
		return;
	}
	if (!(s->flags & SF_STARTED) && !(s->flags & SF_PROXIED) &&
	    session_untrusted_proxy(s))
		return;
	while (s->state != ST_CLOSING && !(s->flags & SF_BUSY)) {
		/* Fetched each time: STLS replaces the bufferevent. */
		in = bufferevent_get_input(s->bev);
		if (!(s->flags & SF_PEER_GONE) &&
		    session_output_len(s) >= SESSION_OUTPUT_HIWAT)
			break;	/* the write callback resumes us */
		if (n++ >= SESSION_CMDS_PER_EVENT) {
			event_active(s->resume_ev, EV_TIMEOUT, 0);
			break;
		}
		line = evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF);
		if (line == NULL) {
			if (evbuffer_get_length(in) > POP_LINE_ABSURD) {
				session_reply(s, "-ERR Line too long.");
				session_close(s, END_LINE);
			} else if (s->flags & SF_PEER_GONE) {
				/* Everything the client sent is done. */
				session_close(s, END_DISCONNECT);
			}
			break;
		}
		if (s->state == ST_SASL)
			cmd_sasl_line(s, line, len);	/* may exceed 255 */
		else if (len > POP_LINE_MAX - 2)
			session_error(s, "Line too long.");
		else if (session_line_bad_bytes(line, len))
			session_error(s, "Invalid characters in command.");
		else
			cmd_dispatch(s, line, len);
		/* Commands may hold secrets; do not leave them in the heap. */
		memset(line, 0, len);
		free(line);
	}
	if (s->state != ST_CLOSING)
		session_update_io(s);
}

/*
 * A PROXY header from an address that is not in proxy_protocol_from: the
 * connection is refused, so nobody can pretend to be someone else.
 * Returns 1 if the session was closed.
 */
static int
session_untrusted_proxy(struct session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	size_t len = evbuffer_get_length(in);
	unsigned char *buf;

	if (len == 0)
		return 0;
	s->flags |= SF_STARTED;
	if (len > 12)
		len = 12;
	buf = evbuffer_pullup(in, (ev_ssize_t)len);
	if (!proxy_looks_like(buf, len) || len < 6)
		return 0;
	log_warnx("session=%016llx peer=%s sent a PROXY header but is not "
	    "in proxy_protocol_from; refused", (unsigned long long)s->id,
	    s->peer);
	session_reply(s, "-ERR PROXY header from an untrusted address.");
	session_close(s, END_PROXY);
	return 1;
}

static void
session_resume_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct session *s = arg;

	(void)fd;
	(void)ev;
	if (s->state == ST_CLOSING) {
		session_try_free(s);
		return;
	}
	if (s->flags & SF_BUSY)
		return;
	session_process(s);
}

static void
session_read_cb(struct bufferevent *bev, void *arg)
{
	struct session *s = arg;

	(void)bev;
	if (s->state == ST_CLOSING || (s->flags & SF_BUSY))
		return;
	session_process(s);
}

static void
session_write_cb(struct bufferevent *bev, void *arg)
{
	struct session *s = arg;

	(void)bev;
	if (s->retr != NULL) {
		retr_fill(s);
		return;
	}
	if (s->state == ST_CLOSING) {
		session_try_free(s);
		return;
	}
	if (!(s->flags & SF_BUSY))
		session_process(s);
}

/* EOF, error or timeout from the connection. */
static void
session_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct session *s = arg;

	(void)bev;
	if (what & BEV_EVENT_TIMEOUT) {
		if (s->state == ST_CLOSING) {
			/* Output never drained: give up on it. */
			s->flags |= SF_PEER_GONE;
			session_try_free(s);
			return;
		}
		/* Mid-RETR a reply line would corrupt the message. */
		if (s->retr == NULL)
			session_reply(s, "-ERR Disconnected for inactivity.");
		session_close(s, END_IDLE);
		return;
	}
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		char tlserr[256];

		if ((s->flags & SF_TLS) && (what & BEV_EVENT_ERROR) &&
		    tls_error_text(s->bev, tlserr, sizeof(tlserr))) {
			log_warnx("session=%016llx peer=%s TLS error: %s",
			    (unsigned long long)s->id, s->peer, tlserr);
			/*
			 * A protocol error, not a dead socket: let the alert
			 * OpenSSL queued (STLS: in the socket's buffer) go
			 * out before closing.
			 */
			if (s->retr != NULL) {
				retr_free(s->retr);
				s->retr = NULL;
			}
			s->flags &= ~SF_BUSY;
			/* Nothing more can be encrypted on this connection. */
			evbuffer_drain(bufferevent_get_output(s->bev),
			    evbuffer_get_length(bufferevent_get_output(s->bev)));
			if (s->state != ST_CLOSING)
				session_close(s, END_TLS);
			else
				session_try_free(s);
			return;
		}
		s->flags |= SF_PEER_GONE;
		if (s->retr != NULL) {
			retr_free(s->retr);
			s->retr = NULL;
			s->flags &= ~SF_BUSY;
		}
		if (s->state == ST_CLOSING) {
			session_try_free(s);
			return;
		}
		/*
		 * Lines already received still count: a client that sends
		 * QUIT and closes at once (Outlook) gets its UPDATE.
		 */
		if (!(s->flags & SF_BUSY))
			session_process(s);
	}
}

static void
session_timer_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct session *s = arg;
	char *reply = s->pending_reply;

	(void)fd;
	(void)ev;
	if (s->state == ST_CLOSING) {
		session_try_free(s);
		return;
	}
	s->pending_reply = NULL;
	if (reply != NULL) {
		session_reply(s, "%s", reply);
		free(reply);
	}
	if (s->auth_fails >= session_cfg->auth_fail_max) {
		/* A client that keeps guessing gets a new connection's cost
		 * each few tries (Dovecot also stops at 3). */
		session_reply(s, "-ERR [AUTH] Too many failed "
		    "authentications, closing.");
		session_close(s, END_AUTH_FAILS);
		return;
	}
	session_resume(s);
}

/* Reply after auth_fail_delay_ms (longer for an address that keeps
 * failing): a timer, never a sleep. */
void
session_auth_failed(struct session *s, const char *reply)
{
	struct timeval tv;
	unsigned int ms = session_cfg->auth_fail_delay_ms;
	const struct sockaddr *sa = (const struct sockaddr *)&s->peer_ss;
	time_t now = time(NULL);

	s->auth_fails++;
	if (!conf_login_trusted(session_cfg, sa)) {
		ms = penalty_delay_ms(sa, ms, now);
		penalty_fail(sa, now);
	}
	if ((s->pending_reply = strdup(reply)) == NULL) {
		session_reply(s, "%s", reply);
		session_resume(s);
		return;
	}
	session_busy(s);
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(s->timer, &tv);
}

void
session_logged_in(struct session *s)
{
	evtimer_del(s->login_ev);
	penalty_clear((const struct sockaddr *)&s->peer_ss);
}

/* Not logged in after login_timeout: a connection slot is not free. */
static void
session_login_timeout_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct session *s = arg;

	(void)fd;
	(void)ev;
	if (s->state != ST_AUTHORIZATION && s->state != ST_SASL)
		return;
	session_reply(s, "-ERR Login timeout, closing.");
	session_close(s, END_LOGIN_TIME);
}

/* Start closing: no more input; free once the output has drained and no
 * job holds the session. */
void
session_close(struct session *s, const char *reason)
{
	struct timeval tv = { 5, 0 };

	if (s->state == ST_CLOSING)
		return;
	if (s->end_reason == NULL)
		s->end_reason = reason;
	s->state = ST_CLOSING;
	if (s->retr != NULL) {
		retr_free(s->retr);
		s->retr = NULL;
	}
	evtimer_del(s->timer);
	evtimer_del(s->login_ev);
	bufferevent_disable(s->bev, EV_READ);
	if (s->jobs > 0)
		return;
	if ((s->flags & SF_PEER_GONE) || session_output_len(s) == 0) {
		/* Freed from the loop: our callers still hold s. */
		bufferevent_setwatermark(s->bev, EV_WRITE, 0, 0);
		event_active(s->resume_ev, EV_TIMEOUT, 0);
		return;
	}
	/* Bound the time a non-reading client can keep us around. */
	bufferevent_set_timeouts(s->bev, NULL, &tv);
	bufferevent_setwatermark(s->bev, EV_WRITE, 0, 0);
	bufferevent_enable(s->bev, EV_WRITE);
}

/*
 * STLS (RFC 2595): the +OK already queued goes out in clear, then TLS
 * starts over the same connection.  Whatever the client sent after the
 * STLS line in clear is discarded, never executed (CVE-2011-0411 class).
 */
int
session_starttls(struct session *s)
{
	struct bufferevent *tbev;
	struct evbuffer *in = bufferevent_get_input(s->bev);

	evbuffer_drain(in, evbuffer_get_length(in));
	if ((tbev = tls_filter_bev(session_evbase, s->bev)) == NULL)
		return -1;
	s->bev = tbev;
	s->flags |= SF_TLS;
	session_setup_bev(s);
	return 0;
}

struct session_cleanup {
	struct mailbox		*mbox;
	struct mbox_lock	*lock;
};

/* Off the loop: lock files and directory handles may sit on NFS. */
static void
session_cleanup_run(void *arg)
{
	struct session_cleanup *c = arg;

	lock_release(c->lock);
	if (c->mbox != NULL)
		maildir_free(c->mbox);
	free(c);
}

static double
session_elapsed(const struct session *s)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - s->start.tv_sec) +
	    (now.tv_nsec - s->start.tv_nsec) / 1e9;
}

void
session_foreach(void (*fn)(const struct session *, void *), void *arg)
{
	struct session *s;

	TAILQ_FOREACH(s, &session_all, entry)
		if (s->state != ST_CLOSING)
			fn(s, arg);
}

/* For the administrator's session list (control.c). */
void
session_describe(const struct session *s, char *buf, size_t len)
{
	static const struct { int st; const char *name; } states[] = {
		{ ST_AUTHORIZATION, "authorization" }, { ST_SASL, "sasl" },
		{ ST_TRANSACTION, "transaction" }, { ST_UPDATE, "update" },
		{ ST_CLOSING, "closing" }, { ST_PROXY, "proxy" }
	};
	const char *state = "?";
	size_t i, n, marked = 0;
	double el = session_elapsed(s);
	time_t since = time(NULL) - (time_t)el;
	struct tm tm;
	char when[32];

	for (i = 0; i < sizeof(states) / sizeof(states[0]); i++)
		if (states[i].st == (int)s->state)
			state = states[i].name;
	if (s->mbox != NULL) {
		n = maildir_count(s->mbox);
		for (i = 0; i < n; i++)
			if (maildir_msg(s->mbox, i)->deleted)
				marked++;
	}
	gmtime_r(&since, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	snprintf(buf, len, "session=%016llx user=%s peer=%s%s%s state=%s "
	    "tls=%s mech=%s since=%s duration=%.1f listed=%zu retr=%llu "
	    "marked=%zu", (unsigned long long)s->id,
	    s->mech != NULL || s->have_user ? s->user : "-", s->peer,
	    s->proxy[0] != '\0' ? " via=" : "", s->proxy, state,
	    s->flags & SF_TLS ? "yes" : "no", s->mech != NULL ? s->mech : "-",
	    when, el, s->listed, (unsigned long long)s->retr_msgs, marked);
}

/* The administrator ends a session: no UPDATE, so its marks are
 * discarded and its lock released; the client is told why. */
int
session_admin_end(uint64_t id)
{
	struct session *s;

	TAILQ_FOREACH(s, &session_all, entry) {
		if (s->id != id || s->state == ST_CLOSING)
			continue;
		if (s->state == ST_UPDATE)
			return 1;
		if (s->retr == NULL)	/* not inside a message being sent */
			session_reply(s, "-ERR [SYS/TEMP] Session ended by "
			    "the administrator.");
		session_close(s, END_ADMIN);
		return 0;
	}
	return -1;
}

/* JSON string body: quotes, backslashes and controls escaped. */
static void
session_json_str(char *out, size_t outlen, const char *in)
{
	size_t o = 0;

	for (; *in != '\0' && o + 7 < outlen; in++) {
		unsigned char c = *in;
		if (c == '"' || c == '\\') {
			out[o++] = '\\';
			out[o++] = c;
		} else if (c < 0x20 || c == 0x7f)
			o += snprintf(out + o, outlen - o, "\\u%04x", c);
		else
			out[o++] = c;
	}
	out[o] = '\0';
}

/*
 * The session record: one line an administrator can answer "my mail
 * vanished" or "my mail came twice" with.  listed: messages at login;
 * retr: messages/octets sent by RETR; marked: DELE marks at the end;
 * removed: files UPDATE actually removed; discarded: marks dropped
 * because the session did not end with QUIT; reason: how it ended.
 */
static void
session_log_record(struct session *s)
{
	size_t left = 0, marked = 0, i, n;
	uint64_t left_octets = 0, discarded = 0;
	char user[2 * AUTH_USER_MAX + 8], tls[160];
	const char *reason = s->end_reason != NULL ? s->end_reason :
	    END_DISCONNECT;
	int known = s->have_user || s->mech != NULL;

	if (s->mbox != NULL) {
		/* Ended without QUIT: every mark is discarded. */
		maildir_stat(s->mbox, &left, &left_octets);
		n = maildir_count(s->mbox);
		for (i = 0; i < n; i++)
			if (maildir_msg(s->mbox, i)->deleted) {
				marked++;
				left_octets += maildir_msg(s->mbox, i)->size;
			}
		discarded = marked;
		left += marked;
	} else {
		marked = s->del_msgs;
		left = s->left_msgs;
		left_octets = s->left_octets;
	}
	snprintf(tls, sizeof(tls), "%s",
	    s->flags & SF_TLS ? tls_describe(s->bev) : "no");
	if (session_cfg->log_json) {
		session_json_str(user, sizeof(user), known ? s->user : "");
		log_info("{\"session\":\"%016llx\",\"event\":\"end\","
		    "\"peer\":\"%s\",\"via\":\"%s\",\"user\":\"%s\","
		    "\"mech\":\"%s\",\"tls\":\"%s\",\"listed\":%zu,"
		    "\"retr\":%llu,\"retr_octets\":%llu,\"marked\":%zu,"
		    "\"removed\":%llu,\"discarded\":%llu,\"left\":%zu,"
		    "\"left_octets\":%llu,\"duration\":%.3f,"
		    "\"reason\":\"%s\"}", (unsigned long long)s->id, s->peer,
		    s->proxy, user, s->mech != NULL ? s->mech : "", tls,
		    s->listed, (unsigned long long)s->retr_msgs,
		    (unsigned long long)s->retr_octets, marked,
		    (unsigned long long)s->removed,
		    (unsigned long long)discarded, left,
		    (unsigned long long)left_octets, session_elapsed(s),
		    reason);
		return;
	}
	log_info("session=%016llx event=end peer=%s%s%s user=%s mech=%s "
	    "reason=%s tls=%s listed=%zu retr=%llu/%llu marked=%zu "
	    "removed=%llu discarded=%llu deleted=%llu/%llu left=%zu/%llu "
	    "duration=%.3f", (unsigned long long)s->id, s->peer,
	    s->proxy[0] != '\0' ? " via=" : "", s->proxy,
	    known ? s->user : "-", s->mech != NULL ? s->mech : "-", reason,
	    tls, s->listed, (unsigned long long)s->retr_msgs,
	    (unsigned long long)s->retr_octets, marked,
	    (unsigned long long)s->removed, (unsigned long long)discarded,
	    (unsigned long long)s->removed, (unsigned long long)s->del_octets,
	    left, (unsigned long long)left_octets, session_elapsed(s));
}

/* The only teardown: log the summary, release everything the session
 * owns (lock and snapshot via a worker job), free. */
static void
session_free(struct session *s)
{
	struct session_cleanup *c;

	if (s->flags & SF_FREEING)
		return;
	s->flags |= SF_FREEING;
	if (s->retr != NULL) {
		retr_free(s->retr);
		s->retr = NULL;
	}
	cmd_sasl_free(s);
	session_log_record(s);

	if (s->mbox != NULL || s->lock != NULL) {
		if ((c = malloc(sizeof(*c))) == NULL) {
			lock_release(s->lock);
			if (s->mbox != NULL)
				maildir_free(s->mbox);
		} else {
			c->mbox = s->mbox;
			c->lock = s->lock;
			if (worker_submit(session_cleanup_run, NULL, c) == -1)
				session_cleanup_run(c);
		}
		s->mbox = NULL;
		s->lock = NULL;
	}
	free(s->pending_reply);
	s->pending_reply = NULL;
	TAILQ_REMOVE(&session_all, s, entry);
	session_n--;
	if (s->flags & SF_COUNTED)
		connlimit_del((struct sockaddr *)&s->peer_ss);
	event_free(s->timer);
	event_free(s->login_ev);
	event_free(s->resume_ev);
	/* An in-process transport (tests, fuzzing) has no socket to close:
	 * tell its other end that we are done. */
	if (bufferevent_getfd(s->bev) < 0 &&
	    bufferevent_get_underlying(s->bev) == NULL)
		bufferevent_flush(s->bev, EV_WRITE, BEV_FINISHED);
	bufferevent_free(s->bev);
	free(s);
}

/* SIGTERM: every session ends now, without UPDATE (the contract); a
 * session already in UPDATE finishes it in its worker job. */
void
session_shutdown_all(void)
{
	struct session *s, *next;

	for (s = TAILQ_FIRST(&session_all); s != NULL; s = next) {
		next = TAILQ_NEXT(s, entry);
		/* QUIT was read: UPDATE completes, then it closes. */
		if (s->state == ST_UPDATE && s->jobs > 0)
			continue;
		if (s->state == ST_CLOSING && s->jobs > 0)
			continue;
		if (s->state != ST_UPDATE && s->state != ST_CLOSING)
			session_reply(s, "-ERR [SYS/TEMP] Server shutting "
			    "down.");
		s->flags |= SF_PEER_GONE;
		if (s->end_reason == NULL)
			s->end_reason = END_SHUTDOWN;
		if (s->state != ST_CLOSING)
			session_close(s, END_SHUTDOWN);
		else if (s->jobs == 0)
			session_free(s);
	}
}
