# shardmq build. `make` builds everything; see README.md for the targets.
#
# Layout is convention-driven so that adding a file needs no Makefile edit:
#   core/*.c net/*.c shard/*.c  -> build/libsmq.a (the library: broker + client)
#   cmd/shardmq.c               -> build/shardmq ; cmd/NAME.c -> build/shardmq-NAME
#   cmd/lib/*.c                 -> linked into every cmd program (shared CLI code)
#   tests/unit/test_*.c         -> one Criterion binary each
#   tests/stress/*.c            -> plain programs (exit 0 pass, 1 fail, 77 skip)
#   tests/it/test_*.c           -> Criterion integration tests (start build/shardmq)
#   tests/it/*.py, *.sh         -> integration scripts (paho-mqtt, mosquitto clients)
#   perf/*.c                    -> benchmark programs
#   tests/fuzz/fuzz_*.c         -> libFuzzer targets (make fuzz, clang)

CC       ?= cc
BUILD    ?= build
SAN      ?=
OPT      ?= -O2
CFLAGS   := -std=c11 -D_GNU_SOURCE $(OPT) -g -Wall -Wextra -Werror -Wshadow \
            -Wmissing-prototypes -I. -pthread $(SAN) $(EXTRA_CFLAGS)
# ASan/TSan bring their own allocator, so jemalloc is linked only without them.
MALLOC   := $(if $(SAN),,-ljemalloc)
LDLIBS   := -luring -lwolfssl -llmdb -lwslay $(MALLOC) -lpthread -lm
LDFLAGS  := -pthread $(SAN)

LIB_SRCS   := $(wildcard core/*.c net/*.c shard/*.c)
LIB_OBJS   := $(LIB_SRCS:%.c=$(BUILD)/%.o)
LIB        := $(BUILD)/libsmq.a
CMD_SRCS   := $(wildcard cmd/*.c)
CMD_LIB    := $(patsubst %.c,$(BUILD)/%.o,$(wildcard cmd/lib/*.c))
CMD_BINS   := $(patsubst cmd/%.c,$(BUILD)/shardmq-%,$(filter-out cmd/shardmq.c,$(CMD_SRCS))) \
              $(if $(wildcard cmd/shardmq.c),$(BUILD)/shardmq)
UNIT_SRCS  := $(wildcard tests/unit/test_*.c)
UNIT_BINS  := $(UNIT_SRCS:%.c=$(BUILD)/%)
IT_SRCS    := $(wildcard tests/it/test_*.c)
IT_BINS    := $(IT_SRCS:%.c=$(BUILD)/%)
IT_SCRIPTS := $(sort $(wildcard tests/it/*.py tests/it/*.sh))
STRESS_SRCS:= $(wildcard tests/stress/*.c)
STRESS_BINS:= $(STRESS_SRCS:%.c=$(BUILD)/%)
PERF_SRCS  := $(wildcard perf/*.c)
PERF_BINS  := $(PERF_SRCS:%.c=$(BUILD)/%)
FUZZ_SRCS  := $(wildcard tests/fuzz/fuzz_*.c)
# What a fuzz target links: the core and the TLS transform.
FUZZ_DEPS  := $(wildcard core/*.c) net/tls.c net/http.c net/ws.c net/xstack.c net/bytequeue.c \
              -lwolfssl -lwslay
REPLAY_BINS:= $(patsubst tests/fuzz/fuzz_%.c,$(BUILD)/replay/fuzz_%,$(FUZZ_SRCS))
REPLAY_SAN := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all

DEPS_PKGS  := build-essential pkg-config liburing-dev libjemalloc-dev libwolfssl-dev \
              libcriterion-dev mosquitto mosquitto-clients python3-paho-mqtt \
              clang libclang-rt-14-dev openssl liblmdb-dev libwslay-dev chromium \
              python3-prometheus-client
SUDO       := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PYTHON     := /usr/bin/python3
FUZZ_SECONDS ?= 60
NPROC      := $(shell nproc 2>/dev/null || echo 2)
T          ?=

SHELL      := /bin/bash
# Keep objects of test and tool programs (make would delete them as
# intermediates and rebuild them next time).
.SECONDARY:

.PHONY: all deps webdeps run test check asan tsan fuzz bench clean format
all: $(LIB) $(CMD_BINS) $(UNIT_BINS) $(IT_BINS) $(STRESS_BINS) $(PERF_BINS) $(REPLAY_BINS)

# Install what the build and the tests need, only when something is missing
# (apt-get update only then): a fresh Debian 12 machine needs nothing else.
deps:
	@missing=$$(for p in $(DEPS_PKGS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	command -v npm >/dev/null 2>&1 || missing="$$missing npm"; \
	if [ -n "$$missing" ]; then \
		echo "make deps: installing" $$missing; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing || exit 1; \
		case " $$missing " in *" mosquitto "*) \
			if command -v systemctl >/dev/null && systemctl is-active -q mosquitto 2>/dev/null; then \
				echo "make deps: stopping the mosquitto service the package started (it is"; \
				echo "make deps: only for tests, and it would hold port 1883): systemctl disable --now mosquitto"; \
				$(SUDO) systemctl disable --now mosquitto >/dev/null 2>&1 || true; \
			fi ;; \
		esac; \
	fi

# MQTT.js's browser bundle for tests/it/44_browser.py, from the npm registry when missing
# (make test only: the broker itself does not need it).
webdeps: deps
	@bash tests/it/web/install.sh

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(LIB): $(LIB_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/shardmq: $(BUILD)/cmd/shardmq.o $(CMD_LIB) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
$(BUILD)/shardmq-%: $(BUILD)/cmd/%.o $(CMD_LIB) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
$(BUILD)/tests/unit/%: $(BUILD)/tests/unit/%.o $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ -lcriterion $(LDLIBS)
$(BUILD)/tests/it/%: $(BUILD)/tests/it/%.o $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ -lcriterion $(LDLIBS)
$(BUILD)/tests/stress/%: $(BUILD)/tests/stress/%.o $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
$(BUILD)/perf/%: $(BUILD)/perf/%.o $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# Every fuzz target, built with gcc against a plain main() (tests/fuzz/replay.c)
# under ASan/UBSan, to replay its saved corpus in make check.
$(BUILD)/replay/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/replay.c $(wildcard core/*.c core/*.h) \
		net/tls.c net/tls.h net/http.c net/http.h net/ws.c net/ws.h net/xstack.c net/xstack.h \
		net/bytequeue.c net/bytequeue.h
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -D_GNU_SOURCE -O1 -g -I. $(REPLAY_SAN) -o $@ $< tests/fuzz/replay.c \
		$(FUZZ_DEPS) -lm

# The broker on its default listener (127.0.0.1:1883), in the foreground.
run: deps
	$(MAKE) -j$(NPROC) $(BUILD)/shardmq
	exec ./$(BUILD)/shardmq -v

# The TSan stress run goes first so that the last line is check's total.
test: deps webdeps
	$(MAKE) -j$(NPROC) all
	$(MAKE) tsan
	$(MAKE) --no-print-directory check

# Run every test; fail at the end if any failed, so every summary is shown.
# The last line totals every program's own count (Criterion's synthesis and
# the scripts' "N passed, M failed" lines; a stress program counts as one).
check:
	@mkdir -p $(BUILD)
	@log=$(BUILD)/check.log; : > $$log; fail=0; \
	run() { echo "== $$1" | tee -a $$log; shift; "$$@" 2>&1 | tee -a $$log; return $${PIPESTATUS[0]}; }; \
	for t in $(UNIT_BINS); do run $$t ./$$t $(if $(T),--filter '$(T)') || fail=1; done; \
	for t in $(REPLAY_BINS); do n=$$(basename $$t); \
		ASAN_OPTIONS=detect_leaks=1 run $$t ./$$t tests/fuzz/corpus/$$n || fail=1; done; \
	for t in $(STRESS_BINS); do run $$t ./$$t; rc=$$?; \
		if [ $$rc = 77 ]; then echo "skipped: $$t"; elif [ $$rc != 0 ]; then fail=1; \
			echo "stress: 0 passed, 1 failed" >> $$log; else echo "stress: 1 passed, 0 failed" >> $$log; fi; done; \
	for t in $(IT_BINS); do SHARDMQ_BIN=$(BUILD)/shardmq BUILD=$(BUILD) \
		run $$t ./$$t $(if $(T),--filter '$(T)') || fail=1; done; \
	for t in $(IT_SCRIPTS); do \
		case $$t in *.py) SHARDMQ_BIN=$(BUILD)/shardmq BUILD=$(BUILD) run $$t $(PYTHON) $$t ;; \
		*) SHARDMQ_BIN=$(BUILD)/shardmq BUILD=$(BUILD) run $$t bash $$t ;; esac || fail=1; done; \
	awk '/Synthesis: Tested:/ { for (i = 1; i <= NF; i++) { \
			if ($$i == "Passing:") p += $$(i+1); \
			if ($$i == "Failing:" || $$i == "Crashing:") f += $$(i+1); } } \
		/^([a-z]+: )?[0-9]+ passed, [0-9]+ failed/ { sub(/^[a-z]+: /, ""); p += $$1; f += $$3 } \
		END { printf "tests: %d passed, %d failed\n", p, f }' $$log > $(BUILD)/check.total; \
	if [ $$fail != 0 ]; then echo "make check: FAILURES (see the programs above)"; fi; \
	cat $(BUILD)/check.total; exit $$fail

asan: deps
	$(MAKE) BUILD=build-asan OPT=-O1 SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" all
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
		$(MAKE) BUILD=build-asan OPT=-O1 SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" check

# The concurrency stress programs (MPSC inbox, interest propagation, an
# in-process 4-shard broker soak) under ThreadSanitizer. Part of make test.
TSAN_BINS := $(STRESS_SRCS:%.c=build-tsan/%)
tsan:
	$(MAKE) -j$(NPROC) BUILD=build-tsan OPT=-O1 SAN="-fsanitize=thread" $(TSAN_BINS)
	@fail=0; for t in $(TSAN_BINS); do echo "== $$t (ThreadSanitizer)"; \
		TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" ./$$t; rc=$$?; \
		if [ $$rc = 77 ]; then echo "skipped: $$t"; \
		elif [ $$rc = 0 ]; then echo "tsan: 1 passed, 0 failed"; \
		else echo "tsan: 0 passed, 1 failed"; fail=1; fi; done; exit $$fail

# libFuzzer targets: each fuzz_*.c links the core sources directly.
fuzz: deps
	@mkdir -p build-fuzz
	@for f in $(FUZZ_SRCS); do n=$$(basename $$f .c); \
		clang -std=c11 -D_GNU_SOURCE -O1 -g -I. -fsanitize=fuzzer,address,undefined \
			-o build-fuzz/$$n $$f $(FUZZ_DEPS) || exit 1; \
		mkdir -p build-fuzz/corpus-$$n; \
		echo "== fuzzing $$n for $(FUZZ_SECONDS)s"; \
		UBSAN_OPTIONS=halt_on_error=1 ./build-fuzz/$$n -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
			build-fuzz/corpus-$$n tests/fuzz/corpus/$$n || exit 1; \
	done

bench: deps all
	bash perf/bench.sh

format:
	clang-format -i $(LIB_SRCS) $(CMD_SRCS) $(wildcard */*.h tests/*/*.c perf/*.c)

clean:
	rm -rf build build-asan build-tsan build-fuzz

# Installing: make install [PREFIX=/usr/local] [DESTDIR=...]. The broker goes to sbin, the tools
# to bin, the man pages, an example config (never over an existing one) and a systemd unit
# whose paths name this PREFIX. Files under cmd/man and cmd/dist hold @SBINDIR@, @SYSCONFDIR@
# and @VERSION@ placeholders, filled in here. make deb stages an install under $(BUILD)/deb-root with
# PREFIX=/usr and builds $(BUILD)/shardmq_VERSION_ARCH.deb from it (dpkg-deb, no debhelper).
PREFIX     ?= /usr/local
DESTDIR    ?=
BINDIR     ?= $(PREFIX)/bin
SBINDIR    ?= $(PREFIX)/sbin
MANDIR     ?= $(PREFIX)/share/man
SYSCONFDIR ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
UNITDIR    ?= $(PREFIX)/lib/systemd/system
INST_TOOLS := pub sub passwd rr
INST_MAN   := $(wildcard cmd/man/*.[1-8])
INST_SUBST  = sed -e 's|@SBINDIR@|$(SBINDIR)|g' -e 's|@BINDIR@|$(BINDIR)|g' \
              -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' -e 's|@VERSION@|$(SMQ_VERSION)|g'
SMQ_VERSION = $(shell sed -n 's/^.define SMQ_VERSION "\(.*\)"/\1/p' core/version.h)
DEB_ARCH    = $(shell dpkg --print-architecture)
DEB_MAINTAINER ?= The shardmq authors <shardmq@localhost>
DEB_ROOT    = $(BUILD)/deb-root
DEB         = $(BUILD)/shardmq_$(SMQ_VERSION)_$(DEB_ARCH).deb

.PHONY: install uninstall deb
install: $(BUILD)/shardmq $(INST_TOOLS:%=$(BUILD)/shardmq-%)
	install -d -m 755 $(DESTDIR)$(SBINDIR) $(DESTDIR)$(BINDIR) $(DESTDIR)$(UNITDIR) \
		$(DESTDIR)$(SYSCONFDIR)/shardmq $(addprefix $(DESTDIR)$(MANDIR)/man,1 5 8)
	install -m 755 $(BUILD)/shardmq $(DESTDIR)$(SBINDIR)/shardmq
	install -m 755 $(INST_TOOLS:%=$(BUILD)/shardmq-%) $(DESTDIR)$(BINDIR)/
	@for m in $(INST_MAN); do s=$${m##*.}; echo "install $$m -> $(DESTDIR)$(MANDIR)/man$$s/"; \
		$(INST_SUBST) $$m > $(DESTDIR)$(MANDIR)/man$$s/$${m##*/} && \
		chmod 644 $(DESTDIR)$(MANDIR)/man$$s/$${m##*/} || exit 1; done
	$(INST_SUBST) cmd/dist/shardmq.service > $(DESTDIR)$(UNITDIR)/shardmq.service
	chmod 644 $(DESTDIR)$(UNITDIR)/shardmq.service
	install -D -m 644 cmd/dist/grafana-shardmq.json $(DESTDIR)$(PREFIX)/share/shardmq/grafana-shardmq.json
	@conf=$(DESTDIR)$(SYSCONFDIR)/shardmq/shardmq.conf; \
	if [ -e $$conf ]; then echo "install: keeping the existing $$conf"; \
	else echo "install cmd/dist/shardmq.conf -> $$conf"; \
		$(INST_SUBST) cmd/dist/shardmq.conf > $$conf && chmod 644 $$conf; fi

# Removes what install put there; the config only if it is still the example.
uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/shardmq $(INST_TOOLS:%=$(DESTDIR)$(BINDIR)/shardmq-%) \
		$(DESTDIR)$(UNITDIR)/shardmq.service $(DESTDIR)$(PREFIX)/share/shardmq/grafana-shardmq.json \
		$(foreach m,$(INST_MAN),$(DESTDIR)$(MANDIR)/man$(subst .,,$(suffix $(m)))/$(notdir $(m)))
	@conf=$(DESTDIR)$(SYSCONFDIR)/shardmq/shardmq.conf; \
	if [ -e $$conf ] && $(INST_SUBST) cmd/dist/shardmq.conf | cmp -s - $$conf; then rm -f $$conf; \
	elif [ -e $$conf ]; then echo "uninstall: keeping $$conf (changed from the example)"; fi; \
	rmdir $(DESTDIR)$(SYSCONFDIR)/shardmq 2>/dev/null || true

deb: $(BUILD)/shardmq $(INST_TOOLS:%=$(BUILD)/shardmq-%)
	@command -v dpkg-deb >/dev/null || { echo "make deb: dpkg-deb is missing"; exit 1; }
	rm -rf $(DEB_ROOT)
	$(MAKE) --no-print-directory install BUILD=$(BUILD) DESTDIR=$(abspath $(DEB_ROOT)) \
		PREFIX=/usr SYSCONFDIR=/etc UNITDIR=/lib/systemd/system >/dev/null
	strip --strip-unneeded --remove-section=.comment --remove-section=.note \
		$(DEB_ROOT)/usr/sbin/shardmq $(INST_TOOLS:%=$(DEB_ROOT)/usr/bin/shardmq-%)
	gzip -9n $(DEB_ROOT)/usr/share/man/man*/*
	install -d -m 755 $(DEB_ROOT)/usr/share/doc/shardmq $(DEB_ROOT)/DEBIAN
	install -m 644 LICENSE $(DEB_ROOT)/usr/share/doc/shardmq/copyright
	sed -e 's|@VERSION@|$(SMQ_VERSION)|' -e 's|@ARCH@|$(DEB_ARCH)|' \
		-e 's|@MAINTAINER@|$(DEB_MAINTAINER)|' \
		-e "s|@SIZE@|$$(du -sk --exclude=DEBIAN $(DEB_ROOT) | cut -f1)|" \
		cmd/dist/debian/control > $(DEB_ROOT)/DEBIAN/control
	echo /etc/shardmq/shardmq.conf > $(DEB_ROOT)/DEBIAN/conffiles
	install -m 755 cmd/dist/debian/postinst cmd/dist/debian/prerm cmd/dist/debian/postrm \
		$(DEB_ROOT)/DEBIAN/
	dpkg-deb --root-owner-group --build $(DEB_ROOT) $(DEB)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
