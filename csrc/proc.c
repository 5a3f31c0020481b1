/*
 * proc.c - signals and child processes, two event sources of the hub.
 *
 * Signals: every signal with a handler is blocked and read from one
 * signalfd; the hub then runs the Lua dispatcher (set by greenhub.lua) in a
 * green thread, so handlers may block. The portable form (compat.h) is a
 * sigaction handler writing each signal's number to a self-pipe.
 *
 * Children (posix_spawn; their pipes are green streams made by stream.c's
 * fdopen): each is a record watched through its pidfd, a source whose
 * ready() reaps it and wakes its waiters. Without pidfds (the portable
 * form, or a kernel older than 5.3) SIGCHLD comes through the self-pipe
 * and every child still running is asked with waitpid(pid, WNOHANG): no
 * other code's children are ever reaped.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "greenhub.h"
#include "compat.h"

extern char **environ;

#define CHILD_MT "greenhub.child"

typedef struct gh_child gh_child;

/* this part's state, one per hub */
typedef struct gh_proc {
  int sigfd;               /* signalfd of the watched signals, or -1 */
  gh_source sigsrc;        /* ... as an event source */
  gh_source pipesrc;       /* the self-pipe (sig_pipe[0]) as a source */
  sigset_t sigmask;        /* the watched signals */
  int dispatch_ref;        /* registry: Lua function run per signal */
  gh_link children;        /* records of children not yet reaped */
  int chld_handler;        /* SIGCHLD's handler writes to the pipe */
} gh_proc;

static gh_proc *proc_of(gh_hub *h) { return h->proc; }

/* ---------------------------------------------------------------- signals */

static const struct { const char *name; int sig; } signames[] = {
  {"HUP", SIGHUP}, {"INT", SIGINT}, {"QUIT", SIGQUIT}, {"USR1", SIGUSR1},
  {"USR2", SIGUSR2}, {"TERM", SIGTERM}, {"CHLD", SIGCHLD}, {"ALRM", SIGALRM},
  {"WINCH", SIGWINCH}, {"PIPE", SIGPIPE}, {"CONT", SIGCONT}, {"TSTP", SIGTSTP},
  {"KILL", SIGKILL}, {"STOP", SIGSTOP}, {"ABRT", SIGABRT}, {"TTIN", SIGTTIN},
  {"TTOU", SIGTTOU}, {"SEGV", SIGSEGV}, {"BUS", SIGBUS}, {"URG", SIGURG}, {"XCPU", SIGXCPU},
  {NULL, 0}
};

/* A signal argument: number or name ("TERM", "SIGTERM"). */
static int check_signal(lua_State *L, int arg) {
  if (lua_type(L, arg) == LUA_TNUMBER) {
    lua_Integer n = luaL_checkinteger(L, arg);
    if (n < 1 || n >= NSIG) luaL_argerror(L, arg, "invalid signal number");
    return (int)n;
  }
  const char *name = luaL_checkstring(L, arg);
  if (strncmp(name, "SIG", 3) == 0) name += 3;
  for (int i = 0; signames[i].name; i++)
    if (strcmp(signames[i].name, name) == 0) return signames[i].sig;
  return luaL_argerror(L, arg, lua_pushfstring(L, "unknown signal '%s'", name));
}

static void children_poll(gh_hub *h);

/* One signal arrived (from the loop, on the main thread). */
static void deliver(gh_hub *h, int sig) {
  gh_proc *p = proc_of(h);
  if (sig == SIGCHLD && !link_empty(&p->children)) children_poll(h);
  if (p->dispatch_ref == LUA_NOREF || !sigismember(&p->sigmask, sig)) return;
  lua_State *L = h->mainL;
  lua_rawgeti(L, LUA_REGISTRYINDEX, p->dispatch_ref);
  lua_pushinteger(L, (lua_Integer)sig);
  thread_spawn_n(L, h, 2);
}

/*
 * The self-pipe: one per process, as signal dispositions are. A handler
 * writes each signal's number to it; the first hub to need it watches it.
 */
static int sig_pipe[2] = {-1, -1};

static void sig_to_pipe(int sig) {
  int e = errno;
  unsigned char b = (unsigned char)sig;
  ssize_t r = write(sig_pipe[1], &b, 1);
  (void)r; /* a full pipe: signals are merged anyway, as with signalfd */
  errno = e;
}

static void pipe_ready(gh_hub *h, gh_source *src) {
  unsigned char b[64];
  ssize_t n;
  while ((n = read(src->fd, b, sizeof b)) > 0)
    for (ssize_t i = 0; i < n; i++) deliver(h, b[i]);
}

static void signalfd_ready(gh_hub *h, gh_source *src) {
  struct signalfd_siginfo si[16];
  ssize_t n;
  while ((n = read(src->fd, si, sizeof si)) > 0)
    for (size_t i = 0; i < (size_t)n / sizeof si[0]; i++) deliver(h, (int)si[i].ssi_signo);
}

/*
 * After fork the child must not share these with its parent: a signalfd's
 * mask belongs to the open file (a child changing its handlers would change
 * the parent's), and bytes in a shared pipe would reach whichever process
 * reads first. The child gets its own, watching the same signals.
 */
static void pipe_after_fork(gh_hub *h, gh_source *src) {
  int old[2] = {sig_pipe[0], sig_pipe[1]};
  if (gh_pipe(sig_pipe) < 0) { /* keep the old one: better than none */
    sig_pipe[0] = old[0];
    sig_pipe[1] = old[1];
  } else {
    close(old[0]);
    close(old[1]);
  }
  src->fd = sig_pipe[0];
  hub_source_add(h, src);
}

static void signalfd_after_fork(gh_hub *h, gh_source *src) {
  gh_proc *p = proc_of(h);
  int fd = signalfd(-1, &p->sigmask, SFD_NONBLOCK | SFD_CLOEXEC);
  if (fd >= 0) {
    close(p->sigfd);
    p->sigfd = fd;
  }
  src->fd = p->sigfd;
  hub_source_add(h, src);
}

/* Watch the self-pipe (0), or -1 with errno. */
static int pipe_open(gh_hub *h) {
  gh_proc *p = proc_of(h);
  hub_check_fork(h);
  if (p->pipesrc.fd >= 0) return 0;
  if (sig_pipe[0] < 0 && gh_pipe(sig_pipe) < 0) return -1;
  p->pipesrc.fd = sig_pipe[0];
  p->pipesrc.ready = pipe_ready;
  p->pipesrc.after_fork = pipe_after_fork;
  if (hub_source_add(h, &p->pipesrc) < 0) {
    p->pipesrc.fd = -1;
    return -1;
  }
  return 0;
}

/* Route sig to the pipe through a handler (on), or give it back (off). */
static void pipe_handler(int sig, int on) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on ? sig_to_pipe : SIG_DFL;
  sa.sa_flags = SA_RESTART | (sig == SIGCHLD ? SA_NOCLDSTOP : 0);
  sigfillset(&sa.sa_mask);
  sigaction(sig, &sa, NULL);
}

/* Bring the signalfd's mask up to date, opening it on first use. */
static int signalfd_update(gh_hub *h) {
  gh_proc *p = proc_of(h);
  hub_check_fork(h); /* a child changes its own signalfd, never its parent's */
  if (p->sigfd >= 0) return signalfd(p->sigfd, &p->sigmask, 0) < 0 ? -1 : 0;
  p->sigfd = signalfd(-1, &p->sigmask, SFD_NONBLOCK | SFD_CLOEXEC);
  if (p->sigfd < 0) return -1;
  p->sigsrc.fd = p->sigfd;
  p->sigsrc.ready = signalfd_ready;
  p->sigsrc.after_fork = signalfd_after_fork;
  if (hub_source_add(h, &p->sigsrc) < 0) {
    int e = errno;
    close(p->sigfd);
    p->sigfd = p->sigsrc.fd = -1;
    errno = e;
    return -1;
  }
  return 0;
}

/* _signal_watch(sig, on): start/stop delivering sig to the dispatcher */
static int l_signal_watch(lua_State *L) {
  gh_hub *h = HUB(L);
  gh_proc *p = proc_of(h);
  int sig = check_signal(L, 1);
  int on = lua_toboolean(L, 2);
  if (sig == SIGKILL || sig == SIGSTOP) return luaL_argerror(L, 1, "signal cannot be caught");
  sigset_t one;
  sigemptyset(&one);
  /* 32 and 33 belong to the C library's threads: sigaddset refuses them */
  if (sigaddset(&one, sig) < 0)
    return luaL_argerror(L, 1, "signal reserved by the C library");
  if ((gh_portable ? pipe_open(h) : signalfd_update(h)) < 0)
    return luaL_error(L, "greenhub: %s: %s", gh_portable ? "signal pipe" : "signalfd", strerror(errno));
  if (on) {
    if (!sigismember(&p->sigmask, sig)) {
      sigaddset(&p->sigmask, sig);
      if (gh_portable) pipe_handler(sig, 1);
      else pthread_sigmask(SIG_BLOCK, &one, NULL);
      hub_ref(h); /* a watched signal may always arrive */
    }
  } else if (sigismember(&p->sigmask, sig)) {
    sigdelset(&p->sigmask, sig);
    hub_unref(h);
    if (gh_portable) {
      if (!(sig == SIGCHLD && p->chld_handler)) pipe_handler(sig, 0);
    } else {
      /* drain a pending one before unblocking, or it would act now */
      struct timespec zero = {0, 0};
      while (sigtimedwait(&one, NULL, &zero) > 0) {}
      pthread_sigmask(SIG_UNBLOCK, &one, NULL);
      /* a SIGCHLD drained there may have been a child's last word */
      if (sig == SIGCHLD && !link_empty(&p->children)) children_poll(h);
    }
  }
  if (!gh_portable && signalfd_update(h) < 0)
    return luaL_error(L, "greenhub: signalfd: %s", strerror(errno));
  lua_pushinteger(L, sig);
  return 1;
}

static int l_signal_dispatcher(lua_State *L) {
  gh_proc *p = proc_of(HUB(L));
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_settop(L, 1);
  luaL_unref(L, LUA_REGISTRYINDEX, p->dispatch_ref);
  p->dispatch_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return 0;
}

/* ---------------------------------------------------------------- children */

/*
 * A child process. The record belongs to the hub's list until the child is
 * reaped, and to its userdata (a greenhub.child) until that is collected:
 * whichever lets go last frees it. While someone waits for it, or nobody
 * can any more (orphaned: closed or collected before it was reaped), it
 * holds a hub reference, so gh.run() sees it through, as a thread waiting
 * for it would.
 */
struct gh_child {
  gh_source src;           /* its pidfd (fd -1 without one) */
  gh_link link;            /* in the hub's children, until reaped */
  gh_link waiters;         /* threads in child:wait() */
  gh_hub *hub;             /* NULL once the hub has closed */
  pid_t pid;
  int done;                /* reaped (or lost): status below is final */
  int ok, how, code, err;  /* how: 0 exit, 1 signal, 2 error (err) */
  int held;                /* holds a hub reference */
  int orphan;              /* no owner will wait: reap in the background */
  int has_ud;              /* its userdata is alive */
};

typedef struct { gh_child *c; } child_ud;

static void child_free(gh_child *c) { free(c); }

/* Hold a hub reference exactly while the child's end is awaited. */
static void child_hold(gh_child *c) {
  int want = c->hub && !c->done && (c->orphan || !link_empty(&c->waiters));
  if (want == c->held) return;
  c->held = want;
  if (want) hub_ref(c->hub); else hub_unref(c->hub);
}

/* Stop watching c: drop its source and pidfd, leave the list. */
static void child_unwatch(gh_child *c) {
  if (c->src.fd >= 0) {
    if (c->hub) hub_source_remove(c->hub, &c->src);
    close(c->src.fd);
    c->src.fd = -1;
  }
  if (link_linked(&c->link)) link_remove(&c->link);
}

/* c's end is known: record it, wake its waiters; 1 if c was freed. */
static int child_finish(gh_child *c, int st, int err) {
  c->done = 1;
  if (err) {
    c->how = 2;
    c->err = err;
  } else if (WIFEXITED(st)) {
    c->how = 0;
    c->code = WEXITSTATUS(st);
    c->ok = c->code == 0;
  } else {
    c->how = 1;
    c->code = WTERMSIG(st);
  }
  child_unwatch(c);
  while (!link_empty(&c->waiters))
    hub_wake(c->hub, container_of(c->waiters.next, gh_thread, link), WK_OK);
  child_hold(c);
  if (!c->has_ud) { child_free(c); return 1; }
  return 0;
}

/* Ask the kernel whether c has ended; reap it if so. 1 if c was freed. */
static int child_poll(gh_child *c) {
  if (c->done) return 0;
  int st = 0;
  pid_t r;
  do r = waitpid(c->pid, &st, WNOHANG); while (r < 0 && errno == EINTR);
  if (r == 0) return 0;
  return child_finish(c, st, r < 0 ? errno : 0);
}

/* SIGCHLD: any child may have ended. */
static void children_poll(gh_hub *h) {
  gh_link *l = proc_of(h)->children.next;
  while (l != &proc_of(h)->children) {
    gh_link *next = l->next;
    child_poll(container_of(l, gh_child, link));
    l = next;
  }
}

static void child_ready(gh_hub *h, gh_source *src) {
  (void)h;
  child_poll(container_of(src, gh_child, src));
}

/* In a child process of ours after fork: our children are not its own. */
static void child_after_fork(gh_hub *h, gh_source *src) {
  (void)h;
  child_finish(container_of(src, gh_child, src), 0, ECHILD);
}

static gh_child *child_check(lua_State *L) {
  child_ud *u = luaL_checkudata(L, 1, CHILD_MT);
  if (!u->c) luaL_error(L, "greenhub: child record is gone");
  return u->c;
}

/* push c's status: true|nil, "exit"|"signal", code; or nil, err */
static int child_status(lua_State *L, gh_child *c) {
  if (c->how == 2) {
    lua_pushnil(L);
    lua_pushstring(L, strerror(c->err));
    return 2;
  }
  if (c->ok) lua_pushboolean(L, 1); else lua_pushnil(L);
  if (c->how == 0) lua_pushliteral(L, "exit"); else lua_pushliteral(L, "signal");
  lua_pushinteger(L, c->code);
  return 3;
}

/*
 * _child(pid) -> a greenhub.child for a process this process started. With
 * a pidfd it is a source of its own; without, SIGCHLD through the pipe
 * stands for it (the handler is installed before the first poll below, so
 * an end that came earlier is seen by that poll).
 */
static int l_child(lua_State *L) {
  gh_hub *h = HUB(L);
  gh_proc *p = proc_of(h);
  lua_Integer pid = luaL_checkinteger(L, 1);
  if (pid <= 0 || pid != (pid_t)pid) return luaL_argerror(L, 1, "invalid pid");
  child_ud *u = lua_newuserdatauv(L, sizeof *u, 0);
  u->c = NULL;
  luaL_setmetatable(L, CHILD_MT);
  gh_child *c = calloc(1, sizeof *c);
  if (!c) return gh_nomem(L);
  c->hub = h;
  c->pid = (pid_t)pid;
  c->src.fd = -1;
  c->has_ud = 1;
  link_init(&c->link);
  link_init(&c->waiters);
  link_init(&c->src.link);
  u->c = c;
  int fd = -1;
#ifdef SYS_pidfd_open
  if (!gh_portable) fd = (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
#endif
  if (fd >= 0) {
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    hub_fd_forget(h, fd);
    c->src.fd = fd;
    c->src.ready = child_ready;
    c->src.after_fork = child_after_fork;
    if (hub_source_add(h, &c->src) < 0) {
      int e = errno;
      close(fd);
      c->src.fd = -1;
      return luaL_error(L, "greenhub: cannot watch child %d: %s", (int)pid, strerror(e));
    }
  } else if (!p->chld_handler) {
    if (pipe_open(h) < 0)
      return luaL_error(L, "greenhub: signal pipe: %s", strerror(errno));
    p->chld_handler = 1;
    if (gh_portable || !sigismember(&p->sigmask, SIGCHLD)) pipe_handler(SIGCHLD, 1);
  }
  link_push(&p->children, &c->link);
  child_poll(c);
  return 1;
}

static int child_wait_k(lua_State *L, int status, lua_KContext ctx) {
  gh_hub *h = HUB(L);
  gh_thread *self = hub_me(L, h);
  child_ud *u = lua_touserdata(L, 1);
  (void)status; (void)ctx;
  if (u->c) child_hold(u->c);
  hub_check_intr(L, h, self);
  if (self->wake == WK_TIMEOUT || !u->c || !u->c->done) return 0;
  return child_status(L, u->c);
}

/* child:wait([timeout]) -> its status, or nothing when the time ran out */
static int l_child_wait(lua_State *L) {
  gh_child *c = child_check(L);
  gh_hub *h = HUB(L);
  int64_t d = hub_deadline(L, 2);
  lua_settop(L, 1);
  if (!c->done) child_poll(c);
  if (c->done) return child_status(L, c);
  if (hub_expired(d)) return 0;
  gh_thread *self = hub_self(L, h, "process:wait");
  self->waitcode = WC_CHILD;
  link_push(&c->waiters, &self->link);
  self->where = TW_LIST;
  hub_anchor(L, h, self, 1);
  child_hold(c);
  return hub_park(L, h, self, d, 0, child_wait_k);
}

/* child:kill([sig]) -> true, or nil, err; never signals a reaped pid */
static int l_child_kill(lua_State *L) {
  gh_child *c = child_check(L);
  int sig = lua_isnoneornil(L, 2) ? SIGTERM : check_signal(L, 2);
  if (!c->done) child_poll(c);
  int r;
  if (c->done) {
    r = -1;
    errno = ESRCH;
  } else if (c->src.fd >= 0) {
#ifdef SYS_pidfd_send_signal
    r = (int)syscall(SYS_pidfd_send_signal, c->src.fd, sig, NULL, 0);
#else
    r = -1;
    errno = ENOSYS;
#endif
  } else {
    r = kill(c->pid, sig);
  }
  if (r < 0) {
    lua_pushnil(L);
    lua_pushstring(L, strerror(errno));
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* child:orphan(): nobody will wait; reap it in the background */
static int l_child_orphan(lua_State *L) {
  gh_child *c = child_check(L);
  if (!c->done) child_poll(c);
  c->orphan = 1;
  child_hold(c);
  return 0;
}

/* child:done() -> whether it has been reaped */
static int l_child_done(lua_State *L) {
  gh_child *c = child_check(L);
  if (!c->done) child_poll(c);
  lua_pushboolean(L, c->done);
  return 1;
}

static int l_child_gc(lua_State *L) {
  child_ud *u = luaL_checkudata(L, 1, CHILD_MT);
  gh_child *c = u->c;
  u->c = NULL;
  if (!c) return 0;
  c->has_ud = 0;
  if (c->done || !c->hub) { child_free(c); return 0; }
  c->orphan = 1; /* the list keeps it until the child is reaped */
  child_hold(c);
  child_poll(c);
  return 0;
}

static int l_child_tostring(lua_State *L) {
  child_ud *u = luaL_checkudata(L, 1, CHILD_MT);
  if (!u->c) lua_pushliteral(L, "greenhub.child (gone)");
  else lua_pushfstring(L, "greenhub.child (%d, %s)", (int)u->c->pid, u->c->done ? "reaped" : "running");
  return 1;
}

void proc_close(gh_hub *h) {
  gh_proc *p = proc_of(h);
  if (!p) return;
  h->proc = NULL;
  while (!link_empty(&p->children)) {
    gh_child *c = container_of(p->children.next, gh_child, link);
    child_unwatch(c);
    c->hub = NULL;
    c->held = 0;
    if (!c->has_ud) child_free(c);
  }
  if (p->sigfd >= 0) {
    hub_source_remove(h, &p->sigsrc);
    close(p->sigfd);
  }
  if (p->pipesrc.fd >= 0) { /* the process's pipe: the handlers stop using it */
    hub_source_remove(h, &p->pipesrc);
    for (int sig = 1; sig < NSIG; sig++)
      if (gh_portable && sigismember(&p->sigmask, sig)) pipe_handler(sig, 0);
    if (p->chld_handler) pipe_handler(SIGCHLD, 0);
    gh_wakeup_close(sig_pipe);
  }
  luaL_unref(h->mainL, LUA_REGISTRYINDEX, p->dispatch_ref);
  free(p);
}

/* ---------------------------------------------------------------- processes */

enum { IO_INHERIT, IO_PIPE, IO_NULL };

static int io_opt(lua_State *L, int opts, const char *field, int def) {
  static const char *const names[] = {"inherit", "pipe", "null", NULL};
  if (lua_isnoneornil(L, opts)) return def;
  lua_getfield(L, opts, field);
  int r = def;
  if (!lua_isnil(L, -1)) {
    const char *v = lua_tostring(L, -1);
    for (r = 0; names[r] && !(v && strcmp(names[r], v) == 0); r++) {}
    if (!names[r])
      return luaL_argerror(L, opts, lua_pushfstring(L, "%s must be 'inherit', 'pipe' or 'null'", field));
  }
  lua_pop(L, 1);
  return r;
}

static void close_pair(int p[2]) {
  if (p[0] >= 0) close(p[0]);
  if (p[1] >= 0) close(p[1]);
}

/*
 * _spawn(argv [, opts]) -> pid, stdin_fd, stdout_fd, stderr_fd (-1 when not
 * a pipe), or nil, err. opts: stdin/stdout/stderr = "pipe"|"inherit"|"null",
 * env = {NAME = value}, cwd = path, search = true (PATH lookup).
 */
static int l_spawn_process(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TTABLE);
  int argc = (int)luaL_len(L, 1);
  if (argc < 1) return luaL_argerror(L, 1, "argv must not be empty");
  const char **argv = lua_newuserdatauv(L, sizeof(char *) * (size_t)(argc + 1), 0);
  for (int i = 1; i <= argc; i++) {
    /* strings stay anchored by the argv table itself */
    if (lua_rawgeti(L, 1, i) != LUA_TSTRING) return luaL_argerror(L, 1, "argv entries must be strings");
    argv[i - 1] = lua_tostring(L, -1);
    lua_pop(L, 1);
  }
  argv[argc] = NULL;
  int io[3] = {io_opt(L, 2, "stdin", IO_PIPE), io_opt(L, 2, "stdout", IO_PIPE),
               io_opt(L, 2, "stderr", IO_INHERIT)};
  char **envp = environ;
  if (!lua_isnoneornil(L, 2) && lua_getfield(L, 2, "env") == LUA_TTABLE) {
    int et = lua_gettop(L), n = 0;
    lua_pushnil(L);
    while (lua_next(L, et)) { n++; lua_pop(L, 1); }
    envp = lua_newuserdatauv(L, sizeof(char *) * (size_t)(n + 1), 0);
    lua_createtable(L, n, 0); /* anchors the NAME=value strings */
    int anchor = lua_gettop(L), k = 0;
    lua_pushnil(L);
    while (lua_next(L, et)) {
      if (lua_type(L, -2) != LUA_TSTRING) return luaL_argerror(L, 2, "env keys must be strings");
      lua_pushfstring(L, "%s=%s", lua_tostring(L, -2), luaL_checkstring(L, -1));
      envp[k++] = (char *)lua_tostring(L, -1);
      lua_rawseti(L, anchor, k);
      lua_pop(L, 1);
    }
    envp[k] = NULL;
  }
  const char *cwd = NULL;
  if (!lua_isnoneornil(L, 2) && lua_getfield(L, 2, "cwd") == LUA_TSTRING) cwd = lua_tostring(L, -1);
  int search = 1;
  if (!lua_isnoneornil(L, 2)) {
    lua_getfield(L, 2, "search");
    if (!lua_isnil(L, -1)) search = lua_toboolean(L, -1);
    lua_pop(L, 1);
  }

  int pipes[3][2] = {{-1, -1}, {-1, -1}, {-1, -1}};
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  int err = 0;
  for (int i = 0; i < 3 && !err; i++) {
    if (io[i] == IO_PIPE) {
      if (pipe2(pipes[i], O_CLOEXEC) < 0) { err = errno; break; }
      int child = i == 0 ? pipes[i][0] : pipes[i][1];
      posix_spawn_file_actions_adddup2(&fa, child, i);
    } else if (io[i] == IO_NULL) {
      posix_spawn_file_actions_addopen(&fa, i, "/dev/null", i == 0 ? O_RDONLY : O_WRONLY, 0);
    }
  }
  if (cwd && !err) posix_spawn_file_actions_addchdir_np(&fa, cwd);
  posix_spawnattr_t at;
  posix_spawnattr_init(&at);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&at, &none);      /* the child gets no blocked signals */
  posix_spawnattr_setsigdefault(&at, &all);    /* ... and default dispositions */
  posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  pid_t pid = -1;
  if (!err)
    err = search ? posix_spawnp(&pid, argv[0], &fa, &at, (char *const *)argv, envp)
                 : posix_spawn(&pid, argv[0], &fa, &at, (char *const *)argv, envp);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&at);
  if (err) {
    for (int i = 0; i < 3; i++) close_pair(pipes[i]);
    lua_pushnil(L);
    lua_pushstring(L, strerror(err));
    return 2;
  }
  lua_pushinteger(L, pid);
  for (int i = 0; i < 3; i++) {
    int mine = -1;
    if (io[i] == IO_PIPE) {
      mine = i == 0 ? pipes[i][1] : pipes[i][0];
      close(i == 0 ? pipes[i][0] : pipes[i][1]);
      fcntl(mine, F_SETFL, fcntl(mine, F_GETFL) | O_NONBLOCK);
    }
    lua_pushinteger(L, mine);
  }
  return 4;
}

/* _waitpid(pid) -> nil (running) | true|nil, "exit"|"signal", code */
static int l_waitpid(lua_State *L) {
  pid_t pid = (pid_t)luaL_checkinteger(L, 1);
  int st;
  pid_t r;
  do r = waitpid(pid, &st, WNOHANG); while (r < 0 && errno == EINTR);
  if (r == 0) return 0;
  if (r < 0) {
    lua_pushnil(L);
    lua_pushstring(L, strerror(errno));
    return 2;
  }
  if (WIFEXITED(st)) {
    if (WEXITSTATUS(st) == 0) lua_pushboolean(L, 1); else lua_pushnil(L);
    lua_pushliteral(L, "exit");
    lua_pushinteger(L, WEXITSTATUS(st));
  } else {
    lua_pushnil(L);
    lua_pushliteral(L, "signal");
    lua_pushinteger(L, WTERMSIG(st));
  }
  return 3;
}

/*
 * _interrupt_timer(usec): a SIGALRM with a do-nothing handler installed
 * without SA_RESTART every usec microseconds, so every blocking syscall the
 * hub makes meets EINTR; 0 stops it. For the specs (fault injection).
 */
static void on_alarm(int sig) { (void)sig; }
static int l_interrupt_timer(lua_State *L) {
  lua_Integer us = luaL_checkinteger(L, 1);
  struct itimerval it;
  memset(&it, 0, sizeof it);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sigemptyset(&sa.sa_mask);
  if (us > 0) {
    sa.sa_handler = on_alarm; /* no SA_RESTART: syscalls fail with EINTR */
    sigaction(SIGALRM, &sa, NULL);
    it.it_interval.tv_sec = it.it_value.tv_sec = us / 1000000;
    it.it_interval.tv_usec = it.it_value.tv_usec = us % 1000000;
    setitimer(ITIMER_REAL, &it, NULL);
  } else {
    setitimer(ITIMER_REAL, &it, NULL);
    sa.sa_handler = SIG_IGN; /* not SIG_DFL: a late alarm must not kill us */
    sigaction(SIGALRM, &sa, NULL);
  }
  return 0;
}

/* _fork(): fork(2), for the specs that prove a child gets a fresh hub */
static int l_fork(lua_State *L) {
  pid_t pid = fork();
  if (pid < 0) return luaL_error(L, "fork: %s", strerror(errno));
  lua_pushinteger(L, pid);
  return 1;
}

static int l_closefd(lua_State *L) {
  int fd = (int)luaL_checkinteger(L, 1);
  hub_fd_forget(HUB(L), fd);
  close(fd);
  return 0;
}

/* _pipe() -> read fd, write fd (both non-blocking, close-on-exec) */
static int l_pipe(lua_State *L) {
  int p[2];
  if (gh_pipe(p) < 0) return gh_fail(L, strerror(errno));
  hub_fd_forget(HUB(L), p[0]);
  hub_fd_forget(HUB(L), p[1]);
  lua_pushinteger(L, p[0]);
  lua_pushinteger(L, p[1]);
  return 2;
}

/* _procinfo() -> pid, parent pid, online CPUs */
static int l_procinfo(lua_State *L) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  lua_pushinteger(L, getpid());
  lua_pushinteger(L, getppid());
  lua_pushinteger(L, n > 0 ? n : 1);
  return 3;
}

/* _pdeathsig(sig [, parent]): sig when the parent dies (Linux); if the
   parent is already gone (not `parent` any more), raise sig now */
static int l_pdeathsig(lua_State *L) {
  int sig = check_signal(L, 1);
#ifdef __linux__
  if (prctl(PR_SET_PDEATHSIG, sig) < 0) return gh_fail(L, strerror(errno));
#endif
  if (!lua_isnoneornil(L, 2) && getppid() != (pid_t)luaL_checkinteger(L, 2)) raise(sig);
  lua_pushboolean(L, 1);
  return 1;
}

static const luaL_Reg proc_funcs[] = {
  {"_pipe", l_pipe}, {"_procinfo", l_procinfo}, {"_pdeathsig", l_pdeathsig},
  {"_signal_watch", l_signal_watch}, {"_signal_dispatcher", l_signal_dispatcher},
  {"_spawn", l_spawn_process}, {"_child", l_child}, {"_waitpid", l_waitpid},
  {"_closefd", l_closefd}, {"_fork", l_fork},
  {"_interrupt_timer", l_interrupt_timer},
  {NULL, NULL}
};

static const luaL_Reg child_methods[] = {
  {"wait", l_child_wait}, {"kill", l_child_kill}, {"orphan", l_child_orphan},
  {"done", l_child_done}, {NULL, NULL}
};

void proc_open(lua_State *L, int mod, int hub) {
  gh_hub *h = lua_touserdata(L, hub);
  if (!h->proc) { /* a second require of the module finds the hub's own */
    gh_proc *p = calloc(1, sizeof *p);
    if (!p) gh_nomem(L);
    p->sigfd = p->sigsrc.fd = p->pipesrc.fd = -1;
    sigemptyset(&p->sigmask);
    p->dispatch_ref = LUA_NOREF;
    link_init(&p->children);
    link_init(&p->sigsrc.link);
    link_init(&p->pipesrc.link);
    h->proc = p;
  }
  gh_setfuncs(L, mod, hub, proc_funcs);
  luaL_newmetatable(L, CHILD_MT);
  int mt = lua_gettop(L);
  lua_newtable(L);
  gh_setfuncs(L, lua_gettop(L), hub, child_methods);
  lua_setfield(L, mt, "__index");
  const luaL_Reg meta[] = {{"__gc", l_child_gc}, {"__tostring", l_child_tostring}, {NULL, NULL}};
  gh_setfuncs(L, mt, hub, meta);
  lua_pop(L, 1);
}
