/* SPDX-License-Identifier: ISC */
/*
 * evpop3d fuzz target: the configuration parser (conf_parse, conf.h).
 *
 * The input is a whole configuration file, handed over in a heap buffer of
 * exactly its size (not NUL-terminated), with error and warning buffers
 * whose sizes depend on the input length, so AddressSanitizer sees any read
 * past the text or write past a message buffer.  A parsed config is checked
 * for what conf.h promises (required keys present, at least one listener,
 * messages terminated), then used the way the daemon uses it
 * (conf_expand_location, conf_proxy_trusted) and freed.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define FC_NAME	"fuzz.conf"

static void
fc_fail(const char *what)
{
	fprintf(stderr, "fuzz_conf: %s\n", what);
	abort();
}

/* A message buffer must hold a terminated string within its size. */
static void
fc_check_msg(const char *buf, size_t len, const char *what)
{
	if (len > 0 && memchr(buf, '\0', len) == NULL)
		fc_fail(what);
}

/* Use a parsed config the way session and listener code would. */
static void
fc_check_config(const struct config *cf)
{
	struct sockaddr_in sin;
	struct sockaddr_in6 sin6;
	char out[4096];
	size_t i;

	if (cf->passwd_file == NULL || cf->mail_location == NULL)
		fc_fail("a required key is missing from a parsed config");
	if (cf->nlistens == 0 || cf->listens == NULL)
		fc_fail("a parsed config has no listener");
	for (i = 0; i < cf->nlistens; i++) {
		const struct conf_listen *l = &cf->listens[i];

		if (memchr(l->text, '\0', sizeof(l->text)) == NULL)
			fc_fail("listen text not terminated");
		if (l->sslen > sizeof(l->ss) ||
		    (l->ss.ss_family != AF_INET &&
		    l->ss.ss_family != AF_INET6))
			fc_fail("listen address has a bad family or length");
		if (l->tls && (cf->tls_cert == NULL || cf->tls_key == NULL))
			fc_fail("listen_tls accepted without a certificate");
	}
	if ((cf->tls_cert == NULL) != (cf->tls_key == NULL))
		fc_fail("tls_cert and tls_key not paired");
	for (i = 0; i < cf->nproxy_from; i++) {
		const struct conf_cidr *c = &cf->proxy_from[i];

		if ((c->family == AF_INET && c->prefix > 32) ||
		    (c->family == AF_INET6 && c->prefix > 128) ||
		    (c->family != AF_INET && c->family != AF_INET6))
			fc_fail("proxy_protocol_from entry out of range");
	}
	if (conf_expand_location(cf->mail_location, "alice@example.org", out,
	    sizeof(out)) == 0 && memchr(out, '\0', sizeof(out)) == NULL)
		fc_fail("expanded mail_location not terminated");
	conf_expand_location(cf->mail_location, "bob", out, 8);

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(0x7f000001);
	conf_proxy_trusted(cf, (struct sockaddr *)&sin);
	sin.sin_addr.s_addr = htonl(0x0a010203);
	conf_proxy_trusted(cf, (struct sockaddr *)&sin);
	memset(&sin6, 0, sizeof(sin6));
	sin6.sin6_family = AF_INET6;
	inet_pton(AF_INET6, "::ffff:10.1.2.3", &sin6.sin6_addr);
	conf_proxy_trusted(cf, (struct sockaddr *)&sin6);
	inet_pton(AF_INET6, "2001:db8::1", &sin6.sin6_addr);
	conf_proxy_trusted(cf, (struct sockaddr *)&sin6);
}

int
LLVMFuzzerTestOneInput(const uint8_t *in, size_t size)
{
	struct config *cf;
	char *text, *err, *warn;
	size_t errlen, warnlen;

	/* Mostly roomy buffers; sometimes tiny ones to test truncation. */
	errlen = size % 7 == 3 ? size % 13 : 256;
	warnlen = size % 5 == 2 ? size % 11 : 256;
	if ((text = malloc(size > 0 ? size : 1)) == NULL ||
	    (err = malloc(errlen > 0 ? errlen : 1)) == NULL ||
	    (warn = malloc(warnlen > 0 ? warnlen : 1)) == NULL)
		abort();
	if (size > 0)
		memcpy(text, in, size);
	cf = conf_parse(FC_NAME, text, size, err, errlen, warn, warnlen);
	fc_check_msg(err, errlen, "err not terminated");
	fc_check_msg(warn, warnlen, "warn not terminated");
	if (cf == NULL) {
		if (errlen >= sizeof(FC_NAME) &&
		    strncmp(err, FC_NAME, sizeof(FC_NAME) - 1) != 0)
			fc_fail("error message does not name the file");
	} else {
		fc_check_config(cf);
		conf_free(cf);
	}
	free(text);
	free(err);
	free(warn);
	return 0;
}
