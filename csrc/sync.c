/*
 * sync.c - events: one-shot hand-over of values to any number of waiters.
 *
 * Waiters park on an intrusive FIFO list (TW_LIST), so a killed or timed
 * out waiter unlinks itself in O(1) and a send never meets a stale entry.
 */
#include "greenhub.h"

#define EVENT_MT "greenhub.event"

typedef struct gh_event {
  gh_link waiters;         /* parked in e:wait(), FIFO */
  int set;                 /* sent and not reset */
  int nvals;               /* values kept in the user value table */
} gh_event;

static gh_event *event_check(lua_State *L, int arg) {
  return luaL_checkudata(L, arg, EVENT_MT);
}

static int l_event(lua_State *L) {
  gh_event *e = lua_newuserdatauv(L, sizeof *e, 1);
  link_init(&e->waiters);
  e->set = 0;
  e->nvals = 0;
  luaL_setmetatable(L, EVENT_MT);
  return 1;
}

static int event_values(lua_State *L, gh_event *e) {
  luaL_checkstack(L, e->nvals + 1, "too many values");
  lua_getiuservalue(L, 1, 1);
  int t = lua_gettop(L);
  for (int i = 1; i <= e->nvals; i++) lua_rawgeti(L, t, i);
  return e->nvals;
}

static int e_send(lua_State *L) {
  gh_event *e = event_check(L, 1);
  gh_hub *h = HUB(L);
  if (e->set) return luaL_error(L, "greenhub: event already sent (reset() it first)");
  int n = lua_gettop(L) - 1;
  lua_createtable(L, n, 0);
  for (int i = 1; i <= n; i++) {
    lua_pushvalue(L, i + 1);
    lua_rawseti(L, -2, i);
  }
  lua_setiuservalue(L, 1, 1);
  e->nvals = n;
  e->set = 1;
  while (!link_empty(&e->waiters))
    hub_wake(h, container_of(e->waiters.next, gh_thread, link), WK_OK);
  return 0;
}

static int e_wait_k(lua_State *L, int status, lua_KContext ctx) {
  gh_hub *h = HUB(L);
  gh_thread *self = hub_me(L, h);
  (void)status; (void)ctx;
  hub_check_intr(L, h, self);
  if (self->wake == WK_TIMEOUT) {
    lua_pushnil(L);
    lua_pushliteral(L, "timeout");
    return 2;
  }
  return event_values(L, lua_touserdata(L, 1));
}

static int e_wait(lua_State *L) {
  gh_event *e = event_check(L, 1);
  gh_hub *h = HUB(L);
  int64_t d = hub_deadline(L, 2);
  lua_settop(L, 1);
  if (e->set) return event_values(L, e);
  if (d >= 0 && d <= hub_clock()) {
    lua_pushnil(L);
    lua_pushliteral(L, "timeout");
    return 2;
  }
  gh_thread *self = hub_self(L, h, "event:wait");
  link_push(&e->waiters, &self->link);
  self->where = TW_LIST;
  return hub_park(L, h, self, d, 0, e_wait_k);
}

static int e_ready(lua_State *L) {
  lua_pushboolean(L, event_check(L, 1)->set);
  return 1;
}

static int e_reset(lua_State *L) {
  event_check(L, 1)->set = 0;
  return 0;
}

static int e_tostring(lua_State *L) {
  gh_event *e = event_check(L, 1);
  lua_pushfstring(L, "greenhub.event (%s): %p", e->set ? "set" : "clear", (void *)e);
  return 1;
}

static const luaL_Reg event_methods[] = {
  {"send", e_send}, {"wait", e_wait}, {"ready", e_ready}, {"reset", e_reset},
  {NULL, NULL}
};

static const luaL_Reg sync_funcs[] = {
  {"event", l_event}, {NULL, NULL}
};

void sync_open(lua_State *L, int mod, int hub) {
  luaL_newmetatable(L, EVENT_MT);
  int mt = lua_gettop(L);
  lua_newtable(L);
  gh_setfuncs(L, lua_gettop(L), hub, event_methods);
  lua_setfield(L, mt, "__index");
  lua_pushcfunction(L, e_tostring);
  lua_setfield(L, mt, "__tostring");
  lua_pop(L, 1);
  gh_setfuncs(L, mod, hub, sync_funcs);
}
