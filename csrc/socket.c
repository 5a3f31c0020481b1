/*
 * socket.c - green TCP, UDP and Unix stream sockets with LuaSocket's API.
 *
 * Every operation tries the syscall first and parks in the hub only on
 * EAGAIN (hub_wait_fd), continuing in a lua_KFunction that retries. Errors
 * the network causes are returned as nil, LuaSocket's words [, partial];
 * misuse raises.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "buffer.h"
#include "http.h"
#include "greenhub.h"

#define LINE_MAX_DEFAULT (1024 * 1024)
#define UDP_DATAGRAMSIZE 8192

enum { K_MASTER, K_CLIENT, K_SERVER, K_UNCONNECTED, K_CONNECTED };
enum { P_LINE = PAT_LINE, P_ALL = PAT_ALL, P_COUNT = PAT_COUNT };

typedef struct gh_sock {
  int fd;                  /* -1 when closed, or tcp() not yet created */
  int family;              /* AF_INET, AF_INET6, AF_UNIX; AF_UNSPEC = lazy */
  int type;                /* SOCK_STREAM or SOCK_DGRAM */
  int kind;                /* K_*: what LuaSocket would call its class */
  int plain;               /* not a socket (gh.fdopen): read/write */
  double tblock, ttotal;   /* settimeout 'b' and 't'; < 0 = none */
  size_t line_max;         /* longest line "*l" accepts */
  gh_buf buf;              /* received, not yet returned */
  double nrecv, nsent;     /* getstats */
  int64_t birth;
  gh_hub *hub;
  int discard;             /* drop input up to the end of an over-long line */
  int nopts;               /* options set on a master socket, replayed on
                              the fresh fd a connect retry needs */
  struct { int level, opt, val; } opts[8];
  socklen_t boundlen;      /* the address bind() was given (0 = none) */
  struct sockaddr_storage bound;
  /* setoption("coalesce", true): sends collect here and go out in one
     syscall when the thread blocks (any park), at COALESCE_MAX, on flush()
     or close(); the hub finishes a flush the kernel could not take whole
     when the fd turns writable */
  int coalesce;
  int out_err;             /* errno of a background flush that failed */
  gh_buf out;
  gh_link flushq;          /* in the hub's flushq while out is not empty */
} gh_sock;

#define COALESCE_MAX (64 * 1024)

/* ---------------------------------------------------------------- errors */

/* LuaSocket's words for errno values code depends on; else strerror. */
static const char *sock_strerror(int err) {
  switch (err) {
    case 0: return NULL;
    case EAGAIN: case ETIMEDOUT: return "timeout";
    case ECONNREFUSED: return "connection refused";
    case EPIPE: case ECONNRESET: case ECONNABORTED: case ENOTCONN:
    case ESHUTDOWN: case EBADF: return "closed";
    case EADDRINUSE: return "address already in use";
    case EISCONN: return "already connected";
    case EACCES: return "permission denied";
    case EAFNOSUPPORT: return "address family not supported";
    case EPROTONOSUPPORT: return "protocol not supported";
    case EMFILE: case ENFILE: return "too many open files";
    default: return strerror(err);
  }
}

static int push_fail(lua_State *L, const char *msg) {
  lua_pushnil(L);
  lua_pushstring(L, msg);
  return 2;
}

static int push_errno(lua_State *L, int err) {
  return push_fail(L, sock_strerror(err));
}

/*
 * First thing in a continuation after an fd wait: raise a pending
 * interrupt; when the wait timed out or the fd was closed push nil and
 * LuaSocket's word and return 2; else 0 (go on, retry the syscall).
 */
static int wait_failed(lua_State *L, gh_hub *h) {
  gh_thread *self = hub_me(L, h);
  hub_check_intr(L, h, self);
  if (self->wake == WK_TIMEOUT) return push_fail(L, "timeout");
  if (self->wake == WK_CLOSED) return push_fail(L, "closed");
  return 0;
}

/* ---------------------------------------------------------------- objects */

/* LuaSocket's class names; each has its own metatable whose __index has
   the methods and `class` (so sock.class is the name, as in LuaSocket) */
static const char *const class_names[] = {
  "tcp{master}", "tcp{client}", "tcp{server}",
  "unix{master}", "unix{client}", "unix{server}",
  "udp{unconnected}", "udp{connected}",
  "unixdgram{unconnected}", "unixdgram{connected}",
  "fd{stream}", NULL
};
enum { SC_NCLASS = 11 };

static int class_index(const gh_sock *s) {
  if (s->plain) return 10;
  if (s->type == SOCK_DGRAM)
    return (s->family == AF_UNIX ? 8 : 6) + (s->kind == K_CONNECTED);
  return (s->family == AF_UNIX ? 3 : 0) + s->kind;
}

static const char *sock_class(const gh_sock *s) { return class_names[class_index(s)]; }

static gh_sock *sock_check(lua_State *L, int arg) {
  gh_hub *h = HUB(L);
  void *p = lua_touserdata(L, arg);
  if (p && lua_getmetatable(L, arg)) {
    const void *m = lua_topointer(L, -1);
    lua_pop(L, 1);
    for (int i = 0; i < SC_NCLASS; i++) if (h->sockmt[i] == m) return p;
  }
  luaL_typeerror(L, arg, "greenhub socket");
  return NULL;
}

/* Give the userdata at idx the metatable of s's (new) class. */
static void sock_setclass(lua_State *L, int idx, gh_sock *s) {
  char name[64];
  snprintf(name, sizeof name, "greenhub.%s", sock_class(s));
  idx = lua_absindex(L, idx);
  luaL_getmetatable(L, name);
  lua_setmetatable(L, idx);
}

/* Raise unless s is one of the classes in mask (bits of K_*). */
static gh_sock *sock_need(lua_State *L, int kmask, int type, const char *what) {
  gh_sock *s = sock_check(L, 1);
  if (s->type != type || !(kmask & (1 << s->kind)))
    luaL_error(L, "greenhub: %s is not available on %s", what, sock_class(s));
  return s;
}

static void set_nonblock(int fd) {
  int fl = fcntl(fd, F_GETFL);
  if (fl >= 0 && !(fl & O_NONBLOCK)) fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static gh_sock *sock_push(lua_State *L, gh_hub *h, int fd, int family, int type, int kind) {
  gh_sock *s = lua_newuserdatauv(L, sizeof *s, 0);
  memset(s, 0, sizeof *s);
  s->fd = -1;
  s->family = family;
  s->type = type;
  s->kind = kind;
  s->tblock = s->ttotal = -1;
  s->line_max = LINE_MAX_DEFAULT;
  link_init(&s->flushq);
  s->hub = h;
  s->birth = hub_clock();
  sock_setclass(L, -1, s);
  s->fd = fd;
  if (fd >= 0) hub_fd_forget(h, fd);
  return s;
}

/* Create the fd of a lazy tcp()/udp() once the family is known. */
static int sock_create_fd(gh_sock *s, int family) {
  int fd = socket(family, s->type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (family == AF_INET6) {
    int on = 1; /* as LuaSocket: v6 sockets are v6 only */
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on);
  }
  s->fd = fd;
  s->family = family;
  hub_fd_forget(s->hub, fd);
  return 0;
}

/* ---------------------------------------------------------------- coalescing */

/*
 * Write what out holds without blocking. 1: all gone (or failed: the error
 * is kept for the next send), 0: the kernel took only part (EAGAIN).
 */
static int out_write(gh_sock *s) {
  while (buf_len(&s->out) > 0) {
    if (s->fd < 0) { s->out_err = EPIPE; break; }
    ssize_t n = s->plain ? write(s->fd, buf_head(&s->out), buf_len(&s->out))
                         : send(s->fd, buf_head(&s->out), buf_len(&s->out), MSG_NOSIGNAL);
    if (n >= 0) { buf_consume(&s->out, (size_t)n); continue; }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
    s->out_err = errno;
    break;
  }
  buf_free(&s->out);
  return 1;
}

/* s no longer waits for writability to flush */
static void out_unwatch(gh_sock *s) {
  gh_hub *h = s->hub;
  if (s->fd >= 0 && s->fd < h->nfds && h->fds[s->fd].flusher == s) {
    h->fds[s->fd].flusher = NULL;
    hub_unref(h);
  }
}

/* One background flush attempt; leftovers wait for the fd to be writable. */
static void out_flush(gh_hub *h, gh_sock *s) {
  if (out_write(s)) {
    out_unwatch(s);
    if (link_linked(&s->flushq)) link_remove(&s->flushq);
    return;
  }
  gh_fd *r = hub_fd(h, s->fd);
  if (r && !r->flusher && hub_fd_watch(h, s->fd) == 0) {
    r->flusher = s;
    hub_ref(h); /* an outside event (writability) is still awaited */
  }
  if (r) r->ready &= (uint8_t)~FD_W;
}

/* hub hooks: every park, and an fd turning writable */
static void flush_all(gh_hub *h) {
  gh_link *l = h->flushq.next;
  while (l != &h->flushq) {
    gh_link *next = l->next;
    gh_sock *s = container_of(l, gh_sock, flushq);
    if (s->fd < 0 || hub_fd_maybe_ready(h, s->fd, FD_W)) out_flush(h, s);
    l = next;
  }
}

static void flush_one(gh_hub *h, void *p) { out_flush(h, p); }

static void sock_close_fd(gh_sock *s) {
  if (link_linked(&s->flushq)) link_remove(&s->flushq);
  out_unwatch(s);
  buf_free(&s->out);
  if (s->fd >= 0) {
    hub_fd_forget(s->hub, s->fd); /* wakes waiters with "closed" */
    close(s->fd);
    s->fd = -1;
  }
  buf_free(&s->buf);
}

static int sock_gc(lua_State *L) {
  gh_sock *s = sock_check(L, 1);
  if (s->fd >= 0 && s->hub->closed) { close(s->fd); s->fd = -1; }
  sock_close_fd(s);
  return 0;
}

static int sock_tostring(lua_State *L) {
  gh_sock *s = sock_check(L, 1);
  if (s->fd < 0 && s->kind != K_MASTER && s->kind != K_UNCONNECTED)
    lua_pushfstring(L, "%s (closed): %p", sock_class(s), (void *)s);
  else
    lua_pushfstring(L, "%s: %p", sock_class(s), (void *)s);
  return 1;
}

/* ---------------------------------------------------------------- timeouts */

/* Deadline of the whole call ('t' mode), -1 for none. */
static int64_t call_deadline(const gh_sock *s) {
  return s->ttotal < 0 ? -1 : hub_after(s->ttotal);
}

/* Deadline of one wait: the sooner of the call's and the 'b' timeout. */
static int64_t wait_deadline(const gh_sock *s, int64_t total) {
  if (s->tblock < 0) return total;
  int64_t b = hub_after(s->tblock);
  return (total < 0 || b < total) ? b : total;
}

static int expired(int64_t deadline) {
  return deadline >= 0 && deadline <= hub_clock();
}

/*
 * Park the caller on s's fd until it is ready in direction dir, the wait's
 * deadline passes (then nil, "timeout" at once if it already has), or the
 * socket is closed; continues in k.
 */
static int sock_wait(lua_State *L, gh_sock *s, int dir, int64_t total,
                     lua_KContext ctx, lua_KFunction k, const char *what) {
  int64_t d = wait_deadline(s, total);
  if (expired(d)) return push_fail(L, "timeout");
  gh_hub *h = s->hub;
  return hub_wait_fd(L, h, hub_self(L, h, what), s->fd, dir, d, ctx, k);
}

static int sock_settimeout(lua_State *L) {
  gh_sock *s = sock_check(L, 1);
  double t = luaL_optnumber(L, 2, -1);
  const char *mode = luaL_optstring(L, 3, "b");
  if (t != t) luaL_argerror(L, 2, "timeout is NaN");
  if (t == HUGE_VAL) t = -1;
  switch (*mode) {
    case 'b': s->tblock = t; break;
    case 'r': case 't': s->ttotal = t; break;
    default: return luaL_argerror(L, 3, "invalid timeout mode");
  }
  lua_pushinteger(L, 1);
  return 1;
}

static int flush_k(lua_State *L, int status, lua_KContext ctx);

/* Push out what coalescing collected, parking while the kernel is full.
   then: 0 = flush() (returns 1 or nil, err), 1 = close() afterwards. */
static int flush_step(lua_State *L, gh_sock *s, int64_t total, int then) {
  while (buf_len(&s->out) > 0 && s->fd >= 0) {
    if (out_write(s)) break;
    int64_t d = wait_deadline(s, total);
    gh_hub *h = s->hub;
    if (expired(d) || (then && !hub_can_block(L, h))) break; /* close drops the rest */
    lua_settop(L, 1);
    lua_pushboolean(L, then);
    return hub_wait_fd(L, h, hub_self(L, h, then ? "close" : "flush"), s->fd, FD_W, d,
                       (lua_KContext)total, flush_k);
  }
  out_unwatch(s);
  if (link_linked(&s->flushq)) link_remove(&s->flushq);
  if (then) {
    sock_close_fd(s);
    lua_pushinteger(L, 1);
    return 1;
  }
  if (buf_len(&s->out) > 0) return push_fail(L, "timeout");
  if (s->out_err) { int e = s->out_err; s->out_err = 0; return push_errno(L, e); }
  lua_pushinteger(L, 1);
  return 1;
}

static int flush_k(lua_State *L, int status, lua_KContext ctx) {
  gh_sock *s = lua_touserdata(L, 1);
  gh_thread *self = hub_me(L, s->hub);
  int then = lua_toboolean(L, 2);
  (void)status;
  if (self->wake == WK_INTR && then) sock_close_fd(s); /* killed: still closed */
  hub_check_intr(L, s->hub, self);
  if (self->wake != WK_OK) {
    if (then) { sock_close_fd(s); lua_pushinteger(L, 1); return 1; }
    return push_fail(L, self->wake == WK_TIMEOUT ? "timeout" : "closed");
  }
  return flush_step(L, s, (int64_t)ctx, then);
}

/* flush(): send what coalescing holds now (green; honours the timeouts) */
static int sock_flush(lua_State *L) {
  gh_sock *s = sock_check(L, 1);
  lua_settop(L, 1);
  if (s->fd < 0 && buf_len(&s->out) == 0) return push_fail(L, "closed");
  return flush_step(L, s, call_deadline(s), 0);
}

/* close(): coalesced output is flushed first (green, when the caller can
   block; else what the kernel takes without blocking) */
static int sock_close(lua_State *L) {
  gh_sock *s = sock_check(L, 1);
  lua_settop(L, 1);
  if (buf_len(&s->out) > 0 && s->fd >= 0) return flush_step(L, s, call_deadline(s), 1);
  sock_close_fd(s);
  lua_pushinteger(L, 1);
  return 1;
}

/* gettimeout() -> block, total (as LuaSocket: -1 for none) */
static int sock_gettimeout(lua_State *L) {
  gh_sock *s = sock_check(L, 1);
  lua_pushnumber(L, s->tblock);
  lua_pushnumber(L, s->ttotal);
  return 2;
}

/* ---------------------------------------------------------------- receive */

static void parse_pattern(lua_State *L, int *mode, size_t *count) {
  if (lua_type(L, 2) == LUA_TNUMBER) {
    lua_Integer n = luaL_checkinteger(L, 2);
    if (n < 0) luaL_argerror(L, 2, "negative byte count");
    *mode = P_COUNT;
    /* as LuaSocket: the count includes the prefix (receive(n, partial)
       continues an interrupted receive(n)) */
    size_t plen = lua_type(L, 3) == LUA_TSTRING ? lua_rawlen(L, 3) : 0;
    *count = (size_t)n > plen ? (size_t)n - plen : 0;
    return;
  }
  const char *p = luaL_optstring(L, 2, "*l");
  if (*p == '*') p++;
  if (strcmp(p, "l") == 0) *mode = P_LINE;
  else if (strcmp(p, "a") == 0) *mode = P_ALL;
  else luaL_argerror(L, 2, "invalid receive pattern");
  *count = 0;
}

/* prefix .. n buffered bytes (CRs dropped for lines), consumed. */
static void push_data(lua_State *L, gh_sock *s, size_t n, size_t skip, int line) {
  size_t plen = 0;
  const char *prefix = lua_tolstring(L, 3, &plen);
  if (plen == 0 && n > 0) {
    /* the common case, one copy: no prefix, and no CR to drop but
       perhaps the one that ends a CRLF line */
    const char *head = buf_head(&s->buf);
    const char *cr = line ? memchr(head, '\r', n) : NULL;
    if (!cr || cr == head + n - 1) {
      lua_pushlstring(L, head, cr ? n - 1 : n);
      buf_consume(&s->buf, n + skip);
      return;
    }
  }
  luaL_Buffer b;
  char *out = luaL_buffinitsize(L, &b, plen + n);
  if (plen) memcpy(out, prefix, plen);
  size_t k = 0;
  if (n > 0) /* an empty buffer may have no storage at all */
    k = line ? buf_copy_line(buf_head(&s->buf), n, out + plen)
             : (memcpy(out + plen, buf_head(&s->buf), n), n);
  luaL_pushresultsize(&b, plen + k);
  buf_consume(&s->buf, n + skip);
}

/* nil, err, partial (everything buffered, with the prefix; for a line,
   without its CRs, as LuaSocket's partial). */
static int recv_fail(lua_State *L, gh_sock *s, const char *err, int line) {
  lua_pushnil(L);
  lua_pushstring(L, err);
  push_data(L, s, buf_len(&s->buf), 0, line);
  return 3;
}

/* data, nil, nil: LuaSocket's three results of a successful receive */
static int recv_done(lua_State *L) {
  lua_pushnil(L);
  lua_pushnil(L);
  return 3;
}

/* Worth trying a read now: the fd may hold data, or the call will not wait
   anyway (a settimeout(0) poll must still see new data). */
static int worth_reading(gh_sock *s, int64_t total) {
  return hub_fd_maybe_ready(s->hub, s->fd, FD_R) || expired(wait_deadline(s, total));
}

/*
 * One read into s->buf with at least `want` bytes of room, at most `cap`
 * bytes (0: all the room). Returns the bytes read, 0 at the end of the
 * stream, -1 when nothing is there now (the socket is then marked
 * drained), -2 on an error (errno says which). No memory for the buffer
 * raises.
 */
static ssize_t sock_read_more(lua_State *L, gh_sock *s, size_t want, size_t cap) {
  if (!buf_reserve(&s->buf, want)) luaL_error(L, "greenhub: out of memory");
  size_t room = buf_room(&s->buf);
  if (cap && room > cap) room = cap;
  for (;;) {
    ssize_t got = s->plain ? read(s->fd, s->buf.data + s->buf.last, room)
                           : recv(s->fd, s->buf.data + s->buf.last, room, 0);
    if (got > 0) {
      buf_commit(&s->buf, (size_t)got);
      s->nrecv += (double)got;
      if ((size_t)got < room) hub_fd_drained(s->hub, s->fd, FD_R);
      return got;
    }
    if (got == 0) return 0;
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      hub_fd_drained(s->hub, s->fd, FD_R);
      return -1;
    }
    return -2;
  }
}

/* Park the caller until s is readable (deadline d), continuing in k. */
static int sock_park_read(lua_State *L, gh_sock *s, int64_t d, int64_t total,
                          lua_KFunction k, const char *what) {
  gh_hub *h = s->hub;
  gh_thread *self = hub_self(L, h, what);
  buf_shrink(&s->buf); /* an idle socket holds no buffer */
  return hub_wait_fd(L, h, self, s->fd, FD_R, d, (lua_KContext)total, k);
}

/*
 * The tail of a receive loop that needs more bytes: READ_AGAIN when some
 * came (go round), else what the call returns: nil, "closed" | the error |
 * "timeout", or parked (continuing in k). want and cap as sock_read_more.
 */
#define READ_AGAIN (-1)
static int sock_more(lua_State *L, gh_sock *s, int64_t total, size_t want, size_t cap,
                     lua_KFunction k, const char *what) {
  if (s->fd < 0) return push_fail(L, "closed");
  if (worth_reading(s, total)) {
    ssize_t got = sock_read_more(L, s, want, cap);
    if (got > 0) return READ_AGAIN;
    if (got == 0) return push_fail(L, "closed");
    if (got == -2) return push_errno(L, errno);
  }
  int64_t d = wait_deadline(s, total);
  if (expired(d)) return push_fail(L, "timeout");
  return sock_park_read(L, s, d, total, k, what);
}

/* After an over-long line: drop input up to and including its '\n'.
   Returns 1 while still discarding (the buffer is then empty). */
static int discard_line(gh_sock *s) {
  ptrdiff_t nl = buf_find_line(&s->buf, 0);
  if (nl >= 0) {
    buf_consume(&s->buf, (size_t)nl + 1);
    s->discard = 0;
    return 0;
  }
  buf_consume(&s->buf, buf_len(&s->buf));
  return 1;
}

static int recv_k(lua_State *L, int status, lua_KContext ctx);

/* Serve the pattern from the buffer, reading more until it can. */
static int recv_step(lua_State *L, gh_sock *s, int64_t total) {
  int mode;
  size_t count, scanned = 0;
  parse_pattern(L, &mode, &count);
  int line = mode == P_LINE;
  for (;;) {
    if (s->discard) { discard_line(s); scanned = 0; }
    size_t len = buf_len(&s->buf), n, skip;
    switch (s->discard ? BUF_MORE
                       : buf_take(&s->buf, mode, count, s->line_max, &scanned, &n, &skip)) {
      case BUF_READY:
        push_data(L, s, n, skip, line);
        return recv_done(L);
      case BUF_TOOLONG:
        if (skip) buf_consume(&s->buf, n + skip); /* drop just that line */
        else { buf_free(&s->buf); s->discard = 1; } /* ... and its tail to come */
        return push_fail(L, "line too long");
      default:
        break;
    }
    if (s->fd < 0) return recv_fail(L, s, "closed", line);
    /* the last read came up short, so the socket is drained until epoll
       says otherwise: skip the recv that would only say EAGAIN, unless
       this call will not wait (a settimeout(0) poll must see new data) */
    if (!worth_reading(s, total)) goto wait;
    /* grow as data arrives: a huge count is not allocated up front */
    size_t want = 4096;
    if (mode == P_COUNT && count - len > want)
      want = count - len < (1u << 20) ? count - len : (1u << 20);
    if (line && s->line_max - len < want) want = s->line_max - len + 1;
    ssize_t got = sock_read_more(L, s, want, mode == P_COUNT ? count - len : 0);
    if (got > 0) continue;
    if (got == 0) {
      /* "*a": what arrived is the answer; nothing at all is "closed" */
      if (mode == P_ALL && buf_len(&s->buf) > 0 && !s->discard) {
        push_data(L, s, buf_len(&s->buf), 0, 0);
        return recv_done(L);
      }
      return recv_fail(L, s, "closed", line);
    }
    if (got == -2) return recv_fail(L, s, sock_strerror(errno), line);
  wait:;
    int64_t d = wait_deadline(s, total);
    if (expired(d)) return recv_fail(L, s, "timeout", line);
    return sock_park_read(L, s, d, total, recv_k, "receive");
  }
}

static int recv_k(lua_State *L, int status, lua_KContext ctx) {
  gh_sock *s = lua_touserdata(L, 1);
  gh_thread *self = hub_me(L, s->hub);
  (void)status;
  hub_check_intr(L, s->hub, self);
  int mode;
  size_t count;
  parse_pattern(L, &mode, &count);
  int line = mode == P_LINE;
  if (self->wake == WK_TIMEOUT) return recv_fail(L, s, "timeout", line);
  if (self->wake == WK_CLOSED || s->fd < 0) return recv_fail(L, s, "closed", line);
  return recv_step(L, s, (int64_t)ctx);
}

static int udp_receive(lua_State *L, gh_sock *s, int from);

static int sock_receive(lua_State *L) {
  gh_sock *s = sock_check(L, 1);
  if (s->type == SOCK_DGRAM) return udp_receive(L, s, 0);
  if (s->kind != K_CLIENT)
    return luaL_error(L, "greenhub: receive is not available on %s", sock_class(s));
  int mode;
  size_t count;
  parse_pattern(L, &mode, &count);
  if (!lua_isnoneornil(L, 3)) luaL_checktype(L, 3, LUA_TSTRING);
  lua_settop(L, 3);
  if (lua_isnil(L, 2)) { lua_pushliteral(L, "*l"); lua_replace(L, 2); }
  if (s->fd < 0 && buf_len(&s->buf) == 0) return recv_fail(L, s, "closed", 0);
  return recv_step(L, s, call_deadline(s));
}

static int partial_k(lua_State *L, int status, lua_KContext ctx);

/* receivepartial(max): whatever is buffered, or whatever arrives next,
   at most max bytes; nil, err when the peer closed or the wait ran out */
static int partial_step(lua_State *L, gh_sock *s, int64_t total) {
  size_t max = (size_t)lua_tointeger(L, 2);
  for (;;) {
    size_t len = buf_len(&s->buf);
    if (len > 0 && !s->discard) {
      size_t n = len < max ? len : max;
      lua_pushlstring(L, buf_head(&s->buf), n);
      buf_consume(&s->buf, n);
      return recv_done(L);
    }
    if (s->discard) buf_consume(&s->buf, len);
    int r = sock_more(L, s, total, max < (1u << 20) ? max : (1u << 20), max, partial_k,
                      "receivepartial");
    if (r != READ_AGAIN) return r;
    if (s->discard) discard_line(s);
  }
}

static int partial_k(lua_State *L, int status, lua_KContext ctx) {
  gh_sock *s = lua_touserdata(L, 1);
  (void)status;
  int r = wait_failed(L, s->hub);
  if (r) return r;
  return partial_step(L, s, (int64_t)ctx);
}

static int sock_receivepartial(lua_State *L) {
  gh_sock *s = sock_check(L, 1);
  if (s->type != SOCK_STREAM || s->kind != K_CLIENT)
    return luaL_error(L, "greenhub: receivepartial is not available on %s", sock_class(s));
  lua_Integer max = luaL_optinteger(L, 2, 65536);
  if (max < 1) return luaL_argerror(L, 2, "max must be positive");
  lua_settop(L, 1);
  lua_pushinteger(L, max);
  return partial_step(L, s, call_deadline(s));
}

/* ---------------------------------------------------------------- http */

/*
 * The HTTP head parser (http.c) run straight over the receive buffer.
 *   s:_httphead("request" | "response" [, max_line, max_head, max_headers
 *               [, request_method [, idle, header_timeout [, raw
 *               [, mt, conn [, inline_max]]]]]]) -> head
 *   head: method, target, version (1.0 | 1.1), status, reason, headers
 *   (lower-case name -> value, repeats joined with ", "), fields (the raw
 *   name/value list, in order, when asked for), _kind (the body's framing:
 *   "none" | "length" | "chunked" | "close"), _left (its length),
 *   keep_alive, expect_continue, upgrade. With inline_max, a body framed by
 *   a Content-Length of at most inline_max bytes that is already in the
 *   buffer comes as _body (_left stays its length). With mt, a request head
 *   becomes greenhub.http's request object (see push_head).
 * A rejected head: nil, why, status (the head is consumed). Socket
 * failures: nil, "closed" | "timeout" (a peer that closes before a byte of
 * a new head: nil, "closed", 0 bytes).
 */
static int head_k(lua_State *L, int status, lua_KContext ctx);

static void push_lower(lua_State *L, const char *p, size_t n) {
  char small[64];
  size_t i = 0;
  while (i < n && !(p[i] >= 'A' && p[i] <= 'Z')) i++;
  if (i == n) { lua_pushlstring(L, p, n); return; } /* already lower-case */
  if (n <= sizeof small) {
    for (i = 0; i < n; i++) small[i] = (char)((p[i] >= 'A' && p[i] <= 'Z') ? p[i] | 0x20 : p[i]);
    lua_pushlstring(L, small, n);
    return;
  }
  luaL_Buffer b;
  char *o = luaL_buffinitsize(L, &b, n);
  for (i = 0; i < n; i++) o[i] = (char)((p[i] >= 'A' && p[i] <= 'Z') ? p[i] | 0x20 : p[i]);
  luaL_pushresultsize(&b, n);
}

/* head.headers, and with raw also head.fields (then on top) from h */
static void push_fields(lua_State *L, const http_head *h, int raw_too) {
  lua_createtable(L, 0, (int)h->nheaders);
  int hdr = lua_gettop(L), raw = 0;
  if (raw_too) {
    lua_createtable(L, (int)h->nheaders * 2, 0);
    raw = hdr + 1;
  }
  for (size_t i = 0; i < h->nheaders; i++) {
    const http_header *f = &h->headers[i];
    if (raw) {
      lua_pushlstring(L, f->name, f->name_len);
      lua_rawseti(L, raw, (lua_Integer)(2 * i + 1));
      lua_pushlstring(L, f->value, f->value_len);
      lua_rawseti(L, raw, (lua_Integer)(2 * i + 2));
    }
    push_lower(L, f->name, f->name_len);
    lua_pushvalue(L, -1);
    if (lua_rawget(L, hdr) == LUA_TSTRING) { /* repeated: join */
      lua_pushliteral(L, ", ");
      lua_pushlstring(L, f->value, f->value_len);
      lua_concat(L, 3);
    } else {
      lua_pop(L, 1);
      lua_pushlstring(L, f->value, f->value_len);
    }
    lua_rawset(L, hdr);
  }
}

/*
 * The names a head table is built with, made once and kept as upvalue 2
 * of the functions that build heads (_httphead, _httpparse): setting a
 * field from one is a raw set with a ready string, where lua_setfield
 * would look the C string up again for every field of every request.
 */
enum { HK_METHOD = 1, HK_TARGET, HK_PATH, HK_QUERY, HK_CONN, HK_EXPECT,
       HK_DONE, HK_STATUS, HK_REASON, HK_VERSION, HK_HEADERS, HK_FIELDS, HK_KIND,
       HK_LEFT, HK_KEEP, HK_EXPECT_CONTINUE, HK_UPGRADE,
       HK_NONE, HK_LENGTH, HK_CHUNKED, HK_CLOSE, HK_BODY, HK_N = HK_BODY };
static const char *const head_keys[] = {
  NULL, "method", "target", "path", "query", "_conn", "_expect", "_done",
  "status", "reason", "version", "headers", "fields", "_kind", "_left", "keep_alive",
  "expect_continue", "upgrade", "none", "length", "chunked", "close", "_body"};

static void push_head_keys(lua_State *L) {
  lua_createtable(L, HK_N, 0);
  for (int i = 1; i <= HK_N; i++) {
    lua_pushstring(L, head_keys[i]);
    lua_rawseti(L, -2, i);
  }
}

#define HKEY(L, k) lua_rawgeti(L, lua_upvalueindex(2), k)
/* t[key] = the value on top (t a negative index counted before the key) */
static inline void hset(lua_State *L, int key) {
  HKEY(L, key);
  lua_insert(L, -2);
  lua_rawset(L, -3);
}

/* The head table of a parsed (and framed) head h. With mt (a stack
   index, or 0), a request head becomes greenhub.http's request object:
   path and query split off the target, _conn (the value at conn), _expect,
   _done for a bodiless request (then no _kind), _left only for a
   length-framed one, and mt as its metatable. */
static void push_head(lua_State *L, const http_head *h, int request, int raw, int mt, int conn) {
  lua_createtable(L, 0, mt ? 16 : 12); /* room for the fields greenhub.http adds */
  if (request) {
    lua_pushlstring(L, h->method, h->method_len); hset(L, HK_METHOD);
    lua_pushlstring(L, h->target, h->target_len); hset(L, HK_TARGET);
    if (mt) {
      const char *q = memchr(h->target, '?', h->target_len);
      if (q) {
        lua_pushlstring(L, h->target, (size_t)(q - h->target)); hset(L, HK_PATH);
        lua_pushlstring(L, q + 1, h->target_len - (size_t)(q + 1 - h->target));
        hset(L, HK_QUERY);
      } else {
        HKEY(L, HK_TARGET);
        lua_rawget(L, -2);
        hset(L, HK_PATH);
      }
      lua_pushvalue(L, conn); hset(L, HK_CONN);
      if (h->expect_continue && h->minor) { lua_pushboolean(L, 1); hset(L, HK_EXPECT); }
      if (h->body == HTTP_BODY_NONE) { lua_pushboolean(L, 1); hset(L, HK_DONE); }
      lua_pushvalue(L, mt);
      lua_setmetatable(L, -2);
    }
  } else {
    lua_pushinteger(L, h->status); hset(L, HK_STATUS);
    lua_pushlstring(L, h->reason, h->reason_len); hset(L, HK_REASON);
  }
  lua_pushnumber(L, h->minor ? 1.1 : 1.0); hset(L, HK_VERSION);
  push_fields(L, h, raw);
  if (raw) { /* the raw list is on top, the headers under it */
    HKEY(L, HK_FIELDS);
    lua_insert(L, -2);
    lua_rawset(L, -4);
  }
  hset(L, HK_HEADERS);
  /* the body's framing and length, under the names greenhub.http's
     request and response objects use (the head becomes that object) */
  if (!mt || h->body != HTTP_BODY_NONE) { /* a request object: absent reads as none */
    HKEY(L, HK_NONE + h->body); hset(L, HK_KIND);
  }
  if (!mt || h->body == HTTP_BODY_LENGTH) { lua_pushinteger(L, (lua_Integer)h->length); hset(L, HK_LEFT); }
  lua_pushboolean(L, h->keep_alive); hset(L, HK_KEEP);
  /* rare ones only when set (absent reads as false) */
  if (h->expect_continue) { lua_pushboolean(L, 1); hset(L, HK_EXPECT_CONTINUE); }
  if (h->upgrade) { lua_pushboolean(L, 1); hset(L, HK_UPGRADE); }
}

/*
 * The same parser over a Lua string (streams that are not green sockets:
 * TLS). _httpparse(str, "request"|"response", max_line, max_head,
 * max_headers [, request_method [, raw [, mt, conn]]]) -> head, length | nil, why,
 * status | nil (more bytes needed).
 */
static int l_httpparse(lua_State *L) {
  size_t len;
  const char *str = luaL_checklstring(L, 1, &len);
  static const char *const kinds[] = {"request", "response", NULL};
  int request = luaL_checkoption(L, 2, NULL, kinds) == 0;
  lua_Integer mx = luaL_checkinteger(L, 5);
  luaL_argcheck(L, mx > 0 && mx <= 256, 5, "must be 1 to 256");
  http_header hs[256];
  http_head h;
  memset(&h, 0, sizeof h);
  h.max_line = (size_t)luaL_checkinteger(L, 3);
  h.max_head = (size_t)luaL_checkinteger(L, 4);
  h.max_headers = (size_t)mx;
  h.headers = hs;
  int r = request ? http_parse_request(str, len, &h) : http_parse_response(str, len, &h);
  if (r > 0 && http_framing(&h, request, luaL_optstring(L, 6, NULL)) < 0) r = HTTP_BAD;
  if (r == HTTP_MORE) return 0;
  if (r == HTTP_BAD) {
    lua_pushnil(L);
    lua_pushstring(L, h.why);
    lua_pushinteger(L, h.error);
    return 3;
  }
  lua_settop(L, 9);
  push_head(L, &h, request, lua_toboolean(L, 7), lua_istable(L, 8) ? 8 : 0, 9);
  lua_pushinteger(L, r);
  return 2;
}

/* _httpchunkstr(decoder, str [, max]) -> "data", data, used |
   "end", trailer fields, used | "more", used | nil, why */
static int l_httpchunkstr(lua_State *L) {
  http_chunked *c = luaL_checkudata(L, 1, "greenhub.httpchunked");
  size_t len, used, off, dl;
  const char *str = luaL_checklstring(L, 2, &len);
  lua_Integer max = luaL_optinteger(L, 3, 65536);
  luaL_argcheck(L, max > 0, 3, "must be positive");
  int r = http_chunk_step(c, str, len, (size_t)max, &used, &off, &dl);
  if (r == HTTP_CHUNK_DATA) {
    lua_pushliteral(L, "data");
    lua_pushlstring(L, str + off, dl);
    lua_pushinteger(L, (lua_Integer)used);
    return 3;
  }
  if (r == HTTP_CHUNK_END) {
    http_header hs[128];
    http_head h;
    memset(&h, 0, sizeof h);
    h.max_headers = 128;
    h.headers = hs;
    if (http_parse_trailers(str + off, dl, &h) < 0) {
      lua_pushnil(L);
      lua_pushstring(L, h.why);
      return 2;
    }
    lua_pushliteral(L, "end");
    push_fields(L, &h, 1);
    lua_remove(L, -2);
    lua_pushinteger(L, (lua_Integer)used);
    return 3;
  }
  if (r == HTTP_BAD) {
    lua_pushnil(L);
    lua_pushstring(L, c->why);
    return 2;
  }
  lua_pushliteral(L, "more");
  lua_pushinteger(L, (lua_Integer)used);
  return 2;
}

/*
 * A growable byte buffer that starts on the C stack and moves into a
 * userdata at a fixed stack slot when it outgrows it (unlike luaL_Buffer
 * it does not need the top of the stack, so lua_next can run while it
 * grows; an error frees it with the stack).
 */
typedef struct { char *p; size_t n, cap; int slot; } hbuf;

static void hb_init(lua_State *L, hbuf *b, char *stack, size_t cap) {
  lua_pushnil(L); /* the slot a grown buffer lives in */
  b->p = stack;
  b->n = 0;
  b->cap = cap;
  b->slot = lua_gettop(L);
}

static void hb_grow(lua_State *L, hbuf *b, size_t n) {
  size_t cap = b->cap * 2;
  while (cap < b->n + n) cap *= 2;
  char *np = lua_newuserdatauv(L, cap, 0);
  memcpy(np, b->p, b->n);
  lua_replace(L, b->slot);
  b->p = np;
  b->cap = cap;
}

static inline void hb_add(lua_State *L, hbuf *b, const char *s, size_t n) {
  if (b->n + n > b->cap) hb_grow(L, b, n);
  memcpy(b->p + b->n, s, n);
  b->n += n;
}

/* a non-negative integer in decimal */
static void hb_uint(lua_State *L, hbuf *b, unsigned long long v) {
  char d[24];
  int i = (int)sizeof d;
  do { d[--i] = (char)('0' + v % 10); v /= 10; } while (v);
  hb_add(L, b, d + i, sizeof d - (size_t)i);
}

/* one "name: value\r\n" line, checked: no CR, LF or NUL in the value */
static void add_field(lua_State *L, hbuf *b, const char *name, size_t nn, int vidx) {
  size_t vn;
  const char *v;
  int pushed = lua_type(L, vidx) != LUA_TSTRING;
  v = pushed ? luaL_tolstring(L, vidx, &vn) : lua_tolstring(L, vidx, &vn);
  if (memchr(v, '\r', vn) || memchr(v, '\n', vn) || memchr(v, '\0', vn))
    luaL_error(L, "http: response header %s holds CR, LF or NUL", name);
  hb_add(L, b, name, nn);
  hb_add(L, b, ": ", 2);
  hb_add(L, b, v, vn);
  hb_add(L, b, "\r\n", 2);
  if (pushed) lua_pop(L, 1);
}

/* "Date: <IMF-fixdate>\r\n", rebuilt once a second */
static const char *date_line(size_t *n) {
  static _Thread_local time_t last = -1;
  static _Thread_local char line[64];
  static _Thread_local size_t len;
  time_t now = time(NULL);
  if (now != last) {
    static const char days[] = "SunMonTueWedThuFriSat";
    static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    struct tm tm;
    gmtime_r(&now, &tm); /* the names by hand: strftime's follow the locale */
    len = (size_t)snprintf(line, sizeof line, "Date: %.3s, %02d %.3s %04d %02d:%02d:%02d GMT\r\n",
                           days + 3 * tm.tm_wday, tm.tm_mday, months + 3 * tm.tm_mon,
                           tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
    last = now;
  }
  *n = len;
  return line;
}

/*
 * The response-head writer. _httpresponse(status, reason, headers, length,
 * bodyless, minor, keep [, body]) -> head, chunked, keep, handler_length
 *   length: the body's length when known (a computed Content-Length), or
 *   nil: chunked for 1.1, close-delimited for 1.0. A Content-Length the
 *   handler set wins (and is returned, to be enforced). Date is added
 *   unless set; Connection: close / keep-alive as the framing needs. A body
 *   given comes back after the head, in the same string (not when
 *   bodyless).
 */
/* Build the response at stack slots a..a+7 into b (at slot a+8); the
   framing in *chunked, *keep, *handler_len (-1: none set). */
typedef struct { int chunked, keep; lua_Integer handler_len; } resp_info;

static void resp_build(lua_State *L, int a, hbuf *b, char *stack, size_t cap, resp_info *ri) {
  lua_Integer status = luaL_checkinteger(L, a);
  if (status < 100 || status > 999) luaL_error(L, "http: bad response status %d", (int)status);
  size_t rn, bn = 0;
  const char *reason = luaL_checklstring(L, a + 1, &rn);
  luaL_checktype(L, a + 2, LUA_TTABLE);
  int has_length = !lua_isnil(L, a + 3);
  lua_Integer length = has_length ? luaL_checkinteger(L, a + 3) : 0;
  int bodyless = lua_toboolean(L, a + 4), minor = (int)luaL_checkinteger(L, a + 5), keep = lua_toboolean(L, a + 6);
  const char *body = luaL_optlstring(L, a + 7, NULL, &bn);
  int has_cl = 0, has_date = 0, has_conn = 0;
  lua_Integer handler_len = -1;
  lua_settop(L, a + 7);
  hb_init(L, b, stack, cap);                               /* slot a + 8 */
  char line[16] = "HTTP/1.1 ";
  line[9] = (char)('0' + status / 100);
  line[10] = (char)('0' + status / 10 % 10);
  line[11] = (char)('0' + status % 10);
  line[12] = ' ';
  hb_add(L, b, line, 13);
  hb_add(L, b, reason, rn);
  hb_add(L, b, "\r\n", 2);
  lua_pushnil(L);
  while (lua_next(L, a + 2)) {
    size_t nn;
    if (lua_type(L, -2) != LUA_TSTRING) luaL_error(L, "http: response header names must be strings");
    const char *name = lua_tolstring(L, -2, &nn);
    if (nn == 0) luaL_error(L, "http: empty response header name");
    for (size_t i = 0; i < nn; i++)
      if (!http_tchar[(unsigned char)name[i]]) luaL_error(L, "http: bad response header name '%s'", name);
    switch (name[0] | 0x20) { /* the names the framing looks at */
      case 't':
        if (http_token_eq(name, nn, "transfer-encoding"))
          luaL_error(L, "http: the server frames the body; do not set Transfer-Encoding");
        break;
      case 'c':
        if (http_token_eq(name, nn, "content-length")) {
          const char *v = lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER
                              ? lua_tostring(L, -1) : NULL;
          has_cl = 1;
          handler_len = v ? (lua_Integer)strtoll(v, NULL, 10) : -1;
        } else if (http_token_eq(name, nn, "connection")) has_conn = 1;
        break;
      case 'd':
        if (http_token_eq(name, nn, "date")) has_date = 1;
        break;
    }
    int v = lua_gettop(L);
    if (lua_type(L, v) == LUA_TTABLE) {
      lua_Integer k = luaL_len(L, v);
      for (lua_Integer i = 1; i <= k; i++) {
        lua_rawgeti(L, v, i);
        add_field(L, b, name, nn, lua_gettop(L));
        lua_pop(L, 1);
      }
    } else {
      add_field(L, b, name, nn, v);
    }
    lua_pop(L, 1);
  }
  if (!has_date) {
    size_t dn;
    const char *d = date_line(&dn);
    hb_add(L, b, d, dn);
  }
  int chunked = 0, close = !keep;
  if (bodyless) {
    /* no body, no framing (HEAD and 304 keep a Content-Length set) */
  } else if (has_cl) {
    /* the handler's, enforced by the caller */
  } else if (has_length) {
    hb_add(L, b, "Content-Length: ", 16);
    hb_uint(L, b, (unsigned long long)(length < 0 ? 0 : length));
    hb_add(L, b, "\r\n", 2);
  } else if (minor >= 1) {
    chunked = 1;
    hb_add(L, b, "Transfer-Encoding: chunked\r\n", 28);
  } else {
    close = 1; /* close-delimited for HTTP/1.0 */
  }
  if (close && !has_conn) hb_add(L, b, "Connection: close\r\n", 19);
  else if (!close && minor == 0) hb_add(L, b, "Connection: keep-alive\r\n", 24);
  hb_add(L, b, "\r\n", 2);
  if (body && !bodyless) hb_add(L, b, body, bn);
  ri->chunked = chunked;
  ri->keep = !close;
  ri->handler_len = has_cl && handler_len >= 0 ? handler_len : -1;
}

static int push_resp_info(lua_State *L, const resp_info *ri) {
  lua_pushboolean(L, ri->chunked);
  lua_pushboolean(L, ri->keep);
  if (ri->handler_len >= 0) lua_pushinteger(L, ri->handler_len); else lua_pushnil(L);
  return 3;
}

static int l_httpresponse(lua_State *L) {
  char stack[1024];
  hbuf b;
  resp_info ri;
  resp_build(L, 1, &b, stack, sizeof stack, &ri);
  lua_pushlstring(L, b.p, b.n);
  return 1 + push_resp_info(L, &ri);
}

/*
 * s:_httpsend(status, reason, headers, length, bodyless, minor, keep
 * [, body]) -> rest, chunked, keep, handler_length: the same response
 * written straight from C to the socket as far as it goes without
 * waiting; rest is what is left for s:send ("" when all went), or nil,
 * err on a failed socket.
 */
static int sock_httpsend(lua_State *L) {
  gh_sock *s = sock_check(L, 1);
  if (s->type != SOCK_STREAM || s->kind != K_CLIENT)
    return luaL_error(L, "greenhub: httpsend is not available on %s", sock_class(s));
  char stack[1024];
  hbuf b;
  resp_info ri;
  resp_build(L, 2, &b, stack, sizeof stack, &ri);
  size_t done = 0;
  if (!s->coalesce && buf_len(&s->out) == 0 && !s->out_err) {
    while (done < b.n) {
      if (s->fd < 0) return push_fail(L, "closed");
      ssize_t n = s->plain ? write(s->fd, b.p + done, b.n - done)
                           : send(s->fd, b.p + done, b.n - done, MSG_NOSIGNAL);
      if (n >= 0) { done += (size_t)n; s->nsent += (double)n; continue; }
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) return push_fail(L, sock_strerror(errno));
      break;
    }
  }
  lua_pushlstring(L, b.p + done, b.n - done);
  return 1 + push_resp_info(L, &ri);
}

static int head_step(lua_State *L, gh_sock *s, int64_t total) {
  lua_settop(L, 13);
  int request = strcmp(lua_tostring(L, 2), "request") == 0;
  http_header hs[256];
  http_head h;
  memset(&h, 0, sizeof h);
  h.max_line = (size_t)lua_tointeger(L, 3);
  h.max_head = (size_t)lua_tointeger(L, 4);
  h.max_headers = (size_t)lua_tointeger(L, 5);
  h.headers = hs;
  for (;;) {
    size_t len = buf_len(&s->buf);
    int r = HTTP_MORE;
    if (len > 0) r = request ? http_parse_request(buf_head(&s->buf), len, &h)
                             : http_parse_response(buf_head(&s->buf), len, &h);
    if (r > 0 && http_framing(&h, request, lua_tostring(L, 6)) < 0) r = HTTP_BAD;
    if (r == HTTP_BAD) {
      buf_consume(&s->buf, buf_len(&s->buf));
      lua_pushnil(L);
      lua_pushstring(L, h.why);
      lua_pushinteger(L, h.error);
      return 3;
    }
    if (r > 0) {
      push_head(L, &h, request, lua_toboolean(L, 12), lua_istable(L, 10) ? 10 : 0, 11);
      buf_consume(&s->buf, (size_t)r);
      /* a small length-framed body already here comes along as _body */
      if (h.body == HTTP_BODY_LENGTH && h.length <= (uint64_t)lua_tointeger(L, 13) &&
          buf_len(&s->buf) >= h.length) {
        lua_pushlstring(L, buf_head(&s->buf), (size_t)h.length);
        hset(L, HK_BODY);
        buf_consume(&s->buf, (size_t)h.length);
      }
      return 1;
    }
    /* more bytes needed */
    if (s->fd < 0) return push_fail(L, "closed");
    if (worth_reading(s, total)) {
      ssize_t got = sock_read_more(L, s, 4096, 0);
      if (got > 0) continue;
      if (got == 0) {
        lua_pushnil(L);
        lua_pushliteral(L, "closed");
        lua_pushinteger(L, (lua_Integer)buf_len(&s->buf)); /* bytes of a head cut short */
        return 3;
      }
      if (got == -2) return push_errno(L, errno);
    }
    /* the server's idle timeout until a byte of the head is here, then
       its header timeout (from that first byte); else the socket's own */
    int64_t d = wait_deadline(s, total);
    if (!lua_isnil(L, 7)) {
      if (buf_len(&s->buf) == 0) d = (int64_t)lua_tointeger(L, 7);
      else {
        if (lua_isnil(L, 9)) {
          lua_pushinteger(L, lua_isnil(L, 8) ? -1 : hub_after(lua_tonumber(L, 8)));
          lua_replace(L, 9);
        }
        d = (int64_t)lua_tointeger(L, 9);
      }
    }
    if (expired(d)) {
      lua_pushnil(L);
      lua_pushliteral(L, "timeout");
      lua_pushinteger(L, (lua_Integer)buf_len(&s->buf)); /* 0: idle; else a slow head */
      return 3;
    }
    return sock_park_read(L, s, d, total, head_k, "receive");
  }
}

static int head_k(lua_State *L, int status, lua_KContext ctx) {
  gh_sock *s = lua_touserdata(L, 1);
  (void)status;
  int r = wait_failed(L, s->hub);
  if (r && hub_me(L, s->hub)->wake == WK_TIMEOUT) { /* as head_step says it */
    lua_pushinteger(L, (lua_Integer)buf_len(&s->buf));
    return 3;
  }
  return r ? r : head_step(L, s, (int64_t)ctx);
}

static int sock_httphead(lua_State *L) {
  gh_sock *s = sock_check(L, 1);
  static const char *const kinds[] = {"request", "response", NULL};
  luaL_checkoption(L, 2, NULL, kinds);
  lua_Integer ml = luaL_optinteger(L, 3, 8192), mh = luaL_optinteger(L, 4, 65536);
  lua_Integer mx = luaL_optinteger(L, 5, 100);
  luaL_argcheck(L, ml > 0, 3, "must be positive");
  luaL_argcheck(L, mh > 0, 4, "must be positive");
  luaL_argcheck(L, mx > 0 && mx <= 256, 5, "must be 1 to 256");
  luaL_optstring(L, 6, NULL);
  /* 7: idle timeout, 8: header timeout (seconds; nil = none), 9: want
     head.fields (the raw list) too */
  double idle = luaL_optnumber(L, 7, -1), header = luaL_optnumber(L, 8, -1);
  int want_fields = lua_toboolean(L, 9);
  lua_Integer inline_max = luaL_optinteger(L, 12, 0);
  if (s->type != SOCK_STREAM || s->kind != K_CLIENT)
    return luaL_error(L, "greenhub: httphead is not available on %s", sock_class(s));
  if (!lua_isnoneornil(L, 10)) luaL_checktype(L, 10, LUA_TTABLE);
  lua_settop(L, 11);
  lua_pushinteger(L, ml); lua_replace(L, 3);
  lua_pushinteger(L, mh); lua_replace(L, 4);
  lua_pushinteger(L, mx); lua_replace(L, 5);
  lua_pushboolean(L, want_fields);                                            /* 12 */
  lua_pushinteger(L, inline_max);                                             /* 13 */
  if (idle >= 0 || header >= 0) {
    lua_pushinteger(L, idle >= 0 && idle != HUGE_VAL ? hub_after(idle) : -1);
    lua_replace(L, 7);
    if (header >= 0 && header != HUGE_VAL) lua_pushnumber(L, header); else lua_pushnil(L);
    lua_replace(L, 8);
    if (buf_len(&s->buf) > 0 && header >= 0 && header != HUGE_VAL)
      lua_pushinteger(L, hub_after(header));
    else if (buf_len(&s->buf) > 0) lua_pushinteger(L, -1);
    else lua_pushnil(L);
    lua_replace(L, 9);
  } else {
    lua_pushnil(L); lua_replace(L, 7);
    lua_pushnil(L); lua_replace(L, 8);
    lua_pushnil(L); lua_replace(L, 9);
  }
  return head_step(L, s, call_deadline(s));
}

/*
 * Chunked bodies: core.httpchunked([max_line [, max_trailers]]) -> decoder;
 * s:_httpchunk(decoder [, max=65536]) -> the next piece of body data, or
 * nil, "end", trailers (a field list as head.fields, parsed with the header
 * rules), or nil, err (a malformed body: nil, why, 400; socket: nil,
 * "closed" | "timeout").
 */
#define CHUNKED_MT "greenhub.httpchunked"

static int l_httpchunked(lua_State *L) {
  lua_Integer ml = luaL_optinteger(L, 1, 4096), mt = luaL_optinteger(L, 2, 65536);
  luaL_argcheck(L, ml > 0, 1, "must be positive");
  luaL_argcheck(L, mt > 0, 2, "must be positive");
  http_chunked *c = lua_newuserdatauv(L, sizeof *c, 0);
  http_chunked_init(c, (size_t)ml, (size_t)mt);
  luaL_setmetatable(L, CHUNKED_MT);
  return 1;
}

static int chunk_k(lua_State *L, int status, lua_KContext ctx);

static int chunk_step(lua_State *L, gh_sock *s, int64_t total) {
  http_chunked *c = lua_touserdata(L, 2);
  size_t max = (size_t)lua_tointeger(L, 3);
  for (;;) {
    size_t len = buf_len(&s->buf), used = 0, off, dl;
    const char *bh = len ? buf_head(&s->buf) : ""; /* never NULL */
    int r = http_chunk_step(c, bh, len, max, &used, &off, &dl);
    if (r == HTTP_CHUNK_DATA) {
      lua_pushlstring(L, bh + off, dl);
      buf_consume(&s->buf, used);
      return recv_done(L);
    }
    if (r == HTTP_CHUNK_END) {
      http_header hs[128];
      http_head h;
      memset(&h, 0, sizeof h);
      h.max_headers = 128;
      h.headers = hs;
      if (http_parse_trailers(bh + off, dl, &h) < 0) {
        buf_consume(&s->buf, used);
        lua_pushnil(L);
        lua_pushstring(L, h.why);
        lua_pushinteger(L, 400);
        return 3;
      }
      lua_pushnil(L);
      lua_pushliteral(L, "end");
      push_fields(L, &h, 1);
      lua_remove(L, -2); /* keep the raw field list only */
      buf_consume(&s->buf, used);
      return 3;
    }
    if (r == HTTP_BAD) {
      lua_pushnil(L);
      lua_pushstring(L, c->why);
      lua_pushinteger(L, 400);
      return 3;
    }
    buf_consume(&s->buf, used);
    int more = sock_more(L, s, total, 4096, 0, chunk_k, "receive");
    if (more != READ_AGAIN) return more;
  }
}

static int chunk_k(lua_State *L, int status, lua_KContext ctx) {
  gh_sock *s = lua_touserdata(L, 1);
  (void)status;
  int r = wait_failed(L, s->hub);
  return r ? r : chunk_step(L, s, (int64_t)ctx);
}

static int sock_httpchunk(lua_State *L) {
  gh_sock *s = sock_check(L, 1);
  luaL_checkudata(L, 2, CHUNKED_MT);
  lua_Integer max = luaL_optinteger(L, 3, 65536);
  luaL_argcheck(L, max > 0, 3, "must be positive");
  if (s->type != SOCK_STREAM || s->kind != K_CLIENT)
    return luaL_error(L, "greenhub: httpchunk is not available on %s", sock_class(s));
  lua_settop(L, 2);
  lua_pushinteger(L, max);
  return chunk_step(L, s, call_deadline(s));
}

/* ---------------------------------------------------------------- send */

static int send_k(lua_State *L, int status, lua_KContext ctx);

/* nil, err, index of the last byte sent */
static int send_fail(lua_State *L, const char *err, lua_Integer done) {
  lua_pushnil(L);
  lua_pushstring(L, err);
  lua_pushinteger(L, done);
  return 3;
}

/* Park until s is writable (or nil, "timeout", done at once). */
static int send_wait(lua_State *L, gh_sock *s, int64_t total, lua_Integer done) {
  int64_t d = wait_deadline(s, total);
  if (expired(d)) return send_fail(L, "timeout", done);
  gh_hub *h = s->hub;
  return hub_wait_fd(L, h, hub_self(L, h, "send"), s->fd, FD_W, d,
                     (lua_KContext)total, send_k);
}

/* Stack: sock, data, i, j, done (index of the last byte sent). */
static int send_step(lua_State *L, gh_sock *s, int64_t total) {
  size_t len;
  const char *data = lua_tolstring(L, 2, &len);
  lua_Integer end = lua_tointeger(L, 4);
  lua_Integer done = lua_tointeger(L, 5);
  if (s->out_err) { /* a background flush failed: say so, once */
    int e = s->out_err;
    s->out_err = 0;
    return send_fail(L, sock_strerror(e), done);
  }
  if (s->coalesce && s->fd >= 0) {
    size_t n = (size_t)(end - done);
    if (buf_len(&s->out) + n <= COALESCE_MAX) {
      if (n > 0) {
        if (!buf_reserve(&s->out, n)) return luaL_error(L, "greenhub: out of memory");
        memcpy(s->out.data + s->out.last, data + done, n);
        buf_commit(&s->out, n);
        s->nsent += (double)n;
        if (!link_linked(&s->flushq)) link_push(&s->hub->flushq, &s->flushq);
      }
      lua_pushinteger(L, end);
      return 1;
    }
  }
  /* what was collected before goes first */
  while (buf_len(&s->out) > 0) {
    if (out_write(s)) {
      out_unwatch(s);
      if (link_linked(&s->flushq)) link_remove(&s->flushq);
      if (s->out_err) return send_step(L, s, total);
      break;
    }
    return send_wait(L, s, total, done);
  }
  while (done < end) {
    if (s->fd < 0) goto fail_closed;
    ssize_t n = s->plain ? write(s->fd, data + done, (size_t)(end - done))
                         : send(s->fd, data + done, (size_t)(end - done), MSG_NOSIGNAL);
    if (n >= 0) {
      done += n;
      s->nsent += (double)n;
      continue;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return send_fail(L, sock_strerror(errno), done);
    lua_pushinteger(L, done);
    lua_replace(L, 5);
    return send_wait(L, s, total, done);
  }
  lua_pushinteger(L, done);
  return 1;
fail_closed:
  return send_fail(L, "closed", done);
}

static int send_k(lua_State *L, int status, lua_KContext ctx) {
  gh_sock *s = lua_touserdata(L, 1);
  gh_thread *self = hub_me(L, s->hub);
  (void)status;
  hub_check_intr(L, s->hub, self);
  if (self->wake != WK_OK || s->fd < 0)
    return send_fail(L, self->wake == WK_TIMEOUT ? "timeout" : "closed", lua_tointeger(L, 5));
  return send_step(L, s, (int64_t)ctx);
}

static int udp_send(lua_State *L, gh_sock *s, int to);

static int sock_send(lua_State *L) {
  gh_sock *s = sock_check(L, 1);
  if (s->type == SOCK_DGRAM) return udp_send(L, s, 0);
  if (s->kind != K_CLIENT)
    return luaL_error(L, "greenhub: send is not available on %s", sock_class(s));
  size_t len;
  luaL_checklstring(L, 2, &len);
  lua_Integer i = luaL_optinteger(L, 3, 1);
  lua_Integer j = luaL_optinteger(L, 4, -1);
  lua_Integer n = (lua_Integer)len;
  if (i < 0) i = n + i + 1;
  if (j < 0) j = n + j + 1;
  if (i < 1) i = 1;
  if (j > n) j = n;
  lua_settop(L, 2);
  lua_pushinteger(L, i);
  lua_pushinteger(L, j < i - 1 ? i - 1 : j);
  lua_pushinteger(L, i - 1);
  return send_step(L, s, call_deadline(s));
}

/* ---------------------------------------------------------------- addresses */

static int push_sockaddr(lua_State *L, const struct sockaddr *sa, socklen_t len) {
  char ip[INET6_ADDRSTRLEN];
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *a = (const void *)sa;
    inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
    lua_pushstring(L, ip);
    lua_pushinteger(L, ntohs(a->sin_port));
    lua_pushliteral(L, "inet");
    return 3;
  }
  if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *a = (const void *)sa;
    inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
    lua_pushstring(L, ip);
    lua_pushinteger(L, ntohs(a->sin6_port));
    lua_pushliteral(L, "inet6");
    return 3;
  }
  if (sa->sa_family == AF_UNIX) {
    const struct sockaddr_un *a = (const void *)sa;
    size_t n = len > offsetof(struct sockaddr_un, sun_path)
                   ? strnlen(a->sun_path, len - offsetof(struct sockaddr_un, sun_path)) : 0;
    lua_pushlstring(L, a->sun_path, n);
    return 1;
  }
  return push_fail(L, "unknown family");
}

static int sock_getname(lua_State *L, int peer) {
  gh_sock *s = sock_check(L, 1);
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  if (s->fd < 0) return push_fail(L, "closed");
  int r = peer ? getpeername(s->fd, (struct sockaddr *)&ss, &len)
               : getsockname(s->fd, (struct sockaddr *)&ss, &len);
  if (r < 0) return push_errno(L, errno);
  return push_sockaddr(L, (struct sockaddr *)&ss, len);
}
static int sock_getpeername(lua_State *L) { return sock_getname(L, 1); }
static int sock_getsockname(lua_State *L) { return sock_getname(L, 0); }

static int family_of(const gh_sock *s) {
  return s->family == AF_UNSPEC ? AF_UNSPEC : s->family;
}

/* Port argument as a service string ("0" for none). */
static const char *port_arg(lua_State *L, int arg, char *buf, size_t n) {
  if (lua_type(L, arg) == LUA_TNUMBER) {
    lua_Integer p = luaL_checkinteger(L, arg);
    if (p < 0 || p > 65535) luaL_argerror(L, arg, "port out of range");
    snprintf(buf, n, "%d", (int)p);
    return buf;
  }
  if (lua_isnoneornil(L, arg)) return "0";
  return luaL_checkstring(L, arg);
}

static int unix_addr(lua_State *L, int arg, struct sockaddr_un *a, socklen_t *len) {
  size_t n;
  const char *path = luaL_checklstring(L, arg, &n);
  if (n >= sizeof a->sun_path) luaL_argerror(L, arg, "path too long");
  memset(a, 0, sizeof *a);
  a->sun_family = AF_UNIX;
  memcpy(a->sun_path, path, n);
  *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
  return 0;
}

/* ---------------------------------------------------------------- bind */

static int bind_k(lua_State *L, int status, lua_KContext ctx) {
  gh_sock *s = lua_touserdata(L, 1);
  (void)status;
  hub_check_intr(L, s->hub, hub_me(L, s->hub));
  /* stack: sock host port addrs err */
  if (lua_isnil(L, -2)) return 2;
  int err = EAFNOSUPPORT;
  lua_Integer n = (lua_Integer)lua_rawlen(L, -2);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, -2, i);
    size_t alen;
    const struct sockaddr *sa = (const void *)lua_tolstring(L, -1, &alen);
    lua_pop(L, 1);
    int created = 0;
    if (s->fd < 0) {
      if (sock_create_fd(s, sa->sa_family) < 0) { err = errno; continue; }
      created = 1;
    } else if (sa->sa_family != s->family) {
      continue;
    }
    if (ctx) { int on = 1; setsockopt(s->fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on); }
    if (bind(s->fd, sa, (socklen_t)alen) == 0) {
      if (alen <= sizeof s->bound) { memcpy(&s->bound, sa, alen); s->boundlen = (socklen_t)alen; }
      lua_pushinteger(L, 1);
      return 1;
    }
    err = errno;
    if (created) sock_close_fd(s);
  }
  return push_errno(L, err);
}

/* bind(host, port): host "*" = any address. */
static int sock_bind(lua_State *L) {
  gh_sock *s = sock_check(L, 1);
  if (s->kind != K_MASTER && s->kind != K_UNCONNECTED)
    return luaL_error(L, "greenhub: bind is not available on %s", sock_class(s));
  if (s->family == AF_UNIX) {
    struct sockaddr_un a;
    socklen_t len;
    unix_addr(L, 2, &a, &len);
    if (bind(s->fd, (struct sockaddr *)&a, len) < 0) return push_errno(L, errno);
    lua_pushinteger(L, 1);
    return 1;
  }
  char pb[16];
  const char *host = luaL_checkstring(L, 2);
  const char *port = port_arg(L, 3, pb, sizeof pb);
  lua_settop(L, 3);
  return resolver_lookup(L, s->hub, host, port, family_of(s), s->type, 1,
                         call_deadline(s), 0, bind_k);
}

/* internal: bind with SO_REUSEADDR set first (socket.bind, gh.listen) */
static int sock_bind_reuse(lua_State *L) {
  gh_sock *s = sock_check(L, 1);
  char pb[16];
  const char *host = luaL_checkstring(L, 2);
  const char *port = port_arg(L, 3, pb, sizeof pb);
  lua_settop(L, 3);
  return resolver_lookup(L, s->hub, host, port, family_of(s), s->type, 1,
                         call_deadline(s), 1, bind_k);
}

static int sock_listen(lua_State *L) {
  gh_sock *s = sock_need(L, 1 << K_MASTER, SOCK_STREAM, "listen");
  int backlog = (int)luaL_optinteger(L, 2, 32);
  if (s->fd < 0 && sock_create_fd(s, AF_INET) < 0) return push_errno(L, errno);
  if (listen(s->fd, backlog) < 0) return push_errno(L, errno);
  s->kind = K_SERVER;
  sock_setclass(L, 1, s);
  lua_pushinteger(L, 1);
  return 1;
}

/* ---------------------------------------------------------------- connect */

static int connect_next(lua_State *L, gh_sock *s, int64_t total);

static int connect_done(lua_State *L, gh_sock *s) {
  s->kind = s->type == SOCK_DGRAM ? K_CONNECTED : K_CLIENT;
  sock_setclass(L, 1, s);
  lua_pushinteger(L, 1);
  return 1;
}

static int connect_wait_k(lua_State *L, int status, lua_KContext ctx) {
  gh_sock *s = lua_touserdata(L, 1);
  (void)status;
  int r = wait_failed(L, s->hub);
  if (r) return r;
  if (s->fd < 0) return push_fail(L, "closed");
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
  if (err == 0) return connect_done(L, s);
  lua_pushinteger(L, err);
  lua_replace(L, 6);
  if (s->kind == K_MASTER && s->type == SOCK_STREAM) sock_close_fd(s);
  return connect_next(L, s, (int64_t)ctx);
}

/*
 * A failed TCP connect leaves its socket unusable: the next address gets a
 * fresh fd, with what the user did to the old one (options, bind) done
 * again, so a retry still connects from the address the user bound.
 */
static int sock_recreate(gh_sock *s, int family) {
  if (sock_create_fd(s, family) < 0) return -1;
  for (int i = 0; i < s->nopts; i++)
    setsockopt(s->fd, s->opts[i].level, s->opts[i].opt, &s->opts[i].val, sizeof(int));
  if (s->boundlen && bind(s->fd, (struct sockaddr *)&s->bound, s->boundlen) < 0) {
    int e = errno;
    sock_close_fd(s);
    errno = e;
    return -1;
  }
  return 0;
}

/* Stack: sock host port addrs nil index lasterr. Try each address. */
static int connect_next(lua_State *L, gh_sock *s, int64_t total) {
  lua_Integer n = (lua_Integer)lua_rawlen(L, 4);
  lua_Integer i = lua_tointeger(L, 7);
  int err = (int)lua_tointeger(L, 6);
  for (; i <= n; i++) {
    lua_rawgeti(L, 4, i);
    size_t alen;
    const struct sockaddr *sa = (const void *)lua_tolstring(L, -1, &alen);
    lua_pop(L, 1);
    if (s->boundlen && sa->sa_family != s->bound.ss_family) {
      err = EAFNOSUPPORT; /* bound to another family: cannot reach this one */
      continue;
    }
    if (s->fd < 0) {
      if (sock_recreate(s, sa->sa_family) < 0) { err = errno; continue; }
    } else if (sa->sa_family != s->family) {
      err = EAFNOSUPPORT;
      continue;
    }
    int r = connect(s->fd, sa, (socklen_t)alen);
    if (r == 0) return connect_done(L, s);
    /* interrupted, the connect goes on in the background (calling it again
       would say EALREADY): wait for it like for EINPROGRESS */
    if (errno == EINPROGRESS || errno == EAGAIN || errno == EINTR) {
      lua_pushinteger(L, i + 1);
      lua_replace(L, 7);
      return sock_wait(L, s, FD_W, total, (lua_KContext)total, connect_wait_k, "connect");
    }
    err = errno;
    if (s->kind == K_MASTER && s->type == SOCK_STREAM) sock_close_fd(s);
  }
  return push_errno(L, err ? err : ECONNREFUSED);
}

static int connect_k(lua_State *L, int status, lua_KContext ctx) {
  gh_sock *s = lua_touserdata(L, 1);
  (void)status;
  hub_check_intr(L, s->hub, hub_me(L, s->hub));
  if (lua_isnil(L, 4)) return 2; /* resolution failed: nil, err */
  lua_settop(L, 4);
  lua_pushnil(L);
  lua_pushinteger(L, ECONNREFUSED); /* 6: last error */
  lua_pushinteger(L, 1);            /* 7: next address */
  return connect_next(L, s, (int64_t)ctx);
}

static int sock_connect(lua_State *L) {
  gh_sock *s = sock_check(L, 1);
  if (s->family == AF_UNIX) {
    if (s->type == SOCK_STREAM && s->kind != K_MASTER)
      return luaL_error(L, "greenhub: connect is not available on %s", sock_class(s));
    struct sockaddr_un a;
    socklen_t len;
    unix_addr(L, 2, &a, &len);
    lua_settop(L, 1);
    lua_pushnil(L);
    lua_pushnil(L);
    lua_createtable(L, 1, 0);
    lua_pushlstring(L, (const char *)&a, len);
    lua_rawseti(L, -2, 1);
    return connect_k(L, LUA_OK, (lua_KContext)call_deadline(s));
  }
  if (s->type == SOCK_STREAM ? s->kind != K_MASTER : 0)
    return luaL_error(L, "greenhub: connect is not available on %s", sock_class(s));
  char pb[16];
  const char *host = luaL_checkstring(L, 2);
  const char *port = port_arg(L, 3, pb, sizeof pb);
  lua_settop(L, 3);
  int64_t total = call_deadline(s);
  return resolver_lookup(L, s->hub, host, port, family_of(s), s->type, 0,
                         total, (lua_KContext)total, connect_k);
}

/* ---------------------------------------------------------------- accept */

static int accept_k(lua_State *L, int status, lua_KContext ctx);

static int accept_step(lua_State *L, gh_sock *s, int64_t total) {
  for (;;) {
    if (s->fd < 0) return push_fail(L, "closed");
    int fd = accept4(s->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      gh_sock *c = sock_push(L, s->hub, fd, s->family, SOCK_STREAM, K_CLIENT);
      c->line_max = s->line_max;
      return 1;
    }
    switch (errno) {
      case EINTR: case ECONNABORTED: case EPROTO:
        continue; /* that peer is gone; the next may be there */
      case EAGAIN:
        break;
      default:
        return push_errno(L, errno); /* EMFILE etc.: the caller backs off */
    }
    return sock_wait(L, s, FD_R, total, (lua_KContext)total, accept_k, "accept");
  }
}

static int accept_k(lua_State *L, int status, lua_KContext ctx) {
  gh_sock *s = lua_touserdata(L, 1);
  (void)status;
  int r = wait_failed(L, s->hub);
  return r ? r : accept_step(L, s, (int64_t)ctx);
}

static int sock_accept(lua_State *L) {
  gh_sock *s = sock_need(L, 1 << K_SERVER, SOCK_STREAM, "accept");
  lua_settop(L, 1);
  return accept_step(L, s, call_deadline(s));
}

/* ---------------------------------------------------------------- udp */

static int udp_k(lua_State *L, int status, lua_KContext ctx);

/* Stack: sock [size]. from: also return the sender's address. */
static int udp_step(lua_State *L, gh_sock *s, int from, int64_t total) {
  lua_Integer want = luaL_optinteger(L, 2, UDP_DATAGRAMSIZE);
  if (want < 0) luaL_argerror(L, 2, "negative size");
  char stackbuf[UDP_DATAGRAMSIZE];
  char *buf = stackbuf;
  if (want > UDP_DATAGRAMSIZE) buf = lua_newuserdatauv(L, (size_t)want, 0);
  for (;;) {
    if (s->fd < 0) return push_fail(L, "closed");
    struct sockaddr_storage ss;
    socklen_t slen = sizeof ss;
    ssize_t n = recvfrom(s->fd, buf, (size_t)want, 0, (struct sockaddr *)&ss, &slen);
    if (n >= 0) {
      s->nrecv += (double)n;
      lua_pushlstring(L, buf, (size_t)n);
      if (!from) return 1;
      int k = push_sockaddr(L, (struct sockaddr *)&ss, slen);
      if (k == 3) lua_pop(L, 1); /* data, ip, port: no family */
      return k == 3 ? 3 : 1 + k;
    }
    if (errno == EINTR) continue;
    if (errno == ECONNREFUSED) return push_fail(L, "connection refused");
    if (errno != EAGAIN && errno != EWOULDBLOCK) return push_errno(L, errno);
    lua_settop(L, 2);
    lua_pushboolean(L, from); /* 3: the continuation needs it */
    return sock_wait(L, s, FD_R, total, (lua_KContext)total, udp_k, "receive");
  }
}

static int udp_k(lua_State *L, int status, lua_KContext ctx) {
  gh_sock *s = lua_touserdata(L, 1);
  (void)status;
  int r = wait_failed(L, s->hub);
  if (r) return r;
  return udp_step(L, s, lua_toboolean(L, 3), (int64_t)ctx);
}

static int udp_receive(lua_State *L, gh_sock *s, int from) {
  lua_settop(L, 2);
  int64_t total = call_deadline(s);
  return udp_step(L, s, from, total);
}

static int sock_receivefrom(lua_State *L) {
  gh_sock *s = sock_need(L, 1 << K_UNCONNECTED | 1 << K_CONNECTED, SOCK_DGRAM, "receivefrom");
  return udp_receive(L, s, 1);
}

static int udp_send_k(lua_State *L, int status, lua_KContext ctx);

/* Stack: sock data [addr-string]. Datagrams go whole or not at all. */
static int udp_send_step(lua_State *L, gh_sock *s, int64_t total) {
  size_t len, alen = 0;
  const char *data = lua_tolstring(L, 2, &len);
  const char *addr = lua_tolstring(L, 3, &alen);
  for (;;) {
    if (s->fd < 0) return push_fail(L, "closed");
    ssize_t n = addr ? sendto(s->fd, data, len, MSG_NOSIGNAL, (const void *)addr, (socklen_t)alen)
                     : send(s->fd, data, len, MSG_NOSIGNAL);
    if (n >= 0) {
      s->nsent += (double)n;
      lua_pushinteger(L, n);
      return 1;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return push_errno(L, errno);
    return sock_wait(L, s, FD_W, total, (lua_KContext)total, udp_send_k, "send");
  }
}

static int udp_send_k(lua_State *L, int status, lua_KContext ctx) {
  gh_sock *s = lua_touserdata(L, 1);
  (void)status;
  int r = wait_failed(L, s->hub);
  return r ? r : udp_send_step(L, s, (int64_t)ctx);
}

static int udp_send(lua_State *L, gh_sock *s, int to) {
  luaL_checkstring(L, 2);
  if (!to) {
    if (s->kind != K_CONNECTED) return luaL_error(L, "greenhub: send is not available on %s", sock_class(s));
    lua_settop(L, 2);
    return udp_send_step(L, s, call_deadline(s));
  }
  if (s->family == AF_UNIX) { /* unix dgram: sendto(data, path) */
    struct sockaddr_un a;
    socklen_t alen;
    unix_addr(L, 3, &a, &alen);
    lua_settop(L, 2);
    lua_pushlstring(L, (const char *)&a, alen);
    return udp_send_step(L, s, call_deadline(s));
  }
  /* sendto(data, ip, port): numeric addresses only, as LuaSocket */
  const char *ip = luaL_checkstring(L, 3);
  lua_Integer port = luaL_checkinteger(L, 4);
  if (port < 0 || port > 65535) luaL_argerror(L, 4, "port out of range");
  struct sockaddr_storage ss;
  socklen_t slen;
  memset(&ss, 0, sizeof ss);
  struct sockaddr_in *a4 = (void *)&ss;
  struct sockaddr_in6 *a6 = (void *)&ss;
  if (inet_pton(AF_INET, ip, &a4->sin_addr) == 1) {
    a4->sin_family = AF_INET;
    a4->sin_port = htons((uint16_t)port);
    slen = sizeof *a4;
  } else if (inet_pton(AF_INET6, ip, &a6->sin6_addr) == 1) {
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons((uint16_t)port);
    slen = sizeof *a6;
  } else {
    return push_fail(L, "invalid ip address");
  }
  if (s->fd < 0 && sock_create_fd(s, ss.ss_family) < 0) return push_errno(L, errno);
  lua_settop(L, 2);
  lua_pushlstring(L, (const char *)&ss, slen);
  return udp_send_step(L, s, call_deadline(s));
}

static int sock_sendto(lua_State *L) {
  gh_sock *s = sock_need(L, 1 << K_UNCONNECTED, SOCK_DGRAM, "sendto");
  return udp_send(L, s, 1);
}

static int sock_setpeername(lua_State *L) {
  gh_sock *s = sock_need(L, 1 << K_UNCONNECTED | 1 << K_CONNECTED, SOCK_DGRAM, "setpeername");
  const char *host = luaL_checkstring(L, 2);
  if (strcmp(host, "*") == 0) { /* disconnect */
    struct sockaddr sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_family = AF_UNSPEC;
    if (s->fd >= 0) connect(s->fd, &sa, sizeof sa);
    s->kind = K_UNCONNECTED;
    sock_setclass(L, 1, s);
    lua_pushinteger(L, 1);
    return 1;
  }
  return sock_connect(L);
}

/* ---------------------------------------------------------------- options */

typedef struct { const char *name; int level, opt; } optdef;
static const optdef bool_opts[] = {
  {"tcp-nodelay", IPPROTO_TCP, TCP_NODELAY},
  {"keepalive", SOL_SOCKET, SO_KEEPALIVE},
  {"reuseaddr", SOL_SOCKET, SO_REUSEADDR},
  {"reuseport", SOL_SOCKET, SO_REUSEPORT},
  {"broadcast", SOL_SOCKET, SO_BROADCAST},
  {"dontroute", SOL_SOCKET, SO_DONTROUTE},
  {"ipv6-v6only", IPPROTO_IPV6, IPV6_V6ONLY},
  {"ip-multicast-loop", IPPROTO_IP, IP_MULTICAST_LOOP},
  {"ipv6-multicast-loop", IPPROTO_IPV6, IPV6_MULTICAST_LOOP},
  {NULL, 0, 0}
};
static const optdef int_opts[] = {
  {"recv-buffer-size", SOL_SOCKET, SO_RCVBUF},
  {"send-buffer-size", SOL_SOCKET, SO_SNDBUF},
  {"tcp-keepidle", IPPROTO_TCP, TCP_KEEPIDLE},
  {"tcp-keepintvl", IPPROTO_TCP, TCP_KEEPINTVL},
  {"tcp-keepcnt", IPPROTO_TCP, TCP_KEEPCNT},
  {"ip-multicast-ttl", IPPROTO_IP, IP_MULTICAST_TTL},
  {"ipv6-unicast-hops", IPPROTO_IPV6, IPV6_UNICAST_HOPS},
  {"ipv6-multicast-hops", IPPROTO_IPV6, IPV6_MULTICAST_HOPS},
  {NULL, 0, 0}
};

static const optdef *find_opt(const optdef *v, const char *name) {
  for (; v->name; v++) if (strcmp(v->name, name) == 0) return v;
  return NULL;
}

/* An IPv4 address argument ("*" or "0.0.0.0" = any). */
static void ip4_arg(lua_State *L, int idx, const char *field, struct in_addr *a) {
  const char *ip = lua_tostring(L, idx);
  if (!ip) luaL_error(L, "greenhub: setoption: field '%s' must be an IPv4 address", field);
  if (strcmp(ip, "*") == 0) { a->s_addr = htonl(INADDR_ANY); return; }
  if (inet_pton(AF_INET, ip, a) != 1)
    luaL_error(L, "greenhub: setoption: invalid IPv4 address '%s' in '%s'", ip, field);
}

/* The multicast and interface options (LuaSocket's names and shapes). */
static int set_ip_option(lua_State *L, gh_sock *s, const char *name, int *handled) {
  *handled = 1;
  if (strcmp(name, "ip-multicast-if") == 0) {
    struct in_addr a;
    ip4_arg(L, 3, "ip-multicast-if", &a);
    return setsockopt(s->fd, IPPROTO_IP, IP_MULTICAST_IF, &a, sizeof a);
  }
  if (strcmp(name, "ip-add-membership") == 0 || strcmp(name, "ip-drop-membership") == 0) {
    luaL_checktype(L, 3, LUA_TTABLE);
    struct ip_mreq m;
    memset(&m, 0, sizeof m);
    lua_getfield(L, 3, "multiaddr");
    ip4_arg(L, -1, "multiaddr", &m.imr_multiaddr);
    lua_getfield(L, 3, "interface");
    if (lua_isnil(L, -1)) m.imr_interface.s_addr = htonl(INADDR_ANY);
    else ip4_arg(L, -1, "interface", &m.imr_interface);
    lua_pop(L, 2);
    return setsockopt(s->fd, IPPROTO_IP, name[3] == 'a' ? IP_ADD_MEMBERSHIP : IP_DROP_MEMBERSHIP,
                      &m, sizeof m);
  }
  if (strcmp(name, "ipv6-add-membership") == 0 || strcmp(name, "ipv6-drop-membership") == 0) {
    luaL_checktype(L, 3, LUA_TTABLE);
    struct ipv6_mreq m;
    memset(&m, 0, sizeof m);
    lua_getfield(L, 3, "multiaddr");
    const char *ip = lua_tostring(L, -1);
    if (!ip || inet_pton(AF_INET6, ip, &m.ipv6mr_multiaddr) != 1)
      luaL_error(L, "greenhub: setoption: invalid IPv6 address in 'multiaddr'");
    lua_getfield(L, 3, "interface");
    m.ipv6mr_interface = lua_isnil(L, -1) ? 0 : (unsigned)lua_tointeger(L, -1);
    lua_pop(L, 2);
    return setsockopt(s->fd, IPPROTO_IPV6, name[5] == 'a' ? IPV6_ADD_MEMBERSHIP : IPV6_DROP_MEMBERSHIP,
                      &m, sizeof m);
  }
  *handled = 0;
  return 0;
}

static int sock_setoption(lua_State *L) {
  gh_sock *s = sock_check(L, 1);
  const char *name = luaL_checkstring(L, 2);
  const optdef *o;
  if (s->fd < 0 && s->kind == K_MASTER && sock_create_fd(s, AF_INET) < 0)
    return push_errno(L, errno);
  if (s->fd < 0) return push_fail(L, "closed");
  int r, v = 0, handled;
  if ((o = find_opt(bool_opts, name))) {
    luaL_checkany(L, 3);
    v = lua_toboolean(L, 3);
    r = setsockopt(s->fd, o->level, o->opt, &v, sizeof v);
  } else if ((o = find_opt(int_opts, name))) {
    v = (int)luaL_checkinteger(L, 3);
    r = setsockopt(s->fd, o->level, o->opt, &v, sizeof v);
  } else if (strcmp(name, "linger") == 0) {
    luaL_checktype(L, 3, LUA_TTABLE);
    struct linger li;
    lua_getfield(L, 3, "on");
    li.l_onoff = lua_toboolean(L, -1);
    lua_getfield(L, 3, "timeout");
    li.l_linger = (int)luaL_optinteger(L, -1, 0);
    r = setsockopt(s->fd, SOL_SOCKET, SO_LINGER, &li, sizeof li);
  } else if (strcmp(name, "coalesce") == 0) {
    luaL_checkany(L, 3);
    s->coalesce = lua_toboolean(L, 3);
    r = 0;
    if (!s->coalesce && buf_len(&s->out) > 0) out_flush(s->hub, s); /* rest: in the background */
  } else if (strcmp(name, "line-max") == 0) {
    lua_Integer lm = luaL_checkinteger(L, 3);
    if (lm < 1) luaL_argerror(L, 3, "line-max must be positive");
    s->line_max = (size_t)lm;
    r = 0;
  } else {
    r = set_ip_option(L, s, name, &handled);
    if (!handled) return luaL_argerror(L, 2, lua_pushfstring(L, "unsupported option '%s'", name));
  }
  if (r < 0) return push_errno(L, errno);
  /* remembered for the fresh fd a connect retry needs */
  if (o && s->kind == K_MASTER && s->type == SOCK_STREAM) {
    int i = 0;
    while (i < s->nopts && !(s->opts[i].level == o->level && s->opts[i].opt == o->opt)) i++;
    if (i < (int)(sizeof s->opts / sizeof s->opts[0])) {
      s->opts[i].level = o->level;
      s->opts[i].opt = o->opt;
      s->opts[i].val = v;
      if (i == s->nopts) s->nopts++;
    }
  }
  lua_pushinteger(L, 1);
  return 1;
}

static int sock_getoption(lua_State *L) {
  gh_sock *s = sock_check(L, 1);
  const char *name = luaL_checkstring(L, 2);
  const optdef *o;
  int v = 0;
  socklen_t len = sizeof v;
  if (strcmp(name, "line-max") == 0) {
    lua_pushinteger(L, (lua_Integer)s->line_max);
    return 1;
  }
  if (strcmp(name, "coalesce") == 0) {
    lua_pushboolean(L, s->coalesce);
    return 1;
  }
  if (s->fd < 0) return push_fail(L, "closed");
  if (strcmp(name, "error") == 0) { /* pending error (and clears it); nil = none */
    if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &v, &len) < 0) return push_errno(L, errno);
    if (v == 0) lua_pushnil(L); else lua_pushstring(L, sock_strerror(v));
    return 1;
  }
  if (strcmp(name, "ip-multicast-if") == 0) {
    struct in_addr a;
    char ip[INET_ADDRSTRLEN];
    len = sizeof a;
    if (getsockopt(s->fd, IPPROTO_IP, IP_MULTICAST_IF, &a, &len) < 0) return push_errno(L, errno);
    lua_pushstring(L, inet_ntop(AF_INET, &a, ip, sizeof ip));
    return 1;
  }
  if ((o = find_opt(bool_opts, name)) || (o = find_opt(int_opts, name))) {
    if (getsockopt(s->fd, o->level, o->opt, &v, &len) < 0) return push_errno(L, errno);
    if (o >= bool_opts && o < bool_opts + sizeof bool_opts / sizeof *bool_opts) lua_pushboolean(L, v);
    else lua_pushinteger(L, v);
    return 1;
  }
  if (strcmp(name, "linger") == 0) {
    struct linger li;
    len = sizeof li;
    if (getsockopt(s->fd, SOL_SOCKET, SO_LINGER, &li, &len) < 0) return push_errno(L, errno);
    lua_createtable(L, 0, 2);
    lua_pushboolean(L, li.l_onoff);
    lua_setfield(L, -2, "on");
    lua_pushinteger(L, li.l_linger);
    lua_setfield(L, -2, "timeout");
    return 1;
  }
  return luaL_argerror(L, 2, lua_pushfstring(L, "unsupported option '%s'", name));
}

/* ---------------------------------------------------------------- misc */

static int sock_shutdown(lua_State *L) {
  static const char *const modes[] = {"both", "send", "receive", NULL};
  static const int how[] = {SHUT_RDWR, SHUT_WR, SHUT_RD};
  gh_sock *s = sock_check(L, 1);
  int m = luaL_checkoption(L, 2, "both", modes);
  if (s->fd < 0) return push_fail(L, "closed");
  if (shutdown(s->fd, how[m]) < 0) return push_errno(L, errno);
  lua_pushinteger(L, 1);
  return 1;
}

static int sock_getfd(lua_State *L) {
  lua_pushinteger(L, sock_check(L, 1)->fd);
  return 1;
}

/* setfd(fd): adopt fd (LuaSec hands fds between objects this way). */
static int sock_setfd(lua_State *L) {
  gh_sock *s = sock_check(L, 1);
  lua_Integer fd = luaL_checkinteger(L, 2);
  if (fd >= 0) {
    set_nonblock((int)fd);
    hub_fd_forget(s->hub, (int)fd);
  }
  s->fd = fd < 0 ? -1 : (int)fd;
  return 0;
}

static int sock_dirty(lua_State *L) {
  lua_pushboolean(L, buf_len(&sock_check(L, 1)->buf) > 0);
  return 1;
}

static int sock_getstats(lua_State *L) {
  gh_sock *s = sock_check(L, 1);
  lua_pushnumber(L, s->nrecv);
  lua_pushnumber(L, s->nsent);
  lua_pushnumber(L, (double)(hub_clock() - s->birth) / 1e9);
  return 3;
}

static int sock_setstats(lua_State *L) {
  gh_sock *s = sock_check(L, 1);
  s->nrecv = luaL_optnumber(L, 2, s->nrecv);
  s->nsent = luaL_optnumber(L, 3, s->nsent);
  if (!lua_isnoneornil(L, 4))
    s->birth = hub_clock() - (int64_t)(luaL_checknumber(L, 4) * 1e9);
  lua_pushinteger(L, 1);
  return 1;
}

static int sock_getfamily(lua_State *L) {
  gh_sock *s = sock_check(L, 1);
  lua_pushstring(L, s->family == AF_INET6 ? "inet6" : s->family == AF_UNIX ? "unix" : "inet");
  return 1;
}


/* ---------------------------------------------------------------- trampoline */

static int tramp_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status; (void)ctx;
  int r = wait_failed(L, HUB(L));
  if (r) return r;
  lua_pushboolean(L, 1);
  return 1;
}

/*
 * trampoline(fd, "r"|"w" [, timeout]): wait until a foreign fd is ready.
 * Re-arms the registration each time (one poller call), since greenhub cannot
 * know what the fd's owner did with it in between.
 */
static int l_trampoline(lua_State *L) {
  gh_hub *h = HUB(L);
  lua_Integer fd = luaL_checkinteger(L, 1);
  static const char *const dirs[] = {"r", "w", "read", "write", NULL};
  int dir = luaL_checkoption(L, 2, NULL, dirs) % 2 == 0 ? FD_R : FD_W;
  int64_t d = hub_deadline(L, 3);
  if (!hub_fd_valid(fd)) return luaL_argerror(L, 1, "not an open file descriptor");
  gh_thread *self = hub_self(L, h, "trampoline");
  gh_fd *r = hub_fd(h, (int)fd);
  if (!r) return luaL_error(L, "greenhub: out of memory");
  if (r->registered) hub_fd_rearm(h, (int)fd); /* on failure hub_wait_fd adds it anew */
  lua_settop(L, 0);
  return hub_wait_fd(L, h, self, (int)fd, dir, d, 0, tramp_k);
}

/* notify_close(fd): a foreign fd is about to be closed; waiters get "closed". */
static int l_notify_close(lua_State *L) {
  lua_Integer fd = luaL_checkinteger(L, 1);
  if (fd >= 0 && fd <= INT32_MAX) hub_fd_forget(HUB(L), (int)fd);
  return 0;
}

/*
 * _poll(fds, events) -> revents: a poll(2) with timeout 0 over a list of
 * fds ("r", "w" or "rw" each), for select(): it says what is ready right
 * now without parking anybody (a settimeout(0) poll loop needs that).
 */
static int l_poll(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_Integer n = luaL_len(L, 1);
  if (n < 0 || n > 65536) return luaL_argerror(L, 1, "too many fds");
  struct pollfd *p = lua_newuserdatauv(L, sizeof *p * (size_t)(n ? n : 1), 0);
  for (lua_Integer i = 0; i < n; i++) {
    lua_rawgeti(L, 1, i + 1);
    lua_rawgeti(L, 2, i + 1);
    p[i].fd = (int)lua_tointeger(L, -2);
    const char *ev = lua_tostring(L, -1);
    p[i].events = (short)((ev && strchr(ev, 'r') ? POLLIN : 0) | (ev && strchr(ev, 'w') ? POLLOUT : 0));
    p[i].revents = 0;
    lua_pop(L, 2);
  }
  int r;
  do r = poll(p, (nfds_t)n, 0); while (r < 0 && errno == EINTR);
  lua_createtable(L, (int)n, 0);
  for (lua_Integer i = 0; i < n; i++) {
    short e = r > 0 ? p[i].revents : 0;
    int rd = (e & (POLLIN | POLLHUP | POLLERR)) != 0, wr = (e & (POLLOUT | POLLERR | POLLHUP)) != 0;
    lua_pushstring(L, rd && wr ? "rw" : rd ? "r" : wr ? "w" : "");
    lua_rawseti(L, -2, i + 1);
  }
  return 1;
}

/* _fdname(fd, peer) -> getpeername/getsockname of any socket fd (TLS) */
static int l_fdname(lua_State *L) {
  lua_Integer fd = luaL_checkinteger(L, 1);
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  if (fd < 0 || fd > INT32_MAX) return push_fail(L, "closed");
  int r = lua_toboolean(L, 2) ? getpeername((int)fd, (struct sockaddr *)&ss, &len)
                              : getsockname((int)fd, (struct sockaddr *)&ss, &len);
  if (r < 0) return push_errno(L, errno);
  return push_sockaddr(L, (struct sockaddr *)&ss, len);
}

/* _fdshutdown(fd, how): shutdown(2) on any socket fd (TLS) */
static int l_fdshutdown(lua_State *L) {
  static const char *const modes[] = {"both", "send", "receive", NULL};
  static const int how[] = {SHUT_RDWR, SHUT_WR, SHUT_RD};
  lua_Integer fd = luaL_checkinteger(L, 1);
  int m = luaL_checkoption(L, 2, "both", modes);
  if (fd < 0 || fd > INT32_MAX) return push_fail(L, "closed");
  if (shutdown((int)fd, how[m]) < 0) return push_errno(L, errno);
  lua_pushinteger(L, 1);
  return 1;
}

/* ---------------------------------------------------------------- module */

static int new_sock(lua_State *L, int family, int type, int lazy) {
  gh_hub *h = HUB(L);
  int fd = -1;
  if (!lazy) {
    fd = socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return push_errno(L, errno);
    if (family == AF_INET6) {
      int on = 1;
      setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on);
    }
  }
  sock_push(L, h, fd, family, type, type == SOCK_DGRAM ? K_UNCONNECTED : K_MASTER);
  return 1;
}

/* fdopen(fd [, mode]): any fd (pipe, tty, eventfd) as a green stream with
   the socket receive/send patterns; closing it closes fd */
static int l_fdopen(lua_State *L) {
  lua_Integer fd = luaL_checkinteger(L, 1);
  const char *mode = luaL_optstring(L, 2, "rw");
  if (strspn(mode, "rw") != strlen(mode) || !*mode) return luaL_argerror(L, 2, "mode must be r, w or rw");
  if (!hub_fd_valid(fd)) return luaL_argerror(L, 1, "not an open file descriptor");
  set_nonblock((int)fd);
  gh_sock *s = sock_push(L, HUB(L), (int)fd, AF_UNSPEC, SOCK_STREAM, K_CLIENT);
  s->plain = 1;
  return 1;
}

static int l_tcp(lua_State *L) { return new_sock(L, AF_UNSPEC, SOCK_STREAM, 1); }
static int l_tcp4(lua_State *L) { return new_sock(L, AF_INET, SOCK_STREAM, 0); }
static int l_tcp6(lua_State *L) { return new_sock(L, AF_INET6, SOCK_STREAM, 0); }
static int l_udp(lua_State *L) { return new_sock(L, AF_UNSPEC, SOCK_DGRAM, 1); }
static int l_udp4(lua_State *L) { return new_sock(L, AF_INET, SOCK_DGRAM, 0); }
static int l_udp6(lua_State *L) { return new_sock(L, AF_INET6, SOCK_DGRAM, 0); }
static int l_unix(lua_State *L) { return new_sock(L, AF_UNIX, SOCK_STREAM, 0); }
static int l_unix_dgram(lua_State *L) { return new_sock(L, AF_UNIX, SOCK_DGRAM, 0); }

/* resolve(host [, family]) -> { ip, ... } via getaddrinfo results */
static int resolve_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status; (void)ctx;
  hub_check_intr(L, HUB(L), hub_me(L, HUB(L)));
  if (lua_isnil(L, -2)) return 2;
  lua_pop(L, 1);
  int t = lua_gettop(L);
  lua_newtable(L);
  lua_Integer n = (lua_Integer)lua_rawlen(L, t), k = 0;
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, t, i);
    size_t alen;
    const struct sockaddr *sa = (const void *)lua_tolstring(L, -1, &alen);
    push_sockaddr(L, sa, (socklen_t)alen); /* ip port family */
    lua_createtable(L, 0, 2);
    lua_insert(L, -4);
    lua_setfield(L, -4, "family");
    lua_pop(L, 1);
    lua_setfield(L, -2, "addr");
    lua_rawseti(L, t + 1, ++k);
    lua_pop(L, 1);
  }
  return 1;
}

static int l_getaddrinfo(lua_State *L) {
  gh_hub *h = HUB(L);
  const char *host = luaL_checkstring(L, 1);
  static const char *const fams[] = {"any", "inet", "inet6", NULL};
  static const int famv[] = {AF_UNSPEC, AF_INET, AF_INET6};
  int f = famv[luaL_checkoption(L, 2, "any", fams)];
  int64_t d = hub_deadline(L, 3);
  lua_settop(L, 0);
  return resolver_lookup(L, h, host, NULL, f, SOCK_STREAM, 0, d, 0, resolve_k);
}

static int l_strerror(lua_State *L) {
  lua_pushstring(L, sock_strerror((int)luaL_checkinteger(L, 1)));
  return 1;
}

static const luaL_Reg sock_methods[] = {
  {"accept", sock_accept}, {"bind", sock_bind}, {"close", sock_close},
  {"connect", sock_connect}, {"dirty", sock_dirty}, {"getfd", sock_getfd},
  {"getoption", sock_getoption}, {"getpeername", sock_getpeername},
  {"getsockname", sock_getsockname}, {"getstats", sock_getstats},
  {"listen", sock_listen}, {"receive", sock_receive},
  {"receivefrom", sock_receivefrom}, {"send", sock_send},
  {"sendto", sock_sendto}, {"setfd", sock_setfd}, {"setoption", sock_setoption},
  {"setpeername", sock_setpeername}, {"setsockname", sock_bind},
  {"setstats", sock_setstats}, {"settimeout", sock_settimeout},
  {"shutdown", sock_shutdown}, {"getfamily", sock_getfamily},
  {"gettimeout", sock_gettimeout}, {"receivepartial", sock_receivepartial},
  {"flush", sock_flush}, {"_httpchunk", sock_httpchunk}, {"_httpsend", sock_httpsend},
  {"_bind_reuse", sock_bind_reuse},
  {NULL, NULL}
};

static const luaL_Reg sock_funcs[] = {
  {"tcp", l_tcp}, {"tcp4", l_tcp4}, {"tcp6", l_tcp6},
  {"udp", l_udp}, {"udp4", l_udp4}, {"udp6", l_udp6},
  {"unix", l_unix}, {"unix_dgram", l_unix_dgram},
  {"getaddrinfo", l_getaddrinfo}, {"strerror", l_strerror},
  {"_poll", l_poll}, {"_fdname", l_fdname}, {"_fdshutdown", l_fdshutdown},
  {"_httpchunked", l_httpchunked},
  {"_httpresponse", l_httpresponse},
  {"_httpchunkstr", l_httpchunkstr},
  {"trampoline", l_trampoline}, {"notify_close", l_notify_close},
  {"_resolver_delay", resolver_set_delay}, {"fdopen", l_fdopen},
  {NULL, NULL}
};

void socket_open(lua_State *L, int mod, int hub) {
  gh_hub *h = lua_touserdata(L, hub);
  h->flush_all = flush_all;
  h->flush_one = flush_one;
  const luaL_Reg meta[] = {{"__gc", sock_gc}, {"__close", sock_gc},
                           {"__tostring", sock_tostring}, {NULL, NULL}};
  push_head_keys(L); /* upvalue 2 of the head builders */
  int keys = lua_gettop(L);
  for (int i = 0; i < SC_NCLASS; i++) {
    char name[64];
    snprintf(name, sizeof name, "greenhub.%s", class_names[i]);
    luaL_newmetatable(L, name);
    int mt = lua_gettop(L);
    h->sockmt[i] = lua_topointer(L, mt);
    lua_newtable(L);
    gh_setfuncs(L, lua_gettop(L), hub, sock_methods);
    lua_pushvalue(L, hub); lua_pushvalue(L, keys);
    lua_pushcclosure(L, sock_httphead, 2);
    lua_setfield(L, -2, "_httphead");
    lua_pushstring(L, class_names[i]);
    lua_setfield(L, -2, "class");
    lua_setfield(L, mt, "__index");
    gh_setfuncs(L, mt, hub, meta);
    lua_pop(L, 1);
  }
  luaL_newmetatable(L, CHUNKED_MT);
  lua_pop(L, 1);
  gh_setfuncs(L, mod, hub, sock_funcs);
  /* the head builder again, with the head keys as upvalue 2 */
  lua_pushvalue(L, hub); lua_pushvalue(L, keys);
  lua_pushcclosure(L, l_httpparse, 2);
  lua_setfield(L, mod, "_httpparse");
  lua_pop(L, 1);
}
