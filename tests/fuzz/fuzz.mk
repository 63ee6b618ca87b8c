# evpop3d libFuzzer targets.  Included by the top-level Makefile, which
# provides config.mk's LIBEVENT_CFLAGS LIBEVENT_LIBS OPENSSL_CFLAGS
# OPENSSL_LIBS CRYPT_LIBS.  Everything here is built with clang and
# -fsanitize=fuzzer,address,undefined into tests/fuzz/obj and tests/fuzz/bin,
# never mixed with the objects of the normal build.
#
#   make fuzz-build          build tests/fuzz/bin/fuzz_*
#   make fuzz                run each target FUZZ_SECONDS (default 60) on a
#                            copy of its seeds in tests/fuzz/corpus-work/
#   make fuzz-smoke          every seed once, then each target 10 s; fails
#                            on any crash, leak or UBSan report (skipped
#                            with a message when clang cannot link
#                            libFuzzer, unless FUZZ_REQUIRE=1)
#   make fuzz-clean

# Keep the including Makefile's default goal (usually `all`).
FUZZ_SAVED_GOAL := $(.DEFAULT_GOAL)

FUZZ_DIR = tests/fuzz
FUZZ_CC ?= clang
FUZZ_SECONDS ?= 60
FUZZ_SMOKE_SECONDS ?= 10
FUZZ_SAN = -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_WARN = -Wall -Wextra -Wformat=2 -Wshadow -Wmissing-prototypes \
	-Wstrict-prototypes -Wpointer-arith -Wwrite-strings
FUZZ_CFLAGS = -std=gnu11 -g -O1 -fno-omit-frame-pointer $(FUZZ_WARN) \
	-I. -Isrc $(LIBEVENT_CFLAGS) $(OPENSSL_CFLAGS) -D_GNU_SOURCE -MMD -MP
FUZZ_LIBS = $(LIBEVENT_LIBS) $(OPENSSL_LIBS) $(CRYPT_LIBS) -lpthread

FUZZ_TARGETS = fuzz_parsers fuzz_session fuzz_msgfmt fuzz_conf fuzz_passwd
FUZZ_BINS = $(addprefix $(FUZZ_DIR)/bin/,$(FUZZ_TARGETS))

# Every daemon module but main.c, compiled with the fuzzing flags into an
# archive: the linker takes only the members a target needs, so a module
# added to src/ later is picked up without a change here.
FUZZ_MODS = $(filter-out main,$(basename $(notdir $(wildcard src/*.c))))
FUZZ_LIB = $(FUZZ_DIR)/obj/libevpop3d-fuzz.a
FUZZ_LIB_OBJS = $(addprefix $(FUZZ_DIR)/obj/,$(addsuffix .o,$(FUZZ_MODS)))
FUZZ_OBJS = $(FUZZ_LIB_OBJS) \
	$(addprefix $(FUZZ_DIR)/obj/,$(addsuffix .o,$(FUZZ_TARGETS)))

# libFuzzer options shared by every run, and per target.  The session
# target logs one line per session through log.c: -close_fd_mask=2
# silences the target's stderr (libFuzzer and the sanitizers keep a private
# copy for their reports, and fuzz_session its own for its verdicts).
FUZZ_ASAN = ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:symbolize=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
FUZZ_RUN_FLAGS = -timeout=25 -rss_limit_mb=2048 -max_len=8192 \
	-print_final_stats=1
FUZZ_QUIET_TARGETS = fuzz_session

.PHONY: fuzz fuzz-build fuzz-smoke fuzz-clean

fuzz-build: $(FUZZ_BINS)

$(FUZZ_DIR)/obj/%.o: src/%.c config.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link $(FUZZ_SAN) \
		-c -o $@ $<

$(FUZZ_DIR)/obj/fuzz_%.o: $(FUZZ_DIR)/fuzz_%.c config.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer $(FUZZ_SAN) -c -o $@ $<

$(FUZZ_LIB): $(FUZZ_LIB_OBJS)
	rm -f $@
	$(AR) rcs $@ $^

$(FUZZ_DIR)/bin/%: $(FUZZ_DIR)/obj/%.o $(FUZZ_LIB)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) -fsanitize=fuzzer $(FUZZ_SAN) -o $@ $^ $(FUZZ_LIBS)

# Keep the objects: make would delete them as intermediate files.
.SECONDARY: $(FUZZ_OBJS)

# Each target on a work copy of its seeds (new inputs stay out of git);
# prints the executions and coverage of each run's last stats line.  A
# failing target does not stop the others; the rule fails at the end.
fuzz: fuzz-build
	@failed=; mkdir -p $(FUZZ_DIR)/crashes; \
	for t in $(FUZZ_TARGETS); do \
		w=$(FUZZ_DIR)/corpus-work/$$t; log=$$w.log; mkdir -p $$w; \
		cp -n $(FUZZ_DIR)/corpus/$$t/* $$w/ 2>/dev/null || true; \
		echo "== $$t: $(FUZZ_SECONDS) s"; \
		q=; case " $(FUZZ_QUIET_TARGETS) " in \
		    *" $$t "*) q=-close_fd_mask=2;; esac; \
		if $(FUZZ_ASAN) $(FUZZ_DIR)/bin/$$t $(FUZZ_RUN_FLAGS) $$q \
		    -max_total_time=$(FUZZ_SECONDS) \
		    -artifact_prefix=$(FUZZ_DIR)/crashes/$$t- $$w \
		    > $$log 2>&1; then :; else \
			tail -n 60 $$log; \
			echo "$$t: FAILED (log $$log)"; \
			failed="$$failed $$t"; fi; \
		grep -E '^#[0-9]+' $$log | grep 'cov:' | tail -n 1; \
		grep -E '^stat::number_of_executed_units' $$log || true; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz: FAILED:$$failed"; exit 1; fi

# `make check` runs this: without a clang that can link libFuzzer it says
# so and succeeds, unless FUZZ_REQUIRE=1.
fuzz-smoke:
	@if printf 'int LLVMFuzzerTestOneInput(const char *d, long n);\nint LLVMFuzzerTestOneInput(const char *d, long n) { return d == 0 || n < 0; }\n' | \
	    $(FUZZ_CC) -x c -fsanitize=fuzzer $(FUZZ_SAN) -o /dev/null - \
	    > /dev/null 2>&1; then \
		$(MAKE) --no-print-directory fuzz-build && \
		$(FUZZ_ASAN) FUZZ_RUN_FLAGS="$(FUZZ_RUN_FLAGS)" \
		    FUZZ_QUIET_TARGETS="$(FUZZ_QUIET_TARGETS)" \
		    sh $(FUZZ_DIR)/run-smoke.sh $(FUZZ_SMOKE_SECONDS) \
		    $(FUZZ_TARGETS); \
	else \
		echo "fuzz-smoke: SKIPPED: $(FUZZ_CC) cannot link libFuzzer" \
		    "(Debian: apt-get install clang)"; \
		test -z "$(FUZZ_REQUIRE)"; \
	fi

fuzz-clean:
	rm -rf $(FUZZ_DIR)/bin $(FUZZ_DIR)/obj $(FUZZ_DIR)/corpus-work

-include $(FUZZ_OBJS:.o=.d)

.DEFAULT_GOAL := $(FUZZ_SAVED_GOAL)
