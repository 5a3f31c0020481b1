/*
 * http.h - a strict HTTP/1.x head parser and chunked decoder (RFC 9112).
 * Lua-agnostic (the fuzz target links it alone). Rejects, never repairs:
 * every rejection carries the status a server answers with.
 */
#ifndef GH_HTTP_H
#define GH_HTTP_H

#include <stddef.h>
#include <stdint.h>

enum { HTTP_MORE = -2, HTTP_BAD = -1 };

/* how the body of a message is delimited */
enum { HTTP_BODY_NONE, HTTP_BODY_LENGTH, HTTP_BODY_CHUNKED, HTTP_BODY_CLOSE };

typedef struct http_header {
  const char *name, *value;
  size_t name_len, value_len;
} http_header;

typedef struct http_head {
  /* limits (in) */
  size_t max_line;         /* request or status line, CRLF excluded */
  size_t max_head;         /* the whole head, blank line included */
  size_t max_headers;      /* entries in headers[] */
  http_header *headers;    /* caller's array of max_headers entries */
  /* results (out); spans point into the parsed buffer */
  const char *method, *target, *reason;
  size_t method_len, target_len, reason_len;
  int minor;               /* HTTP/1.<minor>: 0 or 1 */
  int status;              /* responses: the status code */
  size_t nheaders;
  /* framing (http_framing) */
  int body;                /* HTTP_BODY_* */
  uint64_t length;         /* HTTP_BODY_LENGTH: the Content-Length */
  int keep_alive;          /* per Connection and the version */
  int expect_continue;     /* requests: Expect: 100-continue */
  int upgrade;             /* Connection: upgrade was present */
  /* failure (out) */
  int error;               /* the status to answer: 400, 414, 431, 501, 505 */
  const char *why;         /* a short static description */
} http_head;

/*
 * Parse a request (or response) head at the start of buf. Returns the
 * head's length (blank line included) when complete and valid, HTTP_MORE
 * when more bytes are needed (and the limits allow them), or HTTP_BAD
 * with h->error and h->why set.
 */
int http_parse_request(const char *buf, size_t len, http_head *h);
int http_parse_response(const char *buf, size_t len, http_head *h);

/*
 * Body framing from a parsed head (RFC 9112 §6): sets h->body, h->length,
 * h->keep_alive, h->expect_continue, h->upgrade. For requests it also
 * enforces Host (1.1). For responses, request_method (may be NULL) decides
 * HEAD/CONNECT. Returns 0, or HTTP_BAD with h->error/h->why.
 */
int http_framing(http_head *h, int is_request, const char *request_method);

/* 1 for the tchar bytes of RFC 9110 §5.6.2 (header names, methods) */
extern const unsigned char http_tchar[256];

/* Case-insensitive equality of a span and a lower-case C string. */
int http_token_eq(const char *s, size_t n, const char *lower);

/* Whether a Connection value lists the "close" option (as http_framing
   reads a head's). */
int http_conn_close(const char *v, size_t n);

/*
 * Incremental chunked-body decoder. http_chunk_step looks at buf[0..len):
 *   HTTP_CHUNK_DATA: *data_off, *data_len is the next span of body data (at
 *                    most max_data bytes) and
 *                    *consumed covers it (plus any chunk framing before it);
 *   HTTP_CHUNK_END:  the last chunk and the trailer section (the trailers'
 *                    span is *data_off, *data_len, CRLF-separated lines, for
 *                    http_parse_trailers) were consumed;
 *   HTTP_MORE:       need more input (*consumed bytes may be dropped);
 *   HTTP_BAD:        malformed (c->why).
 */
enum { HTTP_CHUNK_DATA = 1, HTTP_CHUNK_END = 2 };

typedef struct http_chunked {
  int state;
  uint64_t left;           /* bytes of chunk data still to come */
  size_t max_line;         /* chunk-size line limit (default 4096) */
  size_t max_trailers;     /* trailer section limit */
  const char *why;
} http_chunked;

void http_chunked_init(http_chunked *c, size_t max_line, size_t max_trailers);
int http_chunk_step(http_chunked *c, const char *buf, size_t len, size_t max_data,
                    size_t *consumed, size_t *data_off, size_t *data_len);

/* Parse a trailer section (field lines, each ending CRLF, no blank line)
   into h->headers with the header rules. 0 or HTTP_BAD. */
int http_parse_trailers(const char *buf, size_t len, http_head *h);

#endif
