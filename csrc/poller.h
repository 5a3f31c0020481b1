/*
 * poller.h - the poller: the one interface to the OS readiness API. Two
 * backends in poller.c, chosen when a hub opens its poller: epoll (Linux,
 * the default) and poll(2) (portable; GREENHUB_BACKEND=poll selects it).
 * poller.c is the only file that includes sys/epoll.h; the hub watches fds
 * through this interface and knows nothing of the mechanism underneath.
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

struct gh_pslot;
struct pollfd;

typedef struct gh_poller {
  int kind;                /* GH_EPOLL or GH_POLL */
  int fd;                  /* epoll: the instance, or -1 */
  /* poll(2): what is watched, one slot per fd number */
  struct gh_pslot *slots;
  int nslots;
  struct pollfd *pfds;     /* the array each wait hands to poll() */
  int *pfd_fd;             /* ... and the fd of each entry */
  int npfds;
} gh_poller;

enum { GH_EPOLL, GH_POLL };

/* All return 0, or -1 with errno set. */
int poller_open(gh_poller *p);   /* the backend GREENHUB_BACKEND names */
void poller_close(gh_poller *p);
/*
 * edge: report each readiness once, until the hub asks again with
 * poller_arm (it tracks readiness itself and asks when a thread waits);
 * else report while the condition holds. add on an fd already added
 * modifies it (and arms what it watches).
 */
int poller_add(gh_poller *p, int fd, unsigned events, int edge, uint64_t data);
int poller_modify(gh_poller *p, int fd, unsigned events, int edge, uint64_t data);
int poller_remove(gh_poller *p, int fd);
/* A thread now waits on fd for events: report them when they hold
   (edge-triggered epoll reports every change anyway: a no-op there). */
void poller_arm(gh_poller *p, int fd, unsigned events);
/* Wait up to timeout_ms (-1: no limit) for at most max events: their
   number (0 on timeout, or when a signal interrupted the wait), or -1 with
   errno when the poller itself failed (a broken instance: the caller must
   not just loop). */
int poller_wait(gh_poller *p, gh_pollev *ev, int max, int timeout_ms);
/* "epoll" or "poll" */
const char *poller_backend(const gh_poller *p);

#endif
