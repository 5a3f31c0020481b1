/*
 * wsframe.c - RFC 6455 frame headers, unmasking and UTF-8 validation: the
 * parts of greenhub.websocket that see a peer's bytes, with no Lua in them
 * (websocket.c calls them; spec/fuzz/fuzz_ws.c attacks them).
 */
#include <string.h>

#include "wsframe.h"


static int ws_bad(ws_hdr *h, int code, const char *why) {
  h->code = code;
  h->why = why;
  return WS_BAD;
}

/*
 * Parse a frame header from p[0..n). WS_OK (h filled), WS_MORE (not all of
 * the header is here yet), or WS_BAD (h->code, h->why). server: frames
 * come from a client and must be masked; a server's must not be. max
 * bounds a data frame's payload (1009 beyond it).
 */
int ws_header(const unsigned char *p, size_t n, int server, uint64_t max, ws_hdr *h) {
  if (n < 2) return WS_MORE;
  h->fin = (p[0] & 0x80) != 0;
  h->op = p[0] & 0x0f;
  h->masked = (p[1] & 0x80) != 0;
  if (p[0] & 0x70) return ws_bad(h, 1002, "reserved bits set");
  if (!(h->op <= WS_BINARY || (h->op >= WS_CLOSE && h->op <= WS_PONG)))
    return ws_bad(h, 1002, "unknown opcode");
  if (server && !h->masked) return ws_bad(h, 1002, "unmasked client frame");
  if (!server && h->masked) return ws_bad(h, 1002, "masked server frame");
  unsigned len7 = p[1] & 0x7f;
  if (h->op >= WS_CLOSE) {
    if (!h->fin) return ws_bad(h, 1002, "fragmented control frame");
    if (len7 > 125) return ws_bad(h, 1002, "control frame over 125 bytes");
  }
  size_t need = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + (h->masked ? 4 : 0);
  if (n < need) return WS_MORE;
  const unsigned char *q = p + 2;
  if (len7 == 126) {
    h->plen = (uint64_t)q[0] << 8 | q[1];
    q += 2;
  } else if (len7 == 127) {
    if (q[0] & 0x80) return ws_bad(h, 1002, "payload length over 2^63");
    h->plen = 0;
    for (int i = 0; i < 8; i++) h->plen = h->plen << 8 | q[i];
    q += 8;
  } else {
    h->plen = len7;
  }
  if (h->masked) memcpy(h->key, q, 4);
  h->hlen = need;
  if (h->op < WS_CLOSE && h->plen > max) return ws_bad(h, 1009, "message too big");
  return WS_OK;
}

/* out[i] = in[i] ^ key[(i + phase) % 4], a word at a time */
void ws_unmask(char *out, const char *in, size_t n, const unsigned char key[4]) {
  uint64_t k8;
  unsigned char kb[8];
  for (int i = 0; i < 8; i++) kb[i] = key[i & 3];
  memcpy(&k8, kb, 8);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    memcpy(&w, in + i, 8);
    w ^= k8;
    memcpy(out + i, &w, 8);
  }
  for (; i < n; i++) out[i] = (char)(in[i] ^ key[i & 3]);
}

/*
 * Validate UTF-8 (RFC 3629: no overlongs, no surrogates, nothing past
 * U+10FFFF). Returns 0 when valid, with *tail the length of a sequence cut
 * off by the end of s that is valid as far as it goes (0 when s ends on a
 * character boundary); -1 when invalid.
 */
int ws_utf8(const unsigned char *s, size_t n, size_t *tail) {
  size_t i = 0;
  *tail = 0;
  while (i < n) {
    if (i + 8 <= n) { /* ASCII, eight at a time */
      uint64_t w;
      memcpy(&w, s + i, 8);
      if (!(w & 0x8080808080808080ULL)) { i += 8; continue; }
    }
    unsigned c = s[i];
    if (c < 0x80) { i++; continue; }
    size_t len;
    unsigned lo = 0x80, hi = 0xbf; /* the range of the second byte */
    if (c >= 0xc2 && c <= 0xdf) len = 2;
    else if (c >= 0xe0 && c <= 0xef) {
      len = 3;
      if (c == 0xe0) lo = 0xa0;        /* no overlongs */
      else if (c == 0xed) hi = 0x9f;   /* no surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
      len = 4;
      if (c == 0xf0) lo = 0x90;
      else if (c == 0xf4) hi = 0x8f;   /* nothing past U+10FFFF */
    } else {
      return -1;
    }
    for (size_t k = 1; k < len; k++) {
      if (i + k >= n) { *tail = k; return 0; } /* cut off: valid so far */
      unsigned b = s[i + k];
      if (k == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xbf)) return -1;
    }
    i += len;
  }
  return 0;
}

