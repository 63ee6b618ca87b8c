/* SPDX-License-Identifier: ISC */
/*
 * evpop3d - sizecache.c: load, look up and rewrite "evpop3d.sizes".
 * Format: a first line "evpop3d-sizes 2", then one "INODE SIZE RAWSIZE
 * BASENAME" line per message, in decimal, sorted by base name: a login merges it
 * with the sorted directory listing in one pass.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/stat.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sizecache.h"

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
	struct stat st;
	char *buf;
	size_t off = 0;
	ssize_t n;
	int fd;

	fd = openat(dirfd, SIZECACHE_FILE, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd == -1)
		return NULL;
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) ||
	    st.st_size > SIZECACHE_MAX_BYTES ||
	    (buf = malloc((size_t)st.st_size + 1)) == NULL) {
		close(fd);
		return NULL;
	}
	while (off < (size_t)st.st_size) {
		n = read(fd, buf + off, (size_t)st.st_size - off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	close(fd);
	buf[off] = '\0';
	*lenp = off;
	return buf;
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
