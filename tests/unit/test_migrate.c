/* SPDX-License-Identifier: ISC */
/*
 * evpop3d unit tests: migration from other POP3 servers (migrate.c): the
 * pop3_uidl_format expansion, the dovecot-uidlist, courierpop3dsizelist,
 * X-UIDL and evpop3d.uidls parsers (damaged files included), and the
 * login hook over a real temporary Maildir.
 */
#include "config.h"

#include <sys/stat.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <CUnit/CUnit.h>

#include "conf.h"
#include "maildir.h"
#include "migrate.h"
#include "tests.h"

/* Expand fmt for UID 1, UIDVALIDITY 0x6b0302e9 and a Maildir name. */
static const char *
test_migrate_x(const char *fmt)
{
	static char out[MIGRATE_FMT_MAX * 4];
	struct migrate_vars v = {
		.uid = 1, .uidvalidity = 1795359465ULL,
		.filename = "1700000000.M0P1.host,S=20", .filename_len = 25,
	};

	if (migrate_format_expand(fmt, &v, out, sizeof(out)) == -1)
		return "(error)";
	return out;
}

static void
test_migrate_format(void)
{
	const char *es;

	/* Checked against Dovecot 2.3.19: X gives lower-case hex. */
	CU_ASSERT_STRING_EQUAL(test_migrate_x("%08Xu%08Xv"),
	    "000000016b0302e9");
	CU_ASSERT_STRING_EQUAL(test_migrate_x("%v.%u"), "1795359465.1");
	CU_ASSERT_STRING_EQUAL(test_migrate_x("%{uidvalidity}-%{uid}"),
	    "1795359465-1");
	CU_ASSERT_STRING_EQUAL(test_migrate_x("%f"),
	    "1700000000.M0P1.host,S=20");
	CU_ASSERT_STRING_EQUAL(test_migrate_x("%g"),
	    "1700000000.M0P1.host,S=20");
	CU_ASSERT_STRING_EQUAL(test_migrate_x("%XUv"), "6B0302E9");
	CU_ASSERT_STRING_EQUAL(test_migrate_x("%UXv"), "6b0302e9");
	/* Width truncates, zero padding never does; .L is offset.length. */
	CU_ASSERT_STRING_EQUAL(test_migrate_x("%2v"), "17");
	CU_ASSERT_STRING_EQUAL(test_migrate_x("%02v"), "1795359465");
	CU_ASSERT_STRING_EQUAL(test_migrate_x("%04u"), "0001");
	CU_ASSERT_STRING_EQUAL(test_migrate_x("%4u"), "1");
	CU_ASSERT_STRING_EQUAL(test_migrate_x("%1.3v"), "795");
	CU_ASSERT_STRING_EQUAL(test_migrate_x("%-4.4f"), "S=20");
	CU_ASSERT_STRING_EQUAL(test_migrate_x("a%%b%u"), "a%b1");
	CU_ASSERT_STRING_EQUAL(test_migrate_x("%Rf"),
	    "02=S,tsoh.1P0M.0000000071");

	CU_ASSERT_EQUAL(migrate_format_check("%08Xu%08Xv", &es), 0);
	CU_ASSERT_EQUAL(migrate_format_check("%{guid}", &es), 0);
	CU_ASSERT_EQUAL(migrate_format_check("%m", &es), -1);
	CU_ASSERT_EQUAL(migrate_format_check("%{md5}", &es), -1);
	CU_ASSERT_EQUAL(migrate_format_check("%q", &es), -1);
	CU_ASSERT_EQUAL(migrate_format_check("%{uid", &es), -1);
	CU_ASSERT_EQUAL(migrate_format_check("%{nope}", &es), -1);
	CU_ASSERT_EQUAL(migrate_format_check("plain", &es), -1);
	CU_ASSERT_EQUAL(migrate_format_check("%", &es), -1);
	CU_ASSERT_EQUAL(migrate_format_check("%Hu", &es), -1);
}

/* The entry of map m for base, or NULL. */
static const struct migrate_entry *
test_migrate_find(const struct migrate_map *m, const char *base)
{
	size_t i;

	for (i = 0; i < m->n; i++)
		if (strcmp(m->v[i].base, base) == 0)
			return &m->v[i];
	return NULL;
}

static void
test_migrate_dovecot(void)
{
	const char *v3 =
	    "3 V1795359465 N9 G5b866637e902036bd94e000083ecc375\n"
	    "1 W23 :1700000000.M0P1.host\n"
	    "2 W23 S20 :1700000001.M1P1.host:2,S\n"
	    "5 P0815-old W23 :1700000005.M5P1.host\n"
	    "6 O2 G0123abcd :1700000006.M6P1.host\n"
	    "x W23 :garbage.uid\n"
	    "7 W23 no-colon-name\n"
	    "8 :with space.host\n"
	    "0 :zero.uid\n"
	    "9 W1";				/* torn last line */
	const char *v1 = "1 1795359465 4\n1 a.host\n3 b.host:2,\nbad\n";
	const struct migrate_entry *e;
	struct migrate_map m;

	memset(&m, 0, sizeof(m));
	CU_ASSERT_EQUAL(migrate_parse_dovecot(v3, strlen(v3), "%08Xu%08Xv",
	    &m), 5);
	e = test_migrate_find(&m, "1700000000.M0P1.host");
	CU_ASSERT_PTR_NOT_NULL_FATAL(e);
	CU_ASSERT_STRING_EQUAL(e->uidl, "000000016b0302e9");
	/* Flags after ':' are not part of the base name. */
	e = test_migrate_find(&m, "1700000001.M1P1.host");
	CU_ASSERT_PTR_NOT_NULL_FATAL(e);
	CU_ASSERT_STRING_EQUAL(e->uidl, "000000026b0302e9");
	/* A stored POP3 UIDL (P) wins over the format. */
	e = test_migrate_find(&m, "1700000005.M5P1.host");
	CU_ASSERT_PTR_NOT_NULL_FATAL(e);
	CU_ASSERT_STRING_EQUAL(e->uidl, "0815-old");
	/* O (POP3 order) puts it before the messages ordered by UID. */
	e = test_migrate_find(&m, "1700000006.M6P1.host");
	CU_ASSERT_PTR_NOT_NULL_FATAL(e);
	CU_ASSERT(e->order < test_migrate_find(&m,
	    "1700000000.M0P1.host")->order);
	CU_ASSERT(test_migrate_find(&m, "1700000000.M0P1.host")->order <
	    test_migrate_find(&m, "1700000001.M1P1.host")->order);
	/* Odd names are fine when the UIDL does not show them. */
	e = test_migrate_find(&m, "with space.host");
	CU_ASSERT_PTR_NOT_NULL_FATAL(e);
	CU_ASSERT_STRING_EQUAL(e->uidl, "000000086b0302e9");
	migrate_map_free(&m);

	CU_ASSERT_EQUAL(migrate_parse_dovecot(v3, strlen(v3), "%u.%v", &m), 5);
	CU_ASSERT_STRING_EQUAL(test_migrate_find(&m,
	    "1700000006.M6P1.host")->uidl, "6.1795359465");
	migrate_map_free(&m);

	/* %g: the G extension, else the base name; a name with a space
	 * makes no valid UIDL and is left out. */
	CU_ASSERT_EQUAL(migrate_parse_dovecot(v3, strlen(v3), "%g", &m), 4);
	CU_ASSERT_PTR_NULL(test_migrate_find(&m, "with space.host"));
	CU_ASSERT_STRING_EQUAL(test_migrate_find(&m,
	    "1700000006.M6P1.host")->uidl, "0123abcd");
	CU_ASSERT_STRING_EQUAL(test_migrate_find(&m,
	    "1700000000.M0P1.host")->uidl, "1700000000.M0P1.host");
	migrate_map_free(&m);

	CU_ASSERT_EQUAL(migrate_parse_dovecot(v1, strlen(v1), "%08Xu%08Xv",
	    &m), 2);
	CU_ASSERT_STRING_EQUAL(test_migrate_find(&m, "b.host")->uidl,
	    "000000036b0302e9");
	/* UID 2 (below next 4, not listed) is retired. */
	CU_ASSERT_EQUAL_FATAL(m.nretired, 1);
	CU_ASSERT_STRING_EQUAL(m.rbuf + m.roff[0], "000000026b0302e9");
	migrate_map_free(&m);
	/* Under %f the names of deleted messages are unknown: none. */
	CU_ASSERT_EQUAL(migrate_parse_dovecot(v1, strlen(v1), "%f", &m), 2);
	CU_ASSERT_EQUAL(m.nretired, 0);
	migrate_map_free(&m);

	/* Unknown versions, empty files, no UIDVALIDITY: nothing. */
	CU_ASSERT_EQUAL(migrate_parse_dovecot("2 V1 N2\n1 :a\n", 13, "%u",
	    &m), 0);
	CU_ASSERT_EQUAL(migrate_parse_dovecot("", 0, "%u", &m), 0);
	CU_ASSERT_EQUAL(migrate_parse_dovecot("3 N2\n1 :a\n", 10, "%u", &m),
	    0);
	/* Only the octets given are read (no NUL needed). */
	CU_ASSERT_EQUAL(migrate_parse_dovecot("3 V1\n1 :abc", 9, "%f", &m),
	    1);
	CU_ASSERT_STRING_EQUAL(m.v[0].uidl, "a");
	migrate_map_free(&m);
	CU_ASSERT_EQUAL(migrate_parse_dovecot("3", 1, "%u", &m), 0);
	CU_ASSERT_EQUAL(m.n, 0);
	migrate_map_free(&m);
}

static void
test_migrate_courier(void)
{
	const char *v3 = "/3 5 1700000100\n"
	    "1700000000.M1P1.host:2,S 120 1:1700000100:0\n"
	    "1700000001.M1P1 spaced.host:2, 130 2:1700000100:1\n"
	    "1700000002.M1P1.host 140 3:0:0\n"
	    "broken line\n"
	    "1700000003.M1P1.host x 4:1700000100:0\n"
	    "1700000004.M1P1.host 150 0:1700000100:0\n";
	const char *v2 = "/2 3 99\n170.a 10 1:99\n171.b 10 2:99\n";
	const char *old = "170.a+b 10\n171.c:2,S 20\nnosize\n";
	struct migrate_map m;

	memset(&m, 0, sizeof(m));
	CU_ASSERT_EQUAL(migrate_parse_courier(v3, strlen(v3), &m), 3);
	CU_ASSERT_STRING_EQUAL(test_migrate_find(&m,
	    "1700000000.M1P1.host")->uidl, "UID1-1700000100");
	CU_ASSERT_STRING_EQUAL(test_migrate_find(&m,
	    "1700000001.M1P1 spaced.host")->uidl, "UID2-1700000100");
	CU_ASSERT_STRING_EQUAL(test_migrate_find(&m,
	    "1700000002.M1P1.host")->uidl, "UID3");
	CU_ASSERT(test_migrate_find(&m, "1700000000.M1P1.host")->order <
	    test_migrate_find(&m, "1700000002.M1P1.host")->order);
	migrate_map_free(&m);

	CU_ASSERT_EQUAL(migrate_parse_courier(v2, strlen(v2), &m), 2);
	CU_ASSERT_STRING_EQUAL(test_migrate_find(&m, "171.b")->uidl,
	    "UID2-99");
	CU_ASSERT_EQUAL(m.nretired, 0);
	migrate_map_free(&m);
	/* UIDs 1 and 3 below next 4 are gone: retired. */
	CU_ASSERT_EQUAL(migrate_parse_courier("/3 4 7\n17.a 1 2:7:0\n", 20,
	    &m), 1);
	CU_ASSERT_EQUAL_FATAL(m.nretired, 2);
	CU_ASSERT_STRING_EQUAL(m.rbuf + m.roff[1], "UID3-7");
	migrate_map_free(&m);

	/* Courier before 0.43: the escaped base name. */
	CU_ASSERT_EQUAL(migrate_parse_courier(old, strlen(old), &m), 2);
	CU_ASSERT_STRING_EQUAL(test_migrate_find(&m, "170.a+b")->uidl,
	    "170.a+2Bb");
	CU_ASSERT_STRING_EQUAL(test_migrate_find(&m, "171.c")->uidl, "171.c");
	migrate_map_free(&m);

	CU_ASSERT_EQUAL(migrate_parse_courier("/9 1 1\na 1 1:1\n", 15, &m), 0);
	CU_ASSERT_EQUAL(migrate_parse_courier("/", 1, &m), 0);
	CU_ASSERT_EQUAL(migrate_parse_courier("", 0, &m), 0);
	migrate_map_free(&m);
}

static void
test_migrate_xuidl(void)
{
	char out[MAILDIR_UIDL_MAX + 1];
	const char *h1 = "Received: x\r\nx-uidl:  abc123 \r\nSubject: s\r\n\r\n";
	const char *h2 = "Subject: s\n\nX-UIDL: inbody\n";
	const char *h3 = "X-UIDL: has space\nX-UIDL: second\n\n";
	const char *h4 = "X-UIDL: "
	    "0123456789012345678901234567890123456789012345678901234567890123456"
	    "789x\n\n";

	CU_ASSERT_EQUAL(migrate_xuidl(h1, strlen(h1), out), 1);
	CU_ASSERT_STRING_EQUAL(out, "abc123");
	/* Only the header counts. */
	CU_ASSERT_EQUAL(migrate_xuidl(h2, strlen(h2), out), 0);
	/* An invalid value is skipped, a later valid one used. */
	CU_ASSERT_EQUAL(migrate_xuidl(h3, strlen(h3), out), 1);
	CU_ASSERT_STRING_EQUAL(out, "second");
	/* 71 octets: too long for RFC 1939. */
	CU_ASSERT_EQUAL(migrate_xuidl(h4, strlen(h4), out), 0);
	CU_ASSERT_EQUAL(migrate_xuidl("X-UIDL:", 7, out), 0);
}

static void
test_migrate_state(void)
{
	const char *t = "evpop3d-uidls 1\n3 u3 c.host\nbad\n1 u1 a.host\n"
	    "x u9 z.host\n2 u2 with space\n4 u4\n";
	struct migrate_map m;

	memset(&m, 0, sizeof(m));
	CU_ASSERT_EQUAL(migrate_parse_state(t, strlen(t), &m), 3);
	CU_ASSERT_STRING_EQUAL(test_migrate_find(&m, "with space")->uidl,
	    "u2");
	CU_ASSERT_EQUAL(test_migrate_find(&m, "a.host")->order, 1);
	migrate_map_free(&m);
	CU_ASSERT_EQUAL(migrate_parse_state("evpop3d-uidls 2\n1 u a\n", 22,
	    &m), 0);
	migrate_map_free(&m);
	/* Retired UIDLs: kept, invalid ones dropped. */
	t = "evpop3d-uidls 1\nR old-1\nR \nR bad one\n1 u1 a\n";
	CU_ASSERT_EQUAL(migrate_parse_state(t, strlen(t), &m), 1);
	CU_ASSERT_EQUAL_FATAL(m.nretired, 1);
	CU_ASSERT_STRING_EQUAL(m.rbuf + m.roff[0], "old-1");
	migrate_map_free(&m);
}

/* Write a message file dir/sub/name with the given header line. */
static void
test_migrate_msg(const char *dir, const char *rel, const char *hdr)
{
	char path[1024], text[512];

	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	snprintf(text, sizeof(text), "%sSubject: %s\n\nbody\n", hdr, rel);
	CU_ASSERT_EQUAL_FATAL(test_write_file(path, text, strlen(text)), 0);
}

/* Open dir with opts; UIDLs in order into u (space separated). */
static void
test_migrate_open(const char *dir, const struct migrate_opts *o, char *u,
    size_t ulen)
{
	struct mailbox *mb = NULL;
	const char *es;
	size_t i, n;

	u[0] = '\0';
	CU_ASSERT_EQUAL_FATAL(maildir_open_migrate(dir, &mb, NULL, &es, o), 0);
	for (i = 0, n = 0; i < maildir_count(mb); i++)
		n += (size_t)snprintf(u + n, ulen - n, "%s%s", i ? " " : "",
		    maildir_msg(mb, i)->uidl);
	maildir_free(mb);
}

static void
test_migrate_apply(void)
{
	struct migrate_opts o;
	char dir[512], path[600], u[2048], digest[64];
	/* Dovecot knew 2.x and 1.x (UIDs 5 and 7); 3.x and the one named like
	 * an old UIDL are new. */
	const char *ul = "3 V100 N8 Gx\n7 :1.x\n5 :2.x\n";

	snprintf(dir, sizeof(dir), "%s", test_tmpdir());
	CU_ASSERT_EQUAL_FATAL(maildir_create(dir), 0);
	test_migrate_msg(dir, "cur/1.x:2,S", "");
	test_migrate_msg(dir, "cur/2.x:2,", "");
	test_migrate_msg(dir, "new/3.x", "");
	test_migrate_msg(dir, "new/5.100", "");	/* == 2.x's old UIDL */
	snprintf(path, sizeof(path), "%s/dovecot-uidlist", dir);
	CU_ASSERT_EQUAL_FATAL(test_write_file(path, ul, strlen(ul)), 0);

	/* Off: nothing changes, nothing is written. */
	memset(&o, 0, sizeof(o));
	test_migrate_open(dir, &o, u, sizeof(u));
	CU_ASSERT_STRING_EQUAL(u, "1.x 2.x 3.x 5.100");
	snprintf(path, sizeof(path), "%s/%s", dir, MIGRATE_STATE_FILE);
	CU_ASSERT_EQUAL(access(path, F_OK), -1);

	snprintf(o.dovecot_fmt, sizeof(o.dovecot_fmt), "%%u.%%v");
	test_migrate_open(dir, &o, u, sizeof(u));
	/* Dovecot's order (by UID), then the new ones; 5.100 may not keep
	 * the UIDL 2.x had. */
	CU_ASSERT_EQUAL(strncmp(u, "5.100 7.100 3.x X:", 18), 0);
	CU_ASSERT_EQUAL(strlen(u), 18 + 40);
	snprintf(digest, sizeof(digest), "%.42s", u + 16);
	CU_ASSERT_EQUAL(access(path, F_OK), 0);

	/* Dovecot's files gone, a message deleted, one more delivered: the
	 * saved mapping still holds, 5.100 keeps its stable digest, and the
	 * deleted message's UIDL is never reused. */
	snprintf(path, sizeof(path), "%s/dovecot-uidlist", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/cur/2.x:2,", dir);
	unlink(path);
	test_migrate_msg(dir, "new/0.x", "");
	/* UID 4 was below N8 but not listed: deleted under Dovecot, its
	 * UIDL retired. */
	test_migrate_msg(dir, "new/4.100", "");
	test_migrate_open(dir, &o, u, sizeof(u));
	CU_ASSERT_EQUAL(strncmp(u, "7.100 0.x 3.x X:", 16), 0);
	CU_ASSERT_PTR_NULL(strstr(u, "4.100"));
	CU_ASSERT_PTR_NOT_NULL(strstr(u, digest));
	CU_ASSERT_EQUAL(strlen(u), 14 + 2 * 42 + 1);
	/* The key turned off after the import: the saved UIDLs still hold
	 * for a login, not for a plain maildir_open (o NULL). */
	memset(&o, 0, sizeof(o));
	test_migrate_open(dir, &o, u, sizeof(u));
	CU_ASSERT_EQUAL(strncmp(u, "7.100 0.x 3.x X:", 16), 0);
	test_migrate_open(dir, NULL, u, sizeof(u));
	CU_ASSERT_STRING_EQUAL(u, "0.x 1.x 3.x 4.100 5.100");
	test_rmtree(dir);
}

static void
test_migrate_apply_sources(void)
{
	struct migrate_opts o;
	char dir[512], path[600], u[2048];
	const char *cl = "/3 4 99\n20.c:2,S 10 2:99:0\n10.c 10 1:99:0\n";
	const char *sl;

	snprintf(dir, sizeof(dir), "%s", test_tmpdir());
	CU_ASSERT_EQUAL_FATAL(maildir_create(dir), 0);
	test_migrate_msg(dir, "cur/10.c:2,", "");
	test_migrate_msg(dir, "cur/20.c:2,S", "X-UIDL: ignored-courier\n");
	test_migrate_msg(dir, "cur/30.q", "X-UIDL: qp-30\n");
	test_migrate_msg(dir, "cur/40.q", "X-UIDL: qp-30\n");	/* dup */
	test_migrate_msg(dir, "cur/50.q", "X-UIDL: UID1-99\n");	/* forged */
	test_migrate_msg(dir, "cur/60.n", "");
	snprintf(path, sizeof(path), "%s/courierpop3dsizelist", dir);
	CU_ASSERT_EQUAL_FATAL(test_write_file(path, cl, strlen(cl)), 0);
	memset(&o, 0, sizeof(o));
	o.courier = 1;
	o.xuidl = 1;
	test_migrate_open(dir, &o, u, sizeof(u));
	/* Courier's first, then X-UIDL (a duplicate, or a UIDL already
	 * taken, does not count: such a message shows its own), then the
	 * rest. */
	CU_ASSERT_STRING_EQUAL(u, "UID1-99 UID2-99 qp-30 40.q 50.q 60.n");
	/* The header is read once: the state file answers next time. */
	snprintf(path, sizeof(path), "%s/%s", dir, MIGRATE_STATE_FILE);
	{
		size_t n;
		FILE *f = fopen(path, "r");
		char buf[1024];

		CU_ASSERT_PTR_NOT_NULL_FATAL(f);
		n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
		buf[n] = '\0';
		sl = strstr(buf, " qp-30 30.q\n");
		CU_ASSERT_PTR_NOT_NULL(sl);
	}
	snprintf(path, sizeof(path), "%s/cur/30.q", dir);
	unlink(path);
	test_migrate_msg(dir, "cur/30.q", "X-UIDL: changed\n");
	test_migrate_open(dir, &o, u, sizeof(u));
	CU_ASSERT_STRING_EQUAL(u, "UID1-99 UID2-99 qp-30 40.q 50.q 60.n");
	test_rmtree(dir);
}

/* Garbage of every kind as sources: imported partly or not, no crash. */
static void
test_migrate_damaged(void)
{
	static const char *junk[] = {
		"", "\n\n\n", "3 V", "3 V1\n\n\n:", "3 V1\n1", "3 V1\n1 :",
		"3 V1\n1 P :a\n", "1 1\n1\n", "/3\n", "/3 1 1\n a 1 1:1\n",
		"/3 1 1\n 1 1:1:1:1:1\n", "3 V1\n4294967296 :big\n",
		"3 V1\n2 O99999999999999999999 :b\n",
	};
	struct migrate_opts o;
	char dir[512], path[600], u[2048];
	size_t i;

	snprintf(dir, sizeof(dir), "%s", test_tmpdir());
	CU_ASSERT_EQUAL_FATAL(maildir_create(dir), 0);
	test_migrate_msg(dir, "cur/a", "X-UIDL:\n");
	test_migrate_msg(dir, "cur/b", "");
	memset(&o, 0, sizeof(o));
	snprintf(o.dovecot_fmt, sizeof(o.dovecot_fmt), "%%u");
	o.courier = 1;
	for (i = 0; i < sizeof(junk) / sizeof(junk[0]); i++) {
		snprintf(path, sizeof(path), "%s/dovecot-uidlist", dir);
		test_write_file(path, junk[i], strlen(junk[i]));
		snprintf(path, sizeof(path), "%s/courierpop3dsizelist", dir);
		test_write_file(path, junk[i], strlen(junk[i]));
		snprintf(path, sizeof(path), "%s/%s", dir, MIGRATE_STATE_FILE);
		unlink(path);
		test_migrate_open(dir, &o, u, sizeof(u));
		CU_ASSERT(strlen(u) > 0);
	}
	/* A damaged state file is used partly. */
	test_write_file(path, "evpop3d-uidls 1\n5 ok b\n7\n", 25);
	test_migrate_open(dir, &o, u, sizeof(u));
	CU_ASSERT_STRING_EQUAL(u, "ok a");
	test_rmtree(dir);
}

static void
test_migrate_conf(void)
{
	const char *base = "passwd_file /x\nmail_location /m/%u\n";
	char text[512], err[256], warn[256];
	struct config *cf;
	struct migrate_opts o;

	snprintf(text, sizeof(text), "%sdovecot_uidl_format %%08Xu%%08Xv\n"
	    "courier_uidl yes\nxuidl_header no\n", base);
	cf = conf_parse("t", text, strlen(text), err, sizeof(err), warn,
	    sizeof(warn));
	CU_ASSERT_PTR_NOT_NULL_FATAL(cf);
	migrate_opts_from_conf(&o, cf);
	CU_ASSERT_STRING_EQUAL(o.dovecot_fmt, "%08Xu%08Xv");
	CU_ASSERT_EQUAL(o.courier, 1);
	CU_ASSERT_EQUAL(o.xuidl, 0);
	CU_ASSERT(migrate_enabled(&o));
	conf_free(cf);

	snprintf(text, sizeof(text), "%sdovecot_uidl_format %%m\n", base);
	cf = conf_parse("t", text, strlen(text), err, sizeof(err), warn,
	    sizeof(warn));
	CU_ASSERT_PTR_NULL(cf);
	CU_ASSERT(strstr(err, "t:3:") != NULL);
	conf_free(cf);
	snprintf(text, sizeof(text), "%sxuidl_header maybe\n", base);
	cf = conf_parse("t", text, strlen(text), err, sizeof(err), warn,
	    sizeof(warn));
	CU_ASSERT_PTR_NULL(cf);
	conf_free(cf);
	snprintf(text, sizeof(text), "%sdovecot_uidl_format none\n", base);
	cf = conf_parse("t", text, strlen(text), err, sizeof(err), warn,
	    sizeof(warn));
	CU_ASSERT_PTR_NOT_NULL_FATAL(cf);
	migrate_opts_from_conf(&o, cf);
	CU_ASSERT(!migrate_enabled(&o));
	conf_free(cf);
}

void
test_migrate_register(void)
{
	CU_pSuite s = CU_add_suite("migrate", NULL, NULL);

	CU_add_test(s, "pop3_uidl_format expansion", test_migrate_format);
	CU_add_test(s, "dovecot-uidlist", test_migrate_dovecot);
	CU_add_test(s, "courierpop3dsizelist", test_migrate_courier);
	CU_add_test(s, "X-UIDL header", test_migrate_xuidl);
	CU_add_test(s, "evpop3d.uidls", test_migrate_state);
	CU_add_test(s, "login hook: Dovecot, collisions, state",
	    test_migrate_apply);
	CU_add_test(s, "login hook: Courier and X-UIDL",
	    test_migrate_apply_sources);
	CU_add_test(s, "damaged sources", test_migrate_damaged);
	CU_add_test(s, "configuration keys", test_migrate_conf);
}
