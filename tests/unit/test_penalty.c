/* SPDX-License-Identifier: ISC */
/*
 * evpop3d unit tests: the failed-authentication penalty per address.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/wait.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <unistd.h>

#include <CUnit/CUnit.h>

#include "params.h"
#include "penalty.h"
#include "tests.h"

static struct sockaddr_in
tp_v4(const char *a)
{
	struct sockaddr_in sin;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	inet_pton(AF_INET, a, &sin.sin_addr);
	return sin;
}

static void
test_penalty_doubles_and_caps(void)
{
	struct sockaddr_in a = tp_v4("192.0.2.1"), b = tp_v4("192.0.2.2");
	const struct sockaddr *sa = (struct sockaddr *)&a;
	time_t t = 1000000;
	unsigned int want = 100;
	int i;

	penalty_reset();
	for (i = 0; i < 6; i++) {
		CU_ASSERT_EQUAL(penalty_delay_ms(sa, 100, t), want);
		penalty_fail(sa, t);
		want *= 2;
	}
	/* Another address is not affected. */
	CU_ASSERT_EQUAL(penalty_delay_ms((struct sockaddr *)&b, 100, t), 100);
	for (i = 0; i < 40; i++)
		penalty_fail(sa, t);
	CU_ASSERT_EQUAL(penalty_delay_ms(sa, 100, t), PENALTY_MAX_MS);
	/* A base above the cap is never lowered. */
	CU_ASSERT_EQUAL(penalty_delay_ms(sa, 20000, t), 20000);
	/* Forgotten after PENALTY_FORGET_SEC. */
	CU_ASSERT_EQUAL(penalty_delay_ms(sa, 100, t + PENALTY_FORGET_SEC + 1),
	    100);
	/* Success clears. */
	penalty_fail(sa, t);
	penalty_clear(sa);
	CU_ASSERT_EQUAL(penalty_delay_ms(sa, 100, t), 100);
	/* No base delay, no penalty. */
	penalty_fail(sa, t);
	CU_ASSERT_EQUAL(penalty_delay_ms(sa, 0, t), 0);
}

static void
test_penalty_ipv6_prefix_and_mapped(void)
{
	struct sockaddr_in6 x, y, m;
	struct sockaddr_in v4 = tp_v4("198.51.100.7");
	time_t t = 5000;

	penalty_reset();
	memset(&x, 0, sizeof(x));
	x.sin6_family = AF_INET6;
	y = m = x;
	inet_pton(AF_INET6, "2001:db8:1:2::1", &x.sin6_addr);
	inet_pton(AF_INET6, "2001:db8:1:2::ffff", &y.sin6_addr);
	inet_pton(AF_INET6, "::ffff:198.51.100.7", &m.sin6_addr);
	/* One /64 is one client. */
	penalty_fail((struct sockaddr *)&x, t);
	CU_ASSERT_EQUAL(penalty_delay_ms((struct sockaddr *)&y, 50, t), 100);
	/* A v4-mapped address is the IPv4 client. */
	penalty_fail((struct sockaddr *)&v4, t);
	CU_ASSERT_EQUAL(penalty_delay_ms((struct sockaddr *)&m, 50, t), 100);
}

/* After penalty_share (before the workers fork), a failure in one worker
 * process lengthens the delay in every other. */
static void
test_penalty_shared_across_processes(void)
{
	struct sockaddr_in a = tp_v4("203.0.113.9");
	time_t t = 3000000;
	pid_t pid;
	int st;

	CU_ASSERT_EQUAL_FATAL(penalty_share(), 0);
	penalty_reset();
	if ((pid = fork()) == 0) {
		penalty_fail((struct sockaddr *)&a, t);
		penalty_fail((struct sockaddr *)&a, t);
		_exit(0);
	}
	CU_ASSERT_FATAL(pid > 0);
	CU_ASSERT_EQUAL(waitpid(pid, &st, 0), pid);
	CU_ASSERT_EQUAL(penalty_delay_ms((struct sockaddr *)&a, 100, t), 400);
	penalty_reset();
}

void
test_penalty_register(void)
{
	CU_pSuite s = CU_add_suite("penalty", NULL, NULL);

	CU_add_test(s, "doubles, caps, forgets, clears",
	    test_penalty_doubles_and_caps);
	CU_add_test(s, "IPv6 /64 and v4-mapped", test_penalty_ipv6_prefix_and_mapped);
	CU_add_test(s, "shared across processes",
	    test_penalty_shared_across_processes);
}
