/*
 * libFuzzer target for the HTTP head parser and chunked decoder (http.c).
 *
 * Input: byte 0 picks request/response and seeds a PRNG for split points;
 * the rest is the message. Checks: a complete head lies within the input,
 * its spans lie within the head, names are tokens and values hold no CR,
 * LF or NUL; every shorter prefix of a complete head is "more" (never
 * another answer); a longer input gives the same head length; a rejection
 * carries a 4xx/5xx status. The same bytes then go through the chunked
 * decoder in random pieces: data never exceeds the input and the decoder's
 * answer does not depend on how the input was split.
 *   make fuzz   (clang, bounded time; corpus in spec/fuzz/corpus_http)
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../csrc/http.h"

#define CHECK(c) do { if (!(c)) abort(); } while (0)

static int tchar(unsigned char c) {
  return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') ||
         (c && strchr("!#$%&'*+-.^_`|~", c));
}

static int parse(const char *b, size_t n, int req, http_head *h, http_header *hs) {
  memset(h, 0, sizeof *h);
  h->max_line = 256;
  h->max_head = 2048;
  h->max_headers = 16;
  h->headers = hs;
  return req ? http_parse_request(b, n, h) : http_parse_response(b, n, h);
}

/* decode the whole of b (split by the PRNG); returns data bytes, or -1 */
static long decode(const char *b, size_t n, uint32_t x, int *end) {
#define RND() (x ^= x << 13, x ^= x >> 17, x ^= x << 5, x)
  http_chunked c;
  http_chunked_init(&c, 64, 512);
  char *win = malloc(n + 1);
  CHECK(win);
  size_t have = 0, fed = 0;
  long total = 0;
  *end = 0;
  for (;;) {
    size_t off, dl, used;
    size_t maxd = RND() % 4 == 0 ? 1 + RND() % 8 : 0;
    int r = http_chunk_step(&c, win, have, maxd, &used, &off, &dl);
    CHECK(maxd == 0 || r != HTTP_CHUNK_DATA || dl <= maxd);
    CHECK(used <= have);
    if (r == HTTP_CHUNK_DATA) { CHECK(off + dl <= have && dl > 0); total += (long)dl; }
    if (r == HTTP_CHUNK_END) { CHECK(off + dl <= have); *end = 1; break; }
    if (r == HTTP_BAD) { CHECK(c.why); total = -1; break; }
    memmove(win, win + used, have - used);
    have -= used;
    if (r == HTTP_MORE) {
      if (fed == n) break;
      size_t k = 1 + RND() % 16;
      if (k > n - fed) k = n - fed;
      memcpy(win + have, b + fed, k);
      have += k;
      fed += k;
    }
  }
  free(win);
  return total;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  int req = !(data[0] & 1);
  const char *b = (const char *)data + 1;
  size_t n = size - 1;
  http_head h, h2;
  http_header hs[16], hs2[16];
  int r = parse(b, n, req, &h, hs);
  if (r == HTTP_BAD) {
    CHECK(h.error >= 400 && h.error < 600 && h.why);
  } else if (r > 0) {
    CHECK((size_t)r <= n);
    CHECK(h.nheaders <= 16);
    for (size_t i = 0; i < h.nheaders; i++) {
      const http_header *f = &hs[i];
      CHECK(f->name >= b && f->name + f->name_len <= b + r && f->name_len > 0);
      CHECK(f->value >= b && f->value + f->value_len <= b + r);
      for (size_t k = 0; k < f->name_len; k++) CHECK(tchar((unsigned char)f->name[k]));
      for (size_t k = 0; k < f->value_len; k++) {
        unsigned char c = (unsigned char)f->value[k];
        CHECK(c != '\r' && c != '\n' && c != 0);
      }
    }
    CHECK(h.minor == 0 || h.minor == 1);
    if (req) {
      CHECK(h.method_len > 0 && h.target_len > 0);
      for (size_t k = 0; k < h.target_len; k++) CHECK(h.target[k] != ' ');
    } else {
      CHECK(h.status >= 100 && h.status <= 999);
    }
    /* every shorter prefix is "more" */
    for (size_t k = 0; k < (size_t)r; k += 1 + k / 8) {
      int p = parse(b, k, req, &h2, hs2);
      CHECK(p == HTTP_MORE || p == HTTP_BAD);
      CHECK(p != HTTP_BAD || h2.error == 414 || h2.error == 431 || h2.error == 400);
    }
    /* and the whole input gives the same head */
    CHECK(parse(b, n, req, &h2, hs2) == r && h2.nheaders == h.nheaders);
    if (http_framing(&h, req, "GET") == 0) {
      CHECK(h.body >= HTTP_BODY_NONE && h.body <= HTTP_BODY_CLOSE);
      CHECK(h.body != HTTP_BODY_LENGTH || h.length <= (uint64_t)INT64_MAX);
    } else {
      CHECK(h.error == 400 || h.error == 501);
    }
  }
  /* the chunked decoder: the answer does not depend on the split */
  int e1, e2;
  long a = decode(b, n, data[0] * 2654435761u + 1, &e1);
  long c = decode(b, n, data[0] * 40503u + 7, &e2);
  CHECK(a == c && e1 == e2);
  CHECK(a <= (long)n);
  return 0;
}
