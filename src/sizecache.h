/*
 * evpop3d - sizecache.h: the per-Maildir cache of message sizes, so that a
 * second login does not read every message again.  Pure, no global state.
 *
 * The file "evpop3d.sizes" in the Maildir's top folder maps (base name,
 * inode) to the size as sent and the file's length.  Maildir messages never change once
 * delivered, and a message keeps its inode when it moves from new/ to cur/
 * or its flags change, so the pair identifies the content; a file put in
 * place of another under the same name has a new inode and misses.  The
 * inode comes with the directory entry, so a hit costs no system call.
 * The file is rewritten (temporary name, then rename) only by the session
 * holding the mailbox lock.
 */
#ifndef EVPOP3D_SIZECACHE_H
#define EVPOP3D_SIZECACHE_H

#include <stddef.h>
#include <stdint.h>

#define SIZECACHE_FILE	"evpop3d.sizes"

struct sizecache;

/* Read the cache of the Maildir open as dirfd.  A missing, unreadable or
 * malformed file gives an empty cache (never an error), or NULL if out of
 * memory. */
struct sizecache *sizecache_load(int dirfd);

/*
 * Size of base (len octets) with inode ino, if cached: returns 1 and sets
 * *size, else 0.  Lookups must come in ascending base-name order (memcmp,
 * shorter first): the cache is a sorted list walked once, so a whole
 * mailbox costs one linear merge, not a hash probe per message.
 */
int	sizecache_lookup(struct sizecache *, const char *base, size_t len,
	    uint64_t ino, uint64_t *size, uint64_t *raw_size);

/* Entries in the file that no lookup used (messages gone since). */
size_t	sizecache_unused(const struct sizecache *);

/* Number of entries loaded. */
size_t	sizecache_count(const struct sizecache *);

struct sizecache_entry {
	const char	*base;
	size_t		 len;
	uint64_t	 ino;
	uint64_t	 size;		/* as sent */
	uint64_t	 raw_size;	/* of the file (checked at RETR) */
};

/* Replace the cache file with these entries, which must be in ascending
 * base-name order (atomically: a temporary file, then rename).  Returns 0
 * or -1 with errno. */
int	sizecache_write(int dirfd, const struct sizecache_entry *, size_t n);

void	sizecache_free(struct sizecache *);

#endif /* EVPOP3D_SIZECACHE_H */
