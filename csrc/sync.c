/*
 * sync.c - events, semaphores (locks) and queues.
 *
 * Waiters park on intrusive FIFO lists (TW_LIST), so a killed or timed out
 * waiter unlinks itself in O(1) and a wake-up never meets a stale entry.
 */
#include "greenhub.h"

#define EVENT_MT "greenhub.event"

typedef struct gh_event {
  gh_link waiters;         /* parked in e:wait(), FIFO */
  int set;                 /* sent and not reset */
  int nvals;               /* values kept in the user value table */
} gh_event;

static gh_event *event_check(lua_State *L, int arg) {
  return gh_check(L, arg, GH_EVENT, EVENT_MT);
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
  if (self->wake == WK_TIMEOUT) return gh_fail(L, "timeout");
  return event_values(L, lua_touserdata(L, 1));
}

static int e_wait(lua_State *L) {
  gh_event *e = event_check(L, 1);
  gh_hub *h = HUB(L);
  int64_t d = hub_deadline(L, 2);
  lua_settop(L, 1);
  if (e->set) return event_values(L, e);
  if (hub_expired(d)) return gh_fail(L, "timeout");
  gh_thread *self = hub_self(L, h, "event:wait");
  self->waitcode = WC_EVENT;
  link_push(&e->waiters, &self->link);
  self->where = TW_LIST;
  hub_anchor(L, h, self, 1);
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

/* ---------------------------------------------------------------- waits */

/* Wake the first waiter of list as the receiver of a hand-over. */
static int list_grant(gh_hub *h, gh_link *list) {
  if (link_empty(list)) return 0;
  gh_thread *t = container_of(list->next, gh_thread, link);
  hub_wake(h, t, WK_OK);
  t->granted = 1;
  return 1;
}

/* ---------------------------------------------------------------- semaphore */

#define SEM_MT "greenhub.semaphore"

/*
 * A release hands its unit straight to the longest waiter (no barging), so
 * count > 0 implies nobody waits. Bounded: releasing above the initial
 * count raises (an unheld lock).
 */
typedef struct gh_sem {
  gh_link waiters;
  lua_Integer count, max;
} gh_sem;

static int l_semaphore(lua_State *L) {
  lua_Integer n = luaL_optinteger(L, 1, 1);
  if (n < 0) return luaL_argerror(L, 1, "count must be >= 0");
  gh_sem *m = lua_newuserdatauv(L, sizeof *m, 0);
  link_init(&m->waiters);
  m->count = m->max = n;
  luaL_setmetatable(L, SEM_MT);
  return 1;
}

static gh_sem *sem_check(lua_State *L) { return gh_check(L, 1, GH_SEM, SEM_MT); }

static void sem_give(gh_hub *h, gh_sem *m) {
  if (!list_grant(h, &m->waiters)) m->count++;
}

static int sem_acquire_k(lua_State *L, int status, lua_KContext ctx) {
  gh_hub *h = HUB(L);
  gh_thread *self = hub_me(L, h);
  gh_sem *m = lua_touserdata(L, 1);
  (void)status; (void)ctx;
  if (self->wake == WK_INTR && self->granted) { self->granted = 0; sem_give(h, m); }
  hub_check_intr(L, h, self);
  if (self->wake == WK_TIMEOUT) return gh_fail(L, "timeout");
  self->granted = 0;
  lua_pushboolean(L, 1);
  return 1;
}

static int sem_acquire(lua_State *L) {
  gh_sem *m = sem_check(L);
  int64_t d = hub_deadline(L, 2);
  lua_settop(L, 1);
  if (m->count > 0) {
    m->count--;
    lua_pushboolean(L, 1);
    return 1;
  }
  if (hub_expired(d)) return gh_fail(L, "timeout");
  return hub_park_list(L, HUB(L), &m->waiters, 0, d, 0, sem_acquire_k, "acquire", WC_SEM);
}

static int sem_release(lua_State *L) {
  gh_sem *m = sem_check(L);
  if (m->count >= m->max)
    return luaL_error(L, "greenhub: release of an unheld %s",
                      m->max == 1 ? "lock" : "semaphore (released more than acquired)");
  sem_give(HUB(L), m);
  return 0;
}

static int sem_count(lua_State *L) {
  lua_pushinteger(L, sem_check(L)->count);
  return 1;
}

static int sem_locked(lua_State *L) {
  lua_pushboolean(L, sem_check(L)->count == 0);
  return 1;
}

static int sem_tostring(lua_State *L) {
  gh_sem *m = sem_check(L);
  lua_pushfstring(L, "greenhub.semaphore (%I/%I): %p", m->count, m->max, (void *)m);
  return 1;
}

/* ---------------------------------------------------------------- queue */

#define QUEUE_MT "greenhub.queue"

/*
 * Items live in a ring in the user value table (any Lua value, nil
 * included: a count, not a sentinel). A put or get wakes one waiter of the
 * other side, who re-checks when it runs; an interrupted waiter that had
 * been woken passes the wake-up on, so no item or slot is ever stranded.
 */
typedef struct gh_queue {
  gh_link getters, putters;
  lua_Integer head;        /* ring index of the oldest item (1-based) */
  lua_Integer n, cap;      /* items, ring capacity */
  lua_Integer max;         /* 0 = unbounded */
  int closed;
  int inline_ring;         /* small bounded queue: the ring is the user values */
} gh_queue;

#define QUEUE_INLINE_MAX 16 /* bounded queues up to this size keep items inline */

static gh_queue *queue_check(lua_State *L) { return gh_check(L, 1, GH_QUEUE, QUEUE_MT); }

static int l_queue(lua_State *L) {
  lua_Integer max = luaL_optinteger(L, 1, 0);
  if (max < 0) return luaL_argerror(L, 1, "maxsize must be >= 0");
  int inl = max > 0 && max <= QUEUE_INLINE_MAX;
  gh_queue *q = lua_newuserdatauv(L, sizeof *q, inl ? (int)max : 1);
  link_init(&q->getters);
  link_init(&q->putters);
  q->head = 1;
  q->n = 0;
  q->cap = inl ? max : 64;
  q->max = max;
  q->closed = 0;
  q->inline_ring = inl;
  if (!inl) {
    lua_createtable(L, (int)q->cap, 0);
    lua_setiuservalue(L, -2, 1);
  }
  luaL_setmetatable(L, QUEUE_MT);
  return 1;
}

/* Append the value at index v (queue userdata at 1). */
static void queue_push(lua_State *L, gh_queue *q, int v) {
  lua_Integer slot = (q->head - 1 + q->n) % q->cap + 1;
  if (q->inline_ring) { /* never full here: put checked max == cap */
    lua_pushvalue(L, v);
    lua_setiuservalue(L, 1, (int)slot);
    q->n++;
    return;
  }
  lua_getiuservalue(L, 1, 1);
  int t = lua_gettop(L);
  if (q->n == q->cap) { /* grow: unroll the ring into a bigger one */
    lua_Integer cap = q->cap * 2;
    lua_createtable(L, (int)cap, 0);
    for (lua_Integer i = 0; i < q->n; i++) {
      lua_rawgeti(L, t, (q->head - 1 + i) % q->cap + 1);
      lua_rawseti(L, -2, i + 1);
    }
    lua_pushvalue(L, -1);
    lua_setiuservalue(L, 1, 1);
    lua_replace(L, t);
    q->head = 1;
    q->cap = cap;
    slot = q->n + 1;
  }
  lua_pushvalue(L, v);
  lua_rawseti(L, t, slot);
  q->n++;
  lua_pop(L, 1);
}

/* Pop the oldest value onto the stack. */
static void queue_pop(lua_State *L, gh_queue *q) {
  if (q->inline_ring) {
    lua_getiuservalue(L, 1, (int)q->head);
    lua_pushnil(L);
    lua_setiuservalue(L, 1, (int)q->head); /* do not keep it alive */
  } else {
    lua_getiuservalue(L, 1, 1);
    lua_rawgeti(L, -1, q->head);
    lua_pushnil(L);
    lua_rawseti(L, -3, q->head);
    lua_remove(L, -2);
  }
  q->head = q->head % q->cap + 1;
  q->n--;
}

static int queue_put_k(lua_State *L, int status, lua_KContext ctx);

/* Stack: queue, value. */
static int queue_put_step(lua_State *L, gh_hub *h, gh_queue *q, int64_t d, int front) {
  if (q->closed) return luaL_error(L, "greenhub: put on a closed queue");
  if (q->max == 0 || q->n < q->max) {
    queue_push(L, q, 2);
    list_grant(h, &q->getters);
    lua_pushboolean(L, 1);
    return 1;
  }
  if (hub_expired(d)) return gh_fail(L, "timeout");
  return hub_park_list(L, h, &q->putters, front, d, (lua_KContext)d, queue_put_k, "put", WC_QPUT);
}

static int queue_put_k(lua_State *L, int status, lua_KContext ctx) {
  gh_hub *h = HUB(L);
  gh_thread *self = hub_me(L, h);
  gh_queue *q = lua_touserdata(L, 1);
  (void)status;
  if (self->wake == WK_INTR && self->granted) list_grant(h, &q->putters);
  hub_check_intr(L, h, self);
  if (self->wake == WK_TIMEOUT) return gh_fail(L, "timeout");
  return queue_put_step(L, h, q, (int64_t)ctx, 1);
}

static int queue_put(lua_State *L) {
  gh_hub *h = HUB(L);
  gh_queue *q = gh_checkh(L, h, 1, GH_QUEUE, QUEUE_MT);
  luaL_checkany(L, 2);
  int64_t d = lua_isnoneornil(L, 3) ? -1 : hub_deadline(L, 3);
  lua_settop(L, 2);
  return queue_put_step(L, h, q, d, 0);
}

static int queue_get_k(lua_State *L, int status, lua_KContext ctx);

static int queue_get_step(lua_State *L, gh_hub *h, gh_queue *q, int64_t d, int front) {
  if (q->n > 0) {
    queue_pop(L, q);
    list_grant(h, &q->putters);
    return 1;
  }
  if (q->closed) {
    lua_pushnil(L);
    lua_pushliteral(L, "closed");
    return 2;
  }
  if (hub_expired(d)) return gh_fail(L, "timeout");
  return hub_park_list(L, h, &q->getters, front, d, (lua_KContext)d, queue_get_k, "get", WC_QGET);
}

static int queue_get_k(lua_State *L, int status, lua_KContext ctx) {
  gh_hub *h = HUB(L);
  gh_thread *self = hub_me(L, h);
  gh_queue *q = lua_touserdata(L, 1);
  (void)status;
  if (self->wake == WK_INTR && self->granted && q->n > 0) list_grant(h, &q->getters);
  hub_check_intr(L, h, self);
  if (self->wake == WK_TIMEOUT) return gh_fail(L, "timeout");
  return queue_get_step(L, h, q, (int64_t)ctx, 1);
}

static int queue_get(lua_State *L) {
  gh_hub *h = HUB(L);
  gh_queue *q = gh_checkh(L, h, 1, GH_QUEUE, QUEUE_MT);
  int64_t d = lua_isnoneornil(L, 2) ? -1 : hub_deadline(L, 2);
  lua_settop(L, 1);
  return queue_get_step(L, h, q, d, 0);
}

static int queue_close(lua_State *L) {
  gh_queue *q = queue_check(L);
  gh_hub *h = HUB(L);
  q->closed = 1;
  while (list_grant(h, &q->getters)) {}
  while (list_grant(h, &q->putters)) {}
  return 0;
}

static int queue_size(lua_State *L) {
  lua_pushinteger(L, queue_check(L)->n);
  return 1;
}

static int queue_closed(lua_State *L) {
  lua_pushboolean(L, queue_check(L)->closed);
  return 1;
}

static int queue_tostring(lua_State *L) {
  gh_queue *q = queue_check(L);
  lua_pushfstring(L, "greenhub.queue (%I items%s): %p", q->n, q->closed ? ", closed" : "", (void *)q);
  return 1;
}

static const luaL_Reg sem_methods[] = {
  {"acquire", sem_acquire}, {"release", sem_release}, {"count", sem_count},
  {"locked", sem_locked}, {NULL, NULL}
};

static const luaL_Reg queue_methods[] = {
  {"put", queue_put}, {"get", queue_get}, {"size", queue_size},
  {"close", queue_close}, {"closed", queue_closed}, {NULL, NULL}
};

static const luaL_Reg event_methods[] = {
  {"send", e_send}, {"wait", e_wait}, {"ready", e_ready}, {"reset", e_reset},
  {NULL, NULL}
};

static const luaL_Reg sync_funcs[] = {
  {"event", l_event}, {"semaphore", l_semaphore}, {"queue", l_queue},
  {NULL, NULL}
};

void sync_open(lua_State *L, int mod, int hub) {
  gh_new_class(L, hub, GH_EVENT, EVENT_MT, event_methods, e_tostring);
  gh_new_class(L, hub, GH_SEM, SEM_MT, sem_methods, sem_tostring);
  gh_new_class(L, hub, GH_QUEUE, QUEUE_MT, queue_methods, queue_tostring);
  lua_pop(L, 3);
  gh_setfuncs(L, mod, hub, sync_funcs);
}
