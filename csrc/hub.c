/*
 * hub.c - the loop: run queue, parking and waking, per-fd waiters, event
 * sources, all over the poller (poller.c).
 *
 * Only the Lua main thread ever runs the loop (a blocking call there runs
 * turns until its own wake-up arrives); green threads park by yielding to
 * it. Nothing in here raises while a loop turn is half done.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <pthread.h>
#include <unistd.h>

#include "greenhub.h"

#define POLL_BATCH 256

/* what the poller carries for a registered fd: its number and generation */
static inline uint64_t fd_data(int fd, const gh_fd *r) {
  return (uint64_t)(uint32_t)fd | ((uint64_t)r->gen << 32);
}

/* gh.testing.virtual_clock: while >= 0, the time every part sees */
int64_t hub_vclock = -1;

int64_t hub_clock(void) {
  struct timespec ts;
  if (hub_vclock >= 0) return hub_vclock;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t hub_clock_coarse(void) {
  struct timespec ts;
  if (hub_vclock >= 0) return hub_vclock;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

gh_hub *hub_get(lua_State *L) {
  lua_getfield(L, LUA_REGISTRYINDEX, HUB_KEY);
  gh_hub *h = lua_touserdata(L, -1);
  lua_pop(L, 1);
  if (!h) luaL_error(L, "greenhub: hub not initialised");
  return h;
}

static int resumed_through(lua_State *L, gh_hub *h, lua_State *top);

/*
 * The record of whoever calls a blocking operation, or a clear error when
 * blocking is impossible there.
 */
gh_thread *hub_self(lua_State *L, gh_hub *h, const char *what) {
  gh_thread *t = h->current;
  /* the wait about to start may arm a timer: room for it now, while
     raising leaves nothing half-done (timer_start cannot fail then) */
  if (timer_reserve(&h->timers) < 0) gh_nomem(L);
  if (t) {
    if (L != t->co && !resumed_through(L, h, t->co))
      luaL_error(L, "greenhub: %s cannot block inside a coroutine greenhub "
                    "does not own (one not resumed with gh.coroutine.resume "
                    "or wrap); resume it that way (gh.patch() makes the "
                    "global coroutine do so) so the hub's yields pass "
                    "through, or run the code with gh.spawn", what);
    if (!lua_isyieldable(L))
      luaL_error(L, "greenhub: %s cannot block here: the green thread is "
                    "inside a C call that cannot yield (a table.sort "
                    "comparator, a C library callback, ...); move the "
                    "blocking call out of it", what);
    return t;
  }
  /* no green thread is running: this is the main thread's C stack, maybe
     inside coroutines of its own; blocking runs the loop right here */
  if (h->in_loop)
    luaL_error(L, "greenhub: %s cannot block while the hub is running "
                  "(inside an error handler or finalizer)", what);
  return &h->main;
}

/* Could a blocking call made on L park here? (hub_self without raising) */
int hub_can_block(lua_State *L, gh_hub *h) {
  gh_thread *t = h->current;
  if (t) return lua_isyieldable(L) && (L == t->co || resumed_through(L, h, t->co));
  return !h->in_loop;
}

/*
 * 1 when every coroutine from L up to top was resumed by
 * gh.coroutine.resume/wrap, which pass the hub's yields up: the registry
 * table maps a coroutine to its resumer while such a resume runs. A plain
 * coroutine.resume anywhere in the chain would swallow the hub's marker.
 */
static int resumed_through(lua_State *L, gh_hub *h, lua_State *top) {
  int ok = 0;
  lua_rawgeti(L, LUA_REGISTRYINDEX, h->wrapped_ref);
  lua_State *c = L;
  for (int depth = 0; depth < 256; depth++) {
    lua_pushthread(c);
    if (c != L) lua_xmove(c, L, 1);
    int ty = lua_rawget(L, -2);
    lua_State *parent = ty == LUA_TTHREAD ? lua_tothread(L, -1) : NULL;
    lua_pop(L, 1);
    if (!parent) break;
    if (parent == top) { ok = 1; break; }
    c = parent;
  }
  lua_pop(L, 1);
  return ok;
}

/*
 * Keep the value at idx alive while self is parked on it (a parked thread
 * whose coroutine was closed from outside no longer anchors anything on
 * its stack, yet the object's wait list still holds the thread's link).
 */
void hub_anchor(lua_State *L, gh_hub *h, gh_thread *self, int idx) {
  if (self->flags & TF_MAIN) return; /* main's stack cannot be closed */
  idx = lua_absindex(L, idx);
  thread_push(L, h, self);
  lua_pushvalue(L, idx);
  lua_setiuservalue(L, -2, 3); /* the thread's third user value */
  lua_pop(L, 1);
  self->flags |= TF_ANCHORED;
}

/* The marker a nested coroutine yields so gh.coroutine.resume passes the
   yield up to the hub. */
static char hub_marker;
void *hub_yield_marker(void) { return &hub_marker; }

/* s seconds from now as a deadline, rounded up so nothing wakes early. */
int64_t hub_after(double s) {
  if (!(s > 0)) return hub_clock();
  if (s >= 9.0e9) return INT64_MAX;
  return hub_clock() + (int64_t)ceil(s * 1e9);
}

/* Optional timeout argument: nil, negative or infinite = no deadline (-1). */
int64_t hub_deadline(lua_State *L, int arg) {
  if (lua_isnoneornil(L, arg)) return -1;
  double s = gh_checkseconds(L, arg, "timeout");
  if (s < 0 || s == HUGE_VAL) return -1;
  return hub_after(s);
}

/* ---------------------------------------------------------------- shared */

/* A number of seconds that is NaN (gh_checkseconds): raise. */
int gh_nanerror(lua_State *L, int arg, const char *what) {
  return luaL_argerror(L, arg, lua_pushfstring(L, "%s is NaN", what));
}

/* The failure every call reports the same way: nil, word. */
int gh_fail(lua_State *L, const char *word) {
  lua_pushnil(L);
  lua_pushstring(L, word);
  return 2;
}

/*
 * First thing in a continuation after a park: raise a pending interrupt;
 * when the wait timed out or its object was closed push nil, "timeout" |
 * "closed" and return 2; else 0 (the wait ended normally: go on).
 */
int gh_wait_failed(lua_State *L, gh_hub *h) {
  gh_thread *self = hub_me(L, h);
  hub_check_intr(L, h, self);
  if (self->wake == WK_TIMEOUT) return gh_fail(L, "timeout");
  if (self->wake == WK_CLOSED) return gh_fail(L, "closed");
  return 0;
}

/*
 * The out-of-memory policy: a C function called from Lua raises, as Lua's
 * own allocations do (nothing half-done is left behind: callers check
 * before they change state); the loop's own paths (poller, fd table from
 * a source) return -1 with errno ENOMEM to their caller, which reports.
 */
int gh_nomem(lua_State *L) {
  return luaL_error(L, "greenhub: out of memory");
}

void *gh_check(lua_State *L, int arg, int cls, const char *tname) {
  /* NULL without upvalues (a __gc): then the slow check */
  return gh_checkh(L, lua_touserdata(L, lua_upvalueindex(1)), arg, cls, tname);
}

void *gh_checkh(lua_State *L, gh_hub *h, int arg, int cls, const char *tname) {
  void *p = lua_touserdata(L, arg);
  if (h && p && lua_getmetatable(L, arg)) {
    int ok = lua_topointer(L, -1) == h->mt[cls];
    lua_pop(L, 1);
    if (ok) return p;
  }
  return luaL_checkudata(L, arg, tname);
}

/* The metatable at index mt is class cls (hub userdata at index hub). */
void gh_remember_mt(lua_State *L, int hub, int mt, int cls) {
  gh_hub *h = lua_touserdata(L, hub);
  h->mt[cls] = lua_topointer(L, mt);
}

/*
 * Make the metatable of class cls: methods in __index (closures over the
 * hub), __tostring, remembered for gh_check. Leaves it on the stack for
 * the caller to add more (__gc, __close), and returns its index.
 */
int gh_new_class(lua_State *L, int hub, int cls, const char *name,
                 const luaL_Reg *methods, lua_CFunction tostring) {
  luaL_newmetatable(L, name);
  int mt = lua_gettop(L);
  gh_remember_mt(L, hub, mt, cls);
  lua_newtable(L);
  gh_setfuncs(L, lua_gettop(L), hub, methods);
  lua_setfield(L, mt, "__index");
  const luaL_Reg meta[] = {{"__tostring", tostring}, {NULL, NULL}};
  gh_setfuncs(L, mt, hub, meta);
  return mt;
}

/* ---------------------------------------------------------------- waking */

void hub_enqueue(gh_hub *h, gh_thread *t) {
  link_push(&h->runq, &t->link);
  t->where = TW_RUNQ;
  t->waitcode = WC_READY;
  h->nready++;
}

/* Undo whatever a parked thread is registered in. */
void hub_unwait(gh_hub *h, gh_thread *t) {
  timer_cancel(&h->timers, &t->timer);
  if (link_linked(&t->scope_link)) link_remove(&t->scope_link);
  switch (t->where) {
    case TW_RUNQ:
      link_remove(&t->link);
      h->nready--;
      break;
    case TW_LIST:
      link_remove(&t->link);
      break;
    case TW_FD: {
      gh_fd *r = &h->fds[t->waitfd];
      if (r->reader == t) r->reader = NULL;
      if (r->writer == t) r->writer = NULL;
      h->nfdwait--;
      break;
    }
    default:
      break;
  }
  t->where = TW_NONE;
  t->waitcode = WC_NONE;
}

void hub_wake(gh_hub *h, gh_thread *t, int why) {
  hub_unwait(h, t);
  t->wake = (uint8_t)why;
  if (t->flags & TF_MAIN) t->flags |= TF_MAIN_WOKEN;
  else hub_enqueue(h, t);
}

/*
 * Deliver the value on top of L as an error to raise in t at its blocking
 * point (kill, with_timeout). t must not be running. A green thread gets
 * the value as its resume argument; main keeps it in the registry.
 */
void hub_interrupt(gh_hub *h, lua_State *L, gh_thread *t) {
  if (t->flags & TF_MAIN) {
    luaL_unref(L, LUA_REGISTRYINDEX, h->main_intr_ref);
    h->main_intr_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  } else {
    if (t->wake == WK_INTR && t->where == TW_RUNQ) lua_pop(t->co, 1);
    lua_checkstack(t->co, 1);
    lua_xmove(L, t->co, 1);
  }
  hub_wake(h, t, WK_INTR);
}

/* Push the interrupt waiting to be raised in t and return 1, or 0. */
int hub_pending_intr(gh_hub *h, lua_State *L, gh_thread *t) {
  if (t->flags & TF_MAIN) {
    if (h->main_intr_ref == LUA_NOREF) return 0;
    lua_rawgeti(L, LUA_REGISTRYINDEX, h->main_intr_ref);
    return 1;
  }
  if (t->wake != WK_INTR || t->where != TW_RUNQ) return 0;
  lua_pushvalue(t->co, -1);
  lua_xmove(t->co, L, 1);
  return 1;
}

/* In a continuation: raise a pending interrupt, else return 0. */
int hub_check_intr(lua_State *L, gh_hub *h, gh_thread *self) {
  if (self->wake != WK_INTR) return 0;
  self->wake = WK_OK;
  if (self->flags & TF_MAIN) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, h->main_intr_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, h->main_intr_ref);
    h->main_intr_ref = LUA_NOREF;
  }
  return lua_error(L);
}

/* ---------------------------------------------------------------- parking */

static void main_block(lua_State *L, gh_hub *h) {
  gh_thread *m = &h->main;
  while (!(m->flags & TF_MAIN_WOKEN)) {
    if (hub_turn(L, h, 1) && !(m->flags & TF_MAIN_WOKEN)) {
      hub_unwait(h, m);
      luaL_error(L, "greenhub: deadlock: the main thread is blocked and no "
                    "green thread, timer or socket is left that could wake it");
    }
  }
  m->flags &= (uint16_t)~TF_MAIN_WOKEN;
}

/*
 * Park self until hub_wake; the caller has already put it on a list or fd
 * (self->where), or leaves TW_NONE for a plain sleep. deadline < 0: none.
 * Continues in k(L, LUA_YIELD, ctx), which must call hub_check_intr first.
 */
int hub_park(lua_State *L, gh_hub *h, gh_thread *self, int64_t deadline,
             lua_KContext ctx, lua_KFunction k) {
  /* a thread about to block: coalesced output goes out now */
  if (!link_empty(&h->flushq)) h->flush_all(h);
  /* an enclosing scope's deadline, when sooner, is this wait's (past or
     cancelled: it times out on the next turn) */
  self->scope_hit = 0;
  if (self->scope) {
    gh_scope *best;
    int64_t sd = scope_deadline(self->scope, &best, h->now);
    if (sd >= 0 && (deadline < 0 || sd < deadline)) {
      self->scope_hit = 1;
      if (best) { /* the scope's timer will wake it */
        link_push(&best->parked, &self->scope_link);
        deadline = -1;
        if (self->where == TW_NONE) self->where = TW_SLEEP;
      } else {
        deadline = sd; /* cancelled or past: its own timer, at once */
      }
    }
  }
  if (self->where == TW_NONE) self->where = deadline < 0 ? TW_FOREVER : TW_SLEEP;
  if (deadline >= 0) timer_start(&h->timers, &self->timer, deadline);
  self->wake = WK_OK;
  self->since = h->now; /* this turn's start: precise enough for gh.threads() */
  if (self->waitcode == WC_NONE) self->waitcode = WC_SLEEP;
  if (self->flags & TF_MAIN) {
    main_block(L, h);
    return k(L, LUA_YIELD, ctx);
  }
  self->state = TS_SUSPENDED;
  if (L != self->co) { /* nested in a gh.coroutine: pass the yield up */
    lua_pushlightuserdata(L, &hub_marker);
    return lua_yieldk(L, 1, ctx, k);
  }
  return lua_yieldk(L, 0, ctx, k);
}

/* Park the caller on a wait list (at the front when it lost a race it was
   woken for), the object at stack index 1 kept alive while it waits. */
int hub_park_list(lua_State *L, gh_hub *h, gh_link *list, int front,
                  int64_t deadline, lua_KContext ctx, lua_KFunction k,
                  const char *what, int code) {
  gh_thread *self = hub_self(L, h, what);
  self->waitcode = (uint8_t)code;
  if (front) link_push_front(list, &self->link);
  else link_push(list, &self->link);
  self->where = TW_LIST;
  self->granted = 0;
  hub_anchor(L, h, self, 1);
  return hub_park(L, h, self, deadline, ctx, k);
}

/* Let every other ready thread run once, then continue in k. */
int hub_yield(lua_State *L, gh_hub *h, gh_thread *self, lua_KContext ctx,
              lua_KFunction k) {
  if (!link_empty(&h->flushq)) h->flush_all(h);
  self->wake = WK_OK;
  self->waitcode = WC_READY;
  if (self->flags & TF_MAIN) {
    hub_turn(L, h, 0);
    self->flags &= (uint16_t)~TF_MAIN_WOKEN;
    return k(L, LUA_YIELD, ctx);
  }
  hub_enqueue(h, self);
  self->state = TS_SUSPENDED;
  if (L != self->co) {
    lua_pushlightuserdata(L, &hub_marker);
    return lua_yieldk(L, 1, ctx, k);
  }
  return lua_yieldk(L, 0, ctx, k);
}

/* ---------------------------------------------------------------- fds */

/* fd is a descriptor this process has open (so it is below the fd limit,
   and the per-fd table stays as small as the process's fd count). */
int hub_fd_valid(lua_Integer fd) {
  return fd >= 0 && fd <= INT_MAX && fcntl((int)fd, F_GETFD) >= 0;
}

gh_fd *hub_fd(gh_hub *h, int fd) {
  if (fd < 0) return NULL;
  if (fd >= h->nfds) {
    if (fd >= (1 << 28)) return NULL; /* no real process has that many */
    int n = h->nfds ? h->nfds : 64;
    while (n <= fd) n *= 2;
    gh_fd *v = realloc(h->fds, (size_t)n * sizeof *v);
    if (!v) return NULL;
    memset(v + h->nfds, 0, (size_t)(n - h->nfds) * sizeof *v);
    for (int i = h->nfds; i < n; i++) v[i].ready = FD_R | FD_W; /* unknown: try */
    h->fds = v;
    h->nfds = n;
  }
  return &h->fds[fd];
}

/*
 * Greenhub must forget what it knew about fd: it was just opened, or is
 * about to be closed. Waiters are woken with "closed"; the new generation
 * makes events still queued for the old file harmless.
 */
void hub_fd_forget(gh_hub *h, int fd) {
  if (h->closed || fd < 0 || fd >= h->nfds) return;
  hub_check_fork(h); /* never touch a parent's poller from a child */
  gh_fd *r = &h->fds[fd];
  if (r->registered) {
    poller_remove(&h->poller, fd);
    h->nregistered--;
  }
  r->registered = 0;
  r->ready = FD_R | FD_W; /* unknown: the first operation tries the syscall */
  r->gen++;
  if (r->flusher) { r->flusher = NULL; hub_unref(h); }
  if (r->reader) hub_wake(h, r->reader, WK_CLOSED);
  if (r->writer) hub_wake(h, r->writer, WK_CLOSED);
}

static int fd_register(gh_hub *h, int fd, gh_fd *r) {
  hub_check_fork(h);
  if (poller_add(&h->poller, fd, GH_IN | GH_OUT, 1, fd_data(fd, r)) < 0) return -1;
  r->registered = 1;
  h->nregistered++;
  return 0;
}

/* Watch fd again from scratch (its owner may have changed what the poller
   knows of it, as with a foreign fd between two trampolines). */
int hub_fd_rearm(gh_hub *h, int fd) {
  return hub_fd_interest(h, fd, GH_IN | GH_OUT);
}

/* Watch fd, edge-triggered, for events (GH_IN and/or GH_OUT) only: a
   foreign fd whose owner mostly reads (libpq) is then not woken each time
   the peer drains its send buffer. A number reused by a new file is added
   afresh. */
int hub_fd_interest(gh_hub *h, int fd, unsigned events) {
  hub_check_fork(h);
  gh_fd *r = hub_fd(h, fd);
  if (!r) return -1;
  if (r->registered) {
    if (poller_modify(&h->poller, fd, events, 1, fd_data(fd, r)) == 0) return 0;
    r->registered = 0;
    h->nregistered--;
    if (errno != ENOENT) return -1;
  }
  if (poller_add(&h->poller, fd, events, 1, fd_data(fd, r)) < 0) return -1;
  r->registered = 1;
  h->nregistered++;
  return 0;
}

/* Make sure fd is in the poller (edges then keep its ready bits true). */
int hub_fd_watch(gh_hub *h, int fd) {
  hub_check_fork(h);
  gh_fd *r = hub_fd(h, fd);
  if (!r) return -1;
  if (!r->registered) return fd_register(h, fd, r);
  poller_arm(&h->poller, fd, GH_IN | GH_OUT);
  return 0;
}

/*
 * Park self until fd is ready in direction dir (FD_R / FD_W), the deadline
 * passes, or greenhub closes the fd. Registers the fd with the poller on first
 * use only. A second waiter in the same direction raises.
 */
int hub_wait_fd(lua_State *L, gh_hub *h, gh_thread *self, int fd, int dir,
                int64_t deadline, lua_KContext ctx, lua_KFunction k) {
  gh_fd *r = hub_fd(h, fd);
  if (!r) return luaL_error(L, "greenhub: out of memory for fd %d", fd);
  gh_thread **slot = dir == FD_R ? &r->reader : &r->writer;
  if (*slot && *slot != self)
    return luaL_error(L, "greenhub: fd %d already has a %s waiting (one per "
                         "direction)", fd, dir == FD_R ? "reader" : "writer");
  r->ready &= (uint8_t)~dir;
  if (!r->registered && fd_register(h, fd, r) < 0) {
    /* regular files are always ready; a bad fd is the caller's mistake */
    if (errno == EPERM) { self->wake = WK_OK; return k(L, LUA_YIELD, ctx); }
    return luaL_error(L, "greenhub: cannot watch fd %d: %s", fd, strerror(errno));
  }
  poller_arm(&h->poller, fd, dir == FD_R ? GH_IN : GH_OUT);
  *slot = self;
  self->waitcode = dir == FD_R ? WC_READ : WC_WRITE;
  self->where = TW_FD;
  self->waitfd = fd;
  h->nfdwait++;
  return hub_park(L, h, self, deadline, ctx, k);
}

/* ---------------------------------------------------------------- sources */

/* Watch s->fd for input and dispatch it to s->ready (see gh_source). */
int hub_source_add(gh_hub *h, gh_source *s) {
  hub_check_fork(h);
  gh_fd *r = hub_fd(h, s->fd);
  if (!r) { errno = ENOMEM; return -1; }
  if (poller_add(&h->poller, s->fd, GH_IN, 0, fd_data(s->fd, r)) < 0) return -1;
  r->source = s;
  if (!s->link.next) link_init(&s->link);
  if (link_empty(&s->link)) link_push(&h->sources, &s->link);
  return 0;
}

/* Stop watching s (its owner closes the fd after this). */
void hub_source_remove(gh_hub *h, gh_source *s) {
  if (!h->closed) hub_check_fork(h);
  if (s->link.next && !link_empty(&s->link)) link_remove(&s->link);
  link_init(&s->link);
  if (s->fd < 0 || s->fd >= h->nfds || h->fds[s->fd].source != s) return;
  gh_fd *r = &h->fds[s->fd];
  r->source = NULL;
  r->gen++;
  if (!h->closed) poller_remove(&h->poller, s->fd);
}

static void poll_dispatch(gh_hub *h, gh_pollev *ev, int n) {
  for (int i = 0; i < n; i++) {
    int fd = (int)(uint32_t)ev[i].data;
    uint32_t gen = (uint32_t)(ev[i].data >> 32);
    if (fd >= h->nfds) continue;
    gh_fd *r = &h->fds[fd];
    if (r->gen != gen) continue; /* stale: fd was reused */
    if (r->source) { r->source->ready(h, r->source); continue; }
    if (!r->registered) continue;
    unsigned e = ev[i].events;
    if (e & GH_HUP) r->ready |= FD_HUP;
    if (e & GH_IN) {
      r->ready |= FD_R;
      if (r->reader) hub_wake(h, r->reader, WK_OK);
    }
    if (e & GH_OUT) {
      r->ready |= FD_W;
      if (r->writer) hub_wake(h, r->writer, WK_OK);
      if (r->flusher) h->flush_one(h, r->flusher);
    }
  }
}

/* ---------------------------------------------------------------- fork */

/*
 * After fork() the child shares the parent's poller (the same open file
 * description): registrations and events would leak between the two. The
 * child therefore gets a fresh poller at its first loop turn, with every
 * fd that had a waiter registered again, and each event source's
 * after_fork deciding about its own (the resolver's threads did not
 * survive the fork; its source lets its pool go).
 */
static volatile unsigned fork_gen; /* bumped in every child */
static void atfork_child(void) { fork_gen++; }
unsigned hub_fork_gen(void) { return fork_gen; }

void hub_fork_init(gh_hub *h) {
  static int once;
  if (!once) { once = 1; pthread_atfork(NULL, NULL, atfork_child); }
  h->fork_gen = fork_gen;
}

static void hub_after_fork(gh_hub *h);

/* In a child after fork: replace what it inherited before using it. */
void hub_check_fork(gh_hub *h) {
  if (h->fork_gen != fork_gen) hub_after_fork(h);
}

static void hub_after_fork(gh_hub *h) {
  h->fork_gen = fork_gen;
  poller_close(&h->poller);
  if (poller_open(&h->poller) < 0) return; /* reported by the next wait */
  h->nregistered = 0;
  for (int fd = 0; fd < h->nfds; fd++) {
    gh_fd *r = &h->fds[fd];
    r->registered = 0;
    r->gen++;
    if (!r->source && (r->reader || r->writer || r->flusher)) fd_register(h, fd, r);
  }
  /* the sources: each re-adds itself, or goes (the list may change) */
  gh_link todo;
  link_init(&todo);
  while (!link_empty(&h->sources)) {
    gh_link *l = h->sources.next;
    link_remove(l);
    link_push(&todo, l);
  }
  while (!link_empty(&todo)) {
    gh_source *s = container_of(todo.next, gh_source, link);
    link_remove(&s->link);
    link_init(&s->link);
    h->fds[s->fd].source = NULL;
    if (s->after_fork) s->after_fork(h, s);
    else hub_source_add(h, s);
  }
}

/* ---------------------------------------------------------------- loop */

/*
 * One loop turn: run the threads ready at its start, fire due timers, then
 * poll (timeout 0 if anything is ready, else until the next timer).
 * Returns 1 when idle: nothing ready, no timer, no waiter that any outside
 * event could wake. Called on the main thread only.
 */
int hub_turn(lua_State *L, gh_hub *h, int may_block) {
  gh_pollev ev[POLL_BATCH];
  hub_check_fork(h);
  h->in_loop = 1;
  h->turns++;
  /* the one clock read of a busy turn; with no timer armed the coarse
     clock (no deadline is compared against it) is enough */
  h->now = h->timers.n ? hub_clock() : hub_clock_coarse();

  for (size_t n = h->nready; n > 0 && h->nready > 0; n--) {
    gh_thread *t = container_of(h->runq.next, gh_thread, link);
    link_remove(&t->link);
    h->nready--;
    t->where = TW_NONE;
    t->waitcode = WC_NONE;
    thread_resume(h, L, t);
  }

  gh_timer *tm;
  while ((tm = timer_peek(&h->timers)) && tm->deadline <= h->now) {
    timer_cancel(&h->timers, tm);
    tm->fire(h, tm);
  }

  /* output coalesced by threads that ended (or never blocked) this turn */
  if (!link_empty(&h->flushq)) h->flush_all(h);

  int timeout = -1;
  int64_t t1 = 0;
  if (h->nready || (h->main.flags & TF_MAIN_WOKEN) || !may_block) {
    timeout = 0;
  } else {
    t1 = hub_clock(); /* about to sleep: time Lua ran, and the exact wait */
    h->run_ns += (uint64_t)(t1 - h->now);
    if ((tm = timer_peek(&h->timers))) {
      int64_t ms = (tm->deadline - t1 + 999999) / 1000000;
      timeout = ms < 0 ? 0 : ms > INT_MAX ? INT_MAX : (int)ms;
    }
  }
  int waiters = h->nfdwait || h->nrefs;
  if (hub_vclock >= 0 && timeout != 0 && (tm = timer_peek(&h->timers))) {
    /* virtual time, nothing to run: what fds have ready comes first
       (outside events get a moment of real time), then time jumps to the
       next timer ("autojump") */
    int n = poller_wait(&h->poller, ev, POLL_BATCH, waiters ? 2 : 0);
    if (n > 0) poll_dispatch(h, ev, n);
    else if (n == 0 && tm->deadline > hub_vclock) hub_vclock = tm->deadline;
    h->in_loop = 0;
    return 0;
  }
  int idle = 0;
  if (timeout < 0 && !waiters) {
    idle = 1;
  } else if (timeout != 0 || waiters) {
    int n = poller_wait(&h->poller, ev, POLL_BATCH, timeout);
    if (t1) h->poll_ns += (uint64_t)(hub_clock() - t1);
    if (n > 0) poll_dispatch(h, ev, n);
    if (n < 0) {
      /* the poller itself is broken: nothing could ever wake a waiter
         again, so say so rather than spin or sleep forever */
      h->in_loop = 0;
      return luaL_error(L, "greenhub: the %s poller failed: %s", poller_backend(&h->poller), strerror(errno));
    }
  }
  h->in_loop = 0;
  return idle;
}
