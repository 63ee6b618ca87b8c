/*
 * evpop3d - log.h: logging to stderr (foreground, with timestamps) or to
 * syslog facility mail.  Thread-safe.
 */
#ifndef EVPOP3D_LOG_H
#define EVPOP3D_LOG_H

#include <stdarg.h>

#define LOG_FMT(a, b)	__attribute__((format(printf, a, b)))

void	log_init(int foreground, int debug);
void	log_set_debug(int debug);
int	log_debug_enabled(void);
void	log_warn(const char *, ...) LOG_FMT(1, 2);	/* + strerror(errno) */
void	log_warnx(const char *, ...) LOG_FMT(1, 2);
void	log_info(const char *, ...) LOG_FMT(1, 2);
void	log_debug(const char *, ...) LOG_FMT(1, 2);
__attribute__((noreturn)) void fatal(const char *, ...) LOG_FMT(1, 2);
__attribute__((noreturn)) void fatalx(const char *, ...) LOG_FMT(1, 2);

#endif /* EVPOP3D_LOG_H */
