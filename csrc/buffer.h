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
/*
 * The receive patterns. buf_take decides whether the unread bytes satisfy
 * one: BUF_READY sets *n (bytes of data to return) and *skip (bytes to drop
 * after them: the '\n' of a line); BUF_MORE needs more input; BUF_TOOLONG:
 * a line longer than line_max. *scanned carries how far a line search got
 * (start it at 0) so rescans after more input stay linear.
 */
enum { PAT_LINE, PAT_ALL, PAT_COUNT };
enum { BUF_MORE, BUF_READY, BUF_TOOLONG };
int buf_take(const gh_buf *b, int pattern, size_t count, size_t line_max,
             size_t *scanned, size_t *n, size_t *skip);

/* Copy n unread bytes to out, dropping every '\r' (LuaSocket's "*l"). */
size_t buf_copy_line(const char *src, size_t n, char *out);

#endif
