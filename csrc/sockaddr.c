/*
 * sockaddr.c - addresses, bind, listen, connect (every address in turn)
 * and accept.
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

/* ---------------------------------------------------------------- addresses */

int push_sockaddr(lua_State *L, const struct sockaddr *sa, socklen_t len) {
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
  return gh_fail(L, "unknown family");
}

static int sock_getname(lua_State *L, int peer) {
  gh_sock *s = sock_check(L, 1);
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  if (s->fd < 0) return gh_fail(L, "closed");
  int r = peer ? getpeername(s->fd, (struct sockaddr *)&ss, &len)
               : getsockname(s->fd, (struct sockaddr *)&ss, &len);
  if (r < 0) return push_errno(L, errno);
  return push_sockaddr(L, (struct sockaddr *)&ss, len);
}
int sock_getpeername(lua_State *L) { return sock_getname(L, 1); }
int sock_getsockname(lua_State *L) { return sock_getname(L, 0); }

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

int unix_addr(lua_State *L, int arg, struct sockaddr_un *a, socklen_t *len) {
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
int sock_bind(lua_State *L) {
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
int sock_bind_reuse(lua_State *L) {
  gh_sock *s = sock_check(L, 1);
  char pb[16];
  const char *host = luaL_checkstring(L, 2);
  const char *port = port_arg(L, 3, pb, sizeof pb);
  lua_settop(L, 3);
  return resolver_lookup(L, s->hub, host, port, family_of(s), s->type, 1,
                         call_deadline(s), 1, bind_k);
}

int sock_listen(lua_State *L) {
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
  int r = gh_wait_failed(L, s->hub);
  if (r) return r;
  if (s->fd < 0) return gh_fail(L, "closed");
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
/* Try the addresses from the next one on. Stack: 1 the socket, 4 the
   address list (sockaddr strings, as resolver_lookup leaves them), 5 nil,
   6 the last error (errno), 7 the index of the next address to try. */
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

int sock_connect(lua_State *L) {
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
    if (s->fd < 0) return gh_fail(L, "closed");
    int fd = gh_accept(s->fd);
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
  int r = gh_wait_failed(L, s->hub);
  return r ? r : accept_step(L, s, (int64_t)ctx);
}

int sock_accept(lua_State *L) {
  gh_sock *s = sock_need(L, 1 << K_SERVER, SOCK_STREAM, "accept");
  lua_settop(L, 1);
  return accept_step(L, s, call_deadline(s));
}
