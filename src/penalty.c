/* SPDX-License-Identifier: ISC */
/*
 * evpop3d - penalty.c: a fixed-size table of recent authentication
 * failures per client address (IPv4, or the /64 of an IPv6 address, since
 * one host owns a whole /64).  Entries older than PENALTY_FORGET_SEC are
 * ignored, so the table needs no cleaning; a collision simply replaces the
 * older entry, which can only shorten someone's delay, never lengthen it.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/mman.h>
#include <netinet/in.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "params.h"
#include "penalty.h"

struct penalty_entry {
	unsigned char	 key[8];	/* IPv4 address or IPv6 /64 */
	int		 family;
	unsigned int	 fails;
	time_t		 last;
};

/* Private until penalty_share() moves the table into memory shared with
 * the worker processes, so failures count wherever they happened. */
static struct penalty_entry penalty_local[PENALTY_SLOTS];
static struct penalty_entry *penalty_table = penalty_local;
static pthread_mutex_t	*penalty_mtx;

static void
penalty_lock(void)
{
	if (penalty_mtx != NULL &&
	    pthread_mutex_lock(penalty_mtx) == EOWNERDEAD)
		pthread_mutex_consistent(penalty_mtx);
}

static void
penalty_unlock(void)
{
	if (penalty_mtx != NULL)
		pthread_mutex_unlock(penalty_mtx);
}

int
penalty_share(void)
{
	pthread_mutexattr_t ma;
	void *p;

	if (penalty_mtx != NULL)
		return 0;
	p = mmap(NULL, sizeof(pthread_mutex_t) * 2 + sizeof(penalty_local),
	    PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return -1;
	if (pthread_mutexattr_init(&ma) != 0 ||
	    pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED) != 0 ||
	    pthread_mutexattr_setrobust(&ma, PTHREAD_MUTEX_ROBUST) != 0 ||
	    pthread_mutex_init(p, &ma) != 0) {
		munmap(p, sizeof(pthread_mutex_t) * 2 + sizeof(penalty_local));
		errno = ENOMEM;
		return -1;
	}
	pthread_mutexattr_destroy(&ma);
	penalty_table = (struct penalty_entry *)(void *)((char *)p +
	    sizeof(pthread_mutex_t) * 2);
	memcpy(penalty_table, penalty_local, sizeof(penalty_local));
	penalty_mtx = p;
	return 0;
}

/* The part of the address that names one client. */
static int
penalty_key(const struct sockaddr *sa, unsigned char key[8], int *family)
{
	const struct sockaddr_in *sin;
	const struct sockaddr_in6 *sin6;

	memset(key, 0, 8);
	if (sa->sa_family == AF_INET) {
		sin = (const struct sockaddr_in *)(const void *)sa;
		memcpy(key, &sin->sin_addr, 4);
	} else if (sa->sa_family == AF_INET6) {
		sin6 = (const struct sockaddr_in6 *)(const void *)sa;
		if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
			memcpy(key, &sin6->sin6_addr.s6_addr[12], 4);
			*family = AF_INET;
			return 0;
		}
		memcpy(key, &sin6->sin6_addr, 8);
	} else
		return -1;
	*family = sa->sa_family;
	return 0;
}

static struct penalty_entry *
penalty_slot(const unsigned char key[8], int family)
{
	uint32_t h = 2166136261u;	/* FNV-1a */
	int i;

	for (i = 0; i < 8; i++)
		h = (h ^ key[i]) * 16777619u;
	h ^= (uint32_t)family;
	return &penalty_table[h % PENALTY_SLOTS];
}

/* The recent failure count of sa (0 if none or forgotten). */
static struct penalty_entry *
penalty_find(const struct sockaddr *sa, time_t now)
{
	unsigned char key[8];
	int family;
	struct penalty_entry *e;

	if (penalty_key(sa, key, &family) == -1)
		return NULL;
	e = penalty_slot(key, family);
	if (e->family != family || memcmp(e->key, key, 8) != 0 ||
	    now - e->last > PENALTY_FORGET_SEC)
		return NULL;
	return e;
}

unsigned int
penalty_delay_ms(const struct sockaddr *sa, unsigned int base, time_t now)
{
	struct penalty_entry *e;
	unsigned long long d = base;
	unsigned int n, fails = 0;

	penalty_lock();
	if ((e = penalty_find(sa, now)) != NULL)
		fails = e->fails;
	penalty_unlock();
	if (fails == 0 || base == 0)
		return base;
	for (n = fails; n > 0 && d < PENALTY_MAX_MS; n--)
		d *= 2;
	if (d > PENALTY_MAX_MS)
		d = base > PENALTY_MAX_MS ? base : PENALTY_MAX_MS;
	return (unsigned int)d;
}

void
penalty_fail(const struct sockaddr *sa, time_t now)
{
	unsigned char key[8];
	int family;
	struct penalty_entry *e;

	if (penalty_key(sa, key, &family) == -1)
		return;
	penalty_lock();
	e = penalty_slot(key, family);
	if (e->family != family || memcmp(e->key, key, 8) != 0 ||
	    now - e->last > PENALTY_FORGET_SEC) {
		memcpy(e->key, key, 8);
		e->family = family;
		e->fails = 0;
	}
	if (e->fails < 64)
		e->fails++;
	e->last = now;
	penalty_unlock();
}

void
penalty_clear(const struct sockaddr *sa)
{
	unsigned char key[8];
	int family;
	struct penalty_entry *e;

	if (penalty_key(sa, key, &family) == -1)
		return;
	penalty_lock();
	e = penalty_slot(key, family);
	if (e->family == family && memcmp(e->key, key, 8) == 0)
		memset(e, 0, sizeof(*e));
	penalty_unlock();
}

void
penalty_reset(void)
{
	penalty_lock();
	memset(penalty_table, 0, sizeof(penalty_local));
	penalty_unlock();
}
