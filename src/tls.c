/*
 * evpop3d - tls.c: OpenSSL through libevent's bufferevent_openssl.  One
 * SSL_CTX, replaced as a whole on reload: each SSL holds a reference to the
 * context it was made from, so sessions in flight are unaffected.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>

#include "log.h"
#include "tls.h"

static SSL_CTX	*tls_ctx;

/* The last OpenSSL error as text. */
static void
tls_errstr(char *err, size_t errlen, const char *what, const char *path)
{
	unsigned long e = ERR_get_error();
	char buf[256];

	ERR_error_string_n(e, buf, sizeof(buf));
	snprintf(err, errlen, "%s %s: %s", what, path, e ? buf : "failed");
	ERR_clear_error();
}

int
tls_load(const char *cert, const char *key, char *err, size_t errlen)
{
	SSL_CTX *ctx;

	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
		tls_errstr(err, errlen, "SSL_CTX_new", "");
		return -1;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	/* TLS 1.2: forward-secret AEAD suites only; 1.3 suites are sound. */
	SSL_CTX_set_cipher_list(ctx, "ECDHE+AESGCM:ECDHE+CHACHA20:"
	    "DHE+AESGCM:DHE+CHACHA20:!aNULL:!eNULL:!MD5:!SHA1");
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION |
	    SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		tls_errstr(err, errlen, "tls_cert", cert);
		SSL_CTX_free(ctx);
		return -1;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
		tls_errstr(err, errlen, "tls_key", key);
		SSL_CTX_free(ctx);
		return -1;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		tls_errstr(err, errlen, "tls_key does not match", cert);
		SSL_CTX_free(ctx);
		return -1;
	}
	if (tls_ctx != NULL)
		SSL_CTX_free(tls_ctx);
	tls_ctx = ctx;
	return 0;
}

int
tls_available(void)
{
	return tls_ctx != NULL;
}

struct bufferevent *
tls_accept_bev(struct event_base *base, int fd)
{
	SSL *ssl;
	struct bufferevent *bev;

	if (tls_ctx == NULL || (ssl = SSL_new(tls_ctx)) == NULL)
		return NULL;
	bev = bufferevent_openssl_socket_new(base, fd, ssl,
	    BUFFEREVENT_SSL_ACCEPTING,
	    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (bev == NULL) {
		SSL_free(ssl);
		return NULL;
	}
	/* A peer that vanishes without close_notify is an EOF, not an error
	 * (it has already read what it needed). */
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	return bev;
}

struct bufferevent *
tls_filter_bev(struct event_base *base, struct bufferevent *under)
{
	SSL *ssl;
	struct bufferevent *bev;

	if (tls_ctx == NULL || (ssl = SSL_new(tls_ctx)) == NULL)
		return NULL;
	bev = bufferevent_openssl_filter_new(base, under, ssl,
	    BUFFEREVENT_SSL_ACCEPTING,
	    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (bev == NULL) {
		SSL_free(ssl);
		return NULL;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	return bev;
}

const char *
tls_describe(struct bufferevent *bev)
{
	static char buf[128];
	SSL *ssl = bufferevent_openssl_get_ssl(bev);

	if (ssl == NULL)
		return "-";
	snprintf(buf, sizeof(buf), "%s/%s", SSL_get_version(ssl),
	    SSL_get_cipher_name(ssl));
	return buf;
}

void
tls_close_notify(struct bufferevent *bev)
{
	SSL *ssl = bufferevent_openssl_get_ssl(bev);

	if (ssl != NULL && SSL_is_init_finished(ssl)) {
		SSL_shutdown(ssl);
		ERR_clear_error();
	}
}

int
tls_error_text(struct bufferevent *bev, char *buf, size_t len)
{
	unsigned long e, first = 0;

	/*
	 * Newest first.  libevent also stacks SSL_get_error()'s small code
	 * (library 0), which names nothing: keep the first real one.
	 */
	while ((e = bufferevent_get_openssl_error(bev)) != 0)
		if (first == 0 && ERR_GET_LIB(e) != 0)
			first = e;
	if (first == 0)
		return 0;
	ERR_error_string_n(first, buf, len);
	return 1;
}

int
tls_random(void *buf, size_t n)
{
	return RAND_bytes(buf, (int)n) == 1 ? 0 : -1;
}

void
tls_shutdown(void)
{
	if (tls_ctx != NULL)
		SSL_CTX_free(tls_ctx);
	tls_ctx = NULL;
}
