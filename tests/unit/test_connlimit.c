/* SPDX-License-Identifier: ISC */
/*
 * evpop3d unit tests: connection counts shared by worker processes.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/wait.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <unistd.h>

#include <CUnit/CUnit.h>

#include "connlimit.h"
#include "tests.h"

static struct sockaddr_storage
tc_addr(const char *a)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, a, &sin->sin_addr) == 1)
		sin->sin_family = AF_INET;
	else {
		sin6->sin6_family = AF_INET6;
		inet_pton(AF_INET6, a, &sin6->sin6_addr);
	}
	return ss;
}

#define SA(x)	((struct sockaddr *)&(x))

static void
test_connlimit_total_and_per_ip(void)
{
	struct sockaddr_storage a = tc_addr("192.0.2.1"),
	    b = tc_addr("192.0.2.2"), m = tc_addr("::ffff:192.0.2.1"),
	    v6 = tc_addr("2001:db8::1");
	int i;

	CU_ASSERT_EQUAL_FATAL(connlimit_init(2, 64), 0);
	connlimit_set_worker(0);
	for (i = 0; i < 3; i++)
		CU_ASSERT_EQUAL(connlimit_add(SA(a), 10, 3), CONNLIMIT_OK);
	CU_ASSERT_EQUAL(connlimit_add(SA(a), 10, 3), CONNLIMIT_PER_IP);
	/* The IPv4-mapped form is the same client. */
	CU_ASSERT_EQUAL(connlimit_add(SA(m), 10, 3), CONNLIMIT_PER_IP);
	CU_ASSERT_EQUAL(connlimit_count(SA(m)), 3);
	/* No per-address limit (0), or another address: fine. */
	CU_ASSERT_EQUAL(connlimit_add(SA(a), 10, 0), CONNLIMIT_OK);
	CU_ASSERT_EQUAL(connlimit_add(SA(b), 10, 3), CONNLIMIT_OK);
	CU_ASSERT_EQUAL(connlimit_add(SA(v6), 10, 3), CONNLIMIT_OK);
	CU_ASSERT_EQUAL(connlimit_total(), 6);
	CU_ASSERT_EQUAL(connlimit_add(SA(b), 6, 0), CONNLIMIT_TOTAL);
	connlimit_del(SA(a));
	CU_ASSERT_EQUAL(connlimit_count(SA(a)), 3);
	CU_ASSERT_EQUAL(connlimit_total(), 5);
	CU_ASSERT_EQUAL(connlimit_add(SA(b), 6, 0), CONNLIMIT_OK);
	/* PROXY header: the count moves to the real client. */
	CU_ASSERT_EQUAL(connlimit_move(SA(a), SA(v6)), 2);
	CU_ASSERT_EQUAL(connlimit_count(SA(a)), 2);
	CU_ASSERT_EQUAL(connlimit_total(), 6);
	connlimit_free();
}

/* Counts made in a worker process are seen by the others; a dead
 * worker's counts are taken back exactly, the others' stay. */
static void
test_connlimit_across_processes(void)
{
	struct sockaddr_storage a = tc_addr("198.51.100.7");
	pid_t pid;
	int st, i;

	CU_ASSERT_EQUAL_FATAL(connlimit_init(3, 64), 0);
	connlimit_set_worker(0);
	CU_ASSERT_EQUAL(connlimit_add(SA(a), 100, 5), CONNLIMIT_OK);
	if ((pid = fork()) == 0) {
		connlimit_set_worker(2);
		for (i = 0; i < 3; i++)
			if (connlimit_add(SA(a), 100, 5) != CONNLIMIT_OK)
				_exit(1);
		_exit(0);
	}
	CU_ASSERT_FATAL(pid > 0);
	CU_ASSERT_EQUAL(waitpid(pid, &st, 0), pid);
	CU_ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	CU_ASSERT_EQUAL(connlimit_count(SA(a)), 4);
	CU_ASSERT_EQUAL(connlimit_total(), 4);
	CU_ASSERT_EQUAL(connlimit_add(SA(a), 100, 5), CONNLIMIT_OK);
	CU_ASSERT_EQUAL(connlimit_add(SA(a), 100, 5), CONNLIMIT_PER_IP);
	connlimit_reset_worker(2);
	CU_ASSERT_EQUAL(connlimit_count(SA(a)), 2);
	CU_ASSERT_EQUAL(connlimit_total(), 2);
	connlimit_reset_worker(0);
	CU_ASSERT_EQUAL(connlimit_count(SA(a)), 0);
	CU_ASSERT_EQUAL(connlimit_total(), 0);
	connlimit_free();
}

/* Many addresses come and go: entries are reused, never leaked. */
static void
test_connlimit_reuse(void)
{
	struct sockaddr_storage a;
	struct sockaddr_in *sin = (struct sockaddr_in *)&a;
	int round, i;

	CU_ASSERT_EQUAL_FATAL(connlimit_init(1, 64), 0);
	memset(&a, 0, sizeof(a));
	sin->sin_family = AF_INET;
	for (round = 0; round < 20; round++) {
		for (i = 0; i < 64; i++) {
			sin->sin_addr.s_addr = htonl(0x0a000000u +
			    (uint32_t)(round * 64 + i));
			CU_ASSERT_EQUAL(connlimit_add(SA(a), 1000, 1),
			    CONNLIMIT_OK);
			CU_ASSERT_EQUAL(connlimit_add(SA(a), 1000, 1),
			    CONNLIMIT_PER_IP);
		}
		for (i = 0; i < 64; i++) {
			sin->sin_addr.s_addr = htonl(0x0a000000u +
			    (uint32_t)(round * 64 + i));
			connlimit_del(SA(a));
			CU_ASSERT_EQUAL(connlimit_count(SA(a)), 0);
		}
		CU_ASSERT_EQUAL(connlimit_total(), 0);
	}
	connlimit_free();
}

void
test_connlimit_register(void)
{
	CU_pSuite s = CU_add_suite("connlimit", NULL, NULL);

	CU_add_test(s, "total and per address", test_connlimit_total_and_per_ip);
	CU_add_test(s, "across processes", test_connlimit_across_processes);
	CU_add_test(s, "entries reused", test_connlimit_reuse);
}
