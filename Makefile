# greenhub - see README.md. Sources are listed once, here (and checked
# against the rockspec by scripts/check-rockspec.sh).
LUA      ?= lua5.4
PKG      ?= lua5.4
CC       ?= cc
PREFIX   ?= /usr/local
LUA_CDIR ?= $(PREFIX)/lib/lua/5.4
LUA_LDIR ?= $(PREFIX)/share/lua/5.4
LUA_INC  := $(shell pkg-config --cflags $(PKG) 2>/dev/null || echo -I/usr/include/lua5.4)

SRCS := csrc/poller.c csrc/hub.c csrc/timer.c csrc/thread.c csrc/timeout.c csrc/buffer.c \
        csrc/compat.c csrc/socket.c csrc/stream.c csrc/sockaddr.c csrc/udp.c csrc/sockhttp.c \
        csrc/resolver.c csrc/sync.c csrc/diag.c csrc/proc.c csrc/module.c \
        csrc/http.c csrc/websocket.c csrc/wsframe.c csrc/fs.c csrc/tpool.c csrc/scope.c \
        csrc/tls.c
HDRS := csrc/compat.h csrc/sock.h csrc/poller.h csrc/greenhub.h csrc/buffer.h csrc/http.h csrc/wsframe.h
LUAS := lua/greenhub.lua $(wildcard lua/greenhub/*.lua)

# greenhub.pgcore (PostgreSQL) is built only where libpq's header is
PG_SRCS := csrc/pg.c
PQ_INC  := $(shell pkg-config --cflags libpq 2>/dev/null || echo -I/usr/include/postgresql)
HAVE_PQ := $(shell for d in $(patsubst -I%,%,$(filter -I%,$(PQ_INC))) /usr/include; do [ -f $$d/libpq-fe.h ] && echo 1 && break; done)
PG_SO   := $(if $(HAVE_PQ),build/greenhub/pgcore.so)
PG_SO_ASAN := $(if $(HAVE_PQ),build-asan/greenhub/pgcore.so)

CFLAGS  ?= -O2 -g
WARN    := -Wall -Wextra -Wshadow
ALL_CFLAGS := -std=gnu11 $(WARN) -fPIC -fvisibility=hidden $(LUA_INC) $(CFLAGS)
LIBS    := -lssl -lcrypto -lpthread -lm -ldl

SAN_FLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined

BUSTED = $(LUA) /usr/bin/busted

.PHONY: build-asan-all all test test-poll asan valgrind stress fuzz install uninstall clean demo bench deps check-rockspec

all: build/greenhub/core.so $(PG_SO)

build/greenhub/core.so: $(SRCS) $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -shared -o $@ $(SRCS) $(LDFLAGS) $(LIBS)

build/greenhub/pgcore.so: $(PG_SRCS) $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(PQ_INC) -shared -o $@ $(PG_SRCS) $(LDFLAGS) -lpq -lm

build-asan/greenhub/pgcore.so: $(PG_SRCS) $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 $(WARN) -fPIC -fvisibility=hidden $(LUA_INC) $(PQ_INC) $(SAN_FLAGS) -shared -o $@ $(PG_SRCS) -lpq -lm

build-asan-all: build-asan/greenhub/core.so $(PG_SO_ASAN)

build-asan/greenhub/core.so: $(SRCS) $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 $(WARN) -fPIC -fvisibility=hidden $(LUA_INC) $(SAN_FLAGS) -shared -o $@ $(SRCS) $(LIBS)

deps:
	@sh scripts/deps.sh test

# (deps first, then a fresh make: what it installed, libpq-dev, decides
# what gets built)
test: deps
	@$(MAKE) --no-print-directory all
	@sh scripts/run-specs.sh build

# the whole suite again on the portable poll(2) backend
test-poll: deps
	@$(MAKE) --no-print-directory all
	@GREENHUB_BACKEND=poll sh scripts/run-specs.sh build

asan: deps
	@$(MAKE) --no-print-directory build-asan-all
	@GH_SAN=1 sh scripts/run-specs.sh build-asan

valgrind: deps
	@$(MAKE) --no-print-directory all
	@GH_VALGRIND=1 sh scripts/run-specs.sh build

stress: deps all
	@GH_STRESS=full SPECS=spec/stress sh scripts/run-specs.sh build

FUZZ_SECONDS ?= 60
fuzz: build/fuzz_buffer build/fuzz_http build/fuzz_ws
	@mkdir -p build/fuzz-corpus build/fuzz-corpus-http build/fuzz-corpus-ws
	./build/fuzz_buffer -max_total_time=$(FUZZ_SECONDS) -max_len=4096 build/fuzz-corpus spec/fuzz/corpus
	./build/fuzz_http -max_total_time=$(FUZZ_SECONDS) -max_len=4096 build/fuzz-corpus-http spec/fuzz/corpus_http
	./build/fuzz_ws -max_total_time=$(FUZZ_SECONDS) -max_len=4096 build/fuzz-corpus-ws spec/fuzz/corpus_ws

build/fuzz_ws: spec/fuzz/fuzz_ws.c csrc/wsframe.c csrc/wsframe.h
	@mkdir -p build
	clang -g -O1 -fsanitize=fuzzer,address,undefined -o $@ spec/fuzz/fuzz_ws.c csrc/wsframe.c

build/fuzz_http: spec/fuzz/fuzz_http.c csrc/http.c csrc/http.h
	@mkdir -p build
	clang -g -O1 -fsanitize=fuzzer,address,undefined -o $@ spec/fuzz/fuzz_http.c csrc/http.c

build/fuzz_buffer: spec/fuzz/fuzz_buffer.c csrc/buffer.c csrc/buffer.h
	@mkdir -p build
	clang -g -O1 -fsanitize=fuzzer,address,undefined -o $@ spec/fuzz/fuzz_buffer.c csrc/buffer.c

demo:
	@sh scripts/deps.sh demo
	@$(MAKE) --no-print-directory all
	$(LUA) examples/demo.lua

bench:
	@sh scripts/deps.sh bench
	@$(MAKE) --no-print-directory all
	@bash bench/run.sh

check-rockspec:
	@sh scripts/check-rockspec.sh

install: all
	install -d $(DESTDIR)$(LUA_CDIR)/greenhub $(DESTDIR)$(LUA_LDIR)/greenhub
	install -m 0755 build/greenhub/core.so $(DESTDIR)$(LUA_CDIR)/greenhub/core.so
	$(if $(PG_SO),install -m 0755 $(PG_SO) $(DESTDIR)$(LUA_CDIR)/greenhub/pgcore.so)
	install -m 0644 lua/greenhub.lua $(DESTDIR)$(LUA_LDIR)/greenhub.lua
	for f in $(wildcard lua/greenhub/*.lua); do install -m 0644 $$f $(DESTDIR)$(LUA_LDIR)/greenhub/; done

uninstall:
	rm -rf $(DESTDIR)$(LUA_CDIR)/greenhub $(DESTDIR)$(LUA_LDIR)/greenhub $(DESTDIR)$(LUA_LDIR)/greenhub.lua

clean:
	rm -rf build build-asan
