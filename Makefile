# sluice — `make` builds build/libsluice.so; `make check` runs every test;
# `make demo` the headline demonstration; `make bench` the benchmarks.
# SANITIZE=address,undefined (or thread) builds everything into build-SANITIZER/.

CC      ?= cc
SANITIZE ?=
comma   := ,
BUILD   := build$(if $(SANITIZE),-$(subst $(comma),-,$(SANITIZE)))
PREFIX  ?= /usr/local
LIBDIR  ?= $(PREFIX)/lib

WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wno-unused-parameter
CFLAGS  ?= -O2 -g
CFLAGS  += -std=gnu11 $(WARN) -D_GNU_SOURCE -U_FORTIFY_SOURCE -D_FORTIFY_SOURCE=0 \
           $(if $(SANITIZE),-fsanitize=$(SANITIZE) -fno-omit-frame-pointer -O1)
SHIM_CFLAGS := $(CFLAGS) -fPIC -fvisibility=hidden -ftls-model=initial-exec -Ishim -Iinclude
# The library must not depend on ASan's runtime being first: sanitized test
# runs preload the runtime explicitly (see t_preload in tests/testlib.c).
LIB_LDFLAGS := -shared -Wl,-z,defs -Wl,-z,now $(if $(SANITIZE),-fsanitize=$(SANITIZE))
LIB_LIBS    := -ldl -lpthread -lbsd

SHIM_SRC := $(sort $(wildcard shim/*.c))
SHIM_OBJ := $(patsubst shim/%.c,$(BUILD)/shim/%.o,$(SHIM_SRC))
LIB      := $(BUILD)/libsluice.so

# Criterion's runner cannot live under TSan (its arena collides with TSan's
# memory layout): with SANITIZE=thread only the library and the helpers it
# drives are instrumented, and only the tests that race threads through sluice run.
TSAN_TESTS := conn/racing_accept_close_dup_leaves_nothing_in_flight \
              fs_process/sixteen_threads_never_overlap_more_than_the_limit fs_process/waiters_are_served_in_order \
              fs_process/fork_during_another_threads_io_leaves_the_child_a_working_gate
TSAN_TESTS += shed/many_blocking_threads_accepting_never_exceed_the_limit \
              shed/many_epoll_threads_accepting_never_exceed_the_limit
TEST_CFLAGS := $(if $(findstring thread,$(SANITIZE)),$(filter-out -fsanitize=thread,$(CFLAGS)),$(CFLAGS)) -Ishim -Iinclude -Itests -DSLUICE_BUILD_DIR='"$(abspath $(BUILD))"' \
               -DSLUICE_SOURCE_DIR='"$(abspath .)"'
# A sanitized library preloaded into uninstrumented programs needs its runtime
# loaded first; tests put it in front of the library in LD_PRELOAD.
SAN_RUNTIME := $(if $(findstring address,$(SANITIZE)),$(shell $(CC) -print-file-name=libasan.so),$(if $(findstring thread,$(SANITIZE)),$(shell $(CC) -print-file-name=libtsan.so)))
export SANITIZER_RUNTIME_FOR_TESTS := $(SAN_RUNTIME)
# Reports from governed children (which a test may simply stop) go to files;
# the run fails if any appear.
SAN_LOGS := $(abspath $(BUILD))/sanitizer-reports
# handle_sigbus=0: the host budget catches a SIGBUS from its own shrunken
# mapping only where SIGBUS is still at its default (ASan's handler is not).
export ASAN_OPTIONS := detect_leaks=0:abort_on_error=0:halt_on_error=1:exitcode=86:handle_sigbus=0$(if $(SANITIZE),:log_path=$(SAN_LOGS)/asan)
export UBSAN_OPTIONS := print_stacktrace=1:halt_on_error=1:exitcode=87$(if $(SANITIZE),:log_path=$(SAN_LOGS)/ubsan)
export TSAN_OPTIONS := halt_on_error=1:exitcode=88:report_signal_unsafe=0:suppressions=$(abspath tests/tsan.supp)$(if $(SANITIZE),:log_path=$(SAN_LOGS)/tsan)

UNIT_SRC  := $(sort $(wildcard tests/unit/*.c))
INTEG_SRC := $(sort $(wildcard tests/integration/*.c))
# tests/helpers/libNAME.c are shared libraries (build/helpers/libNAME.so), the rest programs.
HELPER_LIB_SRC := $(sort $(wildcard tests/helpers/lib*.c))
HELPER_SRC := $(filter-out $(HELPER_LIB_SRC),$(sort $(wildcard tests/helpers/*.c)))
HELPERS   := $(patsubst tests/helpers/%.c,$(BUILD)/helpers/%,$(HELPER_SRC)) \
             $(patsubst tests/helpers/%.c,$(BUILD)/helpers/%.so,$(HELPER_LIB_SRC))
# Helpers built with fortification, to prove the fortified entry points are caught.
FORTIFY_CFLAGS := $(filter-out -U_FORTIFY_SOURCE -D_FORTIFY_SOURCE=0 -O1,$(CFLAGS)) -O2 -D_FORTIFY_SOURCE=2 -Ishim -Iinclude -Itests

# Goals that install the project's packages (scripts/deps.sh) do so before
# anything compiles, even under -j: every compile waits for `deps` (order-only),
# which `check: deps all ...` alone does not ensure.
DEPS_FIRST := $(if $(filter check demo bench fuzz transparency deps asan,$(MAKECMDGOALS)),deps)
# Before the first compile: the headers are there, or one line says which
# packages to install (instead of a compiler error about a missing header).
HEADERS_LIB   := $(BUILD)/.headers-lib
HEADERS_TESTS := $(BUILD)/.headers-tests

.PHONY: all deps check unit integration demo bench fuzz install clean asan tsan tsan-run sanitizer-verdict transparency
all: $(LIB) $(if $(wildcard scripts/sluice),$(BUILD)/sluice)

$(BUILD)/shim/%.o: shim/%.c $(wildcard shim/*.h shim/*.def include/*.h) | $(BUILD)/shim $(HEADERS_LIB)
	$(CC) $(SHIM_CFLAGS) -c $< -o $@

$(LIB): $(SHIM_OBJ)
	$(CC) $(LIB_LDFLAGS) -o $@ $^ $(LIB_LIBS)

$(BUILD)/sluice: scripts/sluice | $(BUILD)
	cp scripts/sluice $@ && chmod +x $@

$(BUILD) $(BUILD)/shim $(BUILD)/helpers $(BUILD)/tests:
	mkdir -p $@

$(HEADERS_LIB): | $(BUILD) $(DEPS_FIRST)
	@CC="$(CC)" scripts/deps.sh --headers bsd/stdlib.h=libbsd-dev && touch $@

$(HEADERS_TESTS): | $(BUILD) $(DEPS_FIRST)
	@CC="$(CC)" scripts/deps.sh --headers bsd/stdlib.h=libbsd-dev criterion/criterion.h=libcriterion-dev \
	    ffi.h=libffi-dev && touch $@

# Unit tests link rooms directly, nothing that interposes: the pure ones
# (parsing) and the data structures with what they stand on (fdtab, slots,
# the overlay).
UNIT_ROOMS := shim/parse.c shim/logfmt.c shim/real.c shim/sys.c shim/log.c shim/config.c \
              shim/stats.c shim/fdtab.c shim/slots.c shim/overlay_waiters.c shim/overlay.c \
              shim/overlay_poll.c \
              shim/procstat.c shim/fshost_file.c shim/fshost_recover.c shim/connhost.c shim/connhost_watch.c shim/connhost_auto.c shim/autoctl.c
$(BUILD)/tests/unit: $(UNIT_SRC) $(UNIT_ROOMS) $(wildcard shim/*.h shim/*.def) tests/testlib.c tests/testlib.h | $(BUILD)/tests $(HEADERS_TESTS)
	$(CC) $(TEST_CFLAGS) -o $@ $(UNIT_SRC) $(UNIT_ROOMS) tests/testlib.c -lcriterion -lbsd -lffi -ldl -lpthread

$(BUILD)/tests/integration: $(INTEG_SRC) $(wildcard tests/integration/*.h) tests/testlib.c tests/testlib.h | $(BUILD)/tests $(HEADERS_TESTS)
	$(CC) $(TEST_CFLAGS) -o $@ $(INTEG_SRC) tests/testlib.c -lcriterion -ldl -lpthread

$(BUILD)/helpers/%: tests/helpers/%.c tests/testlib.h $(wildcard tests/helpers/*.h) shim/symbols.def | $(BUILD)/helpers $(HEADERS_TESTS)
	$(CC) $(FORTIFY_CFLAGS) -o $@ $< -ldl -lpthread -lffi

$(BUILD)/helpers/lib%.so: tests/helpers/lib%.c tests/testlib.h | $(BUILD)/helpers $(HEADERS_TESTS)
	$(CC) $(FORTIFY_CFLAGS) -fPIC -shared -o $@ $< -ldl -lpthread

deps:
	@scripts/deps.sh

# Criterion runs suites in parallel; integration suites start servers and
# measure CPU, so they run one at a time.
check: deps all $(BUILD)/tests/unit $(BUILD)/tests/integration $(HELPERS)
	@rm -rf $(SAN_LOGS) && mkdir -p $(SAN_LOGS)
	$(BUILD)/tests/unit --jobs 2
	$(BUILD)/tests/integration --jobs 1
	@$(MAKE) --no-print-directory sanitizer-verdict SANITIZE=$(SANITIZE)

# No sanitizer report from any process the tests started.
sanitizer-verdict:
	@if [ -n "$$(ls -A $(SAN_LOGS) 2>/dev/null)" ]; then \
	    echo "sanitizer reports:"; head -50 $(SAN_LOGS)/*; exit 1; fi

unit: all $(BUILD)/tests/unit $(HELPERS)
	$(BUILD)/tests/unit --jobs 2

integration: all $(BUILD)/tests/integration $(HELPERS)
	$(BUILD)/tests/integration --jobs 1

asan:
	$(MAKE) check SANITIZE=address,undefined

tsan:
	$(MAKE) SANITIZE=thread all build-thread/tests/integration $(patsubst build/%,build-thread/%,$(HELPERS))
	$(MAKE) SANITIZE=thread tsan-run

tsan-run:
	@rm -rf $(SAN_LOGS) && mkdir -p $(SAN_LOGS)
	@for t in $(TSAN_TESTS); do $(BUILD)/tests/integration --jobs 1 --filter "$$t" || exit 1; done
	@$(MAKE) --no-print-directory sanitizer-verdict SANITIZE=$(SANITIZE)

demo: deps all
	@demos/run-demo.sh

bench: deps all $(HELPERS)
	@tests/bench/run.sh

fuzz: deps
	@tests/fuzz/run.sh

# The test suites real projects ship, bare and preloaded, compared test by
# test (TRANSPARENCY_QUICK=1 for a short subset).
transparency: deps all
	@SLUICE_LIB=$(abspath $(LIB)) TRANSPARENCY_OUT=$(abspath $(BUILD))/transparency scripts/transparency.sh

install: all
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/include
	install -m 0755 $(LIB) $(DESTDIR)$(LIBDIR)/libsluice.so
	sed 's|^SLUICE_LIB_DEFAULT=.*|SLUICE_LIB_DEFAULT="$(LIBDIR)/libsluice.so"|' scripts/sluice \
	    > $(DESTDIR)$(PREFIX)/bin/sluice && chmod 0755 $(DESTDIR)$(PREFIX)/bin/sluice
	install -m 0644 include/sluice.h $(DESTDIR)$(PREFIX)/include/sluice.h
	install -d $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man7 $(DESTDIR)$(PKGCONFIGDIR) \
	    $(DESTDIR)$(COMPLETIONDIR)
	install -m 0644 man/sluice.1 $(DESTDIR)$(MANDIR)/man1/sluice.1
	install -m 0644 man/sluice.7 $(DESTDIR)$(MANDIR)/man7/sluice.7
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@VERSION@|$(VERSION)|' \
	    scripts/sluice.pc.in > $(DESTDIR)$(PKGCONFIGDIR)/sluice.pc
	install -m 0644 scripts/sluice-completion.bash $(DESTDIR)$(COMPLETIONDIR)/sluice

clean:
	rm -rf build build-*

# Packaging: `make deb` builds the Debian package from a copy of the tree in
# build/deb (dpkg-buildpackage writes next to the tree it builds);
# `make package-check` also runs lintian on it, installs it, runs a program
# from /usr/bin under the installed launcher, and removes it.
VERSION       := $(shell sed -n 's/^\#define SLUICE_VERSION "\(.*\)"/\1/p' include/sluice.h)
MANDIR        ?= $(PREFIX)/share/man
PKGCONFIGDIR  ?= $(LIBDIR)/pkgconfig
COMPLETIONDIR ?= $(PREFIX)/share/bash-completion/completions
DEB_DIR       := build/deb

.PHONY: deb package-check
deb: deps
	rm -rf $(DEB_DIR) && mkdir -p $(DEB_DIR)/sluice-$(VERSION)
	tar -cf - --exclude=./build --exclude='./build-*' --exclude=./.git --exclude=./demos/out . \
	    | tar -xf - -C $(DEB_DIR)/sluice-$(VERSION)
	cd $(DEB_DIR)/sluice-$(VERSION) && dpkg-buildpackage -us -uc -b
	@ls $(DEB_DIR)/*.deb

package-check: deb
	@tests/package/deb.sh $(DEB_DIR)
