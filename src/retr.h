/*
 * evpop3d - retr.h: RETR and TOP streaming.  The file is read in chunks
 * only while the output buffer has room, so a session holds a bounded part
 * of a message whatever its size: about RETR_HIWAT + a chunk when the loop
 * reads (small messages, TOP), two RETR_PIPE_BLOCK blocks when the worker
 * pool reads and encodes (large ones; see retr.c).
 */
#ifndef EVPOP3D_RETR_H
#define EVPOP3D_RETR_H

#include <stdint.h>

struct session;
struct retr;

/*
 * Start sending message fd (already open; owned from here on) with the
 * given first line already queued by the caller.  top_lines < 0: whole
 * message; size: its size as sent (picks the inline or piped way).  The
 * session is busy until the terminating ".\r\n" is queued.
 * Returns 0, or -1 (fd closed, nothing queued).
 */
int	retr_start(struct session *, int fd, long long top_lines,
	    uint64_t size);

/* Queue more of the message (write callback).  When the message is done,
 * frees the stream and resumes the session. */
void	retr_fill(struct session *);

/* Abandon a stream (session ending). */
void	retr_free(struct retr *);

#endif /* EVPOP3D_RETR_H */
