/*
 * timeout.c - the timers behind gh.with_timeout.
 *
 * A token is armed on the calling thread; when it fires, the token itself
 * is raised inside that thread at its blocking point, so with_timeout can
 * tell its own timeout from any other error (nested timeouts stay apart).
 * The token is also a light gh.scope in the thread's chain while f runs:
 * once its deadline passed, f's waits fail at once.
 */
#include <math.h>

#include "greenhub.h"

typedef struct gh_timeout {
  gh_timer timer;
  gh_hub *hub;
  gh_thread *target;       /* anchored by the token's user value */
  int ref;                 /* registry anchor while armed */
  uint64_t seq;            /* arming order: outer timeouts are older */
  gh_scope scope;          /* a light scope in target's chain while it
                              runs f: once the deadline passed, f's waits
                              fail at once (sticky); no timer of its own */
  int entered;
} gh_timeout;

static uint64_t timeout_seq;

static void timeout_fire(gh_hub *h, gh_timer *tm) {
  gh_timeout *to = container_of(tm, gh_timeout, timer);
  lua_State *L = h->mainL;    /* the loop only ever runs on main */
  gh_thread *t = to->target;
  lua_rawgeti(L, LUA_REGISTRYINDEX, to->ref);
  luaL_unref(L, LUA_REGISTRYINDEX, to->ref);
  to->ref = LUA_NOREF;
  if (t->state == TS_DEAD || t->state == TS_PENDING) { lua_pop(L, 1); return; }
  /* an interrupt already waiting to be raised (this same turn) wins when
     it is a kill, or an older, so enclosing, timeout: raising the outer
     token unwinds the inner with_timeout too, and nothing is lost */
  if (hub_pending_intr(h, L, t)) {
    gh_timeout *p = luaL_testudata(L, -1, TIMEOUT_MT);
    int keep = !p || p->seq < to->seq;
    lua_pop(L, 1);
    if (keep) { lua_pop(L, 1); return; }
  }
  hub_interrupt(h, L, t);
}

/* timeout_start(seconds) -> token, armed on the calling thread (and its light scope entered) */
static int l_timeout_start(lua_State *L) {
  gh_hub *h = HUB(L);
  double s = gh_checkseconds(L, 1, "seconds");
  gh_thread *self = hub_self(L, h, "with_timeout");
  gh_timeout *to = lua_newuserdatauv(L, sizeof *to, 1);
  to->timer.idx = 0;
  to->timer.fire = timeout_fire;
  to->hub = h;
  to->target = self;
  to->ref = LUA_NOREF;
  to->seq = ++timeout_seq;
  luaL_setmetatable(L, TIMEOUT_MT);
  if (!(self->flags & TF_MAIN)) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, h->threads_ref);
    lua_rawgeti(L, -1, self->ref);
    lua_setiuservalue(L, -3, 1);
    lua_pop(L, 1);
  }
  to->entered = 0;
  if (s != HUGE_VAL) {
    lua_pushvalue(L, -1);
    to->ref = luaL_ref(L, LUA_REGISTRYINDEX);
    timer_start(&h->timers, &to->timer, hub_after(s));
    scope_init(&to->scope, self->scope, to->timer.deadline);
    to->scope.light = 1;
    self->scope = &to->scope;
    to->entered = 1;
  }
  return 1;
}

/* timeout_cancel(token) -> whether its deadline had passed */
static int l_timeout_cancel(lua_State *L) {
  gh_timeout *to = luaL_checkudata(L, 1, TIMEOUT_MT);
  gh_hub *h = to->hub;
  timer_cancel(&h->timers, &to->timer);
  luaL_unref(L, LUA_REGISTRYINDEX, to->ref);
  to->ref = LUA_NOREF;
  /* a token that already fired was raised in its target before the target
     could run again (every loop-running call checks), so nothing to undo */
  int expired = to->entered && to->scope.deadline <= hub_clock();
  if (to->entered) {
    to->entered = 0;
    gh_thread *t = to->target;
    if (t->scope == &to->scope) {
      t->scope = to->scope.parent;
    } else {
      /* a scope f opened is still open above it: stay in the chain,
         harmless (no deadline), and alive as long as the process */
      to->scope.light = 0;
      to->scope.deadline = -1;
      lua_pushvalue(L, 1);
      luaL_ref(L, LUA_REGISTRYINDEX);
    }
  }
  lua_pushboolean(L, expired);
  return 1;
}

static int timeout_tostring(lua_State *L) {
  lua_pushliteral(L, "timeout");
  return 1;
}

static const luaL_Reg timeout_funcs[] = {
  {"timeout_start", l_timeout_start}, {"timeout_cancel", l_timeout_cancel},
  {NULL, NULL}
};

void timeout_open(lua_State *L, int mod, int hub) {
  luaL_newmetatable(L, TIMEOUT_MT);
  lua_pushcfunction(L, timeout_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);
  gh_setfuncs(L, mod, hub, timeout_funcs);
}
