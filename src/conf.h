/*
 * evpop3d - conf.h: the configuration file (SERVER-CONTRACT.md) parsed and
 * validated into a read-only struct config.  Pure: no libevent.
 */
#ifndef EVPOP3D_CONF_H
#define EVPOP3D_CONF_H

#include <sys/socket.h>
#include <stddef.h>

struct oauth_conf;

enum conf_plaintext {
	CONF_PLAINTEXT_LOCAL = 0,	/* default: only from loopback */
	CONF_PLAINTEXT_YES,
	CONF_PLAINTEXT_NO
};

struct conf_listen {
	struct sockaddr_storage	 ss;
	socklen_t		 sslen;
	int			 tls;		/* listen_tls */
	char			 text[80];	/* as written, for logs */
};

/* A CIDR entry of proxy_protocol_from. */
struct conf_cidr {
	int			 family;	/* AF_INET or AF_INET6 */
	unsigned char		 addr[16];
	unsigned int		 prefix;
};

struct config {
	char			*path;		/* the file read */
	struct conf_listen	*listens;	/* listen + listen_tls, in order */
	size_t			 nlistens;	/* default 0.0.0.0:110 if none */
	char			*tls_cert;
	char			*tls_key;
	char			*passwd_file;
	char			*mail_location;	/* template with %u %n %d */
	enum conf_plaintext	 allow_plaintext;
	unsigned int		 idle_timeout;		/* seconds, default 600 */
	unsigned int		 auth_fail_delay_ms;	/* default 1000 */
	unsigned int		 max_connections;	/* default 10000 */
	unsigned int		 max_connections_per_ip; /* 0 = no limit */
	unsigned int		 workers;	/* 0 = auto (one per CPU) */
	struct conf_cidr	*proxy_from;
	size_t			 nproxy_from;
	char			*dovecot_uidl_format;	/* NULL: off */
	char			*user;
	char			*group;
	/* evpop3d extensions to the contract's keys: */
	unsigned int		 lock_stale_timeout;	/* seconds, default 300 */
	unsigned int		 login_delay;	/* CAPA LOGIN-DELAY seconds, 0=off */
	int			 log_debug;	/* log_level debug */
	int			 log_json;	/* log_format json: session record */
	int			 delete_trash;	/* delete_mode trash */
	unsigned int		 trash_days;	/* trash kept this long, default 7 */
	int			 expire_days;	/* EXPIRE: -1 never (default) */
	char			*pid_file;	/* daemon mode: write our pid */
	unsigned int		 login_timeout;	/* seconds to log in, default 60 */
	unsigned int		 auth_fail_max;	/* failures per session, default 3 */
	struct conf_cidr	*trusted;	/* login_trusted_networks */
	size_t			 ntrusted;
	int			 trusted_set;	/* else loopback is trusted */
	struct oauth_conf	*oauth;		/* oauth_* keys, NULL if none */
	int			 courier_uidl;	/* courierpop3dsizelist UIDLs */
	int			 xuidl_header;	/* X-UIDL: header UIDLs */
};

/*
 * Read and validate the file at path.  Returns a new config, or NULL with
 * a message "FILE:LINE: problem" (or "FILE: problem") written to err.
 * Warnings that do not stop startup (idle_timeout < 600) are written to
 * warn (empty string when none).  Checks that passwd_file and the TLS files
 * exist and are readable only when check_files is set.
 */
struct config	*conf_load(const char *path, int check_files, char *err,
		    size_t errlen, char *warn, size_t warnlen);

/* Parse the text of a config file (for tests and fuzzing); name is used in
 * messages.  Same results as conf_load without file checks. */
struct config	*conf_parse(const char *name, const char *text, size_t len,
		    char *err, size_t errlen, char *warn, size_t warnlen);

void		 conf_free(struct config *);

/*
 * Expand mail_location for a user: %u the whole name, %n the local part
 * (before '@'), %d the domain (after '@', empty if none), %% a percent.
 * Returns 0, or -1 if the result does not fit outlen.  The caller has
 * already validated the user name (no '/', no "..", no control bytes).
 */
int		 conf_expand_location(const char *tmpl, const char *user,
		    char *out, size_t outlen);

/* Is addr (AF_INET or AF_INET6 sockaddr) inside any proxy_protocol_from
 * CIDR?  Returns 1 or 0. */
int		 conf_proxy_trusted(const struct config *,
		    const struct sockaddr *addr);

/* Is addr in login_trusted_networks (default: loopback)?  Trusted
 * clients (webmail, proxies) are exempt from the growing delay after
 * failed logins.  Returns 1 or 0. */
int		 conf_login_trusted(const struct config *,
		    const struct sockaddr *addr);

#endif /* EVPOP3D_CONF_H */
