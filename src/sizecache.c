/* SPDX-License-Identifier: ISC */
/*
 * evpop3d - sizecache.c: load, look up and rewrite "evpop3d.sizes".
 * Format: a first line "evpop3d-sizes 2", then one "INODE SIZE RAWSIZE
 * BASENAME" line per message, in decimal, sorted by base name: a login merges it
 * with the sorted directory listing in one pass.
 *
 * "evpop3d.index" replaces it: a binary file in the machine's byte order
 * (a foreign one is simply not used) holding the whole message table and
 * the stamps of cur/ and new/, loaded with two reads.  Layout: header,
 * records (one per message), the NUL-terminated names, the UIDLs that
 * differ from the base name (names and UIDLs are read straight into the
 * arena the table keeps), and a 64-bit checksum of everything before
 * it.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/stat.h>
#include <sys/mman.h>
#include <sys/uio.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "maildir.h"
#include "sizecache.h"
#include "util.h"

#define SIZECACHE_MAGIC		"evpop3d-sizes 2\n"
/* A cache bigger than this is not ours to believe (10M messages). */
#define SIZECACHE_MAX_BYTES	(1024L * 1024 * 1024)

struct sizecache {
	char			*text;		/* the file, edited in place */
	struct sizecache_entry	*v;		/* sorted by base, then ino */
	size_t			 n;
	size_t			 next;		/* lookup cursor */
	size_t			 hits;
};

/* Base-name order: memcmp, then the shorter first; then the inode. */
static int
sizecache_cmp(const char *a, size_t la, const char *b, size_t lb)
{
	int c = memcmp(a, b, la < lb ? la : lb);

	if (c != 0)
		return c;
	return la < lb ? -1 : la > lb;
}

static int
sizecache_entry_cmp(const void *x, const void *y)
{
	const struct sizecache_entry *a = x, *b = y;
	int c = sizecache_cmp(a->base, a->len, b->base, b->len);

	if (c != 0)
		return c;
	return a->ino < b->ino ? -1 : a->ino > b->ino;
}

/* Read the whole file; NULL if absent or unreadable. */
static char *
sizecache_read(int dirfd, size_t *lenp)
{
	return util_read_file_at(dirfd, SIZECACHE_FILE, SIZECACHE_MAX_BYTES,
	    lenp);
}

/* Parse a decimal field ending at a blank; NULL if malformed. */
static char *
sizecache_number(char *p, uint64_t *v)
{
	uint64_t x = 0;

	if (*p < '0' || *p > '9')
		return NULL;
	while (*p >= '0' && *p <= '9') {
		if (x > (UINT64_MAX - 9) / 10)
			return NULL;
		x = x * 10 + (uint64_t)(*p++ - '0');
	}
	if (*p != ' ')
		return NULL;
	*v = x;
	return p + 1;
}

struct sizecache *
sizecache_load(int dirfd)
{
	struct sizecache *c;
	size_t len = 0, lines = 0, i;
	char *p, *nl, *base;
	uint64_t ino, size, raw;
	int sorted = 1;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	c->text = sizecache_read(dirfd, &len);
	if (c->text == NULL || strncmp(c->text, SIZECACHE_MAGIC,
	    strlen(SIZECACHE_MAGIC)) != 0) {
		free(c->text);
		c->text = NULL;
		return c;	/* no usable cache: everything misses */
	}
	for (i = 0; i < len; i++)
		if (c->text[i] == '\n')
			lines++;
	if ((c->v = calloc(lines + 1, sizeof(*c->v))) == NULL) {
		sizecache_free(c);
		return NULL;
	}
	p = c->text + strlen(SIZECACHE_MAGIC);
	while (*p != '\0' && (nl = strchr(p, '\n')) != NULL) {
		*nl = '\0';
		/* A malformed line (torn write, editing) is skipped. */
		if ((base = sizecache_number(p, &ino)) != NULL &&
		    (base = sizecache_number(base, &size)) != NULL &&
		    (base = sizecache_number(base, &raw)) != NULL &&
		    *base != '\0' && strchr(base, ' ') == NULL &&
		    strchr(base, '/') == NULL) {
			c->v[c->n].base = base;
			c->v[c->n].len = (size_t)(nl - base);
			c->v[c->n].ino = ino;
			c->v[c->n].size = size;
			c->v[c->n].raw_size = raw;
			if (c->n > 0 && sizecache_entry_cmp(&c->v[c->n - 1],
			    &c->v[c->n]) > 0)
				sorted = 0;
			c->n++;
		}
		p = nl + 1;
	}
	/* We write it sorted; sort anyway if someone else did not. */
	if (!sorted)
		qsort(c->v, c->n, sizeof(*c->v), sizecache_entry_cmp);
	return c;
}

int
sizecache_lookup(struct sizecache *c, const char *base, size_t len,
    uint64_t ino, uint64_t *size, uint64_t *raw_size)
{
	size_t i;
	int r;

	if (c == NULL)
		return 0;
	/* Entries before base are gone from the Maildir. */
	while (c->next < c->n && sizecache_cmp(c->v[c->next].base,
	    c->v[c->next].len, base, len) < 0)
		c->next++;
	for (i = c->next; i < c->n; i++) {
		r = sizecache_cmp(c->v[i].base, c->v[i].len, base, len);
		if (r != 0)
			break;
		if (c->v[i].ino == ino) {
			*size = c->v[i].size;
			*raw_size = c->v[i].raw_size;
			c->hits++;
			return 1;
		}
	}
	return 0;
}

size_t
sizecache_unused(const struct sizecache *c)
{
	return c == NULL ? 0 : c->n - c->hits;
}

size_t
sizecache_count(const struct sizecache *c)
{
	return c == NULL ? 0 : c->n;
}

int
sizecache_write(int dirfd, const struct sizecache_entry *e, size_t n)
{
	char tmp[64];
	FILE *f;
	size_t i;
	int fd, saved;

	snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", SIZECACHE_FILE,
	    (long)getpid());
	fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC |
	    O_NOFOLLOW, 0600);
	if (fd == -1)
		return -1;
	if ((f = fdopen(fd, "w")) == NULL) {
		saved = errno;
		close(fd);
		unlinkat(dirfd, tmp, 0);
		errno = saved;
		return -1;
	}
	fputs(SIZECACHE_MAGIC, f);
	for (i = 0; i < n; i++)
		fprintf(f, "%llu %llu %llu %.*s\n",
		    (unsigned long long)e[i].ino,
		    (unsigned long long)e[i].size,
		    (unsigned long long)e[i].raw_size, (int)e[i].len,
		    e[i].base);
	if (fflush(f) == EOF || ferror(f)) {
		saved = errno;
		fclose(f);
		unlinkat(dirfd, tmp, 0);
		errno = saved;
		return -1;
	}
	if (fclose(f) == EOF) {
		saved = errno;
		unlinkat(dirfd, tmp, 0);
		errno = saved;
		return -1;
	}
	/* No fsync: a lost cache only costs a rescan, never a wrong size
	 * (a torn file fails its line checks or misses). */
	if (renameat(dirfd, tmp, dirfd, SIZECACHE_FILE) == -1) {
		saved = errno;
		unlinkat(dirfd, tmp, 0);
		errno = saved;
		return -1;
	}
	return 0;
}

void
sizecache_free(struct sizecache *c)
{
	if (c == NULL)
		return;
	free(c->v);
	free(c->text);
	free(c);
}

/* The index's header; only 64-bit fields, so no padding. */
struct sizecache_ihdr {
	char			 magic[8];
	uint64_t		 version;
	uint64_t		 order;		/* SIZECACHE_INDEX_ORDER */
	uint64_t		 recsize;
	uint64_t		 n;
	uint64_t		 uidls_len;	/* multiple of 8 */
	uint64_t		 names_len;	/* multiple of 8 */
	uint64_t		 complete;
	int64_t			 start_sec;
	int64_t			 start_nsec;
	struct sizecache_stamp	 cur;
	struct sizecache_stamp	 new;
};

/* One message. */
struct sizecache_irec {
	uint64_t		 size;
	uint64_t		 raw_size;
	uint64_t		 ino;
	uint32_t		 name_off;	/* into the names */
	uint32_t		 uidl_off;	/* into the UIDLs */
	uint16_t		 name_len;	/* without the NUL */
	uint8_t			 uidl_len;
	uint8_t			 flags;
	uint32_t		 pad;
};

#define SIZECACHE_INDEX_MAGIC	"EVP3IDX\n"
#define SIZECACHE_INDEX_VERSION	1
#define SIZECACHE_INDEX_ORDER	0x0102030405060708ULL
/* The UIDL is the base name (nothing stored for it). */
#define SIZECACHE_IREC_UIDL_BASE	0x01
/* More messages than this is not an index of ours. */
#define SIZECACHE_INDEX_MAX_MSGS	(16UL * 1024 * 1024)

_Static_assert(sizeof(struct sizecache_ihdr) % 8 == 0, "header padding");
_Static_assert(sizeof(struct sizecache_irec) == 40, "record padding");

/* Running checksum: four independent lanes, so it costs well under a
 * millisecond for a 100,000-message index. */
struct sizecache_sum {
	uint64_t		 h[4];
};

#define SIZECACHE_SUM_PRIME	0x9e3779b97f4a7c15ULL

static void
sizecache_sum_init(struct sizecache_sum *s)
{
	s->h[0] = 0x243f6a8885a308d3ULL;
	s->h[1] = 0x13198a2e03707344ULL;
	s->h[2] = 0xa4093822299f31d0ULL;
	s->h[3] = 0x082efa98ec4e6c89ULL;
}

static inline uint64_t
sizecache_sum_mix(uint64_t h, uint64_t w)
{
	h ^= w;
	h = (h << 31) | (h >> 33);
	return h * SIZECACHE_SUM_PRIME;
}

/* Feed len octets (a multiple of 8). */
static void
sizecache_sum_feed(struct sizecache_sum *s, const void *p, size_t len)
{
	const unsigned char *b = p;
	uint64_t w[4];
	size_t i = 0;

	for (; i + 32 <= len; i += 32) {
		memcpy(w, b + i, 32);
		s->h[0] = sizecache_sum_mix(s->h[0], w[0]);
		s->h[1] = sizecache_sum_mix(s->h[1], w[1]);
		s->h[2] = sizecache_sum_mix(s->h[2], w[2]);
		s->h[3] = sizecache_sum_mix(s->h[3], w[3]);
	}
	for (; i + 8 <= len; i += 8) {
		memcpy(w, b + i, 8);
		s->h[0] = sizecache_sum_mix(s->h[0], w[0]);
	}
}

static uint64_t
sizecache_sum_final(const struct sizecache_sum *s)
{
	uint64_t h = 0;
	int i;

	for (i = 0; i < 4; i++) {
		h = sizecache_sum_mix(h, s->h[i]);
		h ^= h >> 29;
	}
	return h;
}

void
sizecache_stamp_of(const struct stat *st, struct sizecache_stamp *sp)
{
	memset(sp, 0, sizeof(*sp));
	sp->dev = (uint64_t)st->st_dev;
	sp->ino = (uint64_t)st->st_ino;
	sp->mtime_sec = (int64_t)st->st_mtim.tv_sec;
	sp->mtime_nsec = (int64_t)st->st_mtim.tv_nsec;
	sp->ctime_sec = (int64_t)st->st_ctim.tv_sec;
	sp->ctime_nsec = (int64_t)st->st_ctim.tv_nsec;
}

static int
sizecache_stamp_eq(const struct sizecache_stamp *a,
    const struct sizecache_stamp *b)
{
	return a->dev == b->dev && a->ino == b->ino &&
	    a->mtime_sec == b->mtime_sec && a->mtime_nsec == b->mtime_nsec &&
	    a->ctime_sec == b->ctime_sec && a->ctime_nsec == b->ctime_nsec;
}

/* Is the time sec.nsec at least the margin before the listing's start? */
static int
sizecache_old_enough(const struct sizecache_index *ix, int64_t sec,
    int64_t nsec)
{
	int64_t lim = ix->start_sec - SIZECACHE_INDEX_MARGIN_SEC;

	return sec < lim || (sec == lim && nsec <= ix->start_nsec);
}

int
sizecache_index_trustworthy(const struct sizecache_index *ix)
{
	return ix->complete &&
	    sizecache_old_enough(ix, ix->cur.mtime_sec, ix->cur.mtime_nsec) &&
	    sizecache_old_enough(ix, ix->cur.ctime_sec, ix->cur.ctime_nsec) &&
	    sizecache_old_enough(ix, ix->new.mtime_sec, ix->new.mtime_nsec) &&
	    sizecache_old_enough(ix, ix->new.ctime_sec, ix->new.ctime_nsec);
}

int
sizecache_index_fresh(const struct sizecache_index *ix,
    const struct sizecache_stamp *cur, const struct sizecache_stamp *new)
{
	return sizecache_stamp_eq(&ix->cur, cur) &&
	    sizecache_stamp_eq(&ix->new, new) &&
	    sizecache_index_trustworthy(ix);
}

/* read(2) until len octets or EOF; returns the count or -1. */
static ssize_t
sizecache_readv_all(int fd, struct iovec *iov, int iovcnt)
{
	ssize_t n, total = 0;

	while (iovcnt > 0) {
		n = readv(fd, iov, iovcnt);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			return -1;
		if (n == 0)
			break;
		total += n;
		while (iovcnt > 0 && (size_t)n >= iov->iov_len) {
			n -= (ssize_t)iov->iov_len;
			iov++;
			iovcnt--;
		}
		if (iovcnt > 0) {
			iov->iov_base = (char *)iov->iov_base + n;
			iov->iov_len -= (size_t)n;
		}
	}
	return total;
}

/*
 * One block holds a loaded table: the messages, then the strings (names
 * and stored UIDLs).  All but a small one is mapped on its own and
 * prefaulted in one call, a big one with huge pages: page faults, one per
 * 4 KiB page otherwise, cost more than everything else a login does (on
 * a virtual machine each is a trap into the hypervisor).
 */
#define SIZECACHE_MAP_MIN	(64UL * 1024)
#define SIZECACHE_HUGE_MIN	(4UL * 1024 * 1024)
#define SIZECACHE_HUGE		(2UL * 1024 * 1024)

/* The length mapped for a block of len octets (0: malloc). */
static size_t
sizecache_block_maplen(size_t len)
{
	size_t unit;

	if (len < SIZECACHE_MAP_MIN)
		return 0;
	unit = len < SIZECACHE_HUGE_MIN ? (size_t)sysconf(_SC_PAGESIZE) :
	    SIZECACHE_HUGE;
	return (len + unit - 1) & ~(unit - 1);
}

void *
sizecache_block_alloc(size_t len)
{
	char *p, *a;
	size_t maplen, extra, head;

	if ((maplen = sizecache_block_maplen(len)) == 0)
		return malloc(len);
	/* A huge block is aligned to a huge page: map more, trim. */
	extra = len < SIZECACHE_HUGE_MIN ? 0 : SIZECACHE_HUGE;
	p = mmap(NULL, maplen + extra, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	a = p;
	if (extra > 0) {
		a = (char *)(((uintptr_t)p + SIZECACHE_HUGE - 1) &
		    ~(uintptr_t)(SIZECACHE_HUGE - 1));
		head = (size_t)(a - p);
		if (head > 0)
			munmap(p, head);
		if (extra - head > 0)
			munmap(a + maplen, extra - head);
#ifdef MADV_HUGEPAGE
		(void)madvise(a, maplen, MADV_HUGEPAGE);
#endif
	}
#ifdef MADV_POPULATE_WRITE
	(void)madvise(a, maplen, MADV_POPULATE_WRITE);
#endif
	return a;
}

void
sizecache_block_free(void *p, size_t len)
{
	size_t maplen;

	if (p == NULL)
		return;
	if ((maplen = sizecache_block_maplen(len)) == 0)
		free(p);
	else
		munmap(p, maplen);
}

/*
 * Turn the records (n of them, read into the end of the message array)
 * into the message table, front to back: message i ends at or before
 * the start of record i + 1, so no record is overwritten before it is
 * read.  Returns 0, or -1 if a record is bad.
 */
static int
sizecache_index_fill(struct sizecache_index *ix, const char *recs,
    size_t names_len, size_t strings_len)
{
	struct sizecache_irec r;
	struct maildir_msg m;
	const char *name, *u;
	size_t i, blen;

	for (i = 0; i < ix->n; i++) {
		memcpy(&r, recs + i * sizeof(r), sizeof(r));
		memset(&m, 0, sizeof(m));
		if ((uint64_t)r.name_off + r.name_len >= names_len ||
		    r.name_len <= 4)
			return -1;
		name = ix->arena + r.name_off;
		if (name[r.name_len] != '\0' ||
		    (memcmp(name, "cur/", 4) != 0 &&
		    memcmp(name, "new/", 4) != 0) ||
		    memchr(name + 4, '\0', r.name_len - 4) != NULL ||
		    memchr(name + 4, '/', r.name_len - 4) != NULL ||
		    name[4] == '.')
			return -1;
		blen = strcspn(name + 4, ":");
		if (r.flags & SIZECACHE_IREC_UIDL_BASE) {
			if (blen < 1 || blen > MAILDIR_UIDL_MAX)
				return -1;
			memcpy(m.uidl, name + 4, blen);
			m.uidl[blen] = '\0';
		} else {
			u = ix->arena + names_len + r.uidl_off;
			if (r.uidl_len < 1 || r.uidl_len > MAILDIR_UIDL_MAX ||
			    (uint64_t)r.uidl_off + r.uidl_len >
			    strings_len - names_len ||
			    memchr(u, '\0', r.uidl_len) != NULL)
				return -1;
			memcpy(m.uidl, u, r.uidl_len);
			m.uidl[r.uidl_len] = '\0';
		}
		m.name = (char *)name;
		m.size = r.size;
		m.raw_size = r.raw_size;
		m.ino = r.ino;
		m.base_len = blen;
		m.dtype = DT_REG;
		memcpy(&ix->msgs[i], &m, sizeof(m));
	}
	return 0;
}

int
sizecache_index_load(int dirfd, struct sizecache_index *ix)
{
	struct sizecache_ihdr h;
	struct sizecache_sum sum;
	struct iovec iov[2];
	struct stat st;
	char *recs;
	uint64_t recs_len, strings_len, msgs_len, want, cksum;
	int fd, saved = EINVAL;

	_Static_assert(sizeof(struct maildir_msg) >=
	    sizeof(struct sizecache_irec), "records converted in place");
	memset(ix, 0, sizeof(*ix));
	fd = openat(dirfd, SIZECACHE_INDEX_FILE,
	    O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd == -1)
		return -1;
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) ||
	    (uint64_t)st.st_size < sizeof(h) + 8)
		goto fail;
	iov[0].iov_base = &h;
	iov[0].iov_len = sizeof(h);
	if (sizecache_readv_all(fd, iov, 1) != (ssize_t)sizeof(h))
		goto fail;
	if (memcmp(h.magic, SIZECACHE_INDEX_MAGIC, sizeof(h.magic)) != 0 ||
	    h.version != SIZECACHE_INDEX_VERSION ||
	    h.order != SIZECACHE_INDEX_ORDER ||
	    h.recsize != sizeof(struct sizecache_irec) ||
	    h.n > SIZECACHE_INDEX_MAX_MSGS ||
	    h.uidls_len % 8 != 0 || h.names_len % 8 != 0 ||
	    h.uidls_len > h.n * MAILDIR_UIDL_MAX + 8 ||
	    h.names_len > h.n * (NAME_MAX + 8) + 8 || h.names_len > UINT32_MAX)
		goto fail;
	recs_len = h.n * sizeof(struct sizecache_irec);
	strings_len = h.names_len + h.uidls_len;
	want = sizeof(h) + recs_len + strings_len + 8;
	if ((uint64_t)st.st_size != want)
		goto fail;
	msgs_len = h.n * sizeof(struct maildir_msg);
	ix->block_len = msgs_len + strings_len + 8;
	if ((ix->block = sizecache_block_alloc(ix->block_len)) == NULL) {
		saved = ENOMEM;
		goto fail;
	}
	ix->msgs = ix->block;
	ix->arena = (char *)ix->block + msgs_len;
	recs = ix->arena - recs_len;
	iov[0].iov_base = recs;
	iov[0].iov_len = recs_len;
	iov[1].iov_base = ix->arena;
	iov[1].iov_len = strings_len + 8;
	if (sizecache_readv_all(fd, iov, 2) != (ssize_t)(want - sizeof(h)))
		goto fail;
	close(fd);
	fd = -1;
	sizecache_sum_init(&sum);
	sizecache_sum_feed(&sum, &h, sizeof(h));
	sizecache_sum_feed(&sum, recs, recs_len);
	sizecache_sum_feed(&sum, ix->arena, strings_len);
	memcpy(&cksum, ix->arena + strings_len, 8);
	if (cksum != sizecache_sum_final(&sum))
		goto fail;
	ix->n = h.n;
	ix->arena_len = strings_len;
	ix->cur = h.cur;
	ix->new = h.new;
	ix->start_sec = h.start_sec;
	ix->start_nsec = h.start_nsec;
	ix->complete = h.complete == 1;
	if (sizecache_index_fill(ix, recs, h.names_len, strings_len) == -1)
		goto fail;
	return 0;

fail:
	if (fd != -1)
		close(fd);
	sizecache_index_free(ix);
	errno = saved;
	return -1;
}

struct sizecache *
sizecache_from_index(const struct sizecache_index *ix)
{
	struct sizecache *c;
	const struct maildir_msg *m;
	size_t i;
	int sorted = 1;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	if ((c->v = calloc(ix->n + 1, sizeof(*c->v))) == NULL) {
		free(c);
		return NULL;
	}
	for (i = 0; i < ix->n; i++) {
		m = &ix->msgs[i];
		c->v[i].base = m->name + 4;
		c->v[i].len = m->base_len;
		c->v[i].ino = m->ino;
		c->v[i].size = m->size;
		c->v[i].raw_size = m->raw_size;
		if (i > 0 && sizecache_entry_cmp(&c->v[i - 1], &c->v[i]) > 0)
			sorted = 0;
	}
	c->n = ix->n;
	/* Another table order (migrated messages) needs sorting here. */
	if (!sorted)
		qsort(c->v, c->n, sizeof(*c->v), sizecache_entry_cmp);
	return c;
}

void
sizecache_index_free(struct sizecache_index *ix)
{
	sizecache_block_free(ix->block, ix->block_len);
	ix->block = NULL;
	ix->msgs = NULL;
	ix->arena = NULL;
	ix->n = 0;
}

int
sizecache_index_begin(int dirfd, struct sizecache_writer *w)
{
	struct stat st;
	int saved;

	/*
	 * One fixed name: writers hold the mailbox lock, a crash leaves at
	 * most one stale file (reused next time), and even two racing
	 * writers could only produce a file that fails its checksum.
	 */
	snprintf(w->tmp, sizeof(w->tmp), "%s.tmp", SIZECACHE_INDEX_FILE);
	w->fd = openat(dirfd, w->tmp, O_WRONLY | O_CREAT | O_TRUNC |
	    O_CLOEXEC | O_NOFOLLOW, 0600);
	if (w->fd == -1)
		return -1;
	/* Now, on the clock of the file system (its server's, for NFS),
	 * the clock that dates the directories' changes. */
	if (futimens(w->fd, NULL) == -1 || fstat(w->fd, &st) == -1) {
		saved = errno;
		sizecache_index_abort(dirfd, w);
		errno = saved;
		return -1;
	}
	w->start_sec = (int64_t)st.st_mtim.tv_sec;
	w->start_nsec = (int64_t)st.st_mtim.tv_nsec;
	return 0;
}

void
sizecache_index_abort(int dirfd, struct sizecache_writer *w)
{
	if (w->fd == -1)
		return;
	close(w->fd);
	unlinkat(dirfd, w->tmp, 0);
	w->fd = -1;
}

/* write(2) all of it; 0 or -1. */
static int
sizecache_write_all(int fd, const char *p, size_t len)
{
	ssize_t n;

	while (len > 0) {
		n = write(fd, p, len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int
sizecache_index_commit(int dirfd, struct sizecache_writer *w,
    const struct maildir_msg *msgs, size_t n,
    const struct sizecache_stamp *cur, const struct sizecache_stamp *new,
    int complete)
{
	struct sizecache_ihdr h;
	struct sizecache_irec r;
	struct sizecache_sum sum;
	char *buf = NULL, *recs, *uidls, *names;
	size_t i, nl, ul, uidls_len = 0, names_len = 0, total;
	uint64_t cksum;
	int saved;

	if (w->fd == -1) {
		errno = EBADF;
		return -1;
	}
	if (n > SIZECACHE_INDEX_MAX_MSGS) {
		saved = EFBIG;
		goto fail;
	}
	for (i = 0; i < n; i++) {
		nl = strlen(msgs[i].name);
		if (nl > NAME_MAX + 4) {
			saved = EINVAL;
			goto fail;
		}
		names_len += nl + 1;
		ul = strlen(msgs[i].uidl);
		if (ul != msgs[i].base_len ||
		    memcmp(msgs[i].uidl, msgs[i].name + 4, ul) != 0)
			uidls_len += ul;
	}
	names_len = (names_len + 7) & ~(size_t)7;
	uidls_len = (uidls_len + 7) & ~(size_t)7;
	if (names_len > UINT32_MAX) {
		saved = EFBIG;
		goto fail;
	}
	memset(&h, 0, sizeof(h));
	memcpy(h.magic, SIZECACHE_INDEX_MAGIC, sizeof(h.magic));
	h.version = SIZECACHE_INDEX_VERSION;
	h.order = SIZECACHE_INDEX_ORDER;
	h.recsize = sizeof(r);
	h.n = n;
	h.uidls_len = uidls_len;
	h.names_len = names_len;
	h.complete = complete ? 1 : 0;
	h.start_sec = w->start_sec;
	h.start_nsec = w->start_nsec;
	h.cur = *cur;
	h.new = *new;
	total = sizeof(h) + n * sizeof(r) + uidls_len + names_len + 8;
	if ((buf = calloc(1, total)) == NULL) {
		saved = ENOMEM;
		goto fail;
	}
	memcpy(buf, &h, sizeof(h));
	recs = buf + sizeof(h);
	names = recs + n * sizeof(r);
	uidls = names + names_len;
	uidls_len = names_len = 0;
	for (i = 0; i < n; i++) {
		memset(&r, 0, sizeof(r));
		r.size = msgs[i].size;
		r.raw_size = msgs[i].raw_size;
		r.ino = msgs[i].ino;
		nl = strlen(msgs[i].name);
		r.name_off = (uint32_t)names_len;
		r.name_len = (uint16_t)nl;
		memcpy(names + names_len, msgs[i].name, nl + 1);
		names_len += nl + 1;
		ul = strlen(msgs[i].uidl);
		if (ul == msgs[i].base_len &&
		    memcmp(msgs[i].uidl, msgs[i].name + 4, ul) == 0)
			r.flags = SIZECACHE_IREC_UIDL_BASE;
		else {
			r.uidl_off = (uint32_t)uidls_len;
			r.uidl_len = (uint8_t)ul;
			memcpy(uidls + uidls_len, msgs[i].uidl, ul);
			uidls_len += ul;
		}
		memcpy(recs + i * sizeof(r), &r, sizeof(r));
	}
	/* The same three pieces as sizecache_index_load reads. */
	sizecache_sum_init(&sum);
	sizecache_sum_feed(&sum, buf, sizeof(h));
	sizecache_sum_feed(&sum, recs, n * sizeof(r));
	sizecache_sum_feed(&sum, names, h.names_len + h.uidls_len);
	cksum = sizecache_sum_final(&sum);
	memcpy(buf + total - 8, &cksum, 8);
	/* No fsync: a lost or torn index fails its checks, costing only a
	 * full scan. */
	if (sizecache_write_all(w->fd, buf, total) == -1) {
		saved = errno;
		goto fail;
	}
	free(buf);
	buf = NULL;
	if (close(w->fd) == -1) {
		saved = errno;
		w->fd = -1;
		unlinkat(dirfd, w->tmp, 0);
		errno = saved;
		return -1;
	}
	w->fd = -1;
	if (renameat(dirfd, w->tmp, dirfd, SIZECACHE_INDEX_FILE) == -1) {
		saved = errno;
		unlinkat(dirfd, w->tmp, 0);
		errno = saved;
		return -1;
	}
	return 0;

fail:
	free(buf);
	sizecache_index_abort(dirfd, w);
	errno = saved;
	return -1;
}
