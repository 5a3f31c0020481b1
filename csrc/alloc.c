/*
 * alloc.c - a small-object allocator for the Lua state greenhub runs in.
 *
 * A server allocates a few small blocks per request (tables and their node
 * arrays, short strings) and Lua's collector frees them in bursts. glibc's
 * malloc handles that pattern badly: the burst overflows its per-thread
 * cache, and the next allocations sort the freed chunks out of its
 * unsorted bin one by one (measured: _int_malloc was the hottest symbol of
 * http.serve outside the kernel). LuaJIT, and so OpenResty, allocate from
 * an allocator of their own for the same reason.
 *
 * Blocks of up to GA_MAX bytes come from size classes 16 bytes apart, each
 * a free list over memory taken in 256 KiB slabs from one address range
 * reserved at start (so "is this block ours" is a range check). Larger
 * blocks, blocks the state had before, and everything once the range is
 * used up go to the allocator the state had (Lua passes a block's size on
 * every free and resize, so no header is needed). Memory in free lists is
 * kept for reuse, not returned to the system.
 *
 * Installed by luaopen_greenhub_core when the state uses the standard
 * allocator (lauxlib's, what luaL_newstate gives), never over a host's own
 * (an embedding application may count or limit memory there), and not with
 * GREENHUB_ALLOC=system in the environment (the spec runner sets it under
 * valgrind) nor in an AddressSanitizer build: those checkers see malloc's
 * blocks only, and every Lua object must stay one for them.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <lauxlib.h>

#include "greenhub.h"

#define GA_MAX 512                      /* the largest block served here */
#define GA_CLASSES (GA_MAX / 16)
#define GA_SLAB (256 * 1024)            /* taken from the range at a time */
#define GA_RANGE ((size_t)16 << 30)     /* address space reserved (not memory) */

typedef struct ga_free { struct ga_free *next; } ga_free;

typedef struct {
  lua_Alloc old;         /* the state's allocator before */
  void *old_ud;
  char *base, *end;      /* the reserved range */
  char *top, *limit;     /* bump pointer within the current slab; committed limit */
  ga_free *free[GA_CLASSES];
} ga_state;

static inline size_t ga_class(size_t n) { return (n - 1) >> 4; } /* n in 1..GA_MAX */

static inline int ga_ours(const ga_state *g, const void *p) {
  return (const char *)p >= g->base && (const char *)p < g->end;
}

/* a block of class c, or NULL when the range is used up */
static void *ga_take(ga_state *g, size_t c) {
  ga_free *f = g->free[c];
  size_t size = (c + 1) << 4;
  if (f) {
    g->free[c] = f->next;
    return f;
  }
  if ((size_t)(g->limit - g->top) < size) {
    if ((size_t)(g->end - g->limit) < GA_SLAB) return NULL;
    /* the slab's unused tail goes to the free lists of the sizes it fits */
    while ((size_t)(g->limit - g->top) >= 16) {
      size_t rest = (size_t)(g->limit - g->top), k = ga_class(rest > GA_MAX ? GA_MAX : rest & ~(size_t)15);
      ga_free *t = (ga_free *)g->top;
      t->next = g->free[k];
      g->free[k] = t;
      g->top += (k + 1) << 4;
    }
    if (mprotect(g->limit, GA_SLAB, PROT_READ | PROT_WRITE) != 0) return NULL;
    g->top = g->limit;
    g->limit += GA_SLAB;
  }
  void *p = g->top;
  g->top += size;
  return p;
}

static void ga_give(ga_state *g, void *p, size_t n) {
  size_t c = ga_class(n);
  ga_free *f = p;
  f->next = g->free[c];
  g->free[c] = f;
}

static void *ga_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  ga_state *g = ud;
  if (ptr == NULL) { /* osize is the kind of object then, not a size */
    if (nsize == 0) return NULL;
    if (nsize <= GA_MAX) {
      void *p = ga_take(g, ga_class(nsize));
      if (p) return p;
    }
    return g->old(g->old_ud, NULL, osize, nsize);
  }
  if (!ga_ours(g, ptr)) {
    if (nsize == 0 || nsize > GA_MAX) return g->old(g->old_ud, ptr, osize, nsize);
    /* a small block the state had before: moved here when it changes */
    void *p = ga_take(g, ga_class(nsize));
    if (!p) return g->old(g->old_ud, ptr, osize, nsize);
    memcpy(p, ptr, osize < nsize ? osize : nsize);
    g->old(g->old_ud, ptr, osize, 0);
    return p;
  }
  if (nsize == 0) {
    ga_give(g, ptr, osize);
    return NULL;
  }
  if (nsize <= GA_MAX && ga_class(nsize) == ga_class(osize)) return ptr;
  void *p = nsize <= GA_MAX ? ga_take(g, ga_class(nsize)) : NULL;
  if (!p) p = g->old(g->old_ud, NULL, LUA_TNONE, nsize);
  if (!p) return NULL; /* Lua keeps the old block */
  memcpy(p, ptr, osize < nsize ? osize : nsize);
  ga_give(g, ptr, osize);
  return p;
}

/* Put the allocator on L's state (see the top of this file). */
void alloc_install(lua_State *L) {
#if defined(__SANITIZE_ADDRESS__)
  (void)L;
  return;
#else
  void *ud;
  lua_Alloc cur = lua_getallocf(L, &ud);
  if (cur == ga_alloc) return;
  const char *env = getenv("GREENHUB_ALLOC");
  if (env && strcmp(env, "system") == 0) return;
  lua_State *probe = luaL_newstate(); /* what the standard allocator is */
  if (!probe) return;
  void *pud;
  lua_Alloc std = lua_getallocf(probe, &pud);
  lua_close(probe);
  if (cur != std) return;
  char *base = mmap(NULL, GA_RANGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (base == MAP_FAILED) return;
  if (mprotect(base, GA_SLAB, PROT_READ | PROT_WRITE) != 0) { munmap(base, GA_RANGE); return; }
  /* the allocator's own state lives at the start of its range: nothing
     of it is malloc's (the state may be closed, never this range) */
  ga_state *g = (ga_state *)(void *)base;
  memset(g, 0, sizeof *g);
  g->old = cur;
  g->old_ud = ud;
  g->base = base;
  g->end = base + GA_RANGE;
  g->top = base + ((sizeof *g + 15) & ~(size_t)15);
  g->limit = base + GA_SLAB;
  lua_setallocf(L, ga_alloc, g);
#endif
}

/* core._allocator() -> "greenhub" (this file's) | "system" (the state's own) */
int l_allocator(lua_State *L) {
  void *ud;
  lua_pushstring(L, lua_getallocf(L, &ud) == ga_alloc ? "greenhub" : "system");
  return 1;
}
