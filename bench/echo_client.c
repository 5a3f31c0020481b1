/* Echo ping-pong load: C connections each send 64 bytes and wait for them
 * back, for S seconds. Prints round trips per second.
 *   echo_client PORT CONNS SECONDS */
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

int main(int argc, char **argv) {
  int port = atoi(argv[1]), nc = atoi(argv[2]);
  double secs = atof(argv[3]);
  int ep = epoll_create1(0);
  int *got = calloc(nc, sizeof *got), *fds = calloc(nc, sizeof *fds);
  char msg[64], buf[4096];
  memset(msg, 'x', 63); msg[63] = '\n';
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(0x7f000001)};
  for (int i = 0; i < nc; i++) {
    int fd = socket(AF_INET, SOCK_STREAM, 0), on = 1;
    if (connect(fd, (void *)&a, sizeof a) < 0) { perror("connect"); return 1; }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
    fds[i] = fd;
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = i};
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
  }
  long trips = 0;
  double t0 = now(), end = t0 + secs;
  for (int i = 0; i < nc; i++) if (write(fds[i], msg, 64) != 64) return 1;
  struct epoll_event evs[1024];
  while (now() < end) {
    int n = epoll_wait(ep, evs, 1024, 100);
    for (int k = 0; k < n; k++) {
      int i = evs[k].data.u32;
      ssize_t r = read(fds[i], buf, sizeof buf);
      if (r <= 0) { fprintf(stderr, "server closed\n"); return 1; }
      got[i] += (int)r;
      while (got[i] >= 64) { got[i] -= 64; trips++; if (write(fds[i], msg, 64) != 64) return 1; }
    }
  }
  printf("%.0f\n", trips / (now() - t0));
  return 0;
}
