/*
 * evpop3d - log.c: the log API (log.h).  In the foreground (-F) lines go to
 * stderr with a UTC timestamp; otherwise to syslog, facility mail.  One
 * write(2) per line keeps lines from worker threads whole.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static int	log_foreground = 1;
static volatile int log_debug_on;

static void	log_vlog(int, int, const char *, va_list)
		    __attribute__((format(printf, 3, 0)));

/* Choose the destination once, before any thread is started. */
void
log_init(int foreground, int debug)
{
	log_foreground = foreground;
	log_debug_on = debug;
	if (!foreground)
		openlog("evpop3d", LOG_PID | LOG_NDELAY, LOG_MAIL);
}

void
log_set_debug(int debug)
{
	log_debug_on = debug;
}

int
log_debug_enabled(void)
{
	return log_debug_on;
}

/* Format one line and hand it to stderr or syslog in a single call. */
static void
log_vlog(int pri, int with_errno, const char *fmt, va_list ap)
{
	char msg[2048], line[2200];
	int saved = errno, n;
	struct timespec ts;
	struct tm tm;
	const char *lvl;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (with_errno) {
		n = strlen(msg);
		snprintf(msg + n, sizeof(msg) - n, ": %s", strerror(saved));
	}
	if (!log_foreground) {
		syslog(pri, "%s", msg);
		errno = saved;
		return;
	}
	switch (pri) {
	case LOG_CRIT:
		lvl = "fatal";
		break;
	case LOG_WARNING:
		lvl = "warn";
		break;
	case LOG_DEBUG:
		lvl = "debug";
		break;
	default:
		lvl = "info";
		break;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = snprintf(line, sizeof(line),
	    "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ evpop3d[%ld] %s: %s\n",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	    tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, (long)getpid(), lvl,
	    msg);
	if (n > (int)sizeof(line) - 1) {
		n = sizeof(line) - 1;
		line[n - 1] = '\n';
	}
	if (write(STDERR_FILENO, line, n) == -1) {
		/* Nowhere left to report it. */
	}
	errno = saved;
}

void
log_warn(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vlog(LOG_WARNING, 1, fmt, ap);
	va_end(ap);
}

void
log_warnx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vlog(LOG_WARNING, 0, fmt, ap);
	va_end(ap);
}

void
log_info(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vlog(LOG_INFO, 0, fmt, ap);
	va_end(ap);
}

void
log_debug(const char *fmt, ...)
{
	va_list ap;

	if (!log_debug_on)
		return;
	va_start(ap, fmt);
	log_vlog(LOG_DEBUG, 0, fmt, ap);
	va_end(ap);
}

void
fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vlog(LOG_CRIT, 1, fmt, ap);
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vlog(LOG_CRIT, 0, fmt, ap);
	va_end(ap);
	exit(1);
}
