/*
 * evpop3d - util.h: small, pure helpers (strict number parsing, base64,
 * secret wiping, string sanitising).  libc only.
 */
#ifndef EVPOP3D_UTIL_H
#define EVPOP3D_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/*
 * Parse a decimal number made only of the digits 0-9 (no sign, no spaces,
 * no "0x", at least one digit) into *out, which must lie in [min, max].
 * Returns 0, or -1 with *errstr set to "invalid", "too small" or "too large".
 */
int	util_strtonum(const char *s, unsigned long long min,
	    unsigned long long max, unsigned long long *out,
	    const char **errstr);

/*
 * Base64 (RFC 4648, standard alphabet, '=' padding required, no
 * whitespace).  util_b64_decode writes at most *outlen bytes, sets *outlen
 * to the decoded length, returns 0, or -1 on bad input or short buffer.
 * util_b64_encode NUL-terminates; needs outcap >= 4*((n+2)/3)+1; returns
 * the encoded length or -1 if outcap is too small.
 */
int	util_b64_decode(const char *in, size_t inlen, unsigned char *out,
	    size_t *outlen);
int	util_b64_encode(const unsigned char *in, size_t n, char *out,
	    size_t outcap);

/* Overwrite a secret so the compiler cannot elide it. */
void	util_wipe(void *p, size_t n);

/* Constant-time comparison of two byte strings (length leaks, content does
 * not).  Returns 1 if equal, 0 otherwise. */
int	util_ct_equal(const void *a, size_t alen, const void *b, size_t blen);

/*
 * Copy untrusted text for a log line: printable ASCII kept, everything
 * else as \xHH, truncated to fit dstcap (always NUL-terminated).
 */
void	util_log_escape(char *dst, size_t dstcap, const char *src,
	    size_t srclen);

/* Lower-case hex of n bytes into out (needs 2n+1). */
void	util_hex(const unsigned char *in, size_t n, char *out);

/* Read the regular file dirfd/name (at most max octets, no symbolic
 * link) into a NUL-terminated buffer to free; *lenp gets its length.
 * NULL if missing, unreadable, too big or out of memory. */
char	*util_read_file_at(int dirfd, const char *name, size_t max,
	    size_t *lenp);

/*
 * Replace dirfd/name durably through dirfd/tmp: util_tmp_open_at creates
 * tmp (mode 0600, no symbolic link) for writing; util_tmp_commit_at
 * flushes and fsyncs it, closes it and renames it over name.  On any
 * failure tmp is removed and -1 (NULL) returned with errno set; the
 * caller fsyncs dirfd afterwards if the rename itself must be durable.
 */
FILE	*util_tmp_open_at(int dirfd, const char *tmp);
int	util_tmp_commit_at(int dirfd, FILE *f, const char *tmp,
	    const char *name);

#endif /* EVPOP3D_UTIL_H */
