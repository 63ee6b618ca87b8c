/*
 * evpop3d unit tests - test_msgfmt.c: the wire encoder (msgfmt.h).  Every
 * result is checked against a deliberately naive reference encoder written
 * here from the rules in msgfmt.h, for whole buffers, 1-octet chunks and
 * random chunks, with and without dot-stuffing and TOP.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "msgfmt.h"
#include "tests.h"

/* A growable octet string. */
struct tmf_buf {
	unsigned char	*p;
	size_t		 len;
	size_t		 cap;
};

/* How to cut the input into msgfmt_feed calls. */
enum tmf_chunking { TMF_WHOLE, TMF_BYTES, TMF_RANDOM, TMF_RANDOM_BIG };

static uint64_t	tmf_rng_state;

/* xorshift64*: reproducible pseudo-random numbers. */
static uint64_t
tmf_rand(void)
{
	uint64_t x = tmf_rng_state;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	tmf_rng_state = x;
	return x * 0x2545f4914f6cdd1dULL;
}

static void
tmf_put(struct tmf_buf *b, const void *p, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		b->cap = (b->len + n + 1) * 2;
		b->p = realloc(b->p, b->cap);
		if (b->p == NULL)
			abort();
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = '\0';
}

/*
 * The reference: drop the CR of every CRLF, add a final LF if missing,
 * split at LF, keep header lines up to the first empty one plus top body
 * lines, and write each line with '.' doubled (if stuffing) and CRLF.
 */
static void
tmf_reference(const unsigned char *in, size_t n, long long top, int stuff,
    struct tmf_buf *out)
{
	struct tmf_buf d = { NULL, 0, 0 };
	size_t i, start;
	int in_body = 0;
	long long body = 0;

	out->len = 0;
	tmf_put(out, "", 0);
	for (i = 0; i < n; i++) {
		if (in[i] == '\r' && i + 1 < n && in[i + 1] == '\n')
			continue;
		tmf_put(&d, &in[i], 1);
	}
	if (d.len > 0 && d.p[d.len - 1] != '\n')
		tmf_put(&d, "\n", 1);
	for (start = 0, i = 0; i < d.len; i++) {
		if (d.p[i] != '\n')
			continue;
		if (top >= 0 && in_body && body >= top)
			break;
		if (stuff && i > start && d.p[start] == '.')
			tmf_put(out, ".", 1);
		tmf_put(out, d.p + start, i - start);
		tmf_put(out, "\r\n", 2);
		if (!in_body && i == start)
			in_body = 1;
		else if (in_body)
			body++;
		start = i + 1;
	}
	free(d.p);
}

/* Encode with msgfmt, cutting the input as asked; checks the counters. */
static void
tmf_encode(const unsigned char *in, size_t n, long long top, int stuff,
    enum tmf_chunking how, struct tmf_buf *out)
{
	struct msgfmt m;
	unsigned char *o;
	size_t off = 0, chunk, r, total = 0;

	out->len = 0;
	tmf_put(out, "", 0);
	msgfmt_init(&m, top, stuff);
	while (off < n) {
		switch (how) {
		case TMF_WHOLE:
			chunk = n;
			break;
		case TMF_BYTES:
			chunk = 1;
			break;
		case TMF_RANDOM_BIG:
			chunk = 1 + tmf_rand() % 300;
			break;
		default:
			chunk = 1 + tmf_rand() % 17;
			break;
		}
		if (chunk > n - off)
			chunk = n - off;
		/* Exactly the documented room, so ASan sees any overrun. */
		if ((o = malloc(MSGFMT_OUT_MAX(chunk))) == NULL)
			abort();
		r = msgfmt_feed(&m, in + off, chunk, o);
		CU_ASSERT(r <= MSGFMT_OUT_MAX(chunk));
		tmf_put(out, o, r);
		free(o);
		total += r;
		off += chunk;
		if (msgfmt_done(&m))
			break;
	}
	if ((o = malloc(4)) == NULL)
		abort();
	r = msgfmt_finish(&m, o);
	CU_ASSERT(r <= 4);
	tmf_put(out, o, r);
	free(o);
	total += r;
	CU_ASSERT_EQUAL(m.octets, total);
	CU_ASSERT_EQUAL(total, out->len);
}

/* in (a C string) must encode to want, whatever the chunking. */
static void
tmf_expect(const char *in, long long top, int stuff, const char *want)
{
	struct tmf_buf out = { NULL, 0, 0 };
	size_t n = strlen(in), wl = strlen(want);
	int how;

	for (how = TMF_WHOLE; how <= TMF_RANDOM; how++) {
		tmf_encode((const unsigned char *)in, n, top, stuff, how, &out);
		CU_ASSERT_EQUAL(out.len, wl);
		CU_ASSERT(out.len == wl && memcmp(out.p, want, wl) == 0);
		if (out.len != wl || memcmp(out.p, want, wl) != 0)
			fprintf(stderr, "\nmsgfmt: input \"%s\" top %lld stuff"
			    " %d chunking %d gave \"%s\"\n", in, top, stuff,
			    how, out.p);
	}
	tmf_reference((const unsigned char *)in, n, top, stuff, &out);
	CU_ASSERT(out.len == wl && memcmp(out.p, want, wl) == 0);
	free(out.p);
}

/* Feed the given pieces one call each; compare to want. */
static void
tmf_expect_split(const char *const *pieces, long long top, int stuff,
    const char *want)
{
	struct msgfmt m;
	struct tmf_buf out = { NULL, 0, 0 };
	unsigned char o[64];
	size_t r;

	msgfmt_init(&m, top, stuff);
	for (; *pieces != NULL; pieces++) {
		r = msgfmt_feed(&m, (const unsigned char *)*pieces,
		    strlen(*pieces), o);
		tmf_put(&out, o, r);
	}
	r = msgfmt_finish(&m, o);
	tmf_put(&out, o, r);
	CU_ASSERT_EQUAL(out.len, strlen(want));
	CU_ASSERT(out.len == strlen(want) &&
	    memcmp(out.p, want, out.len) == 0);
	free(out.p);
}

static void
test_msgfmt_line_ends(void)
{
	tmf_expect("a\r\nb\r\n", -1, 1, "a\r\nb\r\n");
	tmf_expect("a\nb\n", -1, 1, "a\r\nb\r\n");
	tmf_expect("a\nb\r\nc\n", -1, 0, "a\r\nb\r\nc\r\n");
	tmf_expect("\n\n", -1, 1, "\r\n\r\n");
	/* A lone CR is data. */
	tmf_expect("a\rb\n", -1, 1, "a\rb\r\n");
	tmf_expect("\r\r\n", -1, 1, "\r\r\n");
	tmf_expect("a\r\r\r\nb", -1, 1, "a\r\r\r\nb\r\n");
	/* CR at the very end: kept, and the line still gets its CRLF. */
	tmf_expect("a\r", -1, 1, "a\r\r\n");
	tmf_expect("a\n\r", -1, 1, "a\r\n\r\r\n");
	tmf_expect("\r", -1, 0, "\r\r\n");
	/* No newline at the end. */
	tmf_expect("a\nb", -1, 1, "a\r\nb\r\n");
	tmf_expect("x", -1, 0, "x\r\n");
	/* NUL and 8-bit octets pass through. */
	tmf_expect_split((const char *const []){ "\xff\xfe\n", NULL }, -1, 1,
	    "\xff\xfe\r\n");
}

static void
test_msgfmt_empty(void)
{
	struct msgfmt m;
	unsigned char o[8];
	const unsigned char nul[3] = { 'a', '\0', 'b' };

	tmf_expect("", -1, 1, "");
	CU_ASSERT_EQUAL(msgfmt_size((const unsigned char *)"", 0), 0);
	msgfmt_init(&m, -1, 1);
	CU_ASSERT_EQUAL(msgfmt_feed(&m, o, 0, o), 0);
	CU_ASSERT_EQUAL(msgfmt_finish(&m, o), 0);
	CU_ASSERT_EQUAL(m.octets, 0);
	/* Calling finish twice adds nothing the second time. */
	msgfmt_init(&m, -1, 1);
	CU_ASSERT_EQUAL(msgfmt_feed(&m, (const unsigned char *)"ab", 2, o), 2);
	CU_ASSERT_EQUAL(msgfmt_finish(&m, o), 2);
	CU_ASSERT_EQUAL(msgfmt_finish(&m, o), 0);
	CU_ASSERT_EQUAL(m.octets, 4);
	/* A NUL is one octet like any other. */
	CU_ASSERT_EQUAL(msgfmt_size(nul, sizeof(nul)), 5);
}

static void
test_msgfmt_dots(void)
{
	static const char *const split1[] = { "a\r\n", ".b\n", NULL };
	static const char *const split2[] = { "a\r", "\n", ".b", NULL };
	static const char *const split3[] = { "a\n", ".", ".", "\n", NULL };
	static const char *const split4[] = { ".", "", "x", NULL };

	tmf_expect(".\n", -1, 1, "..\r\n");
	tmf_expect("a\n.\n", -1, 1, "a\r\n..\r\n");
	tmf_expect("..x\n", -1, 1, "...x\r\n");
	tmf_expect(".first\nsecond\n", -1, 1, "..first\r\nsecond\r\n");
	tmf_expect("a.b\n.", -1, 1, "a.b\r\n..\r\n");
	tmf_expect("x\r\n.\r\n.y", -1, 1, "x\r\n..\r\n..y\r\n");
	/* Only at line start: after a lone CR the line has begun. */
	tmf_expect("\r.x\n", -1, 1, "\r.x\r\n");
	/* Counting mode never stuffs. */
	tmf_expect(".\n..x\n", -1, 0, ".\r\n..x\r\n");
	CU_ASSERT_EQUAL(msgfmt_size((const unsigned char *)".\n..x\n", 6), 8);

	tmf_expect_split(split1, -1, 1, "a\r\n..b\r\n");
	tmf_expect_split(split2, -1, 1, "a\r\n..b\r\n");
	tmf_expect_split(split3, -1, 1, "a\r\n...\r\n");
	tmf_expect_split(split4, -1, 1, "..x\r\n");
}

static void
test_msgfmt_splits(void)
{
	static const char *const crlf[] = { "a\r", "\nb\n", NULL };
	static const char *const crcr[] = { "a\r", "\r", "\n", NULL };
	static const char *const crx[] = { "a\r", "b", NULL };
	static const char *const crend[] = { "a", "\r", NULL };
	static const char *const lfdot[] = { "a\n", ".", NULL };
	struct msgfmt m;
	unsigned char o[16];
	size_t r1, r2;

	tmf_expect_split(crlf, -1, 1, "a\r\nb\r\n");
	tmf_expect_split(crcr, -1, 1, "a\r\r\n");
	tmf_expect_split(crx, -1, 1, "a\rb\r\n");
	tmf_expect_split(crend, -1, 1, "a\r\r\n");
	tmf_expect_split(lfdot, -1, 1, "a\r\n..\r\n");

	/* The octets of one call add up, wherever the cut is. */
	msgfmt_init(&m, -1, 1);
	r1 = msgfmt_feed(&m, (const unsigned char *)"a\r", 2, o);
	r2 = msgfmt_feed(&m, (const unsigned char *)"\n", 1, o + r1);
	CU_ASSERT_EQUAL(r1 + r2, 3);
	CU_ASSERT_EQUAL(m.octets, 3);
	CU_ASSERT(memcmp(o, "a\r\n", 3) == 0);
}

static void
test_msgfmt_top(void)
{
	static const char msg[] =
	    "From: a\nSubject: b\n\nL1\n.L2\nL3\n";
	static const char crlfmsg[] =
	    "From: a\r\nSubject: b\r\n\r\nL1\r\nL2\r\n";
	static const char *const heldcr[] = { "H\n\r", "\nB\n", NULL };
	struct msgfmt m;
	unsigned char o[256];
	size_t r;

	tmf_expect(msg, 0, 1, "From: a\r\nSubject: b\r\n\r\n");
	tmf_expect(msg, 1, 1, "From: a\r\nSubject: b\r\n\r\nL1\r\n");
	tmf_expect(msg, 2, 1, "From: a\r\nSubject: b\r\n\r\nL1\r\n..L2\r\n");
	tmf_expect(msg, 3, 1,
	    "From: a\r\nSubject: b\r\n\r\nL1\r\n..L2\r\nL3\r\n");
	tmf_expect(msg, 1000000000000LL, 1,
	    "From: a\r\nSubject: b\r\n\r\nL1\r\n..L2\r\nL3\r\n");
	tmf_expect(crlfmsg, 0, 1, "From: a\r\nSubject: b\r\n\r\n");
	tmf_expect(crlfmsg, 1, 1, "From: a\r\nSubject: b\r\n\r\nL1\r\n");
	/* Headers only: all of it is header, whatever n. */
	tmf_expect("H: a\nH: b", 0, 1, "H: a\r\nH: b\r\n");
	tmf_expect("H: a\nH: b\n", 5, 1, "H: a\r\nH: b\r\n");
	/* Empty body. */
	tmf_expect("H: a\n\n", 0, 1, "H: a\r\n\r\n");
	tmf_expect("H: a\n\n", 5, 1, "H: a\r\n\r\n");
	/* A line holding a lone CR is not the empty line. */
	tmf_expect("H\n\rx\nB\n", 0, 1, "H\r\n\rx\r\nB\r\n");
	tmf_expect("H\n\r\nB\n", 0, 1, "H\r\n\r\n");
	/* Body lines after the empty line may be empty too. */
	tmf_expect("H\n\n\n\nB\n", 2, 1, "H\r\n\r\n\r\n\r\n");
	/* Last body line without newline still ends in CRLF. */
	tmf_expect("H\n\nB", 5, 1, "H\r\n\r\nB\r\n");
	tmf_expect_split(heldcr, 0, 1, "H\r\n\r\n");

	/* done: set exactly when the limit is reached; later input ignored. */
	msgfmt_init(&m, 1, 1);
	r = msgfmt_feed(&m, (const unsigned char *)"H\n\n", 3, o);
	CU_ASSERT_EQUAL(r, 5);
	CU_ASSERT_FALSE(msgfmt_done(&m));
	r = msgfmt_feed(&m, (const unsigned char *)"B1\nB2\n", 6, o);
	CU_ASSERT_EQUAL(r, 4);
	CU_ASSERT(msgfmt_done(&m));
	CU_ASSERT_EQUAL(msgfmt_feed(&m, (const unsigned char *)"x\n", 2, o),
	    0);
	CU_ASSERT_EQUAL(msgfmt_finish(&m, o), 0);
	CU_ASSERT_EQUAL(m.octets, 9);
	/* RETR is never done. */
	msgfmt_init(&m, -1, 1);
	msgfmt_feed(&m, (const unsigned char *)msg, sizeof(msg) - 1, o);
	CU_ASSERT_FALSE(msgfmt_done(&m));
}

/* Random input over an alphabet rich in line ends and dots. */
static size_t
tmf_random_input(unsigned char *buf, size_t max)
{
	static const unsigned char alpha[] = "\r\n.\n.a b\r\x00\xe9";
	size_t n = tmf_rand() % max, i;

	for (i = 0; i < n; i++)
		buf[i] = alpha[tmf_rand() % (sizeof(alpha) - 1)];
	return n;
}

/* Un-stuff wire lines: drop the first '.' of lines starting with one. */
static void
tmf_unstuff(const struct tmf_buf *in, struct tmf_buf *out)
{
	size_t i, start = 0;

	out->len = 0;
	tmf_put(out, "", 0);
	for (i = 0; i < in->len; i++) {
		if (in->p[i] != '\n')
			continue;
		if (in->p[start] == '.')
			start++;
		tmf_put(out, in->p + start, i + 1 - start);
		start = i + 1;
	}
	tmf_put(out, in->p + start, in->len - start);
}

/* Encode in every TOP count of tops, with and without stuffing, fed in
 * every way up to last_how; count outputs that differ from the reference. */
static int
tmf_check_all(const unsigned char *in, size_t n, const long long *tops,
    size_t ntops, int last_how, struct tmf_buf *ref, struct tmf_buf *got)
{
	size_t t;
	int stuff, how, bad = 0;

	for (t = 0; t < ntops; t++)
		for (stuff = 0; stuff <= 1; stuff++) {
			tmf_reference(in, n, tops[t], stuff, ref);
			for (how = TMF_WHOLE; how <= last_how; how++) {
				tmf_encode(in, n, tops[t], stuff, how, got);
				if (got->len != ref->len ||
				    memcmp(got->p, ref->p, ref->len) != 0)
					bad++;
			}
		}
	return bad;
}

static void
test_msgfmt_chunking(void)
{
	static const long long tops[] = { -1, 0, 1, 3 };
	unsigned char in[300];
	struct tmf_buf ref = { NULL, 0, 0 }, got = { NULL, 0, 0 };
	size_t n;
	int iter, bad = 0;

	tmf_rng_state = 0x9e3779b97f4a7c15ULL;
	for (iter = 0; iter < 1500; iter++) {
		n = tmf_random_input(in, sizeof(in));
		bad += tmf_check_all(in, n, tops, sizeof(tops) /
		    sizeof(tops[0]), TMF_RANDOM, &ref, &got);
	}
	CU_ASSERT_EQUAL(bad, 0);
	free(ref.p);
	free(got.p);
}

static void
test_msgfmt_property(void)
{
	static const long long tops[] = { -1, 2 };
	unsigned char in[400];
	struct tmf_buf plain = { NULL, 0, 0 }, wire = { NULL, 0, 0 };
	struct tmf_buf un = { NULL, 0, 0 };
	size_t n, t, dots, i;
	int iter, bad_unstuff = 0, bad_size = 0, bad_dots = 0;

	tmf_rng_state = 0x0123456789abcdefULL;
	for (iter = 0; iter < 2000; iter++) {
		n = tmf_random_input(in, sizeof(in));
		for (t = 0; t < sizeof(tops) / sizeof(tops[0]); t++) {
			tmf_encode(in, n, tops[t], 0, TMF_RANDOM, &plain);
			tmf_encode(in, n, tops[t], 1, TMF_RANDOM, &wire);
			tmf_unstuff(&wire, &un);
			if (un.len != plain.len ||
			    memcmp(un.p, plain.p, plain.len) != 0)
				bad_unstuff++;
			/* Stuffing adds one octet per line starting '.'. */
			for (dots = 0, i = 0; i < plain.len; i++)
				if (plain.p[i] == '.' &&
				    (i == 0 || plain.p[i - 1] == '\n'))
					dots++;
			if (wire.len != plain.len + dots)
				bad_dots++;
			if (tops[t] < 0 && plain.len != msgfmt_size(in, n))
				bad_size++;
		}
	}
	CU_ASSERT_EQUAL(bad_unstuff, 0);
	CU_ASSERT_EQUAL(bad_dots, 0);
	CU_ASSERT_EQUAL(bad_size, 0);
	free(plain.p);
	free(wire.p);
	free(un.p);
}

/*
 * Lines of 0-100 octets, mostly letters: the encoder's 16-octet block path
 * meets line ends, CRs and dots at every offset within a block and chunk
 * ends inside and right after a block.
 */
static size_t
tmf_long_lines(unsigned char *buf, size_t max)
{
	size_t n = 0, len, i;

	while (n < max) {
		len = tmf_rand() % 101;
		for (i = 0; i < len && n < max; i++) {
			switch (tmf_rand() % 40) {
			case 0:
				buf[n++] = '\r';
				break;
			case 1:
				buf[n++] = '.';
				break;
			default:
				buf[n++] = 'a' + tmf_rand() % 26;
				break;
			}
		}
		if (n < max && tmf_rand() % 8 != 0)
			buf[n++] = '\n';
		if (n < max && tmf_rand() % 4 == 0)
			buf[n++] = '.';
	}
	return n - tmf_rand() % 20;
}

static void
test_msgfmt_long_lines(void)
{
	static const long long tops[] = { -1, 0, 4 };
	unsigned char in[1500];
	struct tmf_buf ref = { NULL, 0, 0 }, got = { NULL, 0, 0 };
	size_t n;
	int iter, bad = 0;

	tmf_rng_state = 0x5851f42d4c957f2dULL;
	for (iter = 0; iter < 400; iter++) {
		n = tmf_long_lines(in, sizeof(in));
		bad += tmf_check_all(in, n, tops, sizeof(tops) /
		    sizeof(tops[0]), TMF_RANDOM_BIG, &ref, &got);
	}
	CU_ASSERT_EQUAL(bad, 0);
	free(ref.p);
	free(got.p);
}

/* A large message counted in one call matches a line-by-line count. */
static void
test_msgfmt_large(void)
{
	const size_t n = 4 * 1024 * 1024;
	unsigned char *big;
	uint64_t want = 0;
	size_t i, col = 0;

	if ((big = malloc(n)) == NULL)
		abort();
	for (i = 0; i < n; i++) {
		if (col == 71) {
			/* Alternate bare LF and CRLF lines. */
			if ((i / 72) % 2 == 0) {
				big[i] = '\n';
				want += 2;
			} else {
				big[i - 1] = '\r';
				big[i] = '\n';
				want += 1;
			}
			col = 0;
			continue;
		}
		big[i] = 'a' + i % 26;
		want++;
		col++;
	}
	if (big[n - 1] != '\n')
		want += 2;
	CU_ASSERT_EQUAL(msgfmt_size(big, n), want);
	free(big);
}

void
test_msgfmt_register(void)
{
	CU_pSuite s;

	if ((s = CU_add_suite("msgfmt", NULL, NULL)) == NULL)
		return;
	CU_add_test(s, "line ends", test_msgfmt_line_ends);
	CU_add_test(s, "empty input", test_msgfmt_empty);
	CU_add_test(s, "dot-stuffing", test_msgfmt_dots);
	CU_add_test(s, "chunk splits", test_msgfmt_splits);
	CU_add_test(s, "TOP", test_msgfmt_top);
	CU_add_test(s, "chunking equivalence", test_msgfmt_chunking);
	CU_add_test(s, "stuffing property", test_msgfmt_property);
	CU_add_test(s, "large message size", test_msgfmt_large);
	CU_add_test(s, "long lines", test_msgfmt_long_lines);
}
