/*
 * poll.h - the poller: the one interface to the OS readiness API (epoll on
 * Linux, in poll.c; the only file that includes sys/epoll.h). The hub
 * watches fds through it and knows nothing of the mechanism underneath.
 */
#ifndef GH_POLL_H
#define GH_POLL_H

#include <stdint.h>

/* what an fd is watched for, and what a wait reports */
enum { GH_IN = 1, GH_OUT = 2, GH_HUP = 4 /* hang-up or error; with IN and OUT */ };

typedef struct gh_pollev {
  uint64_t data;     /* what the fd was added with */
  unsigned events;   /* GH_IN | GH_OUT | GH_HUP */
} gh_pollev;

typedef struct gh_poller {
  int fd;            /* the epoll instance, or -1 */
} gh_poller;

/* All return 0, or -1 with errno set. */
int poller_open(gh_poller *p);
void poller_close(gh_poller *p);
/* edge: report each change once (the caller tracks readiness itself);
   else report while the condition holds. add on an fd already added
   modifies it. */
int poller_add(gh_poller *p, int fd, unsigned events, int edge, uint64_t data);
int poller_modify(gh_poller *p, int fd, unsigned events, int edge, uint64_t data);
int poller_remove(gh_poller *p, int fd);
/* Wait up to timeout_ms (-1: no limit) for at most max events: their
   number (0 on timeout, or when a signal interrupted the wait), or -1 with
   errno when the poller itself failed (a broken instance: the caller must
   not just loop). */
int poller_wait(gh_poller *p, gh_pollev *ev, int max, int timeout_ms);
/* "epoll" */
const char *poller_backend(void);

#endif
