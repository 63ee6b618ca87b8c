/* SPDX-License-Identifier: ISC */
/*
 * evpop3d - util.c: small pure helpers shared by every module.  Strict
 * decimal parsing (no sign, blanks, hex or overflow), RFC 4648 base64 that
 * refuses anything non-canonical, wiping of secrets, constant-time
 * comparison and escaping of untrusted text for log lines.  libc only.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/stat.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

static const char util_b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static const char util_hexdigits[] = "0123456789abcdef";

/* Parse digits only, so "+1", " 1", "0x1" and overflow are all refused. */
int
util_strtonum(const char *s, unsigned long long min, unsigned long long max,
    unsigned long long *out, const char **errstr)
{
	unsigned long long v = 0;
	unsigned int d;
	const char *p;
	const char *dummy;

	if (errstr == NULL)
		errstr = &dummy;
	*errstr = "invalid";
	if (s == NULL || *s == '\0')
		return -1;
	for (p = s; *p != '\0'; p++) {
		if (*p < '0' || *p > '9')
			return -1;
	}
	for (p = s; *p != '\0'; p++) {
		d = (unsigned int)(*p - '0');
		if (v > (ULLONG_MAX - d) / 10) {
			*errstr = "too large";
			return -1;
		}
		v = v * 10 + d;
	}
	if (v < min) {
		*errstr = "too small";
		return -1;
	}
	if (v > max) {
		*errstr = "too large";
		return -1;
	}
	if (out != NULL)
		*out = v;
	*errstr = NULL;
	return 0;
}

/* Map one base64 character to its 6-bit value, or -1. */
static int
util_b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/*
 * Decode strictly: whole quanta only, '=' only as the last one or two
 * characters, and the unused bits before the padding must be zero
 * (RFC 4648 section 3.5), so every byte string has exactly one encoding.
 */
int
util_b64_decode(const char *in, size_t inlen, unsigned char *out,
    size_t *outlen)
{
	const unsigned char *s = (const unsigned char *)in;
	size_t i, pad = 0, need, o = 0;
	int v[4], k;

	if (outlen == NULL || inlen % 4 != 0)
		return -1;
	if (inlen == 0) {
		*outlen = 0;
		return 0;
	}
	if (s[inlen - 1] == '=') {
		pad = 1;
		if (s[inlen - 2] == '=')
			pad = 2;
	}
	need = inlen / 4 * 3 - pad;
	if (need > *outlen || out == NULL)
		return -1;
	for (i = 0; i < inlen; i += 4) {
		for (k = 0; k < 4; k++) {
			if (i + 4 == inlen && k >= 4 - (int)pad) {
				v[k] = 0;
				continue;
			}
			if ((v[k] = util_b64_value(s[i + k])) == -1)
				return -1;
		}
		out[o++] = (unsigned char)(v[0] << 2 | v[1] >> 4);
		if (i + 4 == inlen && pad == 2) {
			if ((v[1] & 0x0f) != 0)
				return -1;
			break;
		}
		out[o++] = (unsigned char)((v[1] & 0x0f) << 4 | v[2] >> 2);
		if (i + 4 == inlen && pad == 1) {
			if ((v[2] & 0x03) != 0)
				return -1;
			break;
		}
		out[o++] = (unsigned char)((v[2] & 0x03) << 6 | v[3]);
	}
	*outlen = o;
	return 0;
}

/* Encode with '=' padding; refuse rather than truncate a short buffer. */
int
util_b64_encode(const unsigned char *in, size_t n, char *out, size_t outcap)
{
	size_t i, o = 0, need;
	unsigned int w;

	if (n > (SIZE_MAX - 1) / 4 * 3 - 2)
		return -1;
	need = 4 * ((n + 2) / 3) + 1;
	if (out == NULL || outcap < need || need - 1 > INT_MAX)
		return -1;
	for (i = 0; i + 3 <= n; i += 3) {
		w = (unsigned int)in[i] << 16 | (unsigned int)in[i + 1] << 8 |
		    in[i + 2];
		out[o++] = util_b64_alphabet[w >> 18 & 0x3f];
		out[o++] = util_b64_alphabet[w >> 12 & 0x3f];
		out[o++] = util_b64_alphabet[w >> 6 & 0x3f];
		out[o++] = util_b64_alphabet[w & 0x3f];
	}
	if (n - i == 1) {
		w = (unsigned int)in[i] << 16;
		out[o++] = util_b64_alphabet[w >> 18 & 0x3f];
		out[o++] = util_b64_alphabet[w >> 12 & 0x3f];
		out[o++] = '=';
		out[o++] = '=';
	} else if (n - i == 2) {
		w = (unsigned int)in[i] << 16 | (unsigned int)in[i + 1] << 8;
		out[o++] = util_b64_alphabet[w >> 18 & 0x3f];
		out[o++] = util_b64_alphabet[w >> 12 & 0x3f];
		out[o++] = util_b64_alphabet[w >> 6 & 0x3f];
		out[o++] = '=';
	}
	out[o] = '\0';
	return (int)o;
}

/* Clear a secret in a way the optimiser may not remove as a dead store. */
void
util_wipe(void *p, size_t n)
{
#ifdef HAVE_EXPLICIT_BZERO
	if (p != NULL)
		explicit_bzero(p, n);
#else
	volatile unsigned char *v = p;

	while (v != NULL && n-- > 0)
		*v++ = 0;
#endif
}

/* Compare every byte whatever the first difference, so timing shows only
 * the lengths. */
int
util_ct_equal(const void *a, size_t alen, const void *b, size_t blen)
{
	const unsigned char *x = a, *y = b;
	volatile unsigned char acc = 0;
	size_t i;

	if (alen != blen)
		return 0;
	for (i = 0; i < alen; i++)
		acc |= x[i] ^ y[i];
	return acc == 0;
}

/* Keep log lines one line long and free of terminal controls. */
void
util_log_escape(char *dst, size_t dstcap, const char *src, size_t srclen)
{
	const unsigned char *s = (const unsigned char *)src;
	size_t i, o = 0;

	if (dst == NULL || dstcap == 0)
		return;
	for (i = 0; i < srclen && src != NULL; i++) {
		if (s[i] >= 0x20 && s[i] < 0x7f) {
			if (o + 1 >= dstcap)
				break;
			dst[o++] = (char)s[i];
		} else {
			if (o + 4 >= dstcap)
				break;
			dst[o++] = '\\';
			dst[o++] = 'x';
			dst[o++] = util_hexdigits[s[i] >> 4];
			dst[o++] = util_hexdigits[s[i] & 0x0f];
		}
	}
	dst[o] = '\0';
}

void
util_hex(const unsigned char *in, size_t n, char *out)
{
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = util_hexdigits[in[i] >> 4];
		out[2 * i + 1] = util_hexdigits[in[i] & 0x0f];
	}
	out[2 * n] = '\0';
}

/* Small state files of a Maildir (caches, imports): read whole, NUL
 * added; never follows a symbolic link. */
char *
util_read_file_at(int dirfd, const char *name, size_t max, size_t *lenp)
{
	struct stat st;
	char *buf;
	size_t off = 0;
	ssize_t n;
	int fd;

	if ((fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) == -1)
		return NULL;
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) ||
	    (size_t)st.st_size > max ||
	    (buf = malloc((size_t)st.st_size + 1)) == NULL) {
		close(fd);
		return NULL;
	}
	while (off < (size_t)st.st_size) {
		n = read(fd, buf + off, (size_t)st.st_size - off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	close(fd);
	buf[off] = '\0';
	*lenp = off;
	return buf;
}

FILE *
util_tmp_open_at(int dirfd, const char *tmp)
{
	FILE *f;
	int fd, saved;

	fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC |
	    O_NOFOLLOW, 0600);
	if (fd == -1)
		return NULL;
	if ((f = fdopen(fd, "w")) == NULL) {
		saved = errno;
		close(fd);
		unlinkat(dirfd, tmp, 0);
		errno = saved;
	}
	return f;
}

int
util_tmp_commit_at(int dirfd, FILE *f, const char *tmp, const char *name)
{
	int saved;

	if (fflush(f) == EOF || ferror(f) || fsync(fileno(f)) == -1) {
		saved = errno;
		fclose(f);
		goto fail;
	}
	if (fclose(f) == EOF || renameat(dirfd, tmp, dirfd, name) == -1) {
		saved = errno;
		goto fail;
	}
	return 0;
fail:
	unlinkat(dirfd, tmp, 0);
	errno = saved ? saved : EIO;
	return -1;
}
