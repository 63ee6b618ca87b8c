/*
 * evpop3d - main.c: options, startup order, privilege drop, signals, the
 * event loop and the SIGTERM shutdown.
 *
 * Startup order matters: configuration, then listeners (which may need
 * root for port 110), then everything read with root's rights (passwd_file,
 * TLS key), then the irrevocable drop to `user`, and only then threads and
 * sessions.  No session is ever served as root.
 */
#include "config.h"

#include <sys/types.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <errno.h>
#include <getopt.h>
#include <sched.h>
#include <grp.h>
#include <limits.h>
#include <malloc.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "auth.h"
#include "conf.h"
#include "connlimit.h"
#include "control.h"
#include "inetd.h"
#include "listener.h"
#include "lock.h"
#include "log.h"
#include "maildir.h"
#include "migrate.h"
#include "params.h"
#include "penalty.h"
#include "session.h"
#include "scram.h"
#include "tls.h"
#include "util.h"
#include "worker.h"

#ifndef EVPOP3D_CONF_DEFAULT
#define EVPOP3D_CONF_DEFAULT	"/etc/evpop3d/evpop3d.conf"
#endif

static struct event_base	*main_base;
static struct config		*main_cfg;
static struct event		*main_stop_ev;
static struct event		*main_refresh_ev;
static int			 main_stopping;
static int			 main_inetd;
static int			 main_debug;
static struct event		*main_inetd_ev;

/* Worker processes (workers > 1) and their supervisor. */
#define MAIN_WORKERS_MAX	256
#define MAIN_STOP_WAIT_SEC	60
#define MAIN_HEAP_KEEP		(8 * 1024 * 1024)	/* octets */	/* then SIGKILL (UPDATE takes less) */
static int			 main_supervised;	/* in a worker, or
							   the supervisor */
static pid_t			 main_super_pid;
static sigset_t			 main_oldmask;
static pid_t			 main_pids[MAIN_WORKERS_MAX];
static time_t			 main_spawned[MAIN_WORKERS_MAX];
static time_t			 main_respawn_at[MAIN_WORKERS_MAX];

static void	main_refresh_interval(const struct config *, struct timeval *);
static unsigned int main_nworkers(const struct config *);

static void
main_usage(void)
{
	fprintf(stderr, "usage: evpop3d [-dFitV] [-c file]\n"
	    "       evpop3d --hash-password | --hash-scram < password\n"
	    "       evpop3d [-c file] --trash-list user\n"
	    "       evpop3d [-c file] --compare user host:port [tls|stls] "
	    "< password\n"
	    "       evpop3d [-c file] --trash-restore user [base-name]\n"
	    "       evpop3d [-c file] --sessions | --kick session-id\n");
	exit(1);
}

/* Read one password from standard input (no echo on a terminal), print
 * its crypt(3) hash (or, with scram, its {SCRAM-SHA-256} salted keys) for
 * the passwd file. */
static int
main_hash_password(int scram)
{
	char pw[1024], hash[512];
	struct termios t, saved;
	int tty = isatty(STDIN_FILENO);
	size_t n;

	if (tty && tcgetattr(STDIN_FILENO, &saved) == 0) {
		t = saved;
		t.c_lflag &= ~ECHO;
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &t);
		fprintf(stderr, "Password: ");
	}
	if (fgets(pw, sizeof(pw), stdin) == NULL)
		pw[0] = '\0';
	if (tty) {
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved);
		fprintf(stderr, "\n");
	}
	n = strcspn(pw, "\r\n");
	pw[n] = '\0';
	if (n == 0) {
		fprintf(stderr, "evpop3d: empty password\n");
		return 1;
	}
	if ((scram ? scram_make_secret(pw, SCRAM_ITER_DEFAULT, hash,
	    sizeof(hash)) : auth_hash_password(pw, hash, sizeof(hash))) == -1) {
		util_wipe(pw, sizeof(pw));
		fprintf(stderr, "evpop3d: cannot hash password\n");
		return 1;
	}
	util_wipe(pw, sizeof(pw));
	printf("%s\n", hash);
	return 0;
}

static void
main_trash_print(const char *name, uint64_t size, time_t when, void *arg)
{
	char t[32];
	struct tm tm;

	(void)arg;
	gmtime_r(&when, &tm);
	strftime(t, sizeof(t), "%Y-%m-%dT%H:%M:%SZ", &tm);
	printf("%s %llu %s\n", t, (unsigned long long)size, name);
}

/*
 * Administrator commands on a user's trash (delete_mode trash): list what
 * the user's clients deleted, or put it back into cur/.  The mailbox lock
 * is taken, so this never races a session.
 */
static int
main_trash(const struct config *cfg, const struct passwd_db *db, int restore,
    char **args, int nargs)
{
	const struct passwd_entry *pe;
	struct mbox_lock *lk;
	char dir[PATH_MAX], holder[256];
	long n;

	if (nargs < 1 || nargs > (restore ? 2 : 1))
		main_usage();
	if (!auth_user_valid(args[0], strlen(args[0])) ||
	    (pe = auth_db_lookup(db, args[0])) == NULL) {
		fprintf(stderr, "evpop3d: no user %s in %s\n", args[0],
		    cfg->passwd_file);
		return 1;
	}
	if (pe->maildir != NULL)
		snprintf(dir, sizeof(dir), "%s", pe->maildir);
	else if (conf_expand_location(cfg->mail_location, args[0], dir,
	    sizeof(dir)) == -1)
		return 1;
	lock_init(cfg->lock_stale_timeout);
	switch (lock_acquire_for(dir, "admin", &lk, holder, sizeof(holder))) {
	case LOCK_OK:
		break;
	case LOCK_IN_USE:
		fprintf(stderr, "evpop3d: %s: mailbox in use by %s\n", dir,
		    holder);
		return 1;
	default:
		fprintf(stderr, "evpop3d: %s: %s\n", dir, strerror(errno));
		return 1;
	}
	if (restore)
		n = maildir_trash_restore(dir, nargs > 1 ? args[1] : NULL);
	else
		n = maildir_trash_list(dir, main_trash_print, NULL);
	lock_release(lk);
	if (n == -1) {
		fprintf(stderr, "evpop3d: %s: %s\n", dir, strerror(errno));
		return 1;
	}
	if (restore)
		printf("%ld message%s restored to %s/cur\n", n,
		    n == 1 ? "" : "s", dir);
	return 0;
}

/*
 * --sessions / --kick: ask every worker of the running daemon (the one
 * reading this configuration file) over its control socket.  --sessions
 * prints one line per session; --kick succeeds where one worker had it.
 */
static int
main_admin(const struct config *cfg, const char *req)
{
	unsigned int w, n = main_nworkers(cfg), reached = 0, count = 0;
	int r, list = strcmp(req, "LIST") == 0, kicked = 0, denied = 0;
	char *buf, *line, *next;
	size_t len;
	FILE *m;

	for (w = 0; w < n; w++) {
		buf = NULL;
		len = 0;
		if ((m = open_memstream(&buf, &len)) == NULL)
			return 1;
		r = control_request(cfg->path, w, req, m);
		fclose(m);
		if (r != -1)
			reached++;
		else if (errno == EACCES)
			denied = 1;
		for (line = buf; line != NULL && *line != '\0'; line = next) {
			if ((next = strchr(line, '\n')) != NULL)
				*next++ = '\0';
			if (list && strcmp(line, ".") != 0) {
				printf("%s\n", line);
				count++;
			} else if (!list && r == 0) {
				printf("%s\n", line);
				kicked = 1;
			} else if (!list && strstr(line, "no session") == NULL) {
				fprintf(stderr, "evpop3d: %s\n", line + 5);
				kicked = -1;
			}
		}
		free(buf);
	}
	if (reached == 0 && denied) {
		fprintf(stderr, "evpop3d: the daemon refused us: run this as "
		    "root or as the daemon's user\n");
		return 1;
	}
	if (reached == 0) {
		fprintf(stderr, "evpop3d: no daemon with configuration %s is "
		    "running (or it runs in another network namespace)\n",
		    cfg->path);
		return 1;
	}
	if (list) {
		fprintf(stderr, "%u session%s\n", count, count == 1 ? "" : "s");
		return 0;
	}
	if (kicked == 0)
		fprintf(stderr, "evpop3d: no such session: %s\n", req + 5);
	return kicked == 1 ? 0 : 1;
}

/* Give up root for good: no supplementary groups, then gid, then uid,
 * and prove that root cannot be regained. */
static void
main_drop_privileges(const struct config *cfg)
{
	struct passwd *pw;
	struct group *gr;
	uid_t uid;
	gid_t gid;

	if (geteuid() != 0)
		return;
	if ((pw = getpwnam(cfg->user)) == NULL)
		fatalx("%s: user %s: no such user", cfg->path, cfg->user);
	uid = pw->pw_uid;
	gid = pw->pw_gid;
	if (cfg->group != NULL) {
		if ((gr = getgrnam(cfg->group)) == NULL)
			fatalx("%s: group %s: no such group", cfg->path,
			    cfg->group);
		gid = gr->gr_gid;
	}
	if (uid == 0)
		fatalx("%s: user %s is root; choose an unprivileged user",
		    cfg->path, cfg->user);
	if (setgroups(0, NULL) == -1)
		fatal("setgroups");
	if (setresgid(gid, gid, gid) == -1)
		fatal("setresgid");
	if (setresuid(uid, uid, uid) == -1)
		fatal("setresuid");
	if (setuid(0) != -1 || seteuid(0) != -1 || getuid() != uid ||
	    geteuid() != uid || getgid() != gid || getegid() != gid)
		fatalx("privilege drop to %s failed", cfg->user);
	log_info("running as user %s (uid %u, gid %u)", cfg->user,
	    (unsigned)uid, (unsigned)gid);
}

/* Each session needs a descriptor, plus one per message being sent. */
static void
main_raise_nofile(const struct config *cfg)
{
	struct rlimit rl, hard;
	rlim_t want = (rlim_t)cfg->max_connections * 2 + 64;

	if (getrlimit(RLIMIT_NOFILE, &hard) == -1 || hard.rlim_cur >= want)
		return;
	rl.rlim_cur = rl.rlim_max = want;
	if (hard.rlim_max == RLIM_INFINITY || hard.rlim_max >= want)
		rl.rlim_max = hard.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
		return;
	/* Not allowed past the hard limit: take all it gives. */
	rl.rlim_cur = rl.rlim_max = hard.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
		rl.rlim_cur = hard.rlim_cur;
	log_info("descriptor limit %llu is below the %llu that "
	    "max_connections %u may need; accepting pauses when it is reached",
	    (unsigned long long)rl.rlim_cur, (unsigned long long)want,
	    cfg->max_connections);
}

/* Wait for sessions still in UPDATE, then leave the loop. */
static void
main_stop_check_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct timeval tv = { 0, 20000 };
	static int rounds;

	(void)fd;
	(void)ev;
	(void)arg;
	if (session_count() == 0 || ++rounds > 500) {
		event_base_loopexit(main_base, NULL);
		return;
	}
	evtimer_add(main_stop_ev, &tv);
}

/* SIGTERM/SIGINT: stop accepting, end sessions without UPDATE. */
static void
main_sigterm_cb(evutil_socket_t sig, short ev, void *arg)
{
	struct timeval tv = { 0, 0 };

	(void)ev;
	(void)arg;
	if (main_stopping)
		return;
	main_stopping = 1;
	log_info("signal %d: shutting down, %u sessions", (int)sig,
	    session_count());
	listener_disable();
	session_shutdown_all();
	evtimer_add(main_stop_ev, &tv);
}

/* Settings that only a restart can change (sockets are bound and the
 * user is set once, with root's rights). */
static void
main_reload_warn_fixed(const struct config *old, const struct config *new)
{
	size_t i;
	int same = old->nlistens == new->nlistens;

	for (i = 0; same && i < old->nlistens; i++)
		same = old->listens[i].tls == new->listens[i].tls &&
		    strcmp(old->listens[i].text, new->listens[i].text) == 0;
	if (!same)
		log_warnx("reload: listen/listen_tls changes take effect at "
		    "the next restart");
	if ((old->user == NULL) != (new->user == NULL) ||
	    (old->user != NULL && strcmp(old->user, new->user) != 0) ||
	    (old->group == NULL) != (new->group == NULL) ||
	    (old->group != NULL && strcmp(old->group, new->group) != 0))
		log_warnx("reload: user/group changes take effect at the "
		    "next restart");
}

/* A reload in progress: files are read and parsed on a worker thread (a
 * passwd_file of a million users takes seconds), then applied here. */
struct main_reload {
	char			*path;
	struct config		*cfg;
	struct passwd_db	*db;
	char			 err[1024];
	char			 warn[512];
	int			 failed_passwd;
};
static int			 main_reloading;

static void
main_reload_run(void *arg)
{
	struct main_reload *r = arg;

	r->cfg = conf_load(r->path, 1, r->err, sizeof(r->err), r->warn,
	    sizeof(r->warn));
	if (r->cfg == NULL)
		return;
	if ((r->db = auth_db_load(r->cfg->passwd_file, r->err,
	    sizeof(r->err))) == NULL) {
		r->failed_passwd = 1;
		conf_free(r->cfg);
		r->cfg = NULL;
	}
}

/*
 * Apply a reload: anything that failed to load keeps what is in use and
 * the log says where the problem is; a broken TLS pair alone keeps the old
 * certificate but lets the rest of the new configuration in.
 */
static void
main_reload_done(void *arg)
{
	struct main_reload *r = arg;
	struct config *cfg = r->cfg;
	struct timeval tv;
	char err[1024];

	main_reloading = 0;
	if (cfg == NULL) {
		log_warnx("reload: %s; keeping the old configuration%s", r->err,
		    r->failed_passwd ? " and passwd_file" : "");
		goto out;
	}
	if (r->warn[0] != '\0')
		log_warnx("reload: %s", r->warn);
	if (cfg->tls_cert != NULL) {
		if (tls_load(cfg->tls_cert, cfg->tls_key, err,
		    sizeof(err)) == -1)
			log_warnx("reload: %s; keeping the old certificate",
			    err);
		else
			log_info("reload: certificate %s", cfg->tls_cert);
	}
	main_reload_warn_fixed(main_cfg, cfg);
	session_set_passwd(r->db);
	session_set_config(cfg);
	lock_init(cfg->lock_stale_timeout);
	main_refresh_interval(cfg, &tv);
	event_add(main_refresh_ev, &tv);
	log_set_debug(main_debug || cfg->log_debug);
	conf_free(main_cfg);
	main_cfg = cfg;
	log_info("reload: configuration %s, passwd_file %s with %zu users",
	    cfg->path, cfg->passwd_file, auth_db_count(r->db));
out:
	free(r->path);
	free(r);
}

/* SIGHUP: re-read the configuration, the passwd_file and the TLS pair,
 * without dropping sessions or stalling them. */
static void
main_sighup_cb(evutil_socket_t sig, short ev, void *arg)
{
	struct main_reload *r;

	(void)sig;
	(void)ev;
	(void)arg;
	if (main_reloading) {
		log_info("reload: already in progress");
		return;
	}
	if ((r = calloc(1, sizeof(*r))) == NULL ||
	    (r->path = strdup(main_cfg->path)) == NULL) {
		free(r);
		log_warnx("reload: out of memory");
		return;
	}
	main_reloading = 1;
	if (worker_submit(main_reload_run, main_reload_done, r) == -1) {
		main_reloading = 0;
		free(r->path);
		free(r);
		log_warnx("reload: out of memory");
	}
}

/* Daemon mode: record our pid for init scripts (before dropping root). */
static void
main_write_pid_file(const char *path)
{
	FILE *f;

	if ((f = fopen(path, "w")) == NULL) {
		log_warn("pid_file %s", path);
		return;
	}
	fprintf(f, "%ld\n", (long)getpid());
	fclose(f);
}

/* inetd mode: leave the loop once the one session is over. */
static void
main_inetd_check_cb(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	(void)arg;
	if (inetd_done())
		event_base_loopexit(main_base, NULL);
}

/* systemd socket activation: sockets passed to us, if any. */
static int
main_listen_fds(void)
{
	const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
	unsigned long long n;
	const char *errstr;

	if (pid == NULL || fds == NULL || atol(pid) != (long)getpid())
		return 0;
	if (util_strtonum(fds, 1, 1000, &n, &errstr) == -1)
		return 0;
	return (int)n;
}

static void
main_lock_refresh_run(void *arg)
{
	int lost;

	(void)arg;
	if ((lost = lock_refresh_all()) > 0)
		log_warnx("%d mailbox lock files were removed or replaced "
		    "by someone else", lost);
}

/* Refresh locks at least three times per lock_stale_timeout, so that a
 * live session's lock can never look stale to another host. */
static void
main_refresh_interval(const struct config *cfg, struct timeval *tv)
{
	unsigned int sec = cfg->lock_stale_timeout / 3;

	if (sec > LOCK_REFRESH_SEC)
		sec = LOCK_REFRESH_SEC;
	tv->tv_sec = sec > 0 ? sec : 1;
	tv->tv_usec = 0;
}

/* Keep our lock files fresh so other hosts do not take them over. */
static void
main_lock_refresh_cb(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	(void)arg;
	if (lock_count() > 0)
		worker_submit(main_lock_refresh_run, NULL, NULL);
}

/* One event loop: this process serves sessions until SIGTERM (worker w of
 * a supervised daemon, or the only one). */
static int
main_serve(struct passwd_db *db, unsigned int w)
{
	struct event *ev_term, *ev_int, *ev_hup;
	struct timeval refresh;

	/* RETR buffers come and go by the megabyte: glibc would give the
	 * top of the heap back after each message and fault it in again for
	 * the next (page faults and TLB shootdowns, 10-15 % of the loop's
	 * time in the sessions benchmark).  Keep a few MB instead. */
	mallopt(M_TRIM_THRESHOLD, MAIN_HEAP_KEEP);
	mallopt(M_MMAP_THRESHOLD, MAIN_HEAP_KEEP / 4);
	if ((main_base = event_base_new()) == NULL)
		fatalx("event_base_new failed");
	if (!main_inetd && listener_attach(main_base) == -1)
		return 1;
	connlimit_set_worker(w);
	session_set_worker(w);
	lock_init(main_cfg->lock_stale_timeout);
	session_init(main_base, main_cfg, db);
	if (worker_init(main_base, 0) == -1)
		fatalx("cannot start worker threads");

	ev_term = evsignal_new(main_base, SIGTERM, main_sigterm_cb, NULL);
	ev_int = evsignal_new(main_base, SIGINT, main_sigterm_cb, NULL);
	ev_hup = evsignal_new(main_base, SIGHUP, main_sighup_cb, NULL);
	main_stop_ev = evtimer_new(main_base, main_stop_check_cb, NULL);
	main_refresh_ev = event_new(main_base, -1, EV_PERSIST,
	    main_lock_refresh_cb, NULL);
	if (ev_term == NULL || ev_int == NULL || ev_hup == NULL ||
	    main_stop_ev == NULL || main_refresh_ev == NULL)
		fatalx("cannot create events");
	evsignal_add(ev_term, NULL);
	evsignal_add(ev_int, NULL);
	evsignal_add(ev_hup, NULL);
	/* A worker starts with the supervisor's signals blocked, so that
	 * none is lost or fatal before the loop can take it. */
	if (main_supervised)
		sigprocmask(SIG_SETMASK, &main_oldmask, NULL);
	main_refresh_interval(main_cfg, &refresh);
	event_add(main_refresh_ev, &refresh);

	if (main_inetd) {
		struct timeval tick = { 0, 50000 };

		if (inetd_start(main_base) == -1)
			fatalx("inetd mode: cannot start the session");
		main_inetd_ev = event_new(main_base, -1, EV_PERSIST,
		    main_inetd_check_cb, NULL);
		event_add(main_inetd_ev, &tick);
	} else {
		control_start(main_base, main_cfg->path, w);
		listener_enable();
		if (!main_supervised)
			log_info("evpop3d %s started", PACKAGE_VERSION);
	}
	event_base_dispatch(main_base);

	/* Finish jobs already queued (an UPDATE in progress completes). */
	worker_shutdown();
	session_shutdown_all();		/* those that were waiting on a job */
	listener_shutdown();
	control_stop();
	event_free(ev_term);
	event_free(ev_int);
	event_free(ev_hup);
	event_free(main_stop_ev);
	event_free(main_refresh_ev);
	if (main_inetd_ev != NULL)
		event_free(main_inetd_ev);
	if (main_cfg->pid_file != NULL && !main_inetd && !main_supervised)
		unlink(main_cfg->pid_file);	/* may fail once unprivileged */
	session_set_passwd(NULL);
	tls_shutdown();
	conf_free(main_cfg);
	connlimit_free();
	event_base_free(main_base);
	if (!main_inetd && !main_supervised)
		log_info("evpop3d stopped");
	return 0;
}

/* workers auto: the CPUs this process may run on. */
static unsigned int
main_nworkers(const struct config *cfg)
{
	cpu_set_t set;
	int n = 0;

	if (cfg->workers > 0)
		return cfg->workers;
	if (sched_getaffinity(0, sizeof(set), &set) == 0)
		n = CPU_COUNT(&set);
	if (n <= 0)
		n = (int)sysconf(_SC_NPROCESSORS_ONLN);
	if (n <= 0)
		n = 1;
	return n > MAIN_WORKERS_MAX ? MAIN_WORKERS_MAX : (unsigned int)n;
}

/* Start worker process w; it dies with the supervisor. */
static void
main_spawn(struct passwd_db *db, unsigned int w)
{
	pid_t pid;

	if ((pid = fork()) == -1) {
		log_warn("worker %u: fork", w);
		main_respawn_at[w] = time(NULL) + 1;
		return;
	}
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != main_super_pid)
			_exit(0);	/* the supervisor is already gone */
		exit(main_serve(db, w));
	}
	main_pids[w] = pid;
	main_spawned[w] = time(NULL);
	main_respawn_at[w] = 0;
}

/* SIGHUP in the supervisor: workers reload themselves (and log); the
 * supervisor reloads too, quietly, so that a worker it starts later
 * begins with what is current. */
static void
main_supervisor_reload(struct passwd_db **dbp, unsigned int nworkers)
{
	struct config *cfg;
	struct passwd_db *db;
	char err[1024], warn[512];

	if ((cfg = conf_load(main_cfg->path, 1, err, sizeof(err), warn,
	    sizeof(warn))) == NULL)
		return;
	if ((db = auth_db_load(cfg->passwd_file, err, sizeof(err))) == NULL) {
		conf_free(cfg);
		return;
	}
	if (cfg->tls_cert != NULL)
		tls_load(cfg->tls_cert, cfg->tls_key, err, sizeof(err));
	if (main_nworkers(cfg) != nworkers)
		log_warnx("reload: workers changes take effect at the next "
		    "restart");
	auth_db_free(*dbp);
	*dbp = db;
	conf_free(main_cfg);
	main_cfg = cfg;
}

/* Why a worker ended, for the log. */
static void
main_describe_exit(int st, char *buf, size_t len)
{
	if (WIFEXITED(st))
		snprintf(buf, len, "exited with status %d", WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		snprintf(buf, len, "killed by signal %d", WTERMSIG(st));
	else
		snprintf(buf, len, "ended (status %#x)", st);
}

/*
 * The supervisor of nworkers worker processes (workers > 1): it serves no
 * session itself.  It passes SIGHUP and SIGTERM on, starts a new worker
 * when one dies (taking back the dead one's connection counts; its lock
 * files name a dead pid and are broken at once), and exits once every
 * worker has stopped: 0 if all of them stopped cleanly.
 */
static int
main_supervise(struct passwd_db *db, unsigned int nworkers)
{
	sigset_t set;
	siginfo_t si;
	struct timespec ts;
	char why[64];
	int sig, st, rc = 0, stopping = 0, alive;
	time_t now, stop_at = 0;
	unsigned int w;
	pid_t pid;

	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, &main_oldmask);
	main_supervised = 1;
	main_super_pid = getpid();
	for (w = 0; w < nworkers; w++)
		main_spawn(db, w);
	log_info("evpop3d %s started, %u worker processes", PACKAGE_VERSION,
	    nworkers);
	for (;;) {
		ts.tv_sec = 1;
		ts.tv_nsec = 0;
		sig = sigtimedwait(&set, &si, &ts);
		now = time(NULL);
		if ((sig == SIGTERM || sig == SIGINT) && !stopping) {
			stopping = 1;
			stop_at = now;
			log_info("signal %d: stopping %u worker processes",
			    sig, nworkers);
			for (w = 0; w < nworkers; w++)
				if (main_pids[w] > 0)
					kill(main_pids[w], SIGTERM);
		} else if (sig == SIGHUP && !stopping) {
			for (w = 0; w < nworkers; w++)
				if (main_pids[w] > 0)
					kill(main_pids[w], SIGHUP);
			main_supervisor_reload(&db, nworkers);
		}
		while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
			for (w = 0; w < nworkers && main_pids[w] != pid; w++)
				;
			if (w == nworkers)
				continue;
			main_pids[w] = 0;
			connlimit_reset_worker(w);
			main_describe_exit(st, why, sizeof(why));
			if (stopping) {
				if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
					rc = 1;
					log_warnx("worker %u (pid %ld) %s", w,
					    (long)pid, why);
				}
				continue;
			}
			log_warnx("worker %u (pid %ld) %s; starting another",
			    w, (long)pid, why);
			/* One that dies at once waits a second: no fork
			 * storm when something is broken for good. */
			main_respawn_at[w] = now - main_spawned[w] < 1 ?
			    now + 1 : now;
		}
		alive = 0;
		for (w = 0; w < nworkers; w++) {
			if (main_pids[w] == 0 && !stopping &&
			    main_respawn_at[w] <= now)
				main_spawn(db, w);
			if (main_pids[w] > 0)
				alive++;
		}
		if (stopping && alive == 0)
			break;
		if (stopping && now - stop_at > MAIN_STOP_WAIT_SEC) {
			for (w = 0; w < nworkers; w++)
				if (main_pids[w] > 0)
					kill(main_pids[w], SIGKILL);
			rc = 1;
		}
	}
	listener_shutdown();
	connlimit_free();
	if (main_cfg->pid_file != NULL)
		unlink(main_cfg->pid_file);	/* may fail once unprivileged */
	auth_db_free(db);
	tls_shutdown();
	conf_free(main_cfg);
	log_info("evpop3d stopped");
	return rc;
}

int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "hash-password", no_argument, NULL, 'H' },
		{ "hash-scram", no_argument, NULL, 'S' },
		{ "trash-list", no_argument, NULL, 'L' },
		{ "trash-restore", no_argument, NULL, 'R' },
		{ "sessions", no_argument, NULL, 'A' },
		{ "kick", required_argument, NULL, 'K' },
		{ "compare", no_argument, NULL, 'M' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 }
	};
	const char *conffile = EVPOP3D_CONF_DEFAULT;
	int ch, foreground = 0, test = 0, nfds, trash = 0;
	char err[1024], warn[512];
	struct passwd_db *db;
	unsigned int nworkers;
	const char *admin = NULL;
	char kick[64];
	int compare = 0;	/* --compare (migrate.c) */

	while ((ch = getopt_long(argc, argv, "c:dFitV", longopts,
	    NULL)) != -1) {
		switch (ch) {
		case 'c':
			conffile = optarg;
			break;
		case 'd':
			main_debug = 1;
			break;
		case 'i':
			main_inetd = 1;
			break;
		case 'F':
			foreground = 1;
			break;
		case 't':
			test = 1;
			break;
		case 'V':
			printf("evpop3d %s\n", PACKAGE_VERSION);
			return 0;
		case 'H':
			return main_hash_password(0);
		case 'S':
			return main_hash_password(1);
		case 'L':
			trash = 1;
			break;
		case 'R':
			trash = 2;
			break;
		case 'A':
			admin = "LIST";
			break;
		case 'K':
			snprintf(kick, sizeof(kick), "KICK %s", optarg);
			admin = kick;
			break;
		case 'M':
			compare = 1;
			break;
		default:
			main_usage();
		}
	}
	if (optind != argc && trash == 0 && !compare)
		main_usage();

	main_cfg = conf_load(conffile, 1, err, sizeof(err), warn,
	    sizeof(warn));
	if (main_cfg == NULL) {
		fprintf(stderr, "evpop3d: %s\n", err);
		return 1;
	}
	if (warn[0] != '\0')
		fprintf(stderr, "evpop3d: warning: %s\n", warn);
	if (admin != NULL) {
		int rc = main_admin(main_cfg, admin);
		conf_free(main_cfg);
		return rc;
	}
	if ((db = auth_db_load(main_cfg->passwd_file, err,
	    sizeof(err))) == NULL) {
		fprintf(stderr, "evpop3d: %s\n", err);
		return 1;
	}
	if (main_cfg->tls_cert != NULL && tls_load(main_cfg->tls_cert,
	    main_cfg->tls_key, err, sizeof(err)) == -1) {
		fprintf(stderr, "evpop3d: %s: %s\n", main_cfg->path, err);
		return 1;
	}
	if (trash) {
		int rc = main_trash(main_cfg, db, trash == 2, argv + optind,
		    argc - optind);
		auth_db_free(db);
		tls_shutdown();
		conf_free(main_cfg);
		return rc;
	}
	/* --compare USER HOST:PORT: a migrated mailbox against the old
	 * server, as the daemon's user (it may write evpop3d.* files). */
	if (compare) {
		int rc;

		log_init(1, main_debug);
		if (main_cfg->user != NULL)
			main_drop_privileges(main_cfg);
		rc = migrate_compare_main(main_cfg, db, argv + optind,
		    argc - optind);
		auth_db_free(db);
		tls_shutdown();
		conf_free(main_cfg);
		return rc;
	}
	if (test) {
		printf("evpop3d: configuration %s OK\n", conffile);
		auth_db_free(db);
		tls_shutdown();
		conf_free(main_cfg);
		return 0;
	}
	if (geteuid() == 0 && main_cfg->user == NULL) {
		fprintf(stderr, "evpop3d: %s: started as root but no `user` "
		    "is configured; refusing to serve mail as root\n",
		    main_cfg->path);
		auth_db_free(db);
		tls_shutdown();
		conf_free(main_cfg);
		return 1;
	}

	/* inetd passes the client on stdin/stdout, often stderr too: only
	 * -F may write logs there. */
	log_init(foreground, main_debug || main_cfg->log_debug);
	signal(SIGPIPE, SIG_IGN);
	main_raise_nofile(main_cfg);
	nfds = main_inetd ? 0 : main_listen_fds();
	if (main_inetd)
		;	/* no listeners: one connection on stdin/stdout */
	else if (nfds > 0) {
		if (listener_adopt_fds(nfds, getenv("LISTEN_FDNAMES")) == -1)
			return 1;
		unsetenv("LISTEN_PID");
		unsetenv("LISTEN_FDS");
		unsetenv("LISTEN_FDNAMES");
	} else if (listener_bind(main_cfg) == -1)
		return 1;
	if (!foreground && !main_inetd && nfds == 0) {
		if (daemon(0, 0) == -1)
			fatal("daemon");
		if (main_cfg->pid_file != NULL)
			main_write_pid_file(main_cfg->pid_file);
	}
	main_drop_privileges(main_cfg);
	if (evthread_use_pthreads() == -1)
		fatalx("evthread_use_pthreads failed");
	if (main_inetd)
		return main_serve(db, 0);
	nworkers = main_nworkers(main_cfg);
	if (connlimit_init(nworkers, main_cfg->max_connections) == -1 ||
	    (nworkers > 1 && penalty_share() == -1))
		fatal("shared memory");
	if (nworkers == 1)
		return main_serve(db, 0);
	return main_supervise(db, nworkers);
}
