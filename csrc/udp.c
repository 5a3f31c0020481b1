/*
 * udp.c - datagram sockets: receive/receivefrom, send/sendto,
 * setpeername.
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
    if (s->fd < 0) return gh_fail(L, "closed");
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
    if (errno == ECONNREFUSED) return gh_fail(L, "connection refused");
    if (errno != EAGAIN && errno != EWOULDBLOCK) return push_errno(L, errno);
    lua_settop(L, 2);
    lua_pushboolean(L, from); /* 3: the continuation needs it */
    return sock_wait(L, s, FD_R, total, (lua_KContext)total, udp_k, "receive");
  }
}

static int udp_k(lua_State *L, int status, lua_KContext ctx) {
  gh_sock *s = lua_touserdata(L, 1);
  (void)status;
  int r = gh_wait_failed(L, s->hub);
  if (r) return r;
  return udp_step(L, s, lua_toboolean(L, 3), (int64_t)ctx);
}

static int udp_receive(lua_State *L, gh_sock *s, int from) {
  lua_settop(L, 2);
  int64_t total = call_deadline(s);
  return udp_step(L, s, from, total);
}

/* the datagram classes' receive([size]) */
int dgram_receive(lua_State *L) {
  gh_sock *s = sock_need(L, 1 << K_UNCONNECTED | 1 << K_CONNECTED, SOCK_DGRAM, "receive");
  return udp_receive(L, s, 0);
}

int sock_receivefrom(lua_State *L) {
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
    if (s->fd < 0) return gh_fail(L, "closed");
    ssize_t n = addr ? sendto(s->fd, data, len, gh_nosignal(), (const void *)addr, (socklen_t)alen)
                     : send(s->fd, data, len, gh_nosignal());
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
  int r = gh_wait_failed(L, s->hub);
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
    return gh_fail(L, "invalid ip address");
  }
  if (s->fd < 0 && sock_create_fd(s, ss.ss_family) < 0) return push_errno(L, errno);
  lua_settop(L, 2);
  lua_pushlstring(L, (const char *)&ss, slen);
  return udp_send_step(L, s, call_deadline(s));
}

/* the datagram classes' send(data): connected ones only */
int dgram_send(lua_State *L) {
  gh_sock *s = sock_need(L, 1 << K_UNCONNECTED | 1 << K_CONNECTED, SOCK_DGRAM, "send");
  return udp_send(L, s, 0);
}

int sock_sendto(lua_State *L) {
  gh_sock *s = sock_need(L, 1 << K_UNCONNECTED, SOCK_DGRAM, "sendto");
  return udp_send(L, s, 1);
}

int sock_setpeername(lua_State *L) {
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
