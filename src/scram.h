/*
 * evpop3d - scram.h: SASL SCRAM-SHA-256 (RFC 5802, RFC 7677) for the
 * server side, with salted keys stored in the passwd_file as
 * "{SCRAM-SHA-256}ITERATIONS,SALT,STOREDKEY,SERVERKEY" (base64 fields, the
 * form Dovecot writes), so no plaintext-equivalent secret is kept.  Pure:
 * OpenSSL's libcrypto only.
 */
#ifndef EVPOP3D_SCRAM_H
#define EVPOP3D_SCRAM_H

#include <stddef.h>

#include "params.h"

#define SCRAM_PREFIX		"{SCRAM-SHA-256}"
#define SCRAM_ITER_DEFAULT	10000
#define SCRAM_KEY_LEN		32
#define SCRAM_SALT_MAX		64
#define SCRAM_NONCE_MAX		128

struct scram_secret {
	unsigned int	 iter;
	unsigned char	 salt[SCRAM_SALT_MAX];
	size_t		 saltlen;
	unsigned char	 stored[SCRAM_KEY_LEN];
	unsigned char	 server[SCRAM_KEY_LEN];
};

/* The state of one exchange between the two client messages. */
struct scram_state {
	char		 user[AUTH_USER_MAX + 1];
	char		 nonce[2 * SCRAM_NONCE_MAX + 1];	/* client+server */
	char		*auth_msg;	/* client-first-bare,server-first */
	struct scram_secret sec;
	int		 fake;		/* unknown user: fail at the end */
};

/* 1 if secret has the {SCRAM-SHA-256} form. */
int	scram_is_secret(const char *secret);

/* Parse a {SCRAM-SHA-256} secret.  Returns 0 or -1 if malformed. */
int	scram_parse_secret(const char *secret, struct scram_secret *);

/* Make a secret from a password (random salt).  Returns 0 or -1. */
int	scram_make_secret(const char *password, unsigned int iter, char *out,
	    size_t outlen);

/* PASS / AUTH PLAIN for a SCRAM user: derive the keys from password (the
 * PBKDF2 work: run it off the event loop) and compare.  1 on match. */
int	scram_verify_password(const struct scram_secret *, const char *password);

/*
 * Read the client-first message (decoded), note the user name in st->user.
 * Returns 0, or -1 if malformed or channel binding is asked for.
 */
int	scram_client_first(struct scram_state *, const char *msg, size_t len);

/*
 * Build the server-first message into out for the secret sec (or, with sec
 * NULL for an unknown user, a stable fake salt derived from the name, so
 * that the answer does not tell which users exist).  Returns 0 or -1.
 */
int	scram_server_first(struct scram_state *, const struct scram_secret *,
	    char *out, size_t outlen);

/*
 * Check the client-final message; on success write the server-final
 * message ("v=...") into out and return 1; 0 for a wrong proof (or a fake
 * exchange), -1 if malformed.
 */
int	scram_client_final(struct scram_state *, const char *msg, size_t len,
	    char *out, size_t outlen);

void	scram_state_clear(struct scram_state *);

#endif /* EVPOP3D_SCRAM_H */
