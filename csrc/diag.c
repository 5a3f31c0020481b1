/*
 * diag.c - seeing inside the hub: thread names and what threads wait on,
 * and gh.debug.blocking (a count hook that catches a green thread running
 * too long without yielding). Nothing here is on a hot path unless
 * blocking detection is switched on.
 */
#include <stdio.h>
#include <string.h>

#include "greenhub.h"

static const char *const wait_names[] = {
  NULL, "sleep", "read", "write", "event", "semaphore", "queue get",
  "queue put", "thread", "resolve", "ready", "child"
};

/*
 * t's name: the one given with t:name(s), else "source:line" of the
 * function it runs. Pushed on L (and returned).
 */
const char *diag_name(lua_State *L, gh_hub *h, gh_thread *t) {
  luaL_checkstack(L, 4, NULL);
  lua_rawgeti(L, LUA_REGISTRYINDEX, h->names_ref);
  thread_push(L, h, t);
  if (t->ref != LUA_NOREF && lua_rawget(L, -2) == LUA_TSTRING) {
    lua_remove(L, -2);
    return lua_tostring(L, -1);
  }
  lua_pop(L, 2);
  lua_State *co = t->co;
  lua_Debug ar;
  int found = 0;
  if (co && t->state == TS_PENDING && lua_gettop(co) >= 1) {
    lua_checkstack(co, 1);
    lua_pushvalue(co, 1);
    found = lua_getinfo(co, ">S", &ar);
  } else if (co) {
    int level = 0;
    while (lua_getstack(co, level + 1, &ar)) level++;
    found = lua_getstack(co, level, &ar) && lua_getinfo(co, "S", &ar);
  }
  if (found && ar.linedefined > 0)
    return lua_pushfstring(L, "%s:%d", ar.short_src, ar.linedefined);
  return lua_pushfstring(L, "%p", (void *)t);
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
    lua_settop(L, 1);
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, h->names_ref);
  lua_pushvalue(L, 1);
  if (lua_rawget(L, -2) == LUA_TSTRING) return 1;
  lua_settop(L, 1);
  diag_name(L, h, t);
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

/* ---------------------------------------------------------------- blocking */

static void block_hook(lua_State *L, lua_Debug *ar) {
  gh_hub *h = hub_get(L);
  (void)ar;
  if (!h->block_ns || !h->current || h->resumed_at == 0) return;
  int64_t ran = hub_clock() - h->resumed_at;
  if (ran < h->block_ns) return;
  h->resumed_at = 0; /* once per resume */
  gh_thread *t = h->current;
  if (h->block_raise) {
    luaL_where(L, 1);
    lua_pushfstring(L, "greenhub: green thread ran %f s without yielding", (double)ran / 1e9);
    lua_concat(L, 2);
    lua_error(L);
  }
  const char *name = diag_name(L, h, t);
  luaL_traceback(L, L, NULL, 0);
  fprintf(stderr, "greenhub: green thread %s ran %.3f s without yielding:\n%s\n",
          name, (double)ran / 1e9, lua_tostring(L, -1));
  fflush(stderr);
  lua_pop(L, 2);
}

void diag_on_resume(gh_hub *h, gh_thread *t) {
  h->resumed_at = hub_clock();
  lua_sethook(t->co, block_hook, LUA_MASKCOUNT, 1000);
}

/* debug.blocking(seconds [, "raise"]) or debug.blocking(false) */
static int l_blocking(lua_State *L) {
  gh_hub *h = HUB(L);
  if (lua_isnoneornil(L, 1) || (lua_isboolean(L, 1) && !lua_toboolean(L, 1))) {
    h->block_ns = 0;
    return 0;
  }
  double s = luaL_checknumber(L, 1);
  if (!(s > 0)) return luaL_argerror(L, 1, "threshold must be > 0 seconds");
  static const char *const modes[] = {"report", "raise", NULL};
  h->block_raise = luaL_checkoption(L, 2, "report", modes);
  h->block_ns = (int64_t)(s * 1e9);
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
  return 1;
}

static int l_timer_selftest(lua_State *L) {
  lua_Integer n = luaL_checkinteger(L, 1);
  luaL_argcheck(L, n > 0 && n <= 100000000, 1, "count out of range");
  lua_pushboolean(L, timer_selftest((uint32_t)n, (uint32_t)luaL_optinteger(L, 2, 1)));
  return 1;
}

static const luaL_Reg diag_methods[] = {
  {"name", t_name}, {"waiting", t_waiting}, {NULL, NULL}
};

static const luaL_Reg diag_funcs[] = {
  {"threads", l_threads}, {"stats", l_stats}, {"_blocking", l_blocking},
  {"_timer_selftest", l_timer_selftest},
  {NULL, NULL}
};

void diag_open(lua_State *L, int mod, int hub) {
  luaL_getmetatable(L, THREAD_MT);
  lua_getfield(L, -1, "__index");
  gh_setfuncs(L, lua_gettop(L), hub, diag_methods);
  lua_pop(L, 2);
  gh_setfuncs(L, mod, hub, diag_funcs);
}
