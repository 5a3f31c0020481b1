/*
 * libFuzzer target over greenhub.websocket's framing (csrc/wsframe.c):
 * frame headers from both sides, unmasking, and the UTF-8 validator checked
 * against a plain reference decoder written from RFC 3629's table.
 */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../csrc/wsframe.h"

/* reference: 1 valid, 0 invalid; a cut-off last character counts as valid
   when what is there could start a valid one (*tail its length) */
static int ref_utf8(const unsigned char *s, size_t n, size_t *tail) {
  *tail = 0;
  size_t i = 0;
  while (i < n) {
    unsigned c = s[i];
    uint32_t cp;
    size_t len;
    if (c < 0x80) { i++; continue; }
    else if ((c & 0xe0) == 0xc0) { len = 2; cp = c & 0x1f; }
    else if ((c & 0xf0) == 0xe0) { len = 3; cp = c & 0x0f; }
    else if ((c & 0xf8) == 0xf0) { len = 4; cp = c & 0x07; }
    else return 0;
    size_t have = n - i < len ? n - i : len;
    for (size_t k = 1; k < have; k++) {
      if ((s[i + k] & 0xc0) != 0x80) return 0;
      cp = cp << 6 | (s[i + k] & 0x3f);
    }
    if (have < len) {
      /* the smallest and largest code points this prefix can still become */
      uint32_t lo = cp, hi = cp;
      for (size_t k = have; k < len; k++) { lo <<= 6; hi = hi << 6 | 0x3f; }
      static const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
      if (hi < min[len] || lo > 0x10ffff) return 0;
      if (lo >= 0xd800 && hi <= 0xdfff) return 0;
      *tail = have;
      return 1;
    }
    static const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    i += len;
  }
  return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  size_t tail, rtail;
  int ok = ws_utf8(data, size, &tail) == 0;
  int rok = ref_utf8(data, size, &rtail);
  assert(ok == rok);
  if (ok) assert(tail == rtail);
  for (int server = 0; server <= 1; server++) {
    ws_hdr h;
    memset(&h, 0, sizeof h);
    int r = ws_header(data, size, server, 1 << 20, &h);
    assert(r == WS_OK || r == WS_MORE || r == WS_BAD);
    if (r == WS_BAD) { assert(h.why && (h.code == 1002 || h.code == 1009)); continue; }
    if (r != WS_OK) continue;
    assert(h.hlen >= 2 && h.hlen <= 14 && h.hlen <= size);
    assert(h.masked == server);
    if (h.op >= WS_CLOSE) assert(h.fin && h.plen <= 125);
    else assert(h.plen <= (1 << 20));
    size_t n = size - h.hlen < h.plen ? size - h.hlen : (size_t)h.plen;
    char *out = malloc(n ? n : 1);
    ws_unmask(out, (const char *)data + h.hlen, n, h.key);
    for (size_t i = 0; i < n; i++) assert((unsigned char)out[i] == (data[h.hlen + i] ^ (h.masked ? h.key[i & 3] : h.key[i & 3])));
    ws_utf8((const unsigned char *)out, n, &tail);
    free(out);
  }
  return 0;
}
