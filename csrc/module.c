/*
 * module.c - luaopen_greenhub_core: creates (or finds) this state's hub and
 * builds the module table from each part's *_open. The only exported symbol.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "greenhub.h"

/* The parts of the module: each opens its functions into the module table
   and closes what it holds when the state closes (in reverse order). */
static const struct {
  void (*open)(lua_State *L, int mod, int hub);
  void (*close)(gh_hub *h);
} parts[] = {
  {thread_open, NULL}, {timeout_open, NULL}, {scope_open, scope_close}, {socket_open, NULL}, {sync_open, NULL},
  {diag_open, diag_close}, {proc_open, proc_close}, {websocket_open, NULL}, {fs_open, NULL}, {tpool_open, NULL}, {NULL, resolver_close},
};
#define NPARTS (sizeof parts / sizeof parts[0])

static int hub_gc(lua_State *L) {
  gh_hub *h = luaL_checkudata(L, 1, HUB_MT);
  if (h->closed) return 0;
  h->closed = 1;
  for (size_t i = NPARTS; i-- > 0;)
    if (parts[i].close) parts[i].close(h);
  poller_close(&h->poller);
  timer_free(&h->timers);
  free(h->fds);
  h->fds = NULL;
  h->nfds = 0;
  return 0;
}

static int killed_tostring(lua_State *L) {
  lua_pushliteral(L, "greenhub.Killed");
  return 1;
}

/* Push a new table with weak keys. */
static void new_weak_table(lua_State *L) {
  lua_newtable(L);
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "k");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
}

/* Push this state's hub, creating it on first use. Returns its index. */
int hub_open(lua_State *L) {
  if (lua_getfield(L, LUA_REGISTRYINDEX, HUB_KEY) == LUA_TUSERDATA)
    return lua_gettop(L);
  lua_pop(L, 1);
  gh_hub *h = lua_newuserdatauv(L, sizeof *h, 0);
  memset(h, 0, sizeof *h);
  h->poller.fd = -1;
  link_init(&h->sources);
  h->closed = 1; /* until fully built: __gc must not touch half a hub */
  luaL_newmetatable(L, HUB_MT);
  lua_pushcfunction(L, hub_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  if (poller_open(&h->poller) < 0)
    luaL_error(L, "greenhub: cannot open the %s poller: %s", poller_backend(&h->poller), strerror(errno));
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
  h->mainL = lua_tothread(L, -1);
  lua_pop(L, 1);
  link_init(&h->runq);
  link_init(&h->flushq);
  link_init(&h->main.link);
  link_init(&h->main.joiners);
  h->main.flags = TF_MAIN;
  h->main.state = TS_RUNNING;
  h->main.hub = h;
  h->main.ref = LUA_NOREF;
  h->main.timer.fire = thread_timer_fire;
  h->onerror_ref = LUA_NOREF;
  h->main_intr_ref = LUA_NOREF;
  lua_newtable(L);
  h->threads_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_newtable(L);
  h->links_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_newtable(L);
  h->pool_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  new_weak_table(L);                      /* coroutine -> its resumer */
  h->wrapped_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  new_weak_table(L);                      /* coroutine -> error */
  h->bare_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  new_weak_table(L);                      /* thread -> name */
  h->names_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  h->thread_mt_ref = LUA_NOREF;
  lua_newtable(L);                        /* the Killed sentinel */
  lua_newtable(L);
  lua_pushcfunction(L, killed_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pushliteral(L, "greenhub.Killed");
  lua_setfield(L, -2, "__name");
  lua_setmetatable(L, -2);
  h->killed_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  hub_fork_init(h);
  h->closed = 0;
  lua_pushvalue(L, -1);
  lua_setfield(L, LUA_REGISTRYINDEX, HUB_KEY);
  /* a write to a dead peer must be an error return, never a signal */
  signal(SIGPIPE, SIG_IGN);
  return lua_gettop(L);
}

/*
 * Keep this library mapped for the life of the process: resolver workers
 * are detached and may still be inside getaddrinfo when lua_close unloads
 * C modules, and they return into this code.
 */
static void pin_library(void) {
  static int pinned;
  Dl_info info;
  if (pinned || !dladdr((void *)pin_library, &info) || !info.dli_fname) return;
  if (dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE)) pinned = 1;
}

static const gh_capi capi = {
  GH_CAPI_VERSION, sizeof(gh_hub), sizeof(gh_thread),
  hub_get, hub_self, hub_wait_fd, hub_park_list, hub_wake, hub_check_intr,
  hub_fd_forget, hub_fd_interest, hub_clock, hub_after, hub_deadline,
  gh_fail, work_run,
};

GH_EXPORT int luaopen_greenhub_core(lua_State *L) {
  pin_library();
  lua_newtable(L);
  int mod = lua_gettop(L);
  int hub = hub_open(L);
  for (size_t i = 0; i < NPARTS; i++)
    if (parts[i].open) parts[i].open(L, mod, hub);
  gh_hub *h = lua_touserdata(L, hub);
  lua_rawgeti(L, LUA_REGISTRYINDEX, h->killed_ref);
  lua_setfield(L, mod, "Killed");
  lua_pushliteral(L, "greenhub 0.1");
  lua_setfield(L, mod, "_VERSION");
  lua_pushlightuserdata(L, (void *)&capi);
  lua_setfield(L, mod, "_capi");
  lua_settop(L, mod);
  return 1;
}
