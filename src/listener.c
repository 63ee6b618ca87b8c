/*
 * evpop3d - listener.c: the accept side.  One socket per listen or
 * listen_tls line, bound before the worker processes start; each worker's
 * loop has an evconnlistener on every one of them.  Past max_connections (or max_connections_per_ip) a new
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
#include "connlimit.h"
#include "listener.h"
#include "log.h"
#include "params.h"
#include "session.h"
#include "tls.h"

struct listener {
	struct evconnlistener	*lev;
	int			 fd;		/* bound and listening */
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

/* Count the connection across all workers (or refuse it), then make its
 * session. */
static void
listener_accept_cb(struct evconnlistener *lev, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct listener *l = arg;
	const struct config *cfg = session_config();
	int proxied = conf_proxy_trusted(cfg, sa);
	char host[NI_MAXHOST] = "?";

	(void)lev;
	/* From a trusted proxy the client is known only after the PROXY
	 * header: session.c checks the per-address limit then. */
	switch (connlimit_add(sa, cfg->max_connections, proxied ? 0 :
	    cfg->max_connections_per_ip)) {
	case CONNLIMIT_OK:
		break;
	case CONNLIMIT_TOTAL:
		log_warnx("listener %s: max_connections %u reached, refusing",
		    l->text, cfg->max_connections);
		listener_refuse(fd, l, "-ERR [SYS/TEMP] Too many connections, "
		    "try again later.\r\n");
		return;
	default:
		getnameinfo(sa, salen, host, sizeof(host), NULL, 0,
		    NI_NUMERICHOST);
		log_warnx("listener %s: max_connections_per_ip %u reached "
		    "for %s, refusing", l->text, cfg->max_connections_per_ip,
		    host);
		listener_refuse(fd, l, "-ERR [SYS/TEMP] Too many connections "
		    "from your address.\r\n");
		return;
	}
	if (session_accept(fd, sa, salen, l->tls, !l->tls &&
	    cfg->tls_cert != NULL, proxied, 1) == -1)
		connlimit_del(sa);
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

/* One listening socket, the way evconnlistener_new_bind would make it;
 * [::]:110 must not also claim 0.0.0.0:110, since both may be listed. */
static int
listener_socket(const struct conf_listen *cl)
{
	int fd, on = 1;

	fd = socket(cl->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	if (fd == -1)
		return -1;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) == -1 ||
	    (cl->ss.ss_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6,
	    IPV6_V6ONLY, &on, sizeof(on)) == -1) ||
	    bind(fd, (const struct sockaddr *)&cl->ss, cl->sslen) == -1 ||
	    listen(fd, LISTENER_BACKLOG) == -1) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

/*
 * Bind every listen line now (perhaps as root, for port 110); the event
 * loops attach later, in each worker, to the same sockets: the kernel hands
 * each connection to whichever worker accepts it first, so an idle worker
 * takes the load of a busy one.
 */
int
listener_bind(const struct config *cfg)
{
	size_t i;
	struct listener *l;

	if ((listener_all = calloc(cfg->nlistens, sizeof(*l))) == NULL) {
		log_warn("listener: calloc");
		return -1;
	}
	for (i = 0; i < cfg->nlistens; i++) {
		const struct conf_listen *cl = &cfg->listens[i];
		l = &listener_all[listener_n];
		l->tls = cl->tls;
		snprintf(l->text, sizeof(l->text), "%s", cl->text);
		if ((l->fd = listener_socket(cl)) == -1) {
			log_warn("cannot listen on %s", cl->text);
			return -1;
		}
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
listener_adopt_fds(int n, const char *names)
{
	struct listener *l;
	const char *p = names;
	size_t nlen;
	int i, fd;

	if ((listener_all = calloc(n, sizeof(*l))) == NULL) {
		log_warn("listener: calloc");
		return -1;
	}
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
		l->fd = fd;
		listener_describe(fd, l->text, sizeof(l->text));
		listener_n++;
		log_info("listening on %s%s (socket activation)", l->text,
		    l->tls ? " (TLS)" : "");
	}
	return 0;
}

/* This process's event loop takes connections from the bound sockets
 * (disabled until listener_enable). */
int
listener_attach(struct event_base *base)
{
	struct listener *l;
	size_t i;

	if ((listener_pause_ev = evtimer_new(base, listener_resume_cb,
	    NULL)) == NULL)
		return -1;
	for (i = 0; i < listener_n; i++) {
		l = &listener_all[i];
		/* Backlog 0: the socket already listens (listener_bind); -1
		 * would make libevent listen(fd, 128) again and shrink the
		 * shared socket's backlog for every worker. */
		l->lev = evconnlistener_new(base, listener_accept_cb, l,
		    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC |
		    LEV_OPT_DISABLED, 0, l->fd);
		if (l->lev == NULL) {
			log_warn("listener %s", l->text);
			return -1;
		}
		evconnlistener_set_error_cb(l->lev, listener_error_cb);
	}
	return 0;
}

void
listener_enable(void)
{
	size_t i;

	listener_enabled = 1;
	for (i = 0; i < listener_n; i++)
		if (listener_all[i].lev != NULL)
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
		if (listener_all[i].lev != NULL)
			evconnlistener_disable(listener_all[i].lev);
}

void
listener_shutdown(void)
{
	size_t i;

	listener_disable();
	for (i = 0; i < listener_n; i++) {
		if (listener_all[i].lev != NULL)
			evconnlistener_free(listener_all[i].lev);
		else
			close(listener_all[i].fd);
	}
	free(listener_all);
	listener_all = NULL;
	listener_n = 0;
	if (listener_pause_ev != NULL)
		event_free(listener_pause_ev);
	listener_pause_ev = NULL;
}
