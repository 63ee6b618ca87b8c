/*
 * evpop3d - maildir.h: a session's snapshot of one Maildir.  Pure: no
 * libevent; safe to call from a worker thread (no global state).
 *
 * At login the mailbox is scanned once (cur/ and new/; tmp/, dot files and
 * anything that is not a regular file are ignored).  Messages found in new/
 * are moved to cur/ with ":2," appended, keeping their base name and so
 * their UIDL.  The snapshot then never changes except for deletion marks:
 * mail delivered during the session waits for the next one.
 */
#ifndef EVPOP3D_MAILDIR_H
#define EVPOP3D_MAILDIR_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* RFC 1939 section 7: a unique-id is 1 to 70 octets in 0x21..0x7E. */
#define MAILDIR_UIDL_MAX	70

struct mailbox;

struct maildir_msg {
	char		*name;		/* "cur/NAME:2,..." (or "new/NAME" when
					   cur/ already had that name) */
	char		 uidl[MAILDIR_UIDL_MAX + 1];
	uint64_t	 size;		/* octets as sent, before dot-stuffing */
	uint64_t	 raw_size;	/* octets of the file: checked when it is
					   opened, so a file rewritten in place
					   is refused, never sent with a wrong
					   size */
	uint64_t	 ino;		/* inode: with the base name, the key
					   of the size cache (sizecache.h) */
	size_t		 base_len;	/* octets of the base name */
	unsigned char	 dtype;		/* scan only: readdir's d_type */
	int		 deleted;	/* DELE mark; only QUIT acts on it */
	int		 retrieved;	/* RETR sent it whole (EXPIRE) */
};

/*
 * Make sure dir and its cur/ new/ tmp/ exist (creating missing ones, and
 * missing parents, with mode 0700).  Returns 0 or -1 with errno set.
 */
int	maildir_create(const char *dir);

/*
 * Scan the Maildir at dir into a new snapshot: move new/ messages to cur/,
 * compute every size with msgfmt, order messages by base name (delivery
 * order for standard names).  Unreadable files are left out (and counted
 * in *skipped if skipped is not NULL).  Returns 0, or -1 with errno set
 * and *errstr naming the failing step.  Call it with the mailbox lock
 * held: it rewrites the Maildir's index (sizecache.h), and when cur/ and
 * new/ provably did not change since that index was written it loads the
 * index instead of listing them, with exactly the same result.
 */
int	maildir_open(const char *dir, struct mailbox **mbp, size_t *skipped,
	    const char **errstr);

/* Did maildir_open take the snapshot from the index (1) or list the
 * directories (0)?  For logs and tests. */
int	maildir_from_index(const struct mailbox *);
struct migrate_opts;

/*
 * maildir_open, then (mo not NULL: a login) migrate_apply: messages
 * served before by another POP3 server keep its UIDLs and order
 * (migrate.h).  Same returns as maildir_open.
 */
int	maildir_open_migrate(const char *dir, struct mailbox **mbp,
	    size_t *skipped, const char **errstr,
	    const struct migrate_opts *mo);

/* Reorder the snapshot: message i becomes the old message perm[i] (perm
 * is a permutation of 0..count-1).  Returns 0, or -1 out of memory. */
int	maildir_reorder(struct mailbox *, const size_t *perm);

/* The Maildir's path as given to maildir_open. */
const char *maildir_path(const struct mailbox *);

/* Number of messages in the snapshot, deleted ones included. */
size_t	maildir_count(const struct mailbox *);

/* Message idx (0-based, < maildir_count). */
struct maildir_msg *maildir_msg(struct mailbox *, size_t idx);

/* Count and total size of the messages not marked deleted. */
void	maildir_stat(const struct mailbox *, size_t *count, uint64_t *octets);

/* Clear every deletion mark (RSET). */
void	maildir_unmark_all(struct mailbox *);

/*
 * Open message idx read-only.  If its file was renamed by another Maildir
 * reader (flags changed), it is found again in cur/ by base name.  Returns
 * a file descriptor, or -1 with errno (ENOENT: the message is gone;
 * ESTALE: its file was rewritten with another length since the scan, so
 * the size reported for it may be wrong; the index and size cache are
 * dropped).
 */
int	maildir_msg_open(struct mailbox *, size_t idx);

/*
 * UPDATE state (RFC 1939 section 6): remove exactly the marked messages
 * (a file already gone counts as removed; a renamed one is found by base
 * name), then fsync cur/ so the removals are durable.  *removed and
 * *failed count messages.  Returns 0 if every marked message is gone, -1
 * otherwise.
 */
int	maildir_update(struct mailbox *, size_t *removed, size_t *failed);

void	maildir_free(struct mailbox *);

/*
 * EXPIRE (RFC 2449 section 6.7).  maildir_note_retrieved appends the
 * retrieved, undeleted messages of a session that ended with QUIT, with
 * now, to evpop3d.retrieved; maildir_expire (at login, under the lock)
 * removes those retrieved at least days days before now (or into the
 * trash, with trash set).  Both return a count or -1 with errno.
 */
long	maildir_note_retrieved(struct mailbox *, time_t now);
long	maildir_expire(const char *dir, unsigned int days, time_t now,
	    int trash);

/* Soft delete (delete_mode trash): UPDATE moves removed messages into
 * the Maildir's evpop3d-trash/ folder instead of unlinking them. */
void	maildir_set_trash(struct mailbox *, int);

/* The trash of the Maildir at dir: list (fn called per entry with its
 * name, size and deletion time), purge entries older than days, restore
 * one base name (or all with base NULL) into cur/.  Each returns a count,
 * or -1 with errno. */
long	maildir_trash_list(const char *dir, void (*fn)(const char *,
	    uint64_t, time_t, void *), void *arg);
long	maildir_trash_purge(const char *dir, unsigned int days, time_t now);
long	maildir_trash_restore(const char *dir, const char *base);

/*
 * LOGIN-DELAY (RFC 2449): if the last login to the Maildir at dir was less
 * than delay seconds before now, return 1 with *wait the seconds left;
 * otherwise record now as the last login and return 0 (-1: out of
 * memory).  Call with the mailbox lock held.
 */
int	maildir_login_delay(const char *dir, unsigned int delay, time_t now,
	    long *wait);

/*
 * The UIDL for a base name (file name before ':'): the base name itself
 * when it is 1..70 octets of 0x21..0x7E and contains no ':', else "X:"
 * followed by 40 hex digits of the SHA-1 of the base name (a valid base
 * name never contains ':', so the two forms cannot collide).
 */
void	maildir_uidl(const char *base, size_t len,
	    char out[MAILDIR_UIDL_MAX + 1]);

/* Is name (a directory entry of cur/ or new/) a message file?  Not a dot
 * file, not empty, no '/'.  Returns 1 or 0. */
int	maildir_is_message_name(const char *name);

#endif /* EVPOP3D_MAILDIR_H */
