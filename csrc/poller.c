/*
 * poller.c - the poller's two backends (see poller.h): Linux's epoll, and
 * poll(2) for everywhere else (and for testing that path on Linux). Both
 * report readiness only: the hub keeps per-fd state and decides what an
 * event means.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "poller.h"
#include "compat.h"

/* poll(2): one slot per watched fd number */
struct gh_pslot {
  uint64_t data;
  unsigned events;         /* what it is watched for */
  unsigned armed;          /* ... of that, what a wait reports now */
  uint8_t edge, used;
};

static int backend_from_env(void) {
  const char *b = getenv("GREENHUB_BACKEND");
  return b && strcmp(b, "poll") == 0 ? GH_POLL : GH_EPOLL;
}

int poller_open(gh_poller *p) {
  memset(p, 0, sizeof *p);
  p->fd = -1;
  p->kind = backend_from_env();
  if (p->kind == GH_POLL) { gh_portable = 1; return 0; }
  p->fd = epoll_create1(EPOLL_CLOEXEC);
  return p->fd < 0 ? -1 : 0;
}

void poller_close(gh_poller *p) {
  if (p->fd >= 0) close(p->fd);
  p->fd = -1;
  free(p->slots);
  free(p->pfds);
  free(p->pfd_fd);
  p->slots = NULL;
  p->pfds = NULL;
  p->pfd_fd = NULL;
  p->nslots = p->npfds = 0;
}

const char *poller_backend(const gh_poller *p) { return p->kind == GH_POLL ? "poll" : "epoll"; }

/* ---------------------------------------------------------------- epoll */

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

static int epoll_wait_events(gh_poller *p, gh_pollev *out, int max, int timeout_ms) {
  struct epoll_event ev[256];
  if (max > 256) max = 256;
  int n = epoll_wait(p->fd, ev, max, timeout_ms);
  if (n < 0) return -1;
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

/* ---------------------------------------------------------------- poll(2) */

static struct gh_pslot *slot_for(gh_poller *p, int fd) {
  if (fd < 0) { errno = EBADF; return NULL; }
  if (fd >= p->nslots) {
    int n = p->nslots ? p->nslots : 64;
    while (n <= fd) n *= 2;
    struct gh_pslot *v = realloc(p->slots, (size_t)n * sizeof *v);
    if (!v) { errno = ENOMEM; return NULL; }
    memset(v + p->nslots, 0, (size_t)(n - p->nslots) * sizeof *v);
    p->slots = v;
    p->nslots = n;
  }
  return &p->slots[fd];
}

/* What epoll_ctl would refuse, refused the same way: a closed fd (EBADF),
   a regular file or directory (EPERM: always ready, never waited on). */
static int fcntl_ok(int fd) {
  struct stat st;
  if (fcntl(fd, F_GETFD) < 0) return -1;
  if (fstat(fd, &st) == 0 && (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode))) {
    errno = EPERM;
    return -1;
  }
  return 0;
}

static int poll_set(gh_poller *p, int fd, unsigned events, int edge, uint64_t data, int must_exist) {
  if (fcntl_ok(fd) < 0) return -1;
  struct gh_pslot *s = slot_for(p, fd);
  if (!s) return -1;
  if (must_exist && !s->used) { errno = ENOENT; return -1; }
  s->data = data;
  s->events = events & (GH_IN | GH_OUT);
  s->armed = s->events;
  s->edge = (uint8_t)(edge != 0);
  s->used = 1;
  return 0;
}

static int poll_wait_events(gh_poller *p, gh_pollev *out, int max, int timeout_ms) {
  int n = 0;
  for (int fd = 0; fd < p->nslots; fd++)
    if (p->slots[fd].used && p->slots[fd].armed) n++;
  if (n > p->npfds) {
    struct pollfd *v = realloc(p->pfds, (size_t)n * sizeof *v);
    if (!v) { errno = ENOMEM; return -1; }
    p->pfds = v;
    int *w = realloc(p->pfd_fd, (size_t)n * sizeof *w);
    if (!w) { errno = ENOMEM; return -1; }
    p->pfd_fd = w;
    p->npfds = n;
  }
  int k = 0;
  for (int fd = 0; fd < p->nslots && k < n; fd++) {
    struct gh_pslot *s = &p->slots[fd];
    if (!s->used || !s->armed) continue;
    p->pfds[k].fd = fd;
    p->pfds[k].events = (short)((s->armed & GH_IN ? POLLIN : 0) | (s->armed & GH_OUT ? POLLOUT : 0));
    p->pfds[k].revents = 0;
    p->pfd_fd[k] = fd;
    k++;
  }
  int r = poll(p->pfds, (nfds_t)k, timeout_ms);
  if (r < 0) return -1;
  int got = 0;
  for (int i = 0; i < k && got < max && r > 0; i++) {
    short re = p->pfds[i].revents;
    if (!re) continue;
    r--;
    struct gh_pslot *s = &p->slots[p->pfd_fd[i]];
    unsigned e = 0;
    if (re & (POLLHUP | POLLERR | POLLNVAL)) e |= GH_HUP | GH_IN | GH_OUT;
    if (re & POLLIN) e |= GH_IN;
    if (re & POLLOUT) e |= GH_OUT;
    e &= s->events | GH_HUP;
    /* edge: once per readiness, until the hub arms it again; a dead fd
       (POLLNVAL) is never reported twice either way */
    if (s->edge) s->armed &= ~e;
    if (re & POLLNVAL) s->armed = 0;
    out[got].data = s->data;
    out[got].events = e;
    got++;
  }
  return got;
}

/* ---------------------------------------------------------------- interface */

int poller_add(gh_poller *p, int fd, unsigned events, int edge, uint64_t data) {
  if (p->kind == GH_POLL) return poll_set(p, fd, events, edge, data, 0);
  if (ctl(p, EPOLL_CTL_ADD, fd, events, edge, data) == 0) return 0;
  if (errno != EEXIST) return -1;
  return ctl(p, EPOLL_CTL_MOD, fd, events, edge, data);
}

int poller_modify(gh_poller *p, int fd, unsigned events, int edge, uint64_t data) {
  if (p->kind == GH_POLL) return poll_set(p, fd, events, edge, data, 1);
  return ctl(p, EPOLL_CTL_MOD, fd, events, edge, data);
}

int poller_remove(gh_poller *p, int fd) {
  if (p->kind == GH_POLL) {
    if (fd < 0 || fd >= p->nslots || !p->slots[fd].used) { errno = ENOENT; return -1; }
    p->slots[fd].used = 0;
    p->slots[fd].armed = 0;
    return 0;
  }
  return epoll_ctl(p->fd, EPOLL_CTL_DEL, fd, NULL);
}

void poller_arm(gh_poller *p, int fd, unsigned events) {
  if (p->kind != GH_POLL || fd < 0 || fd >= p->nslots) return;
  struct gh_pslot *s = &p->slots[fd];
  if (s->used) s->armed |= events & s->events;
}

int poller_wait(gh_poller *p, gh_pollev *out, int max, int timeout_ms) {
  int n = p->kind == GH_POLL ? poll_wait_events(p, out, max, timeout_ms)
                             : epoll_wait_events(p, out, max, timeout_ms);
  if (n >= 0) return n;
  if (errno == EINTR) return 0; /* a signal: the caller's loop goes on */
  if (errno == ENOMEM) {        /* the kernel is short: a pause, not a failure */
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
    return 0;
  }
  return -1; /* EBADF, EINVAL, EFAULT: the instance is gone or broken */
}
