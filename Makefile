# evpop3d top-level Makefile.  Hand-written so that a clean checkout (which
# has no ./configure yet) can simply run `make`, `make check` or `make demo`.
#
#   make                 configure when needed, build src/evpop3d
#   make check           install missing Debian packages, build, run all tests
#   make check-asan      the same tests against an ASan/UBSan build (build-asan/)
#   make fuzz            each libFuzzer target for FUZZ_SECONDS (default 60)
#   make bench           evpop3d against Dovecot, A/B (contrib/bench/)
#   make demo            sample Maildir + server on 127.0.0.1:1110 (foreground)
#   make install         PREFIX=/usr/local DESTDIR=
#   make clean
#
# B is the build directory (objects and binaries); `make check-asan` uses
# B=build-asan with sanitizer flags so the two builds never mix.

PREFIX ?= /usr/local
UNITDIR ?= $(PREFIX)/lib/systemd/system
SBINDIR ?= $(PREFIX)/sbin
SYSCONFDIR ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
MANDIR ?= $(PREFIX)/share/man
DESTDIR ?=
B ?= .
SAN ?=

-include config.mk

WARN = -Wall -Wextra -Wformat=2 -Wshadow -Wmissing-prototypes \
	-Wstrict-prototypes -Wpointer-arith -Wwrite-strings
ifeq ($(SAN),1)
OPT = -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
	-fno-sanitize-recover=undefined
SANLD = -fsanitize=address,undefined
else
OPT = -O2 -g
SANLD =
endif
CFLAGS ?=
ALL_CFLAGS = -std=gnu11 $(OPT) $(WARN) $(CFLAGS) -I. -Isrc \
	$(LIBEVENT_CFLAGS) $(OPENSSL_CFLAGS) -D_GNU_SOURCE -MMD -MP
LDLIBS = $(LIBEVENT_LIBS) $(OPENSSL_LIBS) $(CRYPT_LIBS) -lpthread

# Pure modules (no libevent) are shared by the daemon, the unit tests and
# the fuzz targets.
PURE = util conf msgfmt maildir migrate sizecache auth lock penalty proxy scram connlimit oauth
LOOP = log worker session cmd retr listener tls inetd control
SRC_OBJS = $(addprefix $(B)/src/,$(addsuffix .o,$(PURE) $(LOOP)))
MAIN_OBJ = $(B)/src/main.o
BIN = $(B)/src/evpop3d

UNIT_SRCS = $(wildcard tests/unit/*.c)
UNIT_OBJS = $(patsubst tests/unit/%.c,$(B)/tests/unit/%.o,$(UNIT_SRCS))
UNIT_BIN = $(B)/tests/unit/unit_tests

.PHONY: all deps check check-unit check-integ check-asan demo install \
	clean distclean bench fuzz dist distcheck

all: config.mk $(BIN)

# A clean checkout has no configure script: make one, then run it.
configure: configure.ac
	autoreconf -fi

config.mk: configure config.mk.in
	./configure

config.h: config.mk

$(B)/src/%.o: src/%.c config.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(B)/tests/unit/%.o: tests/unit/%.c config.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(CUNIT_CFLAGS) -c -o $@ $<

$(BIN): $(SRC_OBJS) $(MAIN_OBJ)
	$(CC) $(SANLD) -o $@ $^ $(LDLIBS)

$(UNIT_BIN): $(UNIT_OBJS) $(SRC_OBJS)
	$(CC) $(SANLD) -o $@ $^ $(CUNIT_LIBS) $(LDLIBS)

deps:
	@if [ -z "$(NO_DEPS)" ]; then sh contrib/install-deps.sh; fi

check: deps
	$(MAKE) all
	$(MAKE) check-unit check-integ
	$(MAKE) check-asan
	$(MAKE) fuzz-smoke

check-unit: all $(UNIT_BIN)
	$(UNIT_BIN)

# Integration suites: each starts the real daemon on loopback ports.  All
# of them run even when one fails, so one report shows every failure.
INTEG = run tls faults clients service cluster oauth migrate
check-integ: all
	@fail=0; for t in $(INTEG); do \
		echo "== tests/integ/$$t.py"; \
		EVPOP3D_BIN=$(abspath $(BIN)) python3 tests/integ/$$t.py || fail=1; \
	done; exit $$fail

# The whole suite again under AddressSanitizer and UBSan.
check-asan:
	$(MAKE) B=build-asan SAN=1 build-asan/src/evpop3d build-asan/tests/unit/unit_tests
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 build-asan/tests/unit/unit_tests
	@fail=0; for t in $(INTEG); do \
		echo "== tests/integ/$$t.py (ASan/UBSan)"; \
		ASAN_OPTIONS=detect_leaks=1 EVPOP3D_SAN=1 \
		EVPOP3D_BIN=$(abspath build-asan/src/evpop3d) \
		python3 tests/integ/$$t.py || fail=1; \
	done; exit $$fail

demo: deps
	$(MAKE) all
	sh contrib/demo/run-demo.sh

install: all
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(SYSCONFDIR)/evpop3d \
		$(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(MANDIR)/man5
	install -m 755 $(BIN) $(DESTDIR)$(SBINDIR)/evpop3d
	install -m 644 etc/evpop3d.conf $(DESTDIR)$(SYSCONFDIR)/evpop3d/evpop3d.conf.sample
	install -m 644 etc/passwd.example $(DESTDIR)$(SYSCONFDIR)/evpop3d/passwd.example
	install -m 644 doc/evpop3d.8 $(DESTDIR)$(MANDIR)/man8/evpop3d.8
	install -m 644 doc/evpop3d.conf.5 $(DESTDIR)$(MANDIR)/man5/evpop3d.conf.5
	install -d $(DESTDIR)$(UNITDIR)
	sed 's,/usr/sbin/evpop3d,$(SBINDIR)/evpop3d,; s,/etc/evpop3d/,$(SYSCONFDIR)/evpop3d/,' \
		etc/evpop3d.service > $(DESTDIR)$(UNITDIR)/evpop3d.service
	install -m 644 etc/evpop3d.socket etc/evpop3d-pop3s.socket $(DESTDIR)$(UNITDIR)/

# A release tarball of what git tracks, with ./configure already made.
DISTNAME = evpop3d-$(VERSION)
dist: configure
	rm -rf $(DISTNAME) $(DISTNAME).tar.gz
	mkdir $(DISTNAME)
	git ls-files | tar -cf - -T - | tar -xf - -C $(DISTNAME)
	cp configure config.h.in $(DISTNAME)/
	tar -czf $(DISTNAME).tar.gz $(DISTNAME)
	rm -rf $(DISTNAME)
	@echo "made $(DISTNAME).tar.gz"

# The tarball builds on its own and passes its unit and integration tests.
distcheck: dist
	rm -rf distcheck.tmp && mkdir distcheck.tmp
	tar -xzf $(DISTNAME).tar.gz -C distcheck.tmp
	$(MAKE) -C distcheck.tmp/$(DISTNAME) NO_DEPS=1 check-unit check-integ
	$(MAKE) -C distcheck.tmp/$(DISTNAME) install DESTDIR=$(abspath distcheck.tmp/root)
	test -x distcheck.tmp/root$(SBINDIR)/evpop3d
	rm -rf distcheck.tmp
	@echo "$(DISTNAME).tar.gz is ready for distribution"

clean:
	rm -f src/*.o src/*.d src/evpop3d tests/unit/*.o tests/unit/*.d \
		tests/unit/unit_tests
	rm -rf build-asan distcheck.tmp

distclean: clean
	rm -rf configure config.h config.h.in config.mk config.log \
		config.status autom4te.cache demo

# libFuzzer targets: make fuzz-build, fuzz (FUZZ_SECONDS each), fuzz-smoke.
include tests/fuzz/fuzz.mk
# make bench / bench-quick: evpop3d against Dovecot (contrib/bench/).
include contrib/bench/bench.mk

-include $(SRC_OBJS:.o=.d) $(MAIN_OBJ:.o=.d) $(UNIT_OBJS:.o=.d)
