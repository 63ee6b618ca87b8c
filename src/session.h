/*
 * evpop3d - session.h: one POP3 connection.  Owns its bufferevent, its
 * mailbox snapshot, its lock, its RETR stream and its timers; frames input
 * lines and hands them to cmd.c; offers the reply API the handlers use.
 */
#ifndef EVPOP3D_SESSION_H
#define EVPOP3D_SESSION_H

#include <sys/types.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <stdint.h>
#include <time.h>

#include "params.h"

struct bufferevent;
struct event;
struct event_base;
struct config;
struct passwd_db;
struct mailbox;
struct mbox_lock;
struct retr;

enum session_state {
	ST_AUTHORIZATION = 1,
	ST_SASL = 2,		/* AUTH exchange: next line is a response */
	ST_TRANSACTION = 4,
	ST_UPDATE = 8,		/* QUIT read: removing marked messages */
	ST_CLOSING = 16,
	ST_PROXY = 32		/* waiting for a PROXY protocol header */
};

#define SF_TLS		0x0001	/* TLS is up on this connection */
#define SF_LOOPBACK	0x0002	/* peer is 127.0.0.0/8 or ::1 */
#define SF_BUSY		0x0004	/* a job, delay or stream: do not parse */
#define SF_PEER_GONE	0x0008	/* EOF or error from the peer */
#define SF_FREEING	0x0010	/* session_free has run */
#define SF_STLS_OFFER	0x0020	/* listener can upgrade with STLS */
#define SF_TLS_SHUT	0x0040	/* close_notify sent */
#define SF_TLS_LATER	0x0080	/* implicit TLS after the PROXY header */
#define SF_PROXIED	0x0100	/* peer comes from a PROXY header */
#define SF_STARTED	0x0200	/* a line has been parsed */
#define SF_UTF8		0x0400	/* RFC 6856 UTF8 command given */
#define SF_COUNTED	0x0800	/* in connlimit's shared counts */

/* Why a session ended, for the summary log line. */
#define END_QUIT	"quit"
#define END_QUIT_UNSENT	"quit-unsent"
#define END_DISCONNECT	"disconnect"
#define END_IDLE	"idle"
#define END_SHUTDOWN	"shutdown"
#define END_ERROR	"error"
#define END_BAD_CMDS	"too-many-errors"
#define END_LINE	"line-too-long"
#define END_TLS		"tls-error"
#define END_LOGIN_TIME	"login-timeout"
#define END_AUTH_FAILS	"auth-failures"
#define END_PROXY	"proxy-error"
#define END_ADMIN	"admin"

struct session {
	uint64_t		 id;
	struct bufferevent	*bev;
	enum session_state	 state;
	int			 flags;
	struct sockaddr_storage	 peer_ss;
	char			 peer[INET6_ADDRSTRLEN + 16];
	char			 proxy[INET6_ADDRSTRLEN + 16];	/* via */
	char			 timestamp[32 + GREETING_HOST_MAX];
	char			 user[AUTH_USER_MAX + 1];
	int			 have_user;	/* USER accepted */
	struct mailbox		*mbox;		/* after login */
	struct mbox_lock	*lock;		/* after login */
	struct retr		*retr;		/* while streaming */
	struct event		*timer;		/* auth delay; close drain */
	struct event		*resume_ev;	/* continue parsing later */
	struct event		*login_ev;	/* login_timeout */
	unsigned int		 auth_fails;	/* failed logins this session */
	unsigned int		 bad_cmds;	/* -ERR replies in a row */
	unsigned int		 jobs;		/* worker jobs holding us */
	unsigned int		 close_polls;	/* STLS drain checks */
	int			 sasl_mech;	/* during ST_SASL */
	void			*sasl_data;
	char			*pending_reply;	/* sent when timer fires */
	const char		*end_reason;
	struct timespec		 start;
	uint64_t		 retr_msgs, retr_octets;
	uint64_t		 del_msgs, del_octets;	/* marked at QUIT */
	uint64_t		 removed;	/* actually removed by UPDATE */
	size_t			 listed;	/* messages at login */
	const char		*mech;		/* how the user logged in */
	size_t			 left_msgs;
	uint64_t		 left_octets;
	TAILQ_ENTRY(session)	 entry;
};

/* Module start: the loop and the initial configuration and passwd db. */
void	session_init(struct event_base *, const struct config *,
	    struct passwd_db *);

/* Replace the configuration or passwd db (SIGHUP).  Sessions in flight keep
 * what they copied; new lookups see the new one.  The old db is freed. */
void	session_set_config(const struct config *);
void	session_set_passwd(struct passwd_db *);
const struct config *session_config(void);
const struct passwd_db *session_passwd(void);
struct event_base *session_base(void);

/* A new connection accepted on a listener (tls: implicit TLS; stls: STLS
 * may be offered; proxy: a PROXY protocol header comes first, from a
 * proxy_protocol_from address; counted: connlimit_add counted it, and the
 * session takes that count over).  Takes ownership of fd.  Returns 0 or -1
 * (fd closed, the count left to the caller). */
int	session_accept(int fd, const struct sockaddr *, socklen_t, int tls,
	    int stls, int proxy, int counted);

/* Worker process w: session ids carry w in their top 16 bits, so the ids
 * in the log stay unique across workers. */
void	session_set_worker(unsigned int w);

/* The same over an already connected bufferevent (owned from here on;
 * freed on failure): inetd mode, tests and fuzzing use it directly. */
int	session_start(struct bufferevent *, const struct sockaddr *,
	    socklen_t, int tls, int stls);

/* Call fn for every live session of this process (control LIST). */
void	session_foreach(void (*fn)(const struct session *, void *),
	    void *arg);

/* One line of key=value describing s for the administrator. */
void	session_describe(const struct session *, char *buf, size_t len);

/* The administrator ends session id without UPDATE (marks discarded).
 * Returns 0, 1 if it is in UPDATE already (it ends by itself), -1 if no
 * such session lives in this process. */
int	session_admin_end(uint64_t id);

/* Number of live sessions (for max_connections). */
unsigned int session_count(void);

/* Live sessions whose peer address matches sa according to same(). */
unsigned int session_count_peer(const struct sockaddr *sa,
	    int (*same)(const struct sockaddr_storage *,
	    const struct sockaddr *));

/* SIGTERM: close every session without UPDATE. */
void	session_shutdown_all(void);

/* Reply API for cmd.c and retr.c. */
void	session_reply(struct session *, const char *, ...)
	    __attribute__((format(printf, 2, 3)));
void	session_write(struct session *, const void *, size_t);
/* An -ERR reply that also counts towards SESSION_BAD_CMDS_MAX. */
void	session_error(struct session *, const char *, ...)
	    __attribute__((format(printf, 2, 3)));
void	session_enter_state(struct session *, enum session_state);
/* Close after the pending output is written (reason for the log). */
void	session_close(struct session *, const char *reason);
/* Pause and resume command parsing (pipelined input waits). */
void	session_busy(struct session *);
void	session_resume(struct session *);
/* Hold the session across a worker job: session_unhold returns 1 if the
 * session was closed meanwhile and has now been freed (do not touch it). */
void	session_hold(struct session *);
int	session_unhold(struct session *);
/* Answer reply after the configured failed-authentication delay. */
void	session_auth_failed(struct session *, const char *reply);
/* Logged in: stop the login timer, forget the address's failures. */
void	session_logged_in(struct session *);
/* Is plaintext authentication allowed on this connection now? */
int	session_plaintext_ok(const struct session *);
/* Is STLS available on this connection now? */
int	session_stls_ok(const struct session *);
/* STLS: discard buffered clear text and start TLS.  Returns 0 or -1
 * (the session should then be closed). */
int	session_starttls(struct session *);
/* Output octets waiting to be sent. */
size_t	session_output_len(const struct session *);

#endif /* EVPOP3D_SESSION_H */
