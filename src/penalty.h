/*
 * evpop3d - penalty.h: failed authentications per client address.  An
 * address that keeps failing waits longer before each answer (the
 * configured auth_fail_delay_ms doubled per recent failure, up to
 * PENALTY_MAX_MS), which makes password guessing slow without locking the
 * real user out.  Pure and loop-thread only; bounded memory.
 */
#ifndef EVPOP3D_PENALTY_H
#define EVPOP3D_PENALTY_H

#include <sys/socket.h>
#include <time.h>

/* Delay before answering a failed authentication from sa, given the base
 * delay, at time now. */
unsigned int penalty_delay_ms(const struct sockaddr *sa, unsigned int base,
	    time_t now);

/* Record a failure (after computing its delay). */
void	penalty_fail(const struct sockaddr *sa, time_t now);

/* A successful login from sa forgets its failures. */
void	penalty_clear(const struct sockaddr *sa);

/* Forget everything (tests). */
void	penalty_reset(void);

/* Move the table into shared memory (before forking worker processes)
 * so every worker sees every failure.  Returns 0 or -1. */
int	penalty_share(void);

#endif /* EVPOP3D_PENALTY_H */
