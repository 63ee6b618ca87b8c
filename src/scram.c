/* SPDX-License-Identifier: ISC */
/*
 * evpop3d - scram.c: SCRAM-SHA-256, server side.  The server proves it
 * knows the user's keys and checks the client's proof without ever seeing
 * the password: StoredKey = H(ClientKey), and the client sends
 * ClientKey XOR HMAC(StoredKey, AuthMessage).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "scram.h"
#include "util.h"

/* Per-process key for the fake salts of unknown users. */
static unsigned char scram_fake_key[32];
static int scram_fake_ready;

int
scram_is_secret(const char *secret)
{
	return secret != NULL &&
	    strncmp(secret, SCRAM_PREFIX, strlen(SCRAM_PREFIX)) == 0;
}

static int
scram_b64_field(const char *s, size_t len, unsigned char *out, size_t cap,
    size_t *outlen)
{
	*outlen = cap;
	return util_b64_decode(s, len, out, outlen);
}

int
scram_parse_secret(const char *secret, struct scram_secret *sec)
{
	const char *p, *f[4];
	size_t l[4], n, i;
	unsigned long long iter;
	const char *errstr;
	char num[16];

	if (!scram_is_secret(secret))
		return -1;
	p = secret + strlen(SCRAM_PREFIX);
	for (i = 0; i < 4; i++) {
		f[i] = p;
		l[i] = strcspn(p, ",");
		p += l[i];
		if (i < 3) {
			if (*p != ',')
				return -1;
			p++;
		}
	}
	if (*p != '\0' || l[0] == 0 || l[0] >= sizeof(num))
		return -1;
	memcpy(num, f[0], l[0]);
	num[l[0]] = '\0';
	if (util_strtonum(num, 1, 10000000, &iter, &errstr) == -1)
		return -1;
	sec->iter = (unsigned int)iter;
	if (scram_b64_field(f[1], l[1], sec->salt, sizeof(sec->salt),
	    &sec->saltlen) == -1 || sec->saltlen == 0)
		return -1;
	if (scram_b64_field(f[2], l[2], sec->stored, sizeof(sec->stored),
	    &n) == -1 || n != SCRAM_KEY_LEN)
		return -1;
	if (scram_b64_field(f[3], l[3], sec->server, sizeof(sec->server),
	    &n) == -1 || n != SCRAM_KEY_LEN)
		return -1;
	return 0;
}

static void
scram_hmac(const unsigned char *key, size_t klen, const void *msg,
    size_t mlen, unsigned char out[SCRAM_KEY_LEN])
{
	unsigned int olen = SCRAM_KEY_LEN;

	HMAC(EVP_sha256(), key, (int)klen, msg, mlen, out, &olen);
}

/* SaltedPassword, then ClientKey -> StoredKey and ServerKey. */
static int
scram_derive(const char *password, const unsigned char *salt, size_t saltlen,
    unsigned int iter, unsigned char stored[SCRAM_KEY_LEN],
    unsigned char server[SCRAM_KEY_LEN])
{
	unsigned char salted[SCRAM_KEY_LEN], ckey[SCRAM_KEY_LEN];

	if (PKCS5_PBKDF2_HMAC(password, (int)strlen(password), salt,
	    (int)saltlen, (int)iter, EVP_sha256(), SCRAM_KEY_LEN, salted) != 1)
		return -1;
	scram_hmac(salted, sizeof(salted), "Client Key", 10, ckey);
	SHA256(ckey, sizeof(ckey), stored);
	scram_hmac(salted, sizeof(salted), "Server Key", 10, server);
	util_wipe(salted, sizeof(salted));
	util_wipe(ckey, sizeof(ckey));
	return 0;
}

int
scram_make_secret(const char *password, unsigned int iter, char *out,
    size_t outlen)
{
	unsigned char salt[16], stored[SCRAM_KEY_LEN], server[SCRAM_KEY_LEN];
	char bs[32], bst[64], bsv[64];

	if (RAND_bytes(salt, sizeof(salt)) != 1 ||
	    scram_derive(password, salt, sizeof(salt), iter, stored,
	    server) == -1)
		return -1;
	util_b64_encode(salt, sizeof(salt), bs, sizeof(bs));
	util_b64_encode(stored, sizeof(stored), bst, sizeof(bst));
	util_b64_encode(server, sizeof(server), bsv, sizeof(bsv));
	if ((size_t)snprintf(out, outlen, "%s%u,%s,%s,%s", SCRAM_PREFIX, iter,
	    bs, bst, bsv) >= outlen)
		return -1;
	return 0;
}

int
scram_verify_password(const struct scram_secret *sec, const char *password)
{
	unsigned char stored[SCRAM_KEY_LEN], server[SCRAM_KEY_LEN];
	int ok;

	if (scram_derive(password, sec->salt, sec->saltlen, sec->iter, stored,
	    server) == -1)
		return 0;
	ok = util_ct_equal(stored, sizeof(stored), sec->stored,
	    sizeof(sec->stored));
	util_wipe(stored, sizeof(stored));
	util_wipe(server, sizeof(server));
	return ok;
}

/* saslname: "=2C" is ',' and "=3D" is '='; any other '=' is an error. */
static int
scram_saslname(const char *in, size_t len, char *out, size_t outlen)
{
	size_t i, o = 0;

	for (i = 0; i < len; i++) {
		if (o + 1 >= outlen)
			return -1;
		if (in[i] == '=') {
			if (i + 2 < len + 0 && in[i + 1] == '2' &&
			    in[i + 2] == 'C')
				out[o++] = ',';
			else if (i + 2 < len + 0 && in[i + 1] == '3' &&
			    in[i + 2] == 'D')
				out[o++] = '=';
			else
				return -1;
			i += 2;
		} else if (in[i] == ',' || in[i] == '\0')
			return -1;
		else
			out[o++] = in[i];
	}
	out[o] = '\0';
	return o > 0 ? 0 : -1;
}

int
scram_client_first(struct scram_state *st, const char *msg, size_t len)
{
	const char *bare, *p, *e;
	size_t blen;

	memset(st, 0, sizeof(*st));
	/* gs2-header: "n,," only (no channel binding, no authzid). */
	if (len < 3 || memcmp(msg, "n,,", 3) != 0)
		return -1;
	bare = msg + 3;
	blen = len - 3;
	if (blen < 2 || memcmp(bare, "n=", 2) != 0)
		return -1;
	p = bare + 2;
	e = memchr(p, ',', blen - 2);
	if (e == NULL || scram_saslname(p, (size_t)(e - p), st->user,
	    sizeof(st->user)) == -1)
		return -1;
	p = e + 1;
	if ((size_t)(bare + blen - p) < 3 || memcmp(p, "r=", 2) != 0)
		return -1;
	p += 2;
	e = memchr(p, ',', (size_t)(bare + blen - p));
	if (e == NULL)
		e = bare + blen;
	if (e == p || (size_t)(e - p) > SCRAM_NONCE_MAX)
		return -1;
	memcpy(st->nonce, p, (size_t)(e - p));
	st->nonce[e - p] = '\0';
	if ((st->auth_msg = malloc(blen + 1)) == NULL)
		return -1;
	memcpy(st->auth_msg, bare, blen);
	st->auth_msg[blen] = '\0';
	return 0;
}

int
scram_server_first(struct scram_state *st, const struct scram_secret *sec,
    char *out, size_t outlen)
{
	unsigned char rnd[18], fake[SCRAM_KEY_LEN];
	char snonce[32], salt[96], *am;
	size_t n;

	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		return -1;
	util_b64_encode(rnd, sizeof(rnd), snonce, sizeof(snonce));
	n = strlen(st->nonce);
	snprintf(st->nonce + n, sizeof(st->nonce) - n, "%s", snonce);
	if (sec != NULL)
		st->sec = *sec;
	else {
		/* The same fake salt for the same name, every time. */
		if (!scram_fake_ready) {
			if (RAND_bytes(scram_fake_key,
			    sizeof(scram_fake_key)) != 1)
				return -1;
			scram_fake_ready = 1;
		}
		scram_hmac(scram_fake_key, sizeof(scram_fake_key), st->user,
		    strlen(st->user), fake);
		memcpy(st->sec.salt, fake, 16);
		st->sec.saltlen = 16;
		st->sec.iter = SCRAM_ITER_DEFAULT;
		st->fake = 1;
	}
	util_b64_encode(st->sec.salt, st->sec.saltlen, salt, sizeof(salt));
	if ((size_t)snprintf(out, outlen, "r=%s,s=%s,i=%u", st->nonce, salt,
	    st->sec.iter) >= outlen)
		return -1;
	n = strlen(st->auth_msg) + 1 + strlen(out) + 1;
	if ((am = malloc(n)) == NULL)
		return -1;
	snprintf(am, n, "%s,%s", st->auth_msg, out);
	free(st->auth_msg);
	st->auth_msg = am;
	return 0;
}

int
scram_client_final(struct scram_state *st, const char *msg, size_t len,
    char *out, size_t outlen)
{
	const char *p;
	unsigned char proof[64], sig[SCRAM_KEY_LEN], ckey[SCRAM_KEY_LEN];
	unsigned char stored[SCRAM_KEY_LEN], ssig[SCRAM_KEY_LEN];
	char *am, bsig[64];
	size_t plen, wlen, n, i;
	int ok;

	/* "c=biws,r=NONCE[,...],p=PROOF" */
	if (len < 9 || memcmp(msg, "c=biws,r=", 9) != 0)
		return -1;
	n = strlen(st->nonce);
	if (len < 9 + n || memcmp(msg + 9, st->nonce, n) != 0 ||
	    (len > 9 + n && msg[9 + n] != ','))
		return -1;
	for (p = msg + len; p > msg && p[-1] != ','; p--)
		;
	if (p == msg || (size_t)(msg + len - p) < 3 || memcmp(p, "p=", 2) != 0)
		return -1;
	wlen = (size_t)(p - 1 - msg);		/* without ",p=..." */
	plen = sizeof(proof);
	if (util_b64_decode(p + 2, (size_t)(msg + len - p - 2), proof,
	    &plen) == -1 || plen != SCRAM_KEY_LEN)
		return -1;
	n = strlen(st->auth_msg) + 1 + wlen + 1;
	if ((am = malloc(n)) == NULL)
		return -1;
	snprintf(am, n, "%s,%.*s", st->auth_msg, (int)wlen, msg);
	scram_hmac(st->sec.stored, SCRAM_KEY_LEN, am, strlen(am), sig);
	for (i = 0; i < SCRAM_KEY_LEN; i++)
		ckey[i] = proof[i] ^ sig[i];
	SHA256(ckey, sizeof(ckey), stored);
	ok = util_ct_equal(stored, sizeof(stored), st->sec.stored,
	    SCRAM_KEY_LEN) && !st->fake;
	scram_hmac(st->sec.server, SCRAM_KEY_LEN, am, strlen(am), ssig);
	free(am);
	util_wipe(ckey, sizeof(ckey));
	if (!ok)
		return 0;
	util_b64_encode(ssig, sizeof(ssig), bsig, sizeof(bsig));
	if ((size_t)snprintf(out, outlen, "v=%s", bsig) >= outlen)
		return -1;
	return 1;
}

void
scram_state_clear(struct scram_state *st)
{
	free(st->auth_msg);
	util_wipe(st, sizeof(*st));
}
