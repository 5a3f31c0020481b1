/*
 * buffer.c - receive buffer storage and line scanning (see buffer.h).
 */
#include <stdlib.h>
#include <string.h>

#include "buffer.h"

/*
 * Spare first-size blocks, per OS thread: a connection's receive buffer
 * is freed whenever it parks with nothing buffered (an idle socket holds
 * no buffer), and the next request would malloc it again; a few freed
 * ones wait here instead.
 */
#define SPARE_MAX 32
static _Thread_local struct { char *blk[SPARE_MAX]; int n; } spare;

static char *block_new(size_t cap) {
  if (cap == BUF_MIN && spare.n > 0) return spare.blk[--spare.n];
  return malloc(cap);
}

static void block_free(char *p, size_t cap) {
  if (p && cap == BUF_MIN && spare.n < SPARE_MAX) spare.blk[spare.n++] = p;
  else free(p);
}

char *buf_reserve(gh_buf *b, size_t n) {
  if (b->cap - b->last >= n) return b->data + b->last;
  size_t len = buf_len(b);
  if (b->data && b->cap - len >= n && b->first > 0) { /* compact */
    memmove(b->data, b->data + b->first, len);
    b->first = 0;
    b->last = len;
    return b->data + b->last;
  }
  size_t cap = b->cap ? b->cap : BUF_MIN;
  while (cap - len < n) {
    if (cap > ((size_t)-1) / 2) return NULL;
    cap *= 2;
  }
  char *d = block_new(cap);
  if (!d) return NULL;
  if (len) memcpy(d, b->data + b->first, len);
  block_free(b->data, b->cap);
  b->data = d;
  b->cap = cap;
  b->first = 0;
  b->last = len;
  return d + len;
}

void buf_consume(gh_buf *b, size_t n) {
  b->first += n;
  if (b->first == b->last) b->first = b->last = 0;
}

void buf_shrink(gh_buf *b) {
  if (b->data && b->first == b->last) buf_free(b);
}

void buf_free(gh_buf *b) {
  block_free(b->data, b->cap);
  b->data = NULL;
  b->first = b->last = b->cap = 0;
}

ptrdiff_t buf_find_line(const gh_buf *b, size_t from) {
  size_t len = buf_len(b);
  if (from >= len) return -1;
  const char *p = memchr(b->data + b->first + from, '\n', len - from);
  return p ? p - (b->data + b->first) : -1;
}

size_t buf_copy_line(const char *src, size_t n, char *out) {
  size_t k = 0;
  const char *cr;
  while (n > 0 && (cr = memchr(src, '\r', n)) != NULL) {
    size_t m = (size_t)(cr - src);
    memcpy(out + k, src, m);
    k += m;
    src += m + 1;
    n -= m + 1;
  }
  memcpy(out + k, src, n);
  return k + n;
}

int buf_take(const gh_buf *b, int pattern, size_t count, size_t line_max,
             size_t *scanned, size_t *n, size_t *skip) {
  size_t len = buf_len(b);
  *skip = 0;
  switch (pattern) {
    case PAT_LINE: {
      ptrdiff_t nl = buf_find_line(b, *scanned);
      if (nl >= 0) {
        *n = (size_t)nl;
        *skip = 1;
        return (size_t)nl > line_max ? BUF_TOOLONG : BUF_READY;
      }
      *scanned = len;
      return len > line_max ? BUF_TOOLONG : BUF_MORE;
    }
    case PAT_COUNT:
      if (len < count) return BUF_MORE;
      *n = count;
      return BUF_READY;
    default: /* PAT_ALL: only the end of input completes it */
      return BUF_MORE;
  }
}
