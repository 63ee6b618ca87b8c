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
/* Start or stop accepting. */
void	listener_enable(void);
void	listener_disable(void);
/* Close and free every listener. */
void	listener_shutdown(void);

#endif /* EVPOP3D_LISTENER_H */
