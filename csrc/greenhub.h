/*
 * greenhub.h - the hub's data structures and their invariants.
 *
 * One hub per lua_State (kept in the registry). Everything here runs on the
 * thread that owns that state; only the resolver's workers touch their own
 * job queue from other OS threads (see resolver.c).
 */
#ifndef GREENHUB_H
#define GREENHUB_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "lua.h"
#include "lauxlib.h"
#include "poller.h"

#define GH_EXPORT __attribute__((visibility("default")))

#define HUB_KEY     "greenhub.hub"
#define HUB_MT      "greenhub.hub.mt"
#define THREAD_MT   "greenhub.thread"
#define GH_POOL_MAX 1024    /* finished coroutines kept for reuse */
#define TIMEOUT_MT  "greenhub.timeout"

/* ---------------------------------------------------------------- lists */

/* Intrusive circular doubly linked list; a list is a sentinel node. */
typedef struct gh_link {
  struct gh_link *prev, *next;
} gh_link;

static inline void link_init(gh_link *l) { l->prev = l->next = l; }
static inline int link_empty(const gh_link *l) { return l->next == l; }
static inline int link_linked(const gh_link *n) { return n->next != NULL && n->next != n; }
static inline void link_push(gh_link *list, gh_link *n) {
  n->prev = list->prev; n->next = list;
  list->prev->next = n; list->prev = n;
}
static inline void link_push_front(gh_link *list, gh_link *n) {
  link_push(list->next, n);
}
static inline void link_remove(gh_link *n) {
  n->prev->next = n->next; n->next->prev = n->prev;
  n->prev = n->next = n;
}

#define container_of(p, type, field) \
  ((type *)(void *)((char *)(p) - offsetof(type, field)))

/* ---------------------------------------------------------------- timers */

struct gh_hub;
typedef struct gh_timer gh_timer;
typedef void (*gh_timer_cb)(struct gh_hub *h, gh_timer *tm);

/*
 * A timer lives inside whatever it wakes (a thread record, a timeout
 * token). idx is its 1-based slot in the heap, 0 when not armed: cancel is
 * O(log n) and nothing stale is ever left in the heap.
 */
struct gh_timer {
  int64_t deadline;        /* CLOCK_MONOTONIC, nanoseconds */
  uint64_t seq;            /* arming order: equal deadlines fire FIFO */
  uint32_t idx;            /* heap slot (1-based), 0 = not armed */
  gh_timer_cb fire;        /* called from the hub loop, never runs Lua */
};

typedef struct gh_heap {
  gh_timer **v;            /* v[1..n]; v[0] unused */
  uint32_t n, cap;
  uint64_t seq;
} gh_heap;

int timer_grow(gh_heap *hp);
/* Room for one more timer: 0, or -1 when memory is exhausted. Every path
   that arms a timer from Lua reserves first (hub_self), so timer_start
   never needs to grow the heap. */
static inline int timer_reserve(gh_heap *hp) {
  return hp->n + 1 < hp->cap ? 0 : timer_grow(hp);
}
void timer_start(gh_heap *hp, gh_timer *tm, int64_t deadline);
void timer_cancel(gh_heap *hp, gh_timer *tm);
gh_timer *timer_peek(const gh_heap *hp);
gh_timer *timer_pop(gh_heap *hp);
int timer_check(const gh_heap *hp); /* heap invariant, for the specs */
void timer_free(gh_heap *hp);
int timer_selftest(uint32_t n, uint32_t seed);

/* ---------------------------------------------------------------- threads */

enum { TS_PENDING, TS_RUNNING, TS_SUSPENDED, TS_DEAD };

/* where a suspended thread is parked (its `link` is in at most one list) */
enum { TW_NONE, TW_RUNQ, TW_LIST, TW_FD, TW_SLEEP, TW_FOREVER };

/* why a parked thread was woken; its continuation reads this */
enum { WK_OK, WK_TIMEOUT, WK_CLOSED, WK_INTR };

enum {
  TF_MAIN = 1,             /* the record of the Lua main thread */
  TF_ERROR = 2,            /* died with an error (value on co's stack) */
  TF_KILLED = 4,           /* died from the Killed sentinel: no error */
  TF_OBSERVED = 8,         /* someone waited on / linked it: don't report */
  TF_LINKS = 16,           /* has entries in the hub's link table */
  TF_MAIN_WOKEN = 32,      /* main only: its wait is over */
  TF_NOPOOL = 64,          /* coroutine unfit for reuse (a hook raised
                              in it, or it was closed from outside) */
  TF_BARE = 128,           /* parked by a bare coroutine.yield */
  TF_ANCHORED = 256,       /* its 3rd user value holds what it parks on */
};

/*
 * A green thread: a full userdata holding this record. User values: 1 the
 * coroutine (its results once dead), 2 the function it was spawned with
 * (names it once dead), 3 the object it parks on (kept alive while it is
 * parked, even if its coroutine is closed from outside). While alive it is
 * anchored in the hub's thread table (slot `ref`); once dead only user
 * handles keep it.
 */
typedef struct gh_thread {
  gh_link link;            /* run queue or the wait list it parks on */
  gh_timer timer;          /* wait deadline / spawn_after start */
  gh_link joiners;         /* threads blocked in t:wait() on this one */
  lua_State *co;           /* the coroutine (NULL for the main record) */
  struct gh_hub *hub;
  int ref;                 /* slot in the thread table while alive */
  int nres;                /* results on co's stack once dead */
  int waitfd;              /* fd when parked in TW_FD */
  int64_t since;           /* when it parked (monotonic ns) */
  uint8_t state;           /* TS_* */
  uint8_t where;           /* TW_* */
  uint8_t wake;            /* WK_* */
  uint16_t flags;          /* TF_* */
  uint8_t granted;         /* woken by a hand-over (semaphore unit, queue
                              item); an interrupted waiter passes it on */
  uint8_t waitcode;        /* WC_*: what it waits on, for gh.threads() */
  uint8_t scope_hit;       /* its wait's deadline is its scope's: a
                              WK_TIMEOUT then is the scope's (sleep raises) */
  struct gh_scope *scope;  /* the innermost gh.scope it runs in, or NULL */
  gh_link scope_link;      /* in a scope's parked list while its wait ends
                              at that scope's deadline (no timer of its own) */
  lua_Hook uhook;          /* a user's hook saved while greenhub's own
                              interrupt hook is set (bare yields) */
  int umask, ucount;
} gh_thread;

/*
 * A gh.scope (scope.c): a deadline and a cancelled flag, applied where a
 * thread parks (hub_park) through the chain of enclosing scopes. A scope
 * with a deadline has one timer; a wait that would end at that deadline
 * (none of its own, or a later one) is linked into the scope's parked
 * list instead of arming a timer, and the scope's timer wakes the list.
 * Past its deadline or cancelled, every wait in it times out at once
 * (sticky). Lives in a userdata the Lua side keeps alive while a thread
 * points at it.
 */
typedef struct gh_scope {
  struct gh_scope *parent;
  int64_t deadline;        /* -1: none of its own */
  int cancelled;
  int expired;             /* its timer fired (or it never had one) */
  int light;               /* with_timeout's: no timer (its token's timer
                              interrupts); only makes waits after its
                              deadline fail at once */
  gh_timer timer;          /* armed at the deadline (the virtual clock
                              moves it: its deadline is the one to use) */
  gh_link parked;          /* threads whose waits end at this deadline */
} gh_scope;

/* a fresh scope on parent's chain, deadline in ns (-1: none of its own) */
static inline void scope_init(gh_scope *sc, gh_scope *parent, int64_t deadline) {
  memset(sc, 0, sizeof *sc);
  sc->parent = parent;
  sc->deadline = deadline;
  link_init(&sc->parked);
}

/* The deadline a scope chain imposes: -1 none, 0 when cancelled or past;
   *best: the scope whose armed timer ends it (NULL when 0 or none). */
static inline int64_t scope_deadline(gh_scope *sc, gh_scope **best, int64_t now) {
  int64_t d = -1;
  gh_scope *b = NULL;
  for (; sc; sc = sc->parent) {
    if (sc->cancelled || sc->expired || (sc->light && sc->deadline <= now)) { d = 0; b = NULL; break; }
    if (sc->timer.idx && (d < 0 || sc->timer.deadline < d)) { d = sc->timer.deadline; b = sc; }
  }
  if (best) *best = b;
  return d;
}

/* what a parked thread waits on (diagnostics only) */
enum { WC_NONE, WC_SLEEP, WC_READ, WC_WRITE, WC_EVENT, WC_SEM, WC_QGET,
       WC_QPUT, WC_JOIN, WC_RESOLVE, WC_READY, WC_CHILD };

/* ---------------------------------------------------------------- fds */

/* FD_HUP: the peer hung up or the fd has an error; sticky, since that edge
   comes once and a short read does not consume it */
enum { FD_R = 1, FD_W = 2, FD_HUP = 4 };

/*
 * Per-fd record, indexed by fd number. gen changes whenever greenhub
 * learns the fd was closed or reopened; it travels in epoll's data so a
 * wake-up meant for an old fd never reaches a new one with the same number.
 */
typedef struct gh_fd {
  uint32_t gen;
  uint8_t registered;      /* in the poller (in and out, edge-triggered) */
  uint8_t ready;           /* FD_R|FD_W edges seen since last EAGAIN */
  gh_thread *reader, *writer;
  void *flusher;           /* a socket whose coalesced output waits for
                              this fd to become writable (socket.c) */
  struct gh_source *source; /* the internal event source owning this fd */
} gh_fd;

/*
 * An event source: an fd of greenhub's own (the resolver's eventfd, the
 * signalfd) that some part of greenhub answers. The hub watches it for
 * input (level-triggered) and, from the loop on the main thread, calls
 * ready(); it names none of its sources. In a child after fork the hub
 * calls after_fork(), which re-adds the source (hub_source_add) or lets it
 * go; without one the source is simply watched again. A source's owner
 * holds references (hub_ref) while it awaits events that may wake a
 * thread, so the loop knows it is not idle.
 */
typedef struct gh_hub gh_hub;
typedef struct gh_source {
  int fd;
  void (*ready)(gh_hub *h, struct gh_source *s);
  void (*after_fork)(gh_hub *h, struct gh_source *s);
  gh_link link;            /* in h->sources */
} gh_source;

/* ---------------------------------------------------------------- hub */

typedef struct gh_pool gh_pool;

/* classes whose metatables the hub remembers, for fast type checks */
enum { GH_THREAD, GH_EVENT, GH_SEM, GH_QUEUE, GH_NCLASS };

struct gh_hub {
  lua_State *mainL;        /* the state's main thread */
  gh_thread main;          /* record standing for the main thread */
  gh_thread *current;      /* green thread being resumed, or NULL */
  gh_link runq;            /* FIFO of ready threads */
  size_t nready;
  gh_heap timers;
  gh_poller poller;
  gh_fd *fds;              /* indexed by fd */
  int nfds;                /* capacity of fds */
  size_t nfdwait;          /* threads parked on fds */
  size_t nrefs;            /* outside events awaited (hub_ref): not idle */
  gh_link sources;         /* event sources (gh_source.link) */
  int in_loop;             /* a loop turn is on the C stack */
  int closed;              /* state is closing: hub is gone */
  int64_t now;             /* monotonic ns, read once per turn */
  gh_pool *pool;           /* resolver workers, started on first name */
  gh_pool *stale_pool;     /* a pool inherited across fork (never used) */
  struct gh_proc *proc;    /* signals and children (proc.c) */
  int threads_ref;         /* registry: table ref -> thread userdata */
  int links_ref;           /* registry: thread -> { {g, args...}, ... } */
  int killed_ref;          /* registry: the Killed sentinel */
  int onerror_ref;         /* registry: error handler or LUA_NOREF */
  int main_intr_ref;       /* registry: pending interrupt for main */
  int thread_mt_ref;       /* registry: the thread metatable */
  const void *mt[GH_NCLASS]; /* metatable addresses, for gh_check */
  int pool_ref;            /* registry: finished coroutines kept for reuse */
  int wrapped_ref;         /* registry: weak coroutine -> the coroutine
                              resuming it through gh.coroutine.resume */
  int bare_ref;            /* registry: coroutine -> interrupt to raise at
                              its bare coroutine.yield */
  size_t npool;
  size_t nthreads;         /* green threads not yet dead */
  uint64_t switches, turns, spawned;
  size_t nregistered;      /* fds in the poller */
  int64_t block_ns;        /* gh.debug.blocking threshold, 0 = off */
  int block_raise;         /* ... raise in the offender instead of reporting */
  int64_t resumed_at;      /* when the current green thread was resumed */
  int names_ref;           /* registry: weak thread -> name */
  unsigned fork_gen;       /* process generation this hub's poller belongs to */
  uint64_t poll_ns, run_ns;
  gh_link flushq;          /* sockets holding coalesced output */
  void (*flush_all)(struct gh_hub *h);      /* socket.c: try them all */
  void (*flush_one)(struct gh_hub *h, void *s); /* ... one, fd writable */
  struct gh_monitor *monitor; /* debug.blocking's watchdog thread */
  unsigned monitor_gen;    /* fork_gen it was started in */
};

/* hub.c */
int64_t hub_clock(void);
int64_t hub_clock_coarse(void);
gh_hub *hub_get(lua_State *L);
gh_thread *hub_self(lua_State *L, gh_hub *h, const char *what);
void hub_enqueue(gh_hub *h, gh_thread *t);
void hub_unwait(gh_hub *h, gh_thread *t);
void hub_wake(gh_hub *h, gh_thread *t, int why);
void hub_interrupt(gh_hub *h, lua_State *L, gh_thread *t);
int hub_park(lua_State *L, gh_hub *h, gh_thread *self, int64_t deadline,
             lua_KContext ctx, lua_KFunction k);
int hub_check_intr(lua_State *L, gh_hub *h, gh_thread *self);
int hub_park_list(lua_State *L, gh_hub *h, gh_link *list, int front,
                  int64_t deadline, lua_KContext ctx, lua_KFunction k,
                  const char *what, int code);
void hub_anchor(lua_State *L, gh_hub *h, gh_thread *self, int idx);
int hub_pending_intr(gh_hub *h, lua_State *L, gh_thread *t);
void hub_check_fork(gh_hub *h);
unsigned hub_fork_gen(void);
int hub_fd_valid(lua_Integer fd);
int hub_can_block(lua_State *L, gh_hub *h);
int hub_fd_watch(gh_hub *h, int fd);
void *hub_yield_marker(void);
int hub_yield(lua_State *L, gh_hub *h, gh_thread *self, lua_KContext ctx,
              lua_KFunction k);
int hub_wait_fd(lua_State *L, gh_hub *h, gh_thread *self, int fd, int dir,
                int64_t deadline, lua_KContext ctx, lua_KFunction k);
void hub_fd_forget(gh_hub *h, int fd);  /* fd just opened or closing */
gh_fd *hub_fd(gh_hub *h, int fd);
int hub_fd_rearm(gh_hub *h, int fd);            /* watch fd afresh */
int hub_fd_interest(gh_hub *h, int fd, unsigned events); /* ... for these only */
int hub_source_add(gh_hub *h, gh_source *s);     /* 0, or -1 (errno) */
void hub_source_remove(gh_hub *h, gh_source *s);
static inline void hub_ref(gh_hub *h) { h->nrefs++; }
static inline void hub_unref(gh_hub *h) { h->nrefs--; }

/* Worth trying the syscall? No when a short read/write since the last edge
   showed the fd drained (an edge sets the bit again). Unknown fds: yes. */
static inline int hub_fd_maybe_ready(const gh_hub *h, int fd, int dir) {
  return fd >= h->nfds || (h->fds[fd].ready & (dir | FD_HUP));
}
static inline void hub_fd_drained(gh_hub *h, int fd, int dir) {
  if (fd < h->nfds) h->fds[fd].ready &= (uint8_t)~dir;
}
int hub_turn(lua_State *L, gh_hub *h, int may_block);
void hub_fork_init(gh_hub *h);
int64_t hub_deadline(lua_State *L, int arg);
/* shared by every part: error words, argument checks, out of memory */
int gh_fail(lua_State *L, const char *word);            /* nil, word */
int gh_wait_failed(lua_State *L, gh_hub *h);            /* after a park */
int gh_nanerror(lua_State *L, int arg, const char *what);
/* a number of seconds: any number but NaN ("<what> is NaN") */
static inline double gh_checkseconds(lua_State *L, int arg, const char *what) {
  double s = luaL_checknumber(L, arg);
  if (s != s) gh_nanerror(L, arg, what);
  return s;
}
static inline double gh_optseconds(lua_State *L, int arg, double def, const char *what) {
  double s = luaL_optnumber(L, arg, def);
  if (s != s) gh_nanerror(L, arg, what);
  return s;
}
int gh_nomem(lua_State *L);                             /* raises */
static inline int hub_expired(int64_t deadline) {       /* -1: never */
  return deadline >= 0 && deadline <= hub_clock();
}
int64_t hub_after(double s);
int hub_open(lua_State *L);

/* The record of the caller inside a continuation. */
static inline gh_thread *hub_me(lua_State *L, gh_hub *h) {
  (void)L; /* a continuation runs while its green thread is current */
  return h->current ? h->current : &h->main;
}

#define HUB(L) ((gh_hub *)lua_touserdata(L, lua_upvalueindex(1)))

/* Register reg into the table at mod, each closure with the hub as upvalue 1. */
static inline void gh_setfuncs(lua_State *L, int mod, int hub, const luaL_Reg *reg) {
  lua_pushvalue(L, mod);
  lua_pushvalue(L, hub);
  luaL_setfuncs(L, reg, 1);
  lua_pop(L, 1);
}

/* luaL_checkudata without its by-name registry lookup (hot paths). */
void *gh_check(lua_State *L, int arg, int cls, const char *tname);
void *gh_checkh(lua_State *L, gh_hub *h, int arg, int cls, const char *tname);
void gh_remember_mt(lua_State *L, int hub, int mt, int cls);
int gh_new_class(lua_State *L, int hub, int cls, const char *name,
                 const luaL_Reg *methods, lua_CFunction tostring);


/* resolver.c */
int resolver_lookup(lua_State *L, gh_hub *h, const char *host, const char *serv,
                    int family, int socktype, int passive, int64_t deadline,
                    lua_KContext ctx, lua_KFunction k);
void resolver_close(gh_hub *h);
const char *resolver_strerror(int err);
int work_run(lua_State *L, gh_hub *h, int lua, void (*run)(void *), void (*cleanup)(void *),
             void *arg, lua_KContext ctx, lua_KFunction k);
int work_lua_size(lua_State *L);
int resolver_set_delay(lua_State *L);

/* sync.c */
void sync_open(lua_State *L, int mod, int hub);

/* socket.c */
void socket_open(lua_State *L, int mod, int hub);

/* tpool.c */
void tpool_open(lua_State *L, int mod, int hub);

/* fs.c */
void fs_open(lua_State *L, int mod, int hub);

/* websocket.c */
void websocket_open(lua_State *L, int mod, int hub);

/* proc.c */
void proc_open(lua_State *L, int mod, int hub);
void proc_close(gh_hub *h);

/* diag.c */
void diag_open(lua_State *L, int mod, int hub);
void diag_on_resume(gh_hub *h, gh_thread *t);
int diag_hook_is_ours(lua_Hook hk);
void diag_after_resume(gh_hub *h, lua_State *L, gh_thread *t, int ud);
void diag_close(gh_hub *h);
const char *diag_safe_text(lua_State *L, int idx);

/* thread.c */
void thread_resume(gh_hub *h, lua_State *from, gh_thread *t);
const char *thread_name(lua_State *L, gh_hub *h, gh_thread *t, int ud);
void thread_timer_fire(gh_hub *h, gh_timer *tm);
void thread_push(lua_State *L, gh_hub *h, gh_thread *t);
void thread_spawn_n(lua_State *L, gh_hub *h, int n);
gh_thread *thread_check(lua_State *L, int arg);
void thread_open(lua_State *L, int mod, int hub);

/* timeout.c */
void timeout_open(lua_State *L, int mod, int hub);

/* scope.c (gh.scope's C part, gh.testing's virtual clock) */
void scope_open(lua_State *L, int mod, int hub);
void scope_close(gh_hub *h);
extern int64_t hub_vclock;       /* virtual time in ns, -1: the real clock */

/* ---------------------------------------------------------------- C API */

/*
 * What a separately built C module (greenhub.pgcore) may call: the hub's
 * own functions, reached through this table (core._capi, a light
 * userdata), since Lua loads C modules with RTLD_LOCAL. A client checks
 * version and the two sizes: it must come from the same build.
 */
#define GH_CAPI_VERSION 1
typedef struct gh_capi {
  unsigned version;
  size_t hub_size, thread_size;
  gh_hub *(*get)(lua_State *L);
  gh_thread *(*self)(lua_State *L, gh_hub *h, const char *what);
  int (*wait_fd)(lua_State *L, gh_hub *h, gh_thread *self, int fd, int dir,
                 int64_t deadline, lua_KContext ctx, lua_KFunction k);
  int (*park_list)(lua_State *L, gh_hub *h, gh_link *list, int front, int64_t deadline,
                   lua_KContext ctx, lua_KFunction k, const char *what, int code);
  void (*wake)(gh_hub *h, gh_thread *t, int why);
  int (*check_intr)(lua_State *L, gh_hub *h, gh_thread *self);
  void (*fd_forget)(gh_hub *h, int fd);
  int (*fd_interest)(gh_hub *h, int fd, unsigned events);
  int64_t (*clock)(void);
  int64_t (*after)(double s);
  int64_t (*deadline)(lua_State *L, int arg);
  int (*fail)(lua_State *L, const char *word);
  int (*work)(lua_State *L, gh_hub *h, int lua, void (*run)(void *), void (*cleanup)(void *),
              void *arg, lua_KContext ctx, lua_KFunction k);
} gh_capi;

#endif
