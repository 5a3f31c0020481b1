/* WebSocket echo load: C connections each send one 64-byte masked text
 * message and wait for its echo (an unmasked 66-byte frame), for S seconds.
 * Does the opening handshake itself (the accept key is not checked: this
 * is a load generator, the specs check handshakes). Prints messages/s.
 *   ws_client PORT CONNS SECONDS [PATH] */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }

/* read the 101 response head, up to its blank line; 0 or -1 */
static int handshake(int fd, int port, const char *path) {
  char req[512], buf[4096];
  int n = snprintf(req, sizeof req,
    "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", path, port);
  if (write(fd, req, (size_t)n) != n) return -1;
  size_t got = 0;
  while (got < sizeof buf - 1) { /* byte by byte: nothing past the head is consumed */
    ssize_t r = read(fd, buf + got, 1);
    if (r <= 0) return -1;
    got++;
    if (got >= 4 && memcmp(buf + got - 4, "\r\n\r\n", 4) == 0) break;
  }
  buf[got] = 0;
  return strncmp(buf, "HTTP/1.1 101", 12) == 0 ? 0 : -1;
}

int main(int argc, char **argv) {
  if (argc < 4) { fprintf(stderr, "usage: ws_client PORT CONNS SECONDS [PATH]\n"); return 2; }
  int port = atoi(argv[1]), nc = atoi(argv[2]);
  double secs = atof(argv[3]);
  const char *path = argc > 4 ? argv[4] : "/";
  int ep = epoll_create1(0);
  int *got = calloc(nc, sizeof *got), *fds = calloc(nc, sizeof *fds);
  /* one masked frame: FIN|text, MASK|64, a fixed key, the payload masked */
  unsigned char frame[70], key[4] = {0x12, 0x34, 0x56, 0x78};
  frame[0] = 0x81; frame[1] = 0x80 | 64;
  memcpy(frame + 2, key, 4);
  for (int i = 0; i < 64; i++) frame[6 + i] = (unsigned char)('x' ^ key[i & 3]);
  const int echo = 2 + 64; /* the server's unmasked frame */
  char buf[8192];
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(0x7f000001)};
  for (int i = 0; i < nc; i++) {
    int fd = socket(AF_INET, SOCK_STREAM, 0), on = 1;
    if (connect(fd, (void *)&a, sizeof a) < 0) { perror("connect"); return 1; }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
    if (handshake(fd, port, path) < 0) { fprintf(stderr, "handshake failed\n"); return 1; }
    fds[i] = fd;
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = i};
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
  }
  long msgs = 0;
  double t0 = now(), end = t0 + secs;
  for (int i = 0; i < nc; i++) if (write(fds[i], frame, sizeof frame) != (ssize_t)sizeof frame) return 1;
  struct epoll_event evs[1024];
  while (now() < end) {
    int n = epoll_wait(ep, evs, 1024, 100);
    for (int k = 0; k < n; k++) {
      int i = evs[k].data.u32;
      ssize_t r = read(fds[i], buf, sizeof buf);
      if (r <= 0) { fprintf(stderr, "server closed\n"); return 1; }
      got[i] += (int)r;
      while (got[i] >= echo) {
        got[i] -= echo; msgs++;
        if (write(fds[i], frame, sizeof frame) != (ssize_t)sizeof frame) return 1;
      }
    }
  }
  printf("%.0f\n", msgs / (now() - t0));
  return 0;
}
