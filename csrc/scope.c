/*
 * scope.c - the C part of gh.scope (lua/greenhub/scope.lua) and of
 * gh.testing's virtual clock.
 *
 * A scope is a deadline and a cancelled flag (gh_scope, greenhub.h) that
 * hub_park applies to every wait of a thread pointing at it, through the
 * chain of enclosing scopes: one timer per scope, none per wait. Which
 * thread points at which scope, children, errors and cancelling them are
 * the Lua side's.
 *
 * The virtual clock is hub_vclock: while it is set, hub_clock returns it,
 * so every deadline and gh.clock() follow it; hub_turn jumps it to the
 * next timer when nothing else can happen ("autojump").
 */
#include <math.h>
#include <string.h>

#include "greenhub.h"

#define SCOPE_MT "greenhub.scope.c"

static gh_scope *scope_check(lua_State *L, int arg) {
  return luaL_checkudata(L, arg, SCOPE_MT);
}

static gh_scope *scope_opt(lua_State *L, int arg) {
  return lua_isnoneornil(L, arg) ? NULL : scope_check(L, arg);
}

/* the thread a call names: a green thread handle, or nil for main */
static gh_thread *thread_or_main(lua_State *L, gh_hub *h, int arg) {
  return lua_isnoneornil(L, arg) ? &h->main : thread_check(L, arg);
}

/* cancelled, or it or an enclosing scope past its deadline */
static int scope_is_expired(gh_scope *sc) {
  int64_t now = hub_clock(), d = scope_deadline(sc, NULL, now);
  return d == 0 || (d > 0 && d <= now);
}

/* the deadline: every wait parked on it times out */
static void scope_wake_parked(gh_hub *h, gh_scope *sc) {
  while (!link_empty(&sc->parked)) {
    gh_thread *t = container_of(sc->parked.next, gh_thread, scope_link);
    hub_wake(h, t, WK_TIMEOUT); /* unlinks it */
  }
}

static void scope_fire(gh_hub *h, gh_timer *tm) {
  gh_scope *sc = container_of(tm, gh_scope, timer);
  sc->expired = 1;
  scope_wake_parked(h, sc);
}

/* _scope_new(parent, deadline_seconds) -> a scope on the caller's chain
   (parent: the enclosing gh.scope's, kept alive) */
static int l_scope_new(lua_State *L) {
  gh_hub *h = HUB(L);
  scope_opt(L, 1); /* the Lua parent's: anchored below */
  gh_scope *parent = hub_me(L, h)->scope; /* the chain it opens on (with_timeout's included) */
  double d = lua_isnoneornil(L, 2) ? -1 : gh_checkseconds(L, 2, "deadline");
  if (timer_reserve(&h->timers) < 0) return gh_nomem(L);
  gh_scope *sc = lua_newuserdatauv(L, sizeof *sc, 1);
  scope_init(sc, parent, d < 0 ? -1 : d >= 9.0e9 ? INT64_MAX : (int64_t)ceil(d * 1e9));
  sc->timer.fire = scope_fire;
  if (sc->deadline >= 0 && sc->deadline != INT64_MAX) {
    if (sc->deadline <= hub_clock()) sc->expired = 1; /* already past */
    else timer_start(&h->timers, &sc->timer, sc->deadline);
  }
  luaL_setmetatable(L, SCOPE_MT);
  lua_pushvalue(L, 1);
  lua_setiuservalue(L, -2, 1);
  return 1;
}

/* _scope_enter(sc [, thread]): the thread (default: the caller) now runs in sc */
static int l_scope_enter(lua_State *L) {
  gh_hub *h = HUB(L);
  gh_scope *sc = scope_check(L, 1);
  gh_thread *t = lua_isnoneornil(L, 2) ? hub_me(L, h) : thread_check(L, 2);
  t->scope = sc;
  return 0;
}

/* _scope_leave(sc) -> whether it had expired: the caller leaves sc for
   its parent */
static int l_scope_leave(lua_State *L) {
  gh_hub *h = HUB(L);
  gh_scope *sc = scope_check(L, 1);
  gh_thread *t = hub_me(L, h);
  if (t->scope != sc)
    return luaL_error(L, "greenhub: scopes closed out of order (close the inner one first)");
  t->scope = sc->parent;
  lua_pushboolean(L, scope_is_expired(sc));
  /* closed: its timer must not keep the loop (gh.run) waiting */
  if (sc->timer.idx) timer_cancel(&h->timers, &sc->timer);
  scope_wake_parked(h, sc);
  return 1;
}

static int l_scope_cancel(lua_State *L) {
  gh_scope *sc = scope_check(L, 1);
  sc->cancelled = 1;
  scope_wake_parked(HUB(L), sc); /* sticky from now on; waits on it end */
  return 0;
}

/* a scope no longer referenced: its timer goes (no wait is parked on it:
   a thread in it keeps it alive) */
static int scope_gc(lua_State *L) {
  gh_scope *sc = luaL_checkudata(L, 1, SCOPE_MT);
  lua_getfield(L, LUA_REGISTRYINDEX, HUB_KEY);
  gh_hub *h = lua_touserdata(L, -1);
  if (h && !h->closed && sc->timer.idx) timer_cancel(&h->timers, &sc->timer);
  while (!link_empty(&sc->parked)) link_remove(sc->parked.next);
  return 0;
}

/* _scope_expired(sc) -> true when it or an enclosing scope is cancelled
   or past its deadline */
static int l_scope_expired(lua_State *L) {
  lua_pushboolean(L, scope_is_expired(scope_check(L, 1)));
  return 1;
}

/* _scope_poke(thread|nil): a thread parked in a wait (nil: main) times
   out now, as if its scope's deadline had passed */
static int l_scope_poke(lua_State *L) {
  gh_hub *h = HUB(L);
  gh_thread *t = thread_or_main(L, h, 1);
  if (t == h->current) return 0;
  if (t->flags & TF_MAIN) {
    if (h->current == NULL) return 0; /* main is the caller, not waiting */
  } else if (t->state != TS_SUSPENDED) {
    return 0;
  }
  switch (t->where) {
    case TW_LIST: case TW_FD: case TW_SLEEP: case TW_FOREVER:
      t->scope_hit = 1;
      hub_wake(h, t, WK_TIMEOUT);
      break;
    default:
      break;
  }
  return 0;
}

/* ---------------------------------------------------------------- virtual clock */

/* _vclock(true|false) -> whether it was on. On: time stops at the real
   now and moves only by _vclock_set and autojump. Off: the real clock
   again, every armed timer moved by the same amount (order kept). */
static int l_vclock(lua_State *L) {
  gh_hub *h = HUB(L);
  int on = lua_toboolean(L, 1), was = hub_vclock >= 0;
  if (on && !was) {
    hub_vclock = hub_clock();
  } else if (!on && was) {
    int64_t v = hub_vclock;
    hub_vclock = -1;
    int64_t delta = hub_clock() - v;
    for (uint32_t i = 1; i <= h->timers.n; i++) h->timers.v[i]->deadline += delta;
    h->now = hub_clock();
  }
  lua_pushboolean(L, was);
  return 1;
}

/* _vclock_set(ns): move virtual time (forward only); whole nanoseconds,
   so a timer is never missed by a rounding */
static int l_vclock_set(lua_State *L) {
  lua_Integer t = luaL_checkinteger(L, 1);
  if (hub_vclock < 0) return luaL_error(L, "greenhub: the virtual clock is not on");
  if (t > hub_vclock) hub_vclock = (int64_t)t;
  HUB(L)->now = hub_vclock;
  return 0;
}

/* _vclock_now() -> the time in ns (virtual or not) */
static int l_vclock_now(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)hub_clock());
  return 1;
}

/* _next_timer() -> the earliest armed deadline in ns, or nil */
static int l_next_timer(lua_State *L) {
  gh_timer *tm = timer_peek(&HUB(L)->timers);
  if (!tm) return 0;
  lua_pushinteger(L, (lua_Integer)tm->deadline);
  return 1;
}

static const luaL_Reg scope_funcs[] = {
  {"_scope_new", l_scope_new}, {"_scope_enter", l_scope_enter},
  {"_scope_leave", l_scope_leave}, {"_scope_cancel", l_scope_cancel},
  {"_scope_expired", l_scope_expired}, {"_scope_poke", l_scope_poke},
  {"_vclock", l_vclock}, {"_vclock_set", l_vclock_set}, {"_vclock_now", l_vclock_now},
  {"_next_timer", l_next_timer},
  {NULL, NULL}
};

/* the state closes: no virtual time is left behind for another state */
void scope_close(gh_hub *h) {
  (void)h;
  hub_vclock = -1;
}

void scope_open(lua_State *L, int mod, int hub) {
  luaL_newmetatable(L, SCOPE_MT);
  lua_pushcfunction(L, scope_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  gh_setfuncs(L, mod, hub, scope_funcs);
}
