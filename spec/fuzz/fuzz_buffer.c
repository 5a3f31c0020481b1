/*
 * libFuzzer target for the receive buffer and pattern engine (buffer.c),
 * the code every socket receive goes through.
 *
 * Input: byte 0 seeds a PRNG that picks chunk sizes (how recv would split
 * the stream) and the pattern sequence ("*l", counts, "*a"); the rest is the
 * stream. Checks: bytes consumed reassemble the stream exactly; a line is
 * its raw bytes minus every '\r' and has no '\n'; a count returns exactly
 * that many bytes; the final "*a" returns the rest; line_max is honoured.
 *   make fuzz   (clang, bounded time; corpus in spec/fuzz/corpus)
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../csrc/buffer.h"

#define CHECK(c) do { if (!(c)) abort(); } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  uint32_t x = data[0] * 2654435761u + 1;
#define RND() (x ^= x << 13, x ^= x >> 17, x ^= x << 5, x)
  const uint8_t *in = data + 1;
  size_t len = size - 1, fed = 0, taken = 0;
  size_t line_max = 1 + RND() % 64;
  gh_buf b = {0};
  char *out = malloc(len + 1);
  CHECK(out);
  int pattern = PAT_LINE;
  size_t count = 0, scanned = 0;
  for (;;) {
    size_t n, skip;
    int r = buf_take(&b, pattern, count, line_max, &scanned, &n, &skip);
    if (r == BUF_READY || r == BUF_TOOLONG) {
      const char *raw = buf_head(&b);
      CHECK(memcmp(raw, in + taken, skip ? n + skip : (r == BUF_READY ? n : 0)) == 0);
      if (pattern == PAT_LINE) {
        if (r == BUF_READY || skip) {
          CHECK(raw[n] == '\n');
          CHECK(memchr(raw, '\n', n) == NULL);
        }
        if (r == BUF_READY) {
          CHECK(n <= line_max);
          size_t k = buf_copy_line(raw, n, out);
          size_t crs = 0;
          for (size_t i = 0; i < n; i++) crs += raw[i] == '\r';
          CHECK(k == n - crs);
          CHECK(memchr(out, '\r', k) == NULL);
        } else {
          CHECK(skip ? n > line_max : buf_len(&b) > line_max);
        }
      } else {
        CHECK(r == BUF_READY && n == count);
      }
      size_t drop = r == BUF_TOOLONG && !skip ? buf_len(&b) : n + skip;
      buf_consume(&b, drop);
      taken += drop;
      scanned = 0;
      switch (RND() % 3) { /* next pattern */
        case 0: pattern = PAT_LINE; break;
        case 1: pattern = PAT_COUNT; count = RND() % 40; break;
        default: pattern = PAT_ALL; break;
      }
      continue;
    }
    CHECK(r == BUF_MORE);
    if (fed == len) break; /* end of input */
    size_t chunk = 1 + RND() % 17;
    if (chunk > len - fed) chunk = len - fed;
    char *dst = buf_reserve(&b, chunk);
    CHECK(dst);
    memcpy(dst, in + fed, chunk);
    buf_commit(&b, chunk);
    fed += chunk;
    CHECK(b.last <= b.cap && b.first <= b.last);
  }
  /* end of stream: what is left is what "*a" (or a partial) returns */
  CHECK(taken + buf_len(&b) == len);
  CHECK(buf_len(&b) == 0 || memcmp(buf_head(&b), in + taken, buf_len(&b)) == 0);
  buf_shrink(&b);
  buf_free(&b);
  free(out);
  return 0;
}
