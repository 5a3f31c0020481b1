/*
 * diag.c - seeing inside the hub: gh.threads, gh.stats,
 * and gh.debug.blocking (a count hook that catches a green thread running
 * too long without yielding). Nothing here is on a hot path unless
 * blocking detection is switched on.
 */
#include <pthread.h>
#include <signal.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <string.h>

#include "greenhub.h"

/* luaL_tolstring under pcall. */
static int tolstring_p(lua_State *L) {
  luaL_tolstring(L, 1, NULL);
  return 1;
}

/*
 * Text for the value at idx, pushed: strings and numbers as they are,
 * others through __tostring/__name. Never raises (a __tostring that fails
 * or returns a non-string gives a plain description).
 */
const char *diag_safe_text(lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  int ty = lua_type(L, idx);
  if (ty == LUA_TSTRING) { lua_pushvalue(L, idx); return lua_tostring(L, -1); }
  lua_pushcfunction(L, tolstring_p);
  lua_pushvalue(L, idx);
  if (lua_pcall(L, 1, 1, 0) == LUA_OK && lua_type(L, -1) == LUA_TSTRING)
    return lua_tostring(L, -1);
  lua_pop(L, 1);
  return lua_pushfstring(L, "(error object is a %s value)", lua_typename(L, ty));
}


/* ---------------------------------------------------------------- blocking */

/*
 * The watchdog: an OS thread that notices the hub stuck inside one resume
 * (a Lua loop, or a blocking C call such as os.execute or an unpatched
 * LuaSocket call, which no count hook sees) and says so while it lasts.
 * It touches only these atomics, never Lua; the hub thread names the
 * culprit with its traceback once the resume ends (diag_after_resume).
 */
typedef struct gh_monitor {
  pthread_t tid;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int stop;
  int64_t threshold;       /* ns */
  int64_t resumed_at;      /* ns, 0 = the hub is not inside a resume */
  uint64_t seq;            /* resumes so far */
  uint64_t warned;         /* the seq already warned about */
  const void *thread;      /* the gh_thread being resumed */
} gh_monitor;

#define LOAD(p) __atomic_load_n(&(p), __ATOMIC_ACQUIRE)
#define STORE(p, v) __atomic_store_n(&(p), (v), __ATOMIC_RELEASE)

static void *monitor_main(void *arg) {
  gh_monitor *m = arg;
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, NULL);
  pthread_mutex_lock(&m->mu);
  while (!m->stop) {
    int64_t th = LOAD(m->threshold);
    int64_t step = th / 4;
    if (step < 1000000) step = 1000000;
    if (step > 100000000) step = 100000000;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t ns = ts.tv_nsec + step;
    ts.tv_sec += ns / 1000000000;
    ts.tv_nsec = ns % 1000000000;
    pthread_cond_timedwait(&m->cv, &m->mu, &ts);
    if (m->stop) break;
    int64_t at = LOAD(m->resumed_at);
    uint64_t seq = LOAD(m->seq);
    if (at == 0 || seq == m->warned) continue;
    int64_t ran = hub_clock() - at;
    if (ran < th || LOAD(m->seq) != seq) continue;
    m->warned = seq;
    fprintf(stderr, "greenhub: the hub has been blocked for %.3f s by green "
                    "thread %p, which has not yielded yet (a report with its "
                    "name follows when it does)\n",
            (double)ran / 1e9, LOAD(m->thread));
    fflush(stderr);
  }
  pthread_mutex_unlock(&m->mu);
  return NULL;
}

static void monitor_stop(gh_hub *h) {
  gh_monitor *m = h->monitor;
  if (!m) return;
  h->monitor = NULL;
  pthread_mutex_lock(&m->mu);
  m->stop = 1;
  pthread_cond_signal(&m->cv);
  pthread_mutex_unlock(&m->mu);
  pthread_join(m->tid, NULL);
  pthread_mutex_destroy(&m->mu);
  pthread_cond_destroy(&m->cv);
  free(m);
}

static void monitor_start(gh_hub *h) {
  gh_monitor *m = calloc(1, sizeof *m);
  if (!m) return;
  pthread_mutex_init(&m->mu, NULL);
  pthread_cond_init(&m->cv, NULL);
  m->threshold = h->block_ns;
  if (pthread_create(&m->tid, NULL, monitor_main, m) != 0) {
    pthread_mutex_destroy(&m->mu);
    pthread_cond_destroy(&m->cv);
    free(m);
    return; /* no watchdog: the count hook and the resume-end check remain */
  }
  h->monitor = m;
  h->monitor_gen = hub_fork_gen();
}

void diag_close(gh_hub *h) {
  if (h->monitor && h->monitor_gen != hub_fork_gen()) h->monitor = NULL; /* its thread is the parent's */
  monitor_stop(h);
}

static void block_hook(lua_State *L, lua_Debug *ar) {
  gh_hub *h = hub_get(L);
  (void)ar;
  if (!h->block_ns || !h->current || h->resumed_at == 0) return;
  int64_t ran = hub_clock() - h->resumed_at;
  if (ran < h->block_ns) return;
  h->resumed_at = 0; /* once per resume */
  gh_thread *t = h->current;
  if (h->block_raise) {
    t->flags |= TF_NOPOOL; /* an error out of a hook leaves hooks off */
    luaL_where(L, 1);
    lua_pushfstring(L, "greenhub: green thread ran %f s without yielding", (double)ran / 1e9);
    lua_concat(L, 2);
    lua_error(L);
  }
  const char *name = thread_name(L, h, t, 0);
  luaL_traceback(L, L, NULL, 0);
  fprintf(stderr, "greenhub: green thread %s ran %.3f s without yielding:\n%s\n",
          name, (double)ran / 1e9, lua_tostring(L, -1));
  fflush(stderr);
  lua_pop(L, 2);
}

int diag_hook_is_ours(lua_Hook hk) { return hk == block_hook; }

void diag_on_resume(gh_hub *h, gh_thread *t) {
  h->resumed_at = hub_clock();
  if (h->monitor && h->monitor_gen != hub_fork_gen()) h->monitor = NULL; /* after fork */
  if (!h->monitor) monitor_start(h);
  gh_monitor *m = h->monitor;
  if (m) {
    STORE(m->thread, (const void *)t);
    STORE(m->seq, m->seq + 1);
    STORE(m->resumed_at, h->resumed_at);
  }
  /* a user's hook (a debugger, a profiler) wins: then the watchdog and
     the check when the resume ends still see a long run */
  lua_Hook hk = lua_gethook(t->co);
  if (!hk || hk == block_hook) lua_sethook(t->co, block_hook, LUA_MASKCOUNT, 1000);
}

/*
 * A resume just ended. If it ran past the threshold and the count hook did
 * not report it (the time went into a C call, or a user hook replaced
 * ours), report it now, naming the thread and where it stopped.
 */
void diag_after_resume(gh_hub *h, lua_State *L, gh_thread *t, int ud) {
  if (h->monitor) STORE(h->monitor->resumed_at, (int64_t)0);
  if (h->resumed_at == 0) return;
  int64_t ran = hub_clock() - h->resumed_at;
  h->resumed_at = 0;
  if (ran < h->block_ns) return;
  int top = lua_gettop(L);
  if (!lua_checkstack(L, 8)) return;
  const char *name = thread_name(L, h, t, ud);
  if (t->co && lua_status(t->co) == LUA_YIELD)
    luaL_traceback(L, t->co, "it is now at:", 0);
  else
    lua_pushliteral(L, "it has finished");
  fprintf(stderr, "greenhub: green thread %s blocked the hub for %.3f s without "
                  "yielding (inside a C call or other code the count hook does "
                  "not see); %s\n", name, (double)ran / 1e9, lua_tostring(L, -1));
  fflush(stderr);
  lua_settop(L, top);
}

/* debug.blocking(seconds [, "raise"]) or debug.blocking(false) */
static int l_blocking(lua_State *L) {
  gh_hub *h = HUB(L);
  if (lua_isnoneornil(L, 1) || (lua_isboolean(L, 1) && !lua_toboolean(L, 1))) {
    h->block_ns = 0;
    monitor_stop(h);
    return 0;
  }
  double s = luaL_checknumber(L, 1);
  if (!(s > 0)) return luaL_argerror(L, 1, "threshold must be > 0 seconds");
  static const char *const modes[] = {"report", "raise", NULL};
  h->block_raise = luaL_checkoption(L, 2, "report", modes);
  /* math.huge and other enormous thresholds: never reached, not negative */
  h->block_ns = s >= 9.0e9 ? INT64_MAX : (int64_t)(s * 1e9);
  if (h->monitor) STORE(h->monitor->threshold, h->block_ns);
  return 0;
}

static int l_threads(lua_State *L) {
  gh_hub *h = HUB(L);
  lua_newtable(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, h->threads_ref);
  lua_Integer i = 0;
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    if (lua_type(L, -1) == LUA_TUSERDATA) {
      lua_pushvalue(L, -1);
      lua_rawseti(L, -5, ++i);
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return 1;
}

static int l_stats(lua_State *L) {
  gh_hub *h = HUB(L);
  size_t suspended = h->nthreads >= h->nready ? h->nthreads - h->nready : 0;
  lua_createtable(L, 0, 16);
  lua_pushinteger(L, (lua_Integer)h->nthreads); lua_setfield(L, -2, "threads");
  lua_pushinteger(L, (lua_Integer)h->nready); lua_setfield(L, -2, "ready");
  lua_pushinteger(L, (lua_Integer)suspended); lua_setfield(L, -2, "suspended");
  lua_pushinteger(L, (lua_Integer)h->timers.n); lua_setfield(L, -2, "timers");
  lua_pushinteger(L, (lua_Integer)h->nfdwait); lua_setfield(L, -2, "fds");
  lua_pushinteger(L, (lua_Integer)h->nregistered); lua_setfield(L, -2, "fds_watched");
  lua_pushinteger(L, (lua_Integer)h->switches); lua_setfield(L, -2, "switches");
  lua_pushinteger(L, (lua_Integer)h->turns); lua_setfield(L, -2, "turns");
  lua_pushinteger(L, (lua_Integer)h->spawned); lua_setfield(L, -2, "spawned");
  lua_pushnumber(L, (double)h->poll_ns / 1e9); lua_setfield(L, -2, "poll_time");
  lua_pushnumber(L, (double)h->run_ns / 1e9); lua_setfield(L, -2, "run_time");
  lua_pushboolean(L, timer_check(&h->timers)); lua_setfield(L, -2, "heap_ok");
  lua_pushstring(L, poller_backend(&h->poller)); lua_setfield(L, -2, "backend");
  return 1;
}

static int l_timer_selftest(lua_State *L) {
  lua_Integer n = luaL_checkinteger(L, 1);
  luaL_argcheck(L, n > 0 && n <= 100000000, 1, "count out of range");
  lua_pushboolean(L, timer_selftest((uint32_t)n, (uint32_t)luaL_optinteger(L, 2, 1)));
  return 1;
}

/* core._malloc_inuse() -> the bytes the C allocator has handed out and
   not had back (glibc's mallinfo2: blocks in use in every arena, and the
   mmap'd ones), or nil where that is not known. For leak tests: exact where
   RSS moves with the allocator's layout. */
static int l_malloc_inuse(lua_State *L) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
  struct mallinfo2 mi = mallinfo2();
  lua_pushinteger(L, (lua_Integer)(mi.uordblks + mi.hblkhd));
#else
  lua_pushnil(L);
#endif
  return 1;
}

static const luaL_Reg diag_funcs[] = {
  {"threads", l_threads}, {"stats", l_stats}, {"_blocking", l_blocking},
  {"_timer_selftest", l_timer_selftest}, {"_malloc_inuse", l_malloc_inuse},
  {NULL, NULL}
};

void diag_open(lua_State *L, int mod, int hub) {
  gh_setfuncs(L, mod, hub, diag_funcs);
}
