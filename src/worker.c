/*
 * SPDX-License-Identifier: ISC
 *
 * evpop3d - worker.c: a small pthread pool for blocking jobs, the only
 * place that starts threads.
 *
 * Jobs wait in a FIFO guarded by one mutex; idle threads sleep on a
 * condition variable.  A finished job goes onto the "finished" list, and
 * the thread that makes that list non-empty activates one persistent event
 * so the loop thread runs the done callbacks, oldest first.  Every
 * activation comes after the push that needed it, and the loop drains the
 * whole list each time, so no completion is lost and a burst costs one
 * wake-up.  worker_shutdown() runs the done callbacks itself, because by
 * then the loop has usually stopped.
 */
#include "config.h"

#include <sys/queue.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <event2/event.h>

#include "params.h"
#include "worker.h"

struct worker_job {
	worker_fn	 run;
	worker_fn	 done;
	void		*arg;
	STAILQ_ENTRY(worker_job) entry;
};

STAILQ_HEAD(worker_jobq, worker_job);

static pthread_mutex_t	 worker_mtx = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t	 worker_work_cv = PTHREAD_COND_INITIALIZER;
static pthread_cond_t	 worker_idle_cv = PTHREAD_COND_INITIALIZER;
static struct worker_jobq worker_queue =
    STAILQ_HEAD_INITIALIZER(worker_queue);
static struct worker_jobq worker_finished =
    STAILQ_HEAD_INITIALIZER(worker_finished);
static unsigned int	 worker_nqueued;	/* in worker_queue */
static unsigned int	 worker_nrunning;	/* in run() */
static unsigned int	 worker_nfinished;	/* in worker_finished */
static unsigned int	 worker_ndelivering;	/* in done() batch */
static int		 worker_active;		/* threads take jobs */
static int		 worker_exit;		/* stop when idle */
static pthread_t	*worker_threads;
static unsigned int	 worker_nthreads;
static struct event	*worker_ev;		/* wakes the loop */

/* Pool thread: run jobs until told to exit with the queue empty. */
static void *
worker_main(void *unused)
{
	struct worker_job *job;
	int wake;

	(void)unused;
	pthread_mutex_lock(&worker_mtx);
	for (;;) {
		while (STAILQ_EMPTY(&worker_queue) && !worker_exit)
			pthread_cond_wait(&worker_work_cv, &worker_mtx);
		if ((job = STAILQ_FIRST(&worker_queue)) == NULL)
			break;
		STAILQ_REMOVE_HEAD(&worker_queue, entry);
		worker_nqueued--;
		worker_nrunning++;
		pthread_mutex_unlock(&worker_mtx);

		if (job->run != NULL)
			job->run(job->arg);

		pthread_mutex_lock(&worker_mtx);
		worker_nrunning--;
		wake = 0;
		if (job->done == NULL)
			free(job);
		else {
			wake = STAILQ_EMPTY(&worker_finished);
			STAILQ_INSERT_TAIL(&worker_finished, job, entry);
			worker_nfinished++;
		}
		pthread_cond_signal(&worker_idle_cv);
		if (wake) {
			/* The event outlives us: freed only after join. */
			pthread_mutex_unlock(&worker_mtx);
			event_active(worker_ev, EV_READ, 0);
			pthread_mutex_lock(&worker_mtx);
		}
	}
	pthread_mutex_unlock(&worker_mtx);
	return NULL;
}

/* Call done() for every job finished so far, oldest first (loop thread). */
static void
worker_deliver(void)
{
	struct worker_jobq batch = STAILQ_HEAD_INITIALIZER(batch);
	struct worker_job *job;

	pthread_mutex_lock(&worker_mtx);
	STAILQ_CONCAT(&batch, &worker_finished);
	worker_ndelivering += worker_nfinished;
	worker_nfinished = 0;
	pthread_mutex_unlock(&worker_mtx);

	while ((job = STAILQ_FIRST(&batch)) != NULL) {
		STAILQ_REMOVE_HEAD(&batch, entry);
		job->done(job->arg);
		free(job);
		pthread_mutex_lock(&worker_mtx);
		worker_ndelivering--;
		pthread_mutex_unlock(&worker_mtx);
	}
}

static void
worker_done_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	worker_deliver();
}

/* Stop and join the first n threads (init failed or shutdown). */
static void
worker_join(pthread_t *threads, unsigned int n)
{
	unsigned int i;

	pthread_mutex_lock(&worker_mtx);
	worker_active = 0;
	worker_exit = 1;
	pthread_cond_broadcast(&worker_work_cv);
	pthread_mutex_unlock(&worker_mtx);
	for (i = 0; i < n; i++)
		pthread_join(threads[i], NULL);
	pthread_mutex_lock(&worker_mtx);
	worker_exit = 0;
	pthread_mutex_unlock(&worker_mtx);
}

int
worker_init(struct event_base *base, unsigned int nthreads)
{
	sigset_t all, old;
	pthread_t *threads;
	struct event *ev;
	long ncpu;
	unsigned int i;
	int error = 0;

	if (base == NULL) {
		errno = EINVAL;
		return -1;
	}
	if (worker_threads != NULL) {
		errno = EBUSY;
		return -1;
	}
	if (nthreads == 0) {
		ncpu = sysconf(_SC_NPROCESSORS_ONLN);
		if (ncpu < WORKER_THREADS_MIN)
			ncpu = WORKER_THREADS_MIN;
		if (ncpu > WORKER_THREADS_MAX)
			ncpu = WORKER_THREADS_MAX;
		nthreads = (unsigned int)ncpu;
	} else if (nthreads > WORKER_THREADS_MAX)
		nthreads = WORKER_THREADS_MAX;

	if ((ev = event_new(base, -1, EV_PERSIST, worker_done_cb, NULL)) ==
	    NULL)
		return -1;
	if ((threads = calloc(nthreads, sizeof(*threads))) == NULL) {
		event_free(ev);
		return -1;
	}

	pthread_mutex_lock(&worker_mtx);
	worker_ev = ev;
	worker_exit = 0;
	worker_active = 1;
	pthread_mutex_unlock(&worker_mtx);

	/* Threads inherit the mask: signals stay with the loop thread. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (i = 0; i < nthreads; i++)
		if ((error = pthread_create(&threads[i], NULL, worker_main,
		    NULL)) != 0)
			break;
	pthread_sigmask(SIG_SETMASK, &old, NULL);

	if (error != 0) {
		worker_join(threads, i);
		free(threads);
		event_free(ev);
		worker_ev = NULL;
		errno = error;
		return -1;
	}
	worker_threads = threads;
	worker_nthreads = nthreads;
	return 0;
}

int
worker_submit(worker_fn run, worker_fn done, void *arg)
{
	struct worker_job *job;

	if ((job = malloc(sizeof(*job))) == NULL)
		return -1;
	job->run = run;
	job->done = done;
	job->arg = arg;

	pthread_mutex_lock(&worker_mtx);
	if (!worker_active) {
		pthread_mutex_unlock(&worker_mtx);
		free(job);
		if (run != NULL)
			run(arg);
		if (done != NULL)
			done(arg);
		return 0;
	}
	STAILQ_INSERT_TAIL(&worker_queue, job, entry);
	worker_nqueued++;
	pthread_cond_signal(&worker_work_cv);
	pthread_mutex_unlock(&worker_mtx);
	return 0;
}

unsigned int
worker_pending(void)
{
	unsigned int n;

	pthread_mutex_lock(&worker_mtx);
	n = worker_nqueued + worker_nrunning + worker_nfinished +
	    worker_ndelivering;
	pthread_mutex_unlock(&worker_mtx);
	return n;
}

void
worker_shutdown(void)
{
	pthread_mutex_lock(&worker_mtx);
	if (worker_threads == NULL) {
		pthread_mutex_unlock(&worker_mtx);
		return;
	}
	/* done() may submit more: stop only when everything is idle. */
	for (;;) {
		if (!STAILQ_EMPTY(&worker_finished)) {
			pthread_mutex_unlock(&worker_mtx);
			worker_deliver();
			pthread_mutex_lock(&worker_mtx);
			continue;
		}
		if (worker_nqueued == 0 && worker_nrunning == 0)
			break;
		pthread_cond_wait(&worker_idle_cv, &worker_mtx);
	}
	/* From here on submissions run inline. */
	worker_active = 0;
	pthread_mutex_unlock(&worker_mtx);

	worker_join(worker_threads, worker_nthreads);
	event_free(worker_ev);
	worker_ev = NULL;
	free(worker_threads);
	worker_threads = NULL;
	worker_nthreads = 0;
}
