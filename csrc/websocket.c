/*
 * websocket.c - RFC 6455 framing for greenhub.websocket: frame headers
 * checked against every rule of the protocol, payloads unmasked a word at a
 * time, UTF-8 validated with an ASCII fast path, frames built for sending
 * (masking keys from getrandom), and the handshake's accept key (SHA-1 and
 * base64, written here: no new dependency).
 *
 * Two readers share one parser: sock:_wsframe reads straight out of a green
 * socket's receive buffer (parking while a frame is incomplete), and
 * core._wsparse works on a string, for TLS connections whose bytes arrive
 * through LuaSec.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "sock.h"
#include "wsframe.h"

/* ---------------------------------------------------------------- reading */

/*
 * Push the frame whose header is h from p (the payload unmasked): fin,
 * opcode, payload; a whole text frame's UTF-8 is checked here (1007).
 * Returns the number of values, or -1 after pushing nil, "protocol",
 * code, why.
 */
static int ws_push_frame(lua_State *L, const ws_hdr *h, const char *p) {
  int top = lua_gettop(L);
  size_t n = (size_t)h->plen;
  const char *payload = p + h->hlen;
  if (h->op == WS_TEXT && h->fin) {
    size_t tail;
    /* masked payloads are checked after unmasking, below */
    if (!h->masked && (ws_utf8((const unsigned char *)payload, n, &tail) < 0 || tail))
      goto bad_utf8;
  }
  lua_pushboolean(L, h->fin);
  lua_pushinteger(L, h->op);
  if (h->masked) {
    luaL_Buffer b;
    char *out = luaL_buffinitsize(L, &b, n);
    ws_unmask(out, payload, n, h->key);
    if (h->op == WS_TEXT && h->fin) {
      size_t tail;
      if (ws_utf8((const unsigned char *)out, n, &tail) < 0 || tail) {
        lua_settop(L, top); /* fin, op and the buffer go */
        goto bad_utf8;
      }
    }
    luaL_pushresultsize(&b, n);
  } else {
    lua_pushlstring(L, payload, n);
  }
  return 3;
bad_utf8:
  lua_pushnil(L);
  lua_pushliteral(L, "protocol");
  lua_pushinteger(L, 1007);
  lua_pushliteral(L, "invalid UTF-8 in a text frame");
  return -1;
}

static int ws_push_bad(lua_State *L, const ws_hdr *h) {
  lua_pushnil(L);
  lua_pushliteral(L, "protocol");
  lua_pushinteger(L, h->code);
  lua_pushstring(L, h->why);
  return 4;
}

static uint64_t check_max(lua_State *L, int arg) {
  lua_Integer m = luaL_checkinteger(L, arg);
  luaL_argcheck(L, m >= 0, arg, "must not be negative");
  return (uint64_t)m;
}

/*
 * core._wsparse(s, server, max [, init=1]) -> fin, opcode, payload, next
 * (the index after the frame), or nil, "more" (the frame is not all there),
 * or nil, "protocol", code, why.
 */
static int l_wsparse(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  int server = lua_toboolean(L, 2);
  uint64_t max = check_max(L, 3);
  lua_Integer init = luaL_optinteger(L, 4, 1);
  luaL_argcheck(L, init >= 1 && (size_t)init <= n + 1, 4, "out of range");
  s += init - 1;
  n -= (size_t)(init - 1);
  ws_hdr h;
  int r = ws_header((const unsigned char *)s, n, server, max, &h);
  if (r == WS_BAD) return ws_push_bad(L, &h);
  if (r == WS_MORE || n - h.hlen < h.plen) {
    lua_pushnil(L);
    lua_pushliteral(L, "more");
    return 2;
  }
  int k = ws_push_frame(L, &h, s);
  if (k < 0) return 4;
  lua_pushinteger(L, init + (lua_Integer)(h.hlen + h.plen));
  return 4;
}

static int wsframe_k(lua_State *L, int status, lua_KContext ctx);

/* Stack: sock server max. */
static int wsframe_step(lua_State *L, gh_sock *s, int64_t total) {
  int server = lua_toboolean(L, 2);
  uint64_t max = (uint64_t)lua_tointeger(L, 3);
  for (;;) {
    size_t len = buf_len(&s->buf);
    const char *p = len ? buf_head(&s->buf) : "";
    ws_hdr h;
    int r = ws_header((const unsigned char *)p, len, server, max, &h);
    if (r == WS_BAD) return ws_push_bad(L, &h);
    size_t want = 4096;
    if (r == WS_OK) {
      size_t whole = h.hlen + (size_t)h.plen;
      if (len >= whole) {
        int k = ws_push_frame(L, &h, p);
        buf_consume(&s->buf, whole);
        return k < 0 ? 4 : k;
      }
      if (whole - len > want) want = whole - len; /* room for the rest at once */
    }
    int more = sock_more(L, s, total, want, 0, wsframe_k, "receive");
    if (more != READ_AGAIN) return more;
  }
}

static int wsframe_k(lua_State *L, int status, lua_KContext ctx) {
  gh_sock *s = lua_touserdata(L, 1);
  (void)status;
  int r = gh_wait_failed(L, s->hub);
  return r ? r : wsframe_step(L, s, (int64_t)ctx);
}

/*
 * sock:_wsframe(server, max) -> fin, opcode, payload; nil, "closed" |
 * "timeout" | err; or nil, "protocol", code, why. Bytes after the frame
 * stay buffered.
 */
int sock_wsframe(lua_State *L) {
  gh_sock *s = sock_check(L, 1);
  if (s->type != SOCK_STREAM || s->kind != K_CLIENT)
    return luaL_error(L, "greenhub: wsframe is not available on %s", sock_class(s));
  TLS_FIRST(L, s, sock_wsframe, TLS_SH_PLAIN);
  int server = lua_toboolean(L, 2);
  uint64_t max = check_max(L, 3);
  lua_settop(L, 1);
  lua_pushboolean(L, server);
  lua_pushinteger(L, (lua_Integer)max);
  return wsframe_step(L, s, call_deadline(s));
}

/* ---------------------------------------------------------------- writing */

/* Masking keys: unpredictable (RFC 6455 10.3), from getrandom, in batches. */
static __thread unsigned char rnd_pool[256];
static __thread size_t rnd_left;

static void ws_random(unsigned char out[4]) {
  if (rnd_left < 4) {
    size_t got = 0;
    while (got < sizeof rnd_pool) {
      ssize_t r = getrandom(rnd_pool + got, sizeof rnd_pool - got, 0);
      if (r < 0) {
        if (errno == EINTR) continue;
        break;
      }
      got += (size_t)r;
    }
    rnd_left = got;
    if (rnd_left < 4) { /* no getrandom: a weak fallback beats none */
      for (size_t i = 0; i < sizeof rnd_pool; i++)
        rnd_pool[i] = (unsigned char)((uintptr_t)&rnd_left >> (i % 8) ^ (unsigned)hub_clock() ^ i * 131u);
      rnd_left = sizeof rnd_pool;
    }
  }
  rnd_left -= 4;
  memcpy(out, rnd_pool + rnd_left, 4);
}

/*
 * core._wsencode(opcode, payload [, mask [, fin=true]]) -> the frame. A
 * client masks (mask true), a server does not.
 */
static int l_wsencode(lua_State *L) {
  lua_Integer op = luaL_checkinteger(L, 1);
  size_t n;
  const char *payload = luaL_optlstring(L, 2, "", &n);
  int mask = lua_toboolean(L, 3);
  int fin = lua_isnoneornil(L, 4) ? 1 : lua_toboolean(L, 4);
  luaL_argcheck(L, op >= 0 && op <= 15, 1, "invalid opcode");
  if (op >= WS_CLOSE) luaL_argcheck(L, n <= 125, 2, "control frame payload over 125 bytes");
  unsigned char hdr[14];
  size_t hl = 2;
  hdr[0] = (unsigned char)((fin ? 0x80 : 0) | op);
  if (n < 126) {
    hdr[1] = (unsigned char)n;
  } else if (n <= 0xffff) {
    hdr[1] = 126;
    hdr[2] = (unsigned char)(n >> 8);
    hdr[3] = (unsigned char)n;
    hl = 4;
  } else {
    hdr[1] = 127;
    for (int i = 0; i < 8; i++) hdr[2 + i] = (unsigned char)((uint64_t)n >> (56 - 8 * i));
    hl = 10;
  }
  unsigned char key[4];
  if (mask) {
    hdr[1] |= 0x80;
    ws_random(key);
    memcpy(hdr + hl, key, 4);
    hl += 4;
  }
  luaL_Buffer b;
  char *out = luaL_buffinitsize(L, &b, hl + n);
  memcpy(out, hdr, hl);
  if (mask) ws_unmask(out + hl, payload, n, key);
  else memcpy(out + hl, payload, n);
  luaL_pushresultsize(&b, hl + n);
  return 1;
}

/*
 * core._wsutf8(s [, final]) -> true, tail (bytes of a character cut off
 * at the end, to be completed by the next fragment), or false. final:
 * a cut-off character is invalid too.
 */
static int l_wsutf8(lua_State *L) {
  size_t n, tail;
  const char *s = luaL_checklstring(L, 1, &n);
  int final = lua_toboolean(L, 2);
  if (ws_utf8((const unsigned char *)s, n, &tail) < 0 || (final && tail)) {
    lua_pushboolean(L, 0);
    return 1;
  }
  lua_pushboolean(L, 1);
  lua_pushinteger(L, (lua_Integer)tail);
  return 2;
}

/* ---------------------------------------------------------------- handshake */

/* SHA-1 (FIPS 180-4), for the accept key only: not a security use. */
typedef struct { uint32_t h[5]; uint64_t len; unsigned char blk[64]; size_t n; } sha1_ctx;

static uint32_t rol(uint32_t x, int k) { return x << k | x >> (32 - k); }

static void sha1_block(sha1_ctx *c, const unsigned char *p) {
  uint32_t w[80];
  for (int i = 0; i < 16; i++)
    w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
  for (int i = 16; i < 80; i++) w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
  uint32_t a = c->h[0], b = c->h[1], cc = c->h[2], d = c->h[3], e = c->h[4];
  for (int i = 0; i < 80; i++) {
    uint32_t f, k;
    if (i < 20) { f = (b & cc) | (~b & d); k = 0x5a827999; }
    else if (i < 40) { f = b ^ cc ^ d; k = 0x6ed9eba1; }
    else if (i < 60) { f = (b & cc) | (b & d) | (cc & d); k = 0x8f1bbcdc; }
    else { f = b ^ cc ^ d; k = 0xca62c1d6; }
    uint32_t t = rol(a, 5) + f + e + k + w[i];
    e = d; d = cc; cc = rol(b, 30); b = a; a = t;
  }
  c->h[0] += a; c->h[1] += b; c->h[2] += cc; c->h[3] += d; c->h[4] += e;
}

static void sha1_update(sha1_ctx *c, const unsigned char *p, size_t n) {
  c->len += n;
  while (n > 0) {
    size_t k = 64 - c->n < n ? 64 - c->n : n;
    memcpy(c->blk + c->n, p, k);
    c->n += k; p += k; n -= k;
    if (c->n == 64) { sha1_block(c, c->blk); c->n = 0; }
  }
}

static void sha1(const unsigned char *p, size_t n, unsigned char out[20]) {
  sha1_ctx c = {{0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0}, 0, {0}, 0};
  sha1_update(&c, p, n);
  uint64_t bits = c.len * 8;
  unsigned char pad = 0x80, zero = 0, lenb[8];
  sha1_update(&c, &pad, 1);
  while (c.n != 56) sha1_update(&c, &zero, 1);
  for (int i = 0; i < 8; i++) lenb[i] = (unsigned char)(bits >> (56 - 8 * i));
  sha1_update(&c, lenb, 8);
  for (int i = 0; i < 5; i++) {
    out[4 * i] = (unsigned char)(c.h[i] >> 24);
    out[4 * i + 1] = (unsigned char)(c.h[i] >> 16);
    out[4 * i + 2] = (unsigned char)(c.h[i] >> 8);
    out[4 * i + 3] = (unsigned char)c.h[i];
  }
}

static size_t base64(const unsigned char *p, size_t n, char *out) {
  static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t o = 0;
  for (size_t i = 0; i < n; i += 3) {
    uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
    out[o++] = t[v >> 18 & 63];
    out[o++] = t[v >> 12 & 63];
    out[o++] = i + 1 < n ? t[v >> 6 & 63] : '=';
    out[o++] = i + 2 < n ? t[v & 63] : '=';
  }
  return o;
}

/* core._wsaccept(key) -> base64(SHA-1(key .. the RFC's GUID)) */
static int l_wsaccept(lua_State *L) {
  size_t n;
  const char *key = luaL_checklstring(L, 1, &n);
  static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  luaL_argcheck(L, n <= 256, 1, "key too long");
  unsigned char in[256 + sizeof guid], dig[20];
  memcpy(in, key, n);
  memcpy(in + n, guid, sizeof guid - 1);
  sha1(in, n + sizeof guid - 1, dig);
  char out[28];
  lua_pushlstring(L, out, base64(dig, 20, out));
  return 1;
}

/* core._wskey() -> a fresh Sec-WebSocket-Key (16 random bytes, base64) */
static int l_wskey(lua_State *L) {
  unsigned char k[16];
  for (int i = 0; i < 16; i += 4) ws_random(k + i);
  char out[24];
  lua_pushlstring(L, out, base64(k, 16, out));
  return 1;
}

/* core._b64(s) -> s in base64 (the HTTP client's Basic credentials) */
static int l_b64(lua_State *L) {
  size_t n;
  const unsigned char *p = (const unsigned char *)luaL_checklstring(L, 1, &n);
  luaL_argcheck(L, n <= 65536, 1, "too long");
  luaL_Buffer b;
  char *out = luaL_buffinitsize(L, &b, (n + 2) / 3 * 4);
  luaL_pushresultsize(&b, base64(p, n, out));
  return 1;
}

static const luaL_Reg ws_funcs[] = {
  {"_wsparse", l_wsparse}, {"_wsencode", l_wsencode}, {"_wsutf8", l_wsutf8},
  {"_wsaccept", l_wsaccept}, {"_wskey", l_wskey}, {"_b64", l_b64},
  {NULL, NULL}
};

void websocket_open(lua_State *L, int mod, int hub) {
  gh_setfuncs(L, mod, hub, ws_funcs);
}
