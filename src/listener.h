/*
 * evpop3d - listener.h: one evconnlistener per listen / listen_tls line
 * (or per socket passed by systemd); connection caps; pauses accepting
 * on EMFILE instead of spinning.
 */
#ifndef EVPOP3D_LISTENER_H
#define EVPOP3D_LISTENER_H

struct event_base;
struct config;

/* Bind every listener of the configuration, disabled.  Returns 0, or -1
 * with a message already logged. */
int	listener_init(struct event_base *, const struct config *);
/* Use the n sockets passed by systemd (fds 3..3+n-1; names is
 * LISTEN_FDNAMES or NULL) instead of the listen lines.  Returns 0 or -1. */
int	listener_init_fds(struct event_base *, int n, const char *names);
/* Start or stop accepting. */
void	listener_enable(void);
void	listener_disable(void);
/* Close and free every listener. */
void	listener_shutdown(void);

#endif /* EVPOP3D_LISTENER_H */
