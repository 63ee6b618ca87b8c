/* SPDX-License-Identifier: ISC */
/*
 * evpop3d fuzz target: the RETR/TOP/LIST encoder (src/msgfmt.h).
 *
 * The first two input octets choose TOP's line count and the chunking; the
 * rest is a message file.  It is fed to msgfmt in chunks (sizes from a
 * small generator seeded by the input) and the wire octets are checked
 * against a deliberately naive reference: line ends normalised to CRLF
 * (a CR not followed by LF is data; a last line without LF gets CRLF),
 * then every line starting with '.' dot-stuffed.  The size mode, the
 * counting mode (no output buffer) and a TOP cut are checked against the
 * same reference.  Any mismatch aborts.
 */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "msgfmt.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

struct fm_buf {
	unsigned char	*p;
	size_t		 len;
	size_t		 cap;
};

/* Report a mismatch and stop: libFuzzer saves the input. */
static void
fm_fail_len(const char *what, uint64_t want, uint64_t got)
{
	fprintf(stderr, "fuzz_msgfmt: %s (want %llu octets, got %llu)\n",
	    what, (unsigned long long)want, (unsigned long long)got);
	abort();
}

static void
fm_fail(const char *what, const struct fm_buf *want, const struct fm_buf *got)
{
	fm_fail_len(what, want != NULL ? want->len : 0,
	    got != NULL ? got->len : 0);
}

static void
fm_put(struct fm_buf *b, const void *p, size_t n)
{
	if (n == 0)
		return;
	if (b->len + n > b->cap) {
		b->cap = (b->len + n) * 2 + 16;
		if ((b->p = realloc(b->p, b->cap)) == NULL)
			abort();
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
}

static int
fm_equal(const struct fm_buf *a, const struct fm_buf *b)
{
	return a->len == b->len && (a->len == 0 ||
	    memcmp(a->p, b->p, a->len) == 0);
}

/*
 * Reference wire form without stuffing: CRLF pairs become LF, an LF is
 * added if the data is non-empty and does not end in LF, then every LF
 * becomes CRLF.  Lone CRs stay as they are.
 */
static void
fm_reference(const unsigned char *d, size_t n, struct fm_buf *out)
{
	struct fm_buf lf = { NULL, 0, 0 };
	size_t i;

	for (i = 0; i < n; i++) {
		if (d[i] == '\r' && i + 1 < n && d[i + 1] == '\n')
			continue;	/* the LF that follows stands for both */
		fm_put(&lf, &d[i], 1);
	}
	if (n > 0 && d[n - 1] != '\n')
		fm_put(&lf, "\n", 1);
	for (i = 0; i < lf.len; i++) {
		if (lf.p[i] == '\n')
			fm_put(out, "\r\n", 2);
		else
			fm_put(out, &lf.p[i], 1);
	}
	free(lf.p);
}

/* Dot-stuff a CRLF text: a line starting with '.' gets one more. */
static void
fm_stuff(const unsigned char *d, size_t n, struct fm_buf *out)
{
	size_t i;
	int bol = 1;

	for (i = 0; i < n; i++) {
		if (bol && d[i] == '.')
			fm_put(out, ".", 1);
		fm_put(out, &d[i], 1);
		bol = d[i] == '\n';
	}
}

/* Undo dot-stuffing; every line starting with '.' must start with "..". */
static int
fm_unstuff(const unsigned char *d, size_t n, struct fm_buf *out)
{
	size_t i;
	int bol = 1;

	for (i = 0; i < n; i++) {
		if (bol && d[i] == '.') {
			if (i + 1 >= n || d[i + 1] != '.')
				return -1;
			i++;
		}
		fm_put(out, &d[i], 1);
		bol = d[i] == '\n';
	}
	return 0;
}

/*
 * The reference TOP cut of a CRLF text: the header lines through the first
 * empty one, then at most lines body lines; no empty line: everything.
 */
static size_t
fm_top_len(const unsigned char *d, size_t n, long long lines)
{
	size_t i, start = 0;
	int in_body = 0;

	for (i = 0; i < n; i++) {
		if (d[i] != '\n')
			continue;
		if (!in_body) {
			if (i - start == 1 && d[start] == '\r') {
				in_body = 1;
				if (lines == 0)
					return i + 1;
			}
		} else if (--lines == 0)
			return i + 1;
		start = i + 1;
	}
	return n;
}

/* A tiny deterministic generator for chunk sizes (xorshift32). */
static uint32_t
fm_next(uint32_t *st)
{
	uint32_t x = *st;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return *st = x;
}

/*
 * Run msgfmt over data in chunks.  mode 0: chunk sizes from seed; 1: one
 * octet at a time; 2: all at once.  with_out 0 only counts.  Each chunk's
 * output goes to a buffer of exactly MSGFMT_OUT_MAX(chunk) octets so
 * AddressSanitizer sees any overrun.  Returns the octet count msgfmt
 * reported, and checks it against its own m.octets.
 */
static uint64_t
fm_run(const unsigned char *data, size_t n, long long top, int stuff,
    int mode, uint32_t seed, int with_out, struct fm_buf *out)
{
	struct msgfmt m;
	unsigned char *chunk, *tail;
	size_t off = 0, len, got;
	uint64_t total = 0;
	uint32_t st = seed | 1;

	msgfmt_init(&m, top, stuff);
	while (off < n) {
		if (mode == 1)
			len = 1;
		else if (mode == 2)
			len = n - off;
		else {
			len = fm_next(&st) % 8 == 0 ? 1 + fm_next(&st) % 4096 :
			    1 + fm_next(&st) % 7;
		}
		if (len > n - off)
			len = n - off;
		chunk = NULL;
		if (with_out && (chunk = malloc(MSGFMT_OUT_MAX(len))) == NULL)
			abort();
		got = msgfmt_feed(&m, data + off, len, chunk);
		if (got > MSGFMT_OUT_MAX(len))
			fm_fail_len("feed produced more than MSGFMT_OUT_MAX",
			    MSGFMT_OUT_MAX(len), got);
		if (with_out)
			fm_put(out, chunk, got);
		free(chunk);
		total += got;
		off += len;
		if (msgfmt_done(&m) && mode != 1 && fm_next(&st) % 2) {
			/* Input after the TOP limit must be ignored. */
			if (msgfmt_feed(&m, data, n, NULL) != 0)
				fm_fail("feed after done produced output",
				    NULL, NULL);
		}
	}
	tail = NULL;
	if (with_out && (tail = malloc(4)) == NULL)
		abort();
	got = msgfmt_finish(&m, tail);
	if (got > 4)
		fm_fail_len("finish produced more than 4 octets", 4, got);
	if (with_out)
		fm_put(out, tail, got);
	free(tail);
	total += got;
	if (m.octets != total)
		fm_fail_len("m.octets differs from the octets returned",
		    total, m.octets);
	return total;
}

int
LLVMFuzzerTestOneInput(const uint8_t *in, size_t size)
{
	struct fm_buf ref = { NULL, 0, 0 }, stuffed = { NULL, 0, 0 };
	struct fm_buf got = { NULL, 0, 0 }, plain = { NULL, 0, 0 };
	struct fm_buf un = { NULL, 0, 0 }, top = { NULL, 0, 0 };
	struct fm_buf one = { NULL, 0, 0 }, want_top = { NULL, 0, 0 };
	const unsigned char *data;
	unsigned char *copy;
	size_t n, cut;
	long long top_lines;
	uint32_t seed;
	uint64_t count;

	if (size < 2)
		return 0;
	top_lines = in[0] % 16;
	if (in[0] >= 0xf0)
		top_lines = (long long)1 << 40;	/* more than any message */
	seed = (uint32_t)in[1] * 2654435761u + (uint32_t)size;
	n = size - 2;
	/* A copy of exactly n octets: reads past the end are caught. */
	if ((copy = malloc(n > 0 ? n : 1)) == NULL)
		abort();
	memcpy(copy, in + 2, n);
	data = copy;

	fm_reference(data, n, &ref);
	fm_stuff(ref.p, ref.len, &stuffed);

	/* RETR: chunked, stuffed, equal to the stuffed reference. */
	fm_run(data, n, -1, 1, 0, seed, 1, &got);
	if (!fm_equal(&got, &stuffed))
		fm_fail("RETR output differs from the reference", &stuffed,
		    &got);
	if (fm_unstuff(got.p, got.len, &un) == -1)
		fm_fail("a line starts with a single '.'", NULL, &got);
	if (!fm_equal(&un, &ref))
		fm_fail("unstuffed RETR output differs", &ref, &un);
	if (msgfmt_size(data, n) != ref.len)
		fm_fail_len("msgfmt_size differs from the unstuffed length",
		    ref.len, msgfmt_size(data, n));

	/* Size mode with an output buffer: the unstuffed text itself. */
	fm_run(data, n, -1, 0, 0, seed ^ 0x5bd1e995u, 1, &plain);
	if (!fm_equal(&plain, &ref))
		fm_fail("unstuffed encoding differs", &ref, &plain);
	/* Counting only, one octet at a time. */
	count = fm_run(data, n, -1, 1, 1, 0, 0, NULL);
	if (count != stuffed.len)
		fm_fail_len("counting mode differs", stuffed.len, count);
	/* Whole input in one feed, when it is small enough to be cheap. */
	if (n <= 4096) {
		fm_run(data, n, -1, 1, 2, 0, 1, &one);
		if (!fm_equal(&one, &stuffed))
			fm_fail("single-feed output differs", &stuffed, &one);
	}

	/* TOP: the stuffed form of the reference's cut. */
	cut = fm_top_len(ref.p, ref.len, top_lines);
	fm_stuff(ref.p, cut, &want_top);
	fm_run(data, n, top_lines, 1, 0, seed ^ 0x9e3779b9u, 1, &top);
	if (!fm_equal(&top, &want_top))
		fm_fail("TOP output differs from the reference cut",
		    &want_top, &top);
	if (top.len > got.len ||
	    (top.len > 0 && memcmp(top.p, got.p, top.len) != 0))
		fm_fail("TOP output is not a prefix of RETR", &got, &top);

	free(ref.p);
	free(stuffed.p);
	free(got.p);
	free(plain.p);
	free(un.p);
	free(top.p);
	free(one.p);
	free(want_top.p);
	free(copy);
	return 0;
}
