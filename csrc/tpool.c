/*
 * tpool.c - gh.tpool.call(modname, funcname, ...): Lua work on other cores.
 * Each worker of the pool's Lua role (resolver.c's work_run) keeps a
 * lua_State of its own for its life (modules stay loaded between calls).
 * Arguments and results cross as deep copies: nil, booleans, numbers,
 * strings and tables of those; anything else raises in the caller. An
 * error raised in the worker is raised in the caller with its message.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "greenhub.h"
#include "lualib.h"

/* ---------------------------------------------------------------- copies */

typedef struct { char *p; size_t n, cap; int oom; } tp_buf;

static void put(tp_buf *b, const void *src, size_t n) {
  if (b->oom) return;
  if (b->n + n > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + n) cap *= 2;
    char *np = realloc(b->p, cap);
    if (!np) { b->oom = 1; return; }
    b->p = np;
    b->cap = cap;
  }
  memcpy(b->p + b->n, src, n);
  b->n += n;
}

#define MAX_DEPTH 100

/* Append the value at idx; raises (in L) for what cannot be copied. */
static void encode(lua_State *L, int idx, tp_buf *b, int depth) {
  idx = lua_absindex(L, idx);
  char tag;
  switch (lua_type(L, idx)) {
    case LUA_TNIL: tag = 'z'; put(b, &tag, 1); break;
    case LUA_TBOOLEAN: tag = lua_toboolean(L, idx) ? 't' : 'f'; put(b, &tag, 1); break;
    case LUA_TNUMBER:
      if (lua_isinteger(L, idx)) {
        lua_Integer i = lua_tointeger(L, idx);
        tag = 'i'; put(b, &tag, 1); put(b, &i, sizeof i);
      } else {
        lua_Number d = lua_tonumber(L, idx);
        tag = 'd'; put(b, &tag, 1); put(b, &d, sizeof d);
      }
      break;
    case LUA_TSTRING: {
      size_t len;
      const char *s = lua_tolstring(L, idx, &len);
      tag = 's'; put(b, &tag, 1); put(b, &len, sizeof len); put(b, s, len);
      break;
    }
    case LUA_TTABLE:
      if (depth >= MAX_DEPTH) luaL_error(L, "greenhub: cannot copy a table nested over %d deep (or cyclic)", MAX_DEPTH);
      luaL_checkstack(L, 3, "table to copy");
      tag = 'T'; put(b, &tag, 1);
      lua_pushnil(L);
      while (lua_next(L, idx)) {
        encode(L, -2, b, depth + 1);
        encode(L, -1, b, depth + 1);
        lua_pop(L, 1);
      }
      tag = 'e'; put(b, &tag, 1);
      break;
    default:
      luaL_error(L, "greenhub: cannot copy a %s to or from a tpool thread", luaL_typename(L, idx));
  }
  if (b->oom) luaL_error(L, "greenhub: out of memory");
}

/* Push the value at *pp (advancing it); raises on a malformed buffer. */
static void decode(lua_State *L, const char **pp, const char *end) {
  const char *p = *pp;
  luaL_checkstack(L, 3, "copied values");
  if (p >= end) luaL_error(L, "greenhub: tpool copy truncated");
  char tag = *p++;
  switch (tag) {
    case 'z': lua_pushnil(L); break;
    case 't': lua_pushboolean(L, 1); break;
    case 'f': lua_pushboolean(L, 0); break;
    case 'i': { lua_Integer i; memcpy(&i, p, sizeof i); p += sizeof i; lua_pushinteger(L, i); break; }
    case 'd': { lua_Number d; memcpy(&d, p, sizeof d); p += sizeof d; lua_pushnumber(L, d); break; }
    case 's': {
      size_t len;
      memcpy(&len, p, sizeof len);
      p += sizeof len;
      lua_pushlstring(L, p, len);
      p += len;
      break;
    }
    case 'T':
      lua_newtable(L);
      while (p < end && *p != 'e') {
        decode(L, &p, end);
        decode(L, &p, end);
        lua_rawset(L, -3);
      }
      p++;
      break;
    default: luaL_error(L, "greenhub: tpool copy corrupt");
  }
  *pp = p;
}

/* ---------------------------------------------------------------- jobs */

typedef struct tp_job {
  char *mod, *fn, *path, *cpath;
  tp_buf in, out;          /* the arguments; the results or the error */
  int nargs, nres, failed;
} tp_job;

static void tp_free(void *arg) {
  tp_job *j = arg;
  free(j->mod); free(j->fn); free(j->path); free(j->cpath);
  free(j->in.p); free(j->out.p);
  free(j);
}

static pthread_key_t state_key;
static pthread_once_t state_once = PTHREAD_ONCE_INIT;
static void state_close(void *S) { lua_close(S); }
static void state_key_make(void) { pthread_key_create(&state_key, state_close); }

/* In the worker's state: require(mod)[fn](args...), results encoded. */
static int tp_call(lua_State *S) {
  tp_job *j = lua_touserdata(S, 1);
  lua_getglobal(S, "require");
  lua_pushstring(S, j->mod);
  lua_call(S, 1, 1);
  if (lua_type(S, -1) != LUA_TTABLE) luaL_error(S, "module '%s' is not a table", j->mod);
  lua_getfield(S, -1, j->fn);
  if (lua_type(S, -1) != LUA_TFUNCTION) luaL_error(S, "module '%s' has no function '%s'", j->mod, j->fn);
  int base = lua_gettop(S);
  const char *p = j->in.p, *end = j->in.p + j->in.n;
  for (int i = 0; i < j->nargs; i++) decode(S, &p, end);
  lua_call(S, j->nargs, LUA_MULTRET);
  int n = lua_gettop(S) - base + 1;
  for (int i = 0; i < n; i++) encode(S, base + i, &j->out, 0);
  j->nres = n;
  return 0;
}

/* on a worker thread of the Lua role */
static void tp_run(void *arg) {
  tp_job *j = arg;
  pthread_once(&state_once, state_key_make);
  lua_State *S = pthread_getspecific(state_key);
  if (!S) {
    S = luaL_newstate();
    if (!S) { j->failed = 1; put(&j->out, "not enough memory", 17); return; }
    luaL_openlibs(S);
    lua_getglobal(S, "package");
    lua_pushstring(S, j->path);
    lua_setfield(S, -2, "path");
    lua_pushstring(S, j->cpath);
    lua_setfield(S, -2, "cpath");
    lua_pop(S, 1);
    pthread_setspecific(state_key, S);
  }
  lua_settop(S, 0);
  lua_pushcfunction(S, tp_call);
  lua_pushlightuserdata(S, j);
  if (lua_pcall(S, 1, 0, 0) != LUA_OK) {
    size_t len;
    const char *msg = lua_type(S, -1) == LUA_TSTRING ? lua_tolstring(S, -1, &len) : NULL;
    if (!msg) { msg = "(error object is not a string)"; len = strlen(msg); }
    j->out.n = 0;
    j->out.oom = 0;
    j->failed = 1;
    put(&j->out, msg, len);
  }
  lua_settop(S, 0);
  lua_gc(S, LUA_GCSTEP, 0);
}

static int tp_done(lua_State *L, int status, lua_KContext ctx) {
  tp_job *j = (tp_job *)ctx;
  (void)status;
  if (j->failed) {
    lua_pushlstring(L, j->out.p ? j->out.p : "", j->out.n);
    tp_free(j);
    return lua_error(L);
  }
  lua_settop(L, 0);
  luaL_checkstack(L, j->nres + 1, "too many results");
  const char *p = j->out.p, *end = j->out.p + j->out.n;
  for (int i = 0; i < j->nres; i++) decode(L, &p, end);
  int n = j->nres;
  tp_free(j);
  return n;
}

static int encode_all(lua_State *L) {
  tp_buf *b = lua_touserdata(L, 1);
  for (int i = 2; i <= lua_gettop(L); i++) encode(L, i, b, 0);
  return 0;
}

static char *field(lua_State *L, const char *name) {
  lua_getglobal(L, "package");
  lua_getfield(L, -1, name);
  const char *s = lua_tostring(L, -1);
  char *c = strdup(s ? s : "");
  lua_pop(L, 2);
  return c;
}

/* _tpool_call(modname, funcname, ...) -> its results */
static int l_call(lua_State *L) {
  const char *mod = luaL_checkstring(L, 1);
  const char *fn = luaL_checkstring(L, 2);
  hub_self(L, HUB(L), "tpool.call"); /* raises where it cannot wait */
  int nargs = lua_gettop(L) - 2;
  /* the copy may raise (a function deep in a table): protected, so the
     buffer is freed */
  tp_buf in = {0};
  lua_pushcfunction(L, encode_all);
  lua_pushlightuserdata(L, &in);
  for (int i = 0; i < nargs; i++) lua_pushvalue(L, 3 + i);
  if (lua_pcall(L, nargs + 1, 0, 0) != LUA_OK) {
    free(in.p);
    return lua_error(L);
  }
  tp_job *j = calloc(1, sizeof *j);
  if (!j) { free(in.p); return gh_nomem(L); }
  j->in = in;
  j->nargs = nargs;
  j->mod = strdup(mod);
  j->fn = strdup(fn);
  j->path = field(L, "path");
  j->cpath = field(L, "cpath");
  if (!j->mod || !j->fn || !j->path || !j->cpath) { tp_free(j); return gh_nomem(L); }
  return work_run(L, HUB(L), 1, tp_run, tp_free, j, (lua_KContext)j, tp_done);
}

static const luaL_Reg tp_funcs[] = {
  {"_tpool_call", l_call}, {"_tpool_size", work_lua_size},
  {NULL, NULL}
};

void tpool_open(lua_State *L, int mod, int hub) {
  gh_setfuncs(L, mod, hub, tp_funcs);
}
