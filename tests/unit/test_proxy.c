/* SPDX-License-Identifier: ISC */
/*
 * evpop3d unit tests: PROXY protocol v1/v2 parsing.
 */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "proxy.h"
#include "tests.h"

static const unsigned char tp_sig[12] = "\r\n\r\n\0\r\nQUIT\n";

static enum proxy_result
tp_parse(const void *b, size_t n, size_t *used, struct proxy_info *pi)
{
	return proxy_parse(b, n, used, pi);
}

static void
test_proxy_v1(void)
{
	const char *h = "PROXY TCP4 203.0.113.7 192.0.2.1 51000 110\r\nUSER x";
	struct proxy_info pi;
	struct sockaddr_in *sin = (struct sockaddr_in *)&pi.src;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&pi.src;
	char a[64];
	size_t used, i;

	CU_ASSERT_EQUAL(tp_parse(h, strlen(h), &used, &pi), PROXY_OK);
	CU_ASSERT_EQUAL(used, strlen(h) - strlen("USER x"));
	CU_ASSERT(!pi.local);
	CU_ASSERT_EQUAL(sin->sin_family, AF_INET);
	CU_ASSERT_EQUAL(ntohs(sin->sin_port), 51000);
	inet_ntop(AF_INET, &sin->sin_addr, a, sizeof(a));
	CU_ASSERT_STRING_EQUAL(a, "203.0.113.7");
	/* Every proper prefix asks for more. */
	for (i = 1; i < used; i++)
		CU_ASSERT_EQUAL(tp_parse(h, i, &used, &pi), PROXY_MORE);
	h = "PROXY TCP6 2001:db8::9 ::1 40000 995\r\n";
	CU_ASSERT_EQUAL(tp_parse(h, strlen(h), &used, &pi), PROXY_OK);
	CU_ASSERT_EQUAL(sin6->sin6_family, AF_INET6);
	CU_ASSERT_EQUAL(ntohs(sin6->sin6_port), 40000);
	h = "PROXY UNKNOWN\r\n";
	CU_ASSERT_EQUAL(tp_parse(h, strlen(h), &used, &pi), PROXY_OK);
	CU_ASSERT(pi.local);
	{
		const char *bad[] = {
			"PROXY TCP4 203.0.113.7 192.0.2.1 51000 110\n",
			"PROXY TCP4 203.0.113.7  192.0.2.1 51000 110\r\n",
			"PROXY TCP4 2001:db8::9 192.0.2.1 51000 110\r\n",
			"PROXY TCP4 203.0.113.7 192.0.2.1 65536 110\r\n",
			"PROXY TCP4 203.0.113.7 192.0.2.1 -1 110\r\n",
			"PROXY TCP4 203.0.113.7 192.0.2.1 051 110\r\n",
			"PROXY TCP5 203.0.113.7 192.0.2.1 5 110\r\n",
			"PROXY TCP4 203.0.113.7 192.0.2.1 5\r\n",
			"PROXY TCP4 203.0.113.7 192.0.2.1 5 110 7\r\n",
			"USER alice\r\n",
		};
		for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
			CU_ASSERT_EQUAL(tp_parse(bad[i], strlen(bad[i]), &used,
			    &pi), PROXY_BAD);
	}
	/* 107 octets without a line end is too long. */
	{
		char longl[200];
		memset(longl, 'x', sizeof(longl));
		memcpy(longl, "PROXY ", 6);
		CU_ASSERT_EQUAL(tp_parse(longl, sizeof(longl), &used, &pi),
		    PROXY_BAD);
	}
}

static void
test_proxy_v2(void)
{
	unsigned char b[64];
	struct proxy_info pi;
	struct sockaddr_in *sin = (struct sockaddr_in *)&pi.src;
	size_t used;

	memcpy(b, tp_sig, 12);
	b[12] = 0x21;			/* v2, PROXY */
	b[13] = 0x11;			/* TCP over IPv4 */
	b[14] = 0;
	b[15] = 12;
	memcpy(b + 16, "\xcb\x00\x71\x07", 4);	/* 203.0.113.7 */
	memcpy(b + 20, "\xc0\x00\x02\x01", 4);
	b[24] = 0xc7; b[25] = 0x38;		/* 51000 */
	b[26] = 0; b[27] = 110;
	CU_ASSERT_EQUAL(tp_parse(b, 28, &used, &pi), PROXY_OK);
	CU_ASSERT_EQUAL(used, 28);
	CU_ASSERT_EQUAL(ntohs(sin->sin_port), 51000);
	CU_ASSERT_EQUAL(ntohl(sin->sin_addr.s_addr), 0xcb007107);
	CU_ASSERT_EQUAL(tp_parse(b, 27, &used, &pi), PROXY_MORE);
	CU_ASSERT_EQUAL(tp_parse(b, 5, &used, &pi), PROXY_MORE);
	/* LOCAL with no address: a health check. */
	b[12] = 0x20; b[13] = 0; b[15] = 0;
	CU_ASSERT_EQUAL(tp_parse(b, 16, &used, &pi), PROXY_OK);
	CU_ASSERT(pi.local);
	CU_ASSERT_EQUAL(used, 16);
	/* Wrong version, unknown command, short address block. */
	b[12] = 0x11;
	CU_ASSERT_EQUAL(tp_parse(b, 16, &used, &pi), PROXY_BAD);
	b[12] = 0x22;
	CU_ASSERT_EQUAL(tp_parse(b, 16, &used, &pi), PROXY_BAD);
	b[12] = 0x21; b[13] = 0x11; b[15] = 4;
	CU_ASSERT_EQUAL(tp_parse(b, 20, &used, &pi), PROXY_BAD);
	/* Too long to be a header. */
	b[14] = 0xff; b[15] = 0xff;
	CU_ASSERT_EQUAL(tp_parse(b, 16, &used, &pi), PROXY_BAD);
	CU_ASSERT(proxy_looks_like(b, 12));
	CU_ASSERT(proxy_looks_like((const unsigned char *)"PROXY TCP4", 10));
	CU_ASSERT(!proxy_looks_like((const unsigned char *)"USER x", 6));
}

void
test_proxy_register(void)
{
	CU_pSuite s = CU_add_suite("proxy", NULL, NULL);

	CU_add_test(s, "v1", test_proxy_v1);
	CU_add_test(s, "v2", test_proxy_v2);
}
