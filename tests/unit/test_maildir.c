/*
 * evpop3d unit tests - test_maildir.c: Maildir snapshots (maildir.h) on
 * real temporary directories: what a scan serves and in which order, new/
 * delivery into cur/, sizes, UIDLs, following renamed files, and that
 * UPDATE removes exactly the marked messages.
 */
#include "config.h"

#include <sys/stat.h>

#include <sys/wait.h>
#include <dirent.h>
#include <errno.h>
#include <time.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <CUnit/CUnit.h>

#include "maildir.h"
#include "msgfmt.h"
#include "sizecache.h"
#include "tests.h"

/* The test's temporary root and its Maildir. */
static char	tmd_root[512];
static char	tmd_dir[600];

/* Fresh empty Maildir under a new temporary directory. */
static void
tmd_setup(void)
{
	snprintf(tmd_root, sizeof(tmd_root), "%s", test_tmpdir());
	snprintf(tmd_dir, sizeof(tmd_dir), "%s/Maildir", tmd_root);
	CU_ASSERT_EQUAL_FATAL(maildir_create(tmd_dir), 0);
}

static void
tmd_teardown(void)
{
	test_rmtree(tmd_root);
}

/* Path of rel ("cur/NAME") inside the Maildir (static buffer). */
static const char *
tmd_path(const char *rel)
{
	static char p[2][1024];
	static int which;

	which = !which;
	snprintf(p[which], sizeof(p[which]), "%s/%s", tmd_dir, rel);
	return p[which];
}

static void
tmd_put(const char *rel, const char *content)
{
	CU_ASSERT_EQUAL_FATAL(test_write_file(tmd_path(rel), content,
	    strlen(content)), 0);
}

static int
tmd_exists(const char *rel)
{
	struct stat st;

	return lstat(tmd_path(rel), &st) == 0;
}

/* Open the test Maildir; fatal on failure. */
static struct mailbox *
tmd_open(size_t *skipped)
{
	struct mailbox *mb = NULL;
	const char *es = NULL;

	CU_ASSERT_EQUAL_FATAL(maildir_open(tmd_dir, &mb, skipped, &es), 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(mb);
	return mb;
}

/* Read all of fd (closing it) into buf; returns the length. */
static size_t
tmd_read_fd(int fd, char *buf, size_t max)
{
	ssize_t n;
	size_t len = 0;

	while (len < max - 1 && (n = read(fd, buf + len, max - 1 - len)) > 0)
		len += n;
	buf[len] = '\0';
	close(fd);
	return len;
}

static void
test_maildir_create(void)
{
	char base[512], dir[700], sub[800], file[800];
	struct stat st;
	const char *subs[] = { "", "/cur", "/new", "/tmp" };
	size_t i;

	snprintf(base, sizeof(base), "%s", test_tmpdir());
	snprintf(dir, sizeof(dir), "%s/a/b//c/", base);
	CU_ASSERT_EQUAL(maildir_create(dir), 0);
	for (i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
		snprintf(sub, sizeof(sub), "%s/a/b/c%s", base, subs[i]);
		CU_ASSERT(stat(sub, &st) == 0 && S_ISDIR(st.st_mode) &&
		    (st.st_mode & 0777) == 0700);
	}
	snprintf(sub, sizeof(sub), "%s/a", base);
	CU_ASSERT(stat(sub, &st) == 0 && (st.st_mode & 0777) == 0700);
	/* Again: nothing to do, still fine. */
	CU_ASSERT_EQUAL(maildir_create(dir), 0);
	/* A file in the way. */
	snprintf(file, sizeof(file), "%s/file", base);
	CU_ASSERT_EQUAL(test_write_file(file, "x", 1), 0);
	snprintf(sub, sizeof(sub), "%s/file/Maildir", base);
	errno = 0;
	CU_ASSERT_EQUAL(maildir_create(sub), -1);
	CU_ASSERT_EQUAL(errno, ENOTDIR);
	CU_ASSERT_EQUAL(maildir_create(file), -1);
	test_rmtree(base);
}

static void
test_maildir_names(void)
{
	CU_ASSERT_FALSE(maildir_is_message_name(""));
	CU_ASSERT_FALSE(maildir_is_message_name("."));
	CU_ASSERT_FALSE(maildir_is_message_name(".."));
	CU_ASSERT_FALSE(maildir_is_message_name(".hidden"));
	CU_ASSERT_FALSE(maildir_is_message_name("a/b"));
	CU_ASSERT_TRUE(maildir_is_message_name("1.2.host"));
	CU_ASSERT_TRUE(maildir_is_message_name("1.2.host:2,S"));
}

static void
test_maildir_missing(void)
{
	struct mailbox *mb = NULL;
	const char *es = NULL;
	char dir[700];

	snprintf(dir, sizeof(dir), "%s/nonexistent", test_tmpdir());
	errno = 0;
	CU_ASSERT_EQUAL(maildir_open(dir, &mb, NULL, &es), -1);
	CU_ASSERT_EQUAL(errno, ENOENT);
	CU_ASSERT_PTR_NOT_NULL(es);
	CU_ASSERT_PTR_NULL(mb);
	*strrchr(dir, '/') = '\0';
	test_rmtree(dir);
}

static void
test_maildir_scan(void)
{
	struct mailbox *mb;
	struct maildir_msg *m;
	size_t skipped = 99;
	char target[1024];

	tmd_setup();
	tmd_put("cur/1001.B.host:2,S", "b\n");
	tmd_put("cur/1000.A.host:2,", "a\n");
	tmd_put("new/1002.C.host", "c\n");
	tmd_put("new/1004.E.host:2,F", "e\n");
	tmd_put("tmp/0999.T.host", "t\n");
	tmd_put("cur/.hidden", "h\n");
	tmd_put("new/.dot", "d\n");
	CU_ASSERT_EQUAL(mkdir(tmd_path("cur/0998.D.host"), 0700), 0);
	CU_ASSERT_EQUAL(mkdir(tmd_path("new/0997.D.host"), 0700), 0);
	snprintf(target, sizeof(target), "%s", tmd_path("tmp/0999.T.host"));
	CU_ASSERT_EQUAL(symlink(target, tmd_path("cur/0996.L.host")), 0);
	CU_ASSERT_EQUAL(symlink(target, tmd_path("new/0995.L.host")), 0);

	mb = tmd_open(&skipped);
	CU_ASSERT_EQUAL(skipped, 0);
	CU_ASSERT_STRING_EQUAL(maildir_path(mb), tmd_dir);
	CU_ASSERT_EQUAL_FATAL(maildir_count(mb), 4);
	m = maildir_msg(mb, 0);
	CU_ASSERT_STRING_EQUAL(m->name, "cur/1000.A.host:2,");
	CU_ASSERT_STRING_EQUAL(m->uidl, "1000.A.host");
	CU_ASSERT_EQUAL(m->size, 3);
	CU_ASSERT_FALSE(m->deleted);
	CU_ASSERT_STRING_EQUAL(maildir_msg(mb, 1)->name,
	    "cur/1001.B.host:2,S");
	CU_ASSERT_STRING_EQUAL(maildir_msg(mb, 1)->uidl, "1001.B.host");
	/* Delivered: moved to cur/ with ":2,", same UIDL. */
	CU_ASSERT_STRING_EQUAL(maildir_msg(mb, 2)->name,
	    "cur/1002.C.host:2,");
	CU_ASSERT_STRING_EQUAL(maildir_msg(mb, 2)->uidl, "1002.C.host");
	CU_ASSERT_STRING_EQUAL(maildir_msg(mb, 3)->name,
	    "cur/1004.E.host:2,F");
	CU_ASSERT_STRING_EQUAL(maildir_msg(mb, 3)->uidl, "1004.E.host");
	CU_ASSERT_FALSE(tmd_exists("new/1002.C.host"));
	CU_ASSERT_FALSE(tmd_exists("new/1004.E.host:2,F"));
	CU_ASSERT_TRUE(tmd_exists("cur/1002.C.host:2,"));
	CU_ASSERT_TRUE(tmd_exists("cur/1004.E.host:2,F"));
	/* Left alone: tmp/, dot files, directories, symbolic links. */
	CU_ASSERT_TRUE(tmd_exists("tmp/0999.T.host"));
	CU_ASSERT_TRUE(tmd_exists("new/.dot"));
	CU_ASSERT_TRUE(tmd_exists("new/0997.D.host"));
	CU_ASSERT_TRUE(tmd_exists("new/0995.L.host"));
	maildir_free(mb);

	/* A second scan sees the same messages and UIDLs. */
	mb = tmd_open(NULL);
	CU_ASSERT_EQUAL(maildir_count(mb), 4);
	if (maildir_count(mb) == 4)
		CU_ASSERT_STRING_EQUAL(maildir_msg(mb, 2)->uidl,
		    "1002.C.host");
	maildir_free(mb);
	tmd_teardown();
}

static void
test_maildir_sizes(void)
{
	static const char *const bodies[] = {
		"Subject: lf\n\nline\n.dot\n",
		"Subject: crlf\r\n\r\nline\r\n",
		"Subject: none\n\nno final newline",
		"",
		"lone\rcr\r",
	};
	static const uint64_t want[] = { 27, 23, 35, 0, 10 };
	struct mailbox *mb;
	char rel[64];
	size_t i, n = sizeof(bodies) / sizeof(bodies[0]);
	uint64_t total = 0, octets;
	size_t count;
	unsigned char *big;
	const size_t bign = 200000;
	uint32_t x;

	tmd_setup();
	for (i = 0; i < n; i++) {
		snprintf(rel, sizeof(rel), "cur/%zu.x:2,", 100 + i);
		tmd_put(rel, bodies[i]);
	}
	/* Bigger than the read buffer, with CRLFs across its boundaries. */
	if ((big = malloc(bign)) == NULL)
		abort();
	for (i = 0, x = 1; i < bign; i++) {
		x = x * 1103515245 + 12345;
		big[i] = "\r\n.ab\n"[(x >> 16) % 6];
	}
	big[65535] = '\r';
	big[65536] = '\n';
	big[bign - 1] = 'z';
	CU_ASSERT_EQUAL(test_write_file(tmd_path("new/200.big"), big, bign),
	    0);
	mb = tmd_open(NULL);
	CU_ASSERT_EQUAL_FATAL(maildir_count(mb), n + 1);
	for (i = 0; i < n; i++) {
		CU_ASSERT_EQUAL(maildir_msg(mb, i)->size, want[i]);
		CU_ASSERT_EQUAL(maildir_msg(mb, i)->size,
		    msgfmt_size((const unsigned char *)bodies[i],
		    strlen(bodies[i])));
		total += want[i];
	}
	CU_ASSERT_EQUAL(maildir_msg(mb, n)->size, msgfmt_size(big, bign));
	CU_ASSERT(maildir_msg(mb, n)->size > bign + 2);	/* bare LFs */
	total += msgfmt_size(big, bign);
	maildir_stat(mb, &count, &octets);
	CU_ASSERT_EQUAL(count, n + 1);
	CU_ASSERT_EQUAL(octets, total);
	free(big);
	maildir_free(mb);
	tmd_teardown();
}

static void
test_maildir_order(void)
{
	static const char *const files[] = {
		"cur/b:2,", "cur/a0:2,", "new/c", "cur/a:2,S", "cur/10:2,",
		"cur/9:2,",
	};
	static const char *const want[] = {
		"10", "9", "a", "a0", "b", "c",
	};
	struct mailbox *mb;
	size_t i;

	tmd_setup();
	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		tmd_put(files[i], files[i]);
	mb = tmd_open(NULL);
	CU_ASSERT_EQUAL_FATAL(maildir_count(mb), 6);
	/* By base name: "a" before "a0" although "a:" > "a0". */
	for (i = 0; i < 6; i++)
		CU_ASSERT_STRING_EQUAL(maildir_msg(mb, i)->uidl, want[i]);
	maildir_free(mb);
	tmd_teardown();
}

static void
test_maildir_duplicates(void)
{
	struct mailbox *mb;
	struct maildir_msg *m;
	char buf[64];

	tmd_setup();
	tmd_put("cur/X1:2,", "old\n");
	tmd_put("new/X1", "new message\n");
	tmd_put("cur/Y:2,", "y1\n");
	tmd_put("cur/Y:2,S", "y2\n");
	mb = tmd_open(NULL);
	CU_ASSERT_EQUAL_FATAL(maildir_count(mb), 4);
	/* cur/ never overwritten; the new one is served from new/. */
	m = maildir_msg(mb, 0);
	CU_ASSERT_STRING_EQUAL(m->name, "cur/X1:2,");
	CU_ASSERT_STRING_EQUAL(m->uidl, "X1");
	CU_ASSERT_EQUAL(m->size, 5);
	m = maildir_msg(mb, 1);
	CU_ASSERT_STRING_EQUAL(m->name, "new/X1");
	CU_ASSERT_STRING_EQUAL(m->uidl,
	    "X:8e22e5be62b27aa8586f3004838973d4b50ff1a0");
	CU_ASSERT_EQUAL(m->size, 13);
	CU_ASSERT_TRUE(tmd_exists("new/X1"));
	CU_ASSERT_EQUAL(tmd_read_fd(open(tmd_path("cur/X1:2,"), O_RDONLY),
	    buf, sizeof(buf)), 4);
	CU_ASSERT_STRING_EQUAL(buf, "old\n");
	CU_ASSERT_EQUAL(tmd_read_fd(maildir_msg_open(mb, 1), buf,
	    sizeof(buf)), 12);
	CU_ASSERT_STRING_EQUAL(buf, "new message\n");
	/* Same base twice in cur/: the first keeps the plain UIDL. */
	CU_ASSERT_STRING_EQUAL(maildir_msg(mb, 2)->uidl, "Y");
	CU_ASSERT_STRING_EQUAL(maildir_msg(mb, 2)->name, "cur/Y:2,");
	CU_ASSERT_EQUAL(strncmp(maildir_msg(mb, 3)->uidl, "X:", 2), 0);
	CU_ASSERT_EQUAL(strlen(maildir_msg(mb, 3)->uidl), 42);
	CU_ASSERT_STRING_NOT_EQUAL(maildir_msg(mb, 3)->uidl,
	    maildir_msg(mb, 1)->uidl);
	maildir_free(mb);
	tmd_teardown();
}

static void
test_maildir_marks(void)
{
	struct mailbox *mb;
	size_t count;
	uint64_t octets;

	tmd_setup();
	tmd_put("cur/1:2,", "one\n");		/* 5 */
	tmd_put("cur/2:2,", "two two\n");	/* 9 */
	tmd_put("cur/3:2,", "three\n");		/* 7 */
	mb = tmd_open(NULL);
	maildir_stat(mb, &count, &octets);
	CU_ASSERT_EQUAL(count, 3);
	CU_ASSERT_EQUAL(octets, 21);
	maildir_msg(mb, 1)->deleted = 1;
	maildir_stat(mb, &count, &octets);
	CU_ASSERT_EQUAL(count, 2);
	CU_ASSERT_EQUAL(octets, 12);
	maildir_msg(mb, 0)->deleted = 1;
	maildir_msg(mb, 2)->deleted = 1;
	maildir_stat(mb, &count, &octets);
	CU_ASSERT_EQUAL(count, 0);
	CU_ASSERT_EQUAL(octets, 0);
	/* Marks change nothing else. */
	CU_ASSERT_EQUAL(maildir_count(mb), 3);
	maildir_unmark_all(mb);
	CU_ASSERT_FALSE(maildir_msg(mb, 0)->deleted);
	CU_ASSERT_FALSE(maildir_msg(mb, 1)->deleted);
	CU_ASSERT_FALSE(maildir_msg(mb, 2)->deleted);
	maildir_stat(mb, &count, &octets);
	CU_ASSERT_EQUAL(count, 3);
	CU_ASSERT_EQUAL(octets, 21);
	maildir_free(mb);
	tmd_teardown();
}

static void
test_maildir_update(void)
{
	struct mailbox *mb;
	size_t removed = 99, failed = 99;

	tmd_setup();
	tmd_put("cur/1:2,", "1\n");
	tmd_put("cur/2:2,", "2\n");
	tmd_put("cur/3:2,", "3\n");
	tmd_put("cur/4:2,", "4\n");
	tmd_put("cur/5:2,", "5\n");
	tmd_put("cur/6:2,S", "6a\n");
	tmd_put("cur/6:2,", "6b\n");
	tmd_put("cur/40:2,", "40\n");	/* shares a prefix with 4 */
	tmd_put("cur/3x", "3x\n");
	tmd_put("cur/7:2,", "7a\n");
	tmd_put("cur/7:2,S", "7b\n");
	mb = tmd_open(NULL);
	CU_ASSERT_EQUAL_FATAL(maildir_count(mb), 11);
	/* 1 2 3 3x 4 40 5 6:2, 6:2,S 7:2, 7:2,S */
	maildir_msg(mb, 1)->deleted = 1;	/* 2: plain removal */
	maildir_msg(mb, 2)->deleted = 1;	/* 3: already gone */
	maildir_msg(mb, 4)->deleted = 1;	/* 4: renamed meanwhile */
	maildir_msg(mb, 7)->deleted = 1;	/* 6:2, gone; 6:2,S not ours */
	CU_ASSERT_STRING_EQUAL(maildir_msg(mb, 4)->name, "cur/4:2,");
	CU_ASSERT_STRING_EQUAL(maildir_msg(mb, 7)->name, "cur/6:2,");
	maildir_msg(mb, 10)->deleted = 1;	/* 7:2,S gone; 7:2, not ours */
	CU_ASSERT_STRING_EQUAL(maildir_msg(mb, 10)->name, "cur/7:2,S");
	CU_ASSERT_EQUAL(unlink(tmd_path("cur/7:2,S")), 0);
	CU_ASSERT_EQUAL(unlink(tmd_path("cur/3:2,")), 0);
	CU_ASSERT_EQUAL(rename(tmd_path("cur/4:2,"), tmd_path("cur/4:2,RS")),
	    0);
	CU_ASSERT_EQUAL(unlink(tmd_path("cur/6:2,")), 0);
	CU_ASSERT_EQUAL(maildir_update(mb, &removed, &failed), 0);
	CU_ASSERT_EQUAL(removed, 5);
	CU_ASSERT_EQUAL(failed, 0);
	CU_ASSERT_TRUE(tmd_exists("cur/1:2,"));
	CU_ASSERT_FALSE(tmd_exists("cur/2:2,"));
	CU_ASSERT_FALSE(tmd_exists("cur/4:2,RS"));
	CU_ASSERT_TRUE(tmd_exists("cur/5:2,"));
	CU_ASSERT_TRUE(tmd_exists("cur/6:2,S"));
	CU_ASSERT_TRUE(tmd_exists("cur/40:2,"));
	CU_ASSERT_TRUE(tmd_exists("cur/3x"));
	CU_ASSERT_TRUE(tmd_exists("cur/7:2,"));
	maildir_free(mb);

	/* Nothing marked: nothing removed. */
	mb = tmd_open(NULL);
	CU_ASSERT_EQUAL(maildir_count(mb), 6);
	CU_ASSERT_EQUAL(maildir_update(mb, &removed, &failed), 0);
	CU_ASSERT_EQUAL(removed, 0);
	CU_ASSERT_EQUAL(failed, 0);
	CU_ASSERT_TRUE(tmd_exists("cur/1:2,"));
	CU_ASSERT_TRUE(tmd_exists("cur/5:2,"));
	CU_ASSERT_TRUE(tmd_exists("cur/6:2,S"));
	maildir_free(mb);
	tmd_teardown();
}

/* Many marked files already gone: each lookup must stay cheap. */
static void
test_maildir_update_many(void)
{
	struct mailbox *mb;
	char rel[64];
	size_t i, n = 3000, removed = 0, failed = 99;

	tmd_setup();
	for (i = 0; i < n; i++) {
		snprintf(rel, sizeof(rel), "cur/%05zu.M1.host:2,", i);
		tmd_put(rel, "m\n");
	}
	mb = tmd_open(NULL);
	CU_ASSERT_EQUAL_FATAL(maildir_count(mb), n);
	for (i = 0; i < n; i++) {
		snprintf(rel, sizeof(rel), "cur/%05zu.M1.host:2,", i);
		if (i % 2 == 0)
			CU_ASSERT_EQUAL(unlink(tmd_path(rel)), 0);
		if (i % 3 != 0)
			maildir_msg(mb, i)->deleted = 1;
	}
	/* One renamed among them. */
	CU_ASSERT_EQUAL(rename(tmd_path("cur/00001.M1.host:2,"),
	    tmd_path("cur/00001.M1.host:2,S")), 0);
	CU_ASSERT_EQUAL(maildir_update(mb, &removed, &failed), 0);
	CU_ASSERT_EQUAL(removed, n - n / 3);
	CU_ASSERT_EQUAL(failed, 0);
	CU_ASSERT_FALSE(tmd_exists("cur/00001.M1.host:2,S"));
	CU_ASSERT_TRUE(tmd_exists("cur/00003.M1.host:2,"));
	CU_ASSERT_FALSE(tmd_exists("cur/00005.M1.host:2,"));
	maildir_free(mb);
	mb = tmd_open(NULL);
	/* Left: multiples of 3 that were not unlinked (odd ones). */
	CU_ASSERT_EQUAL(maildir_count(mb), n / 6);
	maildir_free(mb);
	tmd_teardown();
}

/*
 * A table big enough (over SIZECACHE_TABLE_BLOCK_MIN) to live in a mapped
 * block of huge pages, grown and then sorted there: files created out of
 * order, scanned, loaded again from the index, marked and updated.
 */
static void
test_maildir_big_table(void)
{
	struct mailbox *mb;
	char rel[64], body[32];
	size_t i, j, n, removed = 0, failed = 99, count;
	uint64_t octets, total = 0;
	int round;

	n = SIZECACHE_TABLE_BLOCK_MIN / sizeof(struct maildir_msg) * 5 / 4;
	tmd_setup();
	for (i = 0; i < n; i++) {
		j = (i * 7919) % n;	/* 7919 is prime: a permutation */
		snprintf(rel, sizeof(rel), "cur/%06zu.M1.big:2,", j);
		snprintf(body, sizeof(body), "m%zu\n", j);
		tmd_put(rel, body);
		total += strlen(body) + 1;
	}
	/* Past the index's margin, so the second open loads it. */
	sleep(SIZECACHE_INDEX_MARGIN_SEC + 1);
	for (round = 0; round < 2; round++) {
		mb = tmd_open(NULL);
		CU_ASSERT_EQUAL(maildir_from_index(mb), round);
		CU_ASSERT_EQUAL_FATAL(maildir_count(mb), n);
		maildir_stat(mb, &count, &octets);
		CU_ASSERT_EQUAL(octets, total);
		for (i = 0; i < n; i++) {
			snprintf(rel, sizeof(rel), "%06zu.M1.big", i);
			if (strcmp(maildir_msg(mb, i)->uidl, rel) != 0) {
				CU_FAIL("UIDL out of order");
				break;
			}
			snprintf(body, sizeof(body), "m%zu\n", i);
			if (maildir_msg(mb, i)->size != strlen(body) + 1) {
				CU_FAIL("size");
				break;
			}
		}
		if (round == 1) {
			for (i = 0; i < n; i += 3)
				maildir_msg(mb, i)->deleted = 1;
			CU_ASSERT_EQUAL(maildir_update(mb, &removed, &failed),
			    0);
			CU_ASSERT_EQUAL(removed, (n + 2) / 3);
			CU_ASSERT_EQUAL(failed, 0);
		}
		maildir_free(mb);
	}
	mb = tmd_open(NULL);
	CU_ASSERT_EQUAL(maildir_count(mb), n - (n + 2) / 3);
	CU_ASSERT_STRING_EQUAL(maildir_msg(mb, 0)->uidl, "000001.M1.big");
	maildir_free(mb);
	tmd_teardown();
}

static void
test_maildir_update_failure(void)
{
	struct mailbox *mb;
	size_t removed = 99, failed = 99;

	tmd_setup();
	tmd_put("cur/a:2,", "a\n");
	tmd_put("cur/b:2,", "b\n");
	tmd_put("new/c", "c\n");
	tmd_put("cur/c:2,", "c in cur\n");	/* keeps new/c in new/ */
	mb = tmd_open(NULL);
	CU_ASSERT_EQUAL_FATAL(maildir_count(mb), 4);
	CU_ASSERT_STRING_EQUAL(maildir_msg(mb, 3)->name, "new/c");
	maildir_msg(mb, 0)->deleted = 1;
	maildir_msg(mb, 1)->deleted = 1;
	maildir_msg(mb, 3)->deleted = 1;
	/* b replaced by a non-empty directory: it cannot be unlinked. */
	CU_ASSERT_EQUAL(unlink(tmd_path("cur/b:2,")), 0);
	CU_ASSERT_EQUAL(mkdir(tmd_path("cur/b:2,"), 0700), 0);
	tmd_put("cur/b:2,/inside", "x");
	CU_ASSERT_EQUAL(maildir_update(mb, &removed, &failed), -1);
	CU_ASSERT_EQUAL(removed, 2);
	CU_ASSERT_EQUAL(failed, 1);
	CU_ASSERT_FALSE(tmd_exists("cur/a:2,"));
	CU_ASSERT_TRUE(tmd_exists("cur/b:2,/inside"));
	CU_ASSERT_FALSE(tmd_exists("new/c"));
	CU_ASSERT_TRUE(tmd_exists("cur/c:2,"));
	maildir_free(mb);
	tmd_teardown();
}

static void
test_maildir_msg_open(void)
{
	struct mailbox *mb;
	char buf[64];
	int fd;

	tmd_setup();
	tmd_put("cur/m1:2,", "first\n");
	tmd_put("cur/m2:2,", "second\n");
	tmd_put("cur/m3:2,", "third\n");
	mb = tmd_open(NULL);
	CU_ASSERT_EQUAL_FATAL(maildir_count(mb), 3);
	CU_ASSERT_EQUAL(tmd_read_fd(maildir_msg_open(mb, 0), buf,
	    sizeof(buf)), 6);
	CU_ASSERT_STRING_EQUAL(buf, "first\n");
	/* Another reader set a flag. */
	CU_ASSERT_EQUAL(rename(tmd_path("cur/m2:2,"), tmd_path("cur/m2:2,S")),
	    0);
	fd = maildir_msg_open(mb, 1);
	CU_ASSERT(fd >= 0);
	if (fd >= 0) {
		CU_ASSERT_FALSE(fcntl(fd, F_GETFL) & O_NONBLOCK);
		CU_ASSERT_EQUAL(tmd_read_fd(fd, buf, sizeof(buf)), 7);
		CU_ASSERT_STRING_EQUAL(buf, "second\n");
	}
	CU_ASSERT_STRING_EQUAL(maildir_msg(mb, 1)->name, "cur/m2:2,S");
	CU_ASSERT_STRING_EQUAL(maildir_msg(mb, 1)->uidl, "m2");
	/* Another reader deleted it. */
	CU_ASSERT_EQUAL(unlink(tmd_path("cur/m3:2,")), 0);
	errno = 0;
	CU_ASSERT_EQUAL(maildir_msg_open(mb, 2), -1);
	CU_ASSERT_EQUAL(errno, ENOENT);
	maildir_free(mb);
	tmd_teardown();
}

static void
test_maildir_uidl_forms(void)
{
	char out[MAILDIR_UIDL_MAX + 1], again[MAILDIR_UIDL_MAX + 1];
	char name[100];

	/* 70 printable octets: itself.  71: digest. */
	memset(name, 'a', 71);
	maildir_uidl(name, 70, out);
	CU_ASSERT_EQUAL(strlen(out), 70);
	CU_ASSERT(memcmp(out, name, 70) == 0);
	maildir_uidl(name, 71, out);
	CU_ASSERT_EQUAL(strlen(out), 42);
	CU_ASSERT_EQUAL(strncmp(out, "X:", 2), 0);
	maildir_uidl("!~", 2, out);
	CU_ASSERT_STRING_EQUAL(out, "!~");
	maildir_uidl("with space", 10, out);
	CU_ASSERT_STRING_EQUAL(out,
	    "X:1ccda7ff1038be23ee6a44e0b41b4017be7c9d65");
	maildir_uidl("caf\xc3\xa9", 5, out);
	CU_ASSERT_STRING_EQUAL(out,
	    "X:f424452a9673918c6f09b0cdd35b20be8e6ae7d7");
	maildir_uidl("", 0, out);
	CU_ASSERT_STRING_EQUAL(out,
	    "X:da39a3ee5e6b4b0d3255bfef95601890afd80709");
	maildir_uidl("a:b", 3, out);
	CU_ASSERT_EQUAL(strncmp(out, "X:", 2), 0);
	maildir_uidl("del\x7f", 4, out);
	CU_ASSERT_EQUAL(strncmp(out, "X:", 2), 0);
	maildir_uidl("tab\t", 4, out);
	CU_ASSERT_EQUAL(strncmp(out, "X:", 2), 0);
	/* Only len octets count. */
	maildir_uidl("abc:2,S", 3, out);
	CU_ASSERT_STRING_EQUAL(out, "abc");
	maildir_uidl("with space", 10, again);
	maildir_uidl("with spacE", 10, out);
	CU_ASSERT_STRING_NOT_EQUAL(out, again);
}

static void
test_maildir_odd_names(void)
{
	struct mailbox *mb;
	char rel[128], long80[81];
	char uidl[3][MAILDIR_UIDL_MAX + 1];
	size_t i, j;

	memset(long80, 'L', 80);
	long80[80] = '\0';
	tmd_setup();
	tmd_put("cur/with space:2,", "1\n");
	snprintf(rel, sizeof(rel), "new/%s", long80);
	tmd_put(rel, "2\n");
	tmd_put("cur/caf\xc3\xa9:2,S", "3\n");
	mb = tmd_open(NULL);
	CU_ASSERT_EQUAL_FATAL(maildir_count(mb), 3);
	/* Sorted: "L..." < "caf\xc3\xa9" < "with space". */
	snprintf(rel, sizeof(rel), "cur/%s:2,", long80);
	CU_ASSERT_STRING_EQUAL(maildir_msg(mb, 0)->name, rel);
	CU_ASSERT_STRING_EQUAL(maildir_msg(mb, 0)->uidl,
	    "X:830ffe6ba90085024e947d03a3a3cfedd3850008");
	CU_ASSERT_STRING_EQUAL(maildir_msg(mb, 1)->uidl,
	    "X:f424452a9673918c6f09b0cdd35b20be8e6ae7d7");
	CU_ASSERT_STRING_EQUAL(maildir_msg(mb, 2)->uidl,
	    "X:1ccda7ff1038be23ee6a44e0b41b4017be7c9d65");
	for (i = 0; i < 3; i++) {
		snprintf(uidl[i], sizeof(uidl[i]), "%s",
		    maildir_msg(mb, i)->uidl);
		CU_ASSERT_EQUAL(strlen(uidl[i]), 42);
		for (j = 2; j < 42; j++)
			CU_ASSERT(strchr("0123456789abcdef", uidl[i][j]) !=
			    NULL);
		for (j = 0; j < i; j++)
			CU_ASSERT_STRING_NOT_EQUAL(uidl[i], uidl[j]);
	}
	maildir_free(mb);
	/* Stable across sessions, and after a flag change. */
	CU_ASSERT_EQUAL(rename(tmd_path("cur/with space:2,"),
	    tmd_path("cur/with space:2,RS")), 0);
	mb = tmd_open(NULL);
	CU_ASSERT_EQUAL_FATAL(maildir_count(mb), 3);
	for (i = 0; i < 3; i++)
		CU_ASSERT_STRING_EQUAL(maildir_msg(mb, i)->uidl, uidl[i]);
	maildir_free(mb);
	tmd_teardown();
}

static void
test_maildir_unreadable(void)
{
	struct mailbox *mb;
	size_t skipped = 0;

	tmd_setup();
	tmd_put("cur/ok:2,", "ok\n");
	tmd_put("cur/locked:2,", "secret\n");
	CU_ASSERT_EQUAL(chmod(tmd_path("cur/locked:2,"), 0), 0);
	mb = tmd_open(&skipped);
	if (geteuid() == 0) {
		/* Root reads it anyway: served, not skipped. */
		CU_ASSERT_EQUAL(maildir_count(mb), 2);
		CU_ASSERT_EQUAL(skipped, 0);
	} else {
		CU_ASSERT_EQUAL(maildir_count(mb), 1);
		CU_ASSERT_EQUAL(skipped, 1);
		CU_ASSERT_STRING_EQUAL(maildir_msg(mb, 0)->uidl, "ok");
	}
	maildir_free(mb);
	tmd_teardown();
}

/* An empty Maildir (a fresh user, or one that just deleted everything). */
static void
test_maildir_empty(void)
{
	char base[512];
	struct mailbox *mb = NULL;
	size_t skipped = 9, count = 9, removed = 9, failed = 9;
	uint64_t octets = 9;
	const char *errstr = NULL;

	snprintf(base, sizeof(base), "%s", test_tmpdir());
	CU_ASSERT_EQUAL_FATAL(maildir_create(base), 0);
	CU_ASSERT_EQUAL_FATAL(maildir_open(base, &mb, &skipped, &errstr), 0);
	CU_ASSERT_EQUAL(maildir_count(mb), 0);
	CU_ASSERT_EQUAL(skipped, 0);
	maildir_stat(mb, &count, &octets);
	CU_ASSERT_EQUAL(count, 0);
	CU_ASSERT_EQUAL(octets, 0);
	maildir_unmark_all(mb);
	CU_ASSERT_EQUAL(maildir_update(mb, &removed, &failed), 0);
	CU_ASSERT_EQUAL(removed, 0);
	CU_ASSERT_EQUAL(failed, 0);
	maildir_free(mb);
	test_rmtree(base);
}

/* Count message files in dir/sub. */
static int
test_maildir_nfiles(const char *dir, const char *sub)
{
	char p[800];
	DIR *d;
	struct dirent *de;
	int n = 0;

	snprintf(p, sizeof(p), "%s/%s", dir, sub);
	if ((d = opendir(p)) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/*
 * Crash-safe UPDATE: a process that dies after 2 of 4 removals (fault
 * hook) leaves its journal; the next maildir_open removes the other two
 * marked messages and nothing else.
 */
static void
test_maildir_crash_safe_update(void)
{
	char base[512], p[800];
	struct mailbox *mb;
	size_t sk, i;
	const char *es;
	pid_t pid;
	int status;
	struct stat st;

	snprintf(base, sizeof(base), "%s", test_tmpdir());
	CU_ASSERT_EQUAL_FATAL(maildir_create(base), 0);
	for (i = 0; i < 6; i++) {
		snprintf(p, sizeof(p), "%s/cur/%zu.M%zu.host:2,", base, 100 + i,
		    i);
		test_write_file(p, "Subject: x\n\nbody\n", 18);
	}
	CU_ASSERT_EQUAL_FATAL(maildir_open(base, &mb, &sk, &es), 0);
	for (i = 0; i < 4; i++)
		maildir_msg(mb, i)->deleted = 1;
	fflush(NULL);
	if ((pid = fork()) == 0) {
		size_t r, f;
		setenv("EVPOP3D_FAULT_UPDATE_EXIT_AFTER", "2", 1);
		maildir_update(mb, &r, &f);
		_exit(0);
	}
	CU_ASSERT_FATAL(pid > 0);
	waitpid(pid, &status, 0);
	CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 99);
	maildir_free(mb);
	CU_ASSERT_EQUAL(test_maildir_nfiles(base, "cur"), 4);
	snprintf(p, sizeof(p), "%s/evpop3d.pending", base);
	CU_ASSERT_EQUAL(stat(p, &st), 0);

	/* The next login finishes the job first. */
	CU_ASSERT_EQUAL_FATAL(maildir_open(base, &mb, &sk, &es), 0);
	CU_ASSERT_EQUAL(maildir_count(mb), 2);
	CU_ASSERT_STRING_EQUAL(maildir_msg(mb, 0)->uidl, "104.M4.host");
	CU_ASSERT_STRING_EQUAL(maildir_msg(mb, 1)->uidl, "105.M5.host");
	CU_ASSERT_NOT_EQUAL(stat(p, &st), 0);
	maildir_free(mb);

	/* A journal that never became visible (only its temporary file)
	 * removes nothing. */
	snprintf(p, sizeof(p), "%s/evpop3d.pending.tmp", base);
	test_write_file(p, "evpop3d-pending 1\n104.M4.host\n.\n", 32);
	CU_ASSERT_EQUAL_FATAL(maildir_open(base, &mb, &sk, &es), 0);
	CU_ASSERT_EQUAL(maildir_count(mb), 2);
	CU_ASSERT_NOT_EQUAL(stat(p, &st), 0);
	maildir_free(mb);

	/* Soft delete: a crash mid-way is finished into the trash. */
	CU_ASSERT_EQUAL_FATAL(maildir_open(base, &mb, &sk, &es), 0);
	maildir_set_trash(mb, 1);
	maildir_msg(mb, 0)->deleted = 1;
	maildir_msg(mb, 1)->deleted = 1;
	fflush(NULL);
	if ((pid = fork()) == 0) {
		size_t r, f;
		setenv("EVPOP3D_FAULT_UPDATE_EXIT_AFTER", "1", 1);
		maildir_update(mb, &r, &f);
		_exit(0);
	}
	waitpid(pid, &status, 0);
	CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 99);
	maildir_free(mb);
	CU_ASSERT_EQUAL(test_maildir_nfiles(base, "cur"), 1);
	CU_ASSERT_EQUAL(test_maildir_nfiles(base, "evpop3d-trash"), 1);
	CU_ASSERT_EQUAL_FATAL(maildir_open(base, &mb, &sk, &es), 0);
	CU_ASSERT_EQUAL(maildir_count(mb), 0);
	maildir_free(mb);
	CU_ASSERT_EQUAL(test_maildir_nfiles(base, "evpop3d-trash"), 2);
	CU_ASSERT_EQUAL(maildir_trash_list(base, NULL, NULL), 2);
	CU_ASSERT_EQUAL(maildir_trash_restore(base, "104.M4.host"), 1);
	CU_ASSERT_EQUAL(maildir_trash_purge(base, 1, time(NULL)), 0);
	CU_ASSERT_EQUAL(maildir_trash_purge(base, 0, time(NULL)), 1);
	CU_ASSERT_EQUAL(test_maildir_nfiles(base, "cur"), 1);

	/* A normal UPDATE leaves no journal behind. */
	CU_ASSERT_EQUAL_FATAL(maildir_open(base, &mb, &sk, &es), 0);
	maildir_msg(mb, 0)->deleted = 1;
	CU_ASSERT_EQUAL(maildir_update(mb, &sk, NULL), 0);
	maildir_free(mb);
	snprintf(p, sizeof(p), "%s/evpop3d.pending", base);
	CU_ASSERT_NOT_EQUAL(stat(p, &st), 0);
	CU_ASSERT_EQUAL(test_maildir_nfiles(base, "cur"), 0);
	test_rmtree(base);
}

void
test_maildir_register(void)
{
	CU_pSuite s;

	if ((s = CU_add_suite("maildir", NULL, NULL)) == NULL)
		return;
	CU_add_test(s, "create", test_maildir_create);
	CU_add_test(s, "message names", test_maildir_names);
	CU_add_test(s, "missing Maildir", test_maildir_missing);
	CU_add_test(s, "empty Maildir", test_maildir_empty);
	CU_add_test(s, "scan cur and new", test_maildir_scan);
	CU_add_test(s, "sizes", test_maildir_sizes);
	CU_add_test(s, "order", test_maildir_order);
	CU_add_test(s, "duplicate base names", test_maildir_duplicates);
	CU_add_test(s, "deletion marks", test_maildir_marks);
	CU_add_test(s, "update", test_maildir_update);
	CU_add_test(s, "update with many gone", test_maildir_update_many);
	CU_add_test(s, "big table in huge pages", test_maildir_big_table);
	CU_add_test(s, "update failure", test_maildir_update_failure);
	CU_add_test(s, "crash-safe update", test_maildir_crash_safe_update);
	CU_add_test(s, "msg_open", test_maildir_msg_open);
	CU_add_test(s, "UIDL forms", test_maildir_uidl_forms);
	CU_add_test(s, "odd names", test_maildir_odd_names);
	CU_add_test(s, "unreadable file", test_maildir_unreadable);
}
