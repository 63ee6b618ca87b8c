/*
 * SPDX-License-Identifier: ISC
 *
 * evpop3d unit tests - lock: the in-process registry, the lock file shared
 * with other processes (forked children stand in for other servers), stale
 * lock detection and takeover, refresh and release.  Files are aged with
 * utimensat() instead of sleeping.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lock.h"
#include "params.h"
#include "tests.h"

#define TLOCK_THREADS	8
#define TLOCK_RACERS	4

/*
 * Fault injection.  This file defines rename() and link(), which the
 * executable's lock.o then calls instead of libc's: with no fault armed
 * they pass straight through to the system calls.  Armed (one shot), they
 * let a test play "another server" at the exact moment between the lock
 * module's check and its action, and make link() lie as it may on NFS.
 */
enum tlock_fault {
	TLOCK_NONE,
	TLOCK_RENAME_REPLACED,	/* replaced just before rename-aside */
	TLOCK_RENAME_REPLACED2,	/* ... and a third lock made after */
	TLOCK_LINK_LOST_REPLY,	/* link() succeeds but reports EIO */
	TLOCK_LINK_FALSE_OK	/* link() fails but reports success */
};

static volatile enum tlock_fault tlock_fault;
static const char tlock_fresh[] = "otherhost.invalid 77 1 1700000000\n";
static const char tlock_third[] = "thirdhost.invalid 88 1 1700000000\n";

int	rename(const char *, const char *);
int	link(const char *, const char *);

static int
tlock_sys_rename(const char *from, const char *to)
{
#ifdef SYS_renameat2
	long r = syscall(SYS_renameat2, AT_FDCWD, from, AT_FDCWD, to, 0);

	if (r != -1 || errno != ENOSYS)
		return (int)r;
#endif
#ifdef SYS_renameat
	return (int)syscall(SYS_renameat, AT_FDCWD, from, AT_FDCWD, to);
#else
	errno = ENOSYS;
	return -1;
#endif
}

static int
tlock_sys_link(const char *from, const char *to)
{
	return (int)syscall(SYS_linkat, AT_FDCWD, from, AT_FDCWD, to, 0);
}

/* Replace the file at path atomically with content (as another server). */
static void
tlock_replace(const char *path, const char *content)
{
	char tmp[PATH_MAX];

	snprintf(tmp, sizeof(tmp), "%s.other", path);
	if (test_write_file(tmp, content, strlen(content)) == 0)
		tlock_sys_rename(tmp, path);
}

int
rename(const char *from, const char *to)
{
	enum tlock_fault f = tlock_fault;
	size_t n = strlen(LOCK_FILE_NAME);
	int r;

	if ((f != TLOCK_RENAME_REPLACED && f != TLOCK_RENAME_REPLACED2) ||
	    strlen(from) < n || strcmp(from + strlen(from) - n,
	    LOCK_FILE_NAME) != 0)
		return tlock_sys_rename(from, to);
	tlock_fault = TLOCK_NONE;
	tlock_replace(from, tlock_fresh);
	r = tlock_sys_rename(from, to);
	if (f == TLOCK_RENAME_REPLACED2)
		test_write_file(from, tlock_third, strlen(tlock_third));
	return r;
}

int
link(const char *from, const char *to)
{
	enum tlock_fault f = tlock_fault;
	int r;

	if (f != TLOCK_LINK_LOST_REPLY && f != TLOCK_LINK_FALSE_OK)
		return tlock_sys_link(from, to);
	tlock_fault = TLOCK_NONE;
	r = tlock_sys_link(from, to);
	if (f == TLOCK_LINK_LOST_REPLY && r == 0) {
		errno = EIO;
		return -1;
	}
	errno = 0;
	return 0;
}

/* A fresh temporary directory, as a malloc'ed path. */
static char *
tlock_mkdir(void)
{
	char *p = strdup(test_tmpdir());

	if (p == NULL)
		abort();
	return p;
}

static void
tlock_rmdir(char *dir)
{
	test_rmtree(dir);
	free(dir);
}

static void
tlock_path(char *buf, size_t len, const char *dir)
{
	snprintf(buf, len, "%s/%s", dir, LOCK_FILE_NAME);
}

/* Read a small file into buf (NUL-terminated); returns length or -1. */
static ssize_t
tlock_read(const char *path, char *buf, size_t len)
{
	ssize_t n;
	int fd;

	if ((fd = open(path, O_RDONLY)) == -1)
		return -1;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n >= 0)
		buf[n] = '\0';
	return n;
}

/* Number of directory entries other than "." and "..". */
static int
tlock_entries(const char *dir)
{
	struct dirent *de;
	DIR *d;
	int n = 0;

	if ((d = opendir(dir)) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 &&
		    strcmp(de->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

/* Set a file's mtime (and atime) to now - age seconds. */
static int
tlock_age(const char *path, long age)
{
	struct timespec ts[2];

	ts[0].tv_sec = time(NULL) - age;
	ts[0].tv_nsec = 0;
	ts[1] = ts[0];
	return utimensat(AT_FDCWD, path, ts, 0);
}

static time_t
tlock_mtime(const char *path)
{
	struct stat st;

	if (stat(path, &st) == -1)
		return (time_t)-1;
	return st.st_mtime;
}

/* Copy a string, truncating it to fit dst. */
static void
tlock_copy(char *dst, size_t len, const char *src)
{
	size_t n = strnlen(src, len - 1);

	memcpy(dst, src, n);
	dst[n] = '\0';
}

/* Field 22 of /proc/PID/stat, as the lock file records it. */
static unsigned long long
tlock_starttime(pid_t pid)
{
	char path[64], buf[4096], *p;
	int field;

	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	if (tlock_read(path, buf, sizeof(buf)) <= 0 ||
	    (p = strrchr(buf, ')')) == NULL)
		return 0;
	/* Field 2 ends at the last ')'; step over fields 3 to 21. */
	for (field = 2; field < 22; field++) {
		if ((p = strchr(p, ' ')) == NULL)
			return 0;
		p++;
	}
	return strtoull(p, NULL, 10);
}

/* The host name the lock module writes, learnt from a lock file. */
static void
tlock_myhost(char *host, size_t len)
{
	struct mbox_lock *lk;
	char *dir, path[PATH_MAX], buf[512];

	host[0] = '\0';
	dir = tlock_mkdir();
	if (lock_acquire(dir, &lk, NULL, 0) == LOCK_OK) {
		tlock_path(path, sizeof(path), dir);
		if (tlock_read(path, buf, sizeof(buf)) > 0) {
			buf[strcspn(buf, " ")] = '\0';
			tlock_copy(host, len, buf);
		}
		lock_release(lk);
	}
	tlock_rmdir(dir);
}

/*
 * Run lock_acquire(dir) in a forked child (another server process).  The
 * child reports the result and holder text through a pipe, then releases
 * the lock unless keep is set, and exits.  Returns the result.
 */
static int
tlock_child(const char *dir, int keep, char *holder, size_t holderlen)
{
	struct mbox_lock *lk;
	char msg[300];
	int p[2], status;
	enum lock_result r;
	ssize_t n;
	pid_t pid;

	if (pipe(p) == -1)
		return -100;
	if ((pid = fork()) == -1)
		return -100;
	if (pid == 0) {
		close(p[0]);
		memset(msg, 0, sizeof(msg));
		r = lock_acquire(dir, &lk, msg + 1, sizeof(msg) - 1);
		msg[0] = (char)(r + 10);
		n = write(p[1], msg, sizeof(msg));
		if (!keep)
			lock_release(lk);
		_exit(n == (ssize_t)sizeof(msg) ? 0 : 1);
	}
	close(p[1]);
	n = read(p[0], msg, sizeof(msg));
	close(p[0]);
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
	    WEXITSTATUS(status) != 0 || n != (ssize_t)sizeof(msg))
		return -100;
	msg[sizeof(msg) - 1] = '\0';
	if (holder != NULL)
		tlock_copy(holder, holderlen, msg + 1);
	return msg[0] - 10;
}

static void
test_lock_basic(void)
{
	struct mbox_lock *lk, *lk2;
	char *dir, path[PATH_MAX], buf[512], want[64], holder[256];
	size_t base;
	char host[256];
	long pid;
	unsigned long long start, acquired;
	time_t before;

	lock_init(LOCK_STALE_SEC_DEFAULT);
	base = lock_count();
	dir = tlock_mkdir();
	tlock_path(path, sizeof(path), dir);

	before = time(NULL);
	CU_ASSERT_EQUAL_FATAL(lock_acquire(dir, &lk, holder, sizeof(holder)),
	    LOCK_OK);
	CU_ASSERT_PTR_NOT_NULL_FATAL(lk);
	CU_ASSERT_EQUAL(lock_count(), base + 1);

	/* "HOST PID STARTTIME ACQUIRED\n" */
	CU_ASSERT(tlock_read(path, buf, sizeof(buf)) > 0);
	CU_ASSERT_EQUAL(sscanf(buf, "%255s %ld %llu %llu", host, &pid,
	    &start, &acquired), 4);
	CU_ASSERT_EQUAL(pid, (long)getpid());
	CU_ASSERT(acquired >= (unsigned long long)before &&
	    acquired <= (unsigned long long)time(NULL));
	CU_ASSERT(start == 0 || start == tlock_starttime(getpid()));
	CU_ASSERT(buf[strlen(buf) - 1] == '\n');
	/* No temporary file is left behind. */
	CU_ASSERT_EQUAL(tlock_entries(dir), 1);

	/* Second session of this process: IN-USE, with a holder text. */
	lk2 = (struct mbox_lock *)1;
	CU_ASSERT_EQUAL(lock_acquire(dir, &lk2, holder, sizeof(holder)),
	    LOCK_IN_USE);
	CU_ASSERT_PTR_NULL(lk2);
	snprintf(want, sizeof(want), "this server pid %ld since ",
	    (long)getpid());
	CU_ASSERT_EQUAL(strncmp(holder, want, strlen(want)), 0);
	CU_ASSERT(strlen(holder) == strlen(want) + 20 &&
	    holder[strlen(holder) - 1] == 'Z');
	/* holder may be NULL */
	CU_ASSERT_EQUAL(lock_acquire(dir, &lk2, NULL, 0), LOCK_IN_USE);
	CU_ASSERT_EQUAL(lock_count(), base + 1);

	lock_release(lk);
	CU_ASSERT_EQUAL(lock_count(), base);
	CU_ASSERT_EQUAL(access(path, F_OK), -1);
	CU_ASSERT_EQUAL(tlock_entries(dir), 0);

	CU_ASSERT_EQUAL_FATAL(lock_acquire(dir, &lk, NULL, 0), LOCK_OK);
	CU_ASSERT_EQUAL(access(path, F_OK), 0);
	lock_release(lk);
	CU_ASSERT_EQUAL(access(path, F_OK), -1);
	lock_release(NULL);
	CU_ASSERT_EQUAL(lock_count(), base);

	/* A Maildir that does not exist is an error, not IN-USE. */
	snprintf(buf, sizeof(buf), "%s/nonexistent", dir);
	lk = (struct mbox_lock *)1;
	CU_ASSERT_EQUAL(lock_acquire(buf, &lk, NULL, 0), LOCK_ERROR);
	CU_ASSERT_PTR_NULL(lk);
	CU_ASSERT_EQUAL(lock_count(), base);
	tlock_rmdir(dir);
}

static void
test_lock_spellings(void)
{
	struct mbox_lock *lk, *lk2;
	char *base, real[PATH_MAX], lnk[PATH_MAX], alt[PATH_MAX];
	char holder[256];

	base = tlock_mkdir();
	snprintf(real, sizeof(real), "%s/real", base);
	CU_ASSERT_EQUAL_FATAL(mkdir(real, 0700), 0);
	snprintf(real, sizeof(real), "%s/real/mbox", base);
	CU_ASSERT_EQUAL_FATAL(mkdir(real, 0700), 0);
	snprintf(lnk, sizeof(lnk), "%s/link", base);
	CU_ASSERT_EQUAL_FATAL(symlink("real", lnk), 0);

	CU_ASSERT_EQUAL_FATAL(lock_acquire(real, &lk, NULL, 0), LOCK_OK);
	snprintf(alt, sizeof(alt), "%s/real/./mbox", base);
	CU_ASSERT_EQUAL(lock_acquire(alt, &lk2, holder, sizeof(holder)),
	    LOCK_IN_USE);
	CU_ASSERT_PTR_NOT_NULL(strstr(holder, "this server"));
	snprintf(alt, sizeof(alt), "%s/link/mbox", base);
	CU_ASSERT_EQUAL(lock_acquire(alt, &lk2, NULL, 0), LOCK_IN_USE);
	snprintf(alt, sizeof(alt), "%s/link/../real/mbox/", base);
	CU_ASSERT_EQUAL(lock_acquire(alt, &lk2, NULL, 0), LOCK_IN_USE);
	lock_release(lk);

	/* And the other way round. */
	snprintf(alt, sizeof(alt), "%s/link/mbox", base);
	CU_ASSERT_EQUAL_FATAL(lock_acquire(alt, &lk, NULL, 0), LOCK_OK);
	CU_ASSERT_EQUAL(lock_acquire(real, &lk2, NULL, 0), LOCK_IN_USE);
	lock_release(lk);
	CU_ASSERT_EQUAL(lock_count(), 0);
	tlock_rmdir(base);
}

struct tlock_race {
	const char		*dir;
	pthread_barrier_t	*barrier;
	enum lock_result	 r;
	struct mbox_lock	*lk;
};

static void *
tlock_thread(void *arg)
{
	struct tlock_race *t = arg;

	pthread_barrier_wait(t->barrier);
	t->r = lock_acquire(t->dir, &t->lk, NULL, 0);
	return NULL;
}

static void
test_lock_threads(void)
{
	struct tlock_race t[TLOCK_THREADS];
	pthread_t th[TLOCK_THREADS];
	pthread_barrier_t barrier;
	char *dir;
	int i, ok = 0, inuse = 0;

	dir = tlock_mkdir();
	pthread_barrier_init(&barrier, NULL, TLOCK_THREADS);
	for (i = 0; i < TLOCK_THREADS; i++) {
		t[i].dir = dir;
		t[i].barrier = &barrier;
		t[i].lk = NULL;
		CU_ASSERT_FATAL(pthread_create(&th[i], NULL, tlock_thread,
		    &t[i]) == 0);
	}
	for (i = 0; i < TLOCK_THREADS; i++) {
		pthread_join(th[i], NULL);
		if (t[i].r == LOCK_OK)
			ok++;
		else if (t[i].r == LOCK_IN_USE)
			inuse++;
	}
	pthread_barrier_destroy(&barrier);
	CU_ASSERT_EQUAL(ok, 1);
	CU_ASSERT_EQUAL(inuse, TLOCK_THREADS - 1);
	CU_ASSERT_EQUAL(lock_count(), 1);
	for (i = 0; i < TLOCK_THREADS; i++)
		lock_release(t[i].lk);
	CU_ASSERT_EQUAL(lock_count(), 0);
	CU_ASSERT_EQUAL(tlock_entries(dir), 0);
	tlock_rmdir(dir);
}

static void
test_lock_other_process(void)
{
	struct mbox_lock *lk;
	char *dir, path[PATH_MAX], holder[256], want[300], host[256];

	tlock_myhost(host, sizeof(host));
	dir = tlock_mkdir();
	tlock_path(path, sizeof(path), dir);
	CU_ASSERT_EQUAL_FATAL(lock_acquire(dir, &lk, NULL, 0), LOCK_OK);

	/* The child does not share our registry: the lock file stops it. */
	CU_ASSERT_EQUAL(tlock_child(dir, 0, holder, sizeof(holder)),
	    LOCK_IN_USE);
	snprintf(want, sizeof(want), "%s pid %ld since ", host,
	    (long)getpid());
	CU_ASSERT_EQUAL(strncmp(holder, want, strlen(want)), 0);
	CU_ASSERT_PTR_NULL(strstr(holder, "this server"));
	/* The refused child left our lock file alone. */
	CU_ASSERT_EQUAL(tlock_entries(dir), 1);
	CU_ASSERT_EQUAL(lock_refresh_all(), 0);

	lock_release(lk);
	CU_ASSERT_EQUAL(tlock_child(dir, 0, NULL, 0), LOCK_OK);
	/* The child released its lock on its way out. */
	CU_ASSERT_EQUAL(access(path, F_OK), -1);
	CU_ASSERT_EQUAL(tlock_entries(dir), 0);
	tlock_rmdir(dir);
}

static void
test_lock_dead_process(void)
{
	struct mbox_lock *lk;
	char *dir, path[PATH_MAX], buf[512], want[64];
	long pid;

	dir = tlock_mkdir();
	tlock_path(path, sizeof(path), dir);
	/* The child takes the lock and dies without releasing it. */
	CU_ASSERT_EQUAL_FATAL(tlock_child(dir, 1, NULL, 0), LOCK_OK);
	CU_ASSERT_FATAL(tlock_read(path, buf, sizeof(buf)) > 0);
	CU_ASSERT_EQUAL(sscanf(buf, "%*s %ld", &pid), 1);
	CU_ASSERT(pid != (long)getpid());

	/* Its lock file is fresh, but its owner is gone: broken at once. */
	CU_ASSERT_EQUAL_FATAL(lock_acquire(dir, &lk, NULL, 0), LOCK_OK);
	CU_ASSERT(tlock_read(path, buf, sizeof(buf)) > 0);
	snprintf(want, sizeof(want), " %ld ", (long)getpid());
	CU_ASSERT_PTR_NOT_NULL(strstr(buf, want));
	/* No renamed-aside or temporary file is left. */
	CU_ASSERT_EQUAL(tlock_entries(dir), 1);
	lock_release(lk);
	CU_ASSERT_EQUAL(tlock_entries(dir), 0);
	tlock_rmdir(dir);
}

static void
test_lock_same_host(void)
{
	struct mbox_lock *lk;
	char *dir, path[PATH_MAX], host[256], buf[512], want[300];
	char holder[256];
	unsigned long long pstart;
	pid_t ppid = getppid();

	tlock_myhost(host, sizeof(host));
	dir = tlock_mkdir();
	tlock_path(path, sizeof(path), dir);

	/* Our own pid but not in our registry: a leftover, stale. */
	snprintf(buf, sizeof(buf), "%s %ld %llu %lld\n", host,
	    (long)getpid(), tlock_starttime(getpid()),
	    (long long)time(NULL));
	CU_ASSERT_FATAL(test_write_file(path, buf, strlen(buf)) == 0);
	CU_ASSERT_EQUAL_FATAL(lock_acquire(dir, &lk, NULL, 0), LOCK_OK);
	lock_release(lk);
	CU_ASSERT_EQUAL(tlock_entries(dir), 0);

	/* A live process of this host (our parent) holds it. */
	if ((pstart = tlock_starttime(ppid)) == 0) {
		/* /proc hides other processes here: nothing more to test. */
		tlock_rmdir(dir);
		return;
	}
	snprintf(buf, sizeof(buf), "%s %ld %llu 1700000000\n", host,
	    (long)ppid, pstart);
	CU_ASSERT_FATAL(test_write_file(path, buf, strlen(buf)) == 0);
	CU_ASSERT_FATAL(tlock_age(path, 100000) == 0);
	CU_ASSERT_EQUAL(lock_acquire(dir, &lk, holder, sizeof(holder)),
	    LOCK_IN_USE);
	snprintf(want, sizeof(want), "%s pid %ld since 2023-11-14T22:13:20Z",
	    host, (long)ppid);
	CU_ASSERT_STRING_EQUAL(holder, want);

	/* The same pid started at another time: the pid was reused. */
	snprintf(buf, sizeof(buf), "%s %ld %llu 1700000000\n", host,
	    (long)ppid, pstart + 1);
	CU_ASSERT_FATAL(test_write_file(path, buf, strlen(buf)) == 0);
	CU_ASSERT_EQUAL_FATAL(lock_acquire(dir, &lk, NULL, 0), LOCK_OK);
	CU_ASSERT_EQUAL(tlock_entries(dir), 1);
	lock_release(lk);
	tlock_rmdir(dir);
}

static void
test_lock_other_host(void)
{
	static const char other[] = "otherhost.invalid 4242 777 1700000000\n";
	struct mbox_lock *lk;
	char *dir, path[PATH_MAX], buf[512], holder[256], want[64];

	dir = tlock_mkdir();
	tlock_path(path, sizeof(path), dir);
	CU_ASSERT_FATAL(test_write_file(path, other, strlen(other)) == 0);

	lock_init(300);
	lk = (struct mbox_lock *)1;
	CU_ASSERT_EQUAL(lock_acquire(dir, &lk, holder, sizeof(holder)),
	    LOCK_IN_USE);
	CU_ASSERT_PTR_NULL(lk);
	CU_ASSERT_STRING_EQUAL(holder,
	    "otherhost.invalid pid 4242 since 2023-11-14T22:13:20Z");

	/* Older than a longer timeout allows: still in use. */
	lock_init(1000);
	CU_ASSERT_FATAL(tlock_age(path, 400) == 0);
	CU_ASSERT_EQUAL(lock_acquire(dir, &lk, NULL, 0), LOCK_IN_USE);
	CU_ASSERT(tlock_read(path, buf, sizeof(buf)) > 0);
	CU_ASSERT_STRING_EQUAL(buf, other);

	/* Not refreshed within the stale timeout: taken over. */
	lock_init(300);
	CU_ASSERT_EQUAL_FATAL(lock_acquire(dir, &lk, NULL, 0), LOCK_OK);
	CU_ASSERT(tlock_read(path, buf, sizeof(buf)) > 0);
	snprintf(want, sizeof(want), " %ld ", (long)getpid());
	CU_ASSERT_PTR_NOT_NULL(strstr(buf, want));
	CU_ASSERT_PTR_NULL(strstr(buf, "otherhost"));
	CU_ASSERT_EQUAL(tlock_entries(dir), 1);
	lock_release(lk);
	CU_ASSERT_EQUAL(tlock_entries(dir), 0);
	lock_init(LOCK_STALE_SEC_DEFAULT);
	tlock_rmdir(dir);
}

/* [IN-USE] says since when and for which client the mailbox is held,
 * within this process and through the lock file. */
static void
test_lock_client(void)
{
	struct mbox_lock *a, *b;
	char *dir, path[PATH_MAX], holder[256];

	lock_init(300);
	dir = tlock_mkdir();
	tlock_path(path, sizeof(path), dir);
	CU_ASSERT_EQUAL_FATAL(lock_acquire_for(dir, "203.0.113.7:51000", &a,
	    NULL, 0), LOCK_OK);
	CU_ASSERT_EQUAL(lock_acquire_for(dir, "198.51.100.1:1", &b, holder,
	    sizeof(holder)), LOCK_IN_USE);
	CU_ASSERT(strstr(holder, "for client 203.0.113.7:51000") != NULL);
	CU_ASSERT(strstr(holder, " since 20") != NULL);
	lock_release(a);
	/* Another host's lock naming its client. */
	{
		const char *t = "node-b.invalid 42 7 1700000000 "
		    "[2001:db8::1]:4000\n";
		CU_ASSERT_FATAL(test_write_file(path, t, strlen(t)) == 0);
	}
	CU_ASSERT_EQUAL(lock_acquire(dir, &b, holder, sizeof(holder)),
	    LOCK_IN_USE);
	CU_ASSERT_STRING_EQUAL(holder, "node-b.invalid pid 42 since "
	    "2023-11-14T22:13:20Z for client [2001:db8::1]:4000");
	unlink(path);
	test_rmtree(dir);
	free(dir);
}

static void
test_lock_garbage(void)
{
	static const char *const junk[] = {
		"garbage\n",
		"",				/* crashed before writing */
		"host 12",			/* half-written */
		"host 0 1 2\n",			/* pid 0 */
		"host -5 1 2\n",
		"host 5 1 2 192.0.2.1:5 x\n",	/* extra field */
		"host 5 1 2 \n",		/* empty client */
		"host 5 1 99999999999999999999999\n",
	};
	struct mbox_lock *lk;
	char *dir, path[PATH_MAX], holder[256];
	size_t i;

	lock_init(300);
	dir = tlock_mkdir();
	tlock_path(path, sizeof(path), dir);
	for (i = 0; i < sizeof(junk) / sizeof(junk[0]); i++) {
		CU_ASSERT_FATAL(test_write_file(path, junk[i],
		    strlen(junk[i])) == 0);
		/* Fresh: maybe a lock being written right now. */
		CU_ASSERT_EQUAL(lock_acquire(dir, &lk, holder,
		    sizeof(holder)), LOCK_IN_USE);
		CU_ASSERT_STRING_EQUAL(holder,
		    "unknown (unreadable lock file)");
		/* Old: a crash's leftover. */
		CU_ASSERT_FATAL(tlock_age(path, 301) == 0);
		CU_ASSERT_EQUAL_FATAL(lock_acquire(dir, &lk, NULL, 0),
		    LOCK_OK);
		CU_ASSERT_EQUAL(tlock_entries(dir), 1);
		lock_release(lk);
		CU_ASSERT_EQUAL(tlock_entries(dir), 0);
	}
	lock_init(LOCK_STALE_SEC_DEFAULT);
	tlock_rmdir(dir);
}

static void
test_lock_refresh(void)
{
	struct mbox_lock *lk, *lk2;
	char *dir, *dir2, path[PATH_MAX], path2[PATH_MAX];
	time_t old, before;

	dir = tlock_mkdir();
	dir2 = tlock_mkdir();
	tlock_path(path, sizeof(path), dir);
	tlock_path(path2, sizeof(path2), dir2);
	CU_ASSERT_EQUAL_FATAL(lock_acquire(dir, &lk, NULL, 0), LOCK_OK);
	CU_ASSERT_EQUAL_FATAL(lock_acquire(dir2, &lk2, NULL, 0), LOCK_OK);
	CU_ASSERT_EQUAL(lock_count(), 2);

	CU_ASSERT_FATAL(tlock_age(path, 1000) == 0);
	CU_ASSERT_FATAL(tlock_age(path2, 1000) == 0);
	old = tlock_mtime(path);
	before = time(NULL);
	CU_ASSERT_EQUAL(lock_refresh_all(), 0);
	CU_ASSERT(tlock_mtime(path) >= before);
	CU_ASSERT(tlock_mtime(path2) >= before);

	/* Someone removed one lock file: reported, nothing recreated. */
	CU_ASSERT_FATAL(unlink(path2) == 0);
	CU_ASSERT_FATAL(tlock_age(path, 1000) == 0);
	CU_ASSERT_EQUAL(lock_refresh_all(), 1);
	CU_ASSERT(tlock_mtime(path) >= before);
	CU_ASSERT_EQUAL(access(path2, F_OK), -1);
	CU_ASSERT(old < before);
	lock_release(lk2);
	lock_release(lk);
	CU_ASSERT_EQUAL(lock_refresh_all(), 0);
	CU_ASSERT_EQUAL(lock_count(), 0);
	tlock_rmdir(dir);
	tlock_rmdir(dir2);
}

static void
test_lock_replaced(void)
{
	static const char other[] = "otherhost.invalid 99 1 1700000000\n";
	struct mbox_lock *lk;
	char *dir, path[PATH_MAX], tmp[PATH_MAX], buf[512];

	dir = tlock_mkdir();
	tlock_path(path, sizeof(path), dir);
	snprintf(tmp, sizeof(tmp), "%s/replacement", dir);
	CU_ASSERT_EQUAL_FATAL(lock_acquire(dir, &lk, NULL, 0), LOCK_OK);

	/* Another server broke our lock and holds its own now. */
	CU_ASSERT_FATAL(test_write_file(tmp, other, strlen(other)) == 0);
	CU_ASSERT_FATAL(rename(tmp, path) == 0);
	CU_ASSERT_FATAL(tlock_age(path, 50) == 0);
	CU_ASSERT_EQUAL(lock_refresh_all(), 1);
	/* ... and its mtime is left alone. */
	CU_ASSERT(tlock_mtime(path) <= time(NULL) - 49);

	lock_release(lk);
	CU_ASSERT_EQUAL(lock_count(), 0);
	CU_ASSERT(tlock_read(path, buf, sizeof(buf)) > 0);
	CU_ASSERT_STRING_EQUAL(buf, other);
	tlock_rmdir(dir);
}

static void
test_lock_replaced_while_breaking(void)
{
	static const char stale[] = "otherhost.invalid 4242 777 1600000000\n";
	struct mbox_lock *lk;
	char *dir, path[PATH_MAX], buf[512], holder[256];

	lock_init(300);
	dir = tlock_mkdir();
	tlock_path(path, sizeof(path), dir);

	/*
	 * We judge the lock stale; before our rename another server breaks
	 * it and takes a fresh one.  Our rename moves the fresh lock: we
	 * must see it is not the file we judged, put it back, say IN-USE.
	 */
	CU_ASSERT_FATAL(test_write_file(path, stale, strlen(stale)) == 0);
	CU_ASSERT_FATAL(tlock_age(path, 1000) == 0);
	tlock_fault = TLOCK_RENAME_REPLACED;
	CU_ASSERT_EQUAL(lock_acquire(dir, &lk, holder, sizeof(holder)),
	    LOCK_IN_USE);
	CU_ASSERT_EQUAL(tlock_fault, TLOCK_NONE);
	CU_ASSERT_STRING_EQUAL(holder,
	    "otherhost.invalid pid 77 since 2023-11-14T22:13:20Z");
	CU_ASSERT(tlock_read(path, buf, sizeof(buf)) > 0);
	CU_ASSERT_STRING_EQUAL(buf, tlock_fresh);
	CU_ASSERT_EQUAL(tlock_entries(dir), 1);

	/* Same, but a third server locked it before we could put it back:
	 * the third one's lock stays, nothing is left over. */
	CU_ASSERT_FATAL(test_write_file(path, stale, strlen(stale)) == 0);
	CU_ASSERT_FATAL(tlock_age(path, 1000) == 0);
	tlock_fault = TLOCK_RENAME_REPLACED2;
	CU_ASSERT_EQUAL(lock_acquire(dir, &lk, NULL, 0), LOCK_IN_USE);
	CU_ASSERT(tlock_read(path, buf, sizeof(buf)) > 0);
	CU_ASSERT_STRING_EQUAL(buf, tlock_third);
	CU_ASSERT_EQUAL(tlock_entries(dir), 1);
	CU_ASSERT_EQUAL(lock_count(), 0);
	tlock_fault = TLOCK_NONE;
	lock_init(LOCK_STALE_SEC_DEFAULT);
	tlock_rmdir(dir);
}

static void
test_lock_link_lies(void)
{
	static const char other[] = "otherhost.invalid 4242 777 1700000000\n";
	struct mbox_lock *lk;
	char *dir, path[PATH_MAX], buf[512], want[64];

	dir = tlock_mkdir();
	tlock_path(path, sizeof(path), dir);

	/* NFS: the link was made but its reply was lost (EIO). */
	tlock_fault = TLOCK_LINK_LOST_REPLY;
	CU_ASSERT_EQUAL_FATAL(lock_acquire(dir, &lk, NULL, 0), LOCK_OK);
	CU_ASSERT_EQUAL(tlock_fault, TLOCK_NONE);
	CU_ASSERT(tlock_read(path, buf, sizeof(buf)) > 0);
	snprintf(want, sizeof(want), " %ld ", (long)getpid());
	CU_ASSERT_PTR_NOT_NULL(strstr(buf, want));
	CU_ASSERT_EQUAL(tlock_entries(dir), 1);
	lock_release(lk);
	CU_ASSERT_EQUAL(tlock_entries(dir), 0);

	/* link() claims success but another server's lock is there. */
	CU_ASSERT_FATAL(test_write_file(path, other, strlen(other)) == 0);
	tlock_fault = TLOCK_LINK_FALSE_OK;
	CU_ASSERT_EQUAL(lock_acquire(dir, &lk, NULL, 0), LOCK_IN_USE);
	CU_ASSERT_EQUAL(tlock_fault, TLOCK_NONE);
	CU_ASSERT(tlock_read(path, buf, sizeof(buf)) > 0);
	CU_ASSERT_STRING_EQUAL(buf, other);
	CU_ASSERT_EQUAL(tlock_entries(dir), 1);
	tlock_fault = TLOCK_NONE;
	tlock_rmdir(dir);
}

/*
 * Several processes race for one Maildir (empty, then holding a stale lock
 * of another host): exactly one wins.  Each child holds its result until
 * the parent closes the "finish" pipe, so no winner leaves early.
 */
static int
tlock_race_processes(const char *dir)
{
	struct mbox_lock *lk;
	pid_t pids[TLOCK_RACERS];
	int go[2], res[2], fin[2], i, ok = 0, inuse = 0, status;
	char c;
	enum lock_result r;

	if (pipe(go) == -1 || pipe(res) == -1 || pipe(fin) == -1)
		return -1;
	for (i = 0; i < TLOCK_RACERS; i++) {
		if ((pids[i] = fork()) == -1)
			return -1;
		if (pids[i] == 0) {
			close(go[1]);
			close(res[0]);
			close(fin[1]);
			if (read(go[0], &c, 1) != 1)
				_exit(1);
			r = lock_acquire(dir, &lk, NULL, 0);
			c = (char)(r + 10);
			if (write(res[1], &c, 1) != 1)
				_exit(1);
			(void)read(fin[0], &c, 1);	/* EOF: finish */
			if (r == LOCK_OK)
				lock_release(lk);
			_exit(0);
		}
	}
	close(go[0]);
	close(res[1]);
	close(fin[0]);
	for (i = 0; i < TLOCK_RACERS; i++)
		if (write(go[1], "g", 1) != 1)
			break;
	close(go[1]);
	for (i = 0; i < TLOCK_RACERS; i++) {
		if (read(res[0], &c, 1) != 1)
			break;
		if (c - 10 == LOCK_OK)
			ok++;
		else if (c - 10 == LOCK_IN_USE)
			inuse++;
	}
	close(fin[1]);
	close(res[0]);
	for (i = 0; i < TLOCK_RACERS; i++)
		if (waitpid(pids[i], &status, 0) != pids[i] ||
		    !WIFEXITED(status) || WEXITSTATUS(status) != 0)
			return -1;
	return ok == 1 && inuse == TLOCK_RACERS - 1 ? 0 : -1;
}

static void
test_lock_race(void)
{
	static const char other[] = "otherhost.invalid 4242 777 1700000000\n";
	char *dir, path[PATH_MAX];
	int round;

	lock_init(300);
	dir = tlock_mkdir();
	tlock_path(path, sizeof(path), dir);
	for (round = 0; round < 3; round++) {
		CU_ASSERT_EQUAL(tlock_race_processes(dir), 0);
		CU_ASSERT_EQUAL(tlock_entries(dir), 0);
		/* Next round: every racer finds a stale lock to break. */
		CU_ASSERT_FATAL(test_write_file(path, other,
		    strlen(other)) == 0);
		CU_ASSERT_FATAL(tlock_age(path, 1000) == 0);
		CU_ASSERT_EQUAL(tlock_race_processes(dir), 0);
		CU_ASSERT_EQUAL(tlock_entries(dir), 0);
	}
	lock_init(LOCK_STALE_SEC_DEFAULT);
	tlock_rmdir(dir);
}

void
test_lock_register(void)
{
	CU_pSuite s;

	s = CU_add_suite("lock", NULL, NULL);
	CU_add_test(s, "client in the holder text", test_lock_client);
	CU_add_test(s, "acquire, in-use, release", test_lock_basic);
	CU_add_test(s, "two spellings of one Maildir", test_lock_spellings);
	CU_add_test(s, "threads race", test_lock_threads);
	CU_add_test(s, "another process", test_lock_other_process);
	CU_add_test(s, "dead process's lock", test_lock_dead_process);
	CU_add_test(s, "same-host pid checks", test_lock_same_host);
	CU_add_test(s, "other host's lock", test_lock_other_host);
	CU_add_test(s, "unreadable lock file", test_lock_garbage);
	CU_add_test(s, "refresh", test_lock_refresh);
	CU_add_test(s, "release keeps a replaced lock", test_lock_replaced);
	CU_add_test(s, "lock replaced while breaking",
	    test_lock_replaced_while_breaking);
	CU_add_test(s, "link() lies (NFS)", test_lock_link_lies);
	CU_add_test(s, "processes race", test_lock_race);
}
