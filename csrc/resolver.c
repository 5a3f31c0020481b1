/*
 * resolver.c - name resolution that never blocks the hub.
 *
 * Numeric addresses are converted inline. Names go to a small pool of
 * worker threads running getaddrinfo; a finished job is handed back through
 * an eventfd (a pipe in portable mode), an event source of the hub. The workers touch only the job
 * queues (under the pool mutex), never Lua or the hub.
 */
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "greenhub.h"
#include "compat.h"

#define MAX_WORKERS 4      /* workers serving live lookups */
#define HARD_WORKERS 64    /* ... plus those stuck in abandoned ones */
#define MAX_HOOKS 8

typedef struct gh_job {
  struct gh_job *next;
  struct gh_job *next_inflight; /* in the pool's inflight list (mutex) */
  gh_link waiters;         /* the parked caller (empty once it gave up) */
  char *host, *serv;
  struct addrinfo hints;
  struct addrinfo *res;
  int err;                 /* getaddrinfo's result */
  int abandoned;           /* caller gone: whoever finishes frees (mutex) */
  int running;             /* a worker has it (mutex) */
  int done;
  lua_KFunction k;         /* the caller's continuation */
  lua_KContext ctx;
  int role;                /* R_DNS: a lookup; R_WORK: run(arg) (work_run) */
  void (*run)(void *arg);  /* R_WORK: the work, on a worker thread */
  void (*cleanup)(void *arg); /* R_WORK: frees arg when nobody will read it */
  void *arg;
} gh_job;

/* Two queues with workers of their own: a slow disk never delays DNS. */
enum { R_DNS, R_WORK, R_LUA, R_N }; /* R_LUA: gh.tpool's Lua work */

/*
 * Workers are detached: nobody ever waits for a getaddrinfo to return (a
 * slow DNS server must not hold up exit). The pool is freed by whoever
 * leaves it last: resolver_close when no worker is left, else the last
 * worker to exit after stop.
 */
struct gh_pool {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  pthread_cond_t cvr[R_N]; /* work for a role's workers */
  gh_job *todo[R_N], *todo_tail[R_N];
  gh_job *done;            /* finished, not yet seen by the hub */
  int nworkers, stop;      /* all workers (the last one out frees) */
  int nrole[R_N], idle[R_N];
  int max[R_N];            /* workers a role may have (not counting stuck ones) */
  int nqueued[R_N];        /* jobs waiting in todo[r] */
  int nstuck[R_N];         /* workers running an abandoned job */
  int wake[2];             /* workers -> hub: an eventfd or a pipe (compat.h) */
  struct { char host[64]; double delay; } hooks[MAX_HOOKS]; /* test hook */
  int nhooks;
  gh_job *inflight;        /* jobs inside getaddrinfo now */
  struct gh_pool *next_live;
  /* the hub's side (its thread only) */
  gh_source src;           /* wake[0], as an event source */
  size_t nrefs;            /* lookups waited on: hub references held */
};

/* Every pool not yet freed, reachable from a global: after the hub is
   gone a pool belongs to its detached workers alone (and leak checkers
   that cannot see their stacks must still see it). */
static gh_pool *live_pools;
static pthread_mutex_t live_mu = PTHREAD_MUTEX_INITIALIZER;

static void inflight_remove(gh_pool *p, gh_job *j) {
  for (gh_job **pp = &p->inflight; *pp; pp = &(*pp)->next_inflight)
    if (*pp == j) { *pp = j->next_inflight; return; }
}

static void job_free(gh_job *j) {
  if (j->cleanup) j->cleanup(j->arg);
  if (j->res) freeaddrinfo(j->res);
  free(j->host);
  free(j->serv);
  free(j);
}

static void pool_free(gh_pool *p) {
  pthread_mutex_lock(&live_mu);
  for (gh_pool **pp = &live_pools; *pp; pp = &(*pp)->next_live)
    if (*pp == p) { *pp = p->next_live; break; }
  pthread_mutex_unlock(&live_mu);
  for (int r = 0; r < R_N; r++)
    for (gh_job *j = p->todo[r], *n; j; j = n) { n = j->next; job_free(j); }
  for (gh_job *j = p->done, *n; j; j = n) { n = j->next; job_free(j); }
  gh_wakeup_close(p->wake);
  pthread_mutex_unlock(&p->mu);
  pthread_mutex_destroy(&p->mu);
  for (int r = 0; r < R_N; r++) pthread_cond_destroy(&p->cvr[r]);
  free(p);
}

/* Test hook (mutex held): a hooked host waits its delay, then is "not
   found" without asking getaddrinfo. -1: not hooked. */
static double hook_delay(gh_pool *p, const char *host) {
  for (int i = 0; i < p->nhooks; i++)
    if (strcmp(p->hooks[i].host, host) == 0) return p->hooks[i].delay;
  return -1;
}

static void *worker_loop(gh_pool *p, int r) {
  sigset_t all; /* signals belong to the hub's thread (signalfd) */
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, NULL);
  pthread_mutex_lock(&p->mu);
  for (;;) {
    while (!p->todo[r] && !p->stop) {
      /* extra workers (started past stuck ones) leave when idle */
      if (p->nrole[r] - p->nstuck[r] > p->max[r]) goto out;
      p->idle[r]++;
      pthread_cond_wait(&p->cvr[r], &p->mu);
      p->idle[r]--;
    }
    if (p->stop) break;
    if (p->nrole[r] - p->nstuck[r] > p->max[r]) { /* the role shrank: go, */
      pthread_cond_signal(&p->cvr[r]);            /* and pass the wake-up on */
      goto out;
    }
    gh_job *j = p->todo[r];
    p->nqueued[r]--;
    p->todo[r] = j->next;
    if (!p->todo[r]) p->todo_tail[r] = NULL;
    j->running = 1;
    j->next_inflight = p->inflight;
    p->inflight = j;
    double delay = r == R_DNS ? hook_delay(p, j->host) : -1;
    pthread_mutex_unlock(&p->mu);
    if (r != R_DNS) {
      j->run(j->arg);
    } else if (delay >= 0) {
      struct timespec ts = {(time_t)delay, (long)((delay - (double)(time_t)delay) * 1e9)};
      nanosleep(&ts, NULL);
      j->err = EAI_NONAME;
    } else {
      j->err = getaddrinfo(j->host, j->serv, &j->hints, &j->res);
    }
    pthread_mutex_lock(&p->mu);
    inflight_remove(p, j);
    j->running = 0;
    if (j->abandoned) {
      p->nstuck[r]--;
      job_free(j);
      continue;
    }
    j->next = p->done;
    p->done = j;
    gh_wakeup_signal(p->wake[1]);
  }
out:
  p->nrole[r]--;
  if (--p->nworkers == 0 && p->stop) { pool_free(p); return NULL; }
  pthread_mutex_unlock(&p->mu);
  return NULL;
}

static void *dns_worker(void *arg) { return worker_loop(arg, R_DNS); }
static void *work_worker(void *arg) { return worker_loop(arg, R_WORK); }
static void *lua_worker(void *arg) { return worker_loop(arg, R_LUA); }

/* Queue j and make sure a worker of its role will take it (mutex held).
   0, or -1 when no worker exists nor can be started. */
static int pool_queue(gh_pool *p, gh_job *j, size_t stack) {
  int r = j->role;
  if (p->todo_tail[r]) p->todo_tail[r]->next = j; else p->todo[r] = j;
  p->todo_tail[r] = j;
  p->nqueued[r]++;
  /* a worker for it unless an idle one is left for each queued job (two
     jobs queued at once must not share the one idle worker); stuck
     (abandoned) jobs do not count */
  if (p->nqueued[r] > p->idle[r] && p->nrole[r] - p->nstuck[r] < p->max[r] && p->nrole[r] < HARD_WORKERS) {
    pthread_t tid;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&at, stack);
    if (pthread_create(&tid, &at, r == R_DNS ? dns_worker : r == R_WORK ? work_worker : lua_worker, p) == 0) {
      p->nworkers++;
      p->nrole[r]++;
    }
    pthread_attr_destroy(&at);
  }
  if (p->nrole[r] == 0) { /* dequeue: the caller does it itself */
    p->todo[r] = p->todo_tail[r] = NULL;
    p->nqueued[r] = 0;
    return -1;
  }
  pthread_cond_signal(&p->cvr[r]);
  return 0;
}

static void resolver_ready(gh_hub *h, gh_source *src);

/* In a child after fork: the workers did not survive it, so lookups in
   flight never finish here; but a waiter may still touch its job, so the
   old pool is kept (not freed) and a new one starts on the next lookup. */
static void resolver_after_fork(gh_hub *h, gh_source *src) {
  gh_pool *p = container_of(src, gh_pool, src);
  h->stale_pool = p;
  if (h->pool == p) h->pool = NULL;
  h->nrefs -= p->nrefs;
  p->nrefs = 0;
}

static gh_pool *pool_get(gh_hub *h) {
  hub_check_fork(h); /* in a child: never the parent's pool */
  if (h->pool) return h->pool;
  gh_pool *p = calloc(1, sizeof *p);
  if (!p) return NULL;
  if (gh_wakeup_open(p->wake) < 0) { free(p); return NULL; }
  p->src.fd = p->wake[0];
  p->src.ready = resolver_ready;
  p->src.after_fork = resolver_after_fork;
  if (hub_source_add(h, &p->src) < 0) {
    gh_wakeup_close(p->wake);
    free(p);
    return NULL;
  }
  pthread_mutex_init(&p->mu, NULL);
  for (int r = 0; r < R_N; r++) { pthread_cond_init(&p->cvr[r], NULL); p->max[r] = MAX_WORKERS; }
  pthread_mutex_lock(&live_mu);
  p->next_live = live_pools;
  live_pools = p;
  pthread_mutex_unlock(&live_mu);
  h->pool = p;
  return p;
}

/* The wake-up channel fired (called from the loop): wake the callers. */
static void resolver_ready(gh_hub *h, gh_source *src) {
  gh_pool *p = container_of(src, gh_pool, src);
  gh_wakeup_drain(p->wake[0]);
  pthread_mutex_lock(&p->mu);
  gh_job *j = p->done;
  p->done = NULL;
  pthread_mutex_unlock(&p->mu);
  while (j) {
    gh_job *next = j->next;
    if (j->abandoned) { /* its caller gave up after the worker finished */
      job_free(j);
      j = next;
      continue;
    }
    j->done = 1;
    hub_unref(h);
    p->nrefs--;
    if (!link_empty(&j->waiters))
      hub_wake(h, container_of(j->waiters.next, gh_thread, link), WK_OK);
    j = next;
  }
}

void resolver_close(gh_hub *h) {
  gh_pool *p = h->pool;
  if (!p) return;
  h->pool = NULL;
  hub_source_remove(h, &p->src);
  pthread_mutex_lock(&p->mu);
  p->stop = 1;
  for (int r = 0; r < R_N; r++) {
    for (gh_job *j = p->todo[r], *n; j; j = n) { n = j->next; job_free(j); }
    p->todo[r] = p->todo_tail[r] = NULL;
    p->nqueued[r] = 0;
  }
  if (p->nworkers == 0) { pool_free(p); return; }
  /* callers are gone with the hub: the workers free what they hold */
  for (gh_job *j = p->inflight; j; j = j->next_inflight)
    if (!j->abandoned) { j->abandoned = 1; p->nstuck[j->role]++; }
  for (int r = 0; r < R_N; r++) pthread_cond_broadcast(&p->cvr[r]);
  /* workers still inside getaddrinfo free their job and, the last one, the
     pool; nobody waits for them */
  for (gh_job *j = p->done, *n; j; j = n) { n = j->next; job_free(j); }
  p->done = NULL;
  pthread_mutex_unlock(&p->mu);
}

/* The caller gave up on j (timeout, kill): it must not hold a worker
   that a live lookup needs. Queued: dropped now. Running: the worker
   frees it and meanwhile a new worker may start in its place. */
static void job_abandon(gh_hub *h, gh_job *j) {
  gh_pool *p = h->pool;
  hub_unref(h);
  p->nrefs--;
  pthread_mutex_lock(&p->mu);
  if (j->running) {
    j->abandoned = 1;
    p->nstuck[j->role]++;
    pthread_mutex_unlock(&p->mu);
    return;
  }
  int r = j->role;
  gh_job **pp = &p->todo[r], *prev = NULL;
  while (*pp && *pp != j) { prev = *pp; pp = &(*pp)->next; }
  if (!*pp) {
    /* finished, on the done list the hub has not drained yet: the hub
       frees it there (resolver_ready) */
    j->abandoned = 1;
    pthread_mutex_unlock(&p->mu);
    return;
  }
  *pp = j->next;
  if (p->todo_tail[r] == j) p->todo_tail[r] = prev;
  p->nqueued[r]--;
  pthread_mutex_unlock(&p->mu);
  job_free(j);
}

/* Push a table of binary sockaddrs for res, or nil + message. */
static int push_addrs(lua_State *L, int err, struct addrinfo *res) {
  if (err) {
    lua_pushnil(L);
    lua_pushstring(L, resolver_strerror(err));
    return 2;
  }
  lua_newtable(L);
  int i = 0;
  for (struct addrinfo *a = res; a; a = a->ai_next) {
    if (a->ai_family != AF_INET && a->ai_family != AF_INET6) continue;
    lua_pushlstring(L, (const char *)a->ai_addr, a->ai_addrlen);
    lua_rawseti(L, -2, ++i);
  }
  return 1;
}

const char *resolver_strerror(int err) {
  switch (err) {
    case EAI_NONAME:
#ifdef EAI_NODATA
    case EAI_NODATA:
#endif
      return "host not found";
    case EAI_AGAIN: return "temporary failure in name resolution";
    case EAI_FAMILY: return "address family not supported";
    case EAI_SERVICE: return "service not supported";
    case EAI_MEMORY: return "out of memory";
    case EAI_SYSTEM: return strerror(errno);
    default: return gai_strerror(err);
  }
}

static int lookup_k(lua_State *L, int status, lua_KContext ctx) {
  gh_job *j = (gh_job *)ctx;
  gh_hub *h = HUB(L);
  gh_thread *self = hub_me(L, h);
  lua_KFunction k = j->k;
  lua_KContext kctx = j->ctx;
  (void)status;
  if (j->done) {
    if (self->wake == WK_INTR) { /* killed as it finished: free it all */
      job_free(j);
      return hub_check_intr(L, h, self);
    }
    int err = j->err;
    struct addrinfo *res = j->res;
    j->res = NULL;
    job_free(j);
    push_addrs(L, err, res);
    if (res) freeaddrinfo(res);
    if (!err) lua_pushnil(L); /* keep two values: addrs, nil */
    return k(L, LUA_YIELD, kctx);
  }
  job_abandon(h, j);
  if (!gh_wait_failed(L, h)) gh_fail(L, "closed");
  return k(L, LUA_YIELD, kctx);
}

/* Park the caller on its queued job j: the hub is not idle meanwhile (a
   reference per job), and the job's waiters list holds the caller. */
static int job_park(lua_State *L, gh_hub *h, gh_pool *p, gh_thread *self, gh_job *j,
                    int64_t deadline, int waitcode, lua_KFunction k) {
  hub_ref(h);
  p->nrefs++;
  link_push(&j->waiters, &self->link);
  self->where = TW_LIST;
  self->waitcode = (uint8_t)waitcode;
  return hub_park(L, h, self, deadline, (lua_KContext)j, k);
}

/*
 * Resolve host (NULL or "*" with passive: any address) and serv. Pushes
 * two values, a table of binary sockaddrs and nil, or nil and an error
 * message, then continues in k(L, LUA_YIELD, ctx). Parks when a name
 * needs the workers.
 */
int resolver_lookup(lua_State *L, gh_hub *h, const char *host, const char *serv,
                    int family, int socktype, int passive, int64_t deadline,
                    lua_KContext ctx, lua_KFunction k) {
  struct addrinfo hints, *res = NULL;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = family;
  hints.ai_socktype = socktype;
  hints.ai_flags = passive ? AI_PASSIVE : 0;
  /* "*" and "" mean any address for bind; for connect "" names no host
     (as LuaSocket, it does not quietly become the loopback address) */
  if (host && passive && (strcmp(host, "*") == 0 || *host == '\0')) host = NULL;
  if (host && !passive && *host == '\0') {
    lua_pushnil(L);
    lua_pushliteral(L, "host not found");
    return k(L, LUA_YIELD, ctx);
  }
  if (host && strcmp(host, "localhost") == 0)
    host = family == AF_INET6 ? "::1" : "127.0.0.1";
  hints.ai_flags |= AI_NUMERICHOST;
  int err = getaddrinfo(host, serv, &hints, &res);
  if (err != EAI_NONAME || host == NULL) {
    push_addrs(L, err, res);
    if (res) freeaddrinfo(res);
    if (!err) lua_pushnil(L);
    return k(L, LUA_YIELD, ctx);
  }
  /* a name: ask the workers */
  gh_thread *self = hub_self(L, h, "resolve");
  gh_pool *p = pool_get(h);
  gh_job *j = p ? calloc(1, sizeof *j) : NULL;
  if (j) {
    j->host = strdup(host);
    j->serv = serv ? strdup(serv) : NULL;
  }
  if (!j || !j->host || (serv && !j->serv)) {
    if (j) job_free(j);
    lua_pushnil(L);
    lua_pushliteral(L, "out of memory");
    return k(L, LUA_YIELD, ctx);
  }
  hints.ai_flags &= ~AI_NUMERICHOST;
  hints.ai_flags |= AI_ADDRCONFIG;
  j->hints = hints;
  j->k = k;
  j->ctx = ctx;
  link_init(&j->waiters);
  pthread_mutex_lock(&p->mu);
  j->role = R_DNS;
  if (pool_queue(p, j, 256 * 1024) < 0) { /* getaddrinfo needs little stack */
    /* no thread can be had (thread or memory limits): resolve here, in
       the hub's thread, rather than wait for a worker that never comes */
    double delay = hook_delay(p, j->host);
    pthread_mutex_unlock(&p->mu);
    if (delay >= 0) err = EAI_NONAME;
    else err = getaddrinfo(j->host, j->serv, &j->hints, &res);
    job_free(j);
    push_addrs(L, err, res);
    if (res) freeaddrinfo(res);
    if (!err) lua_pushnil(L);
    return k(L, LUA_YIELD, ctx);
  }
  pthread_mutex_unlock(&p->mu);
  return job_park(L, h, p, self, j, deadline, WC_RESOLVE, lookup_k);
}

/* ---------------------------------------------------------------- work */

static int work_k(lua_State *L, int status, lua_KContext ctx) {
  gh_job *j = (gh_job *)ctx;
  gh_hub *h = HUB(L);
  lua_KFunction k = j->k;
  lua_KContext kctx = j->ctx;
  (void)status;
  if (j->done) {
    gh_thread *self = hub_me(L, h);
    if (self->wake == WK_INTR) { /* killed as it finished: nobody reads arg */
      job_free(j);
      return hub_check_intr(L, h, self);
    }
    j->cleanup = NULL; /* arg is the caller's again */
    job_free(j);
    return k(L, LUA_YIELD, kctx);
  }
  job_abandon(h, j); /* the worker frees arg (cleanup) when it is done */
  int r = gh_wait_failed(L, h);
  return r ? r : gh_fail(L, "closed");
}

/*
 * Run run(arg) on a worker thread (never Lua there) and park the caller
 * until it is done; then continue in k(L, LUA_YIELD, ctx), which owns arg
 * again (and frees it). If the caller goes first (killed), the job is
 * abandoned: cleanup(arg) runs when the worker is done with it. With no
 * worker to be had, run(arg) runs right here.
 */
int work_run(lua_State *L, gh_hub *h, int lua, void (*run)(void *), void (*cleanup)(void *),
             void *arg, lua_KContext ctx, lua_KFunction k) {
  gh_thread *self = hub_self(L, h, lua ? "tpool" : "fs");
  gh_pool *p = pool_get(h);
  gh_job *j = p ? calloc(1, sizeof *j) : NULL;
  if (!j) {
    run(arg);
    return k(L, LUA_YIELD, ctx);
  }
  j->role = lua ? R_LUA : R_WORK;
  j->run = run;
  j->cleanup = cleanup;
  j->arg = arg;
  j->k = k;
  j->ctx = ctx;
  link_init(&j->waiters);
  pthread_mutex_lock(&p->mu);
  if (pool_queue(p, j, lua ? 8 * 1024 * 1024 : 256 * 1024) < 0) {
    pthread_mutex_unlock(&p->mu);
    free(j);
    run(arg);
    return k(L, LUA_YIELD, ctx);
  }
  pthread_mutex_unlock(&p->mu);
  return job_park(L, h, p, self, j, -1, WC_READY, work_k);
}

/* gh.tpool.size([n]) -> the most Lua workers at once (default 4) */
int work_lua_size(lua_State *L) {
  gh_pool *p = pool_get(HUB(L));
  if (!p) return luaL_error(L, "greenhub: cannot start the worker pool");
  if (!lua_isnoneornil(L, 1)) {
    lua_Integer n = luaL_checkinteger(L, 1);
    luaL_argcheck(L, n >= 1 && n <= 64, 1, "must be 1 to 64");
    pthread_mutex_lock(&p->mu);
    p->max[R_LUA] = (int)n;
    pthread_cond_broadcast(&p->cvr[R_LUA]); /* extra idle ones leave */
    pthread_mutex_unlock(&p->mu);
  }
  lua_pushinteger(L, p->max[R_LUA]);
  return 1;
}

/* Test hook: _resolver_delay(host, seconds): lookups of host wait that
   long in a worker and then fail with "host not found" (never reaching
   DNS), so the specs can make slow and fast lookups at will. Not API. */
int resolver_set_delay(lua_State *L) {
  const char *host = luaL_checkstring(L, 1);
  double s = luaL_checknumber(L, 2);
  gh_pool *p = pool_get(HUB(L));
  if (!p) return luaL_error(L, "greenhub: cannot start the resolver");
  pthread_mutex_lock(&p->mu);
  int i = 0;
  while (i < p->nhooks && strcmp(p->hooks[i].host, host) != 0) i++;
  if (i < MAX_HOOKS) {
    snprintf(p->hooks[i].host, sizeof p->hooks[i].host, "%s", host);
    p->hooks[i].delay = s;
    if (i == p->nhooks) p->nhooks++;
  }
  pthread_mutex_unlock(&p->mu);
  return 0;
}
