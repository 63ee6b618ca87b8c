/*
 * SPDX-License-Identifier: ISC
 *
 * evpop3d unit tests - worker: jobs run off the loop thread, their done
 * callbacks on it in order, nothing is lost or run twice, shutdown drains
 * everything (even jobs submitted by done callbacks), the loop keeps
 * running while jobs block, and submissions outside init/shutdown run
 * inline.  Every loop has a fail-safe timer so a broken pool cannot hang
 * the suite.
 */
#include "config.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "worker.h"
#include "tests.h"

#define TWORK_JOBS	1000
#define TWORK_CHAIN	10

struct twork_state {
	pthread_t	 loop;		/* the loop thread */
	struct event_base *base;
	unsigned int	 nrun;		/* run() calls */
	unsigned int	 ndone;		/* done() calls */
	unsigned int	 want;		/* break the loop at ndone */
	unsigned int	 run_on_loop;	/* run() on the loop thread */
	unsigned int	 done_off_loop;	/* done() elsewhere */
	unsigned int	 out_of_order;
	unsigned int	 unmasked;	/* run() with SIGTERM open */
	unsigned int	 next;		/* expected done index */
	int		 ordered;	/* check done order */
	unsigned int	 sleep_ms;	/* run() sleeps this long */
	unsigned char	 runs[TWORK_JOBS];
	unsigned char	 dones[TWORK_JOBS];
	int		 timed_out;
};

struct twork_job {
	struct twork_state *st;
	unsigned int	 idx;
	unsigned int	 chain;		/* submit this many more */
};

static struct twork_state twork;
static pthread_mutex_t twork_mtx = PTHREAD_MUTEX_INITIALIZER;

static void
twork_reset(unsigned int want, int ordered)
{
	memset(&twork, 0, sizeof(twork));
	twork.loop = pthread_self();
	twork.want = want;
	twork.ordered = ordered;
}

static void
twork_sleep_ms(unsigned int ms)
{
	struct timespec ts;

	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (long)(ms % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) == -1)
		continue;
}

static void
twork_run(void *arg)
{
	struct twork_job *j = arg;
	sigset_t cur;

	if (twork.sleep_ms > 0)
		twork_sleep_ms(twork.sleep_ms);
	pthread_sigmask(SIG_BLOCK, NULL, &cur);
	pthread_mutex_lock(&twork_mtx);
	twork.nrun++;
	if (j->idx < TWORK_JOBS)
		twork.runs[j->idx]++;
	if (pthread_equal(pthread_self(), twork.loop))
		twork.run_on_loop++;
	if (!sigismember(&cur, SIGTERM) || !sigismember(&cur, SIGHUP))
		twork.unmasked++;
	pthread_mutex_unlock(&twork_mtx);
}

static void
twork_done(void *arg)
{
	struct twork_job *j = arg;
	struct twork_job *n;

	pthread_mutex_lock(&twork_mtx);
	twork.ndone++;
	if (j->idx < TWORK_JOBS)
		twork.dones[j->idx]++;
	if (!pthread_equal(pthread_self(), twork.loop))
		twork.done_off_loop++;
	if (twork.ordered && j->idx != twork.next++)
		twork.out_of_order++;
	pthread_mutex_unlock(&twork_mtx);

	if (j->chain > 0 && (n = malloc(sizeof(*n))) != NULL) {
		n->st = j->st;
		n->idx = j->idx + 1;
		n->chain = j->chain - 1;
		if (worker_submit(twork_run, twork_done, n) == -1)
			free(n);
	}
	free(j);
	if (twork.base != NULL && twork.ndone >= twork.want)
		event_base_loopbreak(twork.base);
}

static int
twork_submit(unsigned int idx, unsigned int chain)
{
	struct twork_job *j;

	if ((j = malloc(sizeof(*j))) == NULL)
		return -1;
	j->st = &twork;
	j->idx = idx;
	j->chain = chain;
	if (worker_submit(twork_run, twork_done, j) == -1) {
		free(j);
		return -1;
	}
	return 0;
}

static void
twork_failsafe_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	twork.timed_out = 1;
	event_base_loopbreak(twork.base);
}

/* Run the loop until twork.want done callbacks (or 10 s have passed). */
static void
twork_loop(void)
{
	struct timeval tv = { 10, 0 };
	struct event *ev;

	if (twork.ndone >= twork.want)
		return;
	ev = evtimer_new(twork.base, twork_failsafe_cb, NULL);
	evtimer_add(ev, &tv);
	event_base_loop(twork.base, EVLOOP_NO_EXIT_ON_EMPTY);
	event_free(ev);
	CU_ASSERT_FALSE(twork.timed_out);
}

static struct event_base *
twork_base(void)
{
	struct event_base *base;

	evthread_use_pthreads();
	base = event_base_new();
	if (base == NULL)
		abort();
	return base;
}

static void
test_worker_inline(void)
{
	/* Before worker_init: run then done, at once, on this thread. */
	twork_reset(1, 1);
	CU_ASSERT_EQUAL(worker_pending(), 0);
	CU_ASSERT_EQUAL(twork_submit(0, 0), 0);
	CU_ASSERT_EQUAL(twork.nrun, 1);
	CU_ASSERT_EQUAL(twork.ndone, 1);
	CU_ASSERT_EQUAL(twork.run_on_loop, 1);
	CU_ASSERT_EQUAL(twork.done_off_loop, 0);
	CU_ASSERT_EQUAL(worker_pending(), 0);
	/* Shutdown without init is harmless. */
	worker_shutdown();
	CU_ASSERT_EQUAL(worker_submit(NULL, NULL, NULL), 0);
}

static void
test_worker_fifo(void)
{
	struct event_base *base = twork_base();
	unsigned int i, missing = 0;

	twork_reset(TWORK_JOBS, 1);
	twork.base = base;
	CU_ASSERT_EQUAL_FATAL(worker_init(base, 1), 0);
	for (i = 0; i < TWORK_JOBS; i++)
		CU_ASSERT_EQUAL(twork_submit(i, 0), 0);
	twork_loop();
	CU_ASSERT_EQUAL(twork.ndone, TWORK_JOBS);
	CU_ASSERT_EQUAL(twork.nrun, TWORK_JOBS);
	CU_ASSERT_EQUAL(twork.out_of_order, 0);
	CU_ASSERT_EQUAL(twork.run_on_loop, 0);
	CU_ASSERT_EQUAL(twork.done_off_loop, 0);
	CU_ASSERT_EQUAL(twork.unmasked, 0);
	for (i = 0; i < TWORK_JOBS; i++)
		if (twork.runs[i] != 1 || twork.dones[i] != 1)
			missing++;
	CU_ASSERT_EQUAL(missing, 0);
	CU_ASSERT_EQUAL(worker_pending(), 0);
	worker_shutdown();
	event_base_free(base);
}

static void
test_worker_four(void)
{
	struct event_base *base = twork_base();
	unsigned int i, round, bad = 0;

	/* Several init/shutdown cycles: the pool must restart cleanly. */
	for (round = 0; round < 3; round++) {
		twork_reset(TWORK_JOBS, 0);
		twork.base = base;
		CU_ASSERT_EQUAL_FATAL(worker_init(base, 4), 0);
		/* A second init while running is refused. */
		CU_ASSERT_EQUAL(worker_init(base, 4), -1);
		for (i = 0; i < TWORK_JOBS; i++)
			CU_ASSERT_EQUAL(twork_submit(i, 0), 0);
		twork_loop();
		CU_ASSERT_EQUAL(twork.ndone, TWORK_JOBS);
		CU_ASSERT_EQUAL(twork.nrun, TWORK_JOBS);
		CU_ASSERT_EQUAL(twork.run_on_loop, 0);
		CU_ASSERT_EQUAL(twork.done_off_loop, 0);
		CU_ASSERT_EQUAL(twork.unmasked, 0);
		for (i = 0; i < TWORK_JOBS; i++)
			if (twork.runs[i] != 1 || twork.dones[i] != 1)
				bad++;
		CU_ASSERT_EQUAL(bad, 0);
		CU_ASSERT_EQUAL(worker_pending(), 0);
		worker_shutdown();
	}
	/* After shutdown, submissions run inline again. */
	twork_reset(1, 0);
	CU_ASSERT_EQUAL(twork_submit(0, 0), 0);
	CU_ASSERT_EQUAL(twork.ndone, 1);
	CU_ASSERT_EQUAL(twork.run_on_loop, 1);
	event_base_free(base);
}

static void
test_worker_chain(void)
{
	struct event_base *base = twork_base();
	unsigned int i;

	/* Each done callback submits the next job. */
	twork_reset(TWORK_CHAIN + 1, 1);
	twork.base = base;
	CU_ASSERT_EQUAL_FATAL(worker_init(base, 2), 0);
	CU_ASSERT_EQUAL(twork_submit(0, TWORK_CHAIN), 0);
	twork_loop();
	CU_ASSERT_EQUAL(twork.ndone, TWORK_CHAIN + 1);
	CU_ASSERT_EQUAL(twork.nrun, TWORK_CHAIN + 1);
	CU_ASSERT_EQUAL(twork.out_of_order, 0);
	CU_ASSERT_EQUAL(twork.run_on_loop, 0);
	CU_ASSERT_EQUAL(twork.done_off_loop, 0);
	for (i = 0; i <= TWORK_CHAIN; i++)
		CU_ASSERT_EQUAL(twork.dones[i], 1);
	worker_shutdown();
	event_base_free(base);
}

static void
test_worker_shutdown_drains(void)
{
	struct event_base *base = twork_base();
	unsigned int i, bad = 0;

	/*
	 * Queue slow jobs (some chaining more) and shut down without ever
	 * running the loop: shutdown runs every job and every done.
	 */
	twork_reset(~0u, 0);
	twork.sleep_ms = 1;
	CU_ASSERT_EQUAL_FATAL(worker_init(base, 1), 0);
	for (i = 0; i < 40; i += 4)
		CU_ASSERT_EQUAL(twork_submit(i, 3), 0);
	CU_ASSERT(worker_pending() > 0);
	worker_shutdown();
	CU_ASSERT_EQUAL(twork.nrun, 40);
	CU_ASSERT_EQUAL(twork.ndone, 40);
	CU_ASSERT_EQUAL(twork.run_on_loop, 0);
	CU_ASSERT_EQUAL(twork.done_off_loop, 0);
	for (i = 0; i < 40; i++)
		if (twork.runs[i] != 1 || twork.dones[i] != 1)
			bad++;
	CU_ASSERT_EQUAL(bad, 0);
	CU_ASSERT_EQUAL(worker_pending(), 0);
	/* The loop has nothing left to deliver. */
	event_base_loop(base, EVLOOP_NONBLOCK);
	CU_ASSERT_EQUAL(twork.ndone, 40);
	event_base_free(base);
}

static pthread_mutex_t twork_gate_mtx = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t twork_gate_cv = PTHREAD_COND_INITIALIZER;
static int twork_gate_open;

static void
twork_gate_run(void *arg)
{
	pthread_mutex_lock(&twork_gate_mtx);
	while (!twork_gate_open)
		pthread_cond_wait(&twork_gate_cv, &twork_gate_mtx);
	pthread_mutex_unlock(&twork_gate_mtx);
	twork_run(arg);
}

static void
test_worker_pending(void)
{
	struct event_base *base = twork_base();
	struct twork_job *j;
	unsigned int i, spins;

	twork_reset(4, 1);
	twork.base = base;
	twork_gate_open = 0;
	CU_ASSERT_EQUAL_FATAL(worker_init(base, 1), 0);
	CU_ASSERT_EQUAL(worker_pending(), 0);
	for (i = 0; i < 4; i++) {
		if ((j = calloc(1, sizeof(*j))) == NULL)
			abort();
		j->st = &twork;
		j->idx = i;
		CU_ASSERT_EQUAL(worker_submit(twork_gate_run, twork_done, j),
		    0);
	}
	/* One running (blocked), three queued. */
	CU_ASSERT_EQUAL(worker_pending(), 4);
	pthread_mutex_lock(&twork_gate_mtx);
	twork_gate_open = 1;
	pthread_cond_broadcast(&twork_gate_cv);
	pthread_mutex_unlock(&twork_gate_mtx);
	for (spins = 0; spins < 5000; spins++) {
		pthread_mutex_lock(&twork_mtx);
		i = twork.nrun;
		pthread_mutex_unlock(&twork_mtx);
		if (i == 4)
			break;
		twork_sleep_ms(1);
	}
	CU_ASSERT_EQUAL(i, 4);
	/* Finished but not yet delivered: still pending. */
	twork_sleep_ms(5);
	CU_ASSERT_EQUAL(twork.ndone, 0);
	CU_ASSERT_EQUAL(worker_pending(), 4);
	twork_loop();
	CU_ASSERT_EQUAL(twork.ndone, 4);
	CU_ASSERT_EQUAL(twork.out_of_order, 0);
	CU_ASSERT_EQUAL(worker_pending(), 0);
	worker_shutdown();
	event_base_free(base);
}

static unsigned int twork_ticks;

static void
twork_tick_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	twork_ticks++;
}

static void
test_worker_nonblocking(void)
{
	struct event_base *base = twork_base();
	struct timeval tick = { 0, 10000 };
	struct event *ev;
	unsigned int i;

	/* 4 jobs of 50 ms on 2 threads take >= 100 ms; a 10 ms timer keeps
	 * firing meanwhile. */
	twork_reset(4, 0);
	twork.base = base;
	twork.sleep_ms = 50;
	twork_ticks = 0;
	CU_ASSERT_EQUAL_FATAL(worker_init(base, 2), 0);
	ev = event_new(base, -1, EV_PERSIST, twork_tick_cb, NULL);
	event_add(ev, &tick);
	for (i = 0; i < 4; i++)
		CU_ASSERT_EQUAL(twork_submit(i, 0), 0);
	twork_loop();
	event_free(ev);
	CU_ASSERT_EQUAL(twork.ndone, 4);
	CU_ASSERT(twork_ticks >= 4);
	CU_ASSERT_EQUAL(twork.run_on_loop, 0);
	worker_shutdown();

	/* nthreads 0: one per CPU within bounds; it works. */
	twork_reset(8, 0);
	twork.base = base;
	CU_ASSERT_EQUAL_FATAL(worker_init(base, 0), 0);
	for (i = 0; i < 8; i++)
		CU_ASSERT_EQUAL(twork_submit(i, 0), 0);
	twork_loop();
	CU_ASSERT_EQUAL(twork.ndone, 8);
	worker_shutdown();
	event_base_free(base);
}

void
test_worker_register(void)
{
	CU_pSuite s;

	s = CU_add_suite("worker", NULL, NULL);
	CU_add_test(s, "inline before init", test_worker_inline);
	CU_add_test(s, "1000 jobs, 1 thread, FIFO", test_worker_fifo);
	CU_add_test(s, "4 threads, restart", test_worker_four);
	CU_add_test(s, "done submits more", test_worker_chain);
	CU_add_test(s, "shutdown drains", test_worker_shutdown_drains);
	CU_add_test(s, "pending counts", test_worker_pending);
	CU_add_test(s, "loop not blocked", test_worker_nonblocking);
}
