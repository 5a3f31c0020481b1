/*
 * poll.c - the poller on Linux's epoll (see poll.h). Readiness only: the
 * hub keeps per-fd state and decides what an event means.
 */
#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "poll.h"

int poller_open(gh_poller *p) {
  p->fd = epoll_create1(EPOLL_CLOEXEC);
  return p->fd < 0 ? -1 : 0;
}

void poller_close(gh_poller *p) {
  if (p->fd >= 0) close(p->fd);
  p->fd = -1;
}

static uint32_t epoll_mask(unsigned events, int edge) {
  uint32_t m = 0;
  if (events & GH_IN) m |= EPOLLIN | EPOLLRDHUP;
  if (events & GH_OUT) m |= EPOLLOUT;
  if (edge) m |= EPOLLET;
  return m;
}

static int ctl(gh_poller *p, int op, int fd, unsigned events, int edge, uint64_t data) {
  struct epoll_event ev;
  memset(&ev, 0, sizeof ev);
  ev.events = epoll_mask(events, edge);
  ev.data.u64 = data;
  return epoll_ctl(p->fd, op, fd, &ev);
}

int poller_add(gh_poller *p, int fd, unsigned events, int edge, uint64_t data) {
  if (ctl(p, EPOLL_CTL_ADD, fd, events, edge, data) == 0) return 0;
  if (errno != EEXIST) return -1;
  return ctl(p, EPOLL_CTL_MOD, fd, events, edge, data);
}

int poller_modify(gh_poller *p, int fd, unsigned events, int edge, uint64_t data) {
  return ctl(p, EPOLL_CTL_MOD, fd, events, edge, data);
}

int poller_remove(gh_poller *p, int fd) {
  return epoll_ctl(p->fd, EPOLL_CTL_DEL, fd, NULL);
}

int poller_wait(gh_poller *p, gh_pollev *out, int max, int timeout_ms) {
  struct epoll_event ev[256];
  if (max > 256) max = 256;
  int n = epoll_wait(p->fd, ev, max, timeout_ms);
  if (n < 0) {
    if (errno == EINTR) return 0; /* a signal: the caller's loop goes on */
    if (errno == ENOMEM) {        /* the kernel is short: a pause, not a failure */
      struct timespec ts = {0, 1000000};
      nanosleep(&ts, NULL);
      return 0;
    }
    return -1; /* EBADF, EINVAL, EFAULT: the instance is gone or broken */
  }
  for (int i = 0; i < n; i++) {
    uint32_t e = ev[i].events;
    unsigned r = 0;
    if (e & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) r |= GH_HUP;
    if (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) r |= GH_IN;
    if (e & (EPOLLOUT | EPOLLHUP | EPOLLERR)) r |= GH_OUT;
    out[i].data = ev[i].data.u64;
    out[i].events = r;
  }
  return n;
}

const char *poller_backend(void) { return "epoll"; }
