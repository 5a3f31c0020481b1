/* The floor of a sequential keep-alive GET loop: one blocking C client,
 * one request in flight, no parsing beyond the first read. What a client
 * library can at best approach on this machine against a given server.
 * With "epoll", the same loop as an event loop runs it (a non-blocking
 * socket, epoll_wait for the answer, then recv: the three system calls
 * a green-thread client makes per GET): the floor of any event-loop client.
 *   http_get PORT N [epoll]   -> prints microseconds per GET */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }

int main(int argc, char **argv) {
  if (argc < 3) { fprintf(stderr, "usage: http_get PORT N\n"); return 2; }
  int port = atoi(argv[1]), n = atoi(argv[2]), on = 1;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(0x7f000001)};
  if (connect(fd, (void *)&a, sizeof a) < 0) { perror("connect"); return 1; }
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
  int ep = -1;
  if (argc > 3 && strcmp(argv[3], "epoll") == 0) {
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.fd = fd};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) { perror("epoll_ctl"); return 1; }
  }
  const char req[] = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
  char buf[8192];
  double t0 = 0;
  for (int i = -100; i < n; i++) { /* 100 to warm up */
    if (i == 0) t0 = now();
    if (send(fd, req, sizeof req - 1, 0) != (ssize_t)(sizeof req - 1)) { perror("send"); return 1; }
    /* the servers measured answer a GET in one segment */
    if (ep >= 0) {
      struct epoll_event ev;
      if (epoll_wait(ep, &ev, 1, -1) != 1) { perror("epoll_wait"); return 1; }
    }
    if (recv(fd, buf, sizeof buf, 0) <= 0) { perror("recv"); return 1; }
  }
  printf("%.2f\n", (now() - t0) / n * 1e6);
  close(fd);
  return 0;
}
