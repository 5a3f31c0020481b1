/*
 * wsframe.h - RFC 6455 framing without Lua (wsframe.c).
 */
#ifndef GH_WSFRAME_H
#define GH_WSFRAME_H

#include <stddef.h>
#include <stdint.h>

enum { WS_CONT = 0, WS_TEXT = 1, WS_BINARY = 2, WS_CLOSE = 8, WS_PING = 9, WS_PONG = 10 };
enum { WS_OK = 0, WS_MORE = 1, WS_BAD = -1 };

typedef struct ws_hdr {
  int fin, op, masked;
  unsigned char key[4];
  size_t hlen;             /* header bytes, mask key included */
  uint64_t plen;           /* payload bytes */
  int code;                /* WS_BAD: the close code */
  const char *why;         /* WS_BAD: a short static reason */
} ws_hdr;

/* Parse a frame header from p[0..n): WS_OK (h filled), WS_MORE, or WS_BAD
   (h->code, h->why). server: frames come from a client (must be masked).
   max bounds a data frame's payload (1009 beyond it). */
int ws_header(const unsigned char *p, size_t n, int server, uint64_t max, ws_hdr *h);

/* out[i] = in[i] ^ key[i % 4] (out may be in) */
void ws_unmask(char *out, const char *in, size_t n, const unsigned char key[4]);

/* 0 when s is valid UTF-8 (RFC 3629), with *tail the length of a character
   cut off at the end that is valid as far as it goes; -1 when invalid */
int ws_utf8(const unsigned char *s, size_t n, size_t *tail);

#endif
