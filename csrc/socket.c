/*
 * socket.c - green TCP, UDP and Unix stream sockets with LuaSocket's API:
 * the socket object, errors, timeouts, coalesced output, options and the
 * module's functions (the rest is in stream.c, sockaddr.c, udp.c and
 * sockhttp.c; sock.h is what they share).
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

#include "sock.h"

/* ---------------------------------------------------------------- errors */

/* LuaSocket's words for errno values code depends on; else strerror. */
const char *sock_strerror(int err) {
  switch (err) {
    case 0: return NULL;
    case EAGAIN: case ETIMEDOUT: return "timeout";
    case ECONNREFUSED: return "connection refused";
    case EPIPE: case ECONNRESET: case ECONNABORTED: case ENOTCONN:
    case ESHUTDOWN: case EBADF: return "closed";
    case EADDRINUSE: return "address already in use";
    case GH_ETLS: return tls_errstr();
    case EISCONN: return "already connected";
    case EACCES: return "permission denied";
    case EAFNOSUPPORT: return "address family not supported";
    case EPROTONOSUPPORT: return "protocol not supported";
    case EMFILE: case ENFILE: return "too many open files";
    default: return strerror(err);
  }
}

int push_errno(lua_State *L, int err) {
  return gh_fail(L, sock_strerror(err));
}

/* ---------------------------------------------------------------- objects */

/* LuaSocket's class names; each has its own metatable whose __index has
   the methods and `class` (so sock.class is the name, as in LuaSocket) */
static const char *const class_names[] = {
  "tcp{master}", "tcp{client}", "tcp{server}",
  "unix{master}", "unix{client}", "unix{server}",
  "udp{unconnected}", "udp{connected}",
  "unixdgram{unconnected}", "unixdgram{connected}",
  "fd{stream}", "tls{client}", NULL
};
enum { SC_UDP = 6, SC_UNIXDGRAM = 8, SC_FD = 10, SC_TLS = 11, SC_NCLASS = 12 };

static int class_index(const gh_sock *s) {
  if (s->tls) return SC_TLS;
  if (s->plain) return SC_FD;
  if (s->type == SOCK_DGRAM)
    return (s->family == AF_UNIX ? SC_UNIXDGRAM : SC_UDP) + (s->kind == K_CONNECTED);
  return (s->family == AF_UNIX ? 3 : 0) + s->kind;
}

const char *sock_class(const gh_sock *s) { return class_names[class_index(s)]; }

/* A socket of this hub's at arg, or NULL. Checked by size, mark and hub
   (every socket is made by sock_push_ex) rather than by its metatable: a
   socket is the first argument of nearly every call, and the metatable
   look-up was the larger part of a small call's cost. */
gh_sock *sock_test(lua_State *L, int arg) {
  gh_sock *s = lua_touserdata(L, arg);
  if (s && lua_type(L, arg) == LUA_TUSERDATA && lua_rawlen(L, arg) >= sizeof *s &&
      s->magic == GH_SOCK_MAGIC && s->hub == HUB(L))
    return s;
  return NULL;
}

gh_sock *sock_check(lua_State *L, int arg) {
  gh_sock *s = sock_test(L, arg);
  if (!s) luaL_typeerror(L, arg, "greenhub socket");
  return s;
}

/* Give the userdata at idx the metatable of s's (new) class. */
void sock_setclass(lua_State *L, int idx, gh_sock *s) {
  char name[64];
  snprintf(name, sizeof name, "greenhub.%s", sock_class(s));
  idx = lua_absindex(L, idx);
  luaL_getmetatable(L, name);
  lua_setmetatable(L, idx);
}

/* Raise unless s is one of the classes in mask (bits of K_*). */
gh_sock *sock_need(lua_State *L, int kmask, int type, const char *what) {
  gh_sock *s = sock_check(L, 1);
  if (s->type != type || !(kmask & (1 << s->kind)))
    luaL_error(L, "greenhub: %s is not available on %s", what, sock_class(s));
  return s;
}

static void set_nonblock(int fd) {
  int fl = fcntl(fd, F_GETFL);
  if (fl >= 0 && !(fl & O_NONBLOCK)) fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

gh_sock *sock_push(lua_State *L, gh_hub *h, int fd, int family, int type, int kind) {
  return sock_push_ex(L, h, fd, family, type, kind, 0, 0);
}

/* sock_push with tls_size bytes of TLS state after the socket (tls.c's
   wrap; s->tls points there) and nuv user values */
gh_sock *sock_push_ex(lua_State *L, gh_hub *h, int fd, int family, int type, int kind,
                      size_t tls_size, int nuv) {
  gh_sock *s = lua_newuserdatauv(L, sizeof *s + tls_size, nuv);
  memset(s, 0, sizeof *s + tls_size);
  s->magic = GH_SOCK_MAGIC;
  if (tls_size) s->tls = (gh_tls *)(s + 1);
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
int sock_create_fd(gh_sock *s, int family) {
  int fd = gh_socket(family, s->type);
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
                         : send(s->fd, buf_head(&s->out), buf_len(&s->out), gh_nosignal());
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

/* out owes the hub nothing more: no writability watch, not in flushq */
void out_settle(gh_sock *s) {
  out_unwatch(s);
  if (link_linked(&s->flushq)) link_remove(&s->flushq);
}

/* out_write, settled when nothing is left: 1 done (all gone, or failed:
   out_err says), 0 the kernel took only part */
int out_send(gh_sock *s) {
  if (!out_write(s)) return 0;
  out_settle(s);
  return 1;
}

/* n bytes more in out, sent when the thread parks (or on flush, close,
   writability); -1 when there is no memory for them */
int out_append(gh_sock *s, const char *p, size_t n) {
  if (!buf_reserve(&s->out, n)) return -1;
  memcpy(s->out.data + s->out.last, p, n);
  buf_commit(&s->out, n);
  if (!link_linked(&s->flushq)) link_push(&s->hub->flushq, &s->flushq);
  return 0;
}

/* One background flush attempt; leftovers wait for the fd to be writable. */
static void out_flush(gh_hub *h, gh_sock *s) {
  if (out_send(s)) return;
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

void sock_close_fd(gh_sock *s) {
  out_settle(s);
  buf_free(&s->out);
  if (s->fd >= 0) {
    hub_fd_forget(s->hub, s->fd); /* wakes waiters with "closed" */
    if (s->tls) tls_drain(s);
    close(s->fd);
    s->fd = -1;
  }
  buf_free(&s->buf);
  if (s->tls) tls_free(s);
}

static int sock_gc(lua_State *L) {
  gh_sock *s = sock_check(L, 1);
  if (s->tls) tls_release(L, s);
  if (s->fd >= 0 && s->hub->closed) { close(s->fd); s->fd = -1; }
  sock_close_fd(s);
  return 0;
}

static int sock_tostring(lua_State *L) {
  gh_sock *s = sock_check(L, 1);
  if (s->tls) { /* LuaSec's prefix: copas and others tell TLS from TCP by it */
    lua_pushfstring(L, "SSL connection: greenhub.tls{%s}: %p%s", tls_server(s) ? "server" : "client",
                    (void *)s, s->fd < 0 ? " (closed)" : "");
    return 1;
  }
  if (s->fd < 0 && s->kind != K_MASTER && s->kind != K_UNCONNECTED)
    lua_pushfstring(L, "%s (closed): %p", sock_class(s), (void *)s);
  else
    lua_pushfstring(L, "%s: %p", sock_class(s), (void *)s);
  return 1;
}

/* ---------------------------------------------------------------- timeouts */

/* Deadline of the whole call ('t' mode), -1 for none. */
int64_t call_deadline(const gh_sock *s) {
  return s->ttotal < 0 ? -1 : hub_after(s->ttotal);
}

/* Deadline of one wait: the sooner of the call's and the 'b' timeout. */
int64_t wait_deadline(const gh_sock *s, int64_t total) {
  if (s->tblock < 0) return total;
  int64_t b = hub_after(s->tblock);
  return (total < 0 || b < total) ? b : total;
}


/*
 * Park the caller on s's fd until it is ready in direction dir, the wait's
 * deadline passes (then nil, "timeout" at once if it already has), or the
 * socket is closed; continues in k.
 */
int sock_wait(lua_State *L, gh_sock *s, int dir, int64_t total,
                     lua_KContext ctx, lua_KFunction k, const char *what) {
  int64_t d = wait_deadline(s, total);
  if (hub_expired(d)) return gh_fail(L, "timeout");
  gh_hub *h = s->hub;
  return hub_wait_fd(L, h, hub_self(L, h, what), s->fd, dir, d, ctx, k);
}

static int sock_settimeout(lua_State *L) {
  gh_sock *s = sock_check(L, 1);
  double t = gh_optseconds(L, 2, -1, "timeout");
  const char *mode = luaL_optstring(L, 3, "b");
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
    if (hub_expired(d) || (then && !hub_can_block(L, h))) break; /* close drops the rest */
    lua_settop(L, 1);
    lua_pushboolean(L, then);
    return hub_wait_fd(L, h, hub_self(L, h, then ? "close" : "flush"), s->fd, FD_W, d,
                       (lua_KContext)total, flush_k);
  }
  out_settle(s);
  if (then) {
    sock_close_fd(s);
    lua_pushinteger(L, 1);
    return 1;
  }
  if (buf_len(&s->out) > 0) return gh_fail(L, "timeout");
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
    return gh_fail(L, self->wake == WK_TIMEOUT ? "timeout" : "closed");
  }
  return flush_step(L, s, (int64_t)ctx, then);
}

/* flush(): send what coalescing holds now (green; honours the timeouts) */
static int sock_flush(lua_State *L) {
  gh_sock *s = sock_check(L, 1);
  lua_settop(L, 1);
  if (s->fd < 0 && buf_len(&s->out) == 0) return gh_fail(L, "closed");
  return flush_step(L, s, call_deadline(s), 0);
}

/* close(): coalesced output is flushed first (green, when the caller can
   block; else what the kernel takes without blocking) */
static int sock_close(lua_State *L) {
  gh_sock *s = sock_check(L, 1);
  lua_settop(L, 1);
  int64_t total = call_deadline(s);
  if (s->tls) {
    tls_release(L, s);
    tls_close_notify(s);
    /* the records already made still go (send said they went), as the
       kernel would send a TCP socket's: within the socket's timeouts, or
       TLS_LINGER seconds when it has none */
    if (total < 0 && s->tblock < 0) total = hub_after(TLS_LINGER);
  }
  if (buf_len(&s->out) > 0 && s->fd >= 0) return flush_step(L, s, total, 1);
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
  if (s->fd < 0) return gh_fail(L, "closed");
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
  if (s->fd < 0) return gh_fail(L, "closed");
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
  if (s->fd < 0) return gh_fail(L, "closed");
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

/* s:_quiet(since, max_idle): a pooled keep-alive connection, idle since
   `since` (core.clock() seconds), safe to reuse, as far as can be known:
   not idle max_idle seconds or more, and nothing came in since the socket
   was last read dry (one the peer closed while it sat idle has its EOF
   waiting). The kernel is asked (a one-byte peek) when the hub saw a read
   event since (or the last read filled its buffer), or when the socket sat
   idle a millisecond or more (a backend that watches only waited-on fds
   sees no event then): EOF or an error is not quiet; bytes on plain TCP
   were never asked for (not quiet), on TLS they are records the TLS layer
   reads (a session ticket); nothing: quiet, and drained. One clock read,
   here, for the pool's idle test and this one. */
static int sock_quiet(lua_State *L) {
  gh_sock *s = sock_check(L, 1);
  double since = luaL_checknumber(L, 2), max_idle = luaL_checknumber(L, 3);
  double idle = (double)hub_clock() / 1e9 - since;
  int quiet = idle < max_idle && s->fd >= 0 && !s->plain && buf_len(&s->buf) == 0 &&
              !(s->tls && tls_has_pending(s));
  if (quiet && (idle >= 0.001 || hub_fd_maybe_ready(s->hub, s->fd, FD_R))) {
    char c;
    ssize_t n = recv(s->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0) quiet = 0;
    else if (n > 0) quiet = s->tls != NULL;
    else if (errno == EAGAIN || errno == EWOULDBLOCK) hub_fd_drained(s->hub, s->fd, FD_R);
    else if (errno != EINTR) quiet = 0;
  }
  lua_pushboolean(L, quiet);
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
  int r = gh_wait_failed(L, HUB(L));
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
  if (!r) return gh_nomem(L);
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
  if (fd < 0 || fd > INT32_MAX) return gh_fail(L, "closed");
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
  if (fd < 0 || fd > INT32_MAX) return gh_fail(L, "closed");
  if (shutdown((int)fd, how[m]) < 0) return push_errno(L, errno);
  lua_pushinteger(L, 1);
  return 1;
}

/* ---------------------------------------------------------------- module */

static int new_sock(lua_State *L, int family, int type, int lazy) {
  gh_hub *h = HUB(L);
  int fd = -1;
  if (!lazy) {
    fd = gh_socket(family, type);
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

/* One method table per family (LuaSocket's classes within a family differ
   only in which methods refuse: sock_need). Every class has the common
   ones. */
static const luaL_Reg common_methods[] = {
  {"bind", sock_bind}, {"close", sock_close}, {"connect", sock_connect},
  {"dirty", sock_dirty}, {"_quiet", sock_quiet}, {"getfd", sock_getfd}, {"getoption", sock_getoption},
  {"getpeername", sock_getpeername}, {"getsockname", sock_getsockname},
  {"getstats", sock_getstats}, {"setfd", sock_setfd}, {"setoption", sock_setoption},
  {"setstats", sock_setstats}, {"settimeout", sock_settimeout},
  {"gettimeout", sock_gettimeout}, {"getfamily", sock_getfamily},
  {NULL, NULL}
};

static const luaL_Reg stream_methods[] = {
  {"accept", sock_accept}, {"listen", sock_listen}, {"receive", sock_receive},
  {"receivepartial", sock_receivepartial}, {"send", sock_send},
  {"shutdown", sock_shutdown}, {"flush", sock_flush},
  {"_httpchunk", sock_httpchunk},
  {"_bind_reuse", sock_bind_reuse}, {"_wsframe", sock_wsframe},
  {"_sendfile", sock_sendfile},
  {NULL, NULL}
};

static const luaL_Reg dgram_methods[] = {
  {"receive", dgram_receive}, {"receivefrom", sock_receivefrom},
  {"send", dgram_send}, {"sendto", sock_sendto},
  {"setpeername", sock_setpeername}, {"setsockname", sock_bind},
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
  {"_httpcfg", l_httpcfg}, {"_httpfinisher", l_httpfinisher},
  {"_httpindex", l_httpindex}, {"_httpfieldlist", l_httpfieldlist},
  {"trampoline", l_trampoline}, {"notify_close", l_notify_close},
  {"_resolver_delay", resolver_set_delay}, {"fdopen", l_fdopen},
  {"_tlswrap", l_tlswrap}, {"_tlsctxsize", l_tlsctxsize},
  {NULL, NULL}
};

void socket_open(lua_State *L, int mod, int hub) {
  gh_hub *h = lua_touserdata(L, hub);
  h->flush_all = flush_all;
  h->flush_one = flush_one;
  const luaL_Reg meta[] = {{"__gc", sock_gc}, {"__close", sock_gc},
                           {"__tostring", sock_tostring}, {NULL, NULL}};
  for (int i = 0; i < SC_NCLASS; i++) {
    char name[64];
    snprintf(name, sizeof name, "greenhub.%s", class_names[i]);
    luaL_newmetatable(L, name);
    int mt = lua_gettop(L);
    lua_newtable(L);
    int methods = lua_gettop(L);
    gh_setfuncs(L, methods, hub, common_methods);
    if (i == SC_UDP || i == SC_UDP + 1 || i == SC_UNIXDGRAM || i == SC_UNIXDGRAM + 1) {
      gh_setfuncs(L, methods, hub, dgram_methods);
    } else {
      gh_setfuncs(L, methods, hub, stream_methods);
      set_http_methods(L, methods, hub);
    }
    if (i == SC_TLS) { /* a TCP client's methods, TLS's own, and none that
                          would act on the fd behind OpenSSL's back */
      gh_setfuncs(L, methods, hub, tls_methods);
      static const char *const gone[] = {"accept", "listen", "bind", "connect", "setfd",
                                         "_sendfile", "_bind_reuse", NULL};
      for (int g = 0; gone[g]; g++) { lua_pushnil(L); lua_setfield(L, methods, gone[g]); }
    }
    lua_pushstring(L, class_names[i]);
    lua_setfield(L, -2, "class");
    lua_setfield(L, mt, "__index");
    gh_setfuncs(L, mt, hub, meta);
    lua_pop(L, 1);
  }
  luaL_newmetatable(L, CHUNKED_MT);
  lua_pop(L, 1);
  gh_setfuncs(L, mod, hub, sock_funcs);
}
