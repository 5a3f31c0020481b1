/*
 * buffer.h - the receive buffer and its pattern scanner. Lua-agnostic (the
 * fuzz target links it alone): bytes enter at `last`, leave at `first`.
 */
#ifndef GH_BUFFER_H
#define GH_BUFFER_H

#include <stddef.h>

typedef struct gh_buf {
  char *data;              /* NULL while empty and idle (lazily allocated) */
  size_t first, last;      /* unread bytes are data[first..last) */
  size_t cap;
} gh_buf;

#define BUF_MIN 8192       /* first allocation */

static inline size_t buf_len(const gh_buf *b) { return b->last - b->first; }
static inline const char *buf_head(const gh_buf *b) { return b->data + b->first; }

/* Room for at least n more bytes at the end; NULL if out of memory. */
char *buf_reserve(gh_buf *b, size_t n);
/* Free space at the end after buf_reserve. */
static inline size_t buf_room(const gh_buf *b) { return b->cap - b->last; }
static inline void buf_commit(gh_buf *b, size_t n) { b->last += n; }
void buf_consume(gh_buf *b, size_t n);
/* Drop the storage when nothing is buffered (idle sockets cost nothing). */
void buf_shrink(gh_buf *b);
void buf_free(gh_buf *b);

/*
 * Offset of the first '\n' among the unread bytes, or -1. `from` skips
 * bytes already known to hold none (rescans stay linear).
 */
ptrdiff_t buf_find_line(const gh_buf *b, size_t from);
/* Copy n unread bytes to out, dropping every '\r' (LuaSocket's "*l"). */
size_t buf_copy_line(const char *src, size_t n, char *out);

#endif
