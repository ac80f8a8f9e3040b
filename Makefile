# wxkf — one Makefile. `make` builds build/wxkf; `make test` runs everything.
PREFIX  ?= /usr/local
DESTDIR ?=
PORT    ?= 8080
CC      ?= cc
PKGS     = fcgi hiredis libpq expat jansson libcurl libcrypto opencore-amrnb \
           speex libargon2 xlsxwriter

# Asked of pkg-config on first use, not when the Makefile is read: so
# `make deps check` works in one go on a machine where `deps` is what
# installs pkg-config and the libraries.
PKG_CFLAGS = $(eval PKG_CFLAGS := $$(shell pkg-config --cflags $(PKGS) 2>/dev/null))$(PKG_CFLAGS)
PKG_LIBS = $(eval PKG_LIBS := $$(shell pkg-config --libs $(PKGS) 2>/dev/null) -pthread)$(PKG_LIBS)
CMOCKA_LIBS = $(eval CMOCKA_LIBS := $$(shell pkg-config --libs cmocka 2>/dev/null))$(CMOCKA_LIBS)

WARN    = -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wvla -Wformat=2
CFLAGS ?= -O2 -g
ALL_CFLAGS = -std=c11 $(CFLAGS) $(WARN) -pthread -D_POSIX_C_SOURCE=200809L \
             -D_DEFAULT_SOURCE -Ilib -Ibuild/gen $(PKG_CFLAGS) \
             -DWXKF_VERSION=\"$(VERSION)\"
SAN     = -fsanitize=address,undefined -fno-sanitize-recover=all \
          -fno-omit-frame-pointer
VERSION := $(shell git describe --always --dirty 2>/dev/null || echo dev)

LIB_SRC  := $(wildcard lib/*.c)
FCGI_SRC := $(wildcard fcgi/*.c)
UNIT_SRC := $(wildcard test/unit/test_*.c)
HDRS     := $(wildcard lib/*.h fcgi/*.h test/unit/*.h)

# V=1 shows full commands.
Q = $(if $(V),,@)
REL = build/rel
SANB = build/san

.PHONY: all san deps check it test run stop bench bench-archive install clean fuzz fuzz-ci test-cluster test-fresh
.SECONDARY:
all: $(REL)/wxkf

# --- objects (release and sanitizer builds share the rules) ---------------
$(REL)/%.o: %.c $(HDRS) build/gen/lua.h | deps-checked
	@mkdir -p $(dir $@)
	@echo "  CC      $@"
	$(Q)$(CC) $(ALL_CFLAGS) -c $< -o $@
$(SANB)/%.o: %.c $(HDRS) build/gen/lua.h | deps-checked
	@mkdir -p $(dir $@)
	@echo "  CC      $@"
	$(Q)$(CC) $(ALL_CFLAGS) $(SAN) -c $< -o $@

# The migrations in sql/ are embedded in the binary.
SQL_SRC := $(sort $(wildcard sql/[0-9][0-9][0-9][0-9]_*.sql))
build/gen/migrations.c: $(SQL_SRC) scripts/embed_sql.sh
	@mkdir -p $(dir $@)
	@echo "  GEN     $@"
	$(Q)sh scripts/embed_sql.sh $@ $(SQL_SRC)
$(REL)/gen/migrations.o: build/gen/migrations.c lib/migrate.h
	@mkdir -p $(dir $@)
	@echo "  CC      $@"
	$(Q)$(CC) $(ALL_CFLAGS) -c $< -o $@
$(SANB)/gen/migrations.o: build/gen/migrations.c lib/migrate.h
	@mkdir -p $(dir $@)
	@echo "  CC      $@"
	$(Q)$(CC) $(ALL_CFLAGS) $(SAN) -c $< -o $@

# So are the Lua scripts in lib/lua/ (lib/lua/README.md): each with
# lib/lua/audit.lua in front, the routing scripts, LUA_ROUTING, also with
# lib/lua/prelude.lua. build/gen/lua.h declares them (rewritten only when the list of
# scripts changes: a script's edit recompiles lua.c alone).
LUA_ROUTING := $(addprefix lib/lua/,$(addsuffix .lua,\
  ingest outbound presence read session supervise sweep))
LUA_PLAIN := $(filter-out lib/lua/audit.lua lib/lua/prelude.lua $(LUA_ROUTING),\
  $(sort $(wildcard lib/lua/*.lua)))
EMBED_LUA = sh scripts/embed_lua.sh build/gen/lua.c build/gen/lua.h \
  lib/lua/audit.lua lib/lua/prelude.lua $(LUA_ROUTING) -- $(LUA_PLAIN)
build/gen/lua.c: lib/lua/audit.lua lib/lua/prelude.lua $(LUA_ROUTING) \
		$(LUA_PLAIN) \
		scripts/embed_lua.sh Makefile
	@mkdir -p $(dir $@)
	@echo "  GEN     $@"
	$(Q)$(EMBED_LUA)
# (written with lua.c; again only if it went missing)
build/gen/lua.h: build/gen/lua.c
	$(Q)test -f $@ || $(EMBED_LUA)
$(REL)/gen/lua.o: build/gen/lua.c build/gen/lua.h
	@mkdir -p $(dir $@)
	@echo "  CC      $@"
	$(Q)$(CC) $(ALL_CFLAGS) -c $< -o $@
$(SANB)/gen/lua.o: build/gen/lua.c build/gen/lua.h
	@mkdir -p $(dir $@)
	@echo "  CC      $@"
	$(Q)$(CC) $(ALL_CFLAGS) $(SAN) -c $< -o $@

$(REL)/libwxkf.a: $(LIB_SRC:%.c=$(REL)/%.o) $(REL)/gen/migrations.o $(REL)/gen/lua.o
	@echo "  AR      $@"
	$(Q)ar rcs $@ $^
$(SANB)/libwxkf.a: $(LIB_SRC:%.c=$(SANB)/%.o) $(SANB)/gen/migrations.o $(SANB)/gen/lua.o
	@echo "  AR      $@"
	$(Q)ar rcs $@ $^

$(REL)/wxkf: $(FCGI_SRC:%.c=$(REL)/%.o) $(REL)/libwxkf.a
	@echo "  LD      $@"
	$(Q)$(CC) $(ALL_CFLAGS) -o $@ $^ $(PKG_LIBS)
$(SANB)/wxkf: $(FCGI_SRC:%.c=$(SANB)/%.o) $(SANB)/libwxkf.a
	@echo "  LD      $@"
	$(Q)$(CC) $(ALL_CFLAGS) $(SAN) -o $@ $^ $(PKG_LIBS)

$(SANB)/test_%: $(SANB)/test/unit/test_%.o $(SANB)/test/unit/testutil.o \
		$(SANB)/test/unit/tu_redis.o $(SANB)/test/unit/tu_sim.o \
		$(SANB)/test/unit/tu_pg.o \
		$(SANB)/libwxkf.a
	@echo "  LD      $@"
	$(Q)$(CC) $(ALL_CFLAGS) $(SAN) -o $@ $^ $(PKG_LIBS) $(CMOCKA_LIBS)

san: $(SANB)/wxkf

# `deps-checked` only verifies the toolchain is there; `make deps` installs.
.PHONY: deps-checked
deps-checked:
	@pkg-config --exists $(PKGS) cmocka || { \
	  echo "missing libraries: run 'make deps' (or 'make test' / 'make run')"; exit 1; }

deps:
	@sh scripts/deps.sh

# --- tests -----------------------------------------------------------------
UNIT_BINS := $(patsubst test/unit/test_%.c,$(SANB)/test_%,$(UNIT_SRC))

check: $(UNIT_BINS)
	@set -e; cd test/unit && for t in $(UNIT_BINS); do \
	  echo "== $$t"; ASAN_OPTIONS=detect_leaks=1 ../../$$t; done

# The browser test (test/it/test_console.py) needs playwright-core from the
# npm registry (test/browser/package-lock.json) and Debian's chromium.
it: $(SANB)/wxkf
	sh test/browser/setup.sh
	WXKF_BIN=$(CURDIR)/$(SANB)/wxkf /usr/bin/python3 -m pytest -q test/sim test/it

test: deps
	$(MAKE) all san
	$(MAKE) check
	$(MAKE) it
	$(MAKE) fuzz-ci
	$(MAKE) test-cluster

# The README's promise on a bare Debian 12 (scripts/test-fresh.sh, as root):
# a debootstrap minbase root with make, git and ca-certificates, HEAD cloned
# into it, then inside it `make test`, `make run`, signed GET/POST on
# /wechat, /healthz, `make install` + the installed binary, `make stop`.
# FRESH_TARGET="deps check" runs the unit tests only instead of `make test`.
test-fresh:
	sh scripts/test-fresh.sh

# Multi-host fail-over (test/cluster, as root): PostgreSQL, Redis with a
# replica and three Sentinels, two app hosts (nginx + workers + jobs) and a
# front nginx, each in a network namespace of its own on one bridge;
# simulated users through the front while an app host or the Redis
# primary is killed. Prints its figures (-s); about 2 minutes.
test-cluster: $(SANB)/wxkf
	WXKF_BIN=$(CURDIR)/$(SANB)/wxkf timeout -k 30 600 /usr/bin/python3 \
	  -m pytest -q -s test/cluster

# libFuzzer harnesses (test/fuzz, scripts/fuzz.sh: clang, ASan, UBSan):
# `make fuzz` runs each FUZZ_SECONDS (300); `make test` runs each 45 s, two
# at a time, after replaying every regression input and seed.
FUZZ_SECONDS ?= 300
fuzz:
	sh scripts/fuzz.sh $(FUZZ_SECONDS)

fuzz-ci:
	sh scripts/fuzz.sh 0
	@sh scripts/fuzz.sh 45 xml callback json canned & a=$$!; \
	  sh scripts/fuzz.sh 45 crypto query config journal voice; b=$$?; \
	  wait $$a; a=$$?; \
	  [ $$a -eq 0 ] && [ $$b -eq 0 ] || { echo "fuzz: failed (a=$$a b=$$b)"; exit 1; }

# Benchmarks (docs/performance.md): the callback path against the bare
# FastCGI ceiling (2/4/8 workers, 16/64 connections, safe mode), the
# archiver's drain rate and the exactly-once check, with the release build;
# writes build/bench/ and docs/perf/throughput.png. On a shared machine:
# make bench BENCH_ARGS='--nice -10'; a 1.5-minute smoke run: BENCH_ARGS=--quick
bench: deps
	$(MAKE) all
	/usr/bin/python3 test/bench/bench.py --bin $(CURDIR)/$(REL)/wxkf $(BENCH_ARGS)

# The archiver's drain rate alone (a pytest marked bench).
bench-archive: deps
	$(MAKE) all
	WXKF_BENCH=1 WXKF_BIN=$(CURDIR)/$(REL)/wxkf /usr/bin/python3 -m pytest \
	  -q -s -m bench test/it

# --- the stack -----------------------------------------------------------
run: deps
	$(MAKE) all
	PORT=$(PORT) sh scripts/run.sh start

stop:
	sh scripts/run.sh stop

# The installed layout (docs/operations.md, "Install"): PREFIX for the
# program and its files, SYSCONFDIR for /etc/default/wxkf (written only when
# there is none), the systemd units and the sysusers.d and tmpfiles.d
# entries under PREFIX/lib.
BINDIR     = $(PREFIX)/bin
DATADIR    = $(PREFIX)/share/wxkf
DOCDIR     = $(PREFIX)/share/doc/wxkf
SYSCONFDIR ?= /etc
UNITDIR    ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
TMPFILESDIR ?= $(PREFIX)/lib/tmpfiles.d
RENDER = sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@DOCDIR@|$(DOCDIR)|g' \
	-e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
	-e 's|/usr/local/share/wxkf/html;|$(DATADIR)/html;|' \
	-e '/@HARDENING@/{r systemd/hardening.conf' -e 'd;}'

install: $(REL)/wxkf
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(DATADIR)/sql \
	  $(DESTDIR)$(DATADIR)/nginx $(DESTDIR)$(DATADIR)/html \
	  $(DESTDIR)$(DOCDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSUSERSDIR) \
	  $(DESTDIR)$(TMPFILESDIR) $(DESTDIR)$(SYSCONFDIR)/default
	install -m 0755 $(REL)/wxkf $(DESTDIR)$(BINDIR)/wxkf
	install -m 0644 sql/*.sql $(DESTDIR)$(DATADIR)/sql/
	install -m 0644 nginx/wxkf.conf.in $(DESTDIR)$(DATADIR)/nginx/
	$(RENDER) nginx/wxkf-production.conf \
	  >$(DESTDIR)$(DATADIR)/nginx/wxkf-production.conf
	install -m 0644 nginx/html/*.html nginx/html/*.js nginx/html/*.css \
	  nginx/html/*.svg $(DESTDIR)$(DATADIR)/html/
	install -m 0644 docs/wxkf.conf.sample docs/*.md $(DESTDIR)$(DOCDIR)/
	for u in wxkf-fcgi wxkf-jobs; do \
	  $(RENDER) systemd/$$u.service.in >$(DESTDIR)$(UNITDIR)/$$u.service \
	  || exit 1; done
	install -m 0644 systemd/wxkf.sysusers $(DESTDIR)$(SYSUSERSDIR)/wxkf.conf
	install -m 0644 systemd/wxkf.tmpfiles $(DESTDIR)$(TMPFILESDIR)/wxkf.conf
	chmod 0644 $(DESTDIR)$(DATADIR)/nginx/wxkf-production.conf \
	  $(DESTDIR)$(UNITDIR)/wxkf-*.service
	f=$(DESTDIR)$(SYSCONFDIR)/default/wxkf; [ -e $$f ] || { \
	  $(RENDER) systemd/wxkf.default >$$f && chmod 0600 $$f; }

clean:
	rm -rf build
