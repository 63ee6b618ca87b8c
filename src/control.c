/* SPDX-License-Identifier: ISC */
/*
 * evpop3d - control.c: the administrator's channel (see control.h).  An
 * abstract socket needs no directory writable by the unprivileged daemon
 * and vanishes with the process; the peer's uid, checked on every
 * connection, stands in for file permissions.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/evp.h>

#include "control.h"
#include "log.h"
#include "session.h"
#include "util.h"

#define CONTROL_LINE_MAX	256
#define CONTROL_TIMEOUT_SEC	10

static struct evconnlistener	*control_lev;

/* "\0evpop3d-ctl:" + 16 hex digits of SHA-256 of the configuration's
 * real path + ":" + w: one name per daemon and worker, short enough for
 * sun_path whatever the path. */
static int
control_addr(const char *conf_path, unsigned int w, struct sockaddr_un *sun,
    socklen_t *len)
{
	char real[PATH_MAX], hex[65];
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	int n;

	if (realpath(conf_path, real) == NULL)
		return -1;
	if (EVP_Digest(real, strlen(real), md, &mdlen, EVP_sha256(),
	    NULL) != 1 || mdlen < 8) {
		errno = EINVAL;
		return -1;
	}
	util_hex(md, 8, hex);
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	n = snprintf(sun->sun_path + 1, sizeof(sun->sun_path) - 1,
	    "evpop3d-ctl:%s:%u", hex, w);
	*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
	return 0;
}

/* A session id as logged: 1 to 16 hex digits. */
static int
control_parse_id(const char *s, unsigned long long *id)
{
	size_t n = strspn(s, "0123456789abcdefABCDEF");

	if (n == 0 || n > 16 || s[n] != '\0')
		return -1;
	*id = strtoull(s, NULL, 16);
	return 0;
}

static void
control_each(const struct session *s, void *arg)
{
	struct evbuffer *out = arg;
	char line[1024];

	session_describe(s, line, sizeof(line));
	evbuffer_add_printf(out, "%s pid=%ld\n", line, (long)getpid());
}

static void
control_done_cb(struct bufferevent *bev, void *arg)
{
	(void)arg;
	if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		bufferevent_free(bev);
}

static void
control_event_cb(struct bufferevent *bev, short what, void *arg)
{
	(void)what;
	(void)arg;
	bufferevent_free(bev);
}

/* One request line: answer it, then close once the answer is out. */
static void
control_read_cb(struct bufferevent *bev, void *arg)
{
	struct evbuffer *in = bufferevent_get_input(bev);
	struct evbuffer *out = bufferevent_get_output(bev);
	unsigned long long id;
	char *line;
	size_t n;

	(void)arg;
	if ((line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF)) == NULL) {
		if (evbuffer_get_length(in) > CONTROL_LINE_MAX)
			bufferevent_free(bev);
		return;
	}
	bufferevent_disable(bev, EV_READ);
	if (strcmp(line, "LIST") == 0) {
		session_foreach(control_each, out);
		evbuffer_add_printf(out, ".\n");
	} else if (strncmp(line, "KICK ", 5) == 0 &&
	    control_parse_id(line + 5, &id) == 0) {
		switch (session_admin_end(id)) {
		case 0:
			log_info("session=%016llx ended by the administrator",
			    id);
			evbuffer_add_printf(out, "+OK session %016llx ended\n",
			    id);
			break;
		case 1:
			evbuffer_add_printf(out, "-ERR session %016llx is "
			    "removing messages after QUIT; it ends by itself\n",
			    id);
			break;
		default:
			evbuffer_add_printf(out, "-ERR no session %016llx "
			    "here\n", id);
		}
	} else
		evbuffer_add_printf(out, "-ERR unknown request\n");
	free(line);
	bufferevent_setcb(bev, NULL, control_done_cb, control_event_cb, NULL);
	bufferevent_enable(bev, EV_WRITE);
}

static void
control_accept_cb(struct evconnlistener *lev, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct bufferevent *bev;
	struct ucred cr;
	socklen_t crlen = sizeof(cr);
	struct timeval tv = { CONTROL_TIMEOUT_SEC, 0 };

	(void)sa;
	(void)salen;
	(void)arg;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &crlen) == -1 ||
	    (cr.uid != 0 && cr.uid != geteuid())) {
		log_warnx("control: refused a client with uid %ld",
		    crlen == sizeof(cr) ? (long)cr.uid : -1L);
		close(fd);
		return;
	}
	if ((bev = bufferevent_socket_new(evconnlistener_get_base(lev), fd,
	    BEV_OPT_CLOSE_ON_FREE)) == NULL) {
		close(fd);
		return;
	}
	bufferevent_setcb(bev, control_read_cb, NULL, control_event_cb, NULL);
	bufferevent_set_timeouts(bev, &tv, &tv);
	bufferevent_enable(bev, EV_READ);
}

int
control_start(struct event_base *base, const char *conf_path, unsigned int w)
{
	struct sockaddr_un sun;
	socklen_t len;

	if (control_addr(conf_path, w, &sun, &len) == -1) {
		log_warn("control socket for %s", conf_path);
		return -1;
	}
	control_lev = evconnlistener_new_bind(base, control_accept_cb, NULL,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 16,
	    (struct sockaddr *)&sun, (int)len);
	if (control_lev == NULL) {
		log_warn("control socket for %s, worker %u (another daemon "
		    "with this configuration?)", conf_path, w);
		return -1;
	}
	return 0;
}

void
control_stop(void)
{
	if (control_lev != NULL)
		evconnlistener_free(control_lev);
	control_lev = NULL;
}

int
control_request(const char *conf_path, unsigned int w, const char *req,
    FILE *out)
{
	struct sockaddr_un sun;
	socklen_t len;
	char buf[4096];
	ssize_t n;
	int fd, err = 0, bol = 1;
	size_t total = 0;

	if (control_addr(conf_path, w, &sun, &len) == -1)
		return -1;
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	if (connect(fd, (struct sockaddr *)&sun, len) == -1 ||
	    send(fd, req, strlen(req), MSG_NOSIGNAL) != (ssize_t)strlen(req) ||
	    send(fd, "\n", 1, MSG_NOSIGNAL) != 1) {
		int e = errno == EPIPE ? EACCES : errno;
		close(fd);
		errno = e;
		return -1;
	}
	while ((n = read(fd, buf, sizeof(buf))) > 0 ||
	    (n == -1 && errno == EINTR)) {
		if (n <= 0)
			continue;
		if (bol && buf[0] == '-')
			err = 1;
		bol = buf[n - 1] == '\n';
		total += (size_t)n;
		fwrite(buf, 1, (size_t)n, out);
	}
	close(fd);
	if (total == 0) {
		/* Closed without a word: the daemon refused our uid. */
		errno = EACCES;
		return -1;
	}
	return err;
}
