/* SPDX-License-Identifier: ISC */
/*
 * evpop3d - connlimit.c: connection counts shared by the worker processes.
 *
 * One anonymous shared mapping, made before fork, holds a process-shared
 * robust mutex, the total, each worker's total, and a chained hash table
 * of client addresses.  Every address entry keeps the sum and each
 * worker's part of it: the supervisor subtracts a dead worker's parts and
 * the limits stay exact.  Critical sections are a few memory operations,
 * no system calls, so one lock for the table is cheap at any accept rate.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/mman.h>
#include <netinet/in.h>
#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "connlimit.h"
#include "log.h"

struct cl_entry {
	uint32_t	 next;		/* index of the next in the bucket */
	uint32_t	 sum;		/* connections from this address */
	unsigned char	 family;
	unsigned char	 addr[16];
	uint16_t	 part[];	/* per worker; sum is their total */
};

struct cl_hdr {
	pthread_mutex_t	 mtx;
	unsigned int	 nworkers;
	uint32_t	 nbuckets;
	uint32_t	 nentries;
	uint32_t	 free_head;	/* free entries, chained through next */
	uint32_t	 total;
	int		 full_logged;
	uint32_t	 wtotal[];	/* per worker */
};

/* Private pointers into the mapping (the same address in every worker:
 * the mapping is inherited across fork). */
static struct cl_hdr	*cl_hdr;
static uint32_t		*cl_buckets;
static unsigned char	*cl_entries;
static size_t		 cl_stride;
static size_t		 cl_maplen;
static unsigned int	 cl_worker;

static struct cl_entry *
cl_entry(uint32_t i)
{
	return (struct cl_entry *)(void *)(cl_entries + (size_t)(i - 1) *
	    cl_stride);
}

/* Family and 16 address octets; an IPv4-mapped IPv6 address is the IPv4
 * client it stands for.  -1 for addresses that are not counted. */
static int
cl_key(const struct sockaddr *sa, unsigned char *family, unsigned char a[16])
{
	const struct sockaddr_in *sin;
	const struct sockaddr_in6 *sin6;

	memset(a, 0, 16);
	if (sa == NULL)
		return -1;
	if (sa->sa_family == AF_INET) {
		sin = (const struct sockaddr_in *)(const void *)sa;
		memcpy(a, &sin->sin_addr, 4);
		*family = AF_INET;
		return 0;
	}
	if (sa->sa_family == AF_INET6) {
		sin6 = (const struct sockaddr_in6 *)(const void *)sa;
		if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
			memcpy(a, &sin6->sin6_addr.s6_addr[12], 4);
			*family = AF_INET;
		} else {
			memcpy(a, &sin6->sin6_addr, 16);
			*family = AF_INET6;
		}
		return 0;
	}
	return -1;
}

static uint32_t
cl_hash(unsigned char family, const unsigned char a[16])
{
	uint32_t h = 2166136261u ^ family;	/* FNV-1a */
	int i;

	for (i = 0; i < 16; i++)
		h = (h ^ a[i]) * 16777619u;
	return h % cl_hdr->nbuckets;
}

static void
cl_lock(void)
{
	if (pthread_mutex_lock(&cl_hdr->mtx) == EOWNERDEAD) {
		/* A worker died inside a few stores: at worst one count
		 * is off by one; the table itself stays usable. */
		pthread_mutex_consistent(&cl_hdr->mtx);
		log_warnx("connection counts: a worker died holding the "
		    "lock");
	}
}

static void
cl_unlock(void)
{
	pthread_mutex_unlock(&cl_hdr->mtx);
}

/* The entry of an address, or 0; *prevp gets its predecessor (or 0). */
static uint32_t
cl_find(unsigned char family, const unsigned char a[16], uint32_t *bucket,
    uint32_t *prevp)
{
	uint32_t i, prev = 0;
	struct cl_entry *e;

	*bucket = cl_hash(family, a);
	for (i = cl_buckets[*bucket]; i != 0; prev = i, i = e->next) {
		e = cl_entry(i);
		if (e->family == family && memcmp(e->addr, a, 16) == 0)
			break;
	}
	if (prevp != NULL)
		*prevp = prev;
	return i;
}

/* Unlink and free entry i (its counts are all zero). */
static void
cl_drop(uint32_t bucket, uint32_t prev, uint32_t i)
{
	struct cl_entry *e = cl_entry(i);

	if (prev == 0)
		cl_buckets[bucket] = e->next;
	else
		cl_entry(prev)->next = e->next;
	e->next = cl_hdr->free_head;
	cl_hdr->free_head = i;
}

/* Count one more connection of this worker on entry i of the address
 * (0: take a free entry for it).  Returns the address's new sum, or 0 if
 * the table is full (lock held). */
static uint32_t
cl_count(uint32_t i, uint32_t bucket, unsigned char family,
    const unsigned char a[16])
{
	struct cl_entry *e;

	if (i == 0 && (i = cl_hdr->free_head) != 0) {
		e = cl_entry(i);
		cl_hdr->free_head = e->next;
		memset(e, 0, cl_stride);
		e->family = family;
		memcpy(e->addr, a, 16);
		e->next = cl_buckets[bucket];
		cl_buckets[bucket] = i;
	}
	if (i == 0 || cl_entry(i)->part[cl_worker] == UINT16_MAX)
		return 0;
	e = cl_entry(i);
	e->part[cl_worker]++;
	return ++e->sum;
}

int
connlimit_init(unsigned int nworkers, unsigned int naddrs)
{
	pthread_mutexattr_t ma;
	size_t hdr, buckets;
	unsigned char *base;
	uint32_t i;

	if (cl_hdr != NULL)
		connlimit_free();
	if (nworkers == 0)
		nworkers = 1;
	if (naddrs < 64)
		naddrs = 64;
	cl_stride = (offsetof(struct cl_entry, part) + nworkers *
	    sizeof(uint16_t) + 7) & ~(size_t)7;
	hdr = (sizeof(struct cl_hdr) + nworkers * sizeof(uint32_t) + 63) &
	    ~(size_t)63;
	buckets = (size_t)naddrs * sizeof(uint32_t);
	cl_maplen = hdr + buckets + (size_t)naddrs * cl_stride;
	base = mmap(NULL, cl_maplen, PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (base == MAP_FAILED) {
		cl_hdr = NULL;
		return -1;
	}
	cl_hdr = (struct cl_hdr *)(void *)base;
	cl_buckets = (uint32_t *)(void *)(base + hdr);
	cl_entries = base + hdr + buckets;
	if (pthread_mutexattr_init(&ma) != 0 ||
	    pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED) != 0 ||
	    pthread_mutexattr_setrobust(&ma, PTHREAD_MUTEX_ROBUST) != 0 ||
	    pthread_mutex_init(&cl_hdr->mtx, &ma) != 0) {
		munmap(base, cl_maplen);
		cl_hdr = NULL;
		errno = ENOMEM;
		return -1;
	}
	pthread_mutexattr_destroy(&ma);
	cl_hdr->nworkers = nworkers;
	cl_hdr->nbuckets = naddrs;
	cl_hdr->nentries = naddrs;
	/* The mapping starts zeroed: chain every entry into the free list. */
	for (i = 1; i <= naddrs; i++)
		cl_entry(i)->next = i < naddrs ? i + 1 : 0;
	cl_hdr->free_head = 1;
	cl_worker = 0;
	return 0;
}

void
connlimit_set_worker(unsigned int w)
{
	cl_worker = w;
}

int
connlimit_add(const struct sockaddr *sa, unsigned int max_total,
    unsigned int max_per_ip)
{
	unsigned char family = 0, a[16];
	uint32_t bucket, i;
	int counted = cl_key(sa, &family, a) == 0;

	if (cl_hdr == NULL)
		return CONNLIMIT_OK;
	cl_lock();
	if (cl_hdr->total >= max_total) {
		cl_unlock();
		return CONNLIMIT_TOTAL;
	}
	if (counted) {
		i = cl_find(family, a, &bucket, NULL);
		if (i != 0 && max_per_ip > 0 &&
		    cl_entry(i)->sum >= max_per_ip) {
			cl_unlock();
			return CONNLIMIT_PER_IP;
		}
		if (cl_count(i, bucket, family, a) == 0 &&
		    !cl_hdr->full_logged) {
			cl_hdr->full_logged = 1;
			log_warnx("connection counts: table full; per-address "
			    "limits are not applied to some connections");
		}
	}
	cl_hdr->total++;
	cl_hdr->wtotal[cl_worker]++;
	cl_unlock();
	return CONNLIMIT_OK;
}

/* Take one connection of this worker off sa's address (lock held). */
static void
cl_remove(const struct sockaddr *sa)
{
	unsigned char family = 0, a[16];
	uint32_t bucket, prev, i;
	struct cl_entry *e;

	if (cl_key(sa, &family, a) == -1 ||
	    (i = cl_find(family, a, &bucket, &prev)) == 0)
		return;
	e = cl_entry(i);
	if (e->part[cl_worker] == 0)
		return;		/* it was never counted (table was full) */
	e->part[cl_worker]--;
	if (--e->sum == 0)
		cl_drop(bucket, prev, i);
}

void
connlimit_del(const struct sockaddr *sa)
{
	if (cl_hdr == NULL)
		return;
	cl_lock();
	cl_remove(sa);
	if (cl_hdr->total > 0)
		cl_hdr->total--;
	if (cl_hdr->wtotal[cl_worker] > 0)
		cl_hdr->wtotal[cl_worker]--;
	cl_unlock();
}

unsigned int
connlimit_move(const struct sockaddr *from, const struct sockaddr *to)
{
	unsigned char family = 0, a[16];
	uint32_t bucket, i, r;
	unsigned int n = 1;

	if (cl_hdr == NULL)
		return 1;
	cl_lock();
	cl_remove(from);
	if (cl_key(to, &family, a) == 0) {
		i = cl_find(family, a, &bucket, NULL);
		if ((r = cl_count(i, bucket, family, a)) > 0)
			n = r;
	}
	cl_unlock();
	return n;
}

unsigned int
connlimit_total(void)
{
	unsigned int n;

	if (cl_hdr == NULL)
		return 0;
	cl_lock();
	n = cl_hdr->total;
	cl_unlock();
	return n;
}

unsigned int
connlimit_count(const struct sockaddr *sa)
{
	unsigned char family = 0, a[16];
	uint32_t bucket, i;
	unsigned int n = 0;

	if (cl_hdr == NULL || cl_key(sa, &family, a) == -1)
		return 0;
	cl_lock();
	if ((i = cl_find(family, a, &bucket, NULL)) != 0)
		n = cl_entry(i)->sum;
	cl_unlock();
	return n;
}

void
connlimit_reset_worker(unsigned int w)
{
	uint32_t b, i, prev, next;
	struct cl_entry *e;

	if (cl_hdr == NULL || w >= cl_hdr->nworkers)
		return;
	cl_lock();
	for (b = 0; b < cl_hdr->nbuckets; b++) {
		for (prev = 0, i = cl_buckets[b]; i != 0; i = next) {
			e = cl_entry(i);
			next = e->next;
			e->sum -= e->part[w];
			e->part[w] = 0;
			if (e->sum == 0)
				cl_drop(b, prev, i);
			else
				prev = i;
		}
	}
	cl_hdr->total -= cl_hdr->wtotal[w];
	cl_hdr->wtotal[w] = 0;
	cl_unlock();
}

void
connlimit_free(void)
{
	if (cl_hdr == NULL)
		return;
	munmap(cl_hdr, cl_maplen);
	cl_hdr = NULL;
}
