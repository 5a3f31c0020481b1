/*
 * proc.c - signals through signalfd, and child processes (posix_spawn,
 * pidfd; their pipes are green streams made by socket.c's fdopen).
 *
 * Signals: every signal with a handler is blocked and read from one
 * signalfd, an event source of the hub; the hub then runs the Lua dispatcher
 * (set by greenhub.lua) in a green thread, so handlers may block.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "greenhub.h"
#include "compat.h"

extern char **environ;

/* ---------------------------------------------------------------- signals */

static const struct { const char *name; int sig; } signames[] = {
  {"HUP", SIGHUP}, {"INT", SIGINT}, {"QUIT", SIGQUIT}, {"USR1", SIGUSR1},
  {"USR2", SIGUSR2}, {"TERM", SIGTERM}, {"CHLD", SIGCHLD}, {"ALRM", SIGALRM},
  {"WINCH", SIGWINCH}, {"PIPE", SIGPIPE}, {"CONT", SIGCONT}, {"TSTP", SIGTSTP},
  {"KILL", SIGKILL}, {"STOP", SIGSTOP}, {"ABRT", SIGABRT},
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

static void signal_ready(gh_hub *h, gh_source *src);

/*
 * The portable form (compat.h): a handler writes each signal's number to
 * a self-pipe, which is the source the hub watches. One pipe per process,
 * as signal dispositions are.
 */
static int sig_pipe[2] = {-1, -1};

static void sig_to_pipe(int sig) {
  int e = errno;
  unsigned char b = (unsigned char)sig;
  ssize_t r = write(sig_pipe[1], &b, 1);
  (void)r; /* a full pipe: signals are merged anyway, as with signalfd */
  errno = e;
}

static int signal_update(gh_hub *h) {
  if (gh_portable) {
    if (h->sigfd >= 0) return 0;
    if (sig_pipe[0] < 0 && gh_wakeup_open(sig_pipe) < 0) return -1;
    if (sig_pipe[0] == sig_pipe[1]) { /* an eventfd: a pipe is needed here */
      gh_wakeup_close(sig_pipe);
      errno = EINVAL;
      return -1;
    }
    h->sigfd = sig_pipe[0];
  } else if (h->sigfd < 0) {
    h->sigfd = signalfd(-1, &h->sigmask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (h->sigfd < 0) return -1;
  } else {
    return signalfd(h->sigfd, &h->sigmask, 0) < 0 ? -1 : 0;
  }
  {
    h->sigsrc.fd = h->sigfd;
    h->sigsrc.ready = signal_ready;
    h->sigsrc.after_fork = NULL; /* the child watches the same fd again */
    if (hub_source_add(h, &h->sigsrc) < 0) {
      int e = errno;
      if (!gh_portable) close(h->sigfd);
      h->sigfd = -1;
      errno = e;
      return -1;
    }
    return 0;
  }
}

/* _signal_watch(sig, on): start/stop delivering sig to the dispatcher */
static int l_signal_watch(lua_State *L) {
  gh_hub *h = HUB(L);
  int sig = check_signal(L, 1);
  int on = lua_toboolean(L, 2);
  if (sig == SIGKILL || sig == SIGSTOP) return luaL_argerror(L, 1, "signal cannot be caught");
  sigset_t one;
  sigemptyset(&one);
  /* 32 and 33 belong to the C library's threads: sigaddset refuses them */
  if (sigaddset(&one, sig) < 0)
    return luaL_argerror(L, 1, "signal reserved by the C library");
  if (signal_update(h) < 0)
    return luaL_error(L, "greenhub: %s: %s", gh_portable ? "signal pipe" : "signalfd", strerror(errno));
  if (on) {
    if (!sigismember(&h->sigmask, sig)) {
      sigaddset(&h->sigmask, sig);
      if (gh_portable) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = sig_to_pipe;
        sa.sa_flags = SA_RESTART;
        sigfillset(&sa.sa_mask);
        sigaction(sig, &sa, NULL);
      } else {
        pthread_sigmask(SIG_BLOCK, &one, NULL);
      }
      hub_ref(h); /* a watched signal may always arrive */
    }
  } else if (sigismember(&h->sigmask, sig)) {
    sigdelset(&h->sigmask, sig);
    hub_unref(h);
    if (gh_portable) {
      signal(sig, SIG_DFL);
    } else {
      /* drain a pending one before unblocking, or it would act now */
      struct timespec zero = {0, 0};
      while (sigtimedwait(&one, NULL, &zero) > 0) {}
      pthread_sigmask(SIG_UNBLOCK, &one, NULL);
    }
  }
  if (signal_update(h) < 0)
    return luaL_error(L, "greenhub: %s: %s", gh_portable ? "signal pipe" : "signalfd", strerror(errno));
  lua_pushinteger(L, sig);
  return 1;
}

static int l_signal_dispatcher(lua_State *L) {
  gh_hub *h = HUB(L);
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_settop(L, 1);
  luaL_unref(L, LUA_REGISTRYINDEX, h->sigdispatch_ref);
  h->sigdispatch_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return 0;
}

/* The signalfd is readable (called from the loop, on the main thread). */
static void signal_ready(gh_hub *h, gh_source *src) {
  (void)src;
  lua_State *L = h->mainL;
  if (gh_portable) { /* the self-pipe: one byte per signal */
    unsigned char b[64];
    ssize_t n;
    while ((n = read(h->sigfd, b, sizeof b)) > 0) {
      for (ssize_t i = 0; i < n; i++) {
        if (h->sigdispatch_ref == LUA_NOREF || !sigismember(&h->sigmask, b[i])) continue;
        lua_rawgeti(L, LUA_REGISTRYINDEX, h->sigdispatch_ref);
        lua_pushinteger(L, (lua_Integer)b[i]);
        thread_spawn_n(L, h, 2);
      }
    }
    return;
  }
  struct signalfd_siginfo si[16];
  ssize_t n;
  while ((n = read(h->sigfd, si, sizeof si)) > 0) {
    for (size_t i = 0; i < (size_t)n / sizeof si[0]; i++) {
      if (h->sigdispatch_ref == LUA_NOREF) continue;
      lua_rawgeti(L, LUA_REGISTRYINDEX, h->sigdispatch_ref);
      lua_pushinteger(L, (lua_Integer)si[i].ssi_signo);
      thread_spawn_n(L, h, 2);
    }
  }
}

void proc_close(gh_hub *h) {
  if (h->sigfd >= 0) {
    hub_source_remove(h, &h->sigsrc);
    if (gh_portable) { /* the process's pipe: the handlers stop using it */
      for (int sig = 1; sig < NSIG; sig++)
        if (sigismember(&h->sigmask, sig)) signal(sig, SIG_DFL);
      gh_wakeup_close(sig_pipe);
    } else {
      close(h->sigfd);
    }
  }
  h->sigfd = -1;
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

/* _pidfd(pid) -> fd that becomes readable when the child exits, or nil */
static int l_pidfd(lua_State *L) {
  lua_Integer pid = luaL_checkinteger(L, 1);
  if (gh_portable) { /* no pidfd: proc.lua waits by polling waitpid */
    lua_pushnil(L);
    lua_pushliteral(L, "no pidfd in portable mode");
    return 2;
  }
#ifdef SYS_pidfd_open
  long fd = syscall(SYS_pidfd_open, (pid_t)pid, 0);
  if (fd >= 0) {
    fcntl((int)fd, F_SETFD, FD_CLOEXEC);
    hub_fd_forget(HUB(L), (int)fd);
    lua_pushinteger(L, fd);
    return 1;
  }
#endif
  lua_pushnil(L);
  lua_pushstring(L, strerror(errno));
  return 2;
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

/* _pidfd_kill(pidfd, sig): signal the process the pidfd stands for (never
   another that reused its pid) */
static int l_pidfd_kill(lua_State *L) {
  int fd = (int)luaL_checkinteger(L, 1);
  int sig = lua_isnoneornil(L, 2) ? SIGTERM : check_signal(L, 2);
#ifdef SYS_pidfd_send_signal
  if (syscall(SYS_pidfd_send_signal, fd, sig, NULL, 0) == 0) {
    lua_pushboolean(L, 1);
    return 1;
  }
#else
  errno = ENOSYS;
#endif
  lua_pushnil(L);
  lua_pushstring(L, strerror(errno));
  return 2;
}

static int l_kill(lua_State *L) {
  pid_t pid = (pid_t)luaL_checkinteger(L, 1);
  int sig = lua_isnoneornil(L, 2) ? SIGTERM : check_signal(L, 2);
  if (kill(pid, sig) < 0) {
    lua_pushnil(L);
    lua_pushstring(L, strerror(errno));
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
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

static const luaL_Reg proc_funcs[] = {
  {"_signal_watch", l_signal_watch}, {"_signal_dispatcher", l_signal_dispatcher},
  {"_spawn", l_spawn_process}, {"_pidfd", l_pidfd}, {"_waitpid", l_waitpid},
  {"_kill", l_kill}, {"_pidfd_kill", l_pidfd_kill},
  {"_closefd", l_closefd}, {"_fork", l_fork},
  {"_interrupt_timer", l_interrupt_timer},
  {NULL, NULL}
};

void proc_open(lua_State *L, int mod, int hub) {
  gh_setfuncs(L, mod, hub, proc_funcs);
}
