/*
 * compat.c - portable forms of the Linux-only calls (see compat.h).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/socket.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/eventfd.h>
#endif

#include "compat.h"

int gh_portable;

static int set_flags(int fd) {
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
#ifdef SO_NOSIGPIPE
  int on = 1;
  setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &on, sizeof on); /* not a socket: harmless */
#endif
  return fd;
}

int gh_socket(int family, int type) {
#if defined(SOCK_NONBLOCK) && defined(SOCK_CLOEXEC)
  if (!gh_portable) return socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
#endif
  int fd = socket(family, type, 0);
  return fd < 0 ? -1 : set_flags(fd);
}

int gh_accept(int fd) {
#if defined(__linux__)
  if (!gh_portable) return accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
#endif
  int c = accept(fd, NULL, NULL);
  return c < 0 ? -1 : set_flags(c);
}

int gh_nosignal(void) {
#ifdef MSG_NOSIGNAL
  if (!gh_portable) return MSG_NOSIGNAL;
#endif
  return 0;
}

int gh_pipe(int p[2]) {
  if (pipe(p) < 0) return -1;
  if (set_flags(p[0]) < 0 || set_flags(p[1]) < 0) {
    int e = errno;
    close(p[0]);
    close(p[1]);
    p[0] = p[1] = -1;
    errno = e;
    return -1;
  }
  return 0;
}

int gh_wakeup_open(int w[2]) {
#ifdef __linux__
  if (!gh_portable) {
    w[0] = w[1] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    return w[0] < 0 ? -1 : 0;
  }
#endif
  return gh_pipe(w);
}

void gh_wakeup_close(int w[2]) {
  if (w[0] >= 0) close(w[0]);
  if (w[1] >= 0 && w[1] != w[0]) close(w[1]);
  w[0] = w[1] = -1;
}

void gh_wakeup_signal(int wfd) {
  uint64_t one = 1; /* an eventfd takes 8 bytes; a pipe any byte */
  ssize_t r = write(wfd, &one, sizeof one);
  (void)r; /* a full counter or pipe still means "readable" */
}

void gh_wakeup_drain(int rfd) {
  char buf[256];
  while (read(rfd, buf, sizeof buf) > 0) {}
}
