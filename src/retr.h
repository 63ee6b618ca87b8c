/*
 * evpop3d - retr.h: RETR and TOP streaming.  The file is read in chunks
 * into the output buffer only while it holds less than RETR_HIWAT, so a
 * session never holds more than about RETR_HIWAT + a chunk of a message,
 * whatever its size.
 */
#ifndef EVPOP3D_RETR_H
#define EVPOP3D_RETR_H

#include <stdint.h>

struct session;
struct retr;

/*
 * Start sending message fd (already open; owned from here on) with the
 * given first line already queued by the caller.  top_lines < 0: whole
 * message.  The session is busy until the terminating ".\r\n" is queued.
 * Returns 0, or -1 (fd closed, nothing queued).
 */
int	retr_start(struct session *, int fd, long long top_lines);

/* Queue more of the message (write callback).  When the message is done,
 * frees the stream and resumes the session. */
void	retr_fill(struct session *);

/* Abandon a stream (session ending). */
void	retr_free(struct retr *);

#endif /* EVPOP3D_RETR_H */
