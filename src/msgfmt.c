/*
 * evpop3d - msgfmt.c: the encoder from message file octets to POP3 wire
 * octets (msgfmt.h).  Lines end at LF; a CR right before the LF is part of
 * the CRLF, any other CR is ordinary data.  A CR is copied out as soon as
 * it is read and only remembered (held_cr), so an LF that follows it adds
 * just the LF: the output is the same as holding the CR back, and a line
 * is never delayed.  Counting (sizes at login) finds line ends with
 * memchr(3), about one pass over each message.  Encoding (RETR) copies and
 * scans in the same pass, 16 octets at a time where SSE2 exists: lines are
 * short (about 76 octets), so a memchr call and a memcpy call per line cost
 * more in call overhead than in work.
 */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "msgfmt.h"

static void	msgfmt_end_line(struct msgfmt *);
static const unsigned char *msgfmt_copy_run(const unsigned char *,
		    const unsigned char *, unsigned char *);

void
msgfmt_init(struct msgfmt *m, long long top_lines, int stuff)
{
	memset(m, 0, sizeof(*m));
	m->stuff = stuff != 0;
	m->bol = 1;
	m->body_left = top_lines < 0 ? -1 : top_lines;
}

/* Account for a line end just written: header/body split and TOP limit. */
static void
msgfmt_end_line(struct msgfmt *m)
{
	int empty;

	if (!m->in_body) {
		/* "\r\n" alone is an empty line too (RFC 5322 section 2.1). */
		empty = m->line_len == 0 || (m->line_len == 1 && m->held_cr);
		if (empty) {
			m->in_body = 1;
			if (m->body_left == 0)
				m->done = 1;
		}
	} else if (m->body_left > 0 && --m->body_left == 0)
		m->done = 1;
	m->bol = 1;
	m->held_cr = 0;
	m->line_len = 0;
}

/*
 * Copy p..end up to the first LF (not included) to o; return the LF or end.
 * With SSE2 it stores 16 octets at a time and may write up to 15 octets
 * past the run: only while at least 16 input octets remain, and the output
 * never runs ahead of twice the input consumed, so the stores stay within
 * MSGFMT_OUT_MAX of the whole chunk and are overwritten or never counted.
 */
static const unsigned char *
msgfmt_copy_run(const unsigned char *p, const unsigned char *end,
    unsigned char *o)
{
	const unsigned char *lf;
#ifdef __SSE2__
	const __m128i nl = _mm_set1_epi8('\n');
	__m128i v;
	unsigned int mask;

	while (end - p >= 16) {
		v = _mm_loadu_si128((const __m128i *)p);
		_mm_storeu_si128((__m128i *)o, v);
		mask = (unsigned int)_mm_movemask_epi8(_mm_cmpeq_epi8(v, nl));
		if (mask != 0)
			return p + __builtin_ctz(mask);
		p += 16;
		o += 16;
	}
#endif
	lf = memchr(p, '\n', end - p);
	if (lf == NULL)
		lf = end;
	memcpy(o, p, lf - p);
	return lf;
}

/* Encode one chunk: runs up to each LF are copied whole. */
size_t
msgfmt_feed(struct msgfmt *m, const unsigned char *in, size_t n,
    unsigned char *out)
{
	const unsigned char *p, *end, *lf;
	unsigned char *o = out;
	size_t run, produced = 0;

	if (m->done || n == 0)
		return 0;
	end = in + n;
	for (p = in; p < end; ) {
		/* RFC 1939 section 3: a line starting with '.' gets another. */
		if (m->bol && m->stuff && *p == '.') {
			if (o != NULL)
				*o++ = '.';
			produced++;
		}
		if (o != NULL) {
			lf = msgfmt_copy_run(p, end, o);
			o += lf - p;
		} else if ((lf = memchr(p, '\n', end - p)) == NULL)
			lf = end;
		run = lf - p;
		if (run > 0) {
			produced += run;
			m->line_len += run;
			m->held_cr = p[run - 1] == '\r';
			m->bol = 0;
		}
		if (lf == end)
			break;
		/* The LF, after a CR unless the run copied ended in one. */
		if (o != NULL) {
			if (!m->held_cr)
				*o++ = '\r';
			*o++ = '\n';
		}
		produced += m->held_cr ? 1 : 2;
		p = lf + 1;
		msgfmt_end_line(m);
		if (m->done)
			break;
	}
	m->octets += produced;
	return produced;
}

/* A last line without LF (even one ending in CR) still gets its CRLF. */
size_t
msgfmt_finish(struct msgfmt *m, unsigned char *out)
{
	if (m->done || m->bol)
		return 0;
	if (out != NULL) {
		out[0] = '\r';
		out[1] = '\n';
	}
	m->bol = 1;
	m->held_cr = 0;
	m->line_len = 0;
	m->octets += 2;
	return 2;
}

int
msgfmt_done(const struct msgfmt *m)
{
	return m->done;
}

uint64_t
msgfmt_size(const unsigned char *data, size_t n)
{
	struct msgfmt m;

	msgfmt_init(&m, -1, 0);
	msgfmt_feed(&m, data, n, NULL);
	msgfmt_finish(&m, NULL);
	return m.octets;
}
