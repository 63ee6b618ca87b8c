/* SPDX-License-Identifier: ISC */
/*
 * evpop3d - inetd.c: serve one connection on standard input and output.
 * A socket (inetd, xinetd, systemd Accept=yes) becomes the session's
 * bufferevent as is.  Two pipes are joined to the session through a
 * bufferevent pair: input from fd 0 is copied into the pair, the
 * session's output is copied to fd 1, and EOF travels both ways.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "inetd.h"
#include "log.h"
#include "session.h"

static struct bufferevent	*inetd_in;	/* fd 0 */
static struct bufferevent	*inetd_out;	/* fd 1 */
static struct bufferevent	*inetd_glue;	/* our end of the pair */
static int			 inetd_session_gone;
static int			 inetd_socket_mode;
static int			 inetd_out_direct;	/* fd 1 cannot be polled */

static void
inetd_in_read_cb(struct bufferevent *bev, void *arg)
{
	(void)arg;
	bufferevent_write_buffer(inetd_glue, bufferevent_get_input(bev));
}

/* The client closed its side: the session sees EOF. */
static void
inetd_in_event_cb(struct bufferevent *bev, short what, void *arg)
{
	(void)arg;
	(void)what;
	bufferevent_disable(bev, EV_READ);
	bufferevent_flush(inetd_glue, EV_WRITE, BEV_FINISHED);
}

/* Session output to fd 1; a file or terminal is written at once (epoll
 * cannot watch regular files). */
static void
inetd_copy_out(struct evbuffer *from)
{
	if (!inetd_out_direct) {
		bufferevent_write_buffer(inetd_out, from);
		return;
	}
	while (evbuffer_get_length(from) > 0)
		if (evbuffer_write(from, 1) <= 0) {
			evbuffer_drain(from, evbuffer_get_length(from));
			break;
		}
}

static void
inetd_glue_read_cb(struct bufferevent *bev, void *arg)
{
	(void)arg;
	inetd_copy_out(bufferevent_get_input(bev));
}

/* The session ended (it flushes its end as finished). */
static void
inetd_glue_event_cb(struct bufferevent *bev, short what, void *arg)
{
	(void)arg;
	(void)what;
	inetd_copy_out(bufferevent_get_input(bev));
	inetd_session_gone = 1;
}

static void
inetd_out_event_cb(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	(void)arg;
	(void)what;
	inetd_session_gone = 1;	/* nobody reads us any more */
	evbuffer_drain(bufferevent_get_output(inetd_out),
	    evbuffer_get_length(bufferevent_get_output(inetd_out)));
}

/* Regular files (and /dev/null) cannot be watched by epoll. */
static int
inetd_regular_file(int fd)
{
	struct stat st;

	return fstat(fd, &st) == 0 && (S_ISREG(st.st_mode) ||
	    S_ISCHR(st.st_mode)) && !isatty(fd);
}

int
inetd_start(struct event_base *base)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	struct sockaddr_un local;
	struct bufferevent *pair[2];
	int fd, devnull;

	memset(&ss, 0, sizeof(ss));
	if (getpeername(0, (struct sockaddr *)&ss, &sl) == 0 &&
	    (ss.ss_family == AF_INET || ss.ss_family == AF_INET6)) {
		/* One socket on 0 and 1: keep a copy, park 0 and 1 on
		 * /dev/null so closing the session closes the socket. */
		if ((fd = dup(0)) == -1)
			return -1;
		if ((devnull = open("/dev/null", O_RDWR)) != -1) {
			dup2(devnull, 0);
			dup2(devnull, 1);
			if (devnull > 1)
				close(devnull);
		}
		evutil_make_socket_nonblocking(fd);
		inetd_socket_mode = 1;
		return session_accept(fd, (struct sockaddr *)&ss, sl, 0, 1, 0,
		    0);
	}

	/* Pipes or a terminal: a local client, as trusted as loopback. */
	if (bufferevent_pair_new(base, BEV_OPT_CLOSE_ON_FREE |
	    BEV_OPT_DEFER_CALLBACKS, pair) == -1)
		return -1;
	inetd_glue = pair[1];
	bufferevent_setcb(inetd_glue, inetd_glue_read_cb, NULL,
	    inetd_glue_event_cb, NULL);
	bufferevent_enable(inetd_glue, EV_READ | EV_WRITE);
	inetd_out_direct = inetd_regular_file(1);
	if (!inetd_out_direct) {
		evutil_make_socket_nonblocking(1);
		if ((inetd_out = bufferevent_socket_new(base, 1, 0)) == NULL)
			return -1;
		bufferevent_setcb(inetd_out, NULL, NULL, inetd_out_event_cb,
		    NULL);
		bufferevent_enable(inetd_out, EV_WRITE);
	}
	if (inetd_regular_file(0)) {
		/* Commands from a file: all of it, then EOF. */
		struct evbuffer *in = evbuffer_new();
		while (in != NULL && evbuffer_read(in, 0, 65536) > 0)
			;
		if (in != NULL) {
			bufferevent_write_buffer(inetd_glue, in);
			evbuffer_free(in);
		}
		bufferevent_flush(inetd_glue, EV_WRITE, BEV_FINISHED);
	} else {
		evutil_make_socket_nonblocking(0);
		if ((inetd_in = bufferevent_socket_new(base, 0, 0)) == NULL)
			return -1;
		bufferevent_setcb(inetd_in, inetd_in_read_cb, NULL,
		    inetd_in_event_cb, NULL);
		bufferevent_enable(inetd_in, EV_READ);
	}
	memset(&local, 0, sizeof(local));
	local.sun_family = AF_UNIX;
	return session_start(pair[0], (struct sockaddr *)&local,
	    sizeof(local), 0, 0);
}

int
inetd_done(void)
{
	if (session_count() > 0)
		return 0;
	if (inetd_socket_mode)
		return 1;
	if (!inetd_session_gone)
		return 0;
	return inetd_out == NULL ||
	    evbuffer_get_length(bufferevent_get_output(inetd_out)) == 0;
}
