/*
 * evpop3d - params.h: every internal limit in one place, with its unit and
 * the reason for its value.  Nothing here is configurable at run time; the
 * administrator's knobs live in conf.h.
 */
#ifndef EVPOP3D_PARAMS_H
#define EVPOP3D_PARAMS_H

/* RFC 2449 section 4: a command line is at most 255 octets with its CRLF. */
#define POP_LINE_MAX		255
/* Buffered input with no line end beyond this is an attack, not a typo:
 * close the connection rather than keep reading. */
#define POP_LINE_ABSURD		4096
/* Stop reading from the socket once this much unparsed input is queued
 * (pipelined commands wait in the kernel instead of in our memory). */
#define SESSION_INPUT_HIWAT	16384
/* Stop executing pipelined commands while this many reply octets wait for a
 * client that does not read; resume when the buffer drains. */
#define SESSION_OUTPUT_HIWAT	(64 * 1024)
/* Commands executed per read callback before yielding to other sessions. */
#define SESSION_CMDS_PER_EVENT	32
/* -ERR replies in a row before the session is closed (Dovecot uses 20). */
#define SESSION_BAD_CMDS_MAX	20

/* RETR/TOP: refill the output buffer when it drains below the low mark,
 * stop once it holds the high mark; read the file in chunks of CHUNK. */
#define RETR_LOWAT		(16 * 1024)
#define RETR_HIWAT		(64 * 1024)
#define RETR_CHUNK		(32 * 1024)
/* Largest single socket write while streaming: all that can be buffered
 * (libevent's default, 16 KiB, made one loop turn per 16 KiB). */
#define RETR_WRITE_MAX		(RETR_HIWAT + 2 * RETR_CHUNK + 8)
/*
 * Messages of at least RETR_PIPE_MIN octets are read (RETR_PIPE_CHUNK at a
 * time) and encoded on the worker pool into RETR_PIPE_BLOCK blocks, two
 * per stream, while the loop only writes: the loop never waits for a cold
 * file, and encoding runs on another CPU.  Blocks are large because every
 * hand-over between threads costs system calls.  At most RETR_PIPE_MAX such
 * streams per process (2 blocks each: 64 MiB); others use the loop's reads.
 */
#define RETR_PIPE_MIN		(512 * 1024)
#define RETR_PIPE_CHUNK		(64 * 1024)
#define RETR_PIPE_BLOCK		(1024 * 1024)
#define RETR_PIPE_MAX		32
#define RETR_PIPE_WRITE_MAX	(2 * RETR_PIPE_BLOCK)

/* User names: longer ones are refused before any path is built. */
#define AUTH_USER_MAX		128
/* Passwords (PASS argument) are bounded by POP_LINE_MAX anyway. */
#define AUTH_PASS_MAX		POP_LINE_MAX

/* OAUTHBEARER (RFC 7628): a bearer token longer than this is refused (the
 * whole SASL line is bounded by POP_LINE_ABSURD anyway); JSON is nested at
 * most OAUTH_JSON_DEPTH deep; an introspection answer larger than
 * OAUTH_HTTP_MAX octets is refused; exp and nbf get OAUTH_LEEWAY_SEC of
 * clock skew; an introspection request gives up after the configured
 * timeout (default below). */
#define OAUTH_TOKEN_MAX		4096
#define OAUTH_JSON_DEPTH	16
#define OAUTH_HTTP_MAX		(64 * 1024)
#define OAUTH_LEEWAY_SEC	30
#define OAUTH_TIMEOUT_SEC_DEFAULT 5

/* Lock file refresh interval; a lock from another host whose mtime is older
 * than lock_stale_timeout (conf, default below) is taken over. */
#define LOCK_REFRESH_SEC	30
#define LOCK_STALE_SEC_DEFAULT	300

/* Worker pool for blocking jobs (crypt, Maildir scan, UPDATE). */
#define WORKER_THREADS_MIN	2
#define WORKER_THREADS_MAX	16

/* Listen backlog (the kernel caps it at net.core.somaxconn): a burst of
 * thousands of connects must not overflow the accept queue, where a
 * client whose handshake completed on its side would wait forever for a
 * greeting that never comes. */
#define LISTENER_BACKLOG	4096

/* EMFILE on accept: pause the listener this long, then retry. */
#define LISTENER_PAUSE_MSEC	1000

/* Failed-authentication penalty per client address: the delay doubles
 * per recent failure up to PENALTY_MAX_MS; failures older than
 * PENALTY_FORGET_SEC are forgotten; the table has PENALTY_SLOTS entries
 * (4096 * 32 octets: bounded memory whatever the number of attackers). */
#define PENALTY_MAX_MS		15000
#define PENALTY_FORGET_SEC	900
#define PENALTY_SLOTS		4096

/* Greeting timestamp host part, sanitised, at most this long. */
#define GREETING_HOST_MAX	64

#endif /* EVPOP3D_PARAMS_H */
