/*
 * SPDX-License-Identifier: ISC
 *
 * evpop3d - lock.c: one session per Maildir, within this process and
 * across processes and hosts sharing the storage.
 *
 * The registry (a mutex-protected hash of canonical Maildir paths) answers
 * for this process; an entry is reserved before the lock file is touched,
 * so two threads never race on the same file.  The lock file
 * "evpop3d.lock" holds "host pid starttime acquired\n" and is created the
 * NFS-safe way: write a uniquely named file, link() it to the lock name and
 * trust the link count of the unique file, not link()'s return value.  A
 * stale lock is first renamed aside to a unique name; only the taker whose
 * rename moved the very file it judged stale removes it, so two takers
 * cannot both win.  File I/O happens outside the mutex, except in
 * lock_refresh_all(), which keeps held locks from being freed under it.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/queue.h>
#include <sys/stat.h>
#ifdef HAVE_GETRANDOM
#include <sys/random.h>
#endif

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lock.h"
#include "log.h"
#include "params.h"

#define LOCK_REG_BUCKETS	1024	/* registry hash size, power of 2 */
#define LOCK_CONTENT_MAX	512	/* a longer lock file is not ours */
#define LOCK_HOST_MAX		255	/* host name in a lock file */
#define LOCK_CLIENT_MAX		63	/* client address in a lock file */
#define LOCK_ATTEMPTS		3	/* create, break stale, retry */
#define LOCK_STAT_MAX		4096	/* /proc/PID/stat buffer */

struct mbox_lock {
	char		*dir;		/* canonical Maildir path */
	char		*path;		/* dir/evpop3d.lock */
	dev_t		 dev;		/* our lock file, once held */
	ino_t		 ino;
	time_t		 since;
	pid_t		 pid;		/* process that took it */
	char		 client[LOCK_CLIENT_MAX + 1];	/* for [IN-USE] */
	int		 held;		/* file made, not released */
	unsigned int	 bucket;
	TAILQ_ENTRY(mbox_lock) entry;
};

TAILQ_HEAD(lock_list, mbox_lock);

/* A lock file as read from disk. */
struct lock_seen {
	char		 buf[LOCK_CONTENT_MAX];
	size_t		 len;
	int		 regular;	/* a regular file */
	struct stat	 st;
};

/* A lock file's parsed content. */
struct lock_info {
	char		 host[LOCK_HOST_MAX + 1];
	pid_t		 pid;
	unsigned long long starttime;
	long long	 acquired;
	char		 client[LOCK_CLIENT_MAX + 1];	/* "" if none */
};

static pthread_once_t	 lock_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t	 lock_mtx = PTHREAD_MUTEX_INITIALIZER;
static struct lock_list	 lock_reg[LOCK_REG_BUCKETS];
static size_t		 lock_nheld;
static pid_t		 lock_self_pid;		/* cached for this pid: */
static unsigned long long lock_self_start;	/* our start time */
static unsigned int	 lock_stale_sec = LOCK_STALE_SEC_DEFAULT;
static unsigned int	 lock_counter;		/* name uniqueness */

static void
lock_atfork_prepare(void)
{
	pthread_mutex_lock(&lock_mtx);
}

static void
lock_atfork_parent(void)
{
	pthread_mutex_unlock(&lock_mtx);
}

/* A forked child holds none of its parent's locks: forget them all. */
static void
lock_atfork_child(void)
{
	unsigned int i;

	for (i = 0; i < LOCK_REG_BUCKETS; i++)
		TAILQ_INIT(&lock_reg[i]);
	__atomic_store_n(&lock_nheld, 0, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&lock_mtx);
}

/* Once per process: empty registry, fork handlers. */
static void
lock_setup(void)
{
	unsigned int i;

	for (i = 0; i < LOCK_REG_BUCKETS; i++)
		TAILQ_INIT(&lock_reg[i]);
	pthread_atfork(lock_atfork_prepare, lock_atfork_parent,
	    lock_atfork_child);
}

/* Set the other-host stale timeout; 0 (unset in the conf) means default. */
void
lock_init(unsigned int stale_sec)
{
	pthread_once(&lock_once, lock_setup);
	if (stale_sec == 0)
		stale_sec = LOCK_STALE_SEC_DEFAULT;
	__atomic_store_n(&lock_stale_sec, stale_sec, __ATOMIC_RELAXED);
}

/* FNV-1a: spread canonical paths over the registry buckets. */
static unsigned int
lock_hash(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 16777619u;
	}
	return h & (LOCK_REG_BUCKETS - 1);
}

/* Find the registry entry for a canonical path (lock_mtx held). */
static struct mbox_lock *
lock_reg_find(const char *dir, unsigned int bucket)
{
	struct mbox_lock *lk;

	TAILQ_FOREACH(lk, &lock_reg[bucket], entry)
		if (strcmp(lk->dir, dir) == 0)
			return lk;
	return NULL;
}

/* Format "since" times as ISO 8601 UTC, the form the holder text uses. */
static void
lock_fmt_time(long long t, char *buf, size_t len)
{
	struct tm tm;
	time_t tt = (time_t)t;

	if (gmtime_r(&tt, &tm) == NULL ||
	    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, len, "@%lld", t);
}

/* Describe a lock's holder for the caller's -ERR [IN-USE] reply: who,
 * since when, and for which client address. */
static void
lock_holder(char *holder, size_t holderlen, const char *who, long pid,
    long long since, const char *client)
{
	char when[64];

	if (holder == NULL || holderlen == 0)
		return;
	lock_fmt_time(since, when, sizeof(when));
	snprintf(holder, holderlen, "%s pid %ld since %s%s%s", who, pid, when,
	    client != NULL && client[0] != '\0' ? " for client " : "",
	    client != NULL ? client : "");
}

static void
lock_holder_text(char *holder, size_t holderlen, const char *text)
{
	if (holder != NULL && holderlen > 0)
		snprintf(holder, holderlen, "%s", text);
}

/*
 * Read field 22 (starttime, clock ticks since boot) of /proc/PID/stat: with
 * the pid it names one process for the life of the system, so a recycled
 * pid is not mistaken for the lock's owner.  pid 0 means ourselves.
 */
static int
lock_proc_starttime(pid_t pid, unsigned long long *out, char *state)
{
	char path[64], buf[LOCK_STAT_MAX], *p, *end;
	ssize_t n;
	size_t len = 0;
	int fd, field;

	if (pid == 0)
		snprintf(path, sizeof(path), "/proc/self/stat");
	else
		snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return -1;
	while (len < sizeof(buf) - 1) {
		n = read(fd, buf + len, sizeof(buf) - 1 - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	buf[len] = '\0';
	/* Field 2 (comm) is in parentheses and may hold spaces or ')'. */
	if ((p = strrchr(buf, ')')) == NULL) {
		errno = EINVAL;
		return -1;
	}
	p++;
	if (state != NULL)
		*state = p[0] == ' ' ? p[1] : '?';	/* field 3 */
	for (field = 2; field < 22; field++) {
		if (*p != ' ') {
			errno = EINVAL;
			return -1;
		}
		p++;
		if (field + 1 < 22)
			p += strcspn(p, " ");
	}
	if (*p < '0' || *p > '9') {
		errno = EINVAL;
		return -1;
	}
	errno = 0;
	*out = strtoull(p, &end, 10);
	if (errno != 0 || (*end != ' ' && *end != '\n' && *end != '\0')) {
		errno = EINVAL;
		return -1;
	}
	return 0;
}

/* Our host name, reduced to characters that are safe in a file name. */
static void
lock_hostname(char *buf, size_t len)
{
	char *p;

	if (gethostname(buf, len) == -1)
		buf[0] = '\0';
	buf[len - 1] = '\0';
	for (p = buf; *p != '\0'; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || *p == '.' || *p == '-' ||
		    *p == '_'))
			*p = '_';
	if (buf[0] == '\0')
		snprintf(buf, len, "localhost");
}

/* 16 hex digits unique to this call, for temporary and stale names. */
static void
lock_random(char out[17])
{
	struct timespec ts;
	uint64_t r = 0;
	unsigned int c;

	c = __atomic_add_fetch(&lock_counter, 1, __ATOMIC_RELAXED);
#ifdef HAVE_GETRANDOM
	if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r))
		r = 0;
#endif
	if (r == 0) {
		clock_gettime(CLOCK_REALTIME, &ts);
		r = ((uint64_t)ts.tv_sec << 30) ^ (uint64_t)ts.tv_nsec;
	}
	r ^= (uint64_t)c * 0x9e3779b97f4a7c15ULL;
	snprintf(out, 17, "%016llx", (unsigned long long)r);
}

/* write() all of buf, across short writes and EINTR. */
static int
lock_write_all(int fd, const char *buf, size_t len)
{
	ssize_t n;

	while (len > 0) {
		if ((n = write(fd, buf, len)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * Fallback for file systems without hard links: O_EXCL on the lock name
 * itself.  Returns 0 created, 1 exists, -1 error (errno).
 */
static int
lock_file_create_excl(struct mbox_lock *lk, const char *content, size_t len)
{
	struct stat st;
	int fd, serrno;

	fd = open(lk->path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
	if (fd == -1)
		return errno == EEXIST ? 1 : -1;
	if (lock_write_all(fd, content, len) == -1 || fstat(fd, &st) == -1) {
		serrno = errno;
		close(fd);
		unlink(lk->path);
		errno = serrno;
		return -1;
	}
	if (close(fd) == -1) {
		serrno = errno;
		unlink(lk->path);
		errno = serrno;
		return -1;
	}
	lk->dev = st.st_dev;
	lk->ino = st.st_ino;
	return 0;
}

/*
 * Create the lock file through a unique temporary file and link(); the
 * link count of the temporary file says whether the link was made, even
 * when an NFS reply was lost.  Returns 0 created, 1 exists, -1 error.
 */
static int
lock_file_create(struct mbox_lock *lk, const char *host,
    unsigned long long start, time_t now)
{
	char content[LOCK_CONTENT_MAX], tmp[PATH_MAX], rnd[17];
	struct stat st;
	int fd, n, tries, wr, cr, lr, sr, lerrno, serrno;

	n = snprintf(content, sizeof(content), "%s %ld %llu %lld%s%s\n", host,
	    (long)lk->pid, start, (long long)now,
	    lk->client[0] != '\0' ? " " : "", lk->client);
	if (n < 0 || (size_t)n >= sizeof(content)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	for (tries = 0;; tries++) {
		lock_random(rnd);
		if ((size_t)snprintf(tmp, sizeof(tmp), "%s.%s.%ld.%s",
		    lk->path, host, (long)lk->pid, rnd) >= sizeof(tmp)) {
			errno = ENAMETOOLONG;
			return -1;
		}
		fd = open(tmp, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
		if (fd != -1)
			break;
		if (errno != EEXIST || tries >= 3)
			return -1;
	}
	wr = lock_write_all(fd, content, (size_t)n);
	serrno = errno;
	cr = close(fd);		/* NFS reports write errors at close */
	if (wr == -1 || cr == -1) {
		if (wr != -1)
			serrno = errno;
		unlink(tmp);
		errno = serrno;
		return -1;
	}

	lr = link(tmp, lk->path);
	lerrno = errno;
	sr = stat(tmp, &st);
	serrno = errno;
	unlink(tmp);
	if (sr == -1) {
		errno = serrno;
		return -1;
	}
	if (st.st_nlink == 2) {
		lk->dev = st.st_dev;
		lk->ino = st.st_ino;
		return 0;
	}
	if (lr == 0 || lerrno == EEXIST)
		return 1;
	if (lerrno == EPERM || lerrno == EOPNOTSUPP || lerrno == ENOSYS)
		return lock_file_create_excl(lk, content, (size_t)n);
	errno = lerrno;
	return -1;
}

/*
 * Read a lock file (never following a symlink, never blocking on a FIFO).
 * Returns 0, or -1 with errno (ENOENT: it is gone).
 */
static int
lock_file_read(const char *path, struct lock_seen *seen)
{
	ssize_t n;
	int fd, serrno;

	memset(seen, 0, sizeof(*seen));
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd == -1)
		return -1;
	if (fstat(fd, &seen->st) == -1) {
		serrno = errno;
		close(fd);
		errno = serrno;
		return -1;
	}
	seen->regular = S_ISREG(seen->st.st_mode);
	while (seen->regular && seen->len < sizeof(seen->buf)) {
		n = read(fd, seen->buf + seen->len,
		    sizeof(seen->buf) - seen->len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			serrno = errno;
			close(fd);
			errno = serrno;
			return -1;
		}
		if (n == 0)
			break;
		seen->len += (size_t)n;
	}
	close(fd);
	return 0;
}

/* Parse a decimal made of digits only, at most max. */
static int
lock_parse_num(const char *s, unsigned long long max, unsigned long long *out)
{
	unsigned long long v = 0;
	unsigned int d;

	if (*s == '\0')
		return -1;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		d = (unsigned int)(*s - '0');
		if (v > (max - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

/* Parse "host pid starttime acquired [client]\n" strictly.  Returns 0 or
 * -1. */
static int
lock_parse(const struct lock_seen *seen, struct lock_info *info)
{
	char buf[LOCK_CONTENT_MAX], *f[5], *p, *sp;
	unsigned long long v;
	size_t i, nf;

	if (!seen->regular || seen->len == 0 ||
	    seen->len >= sizeof(seen->buf) ||
	    seen->buf[seen->len - 1] != '\n' ||
	    memchr(seen->buf, '\0', seen->len) != NULL)
		return -1;
	memcpy(buf, seen->buf, seen->len - 1);
	buf[seen->len - 1] = '\0';
	p = buf;
	for (nf = 0; nf < 5; nf++) {
		f[nf] = p;
		if ((sp = strchr(p, ' ')) == NULL) {
			nf++;
			break;
		}
		*sp = '\0';
		p = sp + 1;
	}
	if (nf < 4 || sp != NULL)
		return -1;
	info->client[0] = '\0';
	if (nf == 5) {
		if (f[4][0] == '\0' || strlen(f[4]) > LOCK_CLIENT_MAX)
			return -1;
		for (i = 0; f[4][i] != '\0'; i++)
			if (f[4][i] < '!' || f[4][i] > '~')
				return -1;
		snprintf(info->client, sizeof(info->client), "%s", f[4]);
	}
	if (f[0][0] == '\0' || strlen(f[0]) > LOCK_HOST_MAX)
		return -1;
	for (p = f[0]; *p != '\0'; p++)
		if (*p < '!' || *p > '~')
			return -1;
	snprintf(info->host, sizeof(info->host), "%s", f[0]);
	if (lock_parse_num(f[1], INT_MAX, &v) == -1 || v == 0)
		return -1;
	info->pid = (pid_t)v;
	if (lock_parse_num(f[2], ULLONG_MAX, &info->starttime) == -1)
		return -1;
	if (lock_parse_num(f[3], LLONG_MAX, &v) == -1)
		return -1;
	info->acquired = (long long)v;
	return 0;
}

/* Do two reads show the same file with the same content? */
static int
lock_seen_same(const struct lock_seen *a, const struct lock_seen *b)
{
	return a->st.st_dev == b->st.st_dev && a->st.st_ino == b->st.st_ino &&
	    a->len == b->len && memcmp(a->buf, b->buf, a->len) == 0;
}

/* Is our pid's lock on this path held by another registry entry? */
static int
lock_reg_held_other(const struct mbox_lock *lk)
{
	struct mbox_lock *other;
	int held = 0;

	pthread_mutex_lock(&lock_mtx);
	TAILQ_FOREACH(other, &lock_reg[lk->bucket], entry)
		if (other != lk && other->held &&
		    strcmp(other->dir, lk->dir) == 0)
			held = 1;
	pthread_mutex_unlock(&lock_mtx);
	return held;
}

/*
 * Judge a lock file we could not replace.  Ours-host locks die with their
 * process (gone, or its pid reused by a process started at another time);
 * other hosts' locks and unreadable ones die when not refreshed in time.
 */
static int
lock_is_stale(const struct mbox_lock *lk, const struct lock_seen *seen,
    const struct lock_info *info, const char *myhost)
{
	unsigned long long start;
	long long age;
	char state;

	age = (long long)time(NULL) - (long long)seen->st.st_mtime;
	if (info == NULL || strcmp(info->host, myhost) != 0)
		return age > (long long)__atomic_load_n(&lock_stale_sec,
		    __ATOMIC_RELAXED);
	if (info->pid == getpid())
		return !lock_reg_held_other(lk);
	if (kill(info->pid, 0) == -1 && errno == ESRCH)
		return 1;
	/* Unreadable /proc (hidepid, other OS): trust kill() alone.  A
	 * zombie (a killed worker not yet reaped) holds nothing any more. */
	if (lock_proc_starttime(info->pid, &start, &state) == 0 &&
	    ((info->starttime != 0 && start != info->starttime) ||
	    state == 'Z' || state == 'X'))
		return 1;
	return 0;
}

/*
 * Take over a stale lock: rename it to a name only we know, then check the
 * renamed file is the one judged stale.  If another taker replaced it in
 * between, put theirs back (unless a newer lock exists already).  Returns 0
 * removed, 1 someone else's live lock (seen is updated), 2 gone or changed
 * already (judge again), -1 error.
 */
static int
lock_file_break(const struct mbox_lock *lk, struct lock_seen *seen,
    const char *host)
{
	struct lock_seen moved;
	struct stat st;
	char stale[PATH_MAX], rnd[17];

	lock_random(rnd);
	if ((size_t)snprintf(stale, sizeof(stale), "%s.stale.%s.%ld.%s",
	    lk->path, host, (long)lk->pid, rnd) >= sizeof(stale)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	/* Judging took time: make sure the file did not change since. */
	if (lstat(lk->path, &st) == -1)
		return errno == ENOENT ? 2 : -1;
	if (st.st_dev != seen->st.st_dev || st.st_ino != seen->st.st_ino ||
	    st.st_size != seen->st.st_size ||
	    st.st_mtim.tv_sec != seen->st.st_mtim.tv_sec ||
	    st.st_mtim.tv_nsec != seen->st.st_mtim.tv_nsec)
		return 2;
	if (rename(lk->path, stale) == -1)
		return errno == ENOENT ? 2 : -1;
	if (lock_file_read(stale, &moved) == -1) {
		if (errno == ENOENT)
			return 2;
		memset(&moved, 0, sizeof(moved));
	}
	if (lock_seen_same(seen, &moved)) {
		unlink(stale);
		return 0;
	}
	if (link(stale, lk->path) == -1 && errno != EEXIST)
		log_warn("lock: %s: cannot restore a replaced lock", lk->path);
	unlink(stale);
	*seen = moved;
	return 1;
}

/* Make the lock file exist and be ours, breaking a stale one. */
static enum lock_result
lock_file_take(struct mbox_lock *lk, unsigned long long start,
    char *holder, size_t holderlen)
{
	struct lock_seen seen;
	struct lock_info info;
	char host[LOCK_HOST_MAX + 1];
	int attempt, r, parsed;

	lock_hostname(host, sizeof(host));
	for (attempt = 0; attempt < LOCK_ATTEMPTS; attempt++) {
		r = lock_file_create(lk, host, start, lk->since);
		if (r == 0)
			return LOCK_OK;
		if (r == -1)
			return LOCK_ERROR;
		if (lock_file_read(lk->path, &seen) == -1) {
			if (errno == ENOENT)
				continue;	/* released meanwhile */
			return LOCK_ERROR;
		}
		parsed = lock_parse(&seen, &info) == 0;
		if (!lock_is_stale(lk, &seen, parsed ? &info : NULL, host))
			goto in_use;
		switch (lock_file_break(lk, &seen, host)) {
		case 0:
			if (parsed)
				log_info("lock: %s: took over stale lock of %s "
				    "pid %ld", lk->dir, info.host,
				    (long)info.pid);
			else
				log_info("lock: %s: took over stale lock "
				    "with unreadable content", lk->dir);
			continue;
		case 1:
			parsed = lock_parse(&seen, &info) == 0;
			goto in_use;
		case 2:
			continue;
		default:
			return LOCK_ERROR;
		}
	}
	lock_holder_text(holder, holderlen, "another server (contended)");
	return LOCK_IN_USE;

 in_use:
	if (parsed)
		lock_holder(holder, holderlen, info.host, (long)info.pid,
		    info.acquired, info.client);
	else
		lock_holder_text(holder, holderlen,
		    "unknown (unreadable lock file)");
	return LOCK_IN_USE;
}

static void
lock_free(struct mbox_lock *lk)
{
	free(lk->dir);
	free(lk->path);
	free(lk);
}

enum lock_result
lock_acquire(const char *dir, struct mbox_lock **lp, char *holder,
    size_t holderlen)
{
	return lock_acquire_for(dir, NULL, lp, holder, holderlen);
}

enum lock_result
lock_acquire_for(const char *dir, const char *client, struct mbox_lock **lp,
    char *holder, size_t holderlen)
{
	struct mbox_lock *lk, *other;
	enum lock_result r;
	unsigned long long start;
	int serrno;

	*lp = NULL;
	if (holder != NULL && holderlen > 0)
		holder[0] = '\0';
	pthread_once(&lock_once, lock_setup);

	if ((lk = calloc(1, sizeof(*lk))) == NULL)
		return LOCK_ERROR;
	if ((lk->dir = realpath(dir, NULL)) == NULL ||
	    asprintf(&lk->path, "%s/%s", lk->dir, LOCK_FILE_NAME) == -1) {
		serrno = errno;
		lk->path = NULL;
		lock_free(lk);
		errno = serrno;
		return LOCK_ERROR;
	}
	lk->bucket = lock_hash(lk->dir);
	lk->since = time(NULL);
	/* Printable and without blanks, or it is left out of the file. */
	if (client != NULL) {
		size_t i;

		for (i = 0; client[i] != '\0' && i < LOCK_CLIENT_MAX; i++) {
			if (client[i] < '!' || client[i] > '~')
				break;
			lk->client[i] = client[i];
		}
		if (client[i] != '\0')
			lk->client[0] = '\0';
		else
			lk->client[i] = '\0';
	}

	/* Reserve the path so no other thread of ours touches its file. */
	pthread_mutex_lock(&lock_mtx);
	if ((other = lock_reg_find(lk->dir, lk->bucket)) != NULL) {
		lock_holder(holder, holderlen, "this server",
		    (long)other->pid, (long long)other->since, other->client);
		pthread_mutex_unlock(&lock_mtx);
		lock_free(lk);
		return LOCK_IN_USE;
	}
	lk->pid = getpid();
	if (lock_self_pid != lk->pid) {
		if (lock_proc_starttime(0, &lock_self_start, NULL) == -1)
			lock_self_start = 0;
		lock_self_pid = lk->pid;
	}
	start = lock_self_start;
	TAILQ_INSERT_TAIL(&lock_reg[lk->bucket], lk, entry);
	pthread_mutex_unlock(&lock_mtx);

	r = lock_file_take(lk, start, holder, holderlen);
	serrno = errno;

	pthread_mutex_lock(&lock_mtx);
	if (r == LOCK_OK) {
		lk->held = 1;
		__atomic_add_fetch(&lock_nheld, 1, __ATOMIC_RELAXED);
	} else
		TAILQ_REMOVE(&lock_reg[lk->bucket], lk, entry);
	pthread_mutex_unlock(&lock_mtx);
	if (r != LOCK_OK) {
		lock_free(lk);
		errno = serrno;
		return r;
	}
	*lp = lk;
	return LOCK_OK;
}

/* Is the file at lk->path still the one we created? */
static int
lock_file_ours(const struct mbox_lock *lk)
{
	struct stat st;

	return stat(lk->path, &st) == 0 && st.st_dev == lk->dev &&
	    st.st_ino == lk->ino;
}

int
lock_refresh_all(void)
{
	struct mbox_lock *lk;
	unsigned int i;
	int lost = 0;

	pthread_once(&lock_once, lock_setup);
	pthread_mutex_lock(&lock_mtx);
	for (i = 0; i < LOCK_REG_BUCKETS; i++)
		TAILQ_FOREACH(lk, &lock_reg[i], entry) {
			if (!lk->held)
				continue;
			if (!lock_file_ours(lk) ||
			    utimensat(AT_FDCWD, lk->path, NULL, 0) == -1)
				lost++;
		}
	pthread_mutex_unlock(&lock_mtx);
	return lost;
}

void
lock_release(struct mbox_lock *lk)
{
	int mine;

	if (lk == NULL)
		return;
	pthread_once(&lock_once, lock_setup);

	/* A forked child's copy is not in its registry: only free it. */
	pthread_mutex_lock(&lock_mtx);
	mine = lk->pid == getpid() && lk->held;
	if (mine) {
		lk->held = 0;
		__atomic_sub_fetch(&lock_nheld, 1, __ATOMIC_RELAXED);
	}
	pthread_mutex_unlock(&lock_mtx);

	if (mine) {
		if (lock_file_ours(lk) && unlink(lk->path) == -1 &&
		    errno != ENOENT)
			log_warn("lock: %s: unlink", lk->path);
		pthread_mutex_lock(&lock_mtx);
		TAILQ_REMOVE(&lock_reg[lk->bucket], lk, entry);
		pthread_mutex_unlock(&lock_mtx);
	}
	lock_free(lk);
}

size_t
lock_count(void)
{
	/* Without the mutex: a refresh stalled on storage holds it, and
	 * the event loop asks this. */
	return __atomic_load_n(&lock_nheld, __ATOMIC_RELAXED);
}
