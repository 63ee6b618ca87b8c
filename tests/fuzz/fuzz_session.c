/* SPDX-License-Identifier: ISC */
/*
 * evpop3d fuzz target: the whole session state machine (session.c, cmd.c,
 * retr.c, the worker pool, the lock, the Maildir snapshot) fed arbitrary
 * client byte streams in-process over a bufferevent pair, as
 * tests/unit/test_cmd.c drives it.
 *
 * Input layout:
 *   octet 0  flags: bit 0 slow reader (the client reads nothing until it
 *            has sent everything), bits 1-2 the peer address (loopback v4,
 *            loopback v6, a v4-mapped loopback, a remote v4 address that
 *            allow_plaintext local refuses), bit 3 STLS offered (a
 *            self-signed certificate is made at start), bit 4 the client
 *            answers STLS's +OK, if it came before the cut, with a real
 *            TLS handshake and sends the rest inside TLS (otherwise the
 *            rest reaches the server's TLS layer as garbage)
 *   octet 1  where to cut the stream in two writes (scaled to its length),
 *            so lines arrive in pieces
 *   rest     what the client sends.  "\x01A" is replaced by the APOP digest
 *            and "\x01C" by the CRAM-MD5 response for alice/secret and this
 *            session's greeting timestamp, so successful APOP and CRAM-MD5
 *            logins are reachable (control octets are refused in commands
 *            anyway, so nothing else is lost).
 *
 * After the input, the client half-closes (BEV_FINISHED) but keeps reading,
 * like a client that sends QUIT and shuts its side down, and the loop runs
 * until the session has ended.  Then no session, no lock, no worker job and
 * no lock file may remain: anything left is a leak, reported with abort().
 * The Maildir is rebuilt whenever a run changed it (new/ moved to cur/,
 * DELE+QUIT removed messages).
 *
 * FUZZ_SESSION_TRACE=1 in the environment copies the server's replies to
 * stderr (run without -close_fd_mask to see them).
 */
#include "config.h"

#include <sys/types.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/thread.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "auth.h"
#include "conf.h"
#include "lock.h"
#include "session.h"
#include "tls.h"
#include "util.h"
#include "worker.h"

int	LLVMFuzzerInitialize(int *, char ***);
int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define FS_USER		"alice"
#define FS_PASS		"secret"
/* Loop iterations per phase while input is being processed. */
#define FS_PHASE_ITER	200
/* After the client's EOF: iterations and wall time before a session that
 * is still alive counts as leaked. */
#define FS_END_ITER	100000
#define FS_END_MSEC	8000	/* session.c polls an STLS close <= 5 s */

#define FS_F_SLOW	0x01
#define FS_F_STLS	0x08	/* the listener offers STLS */
#define FS_F_TLS	0x10	/* after STLS's +OK, speak TLS */
#define FS_STLS_REPLY	"+OK Begin TLS"

struct fs_client {
	struct bufferevent	*raw;		/* our end of the pair */
	struct bufferevent	*bev;		/* raw, or a TLS filter on it */
	int			 eof;
	int			 reading;
	int			 stls_ok;	/* "+OK Begin TLS" seen */
	size_t			 rx;
	char			 greeting[512];
	size_t			 glen;
};

static struct event_base	*fs_base;
static struct config		*fs_cfg;
static char			 fs_dir[256];
static char			 fs_md[512];
static int			 fs_trace;
static int			 fs_errfd = 2;
static SSL_CTX			*fs_cli_ctx;	/* our client side of STLS */

/* One message per case the encoder cares about; the last one is larger
 * than RETR_HIWAT so RETR has to stream it in several fills. */
static const struct {
	const char	*sub;
	const char	*name;
	const char	*text;
} fs_msgs[] = {
	{ "cur", "1000.A.host:2,", "Subject: a\n\nline\n.dot\n..two\n" },
	{ "cur", "1001.B.host:2,S", "Subject: b\r\n\r\nbody\r\n" },
	{ "new", "1002.C.host", "Subject: c\n\nno newline" },
	{ "cur", "1003.D.host:2,", NULL },
};
#define FS_NMSGS	(sizeof(fs_msgs) / sizeof(fs_msgs[0]))

/* Say why we stop on the stderr we started with: libFuzzer's
 * -close_fd_mask=2 (which silences log.c) closes fd 2 after
 * LLVMFuzzerInitialize has run. */
static void	fs_say(const char *, ...)
		    __attribute__((format(printf, 1, 2)));

static void
fs_say(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(buf) - 1)
		n = sizeof(buf) - 1;
	if (n > 0 && write(fs_errfd, buf, (size_t)n) == -1) {
		/* Nowhere else to say it. */
	}
}

static void	fs_cleanup(void);

/* A verdict: say it, remove the temporary tree (abort skips atexit), stop;
 * libFuzzer saves the input. */
static void
fs_die(const char *what)
{
	fs_say("fuzz_session: %s (sessions %u, locks %zu, jobs %u)\n",
	    what, session_count(), lock_count(), worker_pending());
	fs_cleanup();
	abort();
}

/* ------------------------------------------------------------------ */
/* The Maildir. */

/* rm -rf of a small tree. */
static void
fs_rmtree(const char *path)
{
	DIR *d;
	struct dirent *de;
	char sub[1024];
	struct stat st;

	if (lstat(path, &st) == -1)
		return;
	if (S_ISDIR(st.st_mode) && (d = opendir(path)) != NULL) {
		while ((de = readdir(d)) != NULL) {
			if (strcmp(de->d_name, ".") == 0 ||
			    strcmp(de->d_name, "..") == 0)
				continue;
			snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name);
			fs_rmtree(sub);
		}
		closedir(d);
		rmdir(path);
	} else
		unlink(path);
}

static void
fs_write(const char *path, const char *data, size_t len)
{
	int fd;

	if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600)) == -1 ||
	    write(fd, data, len) != (ssize_t)len || close(fd) == -1)
		fs_die("cannot write a message file");
}

/* The large message: 2000 lines, some starting with '.', LF and CRLF. */
static char *
fs_big_message(size_t *len)
{
	size_t cap = 128 * 1024, o = 0;
	char *b;
	int i;

	if ((b = malloc(cap)) == NULL)
		abort();
	o += snprintf(b, cap, "Subject: d\nFrom: x@example.org\n\n");
	for (i = 0; i < 2000; i++)
		o += snprintf(b + o, cap - o, "%sline %04d of a long body "
		    "with some text in it%s", i % 7 == 0 ? "." : "", i,
		    i % 3 == 0 ? "\r\n" : "\n");
	*len = o;
	return b;
}

/* Does the Maildir look exactly as fs_mailbox_make leaves it? */
static int
fs_mailbox_intact(void)
{
	const char *subs[] = { "", "cur", "new", "tmp" };
	const size_t want[] = { 3, 3, 1, 0 };
	char path[1024];
	struct dirent *de;
	struct stat st;
	size_t i, n;
	DIR *d;

	for (i = 0; i < FS_NMSGS; i++) {
		snprintf(path, sizeof(path), "%s/%s/%s", fs_md, fs_msgs[i].sub,
		    fs_msgs[i].name);
		if (stat(path, &st) == -1)
			return 0;
	}
	for (i = 0; i < 4; i++) {
		snprintf(path, sizeof(path), "%s/%s", fs_md, subs[i]);
		if ((d = opendir(path)) == NULL)
			return 0;
		n = 0;
		while ((de = readdir(d)) != NULL)
			if (strcmp(de->d_name, ".") != 0 &&
			    strcmp(de->d_name, "..") != 0)
				n++;
		closedir(d);
		if (n != want[i])
			return 0;
	}
	return 1;
}

static void
fs_mailbox_make(void)
{
	char path[1024], *big;
	const char *subs[] = { "cur", "new", "tmp" };
	size_t i, len;

	fs_rmtree(fs_md);
	if (mkdir(fs_md, 0700) == -1)
		fs_die("mkdir Maildir");
	for (i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "%s/%s", fs_md, subs[i]);
		if (mkdir(path, 0700) == -1)
			fs_die("mkdir Maildir subdirectory");
	}
	for (i = 0; i < FS_NMSGS; i++) {
		snprintf(path, sizeof(path), "%s/%s/%s", fs_md, fs_msgs[i].sub,
		    fs_msgs[i].name);
		if (fs_msgs[i].text != NULL)
			fs_write(path, fs_msgs[i].text,
			    strlen(fs_msgs[i].text));
		else {
			big = fs_big_message(&len);
			fs_write(path, big, len);
			free(big);
		}
	}
}

/* Put the Maildir back as fs_mailbox_make left it.  Most logins only
 * moved new/'s message to cur/: moving it back is much cheaper than a
 * rebuild. */
static void
fs_mailbox_restore(void)
{
	char from[1024], to[1024];

	if (fs_mailbox_intact())
		return;
	/* fs_msgs[2] is the one in new/. */
	snprintf(from, sizeof(from), "%s/cur/%s:2,", fs_md, fs_msgs[2].name);
	snprintf(to, sizeof(to), "%s/new/%s", fs_md, fs_msgs[2].name);
	if (rename(from, to) == 0 && fs_mailbox_intact())
		return;
	fs_mailbox_make();
}

static void
fs_cleanup(void)
{
	if (fs_dir[0] != '\0')
		fs_rmtree(fs_dir);
}

/* ------------------------------------------------------------------ */
/* The client end. */

static void
fs_client_read_cb(struct bufferevent *bev, void *arg)
{
	struct fs_client *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t n = evbuffer_get_length(in), take;

	if (c->glen < sizeof(c->greeting) - 1) {
		take = sizeof(c->greeting) - 1 - c->glen;
		if (take > n)
			take = n;
		evbuffer_copyout(in, c->greeting + c->glen, take);
		c->glen += take;
		c->greeting[c->glen] = '\0';
	}
	c->rx += n;
	/* STLS's reply comes in one piece: it is queued by one printf. */
	if (!c->stls_ok && c->bev == c->raw && evbuffer_search(in,
	    FS_STLS_REPLY, strlen(FS_STLS_REPLY), NULL).pos != -1)
		c->stls_ok = 1;
	if (fs_trace) {
		/* FUZZ_SESSION_TRACE=1: show the server's replies. */
		char buf[4096];
		int k;

		while ((k = evbuffer_remove(in, buf, sizeof(buf))) > 0)
			fwrite(buf, 1, (size_t)k, stderr);
	}
	evbuffer_drain(in, n);
}

static void
fs_client_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct fs_client *c = arg;

	(void)bev;
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		c->eof = 1;
}

/* Nothing left to run now: no worker job and no active callback. */
static int
fs_quiet(void)
{
	return worker_pending() == 0 &&
	    event_base_get_num_events(fs_base, EVENT_BASE_COUNT_ACTIVE) == 0;
}

/*
 * Give a worker thread or a due timer a moment.  A finished job with a
 * done callback wakes the loop, but cleanup jobs have none and libevent's
 * timeouts have millisecond granularity, so this polls instead of
 * blocking in the loop.
 */
static void
fs_wait(void)
{
	if (worker_pending() > 0)
		sched_yield();
	else
		usleep(50);
}

/* Run the loop until nothing changes (or the iteration bound). */
static void
fs_pump(void)
{
	int i;

	for (i = 0; i < FS_PHASE_ITER; i++) {
		event_base_loop(fs_base, EVLOOP_NONBLOCK);
		if (session_count() == 0 && fs_quiet())
			break;
		if (worker_pending() > 0)
			fs_wait();
		else if (fs_quiet())
			break;
	}
}

static double
fs_msec_since(const struct timespec *t0)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - t0->tv_sec) * 1e3 +
	    (now.tv_nsec - t0->tv_nsec) / 1e6;
}

/* After the client's EOF: every session must end and give back all. */
static void
fs_drain_all(struct fs_client *c)
{
	struct timespec t0;
	int i;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; i < FS_END_ITER; i++) {
		event_base_loop(fs_base, EVLOOP_NONBLOCK);
		if (session_count() == 0 && lock_count() == 0 && fs_quiet())
			return;
		if (i % 16 == 0 && fs_msec_since(&t0) > FS_END_MSEC)
			break;
		if (worker_pending() > 0 || fs_quiet())
			fs_wait();
	}
	fs_say("fuzz_session: client received %zu octets, eof %d\n", c->rx,
	    c->eof);
	fs_die("a session or lock outlived its client");
}

/* ------------------------------------------------------------------ */
/* Placeholders for the digest-based logins. */

/* The <...> timestamp of the greeting, or "" if none arrived. */
static void
fs_timestamp(const struct fs_client *c, char *ts, size_t len)
{
	const char *lt = strchr(c->greeting, '<'), *gt;

	ts[0] = '\0';
	if (lt == NULL || (gt = strchr(lt, '>')) == NULL ||
	    (size_t)(gt - lt + 1) >= len)
		return;
	memcpy(ts, lt, (size_t)(gt - lt + 1));
	ts[gt - lt + 1] = '\0';
}

/* APOP: hex MD5(timestamp || password). */
static void
fs_apop(const char *ts, char out[33])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_MD_CTX *ctx;

	out[0] = '\0';
	if ((ctx = EVP_MD_CTX_new()) == NULL)
		return;
	if (EVP_DigestInit_ex(ctx, EVP_md5(), NULL) == 1 &&
	    EVP_DigestUpdate(ctx, ts, strlen(ts)) == 1 &&
	    EVP_DigestUpdate(ctx, FS_PASS, strlen(FS_PASS)) == 1 &&
	    EVP_DigestFinal_ex(ctx, md, &mdlen) == 1 && mdlen == 16)
		util_hex(md, 16, out);
	EVP_MD_CTX_free(ctx);
}

/* CRAM-MD5: base64("user " hex HMAC-MD5(password, challenge)). */
static void
fs_cram(const char *ts, char *out, size_t outlen)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	char resp[64 + 33];

	out[0] = '\0';
	if (HMAC(EVP_md5(), FS_PASS, (int)strlen(FS_PASS),
	    (const unsigned char *)ts, strlen(ts), md, &mdlen) == NULL ||
	    mdlen != 16)
		return;
	snprintf(resp, sizeof(resp), "%s ", FS_USER);
	util_hex(md, 16, resp + strlen(resp));
	if (util_b64_encode((const unsigned char *)resp, strlen(resp), out,
	    outlen) == -1)
		out[0] = '\0';
}

/* Copy data with the placeholders replaced; *cut moves along with them. */
static char *
fs_expand(const uint8_t *d, size_t n, const char *ts, size_t *outn,
    size_t *cut)
{
	char apop[33], cram[256], *out, *o;
	size_t i, grow, newcut = *cut;
	const char *rep;

	fs_apop(ts, apop);
	fs_cram(ts, cram, sizeof(cram));
	for (i = 0, grow = 0; i + 1 < n; i++)
		if (d[i] == 0x01 && (d[i + 1] == 'A' || d[i + 1] == 'C'))
			grow += sizeof(cram);
	if ((out = malloc(n + grow + 1)) == NULL)
		abort();
	o = out;
	for (i = 0; i < n; i++) {
		if (i == *cut)
			newcut = (size_t)(o - out);
		rep = NULL;
		if (d[i] == 0x01 && i + 1 < n && d[i + 1] == 'A')
			rep = apop;
		else if (d[i] == 0x01 && i + 1 < n && d[i + 1] == 'C')
			rep = cram;
		if (rep != NULL) {
			memcpy(o, rep, strlen(rep));
			o += strlen(rep);
			i++;
			continue;
		}
		*o++ = (char)d[i];
	}
	if (*cut >= n)
		newcut = (size_t)(o - out);
	*outn = (size_t)(o - out);
	*cut = newcut;
	return out;
}

/* ------------------------------------------------------------------ */
/* STLS. */

/* A throwaway self-signed P-256 certificate, so that STLS is offered. */
static void
fs_tls_setup(void)
{
	EVP_PKEY *pk;
	X509 *x;
	X509_NAME *nm;
	FILE *f;
	char cert[600], key[600], err[256];

	if ((pk = EVP_EC_gen("P-256")) == NULL)
		fs_die("TLS key generation");
	if ((x = X509_new()) == NULL)
		fs_die("X509_new");
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), -60);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400L * 365);
	X509_set_pubkey(x, pk);
	nm = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_ASC,
	    (const unsigned char *)"fuzz.invalid", -1, -1, 0);
	X509_set_issuer_name(x, nm);
	if (X509_sign(x, pk, EVP_sha256()) == 0)
		fs_die("X509_sign");
	snprintf(cert, sizeof(cert), "%s/cert.pem", fs_dir);
	snprintf(key, sizeof(key), "%s/key.pem", fs_dir);
	if ((f = fopen(cert, "w")) == NULL || PEM_write_X509(f, x) != 1 ||
	    fclose(f) != 0)
		fs_die("write cert.pem");
	if ((f = fopen(key, "w")) == NULL || PEM_write_PrivateKey(f, pk,
	    NULL, NULL, 0, NULL, NULL) != 1 || fclose(f) != 0)
		fs_die("write key.pem");
	X509_free(x);
	EVP_PKEY_free(pk);
	if (tls_load(cert, key, err, sizeof(err)) == -1) {
		fs_say("fuzz_session: %s\n", err);
		fs_die("tls_load");
	}
	if ((fs_cli_ctx = SSL_CTX_new(TLS_client_method())) == NULL)
		fs_die("client SSL_CTX_new");
	SSL_CTX_set_verify(fs_cli_ctx, SSL_VERIFY_NONE, NULL);
}

/* STLS was accepted: go on as a TLS client over the same pair. */
static void
fs_tls_client(struct fs_client *c)
{
	struct bufferevent *f;
	SSL *ssl;

	if ((ssl = SSL_new(fs_cli_ctx)) == NULL)
		fs_die("client SSL_new");
	f = bufferevent_openssl_filter_new(fs_base, c->raw, ssl,
	    BUFFEREVENT_SSL_CONNECTING,
	    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (f == NULL) {
		SSL_free(ssl);
		fs_die("client TLS filter");
	}
	bufferevent_openssl_set_allow_dirty_shutdown(f, 1);
	c->bev = f;
	bufferevent_setcb(f, fs_client_read_cb, NULL, fs_client_event_cb, c);
	bufferevent_enable(f, EV_READ | EV_WRITE);
	fs_pump();	/* the handshake */
}

/* ------------------------------------------------------------------ */

/* The peer address selected by the flags. */
static socklen_t
fs_peer(uint8_t flags, struct sockaddr_storage *ss)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	switch ((flags >> 1) & 3) {
	case 0:
		sin->sin_family = AF_INET;
		sin->sin_port = htons(4242);
		sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		return sizeof(*sin);
	case 1:
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(4242);
		sin6->sin6_addr = in6addr_loopback;
		return sizeof(*sin6);
	case 2:
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(4242);
		inet_pton(AF_INET6, "::ffff:127.0.0.1", &sin6->sin6_addr);
		return sizeof(*sin6);
	default:
		sin->sin_family = AF_INET;
		sin->sin_port = htons(4242);
		sin->sin_addr.s_addr = htonl(0xc0000207);	/* 192.0.2.7 */
		return sizeof(*sin);
	}
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char conf[2048], err[256], warn[256], path[600];
	const char *tmp = getenv("TMPDIR");
	struct stat st;
	char pw[1024];
	struct passwd_db *db;

	(void)argc;
	(void)argv;
	fs_trace = getenv("FUZZ_SESSION_TRACE") != NULL;
	if ((fs_errfd = dup(STDERR_FILENO)) == -1)
		fs_errfd = STDERR_FILENO;
	/* A RAM file system when there is one: the Maildir changes often. */
	if (tmp == NULL || *tmp == '\0')
		tmp = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) &&
		    access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
	snprintf(fs_dir, sizeof(fs_dir), "%s/evpop3d-fuzz.XXXXXX", tmp);
	if (mkdtemp(fs_dir) == NULL) {
		fs_dir[0] = '\0';
		fs_die("mkdtemp");
	}
	atexit(fs_cleanup);
	snprintf(conf, sizeof(conf),
	    "listen 127.0.0.1:1\n"
	    "passwd_file %s/passwd\n"
	    "mail_location %s/%%u/Maildir\n"
	    "allow_plaintext local\n"
	    "auth_fail_delay_ms 0\n"
	    "idle_timeout 600\n", fs_dir, fs_dir);
	fs_cfg = conf_parse("fuzz.conf", conf, strlen(conf), err, sizeof(err),
	    warn, sizeof(warn));
	if (fs_cfg == NULL) {
		fs_say("fuzz_session: %s\n", err);
		fs_die("conf_parse");
	}
	/* bob's Maildir cannot be made: a file stands where its parent
	 * directory should be (the LR_SYS answer). */
	snprintf(path, sizeof(path), "%s/notadir", fs_dir);
	fs_write(path, "x", 1);
	snprintf(pw, sizeof(pw), "%s:{PLAIN}%s\nbob:{PLAIN}pw:%s/Maildir\n",
	    FS_USER, FS_PASS, path);
	if ((db = auth_db_parse("fuzz.passwd", pw, strlen(pw), err,
	    sizeof(err))) == NULL) {
		fs_say("fuzz_session: %s\n", err);
		fs_die("auth_db_parse");
	}
	if (evthread_use_pthreads() == -1 ||
	    (fs_base = event_base_new()) == NULL)
		fs_die("libevent setup");
	lock_init(300);
	session_init(fs_base, fs_cfg, db);
	if (worker_init(fs_base, 2) == -1)
		fs_die("worker_init");
	snprintf(path, sizeof(path), "%s/%s", fs_dir, FS_USER);
	if (mkdir(path, 0700) == -1)
		fs_die("mkdir user directory");
	snprintf(fs_md, sizeof(fs_md), "%s/Maildir", path);
	fs_mailbox_make();
	fs_tls_setup();
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *in, size_t size)
{
	struct fs_client c;
	struct bufferevent *pair[2];
	struct sockaddr_storage ss;
	socklen_t sslen;
	char ts[256], lockpath[600], *data;
	size_t n, cut;
	uint8_t flags;
	struct stat st;

	if (size < 2)
		return 0;
	flags = in[0];
	n = size - 2;
	cut = (size_t)in[1] * n / 255;

	fs_mailbox_restore();
	memset(&c, 0, sizeof(c));
	if (bufferevent_pair_new(fs_base,
	    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS, pair) == -1)
		fs_die("bufferevent_pair_new");
	c.raw = c.bev = pair[1];
	bufferevent_setcb(c.bev, fs_client_read_cb, NULL, fs_client_event_cb,
	    &c);
	bufferevent_enable(c.bev, EV_READ | EV_WRITE);
	c.reading = 1;
	sslen = fs_peer(flags, &ss);
	if (session_start(pair[0], (struct sockaddr *)&ss, sslen, 0,
	    (flags & FS_F_STLS) != 0) == -1)
		fs_die("session_start");
	fs_pump();	/* the greeting */
	fs_timestamp(&c, ts, sizeof(ts));
	if ((flags & FS_F_SLOW) != 0) {
		bufferevent_disable(c.bev, EV_READ);
		c.reading = 0;
	}

	data = fs_expand(in + 2, n, ts, &n, &cut);
	if (cut > 0) {
		bufferevent_write(c.bev, data, cut);
		fs_pump();
	}
	if ((flags & FS_F_TLS) != 0 && c.stls_ok)
		fs_tls_client(&c);
	if (n > cut) {
		bufferevent_write(c.bev, data + cut, n - cut);
		fs_pump();
	}
	free(data);

	/* Half-close: the session sees EOF; we go on reading its replies.
	 * Under TLS the EOF goes below it (the server allows a dirty
	 * shutdown). */
	if (!c.reading)
		bufferevent_enable(c.bev, EV_READ);
	bufferevent_flush(c.raw, EV_WRITE, BEV_FINISHED);
	fs_drain_all(&c);
	bufferevent_free(c.bev);	/* a TLS filter frees raw with it */
	/* One more turn for anything the free scheduled. */
	event_base_loop(fs_base, EVLOOP_NONBLOCK);

	if (session_count() != 0)
		fs_die("session leaked");
	if (lock_count() != 0)
		fs_die("lock leaked");
	snprintf(lockpath, sizeof(lockpath), "%s/%s", fs_md, LOCK_FILE_NAME);
	if (lstat(lockpath, &st) == 0)
		fs_die("lock file left behind with no lock held");
	return 0;
}
