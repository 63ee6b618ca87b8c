/* SPDX-License-Identifier: ISC */
/*
 * evpop3d unit tests: the size cache and its use by maildir_open.
 */
#include "config.h"

#include <sys/stat.h>
#include <errno.h>
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

static void
test_sizecache_roundtrip(void)
{
	char dir[512];
	struct sizecache_entry e[3] = {
		{ "1.a", 3, 11, 100, 90 }, { "2.b", 3, 12, 200, 190 },
		{ "2.b", 3, 13, 300, 290 },
	};
	struct sizecache *c;
	uint64_t size = 0, raw = 0;
	int fd;

	snprintf(dir, sizeof(dir), "%s", test_tmpdir());
	fd = open(dir, O_RDONLY | O_DIRECTORY);
	CU_ASSERT_FATAL(fd >= 0);
	/* No file: an empty cache, every lookup misses. */
	c = sizecache_load(fd);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_EQUAL(sizecache_count(c), 0);
	CU_ASSERT(!sizecache_lookup(c, "1.a", 3, 11, &size, &raw));
	sizecache_free(c);

	CU_ASSERT_EQUAL(sizecache_write(fd, e, 3), 0);
	c = sizecache_load(fd);
	CU_ASSERT_EQUAL(sizecache_count(c), 3);
	CU_ASSERT(sizecache_lookup(c, "1.a", 3, 11, &size, &raw));
	CU_ASSERT_EQUAL(size, 100);
	CU_ASSERT_EQUAL(raw, 90);
	/* Same name, other inode: a different file. */
	CU_ASSERT(!sizecache_lookup(c, "2.b", 3, 99, &size, &raw));
	CU_ASSERT(sizecache_lookup(c, "2.b", 3, 13, &size, &raw));
	CU_ASSERT_EQUAL(size, 300);
	CU_ASSERT_EQUAL(sizecache_unused(c), 1);
	sizecache_free(c);
	close(fd);
	test_rmtree(dir);
}

static void
test_sizecache_damaged(void)
{
	char dir[512], path[600];
	const char *text = "evpop3d-sizes 2\n"
	    "5 500 450 b.x\n"
	    "garbage line\n"
	    "4 400 350 a.x\n"		/* out of order: sorted on load */
	    "7 x 1 c.x\n"
	    "8 800 700 d/x\n"
	    "6 600 b.x\n"		/* old format line */
	    "9 900 800 e.x";		/* torn: no newline */
	struct sizecache *c;
	uint64_t size, raw;
	int fd;

	snprintf(dir, sizeof(dir), "%s", test_tmpdir());
	snprintf(path, sizeof(path), "%s/%s", dir, SIZECACHE_FILE);
	CU_ASSERT_EQUAL_FATAL(test_write_file(path, text, strlen(text)), 0);
	fd = open(dir, O_RDONLY | O_DIRECTORY);
	c = sizecache_load(fd);
	CU_ASSERT_EQUAL(sizecache_count(c), 2);
	CU_ASSERT(sizecache_lookup(c, "a.x", 3, 4, &size, &raw) &&
	    size == 400 && raw == 350);
	CU_ASSERT(sizecache_lookup(c, "b.x", 3, 5, &size, &raw) &&
	    size == 500);
	CU_ASSERT(!sizecache_lookup(c, "e.x", 3, 9, &size, &raw));
	sizecache_free(c);
	/* Wrong magic: ignored entirely. */
	CU_ASSERT_EQUAL(test_write_file(path, "evpop3d-sizes 1\n5 500 b.x\n",
	    26), 0);
	c = sizecache_load(fd);
	CU_ASSERT_EQUAL(sizecache_count(c), 0);
	sizecache_free(c);
	close(fd);
	test_rmtree(dir);
}

/* The cache written by one login gives the next the same sizes, and a
 * file replaced under the same name (new inode) is counted again. */
static void
test_sizecache_maildir(void)
{
	char dir[512], path[700], cpath[700];
	struct mailbox *mb;
	size_t sk;
	const char *es;
	struct stat st;
	const char *big = "Subject: x\n\nline\nline\n", *other = "Subject: y\n\n"
	    "a much longer body that differs\n";

	snprintf(dir, sizeof(dir), "%s", test_tmpdir());
	CU_ASSERT_EQUAL_FATAL(maildir_create(dir), 0);
	snprintf(path, sizeof(path), "%s/cur/100.A.h:2,S", dir);
	test_write_file(path, big, strlen(big));
	snprintf(path, sizeof(path), "%s/new/101.B.h", dir);
	test_write_file(path, big, strlen(big));
	CU_ASSERT_EQUAL_FATAL(maildir_open(dir, &mb, &sk, &es), 0);
	CU_ASSERT_EQUAL(maildir_count(mb), 2);
	maildir_free(mb);
	snprintf(cpath, sizeof(cpath), "%s/%s", dir, SIZECACHE_FILE);
	CU_ASSERT_EQUAL(stat(cpath, &st), 0);

	/*
	 * Rewrite 100.A in place under the same name (not Maildir's way;
	 * the file system may even give it the same inode).  Its new size
	 * is either counted at login or, when the cache still matched, the
	 * message is refused rather than sent with the stale size.
	 */
	snprintf(path, sizeof(path), "%s/cur/100.A.h:2,S", dir);
	unlink(path);
	test_write_file(path, other, strlen(other));
	CU_ASSERT_EQUAL_FATAL(maildir_open(dir, &mb, &sk, &es), 0);
	CU_ASSERT_EQUAL(maildir_count(mb), 2);
	if (maildir_msg(mb, 0)->size != msgfmt_size((const unsigned char *)
	    other, strlen(other))) {
		int fd = maildir_msg_open(mb, 0);
		CU_ASSERT_EQUAL(fd, -1);
		CU_ASSERT_EQUAL(errno, ESTALE);
		CU_ASSERT_NOT_EQUAL(stat(cpath, &st), 0);	/* dropped */
		maildir_free(mb);
		CU_ASSERT_EQUAL_FATAL(maildir_open(dir, &mb, &sk, &es), 0);
	}
	CU_ASSERT_EQUAL(maildir_msg(mb, 0)->size,
	    msgfmt_size((const unsigned char *)other, strlen(other)));
	CU_ASSERT_EQUAL(maildir_msg(mb, 1)->size,
	    msgfmt_size((const unsigned char *)big, strlen(big)));
	{
		int fd = maildir_msg_open(mb, 0);
		CU_ASSERT(fd >= 0);
		if (fd >= 0)
			close(fd);
	}
	maildir_free(mb);

	/* A message removed by another program leaves the cache. */
	unlink(path);
	CU_ASSERT_EQUAL_FATAL(maildir_open(dir, &mb, &sk, &es), 0);
	CU_ASSERT_EQUAL(maildir_count(mb), 1);
	maildir_free(mb);
	{
		int fd = open(dir, O_RDONLY | O_DIRECTORY);
		struct sizecache *c = sizecache_load(fd);
		CU_ASSERT_EQUAL(sizecache_count(c), 1);
		sizecache_free(c);
		close(fd);
	}
	test_rmtree(dir);
}

void
test_sizecache_register(void)
{
	CU_pSuite s = CU_add_suite("sizecache", NULL, NULL);

	CU_add_test(s, "write, load, lookup", test_sizecache_roundtrip);
	CU_add_test(s, "damaged or foreign file", test_sizecache_damaged);
	CU_add_test(s, "used by maildir_open", test_sizecache_maildir);
}
