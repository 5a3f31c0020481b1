/*
 * http.c - strict HTTP/1.x head parser and chunked decoder (see http.h).
 *
 * Pull style, after picohttpparser's design (not its code): the caller
 * hands the bytes it has, the parser says "complete, n bytes", "more" or
 * "bad, answer with status s". A head is re-scanned from its start when
 * more bytes arrive; heads are small and this keeps no state between
 * calls. Every rule is RFC 9112's strict reading: reject, never repair.
 */
#include <string.h>

#include "http.h"

static int bad(http_head *h, int status, const char *why) {
  h->error = status;
  h->why = why;
  return HTTP_BAD;
}

/* tchar (RFC 9110 §5.6.2) */
const unsigned char http_tchar[256] = {
  ['0' ... '9'] = 1, ['a' ... 'z'] = 1, ['A' ... 'Z'] = 1,
  ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1, ['+'] = 1,
  ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1, ['~'] = 1,
};
#define is_tchar(c) (http_tchar[(unsigned char)(c)])

/* a byte of a Host value: uri-host [ ":" port ] (RFC 3986 3.2.2: reg-name's
   unreserved, pct-encoded and sub-delims, an IP literal's brackets and
   colons), checked byte by byte as Go's httpguts.ValidHostHeader does */
static const unsigned char host_byte[256] = {
  ['0' ... '9'] = 1, ['a' ... 'z'] = 1, ['A' ... 'Z'] = 1,
  ['-'] = 1, ['.'] = 1, ['_'] = 1, ['~'] = 1, ['%'] = 1,
  ['!'] = 1, ['$'] = 1, ['&'] = 1, ['\''] = 1, ['('] = 1, [')'] = 1, ['*'] = 1, ['+'] = 1,
  [','] = 1, [';'] = 1, ['='] = 1, [':'] = 1, ['['] = 1, [']'] = 1,
};

static int valid_host(const char *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!host_byte[(unsigned char)p[i]]) return 0;
  return 1;
}

/* a field-value byte: HTAB, SP, VCHAR, obs-text (no other CTL, no DEL) */
static int is_vchar_ws(unsigned char c) {
  return c == '\t' || (c >= 0x20 && c != 0x7f);
}

int http_token_eq(const char *s, size_t n, const char *lower) {
  size_t i = 0;
  for (; i < n && lower[i]; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c >= 'A' && c <= 'Z') c = (unsigned char)(c | 0x20);
    if (c != (unsigned char)lower[i]) return 0;
  }
  return i == n && lower[i] == '\0';
}

/*
 * The line starting at p (n bytes available): its length without CRLF in
 * *line, and the bytes it takes with CRLF as the result; HTTP_MORE when
 * no LF has come yet; HTTP_BAD on a bare LF or a bare CR.
 */
static long line_at(const char *p, size_t n, size_t *line, http_head *h) {
  const char *lf = memchr(p, '\n', n);
  size_t upto = lf ? (size_t)(lf - p) : n;
  const char *cr = memchr(p, '\r', upto);
  if (cr && (size_t)(cr - p) + 1 < upto) return bad(h, 400, "bare CR");
  if (!lf) {
    if (cr && (size_t)(cr - p) + 1 < n) return bad(h, 400, "bare CR");
    return HTTP_MORE;
  }
  if (upto == 0 || p[upto - 1] != '\r') return bad(h, 400, "bare LF line end");
  *line = upto - 1;
  return (long)upto + 1;
}

/* "HTTP/1.0" / "HTTP/1.1" -> minor; other well-formed versions: 505 */
static int parse_version(const char *p, size_t n, http_head *h) {
  if (n != 8 || memcmp(p, "HTTP/", 5) != 0 || p[6] != '.' ||
      p[5] < '0' || p[5] > '9' || p[7] < '0' || p[7] > '9')
    return bad(h, 400, "malformed HTTP version");
  if (p[5] != '1' || (p[7] != '0' && p[7] != '1'))
    return bad(h, 505, "HTTP version not supported");
  h->minor = p[7] - '0';
  return 0;
}

static int parse_request_line(const char *p, size_t n, http_head *h) {
  size_t i = 0;
  while (i < n && is_tchar((unsigned char)p[i])) i++;
  if (i == 0 || i >= n || p[i] != ' ') return bad(h, 400, "malformed request line");
  h->method = p;
  h->method_len = i;
  size_t t = ++i;
  while (i < n && (unsigned char)p[i] > 0x20 && (unsigned char)p[i] < 0x7f) i++;
  if (i == t || i >= n || p[i] != ' ') return bad(h, 400, "malformed request line");
  h->target = p + t;
  h->target_len = i - t;
  i++;
  return parse_version(p + i, n - i, h);
}

static int parse_status_line(const char *p, size_t n, http_head *h) {
  if (n < 12 || p[8] != ' ') return bad(h, 400, "malformed status line");
  if (parse_version(p, 8, h) < 0) return HTTP_BAD;
  int code = 0;
  for (int k = 9; k < 12; k++) {
    if (p[k] < '0' || p[k] > '9') return bad(h, 400, "malformed status code");
    code = code * 10 + (p[k] - '0');
  }
  if (code < 100) return bad(h, 400, "malformed status code");
  h->status = code;
  h->reason = p + n;
  h->reason_len = 0;
  if (n > 12) { /* a reason phrase, after one SP (its absence is tolerated) */
    if (p[12] != ' ') return bad(h, 400, "malformed status line");
    for (size_t k = 13; k < n; k++)
      if (!is_vchar_ws((unsigned char)p[k])) return bad(h, 400, "bad reason phrase");
    h->reason = p + 13;
    h->reason_len = n - 13;
  }
  return 0;
}

/* One field line (CRLF excluded): name ":" OWS value OWS. */
static int parse_field(const char *p, size_t n, http_head *h) {
  if (p[0] == ' ' || p[0] == '\t') return bad(h, 400, "obsolete line folding");
  size_t i = 0;
  while (i < n && is_tchar((unsigned char)p[i])) i++;
  if (i >= n || p[i] != ':') {
    if (i < n && (p[i] == ' ' || p[i] == '\t')) return bad(h, 400, "whitespace before a header colon");
    return bad(h, 400, "bad header name");
  }
  if (i == 0) return bad(h, 400, "empty header name");
  size_t v = i + 1, e = n;
  while (v < e && (p[v] == ' ' || p[v] == '\t')) v++;
  while (e > v && (p[e - 1] == ' ' || p[e - 1] == '\t')) e--;
  for (size_t k = v; k < e; k++)
    if (!is_vchar_ws((unsigned char)p[k])) return bad(h, 400, "bad character in a header value");
  if (h->nheaders >= h->max_headers) return bad(h, 431, "too many header fields");
  http_header *f = &h->headers[h->nheaders++];
  f->name = p;
  f->name_len = i;
  f->value = p + v;
  f->value_len = e - v;
  return 0;
}

static int parse_head(const char *buf, size_t len, http_head *h, int request) {
  size_t pos = 0, line;
  long r;
  h->nheaders = 0;
  h->error = 0;
  h->why = NULL;
  /* one empty line before a request is tolerated (RFC 9112 §2.2) */
  if (request && len > 0 && (buf[0] == '\r' || buf[0] == '\n')) {
    r = line_at(buf, len, &line, h);
    if (r == HTTP_MORE) return HTTP_MORE;
    if (r < 0) return HTTP_BAD;
    pos = (size_t)r;
  }
  r = line_at(buf + pos, len - pos, &line, h);
  if (r == HTTP_BAD) return HTTP_BAD;
  if (r == HTTP_MORE || line > h->max_line) {
    if (len - pos > h->max_line + 1 || (r != HTTP_MORE && line > h->max_line))
      return bad(h, request ? 414 : 400, request ? "request line too long" : "status line too long");
    return HTTP_MORE;
  }
  if ((request ? parse_request_line : parse_status_line)(buf + pos, line, h) < 0) return HTTP_BAD;
  pos += (size_t)r;
  for (;;) {
    if (pos >= len) return len > h->max_head ? bad(h, 431, "header section too large") : HTTP_MORE;
    r = line_at(buf + pos, len - pos, &line, h);
    if (r == HTTP_BAD) return HTTP_BAD;
    if (r == HTTP_MORE) return len > h->max_head ? bad(h, 431, "header section too large") : HTTP_MORE;
    if (pos + (size_t)r > h->max_head) return bad(h, 431, "header section too large");
    if (line == 0) return (int)(pos + (size_t)r);
    if (h->nheaders == 0 && (buf[pos] == ' ' || buf[pos] == '\t'))
      return bad(h, 400, "whitespace before the first header field");
    if (parse_field(buf + pos, line, h) < 0) return HTTP_BAD;
    pos += (size_t)r;
  }
}

int http_parse_request(const char *buf, size_t len, http_head *h) {
  return parse_head(buf, len, h, 1);
}

int http_parse_response(const char *buf, size_t len, http_head *h) {
  return parse_head(buf, len, h, 0);
}

int http_parse_trailers(const char *buf, size_t len, http_head *h) {
  size_t pos = 0, line;
  h->nheaders = 0;
  while (pos < len) {
    long r = line_at(buf + pos, len - pos, &line, h);
    if (r == HTTP_BAD) return HTTP_BAD;
    if (r == HTTP_MORE || line == 0) return bad(h, 400, "malformed trailer section");
    if (parse_field(buf + pos, line, h) < 0) return HTTP_BAD;
    pos += (size_t)r;
  }
  return 0;
}

/* ---------------------------------------------------------------- framing */

/* Content-Length: 1*DIGIT, at most 2^63 - 1. */
static int parse_length(const char *p, size_t n, uint64_t *out) {
  uint64_t v = 0;
  if (n == 0 || n > 19) return -1;
  for (size_t i = 0; i < n; i++) {
    if (p[i] < '0' || p[i] > '9') return -1;
    v = v * 10 + (uint64_t)(p[i] - '0');
  }
  if (v > (uint64_t)INT64_MAX) return -1;
  *out = v;
  return 0;
}

/* Call f on each comma-separated element (OWS trimmed, empty ones skipped). */
typedef int (*elem_fn)(const char *p, size_t n, void *ud);
static int each_elem(const char *p, size_t n, elem_fn f, void *ud) {
  size_t i = 0;
  while (i <= n) {
    size_t j = i;
    while (j < n && p[j] != ',') j++;
    size_t a = i, b = j;
    while (a < b && (p[a] == ' ' || p[a] == '\t')) a++;
    while (b > a && (p[b - 1] == ' ' || p[b - 1] == '\t')) b--;
    if (b > a && f(p + a, b - a, ud) < 0) return -1;
    i = j + 1;
  }
  return 0;
}

/* chunked: how often chunked came; unknown: a name not registered;
   coded: a registered compression coding (gzip, deflate, compress): known,
   but decoded nowhere here */
typedef struct { int chunked, last_chunked, unknown, coded, bad; } te_state;

static int te_elem(const char *p, size_t n, void *ud) {
  te_state *t = ud;
  for (size_t i = 0; i < n; i++)
    if (!is_tchar((unsigned char)p[i])) { t->bad = 1; return -1; } /* parameters, junk */
  t->last_chunked = http_token_eq(p, n, "chunked");
  if (t->last_chunked) t->chunked++;
  else if (http_token_eq(p, n, "gzip") || http_token_eq(p, n, "x-gzip") ||
           http_token_eq(p, n, "deflate") || http_token_eq(p, n, "compress") ||
           http_token_eq(p, n, "x-compress"))
    t->coded = 1;
  else
    t->unknown = 1;
  return 0;
}

typedef struct { int close, keep, upgrade; } conn_state;

static int conn_elem(const char *p, size_t n, void *ud) {
  conn_state *c = ud;
  if (http_token_eq(p, n, "close")) c->close = 1;
  else if (http_token_eq(p, n, "keep-alive")) c->keep = 1;
  else if (http_token_eq(p, n, "upgrade")) c->upgrade = 1;
  return 0;
}

int http_conn_close(const char *v, size_t n) {
  conn_state c = {0, 0, 0};
  each_elem(v, n, conn_elem, &c);
  return c.close;
}

int http_framing(http_head *h, int request, const char *request_method) {
  int cl_seen = 0, te_seen = 0, host = 0;
  uint64_t cl = 0;
  te_state te = {0, 0, 0, 0, 0};
  conn_state conn = {0, 0, 0};
  h->expect_continue = 0;
  for (size_t i = 0; i < h->nheaders; i++) {
    const http_header *f = &h->headers[i];
    const char *v = f->value;
    size_t vn = f->value_len;
    switch (f->name_len) {
      case 4:
        if (http_token_eq(f->name, 4, "host")) {
          host++;
          /* (an empty value is valid: a target without an authority) */
          if (request && !valid_host(v, vn)) return bad(h, 400, "invalid Host");
        }
        break;
      case 6:
        if (http_token_eq(f->name, 6, "expect") && http_token_eq(v, vn, "100-continue"))
          h->expect_continue = 1;
        break;
      case 10:
        if (http_token_eq(f->name, 10, "connection")) each_elem(v, vn, conn_elem, &conn);
        break;
      case 14:
        if (http_token_eq(f->name, 14, "content-length")) {
          uint64_t x;
          if (parse_length(v, vn, &x) < 0) return bad(h, 400, "invalid Content-Length");
          if (cl_seen) return bad(h, 400, "more than one Content-Length");
          cl_seen = 1;
          cl = x;
        }
        break;
      case 17:
        if (http_token_eq(f->name, 17, "transfer-encoding")) {
          te_seen = 1;
          if (each_elem(v, vn, te_elem, &te) < 0 || te.bad)
            return bad(h, 400, "malformed Transfer-Encoding");
        }
        break;
      default:
        break;
    }
  }
  h->upgrade = conn.upgrade;
  h->keep_alive = h->minor >= 1 ? !conn.close : (conn.keep && !conn.close);
  h->length = 0;
  if (te_seen) {
    if (h->minor == 0) return bad(h, 400, "Transfer-Encoding in an HTTP/1.0 message");
    if (cl_seen) return bad(h, 400, "both Transfer-Encoding and Content-Length");
    if (te.chunked == 0 && !request) { h->body = HTTP_BODY_CLOSE; h->keep_alive = 0; }
    else if (!te.last_chunked || te.chunked > 1)
      return bad(h, 400, "Transfer-Encoding must end with chunked, once");
    else if (te.unknown) return bad(h, 501, "unknown transfer coding");
    /* a request's body in gzip (deflate, compress) under its chunks: the
       server decodes none of them, and the handler would read the coded
       bytes as the body (RFC 9112 6.1: a coding the server does not
       understand, SHOULD 501; Go and nginx take chunked alone). A response
       keeps them: the client hands the body over as it came, the header
       with it. */
    else if (te.coded && request) return bad(h, 501, "transfer coding not implemented");
    else h->body = HTTP_BODY_CHUNKED;
  } else if (cl_seen) {
    h->body = HTTP_BODY_LENGTH;
    h->length = cl;
  } else {
    h->body = request ? HTTP_BODY_NONE : HTTP_BODY_CLOSE;
  }
  if (request) {
    /* RFC 9112 3.2: missing on 1.1, or more than one in any request: 400 */
    if (host > 1) return bad(h, 400, "more than one Host");
    if (h->minor == 1 && !host) return bad(h, 400, "missing Host");
  } else {
    int head = request_method && strcmp(request_method, "HEAD") == 0;
    int connect = request_method && strcmp(request_method, "CONNECT") == 0;
    if (head || h->status < 200 || h->status == 204 || h->status == 304 ||
        (connect && h->status < 300)) {
      h->body = HTTP_BODY_NONE;
      h->length = 0;
    }
    if (h->body == HTTP_BODY_CLOSE) h->keep_alive = 0;
  }
  return 0;
}

/* ---------------------------------------------------------------- chunked */

enum { CH_SIZE, CH_DATA, CH_DATA_CRLF, CH_TRAILERS, CH_DONE };

void http_chunked_init(http_chunked *c, size_t max_line, size_t max_trailers) {
  c->state = CH_SIZE;
  c->left = 0;
  c->max_line = max_line ? max_line : 4096;
  c->max_trailers = max_trailers ? max_trailers : 65536;
  c->why = NULL;
}

static int chunk_bad(http_chunked *c, const char *why) {
  c->why = why;
  return HTTP_BAD;
}

static int hexval(unsigned char c) {
  if (c >= '0' && c <= '9') return c - '0';
  c = (unsigned char)(c | 0x20);
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

/* chunk-size [ BWS ";" ext ] : at most 16 hex digits, extensions ignored */
static int chunk_size(const char *p, size_t n, uint64_t *out) {
  uint64_t v = 0;
  size_t i = 0;
  int d;
  while (i < n && (d = hexval((unsigned char)p[i])) >= 0) {
    if (i == 16) return -1; /* more than 16 digits: overflow */
    v = (v << 4) | (uint64_t)d;
    i++;
  }
  if (i == 0) return -1;
  while (i < n && (p[i] == ' ' || p[i] == '\t')) i++;
  if (i < n) {
    if (p[i] != ';') return -1;
    for (; i < n; i++)
      if (!is_vchar_ws((unsigned char)p[i])) return -1;
  }
  *out = v;
  return 0;
}

int http_chunk_step(http_chunked *c, const char *buf, size_t len, size_t max_data,
                    size_t *consumed, size_t *data_off, size_t *data_len) {
  size_t pos = 0, line;
  http_head scratch; /* line_at reports through it */
  *data_off = *data_len = 0;
  *consumed = 0;
  for (;;) {
    switch (c->state) {
      case CH_SIZE: {
        long r = line_at(buf + pos, len - pos, &line, &scratch);
        if (r == HTTP_BAD) return chunk_bad(c, scratch.why);
        if (r == HTTP_MORE) {
          *consumed = pos;
          if (len - pos > c->max_line + 1) return chunk_bad(c, "chunk-size line too long");
          return HTTP_MORE;
        }
        if (line > c->max_line) return chunk_bad(c, "chunk-size line too long");
        uint64_t size;
        if (chunk_size(buf + pos, line, &size) < 0) return chunk_bad(c, "bad chunk size");
        pos += (size_t)r;
        c->left = size;
        c->state = size ? CH_DATA : CH_TRAILERS;
        break;
      }
      case CH_DATA: {
        *consumed = pos;
        if (pos >= len) return HTTP_MORE;
        size_t n = len - pos;
        if ((uint64_t)n > c->left) n = (size_t)c->left;
        if (max_data && n > max_data) n = max_data;
        *data_off = pos;
        *data_len = n;
        c->left -= n;
        *consumed = pos + n;
        if (c->left == 0) c->state = CH_DATA_CRLF;
        return HTTP_CHUNK_DATA;
      }
      case CH_DATA_CRLF:
        if (len - pos < 2) {
          *consumed = pos;
          if (len - pos == 1 && buf[pos] != '\r') return chunk_bad(c, "chunk data not followed by CRLF");
          return HTTP_MORE;
        }
        if (buf[pos] != '\r' || buf[pos + 1] != '\n')
          return chunk_bad(c, "chunk data not followed by CRLF");
        pos += 2;
        c->state = CH_SIZE;
        break;
      case CH_TRAILERS: {
        size_t q = pos;
        for (;;) {
          long r = line_at(buf + q, len - q, &line, &scratch);
          if (r == HTTP_BAD) return chunk_bad(c, scratch.why);
          if (r == HTTP_MORE) {
            *consumed = pos;
            if (len - pos > c->max_trailers) return chunk_bad(c, "trailer section too large");
            return HTTP_MORE;
          }
          if (q + (size_t)r - pos > c->max_trailers) return chunk_bad(c, "trailer section too large");
          if (line == 0) {
            *data_off = pos;
            *data_len = q - pos;
            *consumed = q + (size_t)r;
            c->state = CH_DONE;
            return HTTP_CHUNK_END;
          }
          q += (size_t)r;
        }
      }
      default:
        *consumed = 0;
        return chunk_bad(c, "chunked body already ended");
    }
  }
}
