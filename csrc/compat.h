/*
 * compat.h - the Linux-only calls greenhub uses, each with a portable
 * form (compat.c). The portable forms run where the Linux ones do not
 * exist, and on Linux when the portable poll(2) backend was chosen
 * (GREENHUB_BACKEND=poll), so that path is tested here.
 */
#ifndef GH_COMPAT_H
#define GH_COMPAT_H

#include <stddef.h>

/* nonzero: use the portable forms (set when a poll(2) poller opens) */
extern int gh_portable;

/* a socket, non-blocking and close-on-exec: SOCK_NONBLOCK|SOCK_CLOEXEC,
   or socket() + fcntl (+ SO_NOSIGPIPE where it exists) */
int gh_socket(int family, int type);
/* an accepted connection, the same: accept4, or accept() + fcntl */
int gh_accept(int fd);
/* send flags for "no SIGPIPE": MSG_NOSIGNAL where it exists, else 0
   (SIGPIPE is ignored process-wide, and SO_NOSIGPIPE set where it exists) */
int gh_nosignal(void);

/* a pipe, both ends non-blocking and close-on-exec */
int gh_pipe(int p[2]);

/*
 * A wake-up channel from other OS threads to the hub: an eventfd, or a
 * pipe. w[0] is the end the hub watches and drains, w[1] the end writers
 * signal (the same fd for an eventfd).
 */
int gh_wakeup_open(int w[2]);
void gh_wakeup_close(int w[2]);
void gh_wakeup_signal(int wfd);   /* async-signal- and thread-safe */
void gh_wakeup_drain(int rfd);

#endif
