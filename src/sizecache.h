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

#include <sys/types.h>
#include <sys/stat.h>

#include <stddef.h>
#include <stdint.h>

#include "maildir.h"

#define SIZECACHE_FILE	"evpop3d.sizes"
#define SIZECACHE_INDEX_FILE	"evpop3d.index"

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

/*
 * The message index, "evpop3d.index": the whole table of the last full
 * scan (in the scan's order, with names, sizes, inodes and UIDLs) and the
 * identity and change times of cur/ and new/ taken just before that scan
 * listed them.  A login whose cur/ and new/ still carry exactly those
 * stamps, recorded safely after their last change (see
 * sizecache_index_fresh), loads it instead of listing the directories.
 * It replaces evpop3d.sizes, which is still read when there is no index.
 */

/* What identifies a directory's contents: device, inode, mtime, ctime. */
struct sizecache_stamp {
	uint64_t	 dev;
	uint64_t	 ino;
	int64_t		 mtime_sec;
	int64_t		 mtime_nsec;
	int64_t		 ctime_sec;
	int64_t		 ctime_nsec;
};

/* Fill a stamp from stat(2) of the directory. */
void	sizecache_stamp_of(const struct stat *, struct sizecache_stamp *);

/* Safety margin: a directory changed less than this long before the
 * listing began is not trusted (timestamps are taken at clock ticks, so
 * a later change in the same tick would leave the same stamp). */
#define SIZECACHE_INDEX_MARGIN_SEC	2

struct sizecache_index {
	void			*block;		/* msgs, then arena */
	size_t			 block_len;
	struct maildir_msg	*msgs;		/* n entries; names in arena */
	size_t			 n;
	char			*arena;		/* names (NUL-terminated), UIDLs */
	size_t			 arena_len;
	struct sizecache_stamp	 cur;
	struct sizecache_stamp	 new;
	int64_t			 start_sec;	/* file system time when the */
	int64_t			 start_nsec;	/* listing began */
	int			 complete;	/* no file was skipped */
};

/*
 * Load the index of the Maildir open as dirfd, checking its format,
 * length and checksum; names point into one arena.  Returns 0, or -1
 * with errno (ENOENT: no index; EINVAL: not a valid index; ENOMEM).
 */
int	sizecache_index_load(int dirfd, struct sizecache_index *);

/*
 * May ix stand for a listing of cur/ and new/ whose current stamps are
 * cur and new?  Yes (1) only if it is complete, both stamps are equal to
 * the saved ones, and every saved mtime and ctime is at least
 * SIZECACHE_INDEX_MARGIN_SEC older than the start of its listing (both
 * on the file system's clock).  Otherwise 0.
 */
int	sizecache_index_fresh(const struct sizecache_index *,
	    const struct sizecache_stamp *cur, const struct sizecache_stamp *new);

/* Would an index with these stamps and start time ever be trusted? */
int	sizecache_index_trustworthy(const struct sizecache_index *);

/* A size cache (for sizecache_lookup) over a loaded index's entries; it
 * points into ix's arena, so free it first.  NULL if out of memory. */
struct sizecache *sizecache_from_index(const struct sizecache_index *);

/* Free what the index holds (nothing if the caller took its block and
 * set it to NULL). */
void	sizecache_index_free(struct sizecache_index *);

/*
 * Memory for a large message table: from 64 KiB mapped and prefaulted in
 * one call, from 4 MiB in huge pages (a loaded index's block, a scan's
 * table).  Free with sizecache_block_free and the same length.
 */
#define SIZECACHE_TABLE_BLOCK_MIN	(4UL * 1024 * 1024)
void	*sizecache_block_alloc(size_t);
void	sizecache_block_free(void *, size_t);

/* An index being written: the temporary file is created before the
 * listing, so its timestamp is the listing's start on the file system's
 * own clock. */
struct sizecache_writer {
	int		 fd;
	char		 tmp[64];
	int64_t		 start_sec;
	int64_t		 start_nsec;
};

/* Create the temporary file and take the start time.  0 or -1 (errno). */
int	sizecache_index_begin(int dirfd, struct sizecache_writer *);

/*
 * Write msgs (in table order) with the stamps taken after begin and
 * before listing, and rename the file into place.  The writer is done
 * either way.  Returns 0 or -1 with errno.
 */
int	sizecache_index_commit(int dirfd, struct sizecache_writer *,
	    const struct maildir_msg *, size_t n,
	    const struct sizecache_stamp *cur, const struct sizecache_stamp *new,
	    int complete);

/* Give up a writer: remove its temporary file. */
void	sizecache_index_abort(int dirfd, struct sizecache_writer *);

#endif /* EVPOP3D_SIZECACHE_H */
