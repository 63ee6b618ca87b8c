/*
 * evpop3d - inetd.h: -i mode, one session on standard input and output
 * (inetd, xinetd, socat, or a pipe in tests).
 */
#ifndef EVPOP3D_INETD_H
#define EVPOP3D_INETD_H

struct event_base;

/*
 * Start the session on fds 0 and 1.  When they are one socket it is used
 * directly; otherwise (pipes) the bytes are relayed through an in-process
 * pair.  Returns 0 or -1.  The caller runs the loop until inetd_done().
 */
int	inetd_start(struct event_base *);

/* 1 once the session has ended and its output has been written. */
int	inetd_done(void);

#endif /* EVPOP3D_INETD_H */
