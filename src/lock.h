/*
 * evpop3d - lock.h: one session per mailbox.  Pure (no libevent) and
 * thread-safe: called from worker threads.
 *
 * Two layers.  An in-process registry (mutex-protected) answers at once for
 * sessions of this process.  A lock file "evpop3d.lock" in the Maildir's top
 * folder excludes other evpop3d processes and other hosts sharing the
 * storage.  It is created NFS-safely: write a uniquely named temporary file,
 * link() it to evpop3d.lock, and trust the link count rather than link()'s
 * return value.  It holds "host pid starttime acquired-time [client]\n".  A lock is
 * stale when its owner is on this host and that process is gone (or the pid
 * now belongs to a process started at another time), or when it is on
 * another host and its mtime has not been refreshed for the stale timeout.
 * A stale lock is taken over by renaming it aside first, so two takers
 * cannot both win.
 */
#ifndef EVPOP3D_LOCK_H
#define EVPOP3D_LOCK_H

#include <stddef.h>

#define LOCK_FILE_NAME	"evpop3d.lock"

enum lock_result {
	LOCK_OK = 0,
	LOCK_IN_USE = 1,	/* held by a live session (here or elsewhere) */
	LOCK_ERROR = -1		/* could not create the lock file (errno) */
};

struct mbox_lock;

/* Set the stale timeout for other hosts' locks (seconds).  Call once at
 * startup (and again on reload); safe before any lock exists. */
void	lock_init(unsigned int stale_sec);

/*
 * Lock the Maildir at dir (which must exist).  On LOCK_OK *lp is the new
 * lock.  On LOCK_IN_USE holder (if not NULL) describes the holder, e.g.
 * "host.example pid 1234 since 2026-11-22T10:00:00Z for client
 * 203.0.113.7:51000".
 */
enum lock_result lock_acquire(const char *dir, struct mbox_lock **lp,
	    char *holder, size_t holderlen);

/* The same, recording the client address (e.g. "203.0.113.7:51000") in
 * the lock, so that a refused session learns since when and for which
 * client the mailbox is held. */
enum lock_result lock_acquire_for(const char *dir, const char *client,
	    struct mbox_lock **lp, char *holder, size_t holderlen);

/*
 * Touch every lock file this process holds so other hosts see it is alive.
 * Returns the number of locks that could not be refreshed (their file was
 * removed or replaced by someone else: logged by the caller).
 */
int	lock_refresh_all(void);

/* Release: remove the lock file if it is still ours, drop the registry
 * entry, free.  NULL is a no-op. */
void	lock_release(struct mbox_lock *);

/* Number of locks held by this process (for tests and shutdown checks). */
size_t	lock_count(void);

#endif /* EVPOP3D_LOCK_H */
