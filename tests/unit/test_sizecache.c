/* SPDX-License-Identifier: ISC */
/*
 * evpop3d unit tests: the size cache and the message index, and their
 * use by maildir_open (the index must give exactly what a listing does).
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
#include "migrate.h"
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
	snprintf(cpath, sizeof(cpath), "%s/%s", dir, SIZECACHE_INDEX_FILE);
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
		struct sizecache_index ix;

		CU_ASSERT_EQUAL_FATAL(sizecache_index_load(fd, &ix), 0);
		CU_ASSERT_EQUAL(ix.n, 1);
		sizecache_index_free(&ix);
		close(fd);
	}
	test_rmtree(dir);
}

/* A message table for the index tests. */
#define TIX_MAX		1024
struct tix_copy {
	size_t			 n;
	char			 name[TIX_MAX][300];
	struct maildir_msg	 m[TIX_MAX];
};

/* Copy what a snapshot serves (names by value: the snapshot goes). */
static void
tix_copy(struct mailbox *mb, struct tix_copy *c)
{
	size_t i;

	c->n = maildir_count(mb);
	CU_ASSERT_FATAL(c->n <= TIX_MAX);
	for (i = 0; i < c->n; i++) {
		c->m[i] = *maildir_msg(mb, i);
		snprintf(c->name[i], sizeof(c->name[i]), "%s",
		    maildir_msg(mb, i)->name);
	}
}

/* Does mb serve exactly what c recorded (order, names, UIDLs, sizes,
 * inodes)?  Asserts field by field. */
static void
tix_same(struct mailbox *mb, const struct tix_copy *c)
{
	const struct maildir_msg *m;
	size_t i;

	CU_ASSERT_EQUAL_FATAL(maildir_count(mb), c->n);
	for (i = 0; i < c->n; i++) {
		m = maildir_msg(mb, i);
		CU_ASSERT_STRING_EQUAL(m->name, c->name[i]);
		CU_ASSERT_STRING_EQUAL(m->uidl, c->m[i].uidl);
		CU_ASSERT_EQUAL(m->size, c->m[i].size);
		CU_ASSERT_EQUAL(m->raw_size, c->m[i].raw_size);
		CU_ASSERT_EQUAL(m->ino, c->m[i].ino);
		CU_ASSERT_EQUAL(m->base_len, c->m[i].base_len);
		CU_ASSERT_EQUAL(m->deleted, 0);
	}
}

static struct mailbox *
tix_open(const char *dir)
{
	struct mailbox *mb = NULL;
	const char *es = NULL;
	size_t sk = 99;

	CU_ASSERT_EQUAL_FATAL(maildir_open(dir, &mb, &sk, &es), 0);
	CU_ASSERT_EQUAL(sk, 0);
	return mb;
}

static void
tix_put(const char *dir, const char *rel, const char *text)
{
	char path[900];

	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	CU_ASSERT_EQUAL_FATAL(test_write_file(path, text, strlen(text)), 0);
}

/* A random Maildir: odd and long names (digest UIDLs), one base name
 * twice in cur/ and once more in new/ (digests of the whole name), bare
 * LF, dot lines, an empty message. */
static void
tix_random(const char *dir, unsigned int seed, size_t count)
{
	char rel[300], text[2048], base[200];
	size_t i, j, len;
	unsigned int r = seed;

	CU_ASSERT_EQUAL_FATAL(maildir_create(dir), 0);
	for (i = 0; i < count; i++) {
		r = r * 1103515245 + 12345;
		len = (r >> 8) % (i % 7 == 0 ? 120 : 30) + 1;
		for (j = 0; j < len; j++)
			base[j] = "abcXYZ019.-_ "[(r >> (j % 16)) % 13];
		base[len] = '\0';
		if (base[0] == '.')
			base[0] = 'd';
		snprintf(rel, sizeof(rel), "%s/%zu.%s%s", i % 5 == 0 ? "new" :
		    "cur", i, base, i % 5 == 0 ? "" : ":2,S");
		len = (r >> 4) % sizeof(text);
		for (j = 0; j < len; j++)
			text[j] = "ab\n.\r x"[(r >> (j % 20)) % 8];
		text[i == 3 ? 0 : len] = '\0';
		tix_put(dir, rel, text);
	}
	tix_put(dir, "cur/dup.1:2,S", "one\n");
	tix_put(dir, "cur/dup.1:2,RS", "two two\n");
	tix_put(dir, "cur/dup.2:2,", "three\n");
	tix_put(dir, "new/dup.2", "stays in new\n");
}

/* Index file round trip, and damaged files refused. */
static void
test_sizecache_index_file(void)
{
	char dir[512], path[700];
	struct maildir_msg m[3];
	struct sizecache_writer w;
	struct sizecache_index ix;
	struct sizecache_stamp cur, new;
	struct stat st;
	char *data;
	size_t len;
	int fd, k;

	snprintf(dir, sizeof(dir), "%s", test_tmpdir());
	snprintf(path, sizeof(path), "%s/%s", dir, SIZECACHE_INDEX_FILE);
	fd = open(dir, O_RDONLY | O_DIRECTORY);
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_EQUAL(sizecache_index_load(fd, &ix), -1);
	CU_ASSERT_EQUAL(errno, ENOENT);
	memset(m, 0, sizeof(m));
	m[0].name = (char *)"cur/2.b:2,S";
	snprintf(m[0].uidl, sizeof(m[0].uidl), "2.b");
	m[0].size = 10; m[0].raw_size = 9; m[0].ino = 77; m[0].base_len = 3;
	m[1].name = (char *)"new/1.a";
	snprintf(m[1].uidl, sizeof(m[1].uidl), "migrated-uidl-1");
	m[1].size = 20; m[1].raw_size = 18; m[1].ino = 78; m[1].base_len = 3;
	m[2].name = (char *)"cur/3.c";
	snprintf(m[2].uidl, sizeof(m[2].uidl), "3.c");
	m[2].size = 0; m[2].raw_size = 0; m[2].ino = 79; m[2].base_len = 3;
	memset(&cur, 0, sizeof(cur));
	cur.dev = 1; cur.ino = 2; cur.mtime_sec = 100; cur.ctime_sec = 100;
	new = cur;
	new.ino = 3; new.ctime_nsec = 5;
	CU_ASSERT_EQUAL_FATAL(sizecache_index_begin(fd, &w), 0);
	CU_ASSERT(w.start_sec > 1000000000);	/* a real clock */
	CU_ASSERT_EQUAL_FATAL(sizecache_index_commit(fd, &w, m, 3, &cur, &new,
	    1), 0);
	CU_ASSERT_EQUAL_FATAL(sizecache_index_load(fd, &ix), 0);
	CU_ASSERT_EQUAL_FATAL(ix.n, 3);
	/* Kept in table order, not sorted; UIDLs as given. */
	CU_ASSERT_STRING_EQUAL(ix.msgs[0].name, "cur/2.b:2,S");
	CU_ASSERT_STRING_EQUAL(ix.msgs[1].name, "new/1.a");
	CU_ASSERT_STRING_EQUAL(ix.msgs[1].uidl, "migrated-uidl-1");
	CU_ASSERT_STRING_EQUAL(ix.msgs[0].uidl, "2.b");
	CU_ASSERT_EQUAL(ix.msgs[1].size, 20);
	CU_ASSERT_EQUAL(ix.msgs[1].raw_size, 18);
	CU_ASSERT_EQUAL(ix.msgs[2].ino, 79);
	CU_ASSERT_EQUAL(ix.msgs[0].base_len, 3);
	CU_ASSERT(ix.complete);
	CU_ASSERT_EQUAL(memcmp(&ix.cur, &cur, sizeof(cur)), 0);
	CU_ASSERT_EQUAL(memcmp(&ix.new, &new, sizeof(new)), 0);
	/* Old stamps, equal now: usable.  One nanosecond off: not. */
	CU_ASSERT(sizecache_index_fresh(&ix, &cur, &new));
	new.ctime_nsec++;
	CU_ASSERT(!sizecache_index_fresh(&ix, &cur, &new));
	new.ctime_nsec--;
	cur.ino++;
	CU_ASSERT(!sizecache_index_fresh(&ix, &cur, &new));
	cur.ino--;
	/* Changed less than the margin before the listing began: never. */
	ix.cur.mtime_sec = ix.start_sec - SIZECACHE_INDEX_MARGIN_SEC;
	ix.cur.mtime_nsec = ix.start_nsec + 1;
	CU_ASSERT(!sizecache_index_trustworthy(&ix));
	ix.cur.mtime_nsec = ix.start_nsec;
	CU_ASSERT(sizecache_index_trustworthy(&ix));
	ix.new.ctime_sec = ix.start_sec + 5;	/* in the future */
	CU_ASSERT(!sizecache_index_trustworthy(&ix));
	sizecache_index_free(&ix);

	/* Every single flipped octet and every truncation is refused. */
	CU_ASSERT_EQUAL_FATAL(stat(path, &st), 0);
	len = (size_t)st.st_size;
	data = malloc(len);
	CU_ASSERT_FATAL(data != NULL);
	{
		int dfd = open(path, O_RDONLY);
		CU_ASSERT_EQUAL_FATAL(read(dfd, data, len), (ssize_t)len);
		close(dfd);
	}
	for (k = 0; k < (int)len; k++) {
		data[k] ^= 0x10;
		test_write_file(path, data, len);
		data[k] ^= 0x10;
		CU_ASSERT_EQUAL(sizecache_index_load(fd, &ix), -1);
	}
	for (k = 0; k < (int)len; k += 7) {
		test_write_file(path, data, (size_t)k);
		CU_ASSERT_EQUAL(sizecache_index_load(fd, &ix), -1);
		CU_ASSERT_EQUAL(errno, EINVAL);
	}
	test_write_file(path, data, len);
	CU_ASSERT_EQUAL(sizecache_index_load(fd, &ix), 0);
	sizecache_index_free(&ix);
	free(data);

	/* A writer given up leaves no file behind. */
	CU_ASSERT_EQUAL_FATAL(sizecache_index_begin(fd, &w), 0);
	snprintf(path, sizeof(path), "%s/%s", dir, w.tmp);
	CU_ASSERT_EQUAL(stat(path, &st), 0);
	sizecache_index_abort(fd, &w);
	CU_ASSERT_NOT_EQUAL(stat(path, &st), 0);
	close(fd);
	test_rmtree(dir);
}

/* Directories changed just now are never trusted: a login right after a
 * change always lists them. */
static void
test_sizecache_index_recent(void)
{
	char dir[512];
	struct mailbox *mb;
	struct tix_copy *c = malloc(sizeof(*c));

	CU_ASSERT_FATAL(c != NULL);
	snprintf(dir, sizeof(dir), "%s/Maildir", test_tmpdir());
	tix_random(dir, 7, 40);
	mb = tix_open(dir);
	CU_ASSERT(!maildir_from_index(mb));
	tix_copy(mb, c);
	maildir_free(mb);
	mb = tix_open(dir);
	CU_ASSERT(!maildir_from_index(mb));
	tix_same(mb, c);
	maildir_free(mb);
	free(c);
	*strrchr(dir, '/') = '\0';
	test_rmtree(dir);
}

/* An old evpop3d.sizes still gives its sizes; the index replaces it. */
static void
test_sizecache_index_legacy(void)
{
	char dir[512], path[700], line[200];
	struct mailbox *mb;
	struct stat st;

	snprintf(dir, sizeof(dir), "%s", test_tmpdir());
	CU_ASSERT_EQUAL_FATAL(maildir_create(dir), 0);
	tix_put(dir, "cur/5.x:2,S", "hello\n");
	snprintf(path, sizeof(path), "%s/cur/5.x:2,S", dir);
	CU_ASSERT_EQUAL_FATAL(stat(path, &st), 0);
	/* A size only the old cache can have given. */
	snprintf(line, sizeof(line), "evpop3d-sizes 2\n%llu 4242 6 5.x\n",
	    (unsigned long long)st.st_ino);
	snprintf(path, sizeof(path), "%s/%s", dir, SIZECACHE_FILE);
	tix_put(dir, SIZECACHE_FILE, line);
	mb = tix_open(dir);
	CU_ASSERT_EQUAL(maildir_msg(mb, 0)->size, 4242);
	maildir_free(mb);
	CU_ASSERT_NOT_EQUAL(stat(path, &st), 0);
	snprintf(path, sizeof(path), "%s/%s", dir, SIZECACHE_INDEX_FILE);
	CU_ASSERT_EQUAL(stat(path, &st), 0);
	mb = tix_open(dir);
	CU_ASSERT_EQUAL(maildir_msg(mb, 0)->size, 4242);	/* carried */
	maildir_free(mb);
	test_rmtree(dir);
}

/*
 * The fast path against real directories.  Several Maildirs are made at
 * once, then left alone past the margin (one sleep for all), so their
 * first login writes a trusted index; each is then changed its own way
 * behind the index's back.
 */
enum { TIX_SAME, TIX_DELIVER, TIX_RENAME, TIX_REMOVE, TIX_TRUNC,
	TIX_GARBAGE, TIX_MIGRATE, TIX_N };

/* A login with dovecot_uidl_format %u.%v on top of a loaded index: the
 * UIDLs and order Dovecot showed, the same again once evpop3d.uidls is
 * written, and still without listing the directories. */
static void
tix_migrate(const char *dir, const struct tix_copy *c)
{
	struct migrate_opts o;
	struct mailbox *mb;
	const char *es;
	char ul[1024];
	int round;

	snprintf(ul, sizeof(ul), "3 V77 N10 Gx\n9 :%.*s\n3 :%.*s\n",
	    (int)c->m[0].base_len, c->name[0] + 4,
	    (int)c->m[1].base_len, c->name[1] + 4);
	tix_put(dir, "dovecot-uidlist", ul);
	memset(&o, 0, sizeof(o));
	snprintf(o.dovecot_fmt, sizeof(o.dovecot_fmt), "%%u.%%v");
	for (round = 0; round < 2; round++) {
		CU_ASSERT_EQUAL_FATAL(maildir_open_migrate(dir, &mb, NULL,
		    &es, &o), 0);
		CU_ASSERT(maildir_from_index(mb));
		CU_ASSERT_STRING_EQUAL(maildir_msg(mb, 0)->uidl, "3.77");
		CU_ASSERT_STRING_EQUAL(maildir_msg(mb, 1)->uidl, "9.77");
		CU_ASSERT_STRING_EQUAL(maildir_msg(mb, 0)->name, c->name[1]);
		CU_ASSERT_STRING_EQUAL(maildir_msg(mb, 2)->uidl,
		    c->m[2].uidl);
		maildir_free(mb);
	}
}

static void
test_sizecache_index_fast(void)
{
	char root[512], dir[TIX_N][600], path[8192], to[8192];
	struct mailbox *mb;
	struct tix_copy *c = malloc(sizeof(*c));
	struct stat st;
	size_t i, n;
	int k, fd;

	CU_ASSERT_FATAL(c != NULL);
	snprintf(root, sizeof(root), "%s", test_tmpdir());
	for (k = 0; k < TIX_N; k++) {
		snprintf(dir[k], sizeof(dir[k]), "%s/m%d", root, k);
		/* The first one big enough for a mapped table. */
		tix_random(dir[k], 100 + (unsigned int)k, k == TIX_SAME ?
		    900 : 40);
		/* The first login moves new/ into cur/: a change. */
		maildir_free(tix_open(dir[k]));
	}
	sleep(SIZECACHE_INDEX_MARGIN_SEC + 1);
	for (k = 0; k < TIX_N; k++) {
		/* Listed (old directories now): a trusted index. */
		mb = tix_open(dir[k]);
		CU_ASSERT(!maildir_from_index(mb));
		tix_copy(mb, c);
		maildir_free(mb);
		/* Loaded: exactly the listing's table. */
		mb = tix_open(dir[k]);
		CU_ASSERT(maildir_from_index(mb));
		tix_same(mb, c);
		n = maildir_count(mb);
		switch (k) {
		case TIX_SAME:
			maildir_free(mb);
			mb = tix_open(dir[k]);
			CU_ASSERT(maildir_from_index(mb));
			tix_same(mb, c);
			break;
		case TIX_DELIVER:
			maildir_free(mb);
			tix_put(dir[k], "new/zz9.late", "late\n");
			mb = tix_open(dir[k]);
			CU_ASSERT(!maildir_from_index(mb));
			CU_ASSERT_EQUAL(maildir_count(mb), n + 1);
			CU_ASSERT_STRING_EQUAL(maildir_msg(mb, n)->name,
			    "cur/zz9.late:2,");
			break;
		case TIX_RENAME:
			/* Renamed under a loaded snapshot: followed at RETR
			 * (an arena name replaced), and listed next time. */
			snprintf(path, sizeof(path), "%s/%s", dir[k],
			    c->name[1]);
			snprintf(to, sizeof(to), "%s/cur/%.*s:2,T", dir[k],
			    (int)c->m[1].base_len, c->name[1] + 4);
			CU_ASSERT_EQUAL_FATAL(rename(path, to), 0);
			fd = maildir_msg_open(mb, 1);
			CU_ASSERT(fd >= 0);
			if (fd >= 0)
				close(fd);
			CU_ASSERT_STRING_EQUAL(maildir_msg(mb, 1)->name,
			    to + strlen(dir[k]) + 1);
			maildir_free(mb);
			mb = tix_open(dir[k]);
			CU_ASSERT(!maildir_from_index(mb));
			CU_ASSERT_EQUAL(maildir_count(mb), n);
			CU_ASSERT_STRING_EQUAL(maildir_msg(mb, 1)->name,
			    to + strlen(dir[k]) + 1);
			CU_ASSERT_STRING_EQUAL(maildir_msg(mb, 1)->uidl,
			    c->m[1].uidl);
			break;
		case TIX_REMOVE:
			maildir_free(mb);
			snprintf(path, sizeof(path), "%s/%s", dir[k],
			    c->name[2]);
			CU_ASSERT_EQUAL_FATAL(unlink(path), 0);
			mb = tix_open(dir[k]);
			CU_ASSERT(!maildir_from_index(mb));
			CU_ASSERT_EQUAL(maildir_count(mb), n - 1);
			for (i = 0; i < maildir_count(mb); i++)
				CU_ASSERT_STRING_NOT_EQUAL(
				    maildir_msg(mb, i)->name, c->name[2]);
			break;
		case TIX_MIGRATE:
			maildir_free(mb);
			mb = NULL;
			tix_migrate(dir[k], c);
			break;
		case TIX_TRUNC:
		case TIX_GARBAGE:
			maildir_free(mb);
			snprintf(path, sizeof(path), "%s/%s", dir[k],
			    SIZECACHE_INDEX_FILE);
			CU_ASSERT_EQUAL_FATAL(stat(path, &st), 0);
			if (k == TIX_TRUNC) {
				CU_ASSERT_EQUAL(truncate(path,
				    st.st_size - 1), 0);
			} else {
				fd = open(path, O_WRONLY);
				CU_ASSERT_EQUAL(pwrite(fd, "zz", 2,
				    st.st_size / 2), 2);
				close(fd);
			}
			mb = tix_open(dir[k]);
			CU_ASSERT(!maildir_from_index(mb));
			tix_same(mb, c);
			break;
		}
		maildir_free(mb);
	}
	free(c);
	test_rmtree(root);
}

void
test_sizecache_register(void)
{
	CU_pSuite s = CU_add_suite("sizecache", NULL, NULL);

	CU_add_test(s, "write, load, lookup", test_sizecache_roundtrip);
	CU_add_test(s, "damaged or foreign file", test_sizecache_damaged);
	CU_add_test(s, "used by maildir_open", test_sizecache_maildir);
	CU_add_test(s, "index file", test_sizecache_index_file);
	CU_add_test(s, "index: recent directories", test_sizecache_index_recent);
	CU_add_test(s, "index: old evpop3d.sizes", test_sizecache_index_legacy);
	CU_add_test(s, "index: fast path and changes",
	    test_sizecache_index_fast);
}
