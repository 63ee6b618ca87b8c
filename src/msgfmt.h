/*
 * evpop3d - msgfmt.h: the one encoder that turns message file bytes into
 * POP3 wire octets.  Pure: no libevent, no I/O.
 *
 * Rules (SERVER-CONTRACT.md "Mail"; RFC 1939 section 3):
 *  - CRLF stays CRLF; a bare LF becomes CRLF; a CR not followed by LF is
 *    passed through unchanged (a CR at the very end of the file too).
 *  - A file whose last line has no line end gets CRLF added (msgfmt_finish).
 *    An empty file is 0 octets.
 *  - When stuffing, a line starting with '.' gets one more '.' in front.
 *  - TOP n: all header lines up to and including the empty line that ends
 *    them, then at most n body lines; a message with no empty line is all
 *    header.  TOP 0 sends the headers and the empty line.
 *
 * Sizes (LIST, STAT) are the same encoder with stuffing off and no output
 * buffer, so the octets counted and the octets sent cannot disagree.
 * State crosses chunk boundaries: feeding a file 1 byte at a time or all
 * at once gives identical output.
 */
#ifndef EVPOP3D_MSGFMT_H
#define EVPOP3D_MSGFMT_H

#include <stddef.h>
#include <stdint.h>

struct msgfmt {
	int		 stuff;		/* dot-stuff (RETR/TOP) or not (size) */
	int		 bol;		/* at the beginning of a line */
	int		 held_cr;	/* a CR seen, waiting to see if LF follows */
	int		 in_body;	/* the header's empty line has passed */
	size_t		 line_len;	/* octets in this line so far */
	long long	 body_left;	/* TOP: body lines still to send; <0 all */
	int		 done;		/* TOP limit reached: ignore further input */
	uint64_t	 octets;	/* octets produced so far (before stuffing
					   when stuff == 0; as sent otherwise) */
};

/* Worst-case output for n input octets fed at once (plus finish). */
#define MSGFMT_OUT_MAX(n)	(2 * (n) + 4)

/*
 * Start encoding.  top_lines < 0 means the whole message (RETR); >= 0 is
 * TOP's line count.  stuff: 1 for the wire, 0 for counting sizes.
 */
void	msgfmt_init(struct msgfmt *, long long top_lines, int stuff);

/*
 * Encode n input octets.  Writes to out (which must hold MSGFMT_OUT_MAX(n)
 * octets; those past the returned count may be overwritten too), or only
 * counts if out is NULL.  Returns the number of octets produced;
 * m->octets accumulates it.  After the TOP limit is reached
 * (msgfmt_done), input is ignored and 0 is returned.
 */
size_t	msgfmt_feed(struct msgfmt *, const unsigned char *in, size_t n,
	    unsigned char *out);

/*
 * End of file: flush a held CR and end an unterminated last line with CRLF.
 * out needs 4 octets (or NULL to count).  Returns octets produced.  The
 * POP3 terminator ".\r\n" is not part of the message and not added here.
 */
size_t	msgfmt_finish(struct msgfmt *, unsigned char *out);

/* 1 once TOP has sent all it should (no more input is useful). */
int	msgfmt_done(const struct msgfmt *);

/* Size as sent (before stuffing) of a whole message held in memory. */
uint64_t msgfmt_size(const unsigned char *data, size_t n);

#endif /* EVPOP3D_MSGFMT_H */
