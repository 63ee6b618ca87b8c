/*
 * evpop3d - worker.h: a small pthread pool for blocking work (crypt,
 * Maildir scan, UPDATE unlink+fsync, lock files, large RETR reads).  The only module that
 * starts threads.  Results come back on the event loop thread.
 */
#ifndef EVPOP3D_WORKER_H
#define EVPOP3D_WORKER_H

struct event_base;

typedef void (*worker_fn)(void *arg);

/* Start nthreads threads (0: one per CPU, within params.h bounds) that
 * report to base.  evthread_use_pthreads() must have been called before
 * base was created.  Returns 0 or -1. */
int	worker_init(struct event_base *base, unsigned int nthreads);

/*
 * Queue a job: run(arg) on a pool thread, then done(arg) on the loop
 * thread (done may be NULL).  The job owns copies of everything it uses.
 * Returns 0, or -1 if out of memory (nothing queued).  Before worker_init
 * or after worker_shutdown, run and done are called at once, inline.
 */
int	worker_submit(worker_fn run, worker_fn done, void *arg);

/* Number of jobs queued or running, not yet done. */
unsigned int worker_pending(void);

/* Run every queued job to completion (and its done callback, even ones
 * submitted meanwhile), then stop and join the threads. */
void	worker_shutdown(void);

#endif /* EVPOP3D_WORKER_H */
