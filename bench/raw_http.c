/* The limit: a minimal single-threaded epoll HTTP/1.1 keep-alive hello
 * server (and 64-byte echo server with -e). Not greenhub; a yardstick.
 *   raw_http PORT [-e] */
#define _GNU_SOURCE
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <errno.h>
static int errno_is_fatal(void) { return errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR; }

static const char resp[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, World!";

int main(int argc, char **argv) {
  int port = atoi(argv[1]), echo = argc > 2 && strcmp(argv[2], "-e") == 0;
  int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), on = 1;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(0x7f000001)};
  if (bind(ls, (void *)&a, sizeof a) < 0 || listen(ls, 4096) < 0) { perror("bind"); return 1; }
  int ep = epoll_create1(0);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = ls}, evs[512];
  epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
  static char buf[65536];
  for (;;) {
    int n = epoll_wait(ep, evs, 512, -1);
    for (int i = 0; i < n; i++) {
      int fd = evs[i].data.fd;
      if (fd == ls) {
        int c;
        while ((c = accept4(ls, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
          struct epoll_event ce = {.events = EPOLLIN | EPOLLET, .data.fd = c};
          epoll_ctl(ep, EPOLL_CTL_ADD, c, &ce);
        }
        continue;
      }
      for (;;) {
        ssize_t r = read(fd, buf, sizeof buf);
        if (r == 0 || (r < 0 && errno_is_fatal())) { close(fd); break; }
        if (r < 0) break;
        if (echo) { if (write(fd, buf, (size_t)r) < 0) {} continue; }
        /* count complete requests in this read (pipelining-safe enough) */
        int reqs = 0;
        for (ssize_t k = 3; k < r; k++)
          if (buf[k] == '\n' && buf[k - 1] == '\r' && buf[k - 2] == '\n' && buf[k - 3] == '\r') reqs++;
        for (int q = 0; q < reqs; q++) if (write(fd, resp, sizeof resp - 1) < 0) {}
      }
    }
  }
}
