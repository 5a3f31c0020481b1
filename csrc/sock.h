/*
 * sock.h - what the socket files share (private to them): the socket
 * object, and the helpers one file defines and another uses.
 *   socket.c    objects, errors, timeouts, coalescing, options, the module
 *   stream.c    stream receive and send
 *   sockaddr.c  addresses, bind, listen, connect, accept
 *   udp.c       datagrams
 *   sockhttp.c  greenhub.http's parser and writer over the socket buffer
 */
#ifndef GH_SOCK_H
#define GH_SOCK_H

#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

#include "buffer.h"
#include "http.h"
#include "greenhub.h"
#include "compat.h"
#include <unistd.h>

#define LINE_MAX_DEFAULT (1024 * 1024)
#define UDP_DATAGRAMSIZE 8192

enum { K_MASTER, K_CLIENT, K_SERVER, K_UNCONNECTED, K_CONNECTED };
enum { P_LINE = PAT_LINE, P_ALL = PAT_ALL, P_COUNT = PAT_COUNT };

typedef struct gh_tls gh_tls; /* tls.c */

#define GH_SOCK_MAGIC 0x6768736bu /* "ghsk": sock_test's mark */
typedef struct gh_sock {
  unsigned magic;          /* GH_SOCK_MAGIC */
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
  /* a TLS socket (tls.c): reads and writes go through OpenSSL; out holds
     ciphertext the kernel has not taken yet */
  gh_tls *tls;
} gh_sock;

#define COALESCE_MAX (64 * 1024)
#define CHUNKED_MT "greenhub.httpchunked"
#define READ_AGAIN (-1)

/* ---------------------------------------------------------------- shared */

/* socket.c: errors, objects, timeouts, coalescing */
const char *sock_strerror(int err);
int push_errno(lua_State *L, int err);
gh_sock *sock_check(lua_State *L, int arg);
gh_sock *sock_test(lua_State *L, int arg);
const char *sock_class(const gh_sock *s);
void sock_setclass(lua_State *L, int idx, gh_sock *s);
gh_sock *sock_need(lua_State *L, int kmask, int type, const char *what);
gh_sock *sock_push(lua_State *L, gh_hub *h, int fd, int family, int type, int kind);
gh_sock *sock_push_ex(lua_State *L, gh_hub *h, int fd, int family, int type, int kind,
                      size_t tls_size, int nuv);
int sock_create_fd(gh_sock *s, int family);
void sock_close_fd(gh_sock *s);
int out_send(gh_sock *s);
int out_append(gh_sock *s, const char *p, size_t n);
void out_settle(gh_sock *s);
int64_t call_deadline(const gh_sock *s);
int64_t wait_deadline(const gh_sock *s, int64_t total);
int sock_wait(lua_State *L, gh_sock *s, int dir, int64_t total, lua_KContext ctx,
              lua_KFunction k, const char *what);

/* stream.c: the receive side other readers build on, and the methods */
int recv_done(lua_State *L);
int worth_reading(gh_sock *s, int64_t total);
ssize_t sock_read_more(lua_State *L, gh_sock *s, size_t want, size_t cap);
int sock_park_read(lua_State *L, gh_sock *s, int64_t d, int64_t total, lua_KFunction k,
                   const char *what);
int sock_more(lua_State *L, gh_sock *s, int64_t total, size_t want, size_t cap,
              lua_KFunction k, const char *what);
int sock_receive(lua_State *L);
int sock_receivepartial(lua_State *L);
int sock_send(lua_State *L);
int sock_sendfile(lua_State *L);

/* sockaddr.c */
int push_sockaddr(lua_State *L, const struct sockaddr *sa, socklen_t len);
int unix_addr(lua_State *L, int arg, struct sockaddr_un *a, socklen_t *len);
int sock_bind(lua_State *L);
int sock_bind_reuse(lua_State *L);
int sock_listen(lua_State *L);
int sock_connect(lua_State *L);
int sock_accept(lua_State *L);
int sock_getpeername(lua_State *L);
int sock_getsockname(lua_State *L);

/* udp.c */
int dgram_receive(lua_State *L);
int dgram_send(lua_State *L);
int sock_receivefrom(lua_State *L);
int sock_sendto(lua_State *L);
int sock_setpeername(lua_State *L);

/* websocket.c */
int sock_wsframe(lua_State *L);

/* tls.c */
#define GH_ETLS 0x10000    /* an "errno" for OpenSSL's errors: tls_errstr() */
#define TLS_LINGER 5.0     /* close(): seconds the last records may take */
const char *tls_errstr(void);
ssize_t tls_read_more(lua_State *L, gh_sock *s, size_t want, size_t cap);
ssize_t tls_write(gh_sock *s, const char *p, size_t n);
ssize_t tls_collect(gh_sock *s, const char *p, size_t n);
int tls_has_pending(const gh_sock *s);
int tls_ready(const gh_sock *s);
int tls_server(const gh_sock *s);
int tls_handshake_then(lua_State *L, gh_sock *s, lua_CFunction then, int shape, int64_t d);
void tls_close_notify(gh_sock *s);
void tls_free(gh_sock *s);
void tls_drain(gh_sock *s);
void tls_release(lua_State *L, gh_sock *s);
int l_tlswrap(lua_State *L);
int l_tlsctxsize(lua_State *L);
extern const luaL_Reg tls_methods[];
enum { TLS_SH_PLAIN, TLS_SH_RECV, TLS_SH_SEND, TLS_SH_HEAD };
/* A call on a TLS socket whose handshake has not run: that first, then
   the call itself (fn) on the same stack. The handshake's deadline, when
   no handshake_timeout was given: d (TLS_FIRST_BY), else the call's own. */
#define TLS_FIRST_BY(L, s, fn, shape, d) \
  do { if ((s)->tls && !tls_ready(s)) return tls_handshake_then(L, s, fn, shape, d); } while (0)
#define TLS_FIRST(L, s, fn, shape) \
  TLS_FIRST_BY(L, s, fn, shape, wait_deadline(s, call_deadline(s)))
/* One non-blocking write: bytes taken or -1 (errno). */
static inline ssize_t sock_write_some(gh_sock *s, const char *p, size_t n) {
  if (s->tls) return tls_write(s, p, n);
  return s->plain ? write(s->fd, p, n) : send(s->fd, p, n, gh_nosignal());
}

/* sockhttp.c */
int sock_httpchunk(lua_State *L);
int l_httpchunked(lua_State *L);
int l_httpresponse(lua_State *L);
int l_httpcfg(lua_State *L);
int l_httpfinisher(lua_State *L);
int l_httpindex(lua_State *L);
int l_httpfieldlist(lua_State *L);
void set_http_methods(lua_State *L, int methods, int hub);

#endif
