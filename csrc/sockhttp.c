/*
 * sockhttp.c - greenhub.http's C side over a green socket: the head
 * parser run straight on the receive buffer (requests become request
 * objects here), the chunked decoder, and the response writer.
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
#include <strings.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "sock.h"

/* ---------------------------------------------------------------- http */

/*
 * The HTTP head parser (http.c) run straight over the receive buffer.
 *   s:_httphead("request" | "response" [, max_line, max_head, max_headers
 *               [, request_method [, idle, header_timeout [, raw]]]]) -> head
 *   head: method, target, version (1.0 | 1.1), status, reason, headers
 *   (lower-case name -> value, repeats joined with ", "), fields (the raw
 *   name/value list, in order, when asked for), _kind (the body's framing:
 *   "none" | "length" | "chunked" | "close"), _left (its length),
 *   keep_alive, expect_continue, upgrade. (The server's request objects and
 *   the client's responses are made by _httpreq and _httpres.)
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
    if (i > 0 && lua_rawget(L, hdr) == LUA_TSTRING) { /* repeated: join */
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

/* Parse the trailer section p[0..n) and push its raw field list; NULL, or
   why it is malformed (nothing pushed then). */
static const char *push_trailers(lua_State *L, const char *p, size_t n) {
  http_header hs[128];
  http_head h;
  memset(&h, 0, sizeof h);
  h.max_headers = 128;
  h.headers = hs;
  if (http_parse_trailers(p, n, &h) < 0) return h.why;
  push_fields(L, &h, 1);
  lua_remove(L, -2); /* keep the raw field list only */
  return NULL;
}

/*
 * The field names the head readers (_httphead, _httpreq, _httpres) and the
 * finisher set and read, made once and kept as upvalues 2.. of those
 * closures: a field is then a raw set or get with a ready string (a push
 * each), where lua_setfield would look the C string up again for every
 * field of every request.
 */
enum { SK_METHOD, SK_TARGET, SK_PATH, SK_QUERY, SK_CONN, SK_EXPECT, SK_VERSION,
       SK_HEADERS, SK_KIND, SK_LEFT, SK_STATUS, SK_HEADERS_SENT, SK_KEEP,
       SK_FINISHED, SK_NBUF, SK_FAILED, SK_SOCK, SK_LENGTH, SK_HEAD,
       SK_BODY_LENGTH, SK_BODY_CHUNKED, SK_BODY_CLOSE, SK_FIELDS, SK_RES,
       SK_REASON, SK_KEEP_ALIVE, SK_BODY, SK_DONE, SK_EXPECT_CONTINUE, SK_UPGRADE,
       SK_RAW_FIELDS, SK_BODY_NONE, SK_RQ, SK_GET, SK_POST, SK_N };
static const char *const field_keys[SK_N] = {
  "method", "target", "path", "query", "_conn", "_expect", "version",
  "headers", "_kind", "_left", "status", "headers_sent", "_keep",
  "_finished", "_nbuf", "_failed", "_sock", "_length", "HEAD",
  "length", "chunked", "close", "_fields", "_res",
  "reason", "keep_alive", "body", "_done", "expect_continue", "upgrade",
  "fields", "none", "_rq", "GET", "POST"};
#define SKEY(L, k) lua_pushvalue(L, lua_upvalueindex(2 + (k)))

/* the hub (at hub) and the names: the first 1 + SK_N upvalues */
static void push_field_upvalues(lua_State *L, int hub) {
  luaL_checkstack(L, 1 + SK_N + 4, "http upvalues"); /* past the 20 slots a C call may assume */
  lua_pushvalue(L, hub);
  for (int i = 0; i < SK_N; i++) lua_pushstring(L, field_keys[i]);
}

/* t[key] = v, the key pushed first: SKEY(L, key); <push v>; lua_rawset(L, t) */
#define SSET(L, t, key, push) do { SKEY(L, key); push; lua_rawset(L, t); } while (0)

/* t[key] (raw), pushed; its type */
static inline int sget(lua_State *L, int t, int key) {
  SKEY(L, key);
  return lua_rawget(L, t);
}

/* the name of a body's framing (HTTP_BODY_*), as _kind holds it */
static int kind_key(int body) {
  return body == HTTP_BODY_NONE ? SK_BODY_NONE : body == HTTP_BODY_LENGTH ? SK_BODY_LENGTH
       : body == HTTP_BODY_CHUNKED ? SK_BODY_CHUNKED : SK_BODY_CLOSE;
}

/* t._fields: h's field lines as one string, each with its CRLF (the head
   ends at end), when it has any -- headers made from it on the first look
   (l_headersindex) */
static void set_field_lines(lua_State *L, int t, const http_head *h, const char *end) {
  if (h->nheaders > 0)
    SSET(L, t, SK_FIELDS, lua_pushlstring(L, h->headers[0].name, (size_t)(end - h->headers[0].name)));
}

/* The head table of a parsed (and framed) head h (with raw, its field
   list as head.fields too). */
static void push_head(lua_State *L, const http_head *h, int request, int raw) {
  lua_createtable(L, 0, 10);
  int t = lua_gettop(L);
  if (request) {
    SSET(L, t, SK_METHOD, lua_pushlstring(L, h->method, h->method_len));
    SSET(L, t, SK_TARGET, lua_pushlstring(L, h->target, h->target_len));
  } else {
    SSET(L, t, SK_STATUS, lua_pushinteger(L, h->status));
    SSET(L, t, SK_REASON, lua_pushlstring(L, h->reason, h->reason_len));
  }
  SSET(L, t, SK_VERSION, lua_pushnumber(L, h->minor ? 1.1 : 1.0));
  push_fields(L, h, raw); /* the headers; with raw, the field list on top */
  if (raw) {
    SKEY(L, SK_RAW_FIELDS);
    lua_insert(L, -2);
    lua_rawset(L, t);
  }
  SKEY(L, SK_HEADERS);
  lua_insert(L, -2);
  lua_rawset(L, t);
  /* the body's framing and length */
  SSET(L, t, SK_KIND, SKEY(L, kind_key(h->body)));
  SSET(L, t, SK_LEFT, lua_pushinteger(L, (lua_Integer)h->length));
  SSET(L, t, SK_KEEP_ALIVE, lua_pushboolean(L, h->keep_alive));
  /* rare ones only when set (absent reads as false) */
  if (h->expect_continue) SSET(L, t, SK_EXPECT_CONTINUE, lua_pushboolean(L, 1));
  if (h->upgrade) SSET(L, t, SK_UPGRADE, lua_pushboolean(L, 1));
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
  int t = lua_type(L, vidx);
  if (t != LUA_TSTRING && t != LUA_TNUMBER) /* (a table's elements come one by one) */
    luaL_error(L, "http: response header %s is a %s (a string or a number expected)", name,
               lua_typename(L, t));
  int pushed = t != LUA_TSTRING;
  v = pushed ? luaL_tolstring(L, vidx, &vn) : lua_tolstring(L, vidx, &vn);
  for (size_t i = 0; i < vn; i++) { /* one pass (values are short): no CR, LF or NUL */
    unsigned char c = (unsigned char)v[i];
    if (c <= '\r' && (c == '\r' || c == '\n' || c == '\0'))
      luaL_error(L, "http: response header %s holds CR, LF or NUL", name);
  }
  hb_add(L, b, name, nn);
  hb_add(L, b, ": ", 2);
  hb_add(L, b, v, vn);
  hb_add(L, b, "\r\n", 2);
  if (pushed) lua_pop(L, 1);
}

/* the field name: the value at vidx, or each of an array of values */
static void add_fields(lua_State *L, hbuf *b, const char *name, size_t nn, int vidx) {
  if (lua_type(L, vidx) != LUA_TTABLE) {
    add_field(L, b, name, nn, vidx);
    return;
  }
  lua_Integer k = luaL_len(L, vidx);
  for (lua_Integer i = 1; i <= k; i++) {
    lua_rawgeti(L, vidx, i);
    add_field(L, b, name, nn, lua_gettop(L));
    lua_pop(L, 1);
  }
}

/* a handler's Content-Length (a string of 1*DIGIT up to 2^63 - 1, or an
   integer: a float would go out as "2.0"), or -1 */
static lua_Integer handler_length(lua_State *L, int idx) {
  int t = lua_type(L, idx);
  if (t == LUA_TNUMBER) {
    if (!lua_isinteger(L, idx)) return -1;
    lua_Integer n = lua_tointeger(L, idx);
    return n >= 0 ? n : -1;
  }
  if (t != LUA_TSTRING) return -1;
  size_t n;
  const char *v = lua_tolstring(L, idx, &n);
  if (n == 0 || n > 19) return -1;
  unsigned long long x = 0;
  for (size_t i = 0; i < n; i++) {
    if (v[i] < '0' || v[i] > '9') return -1;
    x = x * 10 + (unsigned)(v[i] - '0');
  }
  return x > (unsigned long long)LUA_MAXINTEGER ? -1 : (lua_Integer)x;
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
 *   bodyless). bodyless "head": the answer to a HEAD, which announces the
 *   length a GET's body would have (RFC 9110 9.3.2) but sends none.
 */
/* A response to write: what resp_build needs (headers: a stack index) */
typedef struct {
  lua_Integer status, length; /* length: the body's, when has_length */
  const char *reason, *body;  /* body: NULL for none */
  size_t rn, bn;
  int headers, has_length, bodyless, head, minor, keep; /* head: a HEAD's answer (bodyless) */
} resp_args;

/* the framing resp_build chose; handler_len -1: none set */
typedef struct { int chunked, keep; lua_Integer handler_len; } resp_info;

/* resp_args from stack slots a..a+7: status, reason, headers, length,
   bodyless, minor, keep [, body] (checked); the top is then a + 7 */
static void resp_args_from(lua_State *L, int a, resp_args *ra) {
  ra->status = luaL_checkinteger(L, a);
  ra->reason = luaL_checklstring(L, a + 1, &ra->rn);
  luaL_checktype(L, a + 2, LUA_TTABLE);
  ra->headers = a + 2;
  ra->has_length = !lua_isnil(L, a + 3);
  ra->length = ra->has_length ? luaL_checkinteger(L, a + 3) : 0;
  if (ra->length < 0) ra->length = 0;
  ra->bodyless = lua_toboolean(L, a + 4);
  ra->head = lua_type(L, a + 4) == LUA_TSTRING;
  ra->minor = (int)luaL_checkinteger(L, a + 5);
  ra->keep = lua_toboolean(L, a + 6);
  ra->bn = 0;
  ra->body = luaL_optlstring(L, a + 7, NULL, &ra->bn);
  lua_settop(L, a + 7);
}

/* Build the response ra into b (which takes the next stack slot); its
   framing in *ri. Raises on a bad header (nothing is written then). */
static void resp_build(lua_State *L, const resp_args *ra, hbuf *b, char *stack, size_t cap,
                       resp_info *ri) {
  lua_Integer status = ra->status;
  if (status < 100 || status > 999) luaL_error(L, "http: bad response status %d", (int)status);
  int has_cl = 0, has_date = 0, conn_close = 0;
  lua_Integer handler_len = -1;
  int hdrs = ra->headers;
  hb_init(L, b, stack, cap);
  lua_pushnil(L); /* the handler's Connection value, written after the framing is known */
  int conn = lua_gettop(L);
  char line[16] = "HTTP/1.1 ";
  line[9] = (char)('0' + status / 100);
  line[10] = (char)('0' + status / 10 % 10);
  line[11] = (char)('0' + status % 10);
  line[12] = ' ';
  hb_add(L, b, line, 13);
  hb_add(L, b, ra->reason, ra->rn);
  hb_add(L, b, "\r\n", 2);
  lua_pushnil(L);
  while (lua_next(L, hdrs)) {
    size_t nn;
    if (lua_type(L, -2) != LUA_TSTRING) luaL_error(L, "http: response header names must be strings");
    const char *name = lua_tolstring(L, -2, &nn);
    if (nn == 0) luaL_error(L, "http: empty response header name");
    for (size_t i = 0; i < nn; i++)
      if (!http_tchar[(unsigned char)name[i]]) luaL_error(L, "http: bad response header name '%s'", name);
    switch (name[0] | 0x20) { /* the names the framing looks at */
      case 't':
        if (nn == 17 && http_token_eq(name, nn, "transfer-encoding"))
          luaL_error(L, "http: the server frames the body; do not set Transfer-Encoding");
        break;
      case 'c':
        if (nn == 14 && http_token_eq(name, nn, "content-length")) {
          handler_len = handler_length(L, -1);
          if (handler_len < 0)
            luaL_error(L, "http: bad response Content-Length '%s' (digits expected)", luaL_tolstring(L, -1, NULL));
          has_cl = 1;
        } else if (nn == 10 && http_token_eq(name, nn, "connection")) {
          /* kept for later: a server that closes says so, whatever the
             handler set (a "close" from the handler closes too) */
          int v = lua_gettop(L);
          if (lua_type(L, v) == LUA_TTABLE) {
            lua_Integer k = luaL_len(L, v);
            for (lua_Integer i = 1; i <= k; i++) {
              if (lua_rawgeti(L, v, i) == LUA_TSTRING) {
                size_t en;
                const char *ev = lua_tolstring(L, -1, &en);
                conn_close |= http_conn_close(ev, en);
              }
              lua_pop(L, 1);
            }
          } else if (lua_type(L, v) == LUA_TSTRING) {
            size_t vn;
            const char *cv = lua_tolstring(L, v, &vn);
            conn_close |= http_conn_close(cv, vn);
          }
          lua_pushvalue(L, v);
          lua_replace(L, conn);
          lua_pop(L, 1);
          continue;
        }
        break;
      case 'd':
        if (nn == 4 && http_token_eq(name, nn, "date")) has_date = 1;
        break;
    }
    add_fields(L, b, name, nn, lua_gettop(L));
    lua_pop(L, 1);
  }
  if (!has_date) {
    size_t dn;
    const char *d = date_line(&dn);
    hb_add(L, b, d, dn);
  }
  int chunked = 0, close = !ra->keep || conn_close;
  if (ra->bodyless) {
    /* no body, no framing (HEAD and 304 keep a Content-Length set); a
       HEAD's answer says the length its body would have had */
    if (ra->head && ra->has_length && !has_cl) {
      hb_add(L, b, "Content-Length: ", 16);
      hb_uint(L, b, (unsigned long long)ra->length);
      hb_add(L, b, "\r\n", 2);
    }
  } else if (has_cl) {
    /* the handler's, enforced by the caller */
  } else if (ra->has_length) {
    hb_add(L, b, "Content-Length: ", 16);
    hb_uint(L, b, (unsigned long long)ra->length);
    hb_add(L, b, "\r\n", 2);
  } else if (ra->minor >= 1) {
    chunked = 1;
    hb_add(L, b, "Transfer-Encoding: chunked\r\n", 28);
  } else {
    close = 1; /* close-delimited for HTTP/1.0 */
  }
  int has_conn = !lua_isnil(L, conn);
  if (has_conn && (status == 101 || (!close && ra->minor >= 1) || conn_close)) {
    /* the handler's, as it set it (an upgrade's own; or nothing to add) */
    add_fields(L, b, "Connection", 10, conn);
  } else if (close) {
    hb_add(L, b, "Connection: close\r\n", 19);
  } else if (ra->minor == 0) {
    hb_add(L, b, "Connection: keep-alive\r\n", 24);
  }
  hb_add(L, b, "\r\n", 2);
  if (ra->body && !ra->bodyless) hb_add(L, b, ra->body, ra->bn);
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

int l_httpresponse(lua_State *L) {
  char stack[1024];
  hbuf b;
  resp_info ri;
  resp_args ra;
  resp_args_from(L, 1, &ra);
  resp_build(L, &ra, &b, stack, sizeof stack, &ri);
  lua_pushlstring(L, b.p, b.n);
  return 1 + push_resp_info(L, &ri);
}

/* What one head read needs: the parser's limits and, with tslot, the
   server's timeouts kept at stack slots tslot (the idle deadline, nil for
   none) and hslot (the header deadline, nil until the first byte), header
   being the header timeout in seconds (< 0: none). */
typedef struct {
  int request, tslot, hslot;
  size_t max_line, max_head, max_headers;
  const char *method;
  double header;
} head_run;

/* Read and parse one head off s's buffer. A head of r bytes parsed into
   *h: r, nothing pushed (the caller builds its object, then consumes r).
   Else 0 with *nres results pushed (nil, why, status; nil, "closed" |
   "timeout", bytes), or the thread parks and k goes on. */
static int head_loop(lua_State *L, gh_sock *s, int64_t total, const head_run *a,
                     http_head *h, lua_KFunction k, int *nres) {
  h->max_line = a->max_line;
  h->max_head = a->max_head;
  h->max_headers = a->max_headers;
  for (;;) {
    size_t len = buf_len(&s->buf);
    int r = HTTP_MORE;
    if (len > 0) r = a->request ? http_parse_request(buf_head(&s->buf), len, h)
                                : http_parse_response(buf_head(&s->buf), len, h);
    if (r > 0 && http_framing(h, a->request, a->method) < 0) r = HTTP_BAD;
    if (r == HTTP_BAD) {
      buf_consume(&s->buf, buf_len(&s->buf));
      lua_pushnil(L);
      lua_pushstring(L, h->why);
      lua_pushinteger(L, h->error);
      *nres = 3;
      return 0;
    }
    if (r > 0) return r;
    /* more bytes needed */
    if (s->fd < 0) { *nres = gh_fail(L, "closed"); return 0; }
    if (worth_reading(s, total)) {
      ssize_t got = sock_read_more(L, s, 4096, 0);
      if (got > 0) continue;
      if (got == 0) {
        lua_pushnil(L);
        lua_pushliteral(L, "closed");
        lua_pushinteger(L, (lua_Integer)buf_len(&s->buf)); /* bytes of a head cut short */
        *nres = 3;
        return 0;
      }
      if (got == -2) {
        *nres = push_errno(L, errno);
        /* a response's reader says how much of the head came first, as
           for a clean close (the client retries a reused connection that
           failed before any byte: a server that closed it with our request
           unread resets it, ECONNRESET, "closed" too) */
        if (!a->request) {
          lua_pushinteger(L, (lua_Integer)buf_len(&s->buf));
          (*nres)++;
        }
        return 0;
      }
    }
    /* the server's idle timeout until a byte of the head is here, then
       its header timeout (from that first byte); else the socket's own */
    int64_t d;
    if (a->tslot && !lua_isnil(L, a->tslot)) {
      if (buf_len(&s->buf) == 0) d = (int64_t)lua_tointeger(L, a->tslot);
      else {
        if (lua_isnil(L, a->hslot)) {
          lua_pushinteger(L, a->header < 0 ? -1 : hub_after(a->header));
          lua_replace(L, a->hslot);
        }
        d = (int64_t)lua_tointeger(L, a->hslot);
      }
    } else {
      d = wait_deadline(s, total); /* (a clock read: only when it is the one) */
    }
    if (hub_expired(d)) {
      lua_pushnil(L);
      lua_pushliteral(L, "timeout");
      lua_pushinteger(L, (lua_Integer)buf_len(&s->buf)); /* 0: idle; else a slow head */
      *nres = 3;
      return 0;
    }
    *nres = sock_park_read(L, s, d, total, k, "receive");
    return 0;
  }
}

/* _httphead's stack: 1 sock, 2 kind, 3-5 limits, 6 method, 7 idle
   deadline, 8 header timeout (s), 9 header deadline, 10 want fields */
static int head_step(lua_State *L, gh_sock *s, int64_t total) {
  lua_settop(L, 10);
  http_header hs[256];
  http_head h;
  memset(&h, 0, sizeof h);
  h.headers = hs;
  head_run a;
  a.request = strcmp(lua_tostring(L, 2), "request") == 0;
  a.max_line = (size_t)lua_tointeger(L, 3);
  a.max_head = (size_t)lua_tointeger(L, 4);
  a.max_headers = (size_t)lua_tointeger(L, 5);
  a.method = lua_tostring(L, 6);
  a.tslot = 7;
  a.hslot = 9;
  a.header = lua_isnil(L, 8) ? -1 : lua_tonumber(L, 8);
  int nres, r = head_loop(L, s, total, &a, &h, head_k, &nres);
  if (r == 0) return nres;
  push_head(L, &h, a.request, lua_toboolean(L, 10));
  buf_consume(&s->buf, (size_t)r);
  return 1;
}

/* After a head reader's wait: what to return (a failed wait's results,
   with the byte count after a timeout, as head_loop says it), or 0 to read
   on. */
static int head_woken(lua_State *L, gh_sock *s) {
  int r = gh_wait_failed(L, s->hub);
  if (r && hub_me(L, s->hub)->wake == WK_TIMEOUT) {
    lua_pushinteger(L, (lua_Integer)buf_len(&s->buf));
    return 3;
  }
  return r;
}

static int head_k(lua_State *L, int status, lua_KContext ctx) {
  gh_sock *s = lua_touserdata(L, 1);
  (void)status;
  int r = head_woken(L, s);
  return r ? r : head_step(L, s, (int64_t)ctx);
}

int sock_httphead(lua_State *L) {
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
  if (s->type != SOCK_STREAM || s->kind != K_CLIENT)
    return luaL_error(L, "greenhub: httphead is not available on %s", sock_class(s));
  /* a TLS handshake first: within the idle timeout, as the head would be */
  TLS_FIRST_BY(L, s, sock_httphead, TLS_SH_HEAD,
            idle >= 0 && idle != HUGE_VAL ? hub_after(idle) : wait_deadline(s, call_deadline(s)));
  lua_settop(L, 9);
  lua_pushinteger(L, ml); lua_replace(L, 3);
  lua_pushinteger(L, mh); lua_replace(L, 4);
  lua_pushinteger(L, mx); lua_replace(L, 5);
  lua_pushboolean(L, want_fields);                                            /* 10 */
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

int l_httpchunked(lua_State *L) {
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
      lua_pushnil(L);
      const char *why = push_trailers(L, bh + off, dl);
      buf_consume(&s->buf, used);
      if (why) {
        lua_pushstring(L, why);
        lua_pushinteger(L, 400);
        return 3;
      }
      lua_pushliteral(L, "end");
      lua_insert(L, -2);
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
  int r = gh_wait_failed(L, s->hub);
  return r ? r : chunk_step(L, s, (int64_t)ctx);
}

int sock_httpchunk(lua_State *L) {
  gh_sock *s = sock_check(L, 1);
  luaL_checkudata(L, 2, CHUNKED_MT);
  lua_Integer max = luaL_optinteger(L, 3, 65536);
  luaL_argcheck(L, max > 0, 3, "must be positive");
  if (s->type != SOCK_STREAM || s->kind != K_CLIENT)
    return luaL_error(L, "greenhub: httpchunk is not available on %s", sock_class(s));
  TLS_FIRST(L, s, sock_httpchunk, TLS_SH_PLAIN);
  lua_settop(L, 2);
  lua_pushinteger(L, max);
  return chunk_step(L, s, call_deadline(s));
}

/* ------------------------------------------------ the server's fast lane */

/*
 * greenhub.http's server reads each request with s:_httpreq, which builds
 * the request object and its response object in one go, and ends small
 * responses with the finisher (Response.finish), which writes head and
 * body from C (field names: the SK_* upvalues, above).
 */

/* A server's settings for _httpreq, made once per s:serve():
   core._httpcfg(max_line, max_head, max_headers, header_timeout, Request,
   Response) (nil limits: 8192, 65536, 100; header_timeout nil: none). */
typedef struct { unsigned magic; size_t max_line, max_head, max_headers; double header; } http_cfg;
#define HTTPCFG_MAGIC 0x68747470u

int l_httpcfg(lua_State *L) {
  lua_Integer ml = luaL_optinteger(L, 1, 8192), mh = luaL_optinteger(L, 2, 65536);
  lua_Integer mx = luaL_optinteger(L, 3, 100);
  luaL_argcheck(L, ml > 0, 1, "must be positive");
  luaL_argcheck(L, mh > 0, 2, "must be positive");
  luaL_argcheck(L, mx > 0 && mx <= 256, 3, "must be 1 to 256");
  double header = luaL_optnumber(L, 4, -1);
  luaL_checktype(L, 5, LUA_TTABLE);
  luaL_checktype(L, 6, LUA_TTABLE);
  http_cfg *c = lua_newuserdatauv(L, sizeof *c, 2);
  c->magic = HTTPCFG_MAGIC;
  c->max_line = (size_t)ml;
  c->max_head = (size_t)mh;
  c->max_headers = (size_t)mx;
  c->header = header == HUGE_VAL ? -1 : header;
  lua_pushvalue(L, 5); lua_setiuservalue(L, -2, 1);
  lua_pushvalue(L, 6); lua_setiuservalue(L, -2, 2);
  return 1;
}

/* Where the path begins in an absolute-form target (RFC 9112 3.2.2, which
   a server MUST accept: "GET http://host/a?b HTTP/1.1"): past the scheme
   and the authority; 0 for any other form. req.path and req.query are then
   the path's and query's, as in origin-form (Go's URL.Path, OpenResty's
   $uri); req.target stays as received. */
static size_t path_start(const char *t, size_t n) {
  size_t i;
  if (n >= 7 && strncasecmp(t, "http://", 7) == 0) i = 7;
  else if (n >= 8 && strncasecmp(t, "https://", 8) == 0) i = 8;
  else return 0;
  while (i < n && t[i] != '/' && t[i] != '?') i++;
  return i;
}

/* The request object of h (its head ending at end) and its response
   object; then the body's framing (nil: none; reading then ends at once).
   Stack: 3 conn, 6 Request, 7 Response. req.headers is not made here:
   the header lines are kept as one string, req._fields, until the first
   look at req.headers (l_headersindex), as OpenResty builds its header table
   only when asked -- a handler that never reads a header costs no table. */
static void push_request(lua_State *L, const http_head *h, const char *end) {
  size_t off = path_start(h->target, h->target_len);
  const char *pt = h->target + off; /* the path and query */
  size_t pn = h->target_len - off;
  const char *q = memchr(pt, '?', pn);
  int expect = h->expect_continue && h->minor;
  int nf = 5 + (h->nheaders > 0) + (q != NULL) + 2 * expect + !h->minor; /* _fields and, later, headers */
  if (h->body != HTTP_BODY_NONE) nf += 2 + (h->body == HTTP_BODY_LENGTH) + 4; /* _kind, _chunked, _left; the reader's */
  lua_createtable(L, 0, nf);
  int req = lua_gettop(L);
  /* the common methods are kept strings (no hashing them again) */
  int mk = h->method_len == 3 && !memcmp(h->method, "GET", 3) ? SK_GET
         : h->method_len == 4 && !memcmp(h->method, "POST", 4) ? SK_POST
         : h->method_len == 4 && !memcmp(h->method, "HEAD", 4) ? SK_HEAD : -1;
  if (mk >= 0) SSET(L, req, SK_METHOD, SKEY(L, mk));
  else SSET(L, req, SK_METHOD, lua_pushlstring(L, h->method, h->method_len));
  SSET(L, req, SK_TARGET, lua_pushlstring(L, h->target, h->target_len));
  if (off) { /* absolute-form: an empty path is "/" */
    size_t plen = q ? (size_t)(q - pt) : pn;
    if (plen) SSET(L, req, SK_PATH, lua_pushlstring(L, pt, plen));
    else SSET(L, req, SK_PATH, lua_pushliteral(L, "/"));
    if (q) SSET(L, req, SK_QUERY, lua_pushlstring(L, q + 1, pn - plen - 1));
  } else if (q) {
    SSET(L, req, SK_PATH, lua_pushlstring(L, h->target, (size_t)(q - h->target)));
    SSET(L, req, SK_QUERY, lua_pushlstring(L, q + 1, h->target_len - (size_t)(q + 1 - h->target)));
  } else {
    SKEY(L, SK_PATH);
    SKEY(L, SK_TARGET);
    lua_rawget(L, req);
    lua_rawset(L, req);
  }
  SSET(L, req, SK_CONN, lua_pushvalue(L, 3));
  if (expect) SSET(L, req, SK_EXPECT, lua_pushboolean(L, 1));
  if (!h->minor) SSET(L, req, SK_VERSION, lua_pushnumber(L, 1.0)); /* 1.1: Request's */
  set_field_lines(L, req, h, end);
  int kind = h->body == HTTP_BODY_NONE ? -1 : kind_key(h->body);
  if (kind >= 0) SSET(L, req, SK_KIND, SKEY(L, kind));
  if (h->body == HTTP_BODY_LENGTH) SSET(L, req, SK_LEFT, lua_pushinteger(L, (lua_Integer)h->length));
  lua_pushvalue(L, 6);
  lua_setmetatable(L, req);
  /* the response (status 200, headers_sent false, _keep true: Response's): room for
     what finishing adds. What its head depends on in the request, as
     received, is res._rq (nil: 0): 1 a HEAD, 2 HTTP/1.0 */
  lua_createtable(L, 0, 8);
  int res = lua_gettop(L);
  SSET(L, res, SK_HEADERS, lua_createtable(L, 0, 4));
  SSET(L, res, SK_SOCK, lua_pushvalue(L, 1));
  int rq = (mk == SK_HEAD) | (!h->minor << 1);
  if (rq) SSET(L, res, SK_RQ, lua_pushinteger(L, rq));
  if (!h->keep_alive) SSET(L, res, SK_KEEP, lua_pushboolean(L, 0)); /* true: Response's */
  lua_pushvalue(L, 7);
  lua_setmetatable(L, res);
  if (expect) SSET(L, req, SK_RES, lua_pushvalue(L, res)); /* the 100 is sent only before it starts */
  if (kind >= 0) SKEY(L, kind); else lua_pushnil(L);
}

static int req_k(lua_State *L, int status, lua_KContext ctx);

/* _httpreq's stack: 1 sock, 2 cfg, 3 conn, 4 idle deadline (nil: the
   socket's own timeout), 5 header deadline, 6 Request, 7 Response */
static int req_step(lua_State *L, gh_sock *s, int64_t total) {
  const http_cfg *c = lua_touserdata(L, 2);
  http_header hs[256];
  http_head h;
  memset(&h, 0, sizeof h);
  h.headers = hs;
  head_run a = {1, 4, 5, c->max_line, c->max_head, c->max_headers, NULL, c->header};
  int nres, r = head_loop(L, s, total, &a, &h, req_k, &nres);
  if (r == 0) return nres;
  push_request(L, &h, buf_head(&s->buf) + r - 2); /* the blank line's CRLF left out */
  buf_consume(&s->buf, (size_t)r);
  return 3;
}

static int req_k(lua_State *L, int status, lua_KContext ctx) {
  gh_sock *s = lua_touserdata(L, 1);
  (void)status;
  int r = head_woken(L, s);
  return r ? r : req_step(L, s, (int64_t)ctx);
}

/*
 * s:_httpreq(cfg, conn [, idle]) -> req, res, framing | nil, why, status |
 * nil, "closed" | "timeout", bytes: the next request on a server's
 * connection, read as _httphead reads one (idle: seconds until its first
 * byte, then cfg's header timeout; neither: the socket's own timeout).
 */
int sock_httpreq(lua_State *L) {
  gh_sock *s = sock_check(L, 1);
  const http_cfg *c = lua_touserdata(L, 2); /* checked by size and mark: no registry lookup */
  if (!c || lua_type(L, 2) != LUA_TUSERDATA || lua_rawlen(L, 2) != sizeof *c || c->magic != HTTPCFG_MAGIC)
    luaL_typeerror(L, 2, "http settings (core._httpcfg)");
  luaL_checktype(L, 3, LUA_TTABLE);
  double idle = luaL_optnumber(L, 4, -1);
  if (s->type != SOCK_STREAM || s->kind != K_CLIENT)
    return luaL_error(L, "greenhub: httpreq is not available on %s", sock_class(s));
  /* from this loop turn's clock (read once a turn): the idle wait of every
     request of a busy turn reads no clock of its own */
  gh_hub *h = s->hub;
  int64_t idle_d = -1;
  if (idle >= 0 && idle != HUGE_VAL)
    idle_d = h->in_loop && idle < 9.0e9 ? h->now + (int64_t)ceil(idle * 1e9) : hub_after(idle);
  TLS_FIRST_BY(L, s, sock_httpreq, TLS_SH_HEAD,
               idle_d >= 0 ? idle_d : wait_deadline(s, call_deadline(s)));
  lua_settop(L, 3);
  if (idle >= 0 || c->header >= 0) {
    lua_pushinteger(L, idle_d);                                              /* 4 */
    if (buf_len(&s->buf) > 0) lua_pushinteger(L, c->header >= 0 ? hub_after(c->header) : -1);
    else lua_pushnil(L);                                                     /* 5 */
  } else {
    lua_pushnil(L);
    lua_pushnil(L);
  }
  lua_getiuservalue(L, 2, 1);                                                /* 6 */
  lua_getiuservalue(L, 2, 2);                                                /* 7 */
  return req_step(L, s, call_deadline(s));
}

/*
 * The client's response object of h (its head ending at end) with mt as
 * its metatable: status, reason, keep_alive, version (when 1.0: mt's is
 * 1.1), _fields (res.headers on its first look, as req.headers), the
 * framing as _kind and _left; upgrade and expect_continue when set. With
 * inline (a fetch that is not streamed), a body that is all here already
 * (length-framed, up to inline bytes) or that cannot be (HEAD, 204, 304,
 * 1xx) is taken along: res.body, res._done, and the socket's buffer is
 * past it.
 */
static void push_response(lua_State *L, gh_sock *s, const http_head *h, const char *end,
                          lua_Integer inline_max, int mt) {
  int whole = inline_max > 0 && (h->body == HTTP_BODY_NONE ||
              (h->body == HTTP_BODY_LENGTH && h->length <= (uint64_t)inline_max &&
               buf_len(&s->buf) >= (size_t)(end + 2 - buf_head(&s->buf)) + h->length));
  lua_createtable(L, 0, whole ? 7 : 15);
  int res = lua_gettop(L);
  SSET(L, res, SK_STATUS, lua_pushinteger(L, h->status));
  SSET(L, res, SK_REASON, lua_pushlstring(L, h->reason, h->reason_len));
  if (!h->minor) SSET(L, res, SK_VERSION, lua_pushnumber(L, 1.0));
  SSET(L, res, SK_KEEP_ALIVE, lua_pushboolean(L, h->keep_alive));
  set_field_lines(L, res, h, end);
  if (h->expect_continue) SSET(L, res, SK_EXPECT_CONTINUE, lua_pushboolean(L, 1));
  if (h->upgrade) SSET(L, res, SK_UPGRADE, lua_pushboolean(L, 1));
  size_t head_len = (size_t)(end + 2 - buf_head(&s->buf));
  if (whole) {
    size_t n = h->body == HTTP_BODY_LENGTH ? (size_t)h->length : 0;
    SSET(L, res, SK_BODY, lua_pushlstring(L, buf_head(&s->buf) + head_len, n));
    SSET(L, res, SK_DONE, lua_pushboolean(L, 1));
    head_len += n;
  } else if (h->body != HTTP_BODY_NONE) {
    SSET(L, res, SK_KIND, SKEY(L, kind_key(h->body)));
    if (h->body == HTTP_BODY_LENGTH) SSET(L, res, SK_LEFT, lua_pushinteger(L, (lua_Integer)h->length));
  }
  lua_pushvalue(L, mt);
  lua_setmetatable(L, res);
  buf_consume(&s->buf, head_len);
}

static int res_k(lua_State *L, int status, lua_KContext ctx);

/* _httpres's stack: 1 sock, 2 method, 3 max_head, 4 inline_max, 5 mt */
static int res_step(lua_State *L, gh_sock *s, int64_t total) {
  http_header hs[256];
  http_head h;
  memset(&h, 0, sizeof h);
  h.headers = hs;
  head_run a = {0, 0, 0, 8192, (size_t)lua_tointeger(L, 3), 256, lua_tostring(L, 2), -1};
  int nres, r = head_loop(L, s, total, &a, &h, res_k, &nres);
  if (r == 0) return nres;
  push_response(L, s, &h, buf_head(&s->buf) + r - 2, lua_tointeger(L, 4), 5);
  return 1;
}

static int res_k(lua_State *L, int status, lua_KContext ctx) {
  gh_sock *s = lua_touserdata(L, 1);
  (void)status;
  int r = head_woken(L, s);
  return r ? r : res_step(L, s, (int64_t)ctx);
}

/*
 * s:_httpres(method, max_head, inline, mt) -> res | nil, why, status |
 * nil, "closed" | "timeout", bytes: the next response head on a client's
 * connection (the answer to a request with method), as greenhub.http's
 * response object (push_response), within the socket's own timeout.
 */
static int sock_httpres(lua_State *L) {
  gh_sock *s = sock_check(L, 1);
  luaL_checkstring(L, 2);
  lua_Integer mh = luaL_checkinteger(L, 3), inl = luaL_checkinteger(L, 4);
  luaL_argcheck(L, mh > 0, 3, "must be positive");
  luaL_argcheck(L, inl >= 0, 4, "must not be negative");
  luaL_checktype(L, 5, LUA_TTABLE);
  if (s->type != SOCK_STREAM || s->kind != K_CLIENT)
    return luaL_error(L, "greenhub: httpres is not available on %s", sock_class(s));
  TLS_FIRST(L, s, sock_httpres, TLS_SH_HEAD);
  lua_settop(L, 5);
  return res_step(L, s, call_deadline(s));
}

/* The field lines at idx (an object's _fields; nil: none) parsed again
   into *h, its headers array hs (room for 256); raises when they are not
   field lines (a handler may have set _fields) */
static void parse_field_lines(lua_State *L, int idx, http_head *h, http_header *hs) {
  memset(h, 0, sizeof *h);
  h->headers = hs;
  h->max_headers = 256;
  if (lua_type(L, idx) == LUA_TSTRING) {
    size_t n;
    const char *p = lua_tolstring(L, idx, &n);
    if (http_parse_trailers(p, n, h) < 0) luaL_error(L, "http: bad _fields (%s)", h->why);
  } else if (!lua_isnil(L, idx)) {
    luaL_error(L, "http: bad _fields (a %s)", luaL_typename(L, idx));
  }
}

/*
 * Request.__index (and the client's Resp.__index): the class's own fields
 * (methods, the 1.1 default), and obj.headers, made on its first look from
 * obj._fields (the header lines the head was parsed from: they parse again
 * as they did then) and kept. Upvalues: 1 the class, 2 "headers",
 * 3 "_fields".
 */
static int l_headersindex(lua_State *L) {
  lua_settop(L, 2);
  lua_pushvalue(L, 2);
  if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL || !lua_rawequal(L, 2, lua_upvalueindex(2)) ||
      !lua_istable(L, 1))
    return 1;
  http_header hs[256];
  http_head h;
  lua_pushvalue(L, lua_upvalueindex(3));
  lua_rawget(L, 1); /* 4 */
  parse_field_lines(L, 4, &h, hs);
  push_fields(L, &h, 0); /* 5 */
  lua_pushvalue(L, 2);
  lua_pushvalue(L, 5);
  lua_rawset(L, 1);
  return 1; /* (_fields stays: req:header_list() reads it) */
}

/* core._httpfieldlist([lines]) -> { {name, value}, ... }: the field lines
   a head was parsed from (req._fields) parsed again, in their order, the
   names as written */
int l_httpfieldlist(lua_State *L) {
  http_header hs[256];
  http_head h;
  lua_settop(L, 1);
  parse_field_lines(L, 1, &h, hs);
  lua_createtable(L, (int)h.nheaders, 0);
  for (size_t i = 0; i < h.nheaders; i++) {
    lua_createtable(L, 2, 0);
    lua_pushlstring(L, h.headers[i].name, h.headers[i].name_len);
    lua_rawseti(L, -2, 1);
    lua_pushlstring(L, h.headers[i].value, h.headers[i].value_len);
    lua_rawseti(L, -2, 2);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  return 1;
}

/* core._httpindex(class) -> the class's __index */
int l_httpindex(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  lua_pushliteral(L, "headers");
  lua_pushliteral(L, "_fields");
  lua_pushcclosure(L, l_headersindex, 3);
  return 1;
}

/* The finisher's own upvalues, after the names */
#define FIN_SLOW (2 + SK_N)    /* the Lua finish, for everything but the common case */
#define FIN_REASONS (3 + SK_N) /* status -> reason phrase */
#define FIN_REST (4 + SK_N)    /* function(res, sock, rest): what the socket did not take */
#define FIN_ANSWER (5 + SK_N)  /* the Lua answer(res, status, headers, body) */

/* the results of a Lua function called at stack level base */
static int fin_k(lua_State *L, int status, lua_KContext base) {
  (void)status;
  return lua_gettop(L) - (int)base;
}

/* the string at idx (nil: none, "") as a whole body the fast path takes
   (under 2 KiB), or NULL */
static const char *small_body(lua_State *L, int idx, size_t *bn) {
  int t = lua_type(L, idx);
  *bn = 0;
  if (t == LUA_TNIL) return "";
  if (t != LUA_TSTRING) return NULL;
  const char *b = lua_tolstring(L, idx, bn);
  return *bn < 2048 ? b : NULL;
}

/* the Lua side (upvalue up) with the nargs arguments on the stack */
static int lua_side(lua_State *L, int nargs, int up) {
  lua_settop(L, nargs);
  lua_pushvalue(L, lua_upvalueindex(up));
  lua_insert(L, 1);
  lua_callk(L, nargs, LUA_MULTRET, 0, fin_k);
  return lua_gettop(L);
}

/* res (stack 1) not started in any way: not finished, no head sent, nothing
   buffered, no failed send; its socket pushed (a plain or ready TLS stream)
   or NULL (the Lua side then) */
static gh_sock *fresh_response(lua_State *L) {
  int top = lua_gettop(L);
  sget(L, 1, SK_FINISHED);
  sget(L, 1, SK_HEADERS_SENT);
  sget(L, 1, SK_NBUF);
  sget(L, 1, SK_FAILED);
  int used = lua_toboolean(L, top + 1) || lua_toboolean(L, top + 2) || lua_toboolean(L, top + 3) ||
             lua_toboolean(L, top + 4);
  lua_settop(L, top);
  if (used) return NULL;
  sget(L, 1, SK_SOCK);
  gh_sock *s = sock_test(L, -1);
  if (!s || s->type != SOCK_STREAM || s->kind != K_CLIENT || (s->tls && !tls_ready(s))) return NULL;
  return s;
}

/*
 * Finish res (stack 1) here: status, body (anchored on the stack), the head's
 * fields from the table at hidx, the socket s at sidx; head and body in one
 * write from C as far as the socket takes them (the rest through FIN_REST).
 * Returns as res:finish does; or -1, nothing done, when res._keep is a
 * request whose body is not read yet (the Lua side settles whether the
 * connection stays: settle_keep), or when the body is longer than the
 * handler's own Content-Length (the Lua side sends what that announced).
 */
static int finish_fast(lua_State *L, gh_sock *s, int sidx, int hidx, lua_Integer status,
                       const char *body, size_t bn) {
  resp_args ra;
  ra.headers = hidx;
  ra.status = status;
  ra.body = body;
  ra.bn = bn;
  int top = lua_gettop(L);
  lua_Integer rq = sget(L, 1, SK_RQ) == LUA_TNIL ? 0 : lua_tointeger(L, -1);
  int nobody = status < 200 || status == 204 || status == 304, is_head = rq & 1;
  ra.head = !nobody && is_head;
  ra.bodyless = nobody || is_head;
  ra.minor = !(rq & 2);
  int kt = sget(L, 1, SK_KEEP);
  int settled = kt == LUA_TTABLE; /* the request, its body not known read: read now? */
  if (settled) {
    SKEY(L, SK_DONE);
    if (lua_rawget(L, -2) == LUA_TNIL || !lua_toboolean(L, -1)) { /* the Lua side settles it */
      lua_settop(L, top);
      return -1;
    }
  }
  ra.keep = settled || kt == LUA_TNIL || lua_toboolean(L, -1); /* nil: Response's true */
  lua_settop(L, top);
  if (lua_rawgeti(L, lua_upvalueindex(FIN_REASONS), status) == LUA_TSTRING) /* (stays: anchored) */
    ra.reason = lua_tolstring(L, -1, &ra.rn);
  else
    ra.reason = "Unknown", ra.rn = 7;
  ra.has_length = 1;
  ra.length = (lua_Integer)bn;
  char stack[1024];
  hbuf b;
  resp_info ri;
  resp_build(L, &ra, &b, stack, sizeof stack, &ri);              /* may raise: nothing sent */
  if (ri.handler_len >= 0 && !ra.bodyless && (lua_Integer)bn > ri.handler_len) {
    lua_settop(L, top); /* longer than the handler's own Content-Length: the Lua side's */
    return -1;
  }
  SSET(L, 1, SK_FINISHED, lua_pushboolean(L, 1));
  SSET(L, 1, SK_HEADERS_SENT, lua_pushboolean(L, 1));
  size_t done = 0;
  const char *err = NULL;
  if (!s->coalesce && buf_len(&s->out) == 0 && !s->out_err) {
    while (done < b.n) {
      if (s->fd < 0) { err = "closed"; break; }
      ssize_t n = sock_write_some(s, b.p + done, b.n - done);
      if (n >= 0) { done += (size_t)n; s->nsent += (double)n; continue; }
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) err = sock_strerror(errno);
      break;
    }
  }
  if (err) {
    SSET(L, 1, SK_FAILED, lua_pushstring(L, err));
    SSET(L, 1, SK_KEEP, lua_pushboolean(L, 0));
    return gh_fail(L, err);
  }
  int keep = ri.keep;
  if (ri.handler_len >= 0 && !ra.bodyless) {
    SSET(L, 1, SK_LENGTH, lua_pushinteger(L, ri.handler_len));
    if ((lua_Integer)bn != ri.handler_len) keep = 0;
  }
  if (keep != ra.keep || settled) SSET(L, 1, SK_KEEP, lua_pushboolean(L, keep));
  if (done == b.n) {
    lua_pushboolean(L, 1);
    return 1;
  }
  /* the rest waits for the socket, through its send: FIN_REST(res, sock, rest) */
  lua_pushlstring(L, b.p + done, b.n - done);
  int base = lua_gettop(L);
  lua_pushvalue(L, lua_upvalueindex(FIN_REST));
  lua_pushvalue(L, 1);
  lua_pushvalue(L, sidx);
  lua_pushvalue(L, base);
  lua_callk(L, 3, LUA_MULTRET, base, fin_k);
  return lua_gettop(L) - base;
}

/*
 * res:finish([body [, trailers]]): a whole body of a string under 2 KiB
 * (or none) with nothing written yet (and no trailers) goes out here, head
 * and body in one write from C as far as the socket takes them; anything
 * else is the Lua finish's.
 * Stack: 1 res, 2 body, 3 trailers, then 4 the socket, 5 the headers.
 */
static int l_httpfinish(lua_State *L) {
  lua_settop(L, 3);
  size_t bn;
  const char *body = small_body(L, 2, &bn);
  /* (trailers: chunked, Lua's; a finished one too: its finish says true) */
  if (lua_type(L, 1) != LUA_TTABLE || !body || !lua_isnil(L, 3)) goto slow;
  gh_sock *s = fresh_response(L);                                /* 4: the socket */
  if (!s) goto slow;
  if (sget(L, 1, SK_HEADERS) != LUA_TTABLE) goto slow;           /* 5 */
  int st = sget(L, 1, SK_STATUS);                                /* 6 */
  if (st != LUA_TNIL && !lua_isinteger(L, 6))
    return luaL_error(L, "http: bad response status %s", luaL_tolstring(L, 6, NULL));
  lua_Integer status = st == LUA_TNIL ? 200 : lua_tointeger(L, 6); /* nil: Response's 200 */
  lua_settop(L, 5);
  int r = finish_fast(L, s, 4, 5, status, body, bn);
  if (r >= 0) return r;
slow:
  return lua_side(L, 3, FIN_SLOW);
}

/*
 * answer(res, status, headers, body): what a handler returned, the server's
 * loop hands it here. An integer status, a string body under 2 KiB (or
 * none), and no headers or headers into a response that has none of its
 * own go out as res:finish's common case -- the handler's table read as it
 * is, nothing written into it; anything else is the Lua answer's. Stack:
 * 1 res, 2 status, 3 headers, 4 body, then 5 the socket, 6 res.headers.
 */
static int l_httpanswer(lua_State *L) {
  lua_settop(L, 4);
  int ht = lua_type(L, 3);
  size_t bn;
  const char *body = small_body(L, 4, &bn);
  if (lua_type(L, 1) != LUA_TTABLE || !lua_isinteger(L, 2) || (ht != LUA_TNIL && ht != LUA_TTABLE) ||
      !body)
    goto slow;
  gh_sock *s = fresh_response(L);                                /* 5: the socket */
  if (!s) goto slow;
  if (sget(L, 1, SK_HEADERS) != LUA_TTABLE) goto slow;           /* 6 */
  int hidx = 6;
  if (ht == LUA_TTABLE) {
    lua_pushnil(L);
    if (lua_next(L, 6)) goto slow; /* the handler set some on res too: merged in Lua */
    hidx = 3;
  }
  int r = finish_fast(L, s, 5, hidx, lua_tointeger(L, 2), body, bn);
  if (r >= 0) return r;
slow:
  return lua_side(L, 4, FIN_ANSWER);
}

/* core._httpfinisher(slow, reasons, send_rest, answer) -> the finisher,
   the answerer */
int l_httpfinisher(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  luaL_checktype(L, 2, LUA_TTABLE);
  luaL_checktype(L, 3, LUA_TFUNCTION);
  luaL_checktype(L, 4, LUA_TFUNCTION);
  for (int f = 0; f < 2; f++) {
    push_field_upvalues(L, lua_upvalueindex(1));
    for (int i = 1; i <= 4; i++) lua_pushvalue(L, i);
    lua_pushcclosure(L, f ? l_httpanswer : l_httpfinish, 1 + SK_N + 4);
  }
  return 2;
}

/* methods._httphead, _httpreq and _httpres, each with the hub (at hub)
   and the field names as upvalues */
void set_http_methods(lua_State *L, int methods, int hub) {
  static const luaL_Reg fns[] = {{"_httphead", sock_httphead}, {"_httpreq", sock_httpreq},
                                 {"_httpres", sock_httpres}, {NULL, NULL}};
  methods = lua_absindex(L, methods);
  for (const luaL_Reg *f = fns; f->name; f++) {
    push_field_upvalues(L, hub);
    lua_pushcclosure(L, f->func, 1 + SK_N);
    lua_setfield(L, methods, f->name);
  }
}
