/*
 * evpop3d - cmd.h: the POP3 command table and every handler.
 */
#ifndef EVPOP3D_CMD_H
#define EVPOP3D_CMD_H

#include <stddef.h>

struct session;

/*
 * Execute one command line (CR/LF already removed; len octets, no NUL
 * bytes or control characters but TAB).  The dispatcher checks the
 * command, its state and its arity before calling a handler.
 */
void	cmd_dispatch(struct session *, char *line, size_t len);

/* Continue an AUTH exchange with a client response line (ST_SASL). */
void	cmd_sasl_line(struct session *, const char *line, size_t len);

/* Free SASL state when a session ends mid-exchange. */
void	cmd_sasl_free(struct session *);

#endif /* EVPOP3D_CMD_H */
