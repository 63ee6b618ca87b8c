/*
 * evpop3d - listener.c: the accept side.  One evconnlistener per listen or
 * listen_tls line.  Past max_connections (or max_connections_per_ip) a new
 * connection gets one -ERR [SYS/TEMP] line and is closed.  When accept()
 * fails for lack of descriptors, accepting pauses for a second instead of
 * spinning on a socket that stays readable.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "conf.h"
#include "listener.h"
#include "log.h"
#include "params.h"
#include "session.h"
#include "tls.h"

struct listener {
	struct evconnlistener	*lev;
	int			 tls;
	char			 text[80];	/* survives config reloads */
};

static struct listener	*listener_all;
static size_t		 listener_n;
static struct event	*listener_pause_ev;
static int		 listener_enabled;

/* Refuse a connection: one -ERR line on a plain listener (a TLS client
 * could not read clear text, so it is just closed). */
static void
listener_refuse(int fd, const struct listener *l, const char *msg)
{
	ssize_t n;

	/* Best effort: the socket is new, its buffer is empty. */
	if (!l->tls) {
		n = send(fd, msg, strlen(msg), MSG_DONTWAIT | MSG_NOSIGNAL);
		(void)n;
	}
	close(fd);
}

/* Same address (port ignored)? */
static int
listener_same_addr(const struct sockaddr_storage *a, const struct sockaddr *b)
{
	if (a->ss_family != b->sa_family)
		return 0;
	if (b->sa_family == AF_INET)
		return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
		    ((const struct sockaddr_in *)b)->sin_addr.s_addr;
	if (b->sa_family == AF_INET6)
		return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
		    &((const struct sockaddr_in6 *)b)->sin6_addr, 16) == 0;
	return 0;
}

static void
listener_accept_cb(struct evconnlistener *lev, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct listener *l = arg;
	const struct config *cfg = session_config();

	(void)lev;
	if (session_count() >= cfg->max_connections) {
		log_warnx("listener %s: max_connections %u reached, refusing",
		    l->text, cfg->max_connections);
		listener_refuse(fd, l, "-ERR [SYS/TEMP] Too many connections, "
		    "try again later.\r\n");
		return;
	}
	/* From a trusted proxy the client is known only after the PROXY
	 * header: session.c checks the limit then. */
	if (cfg->max_connections_per_ip > 0 &&
	    !conf_proxy_trusted(cfg, sa) &&
	    session_count_peer(sa, listener_same_addr) >=
	    cfg->max_connections_per_ip) {
		char host[NI_MAXHOST] = "?";

		getnameinfo(sa, salen, host, sizeof(host), NULL, 0,
		    NI_NUMERICHOST);
		log_warnx("listener %s: max_connections_per_ip %u reached "
		    "for %s, refusing", l->text, cfg->max_connections_per_ip,
		    host);
		listener_refuse(fd, l, "-ERR [SYS/TEMP] Too many connections "
		    "from your address.\r\n");
		return;
	}
	session_accept(fd, sa, salen, l->tls, !l->tls && cfg->tls_cert != NULL,
	    conf_proxy_trusted(cfg, sa));
}

static void
listener_resume_cb(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	(void)arg;
	if (listener_enabled)
		listener_enable();
}

/* accept() failed: out of descriptors pauses every listener briefly. */
static void
listener_error_cb(struct evconnlistener *lev, void *arg)
{
	struct listener *l = arg;
	struct timeval tv = { LISTENER_PAUSE_MSEC / 1000,
	    (LISTENER_PAUSE_MSEC % 1000) * 1000 };
	int e = errno;
	size_t i;

	(void)lev;
	if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
		log_warnx("listener %s: accept: %s; pausing %d ms", l->text,
		    strerror(e), LISTENER_PAUSE_MSEC);
		for (i = 0; i < listener_n; i++)
			evconnlistener_disable(listener_all[i].lev);
		evtimer_add(listener_pause_ev, &tv);
		return;
	}
	log_warnx("listener %s: accept: %s", l->text, strerror(e));
}

int
listener_init(struct event_base *base, const struct config *cfg)
{
	size_t i;
	struct listener *l;

	if ((listener_all = calloc(cfg->nlistens, sizeof(*l))) == NULL) {
		log_warn("listener: calloc");
		return -1;
	}
	listener_pause_ev = evtimer_new(base, listener_resume_cb, NULL);
	for (i = 0; i < cfg->nlistens; i++) {
		const struct conf_listen *cl = &cfg->listens[i];
		l = &listener_all[listener_n];
		l->tls = cl->tls;
		snprintf(l->text, sizeof(l->text), "%s", cl->text);
		/* [::]:110 must not also claim 0.0.0.0:110: both may be
		 * listed. */
		l->lev = evconnlistener_new_bind(base, listener_accept_cb, l,
		    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC |
		    LEV_OPT_REUSEABLE | LEV_OPT_DISABLED |
		    (cl->ss.ss_family == AF_INET6 ? LEV_OPT_BIND_IPV6ONLY : 0),
		    1024, (const struct sockaddr *)&cl->ss, cl->sslen);
		if (l->lev == NULL) {
			log_warn("cannot listen on %s", cl->text);
			return -1;
		}
		evconnlistener_set_error_cb(l->lev, listener_error_cb);
		listener_n++;
		log_info("listening on %s%s", cl->text, cl->tls ? " (TLS)" : "");
	}
	return 0;
}

/* "addr:port" of a bound socket, for the log. */
static void
listener_describe(int fd, char *buf, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char addr[INET6_ADDRSTRLEN];

	snprintf(buf, len, "fd %d", fd);
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) == -1)
		return;
	if (ss.ss_family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
		inet_ntop(AF_INET, &sin->sin_addr, addr, sizeof(addr));
		snprintf(buf, len, "%s:%u", addr, ntohs(sin->sin_port));
	} else if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
		inet_ntop(AF_INET6, &sin6->sin6_addr, addr, sizeof(addr));
		snprintf(buf, len, "[%s]:%u", addr, ntohs(sin6->sin6_port));
	}
}

/*
 * systemd socket activation: serve the n listening sockets from fd 3 on
 * instead of the listen lines.  A socket whose FileDescriptorName is
 * "pop3s" speaks implicit TLS.
 */
int
listener_init_fds(struct event_base *base, int n, const char *names)
{
	struct listener *l;
	const char *p = names;
	size_t nlen;
	int i, fd;

	if ((listener_all = calloc(n, sizeof(*l))) == NULL) {
		log_warn("listener: calloc");
		return -1;
	}
	listener_pause_ev = evtimer_new(base, listener_resume_cb, NULL);
	for (i = 0; i < n; i++) {
		fd = 3 + i;
		l = &listener_all[listener_n];
		nlen = 0;
		if (p != NULL) {
			nlen = strcspn(p, ":");
			l->tls = nlen == 5 && strncmp(p, "pop3s", 5) == 0;
			p = p[nlen] == ':' ? p + nlen + 1 : NULL;
		}
		if (l->tls && !tls_available()) {
			log_warnx("socket fd %d is named pop3s but no tls_cert "
			    "and tls_key are configured", fd);
			return -1;
		}
		evutil_make_socket_nonblocking(fd);
		evutil_make_socket_closeonexec(fd);
		listener_describe(fd, l->text, sizeof(l->text));
		l->lev = evconnlistener_new(base, listener_accept_cb, l,
		    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC |
		    LEV_OPT_DISABLED, -1, fd);
		if (l->lev == NULL) {
			log_warn("socket activation: fd %d", fd);
			return -1;
		}
		evconnlistener_set_error_cb(l->lev, listener_error_cb);
		listener_n++;
		log_info("listening on %s%s (socket activation)", l->text,
		    l->tls ? " (TLS)" : "");
	}
	return 0;
}

void
listener_enable(void)
{
	size_t i;

	listener_enabled = 1;
	for (i = 0; i < listener_n; i++)
		evconnlistener_enable(listener_all[i].lev);
}

void
listener_disable(void)
{
	size_t i;

	listener_enabled = 0;
	if (listener_pause_ev != NULL)
		evtimer_del(listener_pause_ev);
	for (i = 0; i < listener_n; i++)
		evconnlistener_disable(listener_all[i].lev);
}

void
listener_shutdown(void)
{
	size_t i;

	listener_disable();
	for (i = 0; i < listener_n; i++)
		evconnlistener_free(listener_all[i].lev);
	free(listener_all);
	listener_all = NULL;
	listener_n = 0;
	if (listener_pause_ev != NULL)
		event_free(listener_pause_ev);
	listener_pause_ev = NULL;
}
