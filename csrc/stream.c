/*
 * stream.c - receive (LuaSocket's patterns, receivepartial) and send on
 * stream sockets and green fds, over the per-socket receive buffer.
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
#include <sys/sendfile.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "sock.h"

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
int recv_done(lua_State *L) {
  lua_pushnil(L);
  lua_pushnil(L);
  return 3;
}

/* Worth trying a read now: the fd may hold data, or the call will not wait
   anyway (a settimeout(0) poll must still see new data). */
int worth_reading(gh_sock *s, int64_t total) {
  if (s->tls && tls_has_pending(s)) return 1;
  return hub_fd_maybe_ready(s->hub, s->fd, FD_R) || hub_expired(wait_deadline(s, total));
}

/*
 * One read into s->buf with at least `want` bytes of room, at most `cap`
 * bytes (0: all the room). Returns the bytes read, 0 at the end of the
 * stream, -1 when nothing is there now (the socket is then marked
 * drained), -2 on an error (errno says which). No memory for the buffer
 * raises.
 */
ssize_t sock_read_more(lua_State *L, gh_sock *s, size_t want, size_t cap) {
  if (s->tls) return tls_read_more(L, s, want, cap);
  if (!buf_reserve(&s->buf, want)) gh_nomem(L);
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
int sock_park_read(lua_State *L, gh_sock *s, int64_t d, int64_t total,
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
int sock_more(lua_State *L, gh_sock *s, int64_t total, size_t want, size_t cap,
                     lua_KFunction k, const char *what) {
  if (s->fd < 0) return gh_fail(L, "closed");
  if (worth_reading(s, total)) {
    ssize_t got = sock_read_more(L, s, want, cap);
    if (got > 0) return READ_AGAIN;
    if (got == 0) return gh_fail(L, "closed");
    if (got == -2) return push_errno(L, errno);
  }
  int64_t d = wait_deadline(s, total);
  if (hub_expired(d)) return gh_fail(L, "timeout");
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
        return gh_fail(L, "line too long");
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
    if (hub_expired(d)) return recv_fail(L, s, "timeout", line);
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


int sock_receive(lua_State *L) {
  gh_sock *s = sock_check(L, 1);
  if (s->kind != K_CLIENT || s->type != SOCK_STREAM)
    return luaL_error(L, "greenhub: receive is not available on %s", sock_class(s));
  TLS_FIRST(L, s, sock_receive, TLS_SH_RECV);
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
  int r = gh_wait_failed(L, s->hub);
  if (r) return r;
  return partial_step(L, s, (int64_t)ctx);
}

int sock_receivepartial(lua_State *L) {
  gh_sock *s = sock_check(L, 1);
  if (s->type != SOCK_STREAM || s->kind != K_CLIENT)
    return luaL_error(L, "greenhub: receivepartial is not available on %s", sock_class(s));
  lua_Integer max = luaL_optinteger(L, 2, 65536);
  if (max < 1) return luaL_argerror(L, 2, "max must be positive");
  TLS_FIRST(L, s, sock_receivepartial, TLS_SH_PLAIN);
  lua_settop(L, 1);
  lua_pushinteger(L, max);
  return partial_step(L, s, call_deadline(s));
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
  if (hub_expired(d)) return send_fail(L, "timeout", done);
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
      if (n > 0 && s->tls) { /* encrypted now; the records collect in out */
        if (tls_collect(s, data + done, n) < 0) return send_fail(L, sock_strerror(errno), done);
        s->nsent += (double)n;
      } else if (n > 0) {
        if (out_append(s, data + done, n) < 0) return gh_nomem(L);
        s->nsent += (double)n;
      }
      lua_pushinteger(L, end);
      return 1;
    }
  }
  /* what was collected before goes first */
  while (buf_len(&s->out) > 0) {
    if (out_send(s)) {
      if (s->out_err) return send_step(L, s, total);
      break;
    }
    return send_wait(L, s, total, done);
  }
  while (done < end) {
    if (s->fd < 0) goto fail_closed;
    ssize_t n = sock_write_some(s, data + done, (size_t)(end - done));
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


int sock_send(lua_State *L) {
  gh_sock *s = sock_check(L, 1);
  if (s->kind != K_CLIENT || s->type != SOCK_STREAM)
    return luaL_error(L, "greenhub: send is not available on %s", sock_class(s));
  size_t len;
  luaL_checklstring(L, 2, &len);
  TLS_FIRST(L, s, sock_send, TLS_SH_SEND);
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

/* ---------------------------------------------------------------- sendfile */

static int sendfile_k(lua_State *L, int status, lua_KContext ctx);

/* Stack: sock fd offset count sent head hsent. The head goes first, with
   MSG_MORE, so head and body leave in full segments (no Nagle stall
   between a small head and the file). Waits writable as send does. */
static int sendfile_step(lua_State *L, gh_sock *s, int64_t total) {
  int fd = (int)lua_tointeger(L, 2);
  off_t off = (off_t)lua_tointeger(L, 3);
  lua_Integer left = lua_tointeger(L, 4), sent = lua_tointeger(L, 5);
  size_t hlen = 0;
  const char *head = lua_tolstring(L, 6, &hlen);
  size_t hsent = (size_t)lua_tointeger(L, 7);
  while (hsent < hlen) {
    if (s->fd < 0) return gh_fail(L, "closed");
#ifdef MSG_MORE
    int more = left > 0 ? MSG_MORE : 0;
#else
    int more = 0;
#endif
    ssize_t n = send(s->fd, head + hsent, hlen - hsent, gh_nosignal() | more);
    if (n >= 0) { hsent += (size_t)n; s->nsent += (double)n; continue; }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return push_errno(L, errno);
    lua_pushinteger(L, (lua_Integer)hsent); lua_replace(L, 7);
    hub_fd_drained(s->hub, s->fd, FD_W);
    return sock_wait(L, s, FD_W, total, (lua_KContext)total, sendfile_k, "sendfile");
  }
  lua_pushinteger(L, (lua_Integer)hsent); lua_replace(L, 7);
  while (left > 0) {
    if (s->fd < 0) return gh_fail(L, "closed");
    size_t chunk = left > (1 << 30) ? (size_t)1 << 30 : (size_t)left;
    ssize_t n = sendfile(s->fd, fd, &off, chunk);
    if (n > 0) {
      s->nsent += (double)n;
      sent += n;
      left -= n;
      continue;
    }
    if (n == 0) break; /* the file is shorter than asked: what there was */
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return push_errno(L, errno);
    lua_pushinteger(L, (lua_Integer)off); lua_replace(L, 3);
    lua_pushinteger(L, left); lua_replace(L, 4);
    lua_pushinteger(L, sent); lua_replace(L, 5);
    hub_fd_drained(s->hub, s->fd, FD_W);
    return sock_wait(L, s, FD_W, total, (lua_KContext)total, sendfile_k, "sendfile");
  }
  lua_pushinteger(L, sent);
  return 1;
}

static int sendfile_k(lua_State *L, int status, lua_KContext ctx) {
  gh_sock *s = lua_touserdata(L, 1);
  (void)status;
  int r = gh_wait_failed(L, s->hub);
  return r ? r : sendfile_step(L, s, (int64_t)ctx);
}

/*
 * sock:_sendfile(fd, offset, count [, head]) -> file bytes sent (fewer
 * when the file ends first), or nil, err. head (a response head, say) goes
 * out first. The kernel copies from the page cache to the socket;
 * coalesced output must have been flushed first.
 */
int sock_sendfile(lua_State *L) {
  gh_sock *s = sock_check(L, 1);
  if (s->kind != K_CLIENT || s->type != SOCK_STREAM || s->plain || s->tls)
    return luaL_error(L, "greenhub: sendfile is not available on %s", sock_class(s));
  lua_Integer fd = luaL_checkinteger(L, 2), off = luaL_checkinteger(L, 3), count = luaL_checkinteger(L, 4);
  luaL_argcheck(L, fd >= 0, 2, "invalid fd");
  luaL_argcheck(L, off >= 0, 3, "must not be negative");
  luaL_argcheck(L, count >= 0, 4, "must not be negative");
  if (buf_len(&s->out) > 0) return luaL_error(L, "greenhub: sendfile with coalesced output pending (flush first)");
  if (!lua_isnoneornil(L, 5)) luaL_checktype(L, 5, LUA_TSTRING);
  lua_settop(L, 5);
  lua_pushinteger(L, 0);   /* 5 -> sent (head moves to 6) */
  lua_insert(L, 5);
  lua_pushinteger(L, 0);   /* 7: head bytes sent */
  return sendfile_step(L, s, call_deadline(s));
}
