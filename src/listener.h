/*
 * evpop3d - listener.h: one evconnlistener per listen / listen_tls line
 * (or per socket passed by systemd); connection caps; pauses accepting
 * on EMFILE instead of spinning.
 */
#ifndef EVPOP3D_LISTENER_H
#define EVPOP3D_LISTENER_H

struct event_base;
struct config;

/* Bind every listener of the configuration (no event loop yet).  Returns
 * 0, or -1 with a message already logged. */
int	listener_bind(const struct config *);
/* Use the n sockets passed by systemd (fds 3..3+n-1; names is
 * LISTEN_FDNAMES or NULL) instead of the listen lines.  Returns 0 or -1. */
int	listener_adopt_fds(int n, const char *names);
/* Give this process's loop an evconnlistener on every socket, disabled.
 * Returns 0 or -1. */
int	listener_attach(struct event_base *);
/* Start or stop accepting. */
void	listener_enable(void);
void	listener_disable(void);
/* Close and free every listener (the sockets too). */
void	listener_shutdown(void);

#endif /* EVPOP3D_LISTENER_H */
