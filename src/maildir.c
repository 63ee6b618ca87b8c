/*
 * evpop3d - maildir.c: a session's snapshot of one Maildir (maildir.h).
 * Every message is named by its path relative to the Maildir, "cur/NAME"
 * or, when new/NAME could not be moved because cur/ already holds that
 * name, "new/NAME"; so the *at(2) calls need no path building and a message
 * left in new/ is still served.  Sizes are counted through msgfmt, so they
 * are the octets RETR sends.  No global state: several worker threads may
 * scan different mailboxes at once.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "maildir.h"
#include "migrate.h"
#include "msgfmt.h"
#include "sizecache.h"
#include "util.h"

/* Read buffer for counting sizes at login. */
#define MAILDIR_READ_CHUNK	(64 * 1024)
/* Length of "cur/" and "new/". */
#define MAILDIR_SUB_LEN		4

struct mailbox {
	char			*path;		/* as given to maildir_open */
	struct maildir_msg	*msgs;
	size_t			 nmsgs;
	size_t			 cap;
	void			*block;		/* msgs (and arena, from the index)
					   when from sizecache_block_alloc */
	size_t			 block_len;
	char			*arena;		/* names loaded from the index */
	size_t			 arena_len;
	int			 from_index;	/* no directory was listed */
	int			 trash;		/* UPDATE moves to the trash */
};

/* Soft delete: removed messages wait here, invisible to POP3 (only cur/
 * and new/ are read) and to other Maildir readers (no leading dot). */
#define MAILDIR_TRASH		"evpop3d-trash"
#define MAILDIR_TRASH_LEN	13

/* cur/'s file names, sorted (maildir_update's renamed-file lookups). */
struct maildir_list {
	char			**v;
	size_t			 n;
};

/* What one scan needs besides the mailbox under construction. */
struct maildir_scan {
	struct mailbox		*mb;
	unsigned char		*buf;		/* MAILDIR_READ_CHUNK octets */
	size_t			 skipped;
	struct sizecache	*cache;		/* sizes of the last scan */
	size_t			 misses;	/* sizes counted this time */
};

static int	maildir_mkdir(const char *, size_t);
static const char *maildir_base(const char *, size_t *);
static void	maildir_digest(const char *, size_t,
		    char[MAILDIR_UIDL_MAX + 1]);
static int	maildir_size_fd(int, unsigned char *, uint64_t *);
static int	maildir_add(struct maildir_scan *, const char *,
		    const char *, unsigned char, uint64_t);
static int	maildir_scan_new(struct maildir_scan *, int, int);
static int	maildir_scan_cur(struct maildir_scan *, int);
static int	maildir_move_new(int, int, const char *, char **);
static int	maildir_cmp(const void *, const void *);
static void	maildir_assign_uidls(struct mailbox *);
static char	*maildir_join(const char *, const char *, const char *);
static int	maildir_same_base(const struct mailbox *, size_t, size_t);
static int	maildir_claimed(const struct mailbox *, size_t, const char *);
static int	maildir_candidate(struct mailbox *, size_t, const char *,
		    char **);
static DIR	*maildir_opendir_cur(const struct mailbox *);
static int	maildir_find_renamed(struct mailbox *, size_t, char **);
static int	maildir_strcmp(const void *, const void *);
static void	maildir_list_free(struct maildir_list *);
static int	maildir_list_cur(struct mailbox *, struct maildir_list *);
static int	maildir_find_listed(struct mailbox *, size_t,
		    const struct maildir_list *, char **);
static int	maildir_sync_dir(int, const char *);
static void	maildir_name_free(struct mailbox *, char *);
static long	maildir_journal_replay(int);
static int	maildir_cmp_str(const void *, const void *);
static int	maildir_journal_apply(int, const char *, char **, size_t, int);

/* Create one directory, accepting an existing directory. */
static int
maildir_mkdir(const char *path, size_t len)
{
	char *p;
	struct stat st;
	int r, saved;

	if ((p = strndup(path, len)) == NULL)
		return -1;
	/* An existing directory is fine whatever mkdir(2) says about it. */
	if ((r = mkdir(p, 0700)) == -1) {
		saved = errno;
		if (stat(p, &st) == 0 && S_ISDIR(st.st_mode))
			r = 0;
		else
			errno = saved == EEXIST ? ENOTDIR : saved;
	}
	saved = errno;
	free(p);
	errno = saved;
	return r;
}

/* mkdir -p for the Maildir and its three subdirectories. */
int
maildir_create(const char *dir)
{
	static const char *const subs[] = { "cur", "new", "tmp" };
	struct stat st;
	size_t len, i;
	char *sub;
	int r;

	len = strlen(dir);
	if (len == 0) {
		errno = ENOENT;
		return -1;
	}
	/* Every login calls this: an existing Maildir costs three stats. */
	for (i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
		if ((sub = maildir_join(dir, "/", subs[i])) == NULL)
			return -1;
		r = stat(sub, &st) == 0 && S_ISDIR(st.st_mode);
		free(sub);
		if (!r)
			break;
	}
	if (i == sizeof(subs) / sizeof(subs[0]))
		return 0;
	for (i = 1; i <= len; i++) {
		if (i < len && dir[i] != '/')
			continue;
		if (dir[i - 1] == '/')		/* "//" or a trailing '/' */
			continue;
		if (maildir_mkdir(dir, i) == -1)
			return -1;
	}
	for (i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
		if ((sub = maildir_join(dir, "/", subs[i])) == NULL)
			return -1;
		r = maildir_mkdir(sub, strlen(sub));
		free(sub);
		if (r == -1)
			return -1;
	}
	return 0;
}

int
maildir_is_message_name(const char *name)
{
	return name[0] != '\0' && name[0] != '.' && strchr(name, '/') == NULL;
}

/* Base name of a relative name ("cur/BASE:2,FL"), with its length. */
static const char *
maildir_base(const char *rel, size_t *len)
{
	const char *b = rel + MAILDIR_SUB_LEN;

	*len = strcspn(b, ":");
	return b;
}

/* "X:" and the lower-case hex SHA-1 of s: a form no valid name has. */
static void
maildir_digest(const char *s, size_t len, char out[MAILDIR_UIDL_MAX + 1])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0, i;

	/* SHA-1 is always available from the default provider. */
	if (!EVP_Digest(s, len, md, &mdlen, EVP_sha1(), NULL) || mdlen != 20)
		abort();
	out[0] = 'X';
	out[1] = ':';
	for (i = 0; i < mdlen; i++) {
		out[2 + 2 * i] = hex[md[i] >> 4];
		out[3 + 2 * i] = hex[md[i] & 0xf];
	}
	out[2 + 2 * mdlen] = '\0';
}

void
maildir_uidl(const char *base, size_t len, char out[MAILDIR_UIDL_MAX + 1])
{
	size_t i;
	unsigned char c;

	if (len < 1 || len > MAILDIR_UIDL_MAX) {
		maildir_digest(base, len, out);
		return;
	}
	for (i = 0; i < len; i++) {
		c = base[i];
		if (c < 0x21 || c > 0x7e || c == ':') {
			maildir_digest(base, len, out);
			return;
		}
	}
	memcpy(out, base, len);
	out[len] = '\0';
}

/* Count a file's octets as sent, reading it through msgfmt. */
static int
maildir_size_fd(int fd, unsigned char *buf, uint64_t *size)
{
	struct msgfmt m;
	ssize_t n;

	msgfmt_init(&m, -1, 0);
	for (;;) {
		n = read(fd, buf, MAILDIR_READ_CHUNK);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0)
			break;
		msgfmt_feed(&m, buf, n, NULL);
	}
	msgfmt_finish(&m, NULL);
	*size = m.octets;
	return 0;
}

/*
 * Add sub/name (sub is "cur" or "new") to the snapshot as found in the
 * directory; its size is found after sorting (maildir_sizes).  Returns 0,
 * or -1 on allocation failure.
 */
/*
 * Grow a scan's table to cap entries.  A large table goes into a block of
 * huge pages, like a loaded index's: a big mailbox's table then takes a few
 * prefaulted pages instead of thousands of faults, and when the session
 * ends it hands back huge pages that the next big login (an index load,
 * in any worker) gets warm.
 */
static int
maildir_grow(struct mailbox *mb, size_t cap)
{
	struct maildir_msg *nm;
	size_t len;

	if (cap > SIZE_MAX / sizeof(*nm)) {
		errno = ENOMEM;
		return -1;
	}
	len = cap * sizeof(*nm);
	if (len < SIZECACHE_TABLE_BLOCK_MIN) {
		if ((nm = reallocarray(mb->msgs, cap, sizeof(*nm))) == NULL)
			return -1;
	} else {
		if ((nm = sizecache_block_alloc(len)) == NULL)
			return -1;
		memcpy(nm, mb->msgs, mb->nmsgs * sizeof(*nm));
		if (mb->block != NULL)
			sizecache_block_free(mb->block, mb->block_len);
		else
			free(mb->msgs);
		mb->block = nm;
		mb->block_len = len;
	}
	mb->msgs = nm;
	mb->cap = cap;
	return 0;
}

static int
maildir_add(struct maildir_scan *sc, const char *sub, const char *name,
    unsigned char type, uint64_t ino)
{
	struct mailbox *mb = sc->mb;
	struct maildir_msg *msg;
	size_t cap;
	char *rel;

	if (type != DT_UNKNOWN && type != DT_REG)
		return 0;
	if ((rel = maildir_join(sub, "/", name)) == NULL)
		return -1;
	if (mb->nmsgs == mb->cap) {
		cap = mb->cap == 0 ? 64 : mb->cap * 2;
		if (maildir_grow(mb, cap) == -1) {
			free(rel);
			return -1;
		}
	}
	msg = &mb->msgs[mb->nmsgs++];
	memset(msg, 0, sizeof(*msg));
	msg->name = rel;
	msg->ino = ino;
	msg->base_len = strcspn(name, ":");
	msg->dtype = type;
	return 0;
}

/*
 * Count msg's size by reading it (a cache miss).  Returns 1 if it is a
 * readable regular file, 0 if it is not a message (gone, a link, not a
 * regular file), -1 if it cannot be read (counted as skipped).
 */
static int
maildir_count_size(struct maildir_scan *sc, int mfd, struct maildir_msg *msg)
{
	struct stat st;
	int fd;

	fd = openat(mfd, msg->name,
	    O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd == -1)
		return errno == ENOENT || errno == ELOOP ? 0 : -1;
	if (fstat(fd, &st) == -1) {
		close(fd);
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return 0;
	}
	if (maildir_size_fd(fd, sc->buf, &msg->size) == -1) {
		close(fd);
		return -1;
	}
	close(fd);
	msg->ino = st.st_ino;
	msg->raw_size = (uint64_t)st.st_size;
	sc->misses++;
	return 1;
}

/*
 * Sizes for the sorted snapshot: from the cache where the base name and
 * inode match (no system call), else by reading the file.  Entries that
 * turn out not to be messages are dropped.
 */
static void
maildir_sizes(struct maildir_scan *sc, int mfd)
{
	struct mailbox *mb = sc->mb;
	struct maildir_msg *msg;
	size_t i, j;
	int r;

	for (i = j = 0; i < mb->nmsgs; i++) {
		msg = &mb->msgs[i];
		if (msg->dtype == DT_REG && sizecache_lookup(sc->cache,
		    msg->name + MAILDIR_SUB_LEN, msg->base_len, msg->ino,
		    &msg->size, &msg->raw_size))
			r = 1;
		else if ((r = maildir_count_size(sc, mfd, msg)) == -1)
			sc->skipped++;
		if (r != 1) {
			free(msg->name);
			continue;
		}
		if (j != i)
			mb->msgs[j] = *msg;
		j++;
	}
	mb->nmsgs = j;
}

/*
 * Move new/name to cur/ as name":2," (name unchanged if it already has
 * info), never replacing a file in cur/.  Returns 0 (moved, or gone),
 * or -1 with errno (EEXIST: cur/ has that name) when it stays in new/.
 * *target gets the cur/ name on success, or NULL when the file is gone.
 */
static int
maildir_move_new(int newfd, int curfd, const char *name, char **target)
{
	char *t;
	struct stat st;
	int saved;

	*target = NULL;
	if (strchr(name, ':') != NULL)
		t = strdup(name);
	else
		t = maildir_join(name, ":2,", "");
	if (t == NULL)
		return -1;
	if (linkat(newfd, name, curfd, t, 0) == 0) {
		if (unlinkat(newfd, name, 0) == 0 || errno == ENOENT) {
			*target = t;
			return 0;
		}
		/* Both names now exist: undo, and serve it from new/. */
		saved = errno;
		unlinkat(curfd, t, 0);
		free(t);
		errno = saved;
		return -1;
	}
	if (errno == ENOENT) {
		free(t);
		return 0;
	}
	/* No hard links on this file system (or not allowed): rename. */
	if (errno == EPERM || errno == ENOSYS || errno == EXDEV ||
	    errno == EOPNOTSUPP || errno == EMLINK) {
#ifdef RENAME_NOREPLACE
		if (renameat2(newfd, name, curfd, t, RENAME_NOREPLACE) == 0) {
			*target = t;
			return 0;
		}
		if (errno != EINVAL && errno != ENOSYS) {
			saved = errno;
			free(t);
			if (saved == ENOENT)
				return 0;
			errno = saved;
			return -1;
		}
#endif
		/* Not atomic, but no worse than other Maildir readers. */
		if (fstatat(curfd, t, &st, AT_SYMLINK_NOFOLLOW) == 0) {
			free(t);
			errno = EEXIST;
			return -1;
		}
		if (renameat(newfd, name, curfd, t) == 0) {
			*target = t;
			return 0;
		}
		saved = errno;
		free(t);
		if (saved == ENOENT)
			return 0;
		errno = saved;
		return -1;
	}
	saved = errno;
	free(t);
	errno = saved;
	return -1;
}

/*
 * Deliver new/ into cur/; a message that cannot be moved is served from
 * new/.  Returns 0 or -1 (errno set).
 */
static int
maildir_scan_new(struct maildir_scan *sc, int newfd, int curfd)
{
	DIR *d;
	struct dirent *de;
	struct stat st;
	unsigned char type;
	char *target;
	int fd, saved;

	if ((fd = dup(newfd)) == -1)
		return -1;
	if ((d = fdopendir(fd)) == NULL) {
		saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	for (;;) {
		errno = 0;
		if ((de = readdir(d)) == NULL)
			break;
		if (!maildir_is_message_name(de->d_name))
			continue;
		type = de->d_type;
		if (type == DT_UNKNOWN) {
			if (fstatat(newfd, de->d_name, &st,
			    AT_SYMLINK_NOFOLLOW) == -1)
				continue;
			if (S_ISREG(st.st_mode))
				type = DT_REG;
		}
		if (type != DT_REG)
			continue;
		if (maildir_move_new(newfd, curfd, de->d_name, &target) == 0) {
			/* The scan of cur/ that follows picks it up. */
			free(target);
			continue;
		}
		if (errno == ENOMEM)
			break;
		if (maildir_add(sc, "new", de->d_name, DT_REG,
		    de->d_ino) == -1)
			break;
	}
	saved = errno;
	closedir(d);
	errno = saved;
	return saved != 0 ? -1 : 0;
}

/* Add every message of cur/.  Returns 0 or -1 (errno set). */
static int
maildir_scan_cur(struct maildir_scan *sc, int curfd)
{
	DIR *d;
	struct dirent *de;
	int fd, saved;

	if ((fd = dup(curfd)) == -1)
		return -1;
	if ((d = fdopendir(fd)) == NULL) {
		saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	for (;;) {
		errno = 0;
		if ((de = readdir(d)) == NULL)
			break;
		if (!maildir_is_message_name(de->d_name))
			continue;
		if (maildir_add(sc, "cur", de->d_name, de->d_type,
		    de->d_ino) == -1)
			break;
	}
	saved = errno;
	closedir(d);
	errno = saved;
	return saved != 0 ? -1 : 0;
}

/* Order by base name, then by the whole relative name ("cur/" first). */
static int
maildir_cmp(const void *a, const void *b)
{
	const struct maildir_msg *ma = a, *mb = b;
	size_t la = ma->base_len, lb = mb->base_len;
	int c;

	c = memcmp(ma->name + MAILDIR_SUB_LEN, mb->name + MAILDIR_SUB_LEN,
	    la < lb ? la : lb);
	if (c != 0)
		return c;
	if (la != lb)
		return la < lb ? -1 : 1;
	return strcmp(ma->name, mb->name);
}

static int
maildir_cmp_ptr(const void *a, const void *b)
{
	return maildir_cmp(*(const struct maildir_msg *const *)a,
	    *(const struct maildir_msg *const *)b);
}

/* Sort the snapshot.  Pointers are sorted, not the large entries: a
 * 100,000-message mailbox sorts in a few milliseconds. */
static int
maildir_sort(struct mailbox *mb)
{
	struct maildir_msg **p, *sorted;
	size_t i, len;
	int big;

	if (mb->nmsgs < 2)
		return 0;
	len = mb->nmsgs * sizeof(*sorted);
	big = len >= SIZECACHE_TABLE_BLOCK_MIN;	/* as in maildir_grow */
	if ((p = calloc(mb->nmsgs, sizeof(*p))) == NULL)
		return -1;
	if ((sorted = big ? sizecache_block_alloc(len) :
	    calloc(mb->nmsgs, sizeof(*sorted))) == NULL) {
		free(p);
		return -1;
	}
	for (i = 0; i < mb->nmsgs; i++)
		p[i] = &mb->msgs[i];
	qsort(p, mb->nmsgs, sizeof(*p), maildir_cmp_ptr);
	for (i = 0; i < mb->nmsgs; i++)
		sorted[i] = *p[i];
	free(p);
	if (mb->block != NULL)
		sizecache_block_free(mb->block, mb->block_len);
	else
		free(mb->msgs);
	mb->block = big ? sorted : NULL;
	mb->block_len = big ? len : 0;
	mb->msgs = sorted;
	mb->cap = mb->nmsgs;
	return 0;
}

/*
 * UIDLs after sorting.  A base name seen again (the same name in cur/ and
 * new/, or twice in cur/ with different flags) gets the digest of its
 * relative name, which contains '/' and so is no base name's digest.
 */
static void
maildir_assign_uidls(struct mailbox *mb)
{
	const char *b, *pb = NULL;
	size_t i, len, plen = 0;

	for (i = 0; i < mb->nmsgs; i++) {
		b = maildir_base(mb->msgs[i].name, &len);
		if (pb != NULL && len == plen && memcmp(b, pb, len) == 0)
			maildir_digest(mb->msgs[i].name,
			    strlen(mb->msgs[i].name), mb->msgs[i].uidl);
		else
			maildir_uidl(b, len, mb->msgs[i].uidl);
		pb = b;
		plen = len;
	}
}

/* Stamps of cur/ and new/ as they are now; 0 or -1 (errno set). */
static int
maildir_stamps(int mfd, struct sizecache_stamp *cur,
    struct sizecache_stamp *new)
{
	struct stat st;

	if (fstatat(mfd, "cur", &st, 0) == -1)
		return -1;
	sizecache_stamp_of(&st, cur);
	if (fstatat(mfd, "new", &st, 0) == -1)
		return -1;
	sizecache_stamp_of(&st, new);
	return 0;
}

/* Free a message name unless it lives in the arena of a loaded index. */
static void
maildir_name_free(struct mailbox *mb, char *name)
{
	uintptr_t p = (uintptr_t)name, a = (uintptr_t)mb->arena;

	if (mb->arena != NULL && p >= a && p < a + mb->arena_len)
		return;
	free(name);
}

/*
 * The table of the last full scan, if cur/ and new/ provably did not
 * change since it was listed (sizecache_index_fresh): the whole login is
 * then two stat calls and two reads.  Returns 1 (mb filled), 0 (scan;
 * ix is left loaded, or empty, for its sizes), or -1 (ENOMEM).
 */
static int
maildir_open_index(struct mailbox *mb, int mfd, struct sizecache_index *ix)
{
	struct sizecache_stamp cur, new;

	if (sizecache_index_load(mfd, ix) == -1)
		return errno == ENOMEM ? -1 : 0;
	if (maildir_stamps(mfd, &cur, &new) == -1 ||
	    !sizecache_index_fresh(ix, &cur, &new))
		return 0;
	mb->block = ix->block;
	mb->block_len = ix->block_len;
	mb->msgs = ix->msgs;
	mb->nmsgs = mb->cap = ix->n;
	mb->arena = ix->arena;
	mb->arena_len = ix->arena_len;
	mb->from_index = 1;
	ix->block = NULL;
	return 1;
}

/*
 * After a full scan: save its table, unless the index on disk already
 * has every size and a new one would not be trusted either (cur/ or new/
 * changed within the margin: the next login lists them again anyway).
 */
static void
maildir_save_index(struct maildir_scan *sc, int mfd, int loaded,
    const struct sizecache_index *old, struct sizecache_writer *w,
    const struct sizecache_stamp *cur, const struct sizecache_stamp *new)
{
	struct sizecache_index now;
	int legacy, sizes_known;

	if (w->fd == -1)
		return;
	memset(&now, 0, sizeof(now));
	now.cur = *cur;
	now.new = *new;
	now.start_sec = w->start_sec;
	now.start_nsec = w->start_nsec;
	now.complete = sc->skipped == 0;
	legacy = !loaded && sizecache_count(sc->cache) > 0;
	sizes_known = loaded && sc->misses == 0 &&
	    sizecache_unused(sc->cache) == 0 && old->n == sc->mb->nmsgs;
	if (sizes_known && !sizecache_index_trustworthy(&now)) {
		sizecache_index_abort(mfd, w);
		return;
	}
	if (sizecache_index_commit(mfd, w, sc->mb->msgs, sc->mb->nmsgs, cur,
	    new, now.complete) == 0 && legacy)
		unlinkat(mfd, SIZECACHE_FILE, 0);
}

/*
 * Load the saved table when cur/ and new/ are unchanged; otherwise scan
 * new/ (moving it into cur/), then cur/, sort, and save the table.
 */
int
maildir_open(const char *dir, struct mailbox **mbp, size_t *skipped,
    const char **errstr)
{
	return maildir_open_migrate(dir, mbp, skipped, errstr, NULL);
}

/* The same, then the migration hook (migrate.h) when mo enables it. */
int
maildir_open_migrate(const char *dir, struct mailbox **mbp, size_t *skipped,
    const char **errstr, const struct migrate_opts *mo)
{
	struct maildir_scan sc;
	struct mailbox *mb;
	struct sizecache_index ix;
	struct sizecache_writer w;
	struct sizecache_stamp curst, newst;
	struct stat st;
	const char *es = NULL;
	int mfd = -1, curfd = -1, newfd = -1, saved, r, loaded;
	size_t i;

	*mbp = NULL;
	if (skipped != NULL)
		*skipped = 0;
	memset(&sc, 0, sizeof(sc));
	memset(&ix, 0, sizeof(ix));
	w.fd = -1;
	if ((mb = calloc(1, sizeof(*mb))) == NULL ||
	    (mb->path = strdup(dir)) == NULL) {
		es = "out of memory";
		goto fail;
	}
	sc.mb = mb;
	if ((mfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1) {
		es = "open Maildir";
		goto fail;
	}
	if (maildir_journal_replay(mfd) == -1) {
		es = "finish an interrupted UPDATE (evpop3d.pending)";
		goto fail;
	}
	if ((r = maildir_open_index(mb, mfd, &ix)) == -1) {
		es = "out of memory";
		goto fail;
	}
	if (r == 1) {
		/* Migration hook, as after a scan (migrate_apply gives the
		 * same result from the same table and evpop3d.uidls). */
		if (mo != NULL && migrate_apply(mb, mfd, mo) == -1) {
			es = "out of memory";
			goto fail;
		}
		close(mfd);
		*mbp = mb;
		return 0;
	}

	/* Full scan, with the sizes of the index (or the old cache). */
	loaded = ix.msgs != NULL;
	sc.cache = loaded ? sizecache_from_index(&ix) : sizecache_load(mfd);
	if (sc.cache == NULL || (sc.buf = malloc(MAILDIR_READ_CHUNK)) == NULL) {
		es = "out of memory";
		goto fail;
	}
	/* The start of the listing, then the stamps, then the listing. */
	(void)sizecache_index_begin(mfd, &w);
	if ((curfd = openat(mfd, "cur",
	    O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1) {
		es = "open cur/";
		goto fail;
	}
	if ((newfd = openat(mfd, "new",
	    O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1) {
		es = "open new/";
		goto fail;
	}
	if (fstat(curfd, &st) == -1) {
		es = "stat cur/";
		goto fail;
	}
	sizecache_stamp_of(&st, &curst);
	if (fstat(newfd, &st) == -1) {
		es = "stat new/";
		goto fail;
	}
	sizecache_stamp_of(&st, &newst);
	if (maildir_scan_new(&sc, newfd, curfd) == -1) {
		es = errno == ENOMEM ? "out of memory" : "read new/";
		goto fail;
	}
	if (maildir_scan_cur(&sc, curfd) == -1) {
		es = errno == ENOMEM ? "out of memory" : "read cur/";
		goto fail;
	}
	close(newfd);
	close(curfd);
	newfd = curfd = -1;

	if (maildir_sort(mb) == -1) {
		es = "out of memory";
		goto fail;
	}
	maildir_sizes(&sc, mfd);
	maildir_assign_uidls(mb);
	/* The index keeps the scan's own table (base-name order, default
	 * UIDLs); migration is applied on top of either path. */
	maildir_save_index(&sc, mfd, loaded, &ix, &w, &curst, &newst);
	/* Migration hook: old servers' UIDLs and order (migrate.c). */
	if (mo != NULL && migrate_apply(mb, mfd, mo) == -1) {
		es = "out of memory";
		goto fail;
	}
	sizecache_free(sc.cache);
	sizecache_index_free(&ix);
	free(sc.buf);
	close(mfd);
	if (skipped != NULL)
		*skipped = sc.skipped;
	*mbp = mb;
	return 0;

fail:
	saved = errno;
	sizecache_free(sc.cache);
	sizecache_index_free(&ix);
	if (mfd != -1)
		sizecache_index_abort(mfd, &w);
	if (newfd != -1)
		close(newfd);
	if (curfd != -1)
		close(curfd);
	if (mfd != -1)
		close(mfd);
	free(sc.buf);
	if (mb != NULL) {
		for (i = 0; i < mb->nmsgs; i++)
			maildir_name_free(mb, mb->msgs[i].name);
		if (mb->block != NULL)
			sizecache_block_free(mb->block, mb->block_len);
		else
			free(mb->msgs);
		free(mb->path);
		free(mb);
	}
	if (errstr != NULL)
		*errstr = es;
	errno = saved;
	return -1;
}

int
maildir_from_index(const struct mailbox *mb)
{
	return mb->from_index;
}

/* The table may live in the index's block: permute it in place. */
int
maildir_reorder(struct mailbox *mb, const size_t *perm)
{
	struct maildir_msg *v;
	size_t i;

	if (mb->nmsgs == 0)
		return 0;
	if ((v = malloc(mb->nmsgs * sizeof(*v))) == NULL)
		return -1;
	for (i = 0; i < mb->nmsgs; i++)
		v[i] = mb->msgs[perm[i]];
	memcpy(mb->msgs, v, mb->nmsgs * sizeof(*v));
	free(v);
	return 0;
}

const char *
maildir_path(const struct mailbox *mb)
{
	return mb->path;
}

size_t
maildir_count(const struct mailbox *mb)
{
	return mb->nmsgs;
}

struct maildir_msg *
maildir_msg(struct mailbox *mb, size_t idx)
{
	return &mb->msgs[idx];
}

void
maildir_stat(const struct mailbox *mb, size_t *count, uint64_t *octets)
{
	size_t i, n = 0;
	uint64_t o = 0;

	for (i = 0; i < mb->nmsgs; i++) {
		if (mb->msgs[i].deleted)
			continue;
		n++;
		o += mb->msgs[i].size;
	}
	*count = n;
	*octets = o;
}

void
maildir_unmark_all(struct mailbox *mb)
{
	size_t i;

	for (i = 0; i < mb->nmsgs; i++)
		mb->msgs[i].deleted = 0;
}

/* a b c concatenated into a new string, or NULL (ENOMEM). */
static char *
maildir_join(const char *a, const char *b, const char *c)
{
	size_t la = strlen(a), lb = strlen(b), lc = strlen(c);
	char *s;

	if ((s = malloc(la + lb + lc + 1)) == NULL)
		return NULL;
	memcpy(s, a, la);
	memcpy(s + la, b, lb);
	memcpy(s + la + lb, c, lc + 1);
	return s;
}

/* Do messages i and j have the same base name? */
static int
maildir_same_base(const struct mailbox *mb, size_t i, size_t j)
{
	const char *bi, *bj;
	size_t li, lj;

	bi = maildir_base(mb->msgs[i].name, &li);
	bj = maildir_base(mb->msgs[j].name, &lj);
	return li == lj && memcmp(bi, bj, li) == 0;
}

/*
 * Does a message other than idx own relative name rel?  Only messages
 * with idx's base name can, and the sorted table keeps them beside idx.
 */
static int
maildir_claimed(const struct mailbox *mb, size_t idx, const char *rel)
{
	size_t i;

	for (i = idx; i > 0 && maildir_same_base(mb, i - 1, idx); i--)
		if (strcmp(mb->msgs[i - 1].name, rel) == 0)
			return 1;
	for (i = idx + 1; i < mb->nmsgs && maildir_same_base(mb, i, idx); i++)
		if (strcmp(mb->msgs[i].name, rel) == 0)
			return 1;
	return 0;
}

/*
 * Is cur/dname a renamed copy of message idx: same base name, and not the
 * file of another message of the snapshot?  Returns 1 and the relative
 * name in *rel, 0, or -1 (ENOMEM).
 */
static int
maildir_candidate(struct mailbox *mb, size_t idx, const char *dname,
    char **rel)
{
	const char *base;
	size_t blen;
	char *cand;

	*rel = NULL;
	base = maildir_base(mb->msgs[idx].name, &blen);
	if (!maildir_is_message_name(dname) ||
	    strncmp(dname, base, blen) != 0 ||
	    (dname[blen] != '\0' && dname[blen] != ':'))
		return 0;
	if ((cand = maildir_join("cur/", dname, "")) == NULL)
		return -1;
	if (strcmp(cand, mb->msgs[idx].name) == 0 ||
	    maildir_claimed(mb, idx, cand)) {
		free(cand);
		return 0;
	}
	*rel = cand;
	return 1;
}

/* Open cur/ for reading; NULL with errno set. */
static DIR *
maildir_opendir_cur(const struct mailbox *mb)
{
	DIR *d;
	char *cur;
	int saved;

	if ((cur = maildir_join(mb->path, "/", "cur")) == NULL)
		return NULL;
	d = opendir(cur);
	saved = errno;
	free(cur);
	errno = saved;
	return d;
}

/*
 * Message idx's file is gone: look in cur/ for its base name with other
 * flags (another reader renamed it).  Returns 1 and the new relative name
 * in *rel, 0 if there is none, -1 on error (errno set).
 */
static int
maildir_find_renamed(struct mailbox *mb, size_t idx, char **rel)
{
	DIR *d;
	struct dirent *de;
	int r = 0;

	*rel = NULL;
	if ((d = maildir_opendir_cur(mb)) == NULL)
		return errno == ENOENT ? 0 : -1;
	while (r == 0 && (de = readdir(d)) != NULL)
		r = maildir_candidate(mb, idx, de->d_name, rel);
	closedir(d);
	if (r == -1)
		errno = ENOMEM;
	return r;
}

static int
maildir_strcmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Free a list made by maildir_list_cur. */
static void
maildir_list_free(struct maildir_list *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

/* Read cur/'s names once, sorted, for many renamed-file lookups. */
static int
maildir_list_cur(struct mailbox *mb, struct maildir_list *l)
{
	DIR *d;
	struct dirent *de;
	char **nv;
	size_t cap = 0;

	memset(l, 0, sizeof(*l));
	if ((d = maildir_opendir_cur(mb)) == NULL)
		return errno == ENOENT ? 0 : -1;
	while ((de = readdir(d)) != NULL) {
		if (!maildir_is_message_name(de->d_name))
			continue;
		if (l->n == cap) {
			cap = cap == 0 ? 256 : cap * 2;
			if ((nv = reallocarray(l->v, cap, sizeof(*nv))) ==
			    NULL)
				goto fail;
			l->v = nv;
		}
		if ((l->v[l->n] = strdup(de->d_name)) == NULL)
			goto fail;
		l->n++;
	}
	closedir(d);
	if (l->n > 1)
		qsort(l->v, l->n, sizeof(*l->v), maildir_strcmp);
	return 0;

fail:
	closedir(d);
	maildir_list_free(l);
	errno = ENOMEM;
	return -1;
}

/*
 * maildir_find_renamed over a sorted list of cur/: the names starting
 * with idx's base name are one run, found by binary search.
 */
static int
maildir_find_listed(struct mailbox *mb, size_t idx,
    const struct maildir_list *l, char **rel)
{
	const char *base;
	size_t blen, lo = 0, hi = l->n, mid;
	int r = 0;

	*rel = NULL;
	base = maildir_base(mb->msgs[idx].name, &blen);
	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (strncmp(l->v[mid], base, blen) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (; r == 0 && lo < l->n &&
	    strncmp(l->v[lo], base, blen) == 0; lo++)
		r = maildir_candidate(mb, idx, l->v[lo], rel);
	if (r == -1)
		errno = ENOMEM;
	return r;
}

/* Open by relative name; on ENOENT follow a flag change by base name. */
int
maildir_msg_open(struct mailbox *mb, size_t idx)
{
	struct maildir_msg *msg = &mb->msgs[idx];
	struct stat st;
	char *path, *rel;
	int fd, flags, tries, r, saved;

	for (tries = 0; tries < 2; tries++) {
		if ((path = maildir_join(mb->path, "/", msg->name)) == NULL)
			return -1;
		fd = open(path,
		    O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
		saved = errno;
		free(path);
		if (fd != -1) {
			if (fstat(fd, &st) == -1) {
				saved = errno;
				close(fd);
				errno = saved;
				return -1;
			}
			if (!S_ISREG(st.st_mode)) {
				close(fd);
				errno = ENOENT;
				return -1;
			}
			if ((uint64_t)st.st_size != msg->raw_size) {
				/*
				 * Rewritten in place (Maildir files never
				 * are): the size we reported may be wrong, so
				 * send nothing, and drop the cache so the
				 * next login counts again.
				 */
				close(fd);
				if ((path = maildir_join(mb->path, "/",
				    SIZECACHE_INDEX_FILE)) != NULL) {
					unlink(path);
					free(path);
				}
				if ((path = maildir_join(mb->path, "/",
				    SIZECACHE_FILE)) != NULL) {
					unlink(path);
					free(path);
				}
				errno = ESTALE;
				return -1;
			}
			/* Only there to keep a FIFO from blocking open(2). */
			if ((flags = fcntl(fd, F_GETFL)) != -1)
				(void)fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
			return fd;
		}
		if (saved != ENOENT) {
			errno = saved;
			return -1;
		}
		if ((r = maildir_find_renamed(mb, idx, &rel)) == -1)
			return -1;
		if (r == 0)
			break;
		maildir_name_free(mb, msg->name);
		msg->name = rel;
	}
	errno = ENOENT;
	return -1;
}

/* fsync(2) directory sub of the Maildir; 0 or -1 (errno set). */
static int
maildir_sync_dir(int mfd, const char *sub)
{
	int dfd, r, saved;

	if ((dfd = openat(mfd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return -1;
	r = fsync(dfd);
	saved = errno;
	close(dfd);
	/* Some file systems cannot sync a directory: nothing to wait for. */
	if (r == -1 && saved == EINVAL)
		r = 0;
	errno = saved;
	return r;
}

/*
 * Remove rel (a name relative to the Maildir open as mfd; "cur/X" or
 * "new/X"), or with trash set move it into the trash.  Like unlinkat():
 * 0, or -1 with errno (ENOENT: not there).
 */
static int
maildir_remove_at(int mfd, int dfd, const char *name, int trash)
{
	char to[NAME_MAX + MAILDIR_TRASH_LEN + 2];

	if (!trash)
		return unlinkat(dfd, name, 0);
	if (mkdirat(mfd, MAILDIR_TRASH, 0700) == -1 && errno != EEXIST)
		return -1;
	snprintf(to, sizeof(to), "%s/%s", MAILDIR_TRASH, name);
	return renameat(dfd, name, mfd, to);
}

/* The same for a name relative to the Maildir ("cur/X"). */
static int
maildir_remove_rel(int mfd, const char *rel, int trash)
{
	const char *slash = strchr(rel, '/');
	char sub[8];
	int dfd, r, saved;

	if (!trash)
		return unlinkat(mfd, rel, 0);
	if (slash == NULL || (size_t)(slash - rel) >= sizeof(sub)) {
		errno = EINVAL;
		return -1;
	}
	memcpy(sub, rel, (size_t)(slash - rel));
	sub[slash - rel] = '\0';
	if ((dfd = openat(mfd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return -1;
	r = maildir_remove_at(mfd, dfd, slash + 1, 1);
	saved = errno;
	close(dfd);
	errno = saved;
	return r;
}

/*
 * Crash-safe UPDATE.  Before the first removal the base names to remove
 * are written to MAILDIR_JOURNAL (temporary file, fsync, rename, fsync of
 * the folder); it is removed once every file is gone.  A session that
 * finds it at login finishes the removals first.  So a crash at any point
 * leaves either nothing removed (the journal never became visible) or,
 * once the next session has run, everything removed.
 */
#define MAILDIR_JOURNAL		"evpop3d.pending"
#define MAILDIR_JOURNAL_TMP	"evpop3d.pending.tmp"
#define MAILDIR_JOURNAL_MAGIC	"evpop3d-pending 1\n"

/* Test hook: exit after this many removals (crash-safety tests). */
static long
maildir_fault_after(void)
{
	const char *v = getenv("EVPOP3D_FAULT_UPDATE_EXIT_AFTER");

	return v != NULL ? strtol(v, NULL, 10) : -1;
}

static int
maildir_journal_write(int mfd, const struct mailbox *mb)
{
	FILE *f;
	size_t i;
	int saved;

	if ((f = util_tmp_open_at(mfd, MAILDIR_JOURNAL_TMP)) == NULL)
		return -1;
	fputs(MAILDIR_JOURNAL_MAGIC, f);
	if (mb->trash)
		fputs("mode trash\n", f);
	for (i = 0; i < mb->nmsgs; i++)
		if (mb->msgs[i].deleted)
			fprintf(f, "%.*s\n", (int)mb->msgs[i].base_len,
			    mb->msgs[i].name + MAILDIR_SUB_LEN);
	fputs(".\n", f);		/* complete: the last line is there */
	if (util_tmp_commit_at(mfd, f, MAILDIR_JOURNAL_TMP,
	    MAILDIR_JOURNAL) == -1)
		return -1;
	if (fsync(mfd) == -1 && errno != EINVAL) {
		saved = errno;
		unlinkat(mfd, MAILDIR_JOURNAL, 0);
		errno = saved;
		return -1;
	}
	return 0;
}

static int
maildir_cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Remove from sub/ every file whose base name is in the sorted names. */
static int
maildir_journal_apply(int mfd, const char *sub, char **names, size_t n,
    int trash)
{
	DIR *d;
	struct dirent *de;
	char base[NAME_MAX + 1], *key = base;
	size_t len;
	int fd, rc = 0, removed = 0;

	if ((fd = openat(mfd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return errno == ENOENT ? 0 : -1;
	if ((d = fdopendir(fd)) == NULL) {
		close(fd);
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		if (!maildir_is_message_name(de->d_name))
			continue;
		len = strcspn(de->d_name, ":");
		memcpy(base, de->d_name, len);
		base[len] = '\0';
		if (bsearch(&key, names, n, sizeof(*names),
		    maildir_cmp_str) == NULL)
			continue;
		if (maildir_remove_at(mfd, dirfd(d), de->d_name, trash) == -1 &&
		    errno != ENOENT)
			rc = -1;
		else
			removed = 1;
	}
	if (removed && fsync(dirfd(d)) == -1 && errno != EINVAL)
		rc = -1;
	closedir(d);
	return rc;
}

/*
 * At login, under the lock: finish an UPDATE that a crash interrupted.
 * Returns the number of base names it held (0 if none), or -1 if it could
 * not be completed (the login fails and nothing else is touched).
 */
static long
maildir_journal_replay(int mfd)
{
	char *text = NULL, **names = NULL, *p, *nl;
	size_t n = 0, cap = 0, len = 0;
	struct stat st;
	ssize_t r;
	int fd, complete = 0, trash = 0;
	long ret = -1;

	unlinkat(mfd, MAILDIR_JOURNAL_TMP, 0);	/* never became visible */
	fd = openat(mfd, MAILDIR_JOURNAL, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd == -1)
		return errno == ENOENT ? 0 : -1;
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) ||
	    (text = malloc((size_t)st.st_size + 1)) == NULL) {
		close(fd);
		return -1;
	}
	while (len < (size_t)st.st_size) {
		r = read(fd, text + len, (size_t)st.st_size - len);
		if (r == -1 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		len += (size_t)r;
	}
	close(fd);
	text[len] = '\0';
	if (strncmp(text, MAILDIR_JOURNAL_MAGIC,
	    strlen(MAILDIR_JOURNAL_MAGIC)) != 0)
		goto out;
	p = text + strlen(MAILDIR_JOURNAL_MAGIC);
	if (strncmp(p, "mode trash\n", 11) == 0) {
		trash = 1;
		p += 11;
	}
	for (; (nl = strchr(p, '\n')) != NULL; p = nl + 1) {
		*nl = '\0';
		if (strcmp(p, ".") == 0) {
			complete = 1;
			break;
		}
		if (*p == '\0' || strchr(p, '/') != NULL)
			goto out;
		if (n == cap) {
			char **nn;
			cap = cap == 0 ? 64 : cap * 2;
			if ((nn = reallocarray(names, cap, sizeof(*nn))) ==
			    NULL)
				goto out;
			names = nn;
		}
		names[n++] = p;
	}
	if (!complete)
		goto out;	/* renamed only when complete: not ours */
	if (n > 1)
		qsort(names, n, sizeof(*names), maildir_cmp_str);
	if (n > 0 && (maildir_journal_apply(mfd, "cur", names, n,
	    trash) == -1 ||
	    maildir_journal_apply(mfd, "new", names, n, trash) == -1))
		goto out;
	if (unlinkat(mfd, MAILDIR_JOURNAL, 0) == -1 && errno != ENOENT)
		goto out;
	ret = (long)n;
out:
	free(names);
	free(text);
	return ret;
}

/* Remove the marked messages, then make the removals durable. */
int
maildir_update(struct mailbox *mb, size_t *removed, size_t *failed)
{
	struct maildir_msg *msg;
	struct maildir_list list;
	char *rel;
	size_t i, nrem = 0, nfail = 0;
	int mfd, r, listed = 0, used_cur = 0, used_new = 0, ret = 0;
	int saved = 0, journal;
	long fault;

	if ((mfd = open(mb->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1) {
		saved = errno;
		for (i = 0; i < mb->nmsgs; i++)
			if (mb->msgs[i].deleted)
				nfail++;
		goto out;
	}
	/*
	 * Without room for the journal (a full disk) the removals still
	 * happen: they need no space, and a crash in between is then only
	 * as unsafe as in other servers.
	 */
	journal = maildir_journal_write(mfd, mb) == 0;
	fault = maildir_fault_after();
	for (i = 0; i < mb->nmsgs; i++) {
		msg = &mb->msgs[i];
		if (!msg->deleted)
			continue;
		if (fault >= 0 && (long)nrem >= fault)
			_exit(99);	/* simulated crash (tests only) */
		if (maildir_remove_rel(mfd, msg->name, mb->trash) == -1) {
			if (errno != ENOENT) {
				saved = errno;
				nfail++;
				continue;
			}
			/* Renamed by another reader?  Remove that file. */
			if (!listed) {
				if (maildir_list_cur(mb, &list) == -1) {
					saved = errno;
					nfail++;
					continue;
				}
				listed = 1;
			}
			r = maildir_find_listed(mb, i, &list, &rel);
			if (r == 1) {
				maildir_name_free(mb, msg->name);
				msg->name = rel;
				if (maildir_remove_rel(mfd, msg->name,
				    mb->trash) == -1 && errno != ENOENT)
					r = -1;
			}
			if (r == -1) {
				saved = errno;
				nfail++;
				continue;
			}
		}
		nrem++;
		if (strncmp(msg->name, "new/", MAILDIR_SUB_LEN) == 0)
			used_new = 1;
		else
			used_cur = 1;
	}
	if (listed)
		maildir_list_free(&list);
	if (used_cur && maildir_sync_dir(mfd, "cur") == -1) {
		saved = errno;
		ret = -1;
	}
	if (used_new && maildir_sync_dir(mfd, "new") == -1) {
		saved = errno;
		ret = -1;
	}
	/* Done.  After a failure (-ERR [SYS/TEMP] to the client) the
	 * journal goes too: the client was told, a later login must not
	 * act on it behind its back. */
	if (journal)
		unlinkat(mfd, MAILDIR_JOURNAL, 0);
	close(mfd);
out:
	if (removed != NULL)
		*removed = nrem;
	if (failed != NULL)
		*failed = nfail;
	if (nfail != 0)
		ret = -1;
	if (ret == -1)
		errno = saved;
	return ret;
}

#define MAILDIR_RETRIEVED	"evpop3d.retrieved"

long
maildir_note_retrieved(struct mailbox *mb, time_t now)
{
	char *path;
	FILE *f;
	size_t i;
	long n = 0;

	for (i = 0; i < mb->nmsgs; i++)
		if (mb->msgs[i].retrieved && !mb->msgs[i].deleted)
			n++;
	if (n == 0)
		return 0;
	if ((path = maildir_join(mb->path, "/", MAILDIR_RETRIEVED)) == NULL)
		return -1;
	f = fopen(path, "ae");
	free(path);
	if (f == NULL)
		return -1;
	for (i = 0; i < mb->nmsgs; i++)
		if (mb->msgs[i].retrieved && !mb->msgs[i].deleted)
			fprintf(f, "%lld %.*s\n", (long long)now,
			    (int)mb->msgs[i].base_len,
			    mb->msgs[i].name + MAILDIR_SUB_LEN);
	if (fclose(f) == EOF)
		return -1;
	return n;
}

long
maildir_expire(const char *dir, unsigned int days, time_t now, int trash)
{
	char *path = NULL, *tmp = NULL, *text = NULL, *p, *nl, *sp;
	char **names = NULL;
	size_t n = 0, cap = 0, len = 0;
	FILE *f = NULL;
	struct stat st;
	int mfd = -1, fd;
	long ret = -1;
	ssize_t r;

	if ((mfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return -1;
	fd = openat(mfd, MAILDIR_RETRIEVED, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd == -1) {
		close(mfd);
		return errno == ENOENT ? 0 : -1;
	}
	if (fstat(fd, &st) == -1 || (text = malloc((size_t)st.st_size + 1)) ==
	    NULL) {
		close(fd);
		goto out;
	}
	while (len < (size_t)st.st_size) {
		r = read(fd, text + len, (size_t)st.st_size - len);
		if (r <= 0)
			break;
		len += (size_t)r;
	}
	close(fd);
	text[len] = '\0';
	if ((tmp = maildir_join(dir, "/", MAILDIR_RETRIEVED ".tmp")) == NULL ||
	    (f = fopen(tmp, "we")) == NULL)
		goto out;
	/* Keep the lines not yet due; collect the names that are. */
	for (p = text; (nl = strchr(p, '\n')) != NULL; p = nl + 1) {
		long long t;

		*nl = '\0';
		if ((sp = strchr(p, ' ')) == NULL || sp[1] == '\0' ||
		    strchr(sp + 1, '/') != NULL)
			continue;
		t = strtoll(p, NULL, 10);
		if (now - t < (long long)days * 86400) {
			fprintf(f, "%s\n", p);
			continue;
		}
		if (n == cap) {
			char **nn;
			cap = cap == 0 ? 64 : cap * 2;
			if ((nn = reallocarray(names, cap, sizeof(*nn))) ==
			    NULL)
				goto out;
			names = nn;
		}
		names[n++] = sp + 1;
	}
	if (fclose(f) == EOF) {
		f = NULL;
		goto out;
	}
	f = NULL;
	if (n > 1)
		qsort(names, n, sizeof(*names), maildir_cmp_str);
	if (n > 0 && (maildir_journal_apply(mfd, "cur", names, n,
	    trash) == -1 || maildir_journal_apply(mfd, "new", names, n,
	    trash) == -1))
		goto out;
	if ((path = maildir_join(dir, "/", MAILDIR_RETRIEVED)) == NULL ||
	    rename(tmp, path) == -1)
		goto out;
	ret = (long)n;
out:
	if (f != NULL)
		fclose(f);
	if (ret == -1 && tmp != NULL)
		unlink(tmp);
	free(names);
	free(text);
	free(tmp);
	free(path);
	close(mfd);
	return ret;
}

void
maildir_set_trash(struct mailbox *mb, int trash)
{
	mb->trash = trash;
}

/* Call fn for every regular message file in the trash of dir (the
 * folder's descriptor, the name and its stat).  Returns how many fn
 * counted (fn returns 1 or 0), or -1 with errno; no trash counts as 0. */
static long
maildir_trash_each(const char *dir, int (*fn)(int, const char *,
    const struct stat *, void *), void *arg)
{
	char *path;
	DIR *d;
	struct dirent *de;
	struct stat st;
	long n = 0;

	if ((path = maildir_join(dir, "/", MAILDIR_TRASH)) == NULL)
		return -1;
	d = opendir(path);
	free(path);
	if (d == NULL)
		return errno == ENOENT ? 0 : -1;
	while ((de = readdir(d)) != NULL) {
		if (!maildir_is_message_name(de->d_name))
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) ==
		    -1 || !S_ISREG(st.st_mode))
			continue;
		n += fn(dirfd(d), de->d_name, &st, arg);
	}
	closedir(d);
	return n;
}

struct maildir_trash_lister {
	void	(*fn)(const char *, uint64_t, time_t, void *);
	void	*arg;
};

static int
maildir_trash_list_one(int dfd, const char *name, const struct stat *st,
    void *arg)
{
	struct maildir_trash_lister *l = arg;

	(void)dfd;
	if (l->fn != NULL)
		l->fn(name, (uint64_t)st->st_size, st->st_ctime, l->arg);
	return 1;
}

/*
 * Call fn for every message in the trash (name, its size on disk, and
 * when it was deleted: the rename set its ctime).  Returns the number of
 * entries, or -1 with errno (no trash yet counts as 0).
 */
long
maildir_trash_list(const char *dir, void (*fn)(const char *, uint64_t,
    time_t, void *), void *arg)
{
	struct maildir_trash_lister l = { fn, arg };

	return maildir_trash_each(dir, maildir_trash_list_one, &l);
}

/* The oldest deletion time a purge keeps. */
static int
maildir_trash_purge_one(int dfd, const char *name, const struct stat *st,
    void *arg)
{
	time_t limit = *(time_t *)arg;

	return st->st_ctime <= limit && unlinkat(dfd, name, 0) == 0;
}

/* Remove trash entries deleted more than days days before now. */
long
maildir_trash_purge(const char *dir, unsigned int days, time_t now)
{
	time_t limit = now - (time_t)days * 86400;

	return maildir_trash_each(dir, maildir_trash_purge_one, &limit);
}

/*
 * Put trash entries back into cur/: those whose base name is base, or all
 * when base is NULL.  A name already in cur/ is left in the trash.
 * Returns how many were restored, or -1 with errno.
 */
long
maildir_trash_restore(const char *dir, const char *base)
{
	char to[NAME_MAX + 8];
	DIR *d;
	struct dirent *de;
	int mfd, tfd;
	long n = 0;
	size_t len;

	if ((mfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return -1;
	if ((tfd = openat(mfd, MAILDIR_TRASH,
	    O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1) {
		close(mfd);
		return errno == ENOENT ? 0 : -1;
	}
	if ((d = fdopendir(tfd)) == NULL) {
		close(tfd);
		close(mfd);
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		if (!maildir_is_message_name(de->d_name))
			continue;
		len = strcspn(de->d_name, ":");
		if (base != NULL && (strlen(base) != len ||
		    strncmp(base, de->d_name, len) != 0))
			continue;
		snprintf(to, sizeof(to), "cur/%s", de->d_name);
		/* link() never replaces an existing message. */
		if (linkat(dirfd(d), de->d_name, mfd, to, 0) == 0) {
			unlinkat(dirfd(d), de->d_name, 0);
			n++;
		}
	}
	closedir(d);
	close(mfd);
	return n;
}

/* RFC 2449 LOGIN-DELAY: the time of the last login is the mtime of
 * MAILDIR_LASTLOGIN in the Maildir's top folder (under the lock). */
#define MAILDIR_LASTLOGIN	"evpop3d.lastlogin"

int
maildir_login_delay(const char *dir, unsigned int delay, time_t now,
    long *wait)
{
	char *path;
	struct stat st;
	int fd;

	*wait = 0;
	if ((path = maildir_join(dir, "/", MAILDIR_LASTLOGIN)) == NULL)
		return -1;
	if (stat(path, &st) == 0 && st.st_mtime <= now &&
	    now - st.st_mtime < (time_t)delay) {
		*wait = (long)(delay - (now - st.st_mtime));
		free(path);
		return 1;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd != -1) {
		struct timespec ts[2] = { { now, 0 }, { now, 0 } };
		futimens(fd, ts);
		close(fd);
	}
	free(path);
	return 0;
}

void
maildir_free(struct mailbox *mb)
{
	size_t i;

	if (mb == NULL)
		return;
	for (i = 0; i < mb->nmsgs; i++)
		maildir_name_free(mb, mb->msgs[i].name);
	if (mb->block != NULL)
		sizecache_block_free(mb->block, mb->block_len);
	else
		free(mb->msgs);
	free(mb->path);
	free(mb);
}
