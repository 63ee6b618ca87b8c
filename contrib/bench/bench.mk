# evpop3d benchmark against Dovecot.  Included by the top-level Makefile,
# which provides CC, WARN, BIN and config.mk's LIBEVENT_CFLAGS LIBEVENT_LIBS
# OPENSSL_CFLAGS OPENSSL_LIBS.  Run as root (run-bench.py installs Dovecot
# with apt-get when it is missing, and owns the test mail as `nobody`).
#
#   make bench          full run (5 repetitions, about 15 minutes); rewrites
#                       doc/benchmarks.md; fails when a target is missed
#   make bench-quick    one short repetition (under a minute), a smoke test;
#                       fails only when a workload has errors
#
# BENCH_ARGS passes more options to contrib/bench/run-bench.py, e.g.
#   make bench BENCH_ARGS="--reps 3 --workloads sessions,retr"

# Keep the including Makefile's default goal (usually `all`).
BENCH_SAVED_GOAL := $(.DEFAULT_GOAL)

BENCH_DIR = contrib/bench
BENCH_BIN = $(BENCH_DIR)/popbench
BENCH_DOC ?= doc/benchmarks.md
BENCH_ARGS ?=
BENCH_WARN = -Wall -Wextra -Wformat=2 -Wshadow -Wmissing-prototypes \
	-Wstrict-prototypes -Wpointer-arith -Wwrite-strings
BENCH_CFLAGS = -std=gnu11 -O2 -g $(BENCH_WARN) -I. -Isrc \
	$(LIBEVENT_CFLAGS) $(OPENSSL_CFLAGS) -D_GNU_SOURCE
BENCH_RUN = python3 $(BENCH_DIR)/run-bench.py --evpop3d $(BIN) \
	--popbench $(BENCH_BIN)

.PHONY: bench bench-quick bench-clean

$(BENCH_BIN): $(BENCH_DIR)/popbench.c config.h
	$(CC) $(BENCH_CFLAGS) -o $@ $(BENCH_DIR)/popbench.c \
		$(LIBEVENT_LIBS) $(OPENSSL_LIBS)

bench: all $(BENCH_BIN)
	$(BENCH_RUN) --doc $(BENCH_DOC) $(BENCH_ARGS)

bench-quick: all $(BENCH_BIN)
	$(BENCH_RUN) --quick $(BENCH_ARGS)

bench-clean:
	rm -f $(BENCH_BIN)

.DEFAULT_GOAL := $(BENCH_SAVED_GOAL)
