/*
 * evpop3d - retr.c: RETR and TOP as a stream.  The file is read in
 * RETR_CHUNK pieces straight into space reserved in the output buffer,
 * encoded by msgfmt on the way, and only while the buffer holds less than
 * RETR_HIWAT: a client that stops reading stops the file reads too, so a
 * session's memory is bounded whatever the message size.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "log.h"
#include "msgfmt.h"
#include "params.h"
#include "retr.h"
#include "session.h"

struct retr {
	int		 fd;
	struct msgfmt	 enc;
	unsigned char	 in[RETR_CHUNK];
};

/*
 * Let libevent write the whole buffer per writable event instead of its
 * default 16 KiB: a quarter of the event-loop turns, epoll_wait calls and
 * fills per message.  The underlying socket of a TLS filter (STLS) too.
 * The limit stays after the RETR; it only sizes single writes.
 */
static void
retr_write_max(struct bufferevent *bev)
{
	struct bufferevent *under;

	bufferevent_set_max_single_write(bev, RETR_WRITE_MAX);
	if ((under = bufferevent_get_underlying(bev)) != NULL)
		bufferevent_set_max_single_write(under, RETR_WRITE_MAX);
}

int
retr_start(struct session *s, int fd, long long top_lines)
{
	struct retr *r;

	if ((r = malloc(sizeof(*r))) == NULL) {
		close(fd);
		return -1;
	}
	r->fd = fd;
	msgfmt_init(&r->enc, top_lines, 1);
	s->retr = r;
	retr_write_max(s->bev);
	session_busy(s);
	retr_fill(s);
	return 0;
}

void
retr_free(struct retr *r)
{
	if (r == NULL)
		return;
	close(r->fd);
	free(r);
}

/* Encode one chunk into the output buffer; returns 1 at end of message,
 * 0 to continue, -1 on a read error. */
static int
retr_chunk(struct retr *r, struct evbuffer *out)
{
	struct evbuffer_iovec v;
	ssize_t n;
	size_t len;

	do
		n = read(r->fd, r->in, sizeof(r->in));
	while (n == -1 && errno == EINTR);
	if (n == -1)
		return -1;
	if (evbuffer_reserve_space(out, MSGFMT_OUT_MAX((size_t)n) + 3, &v,
	    1) < 1)
		return -1;
	len = 0;
	if (n > 0)
		len = msgfmt_feed(&r->enc, r->in, n, v.iov_base);
	if (n == 0 || msgfmt_done(&r->enc)) {
		len += msgfmt_finish(&r->enc, (unsigned char *)v.iov_base +
		    len);
		memcpy((char *)v.iov_base + len, ".\r\n", 3);
		len += 3;
		v.iov_len = len;
		evbuffer_commit_space(out, &v, 1);
		return 1;
	}
	v.iov_len = len;
	evbuffer_commit_space(out, &v, 1);
	return 0;
}

/* Fill up to the high-water mark; finish the stream at its end. */
void
retr_fill(struct session *s)
{
	struct evbuffer *out = bufferevent_get_output(s->bev);
	struct retr *r = s->retr;
	int rc = 0;

	while (r != NULL && evbuffer_get_length(out) < RETR_HIWAT) {
		if ((rc = retr_chunk(r, out)) != 0)
			break;
	}
	if (rc == 0)
		return;
	retr_free(r);
	s->retr = NULL;
	if (rc == -1) {
		/* The +OK is out: a truncated message without its "."
		 * terminator is the only honest way to fail now. */
		log_warn("session=%016llx user=%s read error during RETR",
		    (unsigned long long)s->id, s->user);
		session_close(s, END_ERROR);
		return;
	}
	session_resume(s);
}
