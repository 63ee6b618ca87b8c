/*
 * evpop3d - retr.c: RETR and TOP as a stream, in one of two ways.
 *
 * Inline (small messages, TOP): the loop reads the file in RETR_CHUNK
 * pieces straight into space reserved in the output buffer, encoded by
 * msgfmt on the way, and only while the buffer holds less than RETR_HIWAT.
 *
 * Piped (RETR of RETR_PIPE_MIN octets or more): a worker-pool job reads and
 * encodes one RETR_PIPE_BLOCK block while the loop writes the other; a
 * block goes into the output buffer by reference (no copy) and comes back
 * free when libevent has written it.  The loop then never waits on a cold
 * file, and the encoding runs on another CPU than the socket writes.
 *
 * Either way a client that stops reading stops the file reads too, so a
 * session's memory is bounded whatever the message size.
 *
 * A piped stream can outlive its session: a job may be running and blocks
 * may sit in an output buffer being freed.  It counts those holders in
 * refs (loop thread only) and goes when the last lets go.
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
#include "worker.h"

enum retr_blk_state {
	BLK_FREE,	/* may be filled */
	BLK_READY,	/* filled, waiting for room in the output buffer */
	BLK_QUEUED	/* in the output buffer by reference */
};

struct retr_blk {
	unsigned char	*data;
	size_t		 len;
	enum retr_blk_state state;
};

struct retr {
	int		 fd;
	struct msgfmt	 enc;		/* a job's, while one runs */
	struct session	*s;		/* NULL once abandoned */
	int		 piped;
	int		 refs;		/* session + running job + queued blocks */
	int		 job;		/* a fill job is running */
	int		 filling;	/* inside retr_fill: no re-entry */
	int		 produced_eof;	/* the last block has been filled */
	int		 error;		/* errno of a failed read */
	int		 job_error;	/* the job's results: read by the loop */
	int		 job_eof;	/* only in retr_job_done */
	unsigned int	 prod;		/* next block to fill */
	unsigned int	 send;		/* next block to queue */
	struct retr_blk	 blk[2];
	unsigned char	 in[RETR_CHUNK];
};

static unsigned int	retr_npiped;	/* piped streams in this process */

static void	retr_kick(struct retr *);
static void	retr_unref(struct retr *);

/*
 * Let libevent write the whole buffer per writable event instead of its
 * default 16 KiB: a quarter of the event-loop turns, epoll_wait calls and
 * fills per message.  The underlying socket of a TLS filter (STLS) too.
 * The limit stays after the RETR; it only sizes single writes.
 */
static void
retr_write_max(struct bufferevent *bev, size_t max)
{
	struct bufferevent *under;

	bufferevent_set_max_single_write(bev, max);
	if ((under = bufferevent_get_underlying(bev)) != NULL)
		bufferevent_set_max_single_write(under, max);
}

/* Piped blocks, allocated up front: a failure falls back to inline. */
static int
retr_pipe_init(struct retr *r)
{
	if ((r->blk[0].data = malloc(RETR_PIPE_BLOCK)) == NULL)
		return -1;
	if ((r->blk[1].data = malloc(RETR_PIPE_BLOCK)) == NULL) {
		free(r->blk[0].data);
		r->blk[0].data = NULL;
		return -1;
	}
	r->piped = 1;
	retr_npiped++;
	return 0;
}

int
retr_start(struct session *s, int fd, long long top_lines, uint64_t size)
{
	struct retr *r;

	if ((r = calloc(1, sizeof(*r))) == NULL) {
		close(fd);
		return -1;
	}
	r->fd = fd;
	r->s = s;
	r->refs = 1;
	msgfmt_init(&r->enc, top_lines, 1);
	if (top_lines < 0 && size >= RETR_PIPE_MIN &&
	    retr_npiped < RETR_PIPE_MAX && retr_pipe_init(r) == 0)
		retr_write_max(s->bev, RETR_PIPE_WRITE_MAX);
	else
		retr_write_max(s->bev, RETR_WRITE_MAX);
	s->retr = r;
	session_busy(s);
	retr_fill(s);
	return 0;
}

static void
retr_destroy(struct retr *r)
{
	if (r->piped) {
		free(r->blk[0].data);
		free(r->blk[1].data);
		retr_npiped--;
	}
	close(r->fd);
	free(r);
}

static void
retr_unref(struct retr *r)
{
	if (--r->refs == 0)
		retr_destroy(r);
}

/* The session lets go (end of message, or it is ending). */
void
retr_free(struct retr *r)
{
	if (r == NULL)
		return;
	r->s = NULL;
	retr_unref(r);
}

/*
 * Read up to insz octets into in and encode them into out (room for
 * MSGFMT_OUT_MAX(insz) + 3).  Returns the octets produced and sets *eof at
 * the end of the message (terminator included); -1 on a read error.  Runs
 * on the loop (inline) or on a pool thread (piped).
 */
static ssize_t
retr_encode(struct retr *r, unsigned char *in, size_t insz,
    unsigned char *out, int *eof)
{
	ssize_t n;
	size_t len;

	do
		n = read(r->fd, in, insz);
	while (n == -1 && errno == EINTR);
	if (n == -1)
		return -1;
	len = 0;
	if (n > 0)
		len = msgfmt_feed(&r->enc, in, n, out);
	*eof = n == 0 || msgfmt_done(&r->enc);
	if (*eof) {
		len += msgfmt_finish(&r->enc, out + len);
		memcpy(out + len, ".\r\n", 3);
		len += 3;
	}
	return (ssize_t)len;
}

/* Inline: encode one chunk into the output buffer; returns 1 at end of
 * message, 0 to continue, -1 on a read error. */
static int
retr_chunk(struct retr *r, struct evbuffer *out)
{
	struct evbuffer_iovec v;
	ssize_t len;
	int eof;

	if (evbuffer_reserve_space(out, MSGFMT_OUT_MAX(RETR_CHUNK) + 3, &v,
	    1) < 1)
		return -1;
	if ((len = retr_encode(r, r->in, sizeof(r->in), v.iov_base, &eof)) ==
	    -1)
		return -1;
	v.iov_len = (size_t)len;
	evbuffer_commit_space(out, &v, 1);
	return eof;
}

/*
 * Pool thread: fill block prod until it cannot take another chunk.
 *
 * The encoder writes into this thread's own scratch space and the result
 * is copied into the block, which looks like a needless copy but is what
 * makes the pipe fast: the block was last read by the loop's CPU, and the
 * encoder's small scattered stores into it each had to take the cache
 * line back from that CPU first (measured: encoding at 0.28 s/GB straight
 * into the block, 0.09 s/GB into hot scratch), while one large memcpy
 * writes whole lines.
 */
static __thread unsigned char retr_pipe_in[RETR_PIPE_CHUNK];
static __thread unsigned char retr_pipe_out[MSGFMT_OUT_MAX(RETR_PIPE_CHUNK)
    + 3];

static void
retr_job_run(void *arg)
{
	struct retr *r = arg;
	struct retr_blk *b = &r->blk[r->prod];
	unsigned char *scratch = retr_pipe_out;
	ssize_t n;
	int eof = 0;

	b->len = 0;
	r->job_error = 0;
	while (RETR_PIPE_BLOCK - b->len >= sizeof(retr_pipe_out)) {
		if ((n = retr_encode(r, retr_pipe_in, sizeof(retr_pipe_in),
		    scratch, &eof)) == -1) {
			r->job_error = errno ? errno : EIO;
			break;
		}
		memcpy(b->data + b->len, scratch, (size_t)n);
		b->len += (size_t)n;
		if (eof)
			break;
	}
	r->job_eof = eof;
}

/* Loop thread: the block is ready (or the read failed). */
static void
retr_job_done(void *arg)
{
	struct retr *r = arg;
	struct session *s = r->s;

	r->job = 0;
	if ((r->error = r->job_error) == 0) {
		r->blk[r->prod].state = BLK_READY;
		r->prod ^= 1;
		r->produced_eof = r->job_eof;
	}
	if (s != NULL && !r->filling)
		retr_fill(s);
	retr_unref(r);
}

/* Start filling the next block if it is free and more is to come. */
static void
retr_kick(struct retr *r)
{
	int filling;

	if (r->job || r->produced_eof || r->error || r->s == NULL ||
	    r->blk[r->prod].state != BLK_FREE)
		return;
	r->job = 1;
	r->refs++;
	/*
	 * A job done at once (no pool yet, or no memory to queue it: then
	 * it is filled here) must not re-enter retr_fill, since this may run
	 * inside libevent's buffer code; its block is queued by the caller's
	 * loop or the next write callback.
	 */
	filling = r->filling;
	r->filling = 1;
	if (worker_submit(retr_job_run, retr_job_done, r) == -1) {
		retr_job_run(r);
		retr_job_done(r);
	}
	r->filling = filling;
}

/* libevent has written (or thrown away) a queued block. */
static void
retr_blk_written(const void *data, size_t len, void *arg)
{
	struct retr *r = arg;
	unsigned int i = data == r->blk[0].data ? 0 : 1;

	(void)len;
	r->blk[i].state = BLK_FREE;
	/* Not retr_fill: this runs inside libevent's buffer code. */
	retr_kick(r);
	retr_unref(r);
}

/*
 * Piped: queue ready blocks while the output buffer has room, keep a job
 * filling the next one.  Returns 1 once the last block is queued, 0 to
 * continue, -1 on a read error.
 */
static int
retr_pipe_fill(struct retr *r, struct evbuffer *out)
{
	struct retr_blk *b;

	for (;;) {
		if (r->error)
			return -1;
		while ((b = &r->blk[r->send])->state == BLK_READY &&
		    evbuffer_get_length(out) < RETR_PIPE_BLOCK) {
			b->state = BLK_QUEUED;
			r->send ^= 1;
			r->refs++;
			if (evbuffer_add_reference(out, b->data, b->len,
			    retr_blk_written, r) == -1) {
				b->state = BLK_FREE;
				r->refs--;
				return -1;
			}
		}
		if (r->produced_eof && r->blk[r->send].state != BLK_READY &&
		    r->send == r->prod)
			return 1;
		retr_kick(r);
		/* Again only if a job finished at once and its block fits. */
		if (r->error == 0 && (r->job ||
		    r->blk[r->send].state != BLK_READY ||
		    evbuffer_get_length(out) >= RETR_PIPE_BLOCK))
			return 0;
	}
}

/* Fill up to the high-water mark; finish the stream at its end. */
void
retr_fill(struct session *s)
{
	struct evbuffer *out = bufferevent_get_output(s->bev);
	struct retr *r = s->retr;
	int rc = 0, err;

	if (r == NULL)
		return;
	r->filling = 1;
	if (r->piped)
		rc = retr_pipe_fill(r, out);
	else {
		while (evbuffer_get_length(out) < RETR_HIWAT) {
			if ((rc = retr_chunk(r, out)) != 0)
				break;
		}
	}
	r->filling = 0;
	if (rc == 0)
		return;
	s->retr = NULL;
	if (rc == -1 && r->error)
		errno = r->error;
	err = errno;
	retr_free(r);
	if (rc == -1) {
		/* The +OK is out: a truncated message without its "."
		 * terminator is the only honest way to fail now. */
		errno = err;
		log_warn("session=%016llx user=%s read error during RETR",
		    (unsigned long long)s->id, s->user);
		session_close(s, END_ERROR);
		return;
	}
	session_resume(s);
}
