/*
 * tls.c - TLS record I/O in C. A green TLS socket is a gh_sock (stream.c's
 * receive patterns, the HTTP parser, WebSocket frames, coalescing all work
 * on it unchanged) whose reads and writes go through OpenSSL:
 *
 *   - the SSL is made here from a LuaSec context's SSL_CTX (contexts and
 *     their parameters stay LuaSec's: ssl.newcontext); the context is kept
 *     alive as the socket's user value;
 *   - OpenSSL reads and writes the fd through a BIO of ours: reads recv()
 *     (bytes buffered before the wrap come first) and mark the fd drained
 *     as plain sockets do; writes send() at once, and what the kernel does
 *     not take waits in s->out, which the hub flushes as it flushes
 *     coalesced output. So SSL_write never says "want write", and a send
 *     that times out or is killed leaves no half-written record behind;
 *   - want-read parks in the hub like any read; records OpenSSL already
 *     holds are read without waiting (tls_has_pending).
 *
 * Renegotiation is refused both ways (SSL_OP_NO_RENEGOTIATION); a peer that
 * goes away without close_notify is "closed" as on TCP; close() sends
 * close_notify.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "sock.h"

struct gh_tls {
  SSL *ssl;
  gh_buf pre;              /* bytes read before the wrap: OpenSSL's first */
  int server;
  int done;                /* handshake finished (and the host checked) */
  int err;                 /* errno of the BIO's last failed send/recv */
  int lsec_full;           /* LuaSec's context has the layout below */
  int rd_end;              /* the read side ended (1: EOF, 2: error rd_err)
                              behind data already returned: said next */
  int rd_err;
  int lazy;                /* a read after one that returned data: skip the
                              recv when the fd is known drained */
  int collect;             /* coalescing: records collect in out, unsent */
  double hs_timeout;       /* < 0: the call's own timeouts */
  char *host;              /* name to check the certificate against */
  char hs_error[160];      /* sticky: the handshake failed this way */
};

/* The first fields of LuaSec's context (context.h, 0.5 to 1.3): the
   SSL_CTX and the lua_State its callbacks use; LuaSec sets L before each
   handshake, and so do we. The rest is used only when the userdata has
   exactly this size: LuaSec frees what its ALPN and DH callbacks
   allocated after every handshake, and so must we. */
typedef struct {
  SSL_CTX *context;
  lua_State *L;
  void *dh_param;
  void *alpn;
  int mode;
} lsec_context;

#define LSEC_CONTEXT "SSL:Context"

static _Thread_local char tls_msg[160];

const char *tls_errstr(void) { return tls_msg[0] ? tls_msg : "TLS error"; }

/* The reason of OpenSSL's first queued error (LuaSec's words), cleared. */
static const char *ssl_reason(void) {
  unsigned long e = ERR_get_error();
  const char *r = e ? ERR_reason_error_string(e) : NULL;
  ERR_clear_error();
  return r ? r : "TLS error";
}

/* ---------------------------------------------------------------- BIO */

static BIO_METHOD *bio_method;

static int bio_write(BIO *b, const char *data, size_t len, size_t *written) {
  gh_sock *s = BIO_get_data(b);
  BIO_clear_retry_flags(b);
  size_t done = 0;
  if (s->fd < 0) { s->tls->err = EPIPE; return 0; }
  if (!s->tls->collect && buf_len(&s->out) == 0) {
    while (done < len) {
      ssize_t n = send(s->fd, data + done, len - done, gh_nosignal());
      if (n >= 0) { done += (size_t)n; continue; }
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) { hub_fd_drained(s->hub, s->fd, FD_W); break; }
      s->tls->err = errno;
      return 0;
    }
  }
  /* the rest waits in s->out; the hub flushes it */
  if (done < len && out_append(s, data + done, len - done) < 0) { s->tls->err = ENOMEM; return 0; }
  *written = len;
  return 1;
}

static int bio_read(BIO *b, char *data, size_t len, size_t *got) {
  gh_sock *s = BIO_get_data(b);
  gh_tls *t = s->tls;
  BIO_clear_retry_flags(b);
  size_t pre = buf_len(&t->pre);
  if (pre > 0) {
    size_t n = pre < len ? pre : len;
    memcpy(data, buf_head(&t->pre), n);
    buf_consume(&t->pre, n);
    if (buf_len(&t->pre) == 0) buf_free(&t->pre);
    *got = n;
    return 1;
  }
  if (s->fd < 0) { t->err = EBADF; return 0; }
  if (t->lazy && !hub_fd_maybe_ready(s->hub, s->fd, FD_R)) { /* drained since the last edge */
    BIO_set_retry_read(b);
    return 0;
  }
  for (;;) {
    ssize_t n = recv(s->fd, data, len, 0);
    if (n > 0) {
      if ((size_t)n < len) hub_fd_drained(s->hub, s->fd, FD_R);
      *got = (size_t)n;
      return 1;
    }
    if (n == 0) return 0; /* the end of the stream */
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      hub_fd_drained(s->hub, s->fd, FD_R);
      BIO_set_retry_read(b);
      return 0;
    }
    t->err = errno;
    return 0;
  }
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr) {
  (void)b; (void)num; (void)ptr;
  return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int bio_create(BIO *b) {
  BIO_set_init(b, 1);
  return 1;
}

static BIO_METHOD *bio_meth(void) {
  if (!bio_method) {
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "greenhub");
    if (!m) return NULL;
    BIO_meth_set_write_ex(m, bio_write);
    BIO_meth_set_read_ex(m, bio_read);
    BIO_meth_set_ctrl(m, bio_ctrl);
    BIO_meth_set_create(m, bio_create);
    bio_method = m;
  }
  return bio_method;
}

/* ---------------------------------------------------------------- I/O */

int tls_has_pending(const gh_sock *s) {
  const gh_tls *t = s->tls;
  return t->rd_end || buf_len(&t->pre) > 0 ||
         (t->ssl && (SSL_pending(t->ssl) > 0 || SSL_has_pending(t->ssl)));
}

int tls_ready(const gh_sock *s) { return s->tls->done; }
int tls_server(const gh_sock *s) { return s->tls->server; }

/* What a failed SSL call says: -2 with errno set (GH_ETLS: tls_errstr()),
   or 0 for the end of the stream. */
static ssize_t io_error(gh_sock *s, int r) {
  gh_tls *t = s->tls;
  int e = SSL_get_error(t->ssl, r);
  if (e == SSL_ERROR_ZERO_RETURN) return 0;
  if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
    if (t->err) { errno = t->err; t->err = 0; return -2; }
    return 0; /* EOF without close_notify */
  }
  snprintf(tls_msg, sizeof tls_msg, "%s", ssl_reason());
  errno = GH_ETLS;
  return -2;
}

/*
 * sock_read_more for TLS: decrypted bytes into s->buf, records until the
 * room is full or OpenSSL wants more from the fd. As sock_read_more:
 * bytes, 0 at the end, -1 nothing now, -2 error (errno).
 */
ssize_t tls_read_more(lua_State *L, gh_sock *s, size_t want, size_t cap) {
  gh_tls *t = s->tls;
  if (!t->ssl) return 0;
  if (t->rd_end) { /* the end seen behind the last data */
    if (t->rd_end == 1) return 0;
    errno = t->rd_err;
    return -2;
  }
  if (!buf_reserve(&s->buf, want)) gh_nomem(L);
  size_t room = buf_room(&s->buf);
  if (cap && room > cap) room = cap;
  size_t total = 0;
  while (total < room) {
    size_t got = 0;
    ERR_clear_error();
    int r = SSL_read_ex(t->ssl, s->buf.data + s->buf.last, room - total, &got);
    if (r > 0) { buf_commit(&s->buf, got); total += got; t->lazy = 1; continue; }
    t->lazy = 0;
    int e = SSL_get_error(t->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) break;
    ssize_t x = io_error(s, r);
    if (x == 0) t->rd_end = 1;
    else { t->rd_end = 2; t->rd_err = errno; }
    if (total > 0) break; /* this data first; the end next call */
    return x;
  }
  t->lazy = 0;
  if (total == 0) return -1;
  s->nrecv += (double)total;
  return (ssize_t)total;
}

/* SSL_write: bytes taken, or -1 with errno (EPIPE at the end) */
static ssize_t ssl_write(gh_sock *s, const char *p, size_t n) {
  size_t w = 0;
  ERR_clear_error();
  if (SSL_write_ex(s->tls->ssl, p, n, &w)) return (ssize_t)w;
  if (io_error(s, 0) == 0) errno = EPIPE;
  return -1;
}

/*
 * One write of plaintext: bytes taken (the ciphertext the kernel did not
 * take waits in s->out), or -1 with errno (EAGAIN: ciphertext from before
 * is still waiting for the kernel; wait writable and call again).
 */
ssize_t tls_write(gh_sock *s, const char *p, size_t n) {
  gh_tls *t = s->tls;
  if (!t->ssl || s->fd < 0) { errno = EPIPE; return -1; }
  if (buf_len(&s->out) > 0) {
    if (!out_send(s)) { hub_fd_drained(s->hub, s->fd, FD_W); errno = EAGAIN; return -1; }
    if (s->out_err) { errno = s->out_err; s->out_err = 0; return -1; }
  }
  if (n == 0) return 0;
  if (n > 65536) n = 65536; /* the ciphertext held back stays bounded */
  return ssl_write(s, p, n);
}

/* setoption("coalesce"): plaintext becomes records now, which collect in
   s->out (the hub sends them when the thread parks, or on flush/close).
   n <= COALESCE_MAX. Bytes taken, or -1 with errno. */
ssize_t tls_collect(gh_sock *s, const char *p, size_t n) {
  gh_tls *t = s->tls;
  if (!t->ssl || s->fd < 0) { errno = EPIPE; return -1; }
  t->collect = 1;
  ssize_t w = ssl_write(s, p, n);
  t->collect = 0;
  return w;
}

/* close(): close_notify, as far as it goes without waiting */
void tls_close_notify(gh_sock *s) {
  gh_tls *t = s->tls;
  if (t->ssl && t->done && s->fd >= 0 && !(SSL_get_shutdown(t->ssl) & SSL_SENT_SHUTDOWN)) {
    ERR_clear_error();
    SSL_shutdown(t->ssl);
    ERR_clear_error();
  }
}

/* The fd is about to close: what the peer sent and nobody read (TLS 1.3
   session tickets, typically) is read and dropped first, or the kernel
   answers the close with a reset that can destroy our own last records
   on their way. */
void tls_drain(gh_sock *s) {
  char sink[16384];
  for (int i = 0; i < 16; i++) {
    ssize_t n = recv(s->fd, sink, sizeof sink, MSG_DONTWAIT);
    if (n <= 0 && !(n < 0 && errno == EINTR)) break;
  }
}

/* The fd is closing: the SSL goes with it. */
void tls_free(gh_sock *s) {
  gh_tls *t = s->tls;
  if (t->ssl) { SSL_free(t->ssl); t->ssl = NULL; }
  buf_free(&t->pre);
  free(t->host);
  t->host = NULL;
}

/* LuaSec keeps per-connection entries keyed by the SSL's address (the
   verification errors of "continue" mode; a server's SNI map). */
static void clear_registries(lua_State *L, SSL *ssl) {
  static const char *const regs[] = {"SSL:Verify:Registry", "SSL:SNI:Registry", "greenhub.tls.sni", NULL};
  for (int i = 0; regs[i]; i++) {
    if (luaL_getmetatable(L, regs[i]) == LUA_TTABLE) {
      lua_pushlightuserdata(L, ssl);
      lua_pushnil(L);
      lua_rawset(L, -3);
    }
    lua_pop(L, 1);
  }
}

/* close()/__gc with a lua_State at hand: the registries too */
void tls_release(lua_State *L, gh_sock *s) {
  if (s->tls->ssl) clear_registries(L, s->tls->ssl);
}

/* ---------------------------------------------------------------- handshake */

static lsec_context *lsec_of(SSL_CTX *ctx) {
  lsec_context *p = SSL_CTX_get_app_data(ctx);
  return p && p->context == ctx ? p : NULL;
}

/* After a handshake step: what LuaSec's callbacks allocated for it. */
static void lsec_cleanup(lsec_context *p, gh_sock *s) {
  if (!p || !s->tls->server || !s->tls->lsec_full) return;
  if (p->alpn) {
    const unsigned char *sel = NULL;
    unsigned len = 0;
    SSL_get0_alpn_selected(s->tls->ssl, &sel, &len);
    if (sel != p->alpn) { free(p->alpn); p->alpn = NULL; } /* OpenSSL kept a copy */
  }
  if (p->dh_param) {
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    DH_free(p->dh_param);
#pragma GCC diagnostic pop
    p->dh_param = NULL;
  }
}

/* an IPv4 or IPv6 address, not a name (no SNI; the certificate's IP SAN) */
static int ip_literal(const char *h) {
  return strchr(h, ':') != NULL || strspn(h, "0123456789.") == strlen(h);
}

/* The peer certificate must name t->host (subjectAltName, else CN). */
static const char *check_host(gh_tls *t) {
  X509 *cert = SSL_get1_peer_certificate(t->ssl);
  if (!cert) return "no peer certificate";
  const char *h = t->host;
  int ok = ip_literal(h) ? X509_check_ip_asc(cert, h, 0) == 1
              : X509_check_host(cert, h, 0, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS, NULL) == 1;
  X509_free(cert);
  if (ok) return NULL;
  snprintf(tls_msg, sizeof tls_msg, "certificate does not match host %s", h);
  return tls_msg;
}

/* the caller's failure shape: receive's partial, send's index, the head
   reader's byte count */
static int hs_fail(lua_State *L, int shape, int top, const char *err) {
  lua_settop(L, top);
  if (shape == TLS_SH_RECV) { /* nil, err, the prefix as partial */
    if (top < 3 || lua_type(L, 3) != LUA_TSTRING) { lua_settop(L, 2); lua_pushliteral(L, ""); }
    else lua_settop(L, 3);
    lua_pushnil(L);
    lua_pushstring(L, err);
    lua_rotate(L, 3, 2);
    return 3;
  }
  lua_Integer i = top >= 3 && lua_isinteger(L, 3) ? lua_tointeger(L, 3) : 1;
  lua_pushnil(L);
  lua_pushstring(L, err);
  switch (shape) {
    case TLS_SH_SEND:
      lua_pushinteger(L, i > 0 ? i - 1 : 0);
      return 3;
    case TLS_SH_HEAD:
      lua_pushinteger(L, 0);
      return 3;
    default:
      return 2;
  }
}

static int hs_k(lua_State *L, int status, lua_KContext ctx);

/*
 * Drive the handshake; then run `then` (the call that needed it) on the
 * same stack. Stack: the call's arguments, then (pushed here) the deadline
 * and the failure shape.
 */
static int hs_step(lua_State *L, gh_sock *s, lua_CFunction then) {
  gh_tls *t = s->tls;
  int top = lua_gettop(L);
  int shape = (int)lua_tointeger(L, top);
  int64_t d = (int64_t)lua_tointeger(L, top - 1);
  for (;;) {
    if (t->hs_error[0]) return hs_fail(L, shape, top - 2, t->hs_error);
    if (!t->ssl || s->fd < 0) return hs_fail(L, shape, top - 2, "closed");
    lsec_context *p = lsec_of(SSL_get_SSL_CTX(t->ssl));
    if (p) p->L = L; /* LuaSec's callbacks run on the calling thread */
    ERR_clear_error();
    int r = SSL_do_handshake(t->ssl);
    lsec_cleanup(p, s);
    int dir = 0;
    if (r == 1) {
      if (buf_len(&s->out) > 0 && !out_send(s)) dir = FD_W; /* our last flight first */
      else {
        if (t->host) {
          const char *bad = check_host(t);
          if (bad) {
            snprintf(t->hs_error, sizeof t->hs_error, "%s", bad);
            sock_close_fd(s);
            return hs_fail(L, shape, top - 2, t->hs_error);
          }
        }
        t->done = 1;
        lua_settop(L, top - 2);
        if (!then) { lua_pushboolean(L, 1); return 1; }
        return then(L);
      }
    } else {
      int e = SSL_get_error(t->ssl, r);
      if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        if (buf_len(&s->out) > 0 && !out_send(s)) dir = FD_W;
        else dir = e == SSL_ERROR_WANT_WRITE ? FD_W : FD_R;
      } else {
        const char *why;
        if (e == SSL_ERROR_ZERO_RETURN) why = "closed";
        else if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)
          why = t->err ? sock_strerror(t->err) : "closed";
        else why = ssl_reason();
        snprintf(t->hs_error, sizeof t->hs_error, "%s", why);
        return hs_fail(L, shape, top - 2, t->hs_error);
      }
    }
    /* wait: a non-blocking socket says which way (copas drives it so) */
    if (s->tblock == 0 && t->hs_timeout < 0 && !then)
      return hs_fail(L, shape, top - 2, dir == FD_W ? "wantwrite" : "wantread");
    if (hub_expired(d)) return hs_fail(L, shape, top - 2, "timeout");
    gh_hub *h = s->hub;
    return hub_wait_fd(L, h, hub_self(L, h, "dohandshake"), s->fd, dir, d,
                       (lua_KContext)(intptr_t)then, hs_k);
  }
}

static int hs_k(lua_State *L, int status, lua_KContext ctx) {
  gh_sock *s = lua_touserdata(L, 1);
  gh_thread *self = hub_me(L, s->hub);
  (void)status;
  hub_check_intr(L, s->hub, self);
  int top = lua_gettop(L);
  int shape = (int)lua_tointeger(L, top);
  if (self->wake == WK_TIMEOUT) return hs_fail(L, shape, top - 2, "timeout");
  if (self->wake == WK_CLOSED || s->fd < 0) return hs_fail(L, shape, top - 2, "closed");
  return hs_step(L, s, (lua_CFunction)(intptr_t)ctx);
}

/* the TLS socket at 1 (these methods can be called on any socket) */
static gh_sock *tls_check(lua_State *L) {
  gh_sock *s = sock_check(L, 1);
  if (!s->tls) luaL_argerror(L, 1, "not a TLS socket");
  return s;
}

/* The deadline of a handshake: handshake_timeout, else `fallback` (a
   call's own deadline, -1 none). */
static int64_t hs_deadline(gh_sock *s, int64_t fallback) {
  if (s->tls->hs_timeout >= 0) return hub_after(s->tls->hs_timeout);
  return fallback;
}

/* A call on a socket whose handshake is not done: the handshake first. */
int tls_handshake_then(lua_State *L, gh_sock *s, lua_CFunction then, int shape, int64_t d) {
  lua_pushinteger(L, (lua_Integer)hs_deadline(s, d));
  lua_pushinteger(L, shape);
  return hs_step(L, s, then);
}

/* dohandshake(): true, or nil, err ("wantread"/"wantwrite" on a socket
   with settimeout(0) and no handshake_timeout: one step, copas drives it) */
static int t_dohandshake(lua_State *L) {
  gh_sock *s = tls_check(L);
  lua_settop(L, 1);
  if (s->tls->done) { lua_pushboolean(L, 1); return 1; }
  return tls_handshake_then(L, s, NULL, TLS_SH_PLAIN, wait_deadline(s, call_deadline(s)));
}

/* ---------------------------------------------------------------- SNI */

/* A server's servername callback: the map sni() stored for this SSL. */
static int sni_cb(SSL *ssl, int *ad, void *arg) {
  (void)ad; (void)arg;
  lsec_context *p = lsec_of(SSL_get_SSL_CTX(ssl));
  const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (!p || !p->L) return SSL_TLSEXT_ERR_NOACK;
  lua_State *L = p->L;
  if (!name) return SSL_TLSEXT_ERR_NOACK;
  int top = lua_gettop(L);
  int ret = SSL_TLSEXT_ERR_NOACK;
  if (luaL_getmetatable(L, "greenhub.tls.sni") == LUA_TTABLE) {
    lua_pushlightuserdata(L, ssl);
    if (lua_rawget(L, -2) == LUA_TTABLE) {
      lua_getfield(L, -1, "strict");
      int strict = lua_toboolean(L, -1);
      lua_getfield(L, -2, "map");
      lua_getfield(L, -1, name);
      lsec_context *c = luaL_testudata(L, -1, LSEC_CONTEXT);
      if (c && c->context) { SSL_set_SSL_CTX(ssl, c->context); ret = SSL_TLSEXT_ERR_OK; }
      else ret = strict ? SSL_TLSEXT_ERR_ALERT_FATAL : SSL_TLSEXT_ERR_OK;
    }
  }
  lua_settop(L, top);
  return ret;
}

/* sni(name) on a client: the name sent; sni(map [, strict]) on a server:
   name -> LuaSec context, strict refuses names not in the map */
static int t_sni(lua_State *L) {
  gh_tls *t = tls_check(L)->tls;
  if (!t->ssl) return gh_fail(L, "closed");
  if (!t->server) {
    SSL_set_tlsext_host_name(t->ssl, luaL_checkstring(L, 2));
    return 0;
  }
  luaL_checktype(L, 2, LUA_TTABLE);
  int strict = lua_toboolean(L, 3);
  lua_pushnil(L);
  while (lua_next(L, 2)) {
    luaL_checkstring(L, -2);
    lsec_context *c = luaL_checkudata(L, -1, LSEC_CONTEXT);
    SSL_CTX_set_tlsext_servername_callback(c->context, sni_cb);
    lua_pop(L, 1);
  }
  luaL_newmetatable(L, "greenhub.tls.sni");
  lua_pushlightuserdata(L, t->ssl);
  lua_createtable(L, 0, 2);
  lua_pushvalue(L, 2);
  lua_setfield(L, -2, "map");
  lua_pushboolean(L, strict);
  lua_setfield(L, -2, "strict");
  lua_rawset(L, -3);
  SSL_CTX_set_tlsext_servername_callback(SSL_get_SSL_CTX(t->ssl), sni_cb);
  return 0;
}

/* ---------------------------------------------------------------- extras */

/* the TLS state of the socket at 1 while it is connected, else NULL */
static gh_tls *live(lua_State *L) {
  gh_tls *t = tls_check(L)->tls;
  return t->ssl && t->done ? t : NULL;
}

static int push_pem(lua_State *L, X509 *cert) {
  BIO *b = BIO_new(BIO_s_mem());
  char *p = NULL;
  long n;
  if (!b || !PEM_write_bio_X509(b, cert) || (n = BIO_get_mem_data(b, &p)) <= 0) {
    BIO_free(b);
    return gh_fail(L, "cannot encode the certificate");
  }
  lua_pushlstring(L, p, (size_t)n);
  BIO_free(b);
  return 1;
}

/* _peercert(n): the nth certificate of the peer's chain as PEM (tls.lua
   makes LuaSec certificate objects of it) */
static int t_peercert(lua_State *L) {
  gh_tls *t = live(L);
  if (!t) return gh_fail(L, "closed");
  lua_Integer n = luaL_optinteger(L, 2, 1) - 1;
  if (n < 0) return gh_fail(L, "invalid certificate index");
  if (n == 0) {
    X509 *c = SSL_get1_peer_certificate(t->ssl);
    if (!c) { lua_pushnil(L); return 1; }
    int r = push_pem(L, c);
    X509_free(c);
    return r;
  }
  if (t->server) n--; /* a server's chain lacks the peer's own */
  STACK_OF(X509) *chain = SSL_get_peer_cert_chain(t->ssl);
  if (!chain || n >= sk_X509_num(chain)) { lua_pushnil(L); return 1; }
  return push_pem(L, sk_X509_value(chain, (int)n));
}

/* _peerchain(): the peer's chain as a list of PEM */
static int t_peerchain(lua_State *L) {
  gh_tls *t = live(L);
  if (!t) return gh_fail(L, "closed");
  lua_newtable(L);
  int i = 1;
  if (t->server) {
    X509 *c = SSL_get1_peer_certificate(t->ssl);
    if (c) { push_pem(L, c); X509_free(c); lua_rawseti(L, -2, i++); }
  }
  STACK_OF(X509) *chain = SSL_get_peer_cert_chain(t->ssl);
  for (int k = 0; chain && k < sk_X509_num(chain); k++) {
    push_pem(L, sk_X509_value(chain, k));
    lua_rawseti(L, -2, i++);
  }
  return 1;
}

/* _localcert(): our own certificate as PEM, nil without one */
static int t_localcert(lua_State *L) {
  gh_tls *t = live(L);
  if (!t) return gh_fail(L, "closed");
  X509 *c = SSL_get_certificate(t->ssl);
  if (!c) { lua_pushnil(L); return 1; }
  return push_pem(L, c);
}

static void copy_table(lua_State *L, int src) {
  src = lua_absindex(L, src);
  lua_newtable(L);
  lua_pushnil(L);
  while (lua_next(L, src)) {
    lua_pushvalue(L, -2);
    if (lua_istable(L, -2)) copy_table(L, -2); else lua_pushvalue(L, -2);
    lua_rawset(L, -5);
    lua_pop(L, 1);
  }
}

/* getpeerverification() -> true | false, errors (LuaSec's shapes: a table
   by depth in "continue" mode, else OpenSSL's words) */
static int t_getpeerverification(lua_State *L) {
  gh_tls *t = live(L);
  if (!t) { lua_pushboolean(L, 0); lua_pushliteral(L, "closed"); return 2; }
  long err = SSL_get_verify_result(t->ssl);
  if (err == X509_V_OK) { lua_pushboolean(L, 1); return 1; }
  lua_pushboolean(L, 0);
  int found = 0;
  if (luaL_getmetatable(L, "SSL:Verify:Registry") == LUA_TTABLE) {
    lua_pushlightuserdata(L, t->ssl);
    if (lua_gettable(L, -2) == LUA_TTABLE) { copy_table(L, -1); found = 1; }
  }
  if (!found) { lua_settop(L, 2); lua_pushstring(L, X509_verify_cert_error_string(err)); }
  else { lua_replace(L, 3); lua_settop(L, 3); }
  return 2;
}

static int finished(lua_State *L, int peer) {
  gh_tls *t = live(L);
  if (!t) return gh_fail(L, "closed");
  char buf[128];
  size_t n = peer ? SSL_get_peer_finished(t->ssl, buf, sizeof buf) : SSL_get_finished(t->ssl, buf, sizeof buf);
  if (n == 0) return 0;
  lua_pushlstring(L, buf, n < sizeof buf ? n : sizeof buf);
  return 1;
}
static int t_getfinished(lua_State *L) { return finished(L, 0); }
static int t_getpeerfinished(lua_State *L) { return finished(L, 1); }

static int t_getalpn(lua_State *L) {
  gh_tls *t = live(L);
  const unsigned char *p = NULL;
  unsigned n = 0;
  if (t) SSL_get0_alpn_selected(t->ssl, &p, &n);
  if (!p || n == 0) lua_pushnil(L); else lua_pushlstring(L, (const char *)p, n);
  return 1;
}

static int t_getsniname(lua_State *L) {
  gh_sock *s = sock_check(L, 1);
  const char *n = s->tls && s->tls->ssl ? SSL_get_servername(s->tls->ssl, TLSEXT_NAMETYPE_host_name) : NULL;
  if (n) lua_pushstring(L, n); else lua_pushnil(L);
  return 1;
}

/* _info() -> cipher description, bits, algbits, protocol (LuaSec's core.info) */
static int t_info(lua_State *L) {
  gh_tls *t = live(L);
  const SSL_CIPHER *c = t ? SSL_get_current_cipher(t->ssl) : NULL;
  if (!c) return 0;
  char buf[256] = {0};
  int alg = 0;
  SSL_CIPHER_description(c, buf, sizeof buf);
  int bits = SSL_CIPHER_get_bits(c, &alg);
  lua_pushstring(L, buf);
  lua_pushinteger(L, bits);
  lua_pushinteger(L, alg);
  lua_pushstring(L, SSL_get_version(t->ssl));
  return 4;
}

static int t_want(lua_State *L) {
  gh_sock *s = sock_check(L, 1);
  int w = s->tls && s->tls->ssl ? SSL_want(s->tls->ssl) : SSL_NOTHING;
  lua_pushstring(L, w == SSL_READING ? "read" : w == SSL_WRITING ? "write"
                  : w == SSL_X509_LOOKUP ? "x509lookup" : "nothing");
  return 1;
}

/* dirty(): decrypted bytes are waiting (ours or OpenSSL's) */
static int t_dirty(lua_State *L) {
  gh_sock *s = sock_check(L, 1);
  lua_pushboolean(L, buf_len(&s->buf) > 0 || (s->tls && tls_has_pending(s)));
  return 1;
}

/* _closenotify(): our close_notify now (into the output; a flush sends
   it), reading still possible: a server's lingering close over TLS */
static int t_closenotify(lua_State *L) {
  gh_sock *s = sock_check(L, 1);
  if (!s->tls || s->fd < 0) return gh_fail(L, "closed");
  tls_close_notify(s);
  lua_pushinteger(L, 1);
  return 1;
}

const luaL_Reg tls_methods[] = {
  {"_closenotify", t_closenotify},
  {"dohandshake", t_dohandshake}, {"sni", t_sni}, {"_peercert", t_peercert},
  {"_peerchain", t_peerchain}, {"_localcert", t_localcert},
  {"getpeerverification", t_getpeerverification}, {"getfinished", t_getfinished},
  {"getpeerfinished", t_getpeerfinished}, {"getalpn", t_getalpn},
  {"getsniname", t_getsniname}, {"_info", t_info}, {"want", t_want}, {"dirty", t_dirty},
  {NULL, NULL}
};

/* ---------------------------------------------------------------- wrap */

/*
 * _tlswrap(sock, context, server [, host [, checkhost [, handshake_timeout]]])
 * -> a TLS socket over sock's fd (sock is left closed, as LuaSec's wrap
 * leaves it; bytes it had buffered go to OpenSSL first). host: SNI (a
 * client's, when not an address) and, with checkhost, the name the
 * certificate must carry.
 */
int l_tlswrap(lua_State *L) {
  gh_hub *h = HUB(L);
  gh_sock *old = sock_check(L, 1);
  lsec_context *c = luaL_testudata(L, 2, LSEC_CONTEXT);
  if (!c || !c->context || SSL_CTX_get_app_data(c->context) != c)
    return luaL_argerror(L, 2, "LuaSec context expected");
  int full = lua_rawlen(L, 2) == sizeof(lsec_context);
  /* nil: the context's own mode (LuaSec's LSEC_MODE_SERVER is 1) */
  int server = lua_isnil(L, 3) ? full && c->mode == 1 : lua_toboolean(L, 3);
  const char *host = luaL_optstring(L, 4, NULL);
  int checkhost = lua_toboolean(L, 5) && !server;
  double hst = luaL_optnumber(L, 6, -1);
  if (old->tls || old->type != SOCK_STREAM || old->kind != K_CLIENT || old->plain)
    return luaL_argerror(L, 1, "connected TCP or Unix stream socket expected");
  if (old->fd < 0) return gh_fail(L, "closed");
  BIO_METHOD *m = bio_meth();
  SSL *ssl = m ? SSL_new(c->context) : NULL;
  BIO *bio = ssl ? BIO_new(m) : NULL;
  char *hcopy = host && checkhost ? strdup(host) : NULL;
  if (!ssl || !bio || (host && checkhost && !hcopy)) {
    const char *why = ssl_reason();
    if (bio) BIO_free(bio);
    if (ssl) SSL_free(ssl);
    free(hcopy);
    return luaL_error(L, "greenhub: cannot make a TLS connection (%s)", why);
  }
  clear_registries(L, ssl); /* nothing of an SSL that had this address */
  /* the new object: the socket and its TLS state in one block, the
     context as user value (its callbacks' data lives in it) */
  gh_sock *s = sock_push_ex(L, h, -1, old->family, SOCK_STREAM, K_CLIENT, sizeof(gh_tls), 1);
  gh_tls *t = s->tls;
  s->tblock = old->tblock;
  s->ttotal = old->ttotal;
  s->line_max = old->line_max;
  t->ssl = ssl;
  t->server = server;
  t->hs_timeout = hst;
  t->host = hcopy;
  t->lsec_full = full;
  lua_pushvalue(L, 2);
  lua_setiuservalue(L, -2, 1);
  /* take the fd (and what was read ahead) from the old object */
  t->pre = old->buf;
  memset(&old->buf, 0, sizeof old->buf);
  s->fd = old->fd;
  if (buf_len(&old->out) > 0) { /* plaintext sent before the wrap goes first */
    s->out = old->out;
    memset(&old->out, 0, sizeof old->out);
    link_push(&h->flushq, &s->flushq);
  }
  out_settle(old);
  old->fd = -1;
  BIO_set_data(bio, s);
  SSL_set_bio(ssl, bio, bio);
  SSL_set_app_data(ssl, s);
  SSL_set_mode(ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                    SSL_MODE_RELEASE_BUFFERS);
  SSL_set_options(ssl, SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF);
  SSL_set_read_ahead(ssl, 1);
  if (server) SSL_set_accept_state(ssl);
  else {
    SSL_set_connect_state(ssl);
    if (host && !ip_literal(host)) SSL_set_tlsext_host_name(ssl, host);
  }
  return 1;
}

/* _tlsctxsize(ctx): the size of LuaSec's context userdata (a spec checks
   the layout greenhub relies on) */
int l_tlsctxsize(lua_State *L) {
  luaL_checkudata(L, 1, LSEC_CONTEXT);
  lua_pushinteger(L, (lua_Integer)lua_rawlen(L, 1));
  lua_pushinteger(L, (lua_Integer)sizeof(lsec_context));
  return 2;
}
