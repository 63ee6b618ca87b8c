/* SPDX-License-Identifier: ISC */
/*
 * evpop3d - proxy.c: PROXY protocol v1 and v2 parsing (HAProxy's
 * proxy-protocol.txt).  Strict: anything that is not exactly a header
 * is PROXY_BAD, so a trusted proxy that misbehaves is noticed at once.
 */
#include "config.h"

#include <sys/types.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy.h"

static const unsigned char proxy_v2_sig[12] = {
	0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a
};
#define PROXY_V1_MAX	107

int
proxy_looks_like(const unsigned char *buf, size_t len)
{
	size_t n;

	n = len < 6 ? len : 6;
	if (len > 0 && memcmp(buf, "PROXY ", n) == 0)
		return 1;
	n = len < sizeof(proxy_v2_sig) ? len : sizeof(proxy_v2_sig);
	return len > 0 && memcmp(buf, proxy_v2_sig, n) == 0;
}

/* A decimal port 0..65535 without sign or leading zeros. */
static int
proxy_port(const char *s, unsigned int *port)
{
	unsigned long v = 0;
	size_t i;

	if (s[0] == '\0' || (s[0] == '0' && s[1] != '\0') || strlen(s) > 5)
		return -1;
	for (i = 0; s[i] != '\0'; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v > 65535)
		return -1;
	*port = (unsigned int)v;
	return 0;
}

/* "PROXY TCP4|TCP6 SRC DST SPORT DPORT\r\n" or "PROXY UNKNOWN ...\r\n". */
static enum proxy_result
proxy_v1(const unsigned char *buf, size_t len, size_t *used,
    struct proxy_info *info)
{
	char line[PROXY_V1_MAX + 1], *f[6], *save = NULL, *w;
	const unsigned char *cr;
	size_t n;
	int nf = 0, fam;
	unsigned int sport, dport;
	struct sockaddr_in *sin;
	struct sockaddr_in6 *sin6;
	unsigned char dst[16];

	n = len < PROXY_V1_MAX ? len : PROXY_V1_MAX;
	cr = memchr(buf, '\r', n);
	/* A bare LF ends no header: the line is not one. */
	if (memchr(buf, '\n', cr != NULL ? (size_t)(cr - buf) : n) != NULL)
		return PROXY_BAD;
	if (cr == NULL)
		return len >= PROXY_V1_MAX ? PROXY_BAD : PROXY_MORE;
	n = (size_t)(cr - buf);
	if (n + 1 >= len)
		return PROXY_MORE;
	if (cr[1] != '\n')
		return PROXY_BAD;
	memcpy(line, buf, n);
	line[n] = '\0';
	if (memchr(line, '\0', n) != NULL)
		return PROXY_BAD;
	*used = n + 2;
	memset(info, 0, sizeof(*info));
	if (strncmp(line, "PROXY UNKNOWN", 13) == 0 &&
	    (line[13] == '\0' || line[13] == ' ')) {
		info->local = 1;
		return PROXY_OK;
	}
	/* Exactly one space between fields. */
	if (strstr(line, "  ") != NULL || line[n - 1] == ' ')
		return PROXY_BAD;
	for (w = strtok_r(line, " ", &save); w != NULL && nf < 6;
	    w = strtok_r(NULL, " ", &save))
		f[nf++] = w;
	if (nf != 6 || w != NULL || strcmp(f[0], "PROXY") != 0)
		return PROXY_BAD;
	if (strcmp(f[1], "TCP4") == 0)
		fam = AF_INET;
	else if (strcmp(f[1], "TCP6") == 0)
		fam = AF_INET6;
	else
		return PROXY_BAD;
	if (proxy_port(f[4], &sport) == -1 || proxy_port(f[5], &dport) == -1)
		return PROXY_BAD;
	if (inet_pton(fam, f[3], dst) != 1)
		return PROXY_BAD;
	if (fam == AF_INET) {
		sin = (struct sockaddr_in *)&info->src;
		sin->sin_family = AF_INET;
		sin->sin_port = htons(sport);
		if (inet_pton(AF_INET, f[2], &sin->sin_addr) != 1)
			return PROXY_BAD;
		info->srclen = sizeof(*sin);
	} else {
		sin6 = (struct sockaddr_in6 *)&info->src;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(sport);
		if (inet_pton(AF_INET6, f[2], &sin6->sin6_addr) != 1)
			return PROXY_BAD;
		info->srclen = sizeof(*sin6);
	}
	return PROXY_OK;
}

/* The binary header: signature, version/command, family, length. */
static enum proxy_result
proxy_v2(const unsigned char *buf, size_t len, size_t *used,
    struct proxy_info *info)
{
	size_t alen;
	unsigned int ver, cmd, fam, proto;
	struct sockaddr_in *sin;
	struct sockaddr_in6 *sin6;

	if (len < 16)
		return PROXY_MORE;
	ver = buf[12] >> 4;
	cmd = buf[12] & 0x0f;
	fam = buf[13] >> 4;
	proto = buf[13] & 0x0f;
	alen = ((size_t)buf[14] << 8) | buf[15];
	if (ver != 2 || cmd > 1 || 16 + alen > PROXY_HEADER_MAX)
		return PROXY_BAD;
	if (len < 16 + alen)
		return PROXY_MORE;
	*used = 16 + alen;
	memset(info, 0, sizeof(*info));
	if (cmd == 0) {
		/* LOCAL: the proxy's own connection (health checks). */
		info->local = 1;
		return PROXY_OK;
	}
	if (fam == 0 || proto != 1) {
		/* UNSPEC or not TCP over stream: no usable address. */
		if (fam == 0)
			info->local = 1;
		return fam == 0 ? PROXY_OK : PROXY_BAD;
	}
	if (fam == 1) {
		if (alen < 12)
			return PROXY_BAD;
		sin = (struct sockaddr_in *)&info->src;
		sin->sin_family = AF_INET;
		memcpy(&sin->sin_addr, buf + 16, 4);
		memcpy(&sin->sin_port, buf + 24, 2);
		info->srclen = sizeof(*sin);
		return PROXY_OK;
	}
	if (fam == 2) {
		if (alen < 36)
			return PROXY_BAD;
		sin6 = (struct sockaddr_in6 *)&info->src;
		sin6->sin6_family = AF_INET6;
		memcpy(&sin6->sin6_addr, buf + 16, 16);
		memcpy(&sin6->sin6_port, buf + 48, 2);
		info->srclen = sizeof(*sin6);
		return PROXY_OK;
	}
	return PROXY_BAD;	/* AF_UNIX and others: not ours */
}

enum proxy_result
proxy_parse(const unsigned char *buf, size_t len, size_t *used,
    struct proxy_info *info)
{
	size_t n;

	*used = 0;
	if (len == 0)
		return PROXY_MORE;
	n = len < sizeof(proxy_v2_sig) ? len : sizeof(proxy_v2_sig);
	if (memcmp(buf, proxy_v2_sig, n) == 0)
		return n < sizeof(proxy_v2_sig) ? PROXY_MORE :
		    proxy_v2(buf, len, used, info);
	n = len < 6 ? len : 6;
	if (memcmp(buf, "PROXY ", n) == 0)
		return n < 6 ? PROXY_MORE : proxy_v1(buf, len, used, info);
	return PROXY_BAD;
}
