/*
 * evpop3d - tls.h: the server's TLS context (tls_cert / tls_key) and the
 * TLS bufferevents for implicit TLS (RFC 8314) and STLS (RFC 2595).
 */
#ifndef EVPOP3D_TLS_H
#define EVPOP3D_TLS_H

#include <stddef.h>

struct bufferevent;
struct event_base;

/*
 * Load certificate chain and key into a new context (TLS 1.2 and 1.3
 * only).  On success it replaces the current one (sessions already using
 * the old one keep it).  Returns 0, or -1 with the reason in err (the old
 * context, if any, stays in use).
 */
int	tls_load(const char *cert, const char *key, char *err, size_t errlen);

/* 1 once a context is loaded. */
int	tls_available(void);

/* A server-side TLS bufferevent over socket fd (implicit TLS), or NULL
 * (fd is then still open). */
struct bufferevent *tls_accept_bev(struct event_base *, int fd);

/* Wrap an existing plain bufferevent for STLS; the new one owns it.
 * Returns NULL on failure. */
struct bufferevent *tls_filter_bev(struct event_base *,
	    struct bufferevent *under);

/* "TLSv1.3/TLS_AES_256_GCM_SHA384" for logs, or "-". */
const char *tls_describe(struct bufferevent *);

/* Send TLS close_notify (best effort) once our replies are written, so
 * clients see a clean end instead of a truncation. */
void	tls_close_notify(struct bufferevent *);

/* The last OpenSSL error of bev as text (for the log).  Returns 1 if
 * there was one, 0 otherwise. */
int	tls_error_text(struct bufferevent *, char *, size_t);

/* Cryptographic random bytes.  Returns 0 or -1. */
int	tls_random(void *, size_t);

/* Free the context (shutdown). */
void	tls_shutdown(void);

#endif /* EVPOP3D_TLS_H */
