/*
 * evpop3d - control.h: the administrator's channel into a running daemon.
 * Each worker process listens on an abstract UNIX socket named after the
 * configuration file and its worker number; only root and the daemon's
 * own user may talk to it (SO_PEERCRED).  One request line, then the
 * answer, then the daemon closes:
 *
 *   LIST        one line per live session (key=value), then "."
 *   KICK ID     end session ID now, without UPDATE: "+OK ..." or "-ERR ..."
 *
 * `evpop3d --sessions` and `evpop3d --kick ID` are the client side.
 */
#ifndef EVPOP3D_CONTROL_H
#define EVPOP3D_CONTROL_H

#include <stdio.h>

struct event_base;

/* Listen for worker w of the daemon reading conf_path.  Returns 0, or -1
 * (logged; the daemon runs on without the channel). */
int	control_start(struct event_base *, const char *conf_path,
	    unsigned int w);
void	control_stop(void);

/*
 * Client: send req to worker w and copy the answer to out.  Returns 0, 1
 * if the answer was an -ERR line, or -1 with errno when no such worker
 * listens (ECONNREFUSED), the daemon refused us (EACCES) or the request
 * failed.
 */
int	control_request(const char *conf_path, unsigned int w,
	    const char *req, FILE *out);

#endif /* EVPOP3D_CONTROL_H */
