/*
 * thread.c - green threads: spawn, sleep, wait, kill, link, run.
 *
 * A green thread is a coroutine resumed from C by the hub. Its blocking
 * calls park through hub_park/hub_yield and continue in a lua_KFunction;
 * every continuation first raises a pending interrupt (kill, timeout).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "greenhub.h"

gh_thread *thread_check(lua_State *L, int arg) {
  return gh_check(L, arg, GH_THREAD, THREAD_MT);
}

void thread_push(lua_State *L, gh_hub *h, gh_thread *t) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, h->threads_ref);
  lua_rawgeti(L, -1, t->ref);
  lua_remove(L, -2);
}

static void check_callable(lua_State *L, int arg) {
  if (lua_type(L, arg) == LUA_TFUNCTION) return;
  if (luaL_getmetafield(L, arg, "__call") != LUA_TNIL) {
    lua_pop(L, 1);
    return;
  }
  luaL_typeerror(L, arg, "function");
}

/* The spawn_after timer starts a pending thread; any other ends a wait. */
void thread_timer_fire(gh_hub *h, gh_timer *tm) {
  gh_thread *t = container_of(tm, gh_thread, timer);
  if (t->state == TS_PENDING) hub_enqueue(h, t);
  else hub_wake(h, t, WK_TIMEOUT);
}

/*
 * New pending thread running the function and n - 1 arguments on top of L
 * (popped); its userdata is pushed. Not queued yet. Coroutines of finished
 * threads are reused (a finished coroutine can run a new function), which
 * makes spawn cost a userdata, not a whole new lua_State and stack.
 */
static gh_thread *thread_new(lua_State *L, gh_hub *h, int n) {
  lua_State *co;
  luaL_checkstack(L, 4, NULL);
  if (h->npool > 0) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, h->pool_ref);
    lua_rawgeti(L, -1, (lua_Integer)h->npool);
    lua_pushnil(L);
    lua_rawseti(L, -3, (lua_Integer)h->npool--);
    lua_remove(L, -2);
    co = lua_tothread(L, -1);
  } else {
    co = lua_newthread(L);
  }
  lua_insert(L, -(n + 1));
  lua_checkstack(co, n + LUA_MINSTACK);
  lua_xmove(L, co, n);
  gh_thread *t = lua_newuserdatauv(L, sizeof *t, 3);
  memset(t, 0, sizeof *t);
  link_init(&t->link);
  link_init(&t->joiners);
  t->co = co;
  t->hub = h;
  t->state = TS_PENDING;
  t->timer.fire = thread_timer_fire;
  lua_rawgeti(L, LUA_REGISTRYINDEX, h->thread_mt_ref);
  lua_setmetatable(L, -2);
  lua_insert(L, -2);
  lua_setiuservalue(L, -2, 1);
  lua_pushvalue(co, 1);            /* the function: names a dead thread */
  lua_xmove(co, L, 1);
  lua_setiuservalue(L, -2, 2);
  lua_rawgeti(L, LUA_REGISTRYINDEX, h->threads_ref);
  lua_pushvalue(L, -2);
  t->ref = luaL_ref(L, -2);
  lua_pop(L, 1);
  h->nthreads++;
  h->spawned++;
  return t;
}

/* Spawn the function and n - 1 arguments on top of L (popped), no handle. */
void thread_spawn_n(lua_State *L, gh_hub *h, int n) {
  hub_enqueue(h, thread_new(L, h, n));
  lua_pop(L, 1);
}

/* ---------------------------------------------------------------- death */

/*
 * An error nobody waits for: hand it to gh.onerror's handler, or print it
 * with the thread's name. The outcome is already stored (a handler may
 * t:wait() and see the error). Never raises: the loop is on the C stack.
 * Stack: ud (the thread), err, tb (message with the traceback), its name.
 */
static void report(gh_hub *h, lua_State *L, int ud, int err, int tb, int name) {
  if (!lua_checkstack(L, 8)) return;
  if (h->onerror_ref != LUA_NOREF) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, h->onerror_ref);
    lua_pushvalue(L, ud);
    lua_pushvalue(L, err);
    lua_pushvalue(L, tb);
    if (lua_pcall(L, 3, 0, 0) != LUA_OK) {
      fprintf(stderr, "greenhub: error in the onerror handler: %s\n",
              diag_safe_text(L, -1));
      lua_pop(L, 2);
    }
  } else {
    fprintf(stderr, "greenhub: uncaught error in green thread %s: %s\n",
            lua_tostring(L, name), lua_tostring(L, tb));
  }
  fflush(stderr);
}

static void run_links(gh_hub *h, lua_State *L, gh_thread *t) {
  int top = lua_gettop(L);
  luaL_checkstack(L, 8, NULL);
  lua_rawgeti(L, LUA_REGISTRYINDEX, h->links_ref);
  thread_push(L, h, t);
  lua_pushvalue(L, -1);
  lua_rawget(L, top + 1);                        /* list of {n, g, args} */
  lua_pushvalue(L, top + 2);
  lua_pushnil(L);
  lua_rawset(L, top + 1);                        /* links[t] = nil */
  lua_Integer n = luaL_len(L, top + 3);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, top + 3, i);
    int e = lua_gettop(L);
    lua_getfield(L, e, "n");
    int na = (int)lua_tointeger(L, -1);
    lua_pop(L, 1);
    luaL_checkstack(L, na + 4, NULL);
    lua_rawgeti(L, e, 1);                        /* g */
    lua_pushvalue(L, top + 2);                   /* t */
    for (int a = 2; a <= na; a++) lua_rawgeti(L, e, a);
    gh_thread *lt = thread_new(L, h, na + 1);
    hub_enqueue(h, lt);
    lua_settop(L, e - 1);
  }
  lua_settop(L, top);
}

/*
 * Move a dead thread's outcome (its nres results, or its error value, on
 * top of co) into its user value: one value as is, several as a table.
 * The coroutine is then reset and kept for reuse by the next spawn.
 */
static void thread_store(gh_hub *h, lua_State *L, gh_thread *t) {
  lua_State *co = t->co;
  int n = t->nres;
  int pool = h->npool < GH_POOL_MAX && lua_status(co) == LUA_OK &&
             !(t->flags & TF_NOPOOL);
  /* no results and a pooled coroutine: the stale user value is never read,
     and the pool keeps the coroutine alive anyway */
  if (n > 0 || !pool) {
    thread_push(L, h, t);
    luaL_checkstack(L, n + 2, "too many results");
    lua_xmove(co, L, n);
    if (n == 0) lua_pushnil(L); /* let the coroutine go */
    else if (n > 1) {
      lua_createtable(L, n, 0);
      lua_insert(L, -(n + 1));
      for (int i = n; i >= 1; i--) lua_rawseti(L, -(i + 1), i);
    }
    lua_setiuservalue(L, -2, 1);
    lua_pop(L, 1);
  }
  lua_settop(co, 0);
  t->co = NULL;
  if (pool) {
    if (lua_gethook(co)) lua_sethook(co, NULL, 0, 0); /* next owner starts clean */
    lua_rawgeti(L, LUA_REGISTRYINDEX, h->pool_ref);
    lua_pushthread(co);
    lua_xmove(co, L, 1);
    lua_rawseti(L, -2, (lua_Integer)++h->npool);
    lua_pop(L, 1);
  }
}

static int is_killed(gh_hub *h, lua_State *co) {
  lua_rawgeti(co, LUA_REGISTRYINDEX, h->killed_ref);
  int killed = lua_rawequal(co, -1, -2);
  lua_pop(co, 1);
  return killed;
}

/*
 * t has finished: status st from lua_resume (results on co's top, or the
 * error value). Records the outcome, closes the coroutine's pending
 * to-be-closed variables, wakes joiners, runs links, reports an error
 * nobody will see otherwise, drops the anchor.
 */
static void thread_die(gh_hub *h, lua_State *L, gh_thread *t, int st, int nres) {
  lua_State *co = t->co;
  int top = lua_gettop(L);
  int report_it = 0;
  lua_checkstack(L, 8);
  t->state = TS_DEAD;
  t->where = TW_NONE;
  h->nthreads--;
  thread_push(L, h, t);                           /* top+1: the handle */
  if (st == LUA_OK) {
    t->nres = nres;
  } else {
    if (!is_killed(h, co) && !(t->flags & TF_OBSERVED) && link_empty(&t->joiners)) {
      /* the traceback needs the stack as the error left it */
      lua_checkstack(co, 2);
      lua_pushvalue(co, -1);
      lua_xmove(co, L, 1);                        /* top+2: err */
      luaL_traceback(L, co, diag_safe_text(L, top + 2), 0);
      lua_remove(L, top + 3);                     /* top+3: message + tb */
      thread_name(L, h, t, top + 1);                /* top+4, while the stack is there */
      report_it = 1;
    }
    /* close <close> variables left open by the error; the (possibly new)
       error value ends up alone on co's stack */
    if (lua_status(co) != LUA_OK) lua_resetthread(co);
    t->flags |= is_killed(h, co) ? TF_KILLED : TF_ERROR;
    t->nres = 1;
  }
  thread_store(h, L, t);
  while (!link_empty(&t->joiners)) {
    gh_thread *j = container_of(t->joiners.next, gh_thread, link);
    hub_wake(h, j, WK_OK);
  }
  if (t->flags & TF_LINKS) run_links(h, L, t);
  if (report_it) report(h, L, top + 1, top + 2, top + 3, top + 4);
  if (t->flags & TF_ANCHORED) {
    lua_pushnil(L);
    lua_setiuservalue(L, top + 1, 3);
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, h->threads_ref);
  luaL_unref(L, -1, t->ref);
  t->ref = LUA_NOREF;
  lua_settop(L, top);
}

/* Kill t without running it further; the error value is on co's top. */
static void thread_abort(gh_hub *h, lua_State *L, gh_thread *t) {
  lua_State *co = t->co;
  lua_xmove(co, L, 1);
  lua_resetthread(co);
  lua_settop(co, 0);
  lua_xmove(L, co, 1);
  t->flags |= TF_OBSERVED; /* whoever killed it knows */
  thread_die(h, L, t, LUA_ERRRUN, 0);
}

/*
 * The hook that raises an interrupt inside a thread parked by a bare
 * coroutine.yield: it runs at the first instruction after that yield
 * returns, so pcall and <close> see the error right there. The user's own
 * hook (saved when this one was set) comes back first.
 */
static void bare_hook(lua_State *L, lua_Debug *ar) {
  gh_hub *h = hub_get(L);
  gh_thread *t = h->current;
  (void)ar;
  if (t && t->co == L) {
    lua_sethook(L, t->uhook, t->umask, t->ucount);
    t->uhook = NULL;
    t->flags |= TF_NOPOOL; /* an error out of a hook leaves hooks off */
  } else {
    lua_sethook(L, NULL, 0, 0);
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, h->bare_ref);
  lua_pushthread(L);
  if (lua_rawget(L, -2) == LUA_TNIL) { lua_pop(L, 2); return; }
  lua_pushthread(L);
  lua_pushnil(L);
  lua_rawset(L, -4);
  lua_error(L);
}

/* t sits in a bare coroutine.yield with an interrupt on co's top: arm the
   hook that raises it once t runs again. */
static void bare_interrupt(gh_hub *h, lua_State *L, gh_thread *t) {
  lua_State *co = t->co;
  lua_checkstack(L, 4);
  lua_rawgeti(L, LUA_REGISTRYINDEX, h->bare_ref);
  lua_pushthread(co);
  lua_xmove(co, L, 2);                 /* bare, err, co */
  lua_insert(L, -2);
  lua_rawset(L, -3);
  lua_pop(L, 1);
  lua_Hook old = lua_gethook(co);
  if (old && !diag_hook_is_ours(old) && old != bare_hook) {
    t->uhook = old;
    t->umask = lua_gethookmask(co);
    t->ucount = lua_gethookcount(co);
  }
  lua_sethook(co, bare_hook, LUA_MASKCOUNT, 1);
}

/* The coroutine of suspended t was closed from outside (coroutine.close):
   it cannot run again, so t ends as if killed. */
static void closed_outside(gh_hub *h, lua_State *L, gh_thread *t) {
  lua_settop(t->co, 0);
  lua_rawgeti(t->co, LUA_REGISTRYINDEX, h->killed_ref);
  t->flags |= TF_NOPOOL;
  thread_abort(h, L, t);
}

/* Resume t (ready, or pending) from L, and handle how it stops. */
void thread_resume(gh_hub *h, lua_State *L, gh_thread *t) {
  int nargs = 0, nres, bare = 0;
  if (t->state == TS_PENDING) {
    nargs = lua_gettop(t->co) - 1;
  } else if (lua_status(t->co) != LUA_YIELD) {
    closed_outside(h, L, t);
    return;
  } else if (t->wake == WK_INTR) {
    nargs = 1;
    if (t->flags & TF_BARE) { bare_interrupt(h, L, t); nargs = 0; bare = 1; }
  }
  t->flags &= (uint16_t)~TF_BARE;
  gh_thread *prev = h->current;
  h->current = t;
  t->state = TS_RUNNING;
  h->switches++;
  if (h->block_ns) { if (!bare) diag_on_resume(h, t); }
  else {
    lua_Hook hk = lua_gethook(t->co); /* ours, left from when it was on */
    if (hk && diag_hook_is_ours(hk)) lua_sethook(t->co, NULL, 0, 0);
  }
  int st = lua_resume(t->co, L, nargs, &nres);
  h->current = prev;
  if (h->block_ns) diag_after_resume(h, L, t, 0);
  if (st == LUA_YIELD) {
    t->state = TS_SUSPENDED;
    lua_pop(t->co, nres); /* nothing, or the pass-through marker */
    if (t->where == TW_NONE) {
      /* a bare coroutine.yield, not ours: treat as sleep(0) */
      t->wake = WK_OK;
      t->flags |= TF_BARE;
      hub_enqueue(h, t);
    }
    return;
  }
  thread_die(h, L, t, st, nres);
}

/* ---------------------------------------------------------------- module */

static int l_spawn(lua_State *L) {
  gh_hub *h = HUB(L);
  check_callable(L, 1);
  hub_enqueue(h, thread_new(L, h, lua_gettop(L)));
  return 1;
}

static int l_spawn_n(lua_State *L) {
  gh_hub *h = HUB(L);
  check_callable(L, 1);
  hub_enqueue(h, thread_new(L, h, lua_gettop(L)));
  return 0;
}

static int l_spawn_after(lua_State *L) {
  gh_hub *h = HUB(L);
  double s = gh_checkseconds(L, 1, "seconds");
  check_callable(L, 2);
  int64_t deadline = hub_after(s);
  if (timer_reserve(&h->timers) < 0) gh_nomem(L);
  lua_remove(L, 1);
  gh_thread *t = thread_new(L, h, lua_gettop(L));
  timer_start(&h->timers, &t->timer, deadline);
  return 1;
}

/* a wait that returns nothing cut short by its scope: raise "timeout" */
static void scope_raise(lua_State *L, gh_thread *self) {
  if (self->wake == WK_TIMEOUT && self->scope_hit) {
    lua_pushliteral(L, "timeout");
    lua_error(L);
  }
}

static int sleep_k(lua_State *L, int status, lua_KContext ctx) {
  gh_hub *h = HUB(L);
  gh_thread *self = hub_me(L, h);
  (void)status; (void)ctx;
  hub_check_intr(L, h, self);
  scope_raise(L, self);
  return 0;
}

static int l_sleep(lua_State *L) {
  gh_hub *h = HUB(L);
  double s = gh_optseconds(L, 1, 0, "seconds");
  gh_thread *self = hub_self(L, h, "sleep");
  lua_settop(L, 0);
  if (s <= 0) return hub_yield(L, h, self, 0, sleep_k);
  return hub_park(L, h, self, s == HUGE_VAL ? -1 : hub_after(s), 0, sleep_k);
}

static int l_current(lua_State *L) {
  gh_hub *h = HUB(L);
  /* inside a coroutine nested in a green thread it is still that thread */
  if (h->current) thread_push(L, h, h->current);
  else lua_pushnil(L);
  return 1;
}

static int l_run(lua_State *L) {
  gh_hub *h = HUB(L);
  if (L != h->mainL || h->current || h->in_loop)
    return luaL_error(L, "greenhub: run() must be called from the main "
                         "thread, outside the hub");
  while (!hub_turn(L, h, 1)) {
    if (h->main.flags & TF_MAIN_WOKEN) {
      h->main.flags &= (uint16_t)~TF_MAIN_WOKEN;
      hub_check_intr(L, h, &h->main);
    }
  }
  return 0;
}

/* Monotonic seconds: for measuring, never affected by clock changes. */
static int l_clock(lua_State *L) {
  lua_pushnumber(L, (double)hub_clock() / 1e9);
  return 1;
}

static int l_wrapped(lua_State *L) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, HUB(L)->wrapped_ref);
  lua_pushlightuserdata(L, hub_yield_marker());
  return 2;
}

static int l_onerror(lua_State *L) {
  gh_hub *h = HUB(L);
  if (!lua_isnoneornil(L, 1)) check_callable(L, 1);
  lua_settop(L, 1);
  luaL_unref(L, LUA_REGISTRYINDEX, h->onerror_ref);
  h->onerror_ref = lua_isnil(L, 1) ? LUA_NOREF : luaL_ref(L, LUA_REGISTRYINDEX);
  return 0;
}

/* ---------------------------------------------------------------- methods */

/* The outcome of dead t (userdata at index 1): its results, or raise. */
static int wait_result(lua_State *L, gh_thread *t) {
  if (t->flags & TF_KILLED) return 0;
  int n = t->nres;
  lua_getiuservalue(L, 1, 1);
  if (t->flags & TF_ERROR) return lua_error(L);
  if (n <= 1) return n;
  luaL_checkstack(L, n, "too many results");
  int tab = lua_gettop(L);
  for (int i = 1; i <= n; i++) lua_rawgeti(L, tab, i);
  return n;
}

static int wait_k(lua_State *L, int status, lua_KContext ctx) {
  gh_hub *h = HUB(L);
  gh_thread *self = hub_me(L, h);
  (void)status; (void)ctx;
  hub_check_intr(L, h, self);
  scope_raise(L, self);
  return wait_result(L, thread_check(L, 1));
}

static int t_wait(lua_State *L) {
  gh_thread *t = thread_check(L, 1);
  gh_hub *h = t->hub;
  lua_settop(L, 1);
  if (t->state == TS_DEAD) return wait_result(L, t);
  gh_thread *self = hub_self(L, h, "wait");
  if (self == t) return luaL_error(L, "greenhub: a thread cannot wait for itself");
  t->flags |= TF_OBSERVED;
  self->waitcode = WC_JOIN;
  link_push(&t->joiners, &self->link);
  self->where = TW_LIST;
  return hub_park(L, h, self, -1, 0, wait_k);
}

static int t_kill(lua_State *L) {
  gh_thread *t = thread_check(L, 1);
  gh_hub *h = t->hub;
  lua_settop(L, 2);
  if (lua_isnil(L, 2)) {
    lua_pop(L, 1);
    lua_rawgeti(L, LUA_REGISTRYINDEX, h->killed_ref);
  }
  switch (t->state) {
    case TS_DEAD:
      return 0;
    case TS_RUNNING:
      if (t == h->current) return lua_error(L); /* killing itself */
      return luaL_error(L, "greenhub: cannot kill a thread that is running "
                           "(it is resuming another)");
    case TS_PENDING:
      hub_unwait(h, t);
      lua_settop(t->co, 0);
      lua_xmove(L, t->co, 1);
      thread_abort(h, L, t);
      return 0;
    default:
      hub_interrupt(h, L, t);
      hub_unwait(h, t); /* off the run queue: it sees the error now */
      thread_resume(h, L, t);
      return 0;
  }
}

static int t_cancel(lua_State *L) {
  gh_thread *t = thread_check(L, 1);
  int pending = t->state == TS_PENDING;
  if (pending) {
    lua_settop(L, 1);
    t_kill(L);
  }
  lua_pushboolean(L, pending);
  return 1;
}

static int t_link(lua_State *L) {
  gh_thread *t = thread_check(L, 1);
  gh_hub *h = t->hub;
  check_callable(L, 2);
  int n = lua_gettop(L);
  if (t->state == TS_DEAD) {
    lua_pushvalue(L, 2);
    lua_pushvalue(L, 1);
    for (int i = 3; i <= n; i++) lua_pushvalue(L, i);
    lua_call(L, n - 1, 0);
    return 0;
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, h->links_ref);   /* n+1 */
  lua_pushvalue(L, 1);
  if (lua_rawget(L, n + 1) == LUA_TNIL) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, 1);
    lua_pushvalue(L, -2);
    lua_rawset(L, n + 1);
  }                                                  /* n+2: list */
  lua_createtable(L, n - 1, 1);
  for (int i = 2; i <= n; i++) {
    lua_pushvalue(L, i);
    lua_rawseti(L, -2, i - 1);
  }
  lua_pushinteger(L, n - 1);
  lua_setfield(L, -2, "n");
  lua_rawseti(L, n + 2, luaL_len(L, n + 2) + 1);
  t->flags |= TF_LINKS | TF_OBSERVED;
  return 0;
}

static const char *const status_names[] = {"pending", "running", "suspended", "dead"};

static int t_status(lua_State *L) {
  lua_pushstring(L, status_names[thread_check(L, 1)->state]);
  return 1;
}

static int t_traceback(lua_State *L) {
  gh_thread *t = thread_check(L, 1);
  const char *msg = luaL_optstring(L, 2, NULL);
  if (t->state == TS_SUSPENDED) luaL_traceback(L, t->co, msg, 0);
  else lua_pushfstring(L, "%s%sgreen thread is %s", msg ? msg : "",
                       msg ? "\n" : "", status_names[t->state]);
  return 1;
}

static int t_tostring(lua_State *L) {
  gh_thread *t = thread_check(L, 1);
  lua_pushfstring(L, "greenhub.thread (%s): %p", status_names[t->state], (void *)t);
  return 1;
}

/* ---------------------------------------------------------------- names */

static const char *const wait_names[] = {
  NULL, "sleep", "read", "write", "event", "semaphore", "queue get",
  "queue put", "thread", "resolve", "ready", "child"
};

/* A chunk of greenhub's own Lua layer ("@.../greenhub.lua",
   "@.../greenhub/pool.lua"). */
static int our_source(const char *src) {
  size_t n = strlen(src);
  if (n >= 12 && strcmp(src + n - 12, "greenhub.lua") == 0) return 1;
  const char *d = strstr(src, "greenhub/");
  return d && !strchr(d + 9, '/') && n > 4 && strcmp(src + n - 4, ".lua") == 0;
}

/*
 * t's name: the one given with t:name(s), else "source:line" of the
 * function it runs. Pushed on L (and returned). ud: index of t's userdata,
 * or 0 (then it is found through the thread table while t is alive).
 */
const char *thread_name(lua_State *L, gh_hub *h, gh_thread *t, int ud) {
  luaL_checkstack(L, 8, NULL);
  int top = lua_gettop(L);
  if (ud) ud = lua_absindex(L, ud);
  else if (t->ref != LUA_NOREF && !(t->flags & TF_MAIN)) {
    thread_push(L, h, t);
    ud = lua_gettop(L);
  }
  int named = 0;
  if (ud) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, h->names_ref);
    lua_pushvalue(L, ud);
    named = lua_rawget(L, -2) == LUA_TSTRING;
    if (!named) lua_pop(L, 2);
  }
  if (!named) {
    lua_State *co = t->co;
    lua_Debug ar;
    int found = 0;
    if (co && t->state == TS_PENDING && lua_gettop(co) >= 1) {
      lua_checkstack(co, 1);
      lua_pushvalue(co, 1);
      found = lua_getinfo(co, ">S", &ar);
    } else if (co) {
      /* the outermost function, passing over greenhub's own Lua wrappers
         (gh.serve's per-connection runner, say) to the user's function */
      int level = 0;
      while (lua_getstack(co, level + 1, &ar)) level++;
      for (int lv = level; lv >= 0 && !found; lv--)
        found = lua_getstack(co, lv, &ar) && lua_getinfo(co, "S", &ar) &&
                *ar.what != 'C' && !our_source(ar.source);
      if (!found) found = lua_getstack(co, level, &ar) && lua_getinfo(co, "S", &ar);
    }
    /* dead (or between functions): the function it was spawned with */
    if (!found && ud) {
      if (lua_getiuservalue(L, ud, 2) == LUA_TFUNCTION) found = lua_getinfo(L, ">S", &ar);
      else lua_pop(L, 1);
    }
    if (found && ar.linedefined > 0)
      lua_pushfstring(L, "%s:%d", ar.short_src, ar.linedefined);
    else if (found && *ar.what == 'C')
      lua_pushliteral(L, "[C function]");
    else
      lua_pushfstring(L, "%p", (void *)t);
  }
  if (lua_gettop(L) > top + 1) {
    lua_replace(L, top + 1);
    lua_settop(L, top + 1);
  }
  return lua_tostring(L, -1);
}

/* t:name([s]) -> name; with s, sets it */
static int t_name(lua_State *L) {
  gh_thread *t = thread_check(L, 1);
  gh_hub *h = t->hub;
  if (!lua_isnoneornil(L, 2)) {
    luaL_checkstring(L, 2);
    lua_rawgeti(L, LUA_REGISTRYINDEX, h->names_ref);
    lua_pushvalue(L, 1);
    lua_pushvalue(L, 2);
    lua_rawset(L, -3);
  }
  lua_settop(L, 1);
  thread_name(L, h, t, 1);
  return 1;
}

/* t:waiting() -> what a parked thread waits on ("sleep", "read fd 7", ...)
   and for how long (seconds); nil when it is not parked */
static int t_waiting(lua_State *L) {
  gh_thread *t = thread_check(L, 1);
  gh_hub *h = t->hub;
  if (t->state != TS_SUSPENDED || t->waitcode == WC_NONE) return 0;
  if (t->waitcode == WC_READ || t->waitcode == WC_WRITE)
    lua_pushfstring(L, "%s fd %d", wait_names[t->waitcode], t->waitfd);
  else
    lua_pushstring(L, wait_names[t->waitcode]);
  lua_pushnumber(L, (double)(hub_clock_coarse() - t->since) / 1e9);
  (void)h;
  return 2;
}

static const luaL_Reg thread_methods[] = {
  {"wait", t_wait}, {"kill", t_kill}, {"cancel", t_cancel}, {"link", t_link},
  {"status", t_status}, {"traceback", t_traceback}, {"name", t_name},
  {"waiting", t_waiting}, {NULL, NULL}
};

static const luaL_Reg thread_funcs[] = {
  {"spawn", l_spawn}, {"spawn_n", l_spawn_n}, {"spawn_after", l_spawn_after},
  {"sleep", l_sleep}, {"current", l_current}, {"run", l_run},
  {"onerror", l_onerror}, {"clock", l_clock}, {"_coroutine", l_wrapped},
  {NULL, NULL}
};

void thread_open(lua_State *L, int mod, int hub) {
  gh_new_class(L, hub, GH_THREAD, THREAD_MT, thread_methods, t_tostring);
  gh_hub *h = lua_touserdata(L, hub);
  if (h->thread_mt_ref == LUA_NOREF || h->thread_mt_ref == 0)
    h->thread_mt_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  else
    lua_pop(L, 1);
  gh_setfuncs(L, mod, hub, thread_funcs);
}
