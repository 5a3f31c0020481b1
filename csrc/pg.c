/*
 * pg.c - greenhub.pgcore: PostgreSQL through libpq's asynchronous API,
 * with every wait in the hub. Built only when libpq-fe.h is there (it
 * links libpq); lua/greenhub/pg.lua is the module users require.
 *
 * A separate shared object: the hub is reached through core._capi.
 *
 * One green thread at a time uses a connection (its "turn"; others wait
 * in line). A query sends with PQsendQuery(Params), flushes (waiting for
 * writable while PQflush says 1), then parks on readable until
 * PQgetResult gives NULL. libpq reads its socket itself, so the hub's
 * edge-triggered bits say nothing about what is left in it: before
 * parking again a one-byte MSG_PEEK asks the kernel.
 *
 * A query interrupted while the server works (kill, with_timeout) leaves
 * results to come: the connection stays taken and a recovery thread (spawned
 * through the Lua layer) sends PQcancel as a job on the worker pool (it
 * blocks in libpq 15), then drains the results (bounded by 5 s); only
 * then is the next thread's turn, so a late cancel never hits a later
 * query. Interrupted while sending: the protocol state is lost and the
 * connection is closed.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <libpq-fe.h>

#include "greenhub.h"

#define CONN_MT "greenhub.pg.connection"
#define DRAIN_SECONDS 5.0
#define MAX_PARAMS 65535
#define STMT_CACHE 128     /* prepared statements kept per connection */

static const gh_capi *G;

/* upvalues of every function: 1 the hub, 2 pg.null, 3 a table {recover} */
#define UV_NULL lua_upvalueindex(2)
#define UV_ENV lua_upvalueindex(3)

typedef struct pgconn {
  PGconn *pg;              /* NULL once closed */
  int fd;                  /* PQsocket as last seen */
  int busy;                /* a thread has its turn (or recovery does) */
  int recovering;          /* interrupted query: results still to drain */
  int fresh;               /* a query was just sent: park without peeking */
  int wide;                /* watched for output too (a flush waits) */
  int copy_out;            /* in COPY TO STDOUT: data to read and drop */
  int copy_refused;        /* ... which the query's outcome reports */
  int phase;               /* PH_*: what the query in flight is */
  int nparams;             /* its parameters: stack slots 3.. */
  int retried;             /* re-prepared once after a stale statement */
  int ncached, cache_max;  /* statements in the cache (user value 1) */
  unsigned stmt_seq;
  char stmt[16];           /* the name being prepared */
  gh_link waiters;         /* threads waiting for their turn */
  PGresult *res;           /* the result a running query keeps */
  PGresult *err;           /* ... or its first error */
} pgconn;

/* ---------------------------------------------------------------- helpers */

static int expired(int64_t deadline) { /* hub_expired, through the table */
  return deadline >= 0 && deadline <= G->clock();
}

static pgconn *conn_check(lua_State *L) {
  return luaL_checkudata(L, 1, CONN_MT);
}

static void keep_clear(pgconn *c) {
  c->copy_out = 0;
  if (c->res) { PQclear(c->res); c->res = NULL; }
  if (c->err) { PQclear(c->err); c->err = NULL; }
}

/* libpq's message without its trailing newline(s) */
static void push_msg(lua_State *L, const char *m) {
  if (!m || !*m) m = "unknown error";
  size_t n = strlen(m);
  while (n > 0 && (m[n - 1] == '\n' || m[n - 1] == ' ')) n--;
  lua_pushlstring(L, m, n);
}

/* nil, message, sqlstate of the connection's state ("08006": it is lost) */
static int conn_fail(lua_State *L, pgconn *c) {
  lua_pushnil(L);
  if (!c->pg) {
    lua_pushliteral(L, "closed");
    return 2;
  }
  push_msg(L, PQerrorMessage(c->pg));
  if (PQstatus(c->pg) == CONNECTION_BAD) lua_pushliteral(L, "08006");
  else lua_pushnil(L);
  return 3;
}

/* Is something waiting in the socket (or has it an error or EOF)? */
static int readable_now(int fd) {
  char b;
  ssize_t n = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
  return n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

/* Close: nobody waits on the fd any more (woken with "closed"). */
static void conn_close(gh_hub *h, pgconn *c) {
  if (!c->pg) return;
  if (c->fd >= 0) G->fd_forget(h, c->fd);
  PQfinish(c->pg);
  c->pg = NULL;
  c->fd = -1;
  keep_clear(c);
}

/* Give the turn to the next in line (it re-checks when it runs). */
static void turn_release(gh_hub *h, pgconn *c) {
  c->busy = 0;
  if (!link_empty(&c->waiters))
    G->wake(h, container_of(c->waiters.next, gh_thread, link), WK_OK);
}

/* Track libpq's socket; a new one (connect retries) is watched afresh. */
static void conn_fd(gh_hub *h, pgconn *c) {
  int fd = PQsocket(c->pg);
  if (fd != c->fd && c->fd >= 0) G->fd_forget(h, c->fd);
  c->fd = fd;
}

/* ---------------------------------------------------------------- values */

static int push_null(lua_State *L) {
  lua_pushvalue(L, UV_NULL);
  return 1;
}

/* significant digits of a decimal numeral (sign, point, exponent skipped) */
static int sig_digits(const char *s) {
  int n = 0, started = 0;
  for (; *s && *s != 'e' && *s != 'E'; s++) {
    if (*s >= '1' && *s <= '9') started = 1;
    if (*s >= '0' && *s <= '9' && started) n++;
  }
  return n;
}

static void push_value(lua_State *L, Oid type, const char *v, int len) {
  switch (type) {
    case 16: /* bool */
      lua_pushboolean(L, v[0] == 't');
      return;
    case 20: case 21: case 23: { /* int8, int2, int4 */
      char *end;
      errno = 0;
      long long x = strtoll(v, &end, 10);
      if (errno == 0 && *end == '\0') { lua_pushinteger(L, (lua_Integer)x); return; }
      break;
    }
    case 700: case 701: { /* float4, float8: Infinity, NaN included */
      char *end;
      double x = strtod(v, &end);
      if (*end == '\0') { lua_pushnumber(L, x); return; }
      break;
    }
    case 1700: { /* numeric: a number only where that loses nothing */
      if (strcmp(v, "NaN") == 0) { lua_pushnumber(L, NAN); return; }
      if (!strpbrk(v, ".eE")) {
        char *end;
        errno = 0;
        long long x = strtoll(v, &end, 10);
        if (errno == 0 && *end == '\0') { lua_pushinteger(L, (lua_Integer)x); return; }
      } else if (sig_digits(v) <= 15) {
        char *end;
        double x = strtod(v, &end);
        if (*end == '\0' && isfinite(x)) { lua_pushnumber(L, x); return; }
      }
      break;
    }
    default:
      break;
  }
  lua_pushlstring(L, v, (size_t)len);
}

/* rows (array of {column = value}) with .affected, from a result */
static void push_rows(lua_State *L, PGresult *r) {
  int nrows = PQntuples(r), ncols = PQnfields(r);
  lua_createtable(L, nrows, 1);
  int rows = lua_gettop(L);
  const char *aff = PQcmdTuples(r);
  if (aff && *aff && strncmp(PQcmdStatus(r), "SELECT", 6) != 0) { /* commands only */
    lua_pushinteger(L, (lua_Integer)strtoll(aff, NULL, 10));
    lua_setfield(L, rows, "affected");
  }
  if (nrows == 0 || ncols == 0) {
    for (int i = 0; i < nrows; i++) { lua_newtable(L); lua_rawseti(L, rows, i + 1); }
    return;
  }
  luaL_checkstack(L, ncols + 4, "too many columns");
  Oid small[32];
  Oid *types = ncols <= 32 ? small : lua_newuserdatauv(L, sizeof(Oid) * (size_t)ncols, 0);
  int tidx = lua_gettop(L);
  for (int j = 0; j < ncols; j++) {
    lua_pushstring(L, PQfname(r, j));
    types[j] = PQftype(r, j);
  }
  /* names are at tidx+1 .. tidx+ncols */
  for (int i = 0; i < nrows; i++) {
    lua_createtable(L, 0, ncols);
    for (int j = 0; j < ncols; j++) {
      lua_pushvalue(L, tidx + 1 + j);
      if (PQgetisnull(r, i, j)) push_null(L);
      else push_value(L, types[j], PQgetvalue(r, i, j), PQgetlength(r, i, j));
      lua_rawset(L, -3);
    }
    lua_rawseti(L, rows, i + 1);
  }
  lua_settop(L, rows);
}

/* the query's outcome: rows, or nil, message, sqlstate */
static int push_outcome(lua_State *L, pgconn *c) {
  if (c->copy_refused) {
    c->copy_refused = 0;
    keep_clear(c);
    lua_pushnil(L);
    lua_pushliteral(L, "COPY TO STDOUT is not supported by greenhub.pg");
    lua_pushliteral(L, "0A000");
    return 3;
  }
  if (c->err) {
    PGresult *e = c->err;
    c->err = NULL;
    if (c->res) { PQclear(c->res); c->res = NULL; }
    lua_pushnil(L);
    const char *prim = PQresultErrorField(e, PG_DIAG_MESSAGE_PRIMARY);
    push_msg(L, prim ? prim : PQresultErrorMessage(e));
    const char *st = PQresultErrorField(e, PG_DIAG_SQLSTATE);
    if (st) lua_pushstring(L, st); else lua_pushnil(L);
    PQclear(e);
    return 3;
  }
  if (!c->res) { /* nothing came back: the connection broke */
    return conn_fail(L, c);
  }
  PGresult *r = c->res;
  c->res = NULL;
  push_rows(L, r);
  PQclear(r);
  return 1;
}

/* End a COPY FROM STDIN the server started: it answers with an error
   carrying our message. Blocking for this one short message (a full
   socket buffer here would be a server not reading at all). */
static void refuse_copy_in(pgconn *c) {
  PQsetnonblocking(c->pg, 0);
  PQputCopyEnd(c->pg, "COPY FROM STDIN is not supported by greenhub.pg");
  PQflush(c->pg);
  PQsetnonblocking(c->pg, 1);
}

/* keep what a result says for the outcome (the last rows, the first
   error); COPY is not spoken here: refused, its data dropped */
static void keep(pgconn *c, PGresult *r, int discard) {
  switch (PQresultStatus(r)) {
    case PGRES_TUPLES_OK: case PGRES_COMMAND_OK: case PGRES_EMPTY_QUERY:
      if (discard) { PQclear(r); return; }
      if (c->res) PQclear(c->res);
      c->res = r;
      return;
    case PGRES_COPY_IN:
      PQclear(r);
      refuse_copy_in(c);
      return;
    case PGRES_COPY_OUT:
      PQclear(r);
      c->copy_out = 1;
      if (!discard) c->copy_refused = 1;
      return;
    default:
      if (discard || c->err) PQclear(r); else c->err = r;
      return;
  }
}

/* Take in what libpq has read: results (kept, or dropped when discard),
   COPY data (dropped). 1: the last result is in; 0: more input is needed. */
static int pump(pgconn *c, int discard) {
  for (;;) {
    if (c->copy_out) {
      char *buf;
      int n;
      while ((n = PQgetCopyData(c->pg, &buf, 1)) > 0) PQfreemem(buf);
      if (n == 0) return 0;
      c->copy_out = 0; /* -1 done, -2 broken: the result says which */
    }
    if (PQisBusy(c->pg)) return 0;
    PGresult *r = PQgetResult(c->pg);
    if (!r) return 1;
    keep(c, r, discard);
  }
}

/* ---------------------------------------------------------------- turns */

/* Park self in c's line; k re-checks c->busy when it runs. */
static int turn_wait(lua_State *L, gh_hub *h, pgconn *c, int64_t deadline,
                     lua_KContext ctx, lua_KFunction k) {
  return G->park_list(L, h, &c->waiters, 0, deadline, ctx, k, "pg", WC_SEM);
}

/* After a wait in line: pass a wake-up on if interrupted; 1 if our turn. */
static int turn_woken(lua_State *L, gh_hub *h, pgconn *c) {
  gh_thread *self = hub_me(L, h);
  if (self->wake == WK_INTR || self->wake == WK_TIMEOUT) {
    if (!c->busy && !link_empty(&c->waiters))
      G->wake(h, container_of(c->waiters.next, gh_thread, link), WK_OK);
    G->check_intr(L, h, self);
  }
  return self->wake != WK_TIMEOUT;
}

/* ---------------------------------------------------------------- recovery */

typedef struct cancel_job {
  PGcancel *cancel;
  int ok;
  char err[256];
} cancel_job;

static void cancel_run(void *arg) {
  cancel_job *j = arg;
  j->ok = PQcancel(j->cancel, j->err, sizeof j->err);
}

static void cancel_free(void *arg) {
  cancel_job *j = arg;
  if (j->cancel) PQfreeCancel(j->cancel);
  free(j);
}

/* recovery over: c usable again (ok) or closed; the line moves on */
static void recover_done(gh_hub *h, pgconn *c, int ok) {
  c->recovering = 0;
  if (!ok) conn_close(h, c);
  turn_release(h, c);
}

/* hand c (taken, results pending) to a recovery thread (pg.lua spawns it) */
static void start_recovery(lua_State *L, pgconn *c) {
  c->recovering = 1;
  keep_clear(c);
  int top = lua_gettop(L);
  lua_getfield(L, UV_ENV, "recover");
  lua_pushvalue(L, 1);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK) recover_done(HUB(L), c, 0); /* cannot spawn: give up on c */
  lua_settop(L, top);
}

static int drain(lua_State *L, gh_hub *h, pgconn *c, int64_t deadline);

static int recover_end(lua_State *L, gh_hub *h, pgconn *c, int ok) {
  recover_done(h, c, ok);
  lua_pushboolean(L, ok);
  return 1;
}

static int drain_k(lua_State *L, int status, lua_KContext ctx) {
  gh_hub *h = HUB(L);
  pgconn *c = lua_touserdata(L, 1);
  gh_thread *self = hub_me(L, h);
  (void)status;
  if (self->wake == WK_INTR) {
    recover_done(h, c, 0); /* nothing pushed: the interrupt is on top */
    G->check_intr(L, h, self);
  }
  if (self->wake != WK_OK || !c->pg) return recover_end(L, h, c, 0);
  if (!PQconsumeInput(c->pg)) return recover_end(L, h, c, 0);
  return drain(L, h, c, (int64_t)ctx);
}

/* read and drop results until none is left, then the line moves on */
static int drain(lua_State *L, gh_hub *h, pgconn *c, int64_t deadline) {
  for (;;) {
    if (pump(c, 1)) return recover_end(L, h, c, PQstatus(c->pg) == CONNECTION_OK);
    if (!readable_now(c->fd)) break;
    if (!PQconsumeInput(c->pg)) return recover_end(L, h, c, 0);
  }
  gh_thread *self = G->self(L, h, "pg");
  lua_settop(L, 1);
  return G->wait_fd(L, h, self, c->fd, FD_R, deadline, (lua_KContext)deadline, drain_k);
}

static int recover_cancel_k(lua_State *L, int status, lua_KContext ctx) {
  gh_hub *h = HUB(L);
  pgconn *c = lua_touserdata(L, 1);
  cancel_job *j = (cancel_job *)ctx;
  (void)status;
  cancel_free(j); /* sent or not: the drain is bounded either way */
  if (!c->pg) return recover_end(L, h, c, 0);
  return drain(L, h, c, G->after(DRAIN_SECONDS));
}

/* c:_recover(): in its own thread, with c's turn held for it */
static int l_recover(lua_State *L) {
  gh_hub *h = HUB(L);
  pgconn *c = conn_check(L);
  lua_settop(L, 1);
  if (!c->recovering) return luaL_error(L, "greenhub.pg: nothing to recover");
  if (!c->pg) return recover_end(L, h, c, 0);
  cancel_job *j = calloc(1, sizeof *j);
  if (j) j->cancel = PQgetCancel(c->pg);
  if (!j || !j->cancel) {
    free(j);
    return drain(L, h, c, G->after(DRAIN_SECONDS));
  }
  return G->work(L, h, 0, cancel_run, cancel_free, j, (lua_KContext)j, recover_cancel_k);
}

/* ---------------------------------------------------------------- query */

/*
 * A query with parameters runs as a prepared statement, prepared on its
 * first use on this connection and kept (sql -> name, up to cache_max,
 * in the connection's user value): later uses send Bind/Execute only, and
 * the server skips parsing and planning. Without parameters the simple
 * protocol is used (several statements allowed). A cached statement gone
 * stale (DISCARD ALL, a changed result type) is dropped and, outside a
 * transaction, prepared again once.
 */
enum { PH_PLAIN, PH_PREPARE, PH_CACHED };

static int query_read(lua_State *L, gh_hub *h, pgconn *c);

static int query_send(lua_State *L, gh_hub *h, pgconn *c);

/* sql's cached statement name pushed (or nil); the cache table stays below */
static const char *stmt_lookup(lua_State *L) {
  lua_getiuservalue(L, 1, 1);
  lua_pushvalue(L, 2);
  lua_rawget(L, -2);
  return lua_tostring(L, -1);
}

static void stmt_forget(lua_State *L, pgconn *c) {
  lua_getiuservalue(L, 1, 1);
  lua_pushvalue(L, 2);
  lua_pushnil(L);
  lua_rawset(L, -3);
  lua_pop(L, 1);
  c->ncached--;
}

static int query_end(lua_State *L, gh_hub *h, pgconn *c) {
  if (c->phase == PH_PREPARE && !c->err && !c->copy_refused) {
    lua_getiuservalue(L, 1, 1);
    lua_pushvalue(L, 2);
    lua_pushstring(L, c->stmt);
    lua_rawset(L, -3);
    lua_pop(L, 1);
    c->ncached++;
    return query_send(L, h, c); /* now run it */
  }
  if (c->phase == PH_CACHED && c->err && !c->retried) {
    const char *st = PQresultErrorField(c->err, PG_DIAG_SQLSTATE);
    if (st && (strcmp(st, "26000") == 0 || strcmp(st, "0A000") == 0)) {
      stmt_forget(L, c);
      if (PQtransactionStatus(c->pg) == PQTRANS_IDLE) {
        c->retried = 1;
        return query_send(L, h, c);
      }
    }
  }
  c->phase = PH_PLAIN;
  turn_release(h, c);
  return push_outcome(L, c);
}

static int query_lost(lua_State *L, gh_hub *h, pgconn *c) {
  keep_clear(c);
  turn_release(h, c);
  return conn_fail(L, c);
}

/* woken in a query's read or flush phase; interrupted (kill, with_timeout)
   or timed out (its gh.scope's deadline: these waits have none of their
   own), the query is cancelled on the server, or the connection closed */
static int query_woken(lua_State *L, gh_hub *h, pgconn *c, int sending) {
  gh_thread *self = hub_me(L, h);
  if (self->wake == WK_INTR || self->wake == WK_TIMEOUT) {
    if (c->pg && !sending) {
      start_recovery(L, c); /* the turn goes with it */
    } else {
      conn_close(h, c);
      keep_clear(c);
      turn_release(h, c);
    }
    G->check_intr(L, h, self);
    return G->fail(L, "timeout");
  }
  if (!c->pg || self->wake == WK_CLOSED) {
    keep_clear(c);
    turn_release(h, c);
    return G->fail(L, "closed");
  }
  return 0;
}

static int query_read_k(lua_State *L, int status, lua_KContext ctx) {
  gh_hub *h = HUB(L);
  pgconn *c = lua_touserdata(L, 1);
  (void)status; (void)ctx;
  int r = query_woken(L, h, c, 0);
  if (r) return r;
  if (!PQconsumeInput(c->pg)) return query_lost(L, h, c);
  hub_fd_drained(h, c->fd, FD_R);
  return query_read(L, h, c);
}

static int query_read(lua_State *L, gh_hub *h, pgconn *c) {
  for (;;) {
    if (pump(c, 0)) return query_end(L, h, c);
    /* just sent: nothing can have come back yet, unless input (a FATAL
       notice, the server's EOF) came while the connection was idle --
       the hub's edge bits say so (cleared whenever libpq reads) */
    if (c->fresh) {
      c->fresh = 0;
      if (!hub_fd_maybe_ready(h, c->fd, FD_R)) break;
    }
    if (!readable_now(c->fd)) { hub_fd_drained(h, c->fd, FD_R); break; }
    if (!PQconsumeInput(c->pg)) return query_lost(L, h, c);
  }
  gh_thread *self = G->self(L, h, "pg");
  lua_settop(L, 2 + c->nparams); /* the query and its parameters stay */
  return G->wait_fd(L, h, self, c->fd, FD_R, -1, 0, query_read_k);
}

static int query_flush(lua_State *L, gh_hub *h, pgconn *c);

static int query_flush_k(lua_State *L, int status, lua_KContext ctx) {
  gh_hub *h = HUB(L);
  pgconn *c = lua_touserdata(L, 1);
  (void)status; (void)ctx;
  int r = query_woken(L, h, c, 1);
  if (r) return r;
  return query_flush(L, h, c);
}

static int query_flush(lua_State *L, gh_hub *h, pgconn *c) {
  int r = PQflush(c->pg);
  if (r < 0) return query_lost(L, h, c);
  if (r == 0) {
    if (c->wide) { c->wide = 0; G->fd_interest(h, c->fd, GH_IN); }
    return query_read(L, h, c);
  }
  if (!c->wide) { c->wide = 1; G->fd_interest(h, c->fd, GH_IN | GH_OUT); }
  /* more to send: take in what the server says meanwhile (notices) */
  if (!PQconsumeInput(c->pg)) return query_lost(L, h, c);
  gh_thread *self = G->self(L, h, "pg");
  lua_settop(L, 2 + c->nparams);
  return G->wait_fd(L, h, self, c->fd, FD_W, -1, 0, query_flush_k);
}

/* parameters 3.. as text (NULL for nil and pg.null); strings stay on the stack */
static const char **query_params(lua_State *L, int n, const char **small, int nsmall) {
  const char **v = n <= nsmall ? small : lua_newuserdatauv(L, sizeof(char *) * (size_t)n, 0);
  for (int i = 0; i < n; i++) {
    int a = 3 + i;
    switch (lua_type(L, a)) {
      case LUA_TNIL:
        v[i] = NULL;
        break;
      case LUA_TBOOLEAN:
        v[i] = lua_toboolean(L, a) ? "t" : "f";
        break;
      case LUA_TNUMBER:
        if (lua_isinteger(L, a)) {
          v[i] = lua_tostring(L, a); /* converts the slot in place */
        } else {
          double d = lua_tonumber(L, a);
          char b[40];
          if (d != d) strcpy(b, "NaN");
          else if (isinf(d)) strcpy(b, d > 0 ? "Infinity" : "-Infinity");
          else snprintf(b, sizeof b, "%.17g", d);
          lua_pushstring(L, b);
          lua_replace(L, a);
          v[i] = lua_tostring(L, a);
        }
        break;
      case LUA_TSTRING: {
        size_t len;
        v[i] = lua_tolstring(L, a, &len);
        if (memchr(v[i], '\0', len))
          luaL_argerror(L, a, "a zero byte cannot be sent as text (encode bytea as hex)");
        break;
      }
      default:
        if (lua_rawequal(L, a, UV_NULL)) { v[i] = NULL; break; }
        luaL_argerror(L, a, lua_pushfstring(L, "cannot send a %s as a parameter", luaL_typename(L, a)));
    }
  }
  return v;
}

static int query_start(lua_State *L, gh_hub *h, pgconn *c);

static int query_turn_k(lua_State *L, int status, lua_KContext ctx) {
  gh_hub *h = HUB(L);
  pgconn *c = lua_touserdata(L, 1);
  (void)status; (void)ctx;
  if (!turn_woken(L, h, c)) return G->fail(L, "timeout"); /* its gh.scope's deadline */
  return query_start(L, h, c);
}

static int query_start(lua_State *L, gh_hub *h, pgconn *c) {
  if (!c->pg) return G->fail(L, "closed");
  if (c->busy) return turn_wait(L, h, c, -1, 0, query_turn_k);
  if (PQstatus(c->pg) != CONNECTION_OK) return conn_fail(L, c);
  int n = lua_gettop(L) - 2;
  const char *small[16];
  query_params(L, n, small, 16); /* raises on a bad one: nothing done yet */
  c->busy = 1;
  c->nparams = n;
  c->retried = 0;
  return query_send(L, h, c);
}

/* send the query (or its preparation, or its prepared execution) */
static int query_send(lua_State *L, gh_hub *h, pgconn *c) {
  int n = c->nparams, ok, top = lua_gettop(L);
  const char *sql = lua_tostring(L, 2);
  const char *small[16];
  keep_clear(c);
  if (n == 0) {
    c->phase = PH_PLAIN;
    ok = PQsendQuery(c->pg, sql);
  } else {
    const char **v = query_params(L, n, small, 16);
    const char *name = c->cache_max > 0 ? stmt_lookup(L) : NULL;
    if (name) {
      c->phase = PH_CACHED;
      ok = PQsendQueryPrepared(c->pg, name, n, v, NULL, NULL, 0);
    } else if (c->phase != PH_PREPARE && c->ncached < c->cache_max) {
      c->phase = PH_PREPARE;
      snprintf(c->stmt, sizeof c->stmt, "gh%u", ++c->stmt_seq);
      ok = PQsendPrepare(c->pg, c->stmt, sql, 0, NULL);
    } else {
      c->phase = PH_PLAIN;
      ok = PQsendQueryParams(c->pg, sql, n, NULL, v, NULL, NULL, 0);
    }
  }
  lua_settop(L, top);
  if (!ok) {
    c->phase = PH_PLAIN;
    turn_release(h, c);
    return conn_fail(L, c);
  }
  c->fresh = 1;
  return query_flush(L, h, c);
}

/* c:query(sql, ...) -> rows | nil, message, sqlstate */
static int l_query(lua_State *L) {
  pgconn *c = conn_check(L);
  luaL_checkstring(L, 2);
  if (lua_gettop(L) - 2 > MAX_PARAMS) return luaL_error(L, "greenhub.pg: more than %d parameters", MAX_PARAMS);
  return query_start(L, HUB(L), c);
}

/* ---------------------------------------------------------------- notify */

static int notify_try(lua_State *L, gh_hub *h, pgconn *c, int64_t deadline);

static int notify_k(lua_State *L, int status, lua_KContext ctx) {
  gh_hub *h = HUB(L);
  pgconn *c = lua_touserdata(L, 1);
  gh_thread *self = hub_me(L, h);
  (void)status;
  if (self->wake == WK_INTR) { turn_release(h, c); G->check_intr(L, h, self); }
  if (!c->pg || self->wake == WK_CLOSED) { turn_release(h, c); return G->fail(L, "closed"); }
  if (self->wake == WK_TIMEOUT) { turn_release(h, c); return G->fail(L, "timeout"); }
  if (!PQconsumeInput(c->pg)) { turn_release(h, c); return conn_fail(L, c); }
  return notify_try(L, h, c, (int64_t)ctx);
}

static int notify_try(lua_State *L, gh_hub *h, pgconn *c, int64_t deadline) {
  for (;;) {
    PGnotify *n = PQnotifies(c->pg);
    if (n) {
      turn_release(h, c);
      lua_pushstring(L, n->relname);
      lua_pushstring(L, n->extra ? n->extra : "");
      lua_pushinteger(L, n->be_pid);
      PQfreemem(n);
      return 3;
    }
    if (!readable_now(c->fd)) break;
    if (!PQconsumeInput(c->pg)) { turn_release(h, c); return conn_fail(L, c); }
  }
  if (expired(deadline)) { turn_release(h, c); return G->fail(L, "timeout"); }
  gh_thread *self = G->self(L, h, "pg");
  lua_settop(L, 1);
  return G->wait_fd(L, h, self, c->fd, FD_R, deadline, (lua_KContext)deadline, notify_k);
}

static int notify_start(lua_State *L, gh_hub *h, pgconn *c, int64_t deadline);

static int notify_turn_k(lua_State *L, int status, lua_KContext ctx) {
  gh_hub *h = HUB(L);
  pgconn *c = lua_touserdata(L, 1);
  (void)status;
  if (!turn_woken(L, h, c)) return G->fail(L, "timeout");
  return notify_start(L, h, c, (int64_t)ctx);
}

static int notify_start(lua_State *L, gh_hub *h, pgconn *c, int64_t deadline) {
  if (!c->pg) return G->fail(L, "closed");
  if (c->busy) return turn_wait(L, h, c, deadline, (lua_KContext)deadline, notify_turn_k);
  c->busy = 1;
  return notify_try(L, h, c, deadline);
}

/* c:wait_notify([timeout]) -> channel, payload, pid | nil, "timeout" */
static int l_wait_notify(lua_State *L) {
  pgconn *c = conn_check(L);
  int64_t d = G->deadline(L, 2);
  lua_settop(L, 1);
  return notify_start(L, HUB(L), c, d);
}

/* ---------------------------------------------------------------- connect */

static int connect_poll(lua_State *L, gh_hub *h, pgconn *c, PostgresPollingStatusType st,
                        int64_t deadline);

static int connect_k(lua_State *L, int status, lua_KContext ctx) {
  gh_hub *h = HUB(L);
  pgconn *c = lua_touserdata(L, 1);
  gh_thread *self = hub_me(L, h);
  (void)status;
  if (self->wake == WK_INTR) { conn_close(h, c); G->check_intr(L, h, self); }
  if (self->wake == WK_TIMEOUT) { conn_close(h, c); return G->fail(L, "timeout"); }
  if (!c->pg || self->wake == WK_CLOSED) return G->fail(L, "closed");
  return connect_poll(L, h, c, PQconnectPoll(c->pg), (int64_t)ctx);
}

static int connect_poll(lua_State *L, gh_hub *h, pgconn *c, PostgresPollingStatusType st,
                        int64_t deadline) {
  if (st == PGRES_POLLING_OK) {
    conn_fd(h, c);
    if (PQsetnonblocking(c->pg, 1) != 0) goto failed;
    /* from now on libpq's socket is waited on for input, and for output
       only while a flush waits: no wake-up each time the server drains
       what was sent (one loop turn per query, not two) */
    G->fd_interest(h, c->fd, GH_IN);
    lua_settop(L, 1);
    return 1;
  }
  if (st == PGRES_POLLING_FAILED) goto failed;
  conn_fd(h, c);
  if (c->fd < 0) goto failed;
  if (expired(deadline)) { conn_close(h, c); return G->fail(L, "timeout"); }
  /* libpq may have closed a socket and opened another with the same
     number: watch it afresh each round (connecting is not a hot path) */
  G->fd_interest(h, c->fd, GH_IN | GH_OUT);
  gh_thread *self = G->self(L, h, "pg.connect");
  lua_settop(L, 1);
  return G->wait_fd(L, h, self, c->fd, st == PGRES_POLLING_READING ? FD_R : FD_W, deadline,
                    (lua_KContext)deadline, connect_k);
failed:
  lua_pushnil(L);
  push_msg(L, PQerrorMessage(c->pg));
  conn_close(h, c);
  return 2;
}

/* _connect(keys, values [, timeout]) -> conn | nil, message */
static int l_connect(lua_State *L) {
  gh_hub *h = HUB(L);
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TTABLE);
  int64_t deadline = G->deadline(L, 3);
  lua_Integer n = luaL_len(L, 1);
  if (n < 0 || n > 64) return luaL_argerror(L, 1, "too many connection options");
  const char *keys[66], *vals[66];
  for (lua_Integer i = 0; i < n; i++) {
    lua_rawgeti(L, 1, i + 1);
    lua_rawgeti(L, 2, i + 1);
    keys[i] = lua_tostring(L, -2);
    vals[i] = lua_tostring(L, -1);
    if (!keys[i] || !vals[i]) return luaL_argerror(L, 1, "option names and values must be strings");
    lua_pop(L, 2); /* the tables keep them alive */
  }
  keys[n] = vals[n] = NULL;
  G->self(L, h, "pg.connect"); /* may it block here? (raises if not) */
  pgconn *c = lua_newuserdatauv(L, sizeof *c, 1);
  memset(c, 0, sizeof *c);
  c->fd = -1;
  c->cache_max = STMT_CACHE;
  lua_newtable(L); /* sql -> prepared statement name */
  lua_setiuservalue(L, -2, 1);
  link_init(&c->waiters);
  luaL_setmetatable(L, CONN_MT);
  c->pg = PQconnectStartParams(keys, vals, 0); /* copies them */
  lua_replace(L, 1);
  lua_settop(L, 1);
  if (!c->pg) return luaL_error(L, "greenhub: out of memory");
  if (PQstatus(c->pg) == CONNECTION_BAD) {
    lua_pushnil(L);
    push_msg(L, PQerrorMessage(c->pg));
    conn_close(h, c);
    return 2;
  }
  return connect_poll(L, h, c, PGRES_POLLING_WRITING, deadline);
}

/* _parse(conninfo) -> {key = value} of what it sets | nil, message */
static int l_parse(lua_State *L) {
  const char *s = luaL_checkstring(L, 1);
  char *err = NULL;
  PQconninfoOption *o = PQconninfoParse(s, &err);
  if (!o) {
    lua_pushnil(L);
    push_msg(L, err ? err : "out of memory");
    if (err) PQfreemem(err);
    return 2;
  }
  lua_newtable(L);
  for (PQconninfoOption *p = o; p->keyword; p++)
    if (p->val) { lua_pushstring(L, p->val); lua_setfield(L, -2, p->keyword); }
  PQconninfoFree(o);
  return 1;
}

/* ---------------------------------------------------------------- misc */

static int l_close(lua_State *L) {
  pgconn *c = conn_check(L);
  gh_hub *h = HUB(L);
  conn_close(h, c);
  while (!link_empty(&c->waiters)) /* they find it closed */
    G->wake(h, container_of(c->waiters.next, gh_thread, link), WK_OK);
  return 0;
}

static int l_gc(lua_State *L) {
  pgconn *c = luaL_checkudata(L, 1, CONN_MT);
  if (c->pg) {
    if (c->fd >= 0) {
      lua_getfield(L, LUA_REGISTRYINDEX, HUB_KEY);
      gh_hub *h = lua_touserdata(L, -1);
      if (h && !h->closed) G->fd_forget(h, c->fd);
    }
    PQfinish(c->pg);
    c->pg = NULL;
  }
  keep_clear(c);
  return 0;
}

/* c:status() -> "ok" | "busy" | "bad" | "closed"; an idle connection
   reads what waits in its socket first (a server gone says so there) */
static int l_status(lua_State *L) {
  pgconn *c = conn_check(L);
  if (!c->pg) { lua_pushliteral(L, "closed"); return 1; }
  if (c->busy) { lua_pushliteral(L, "busy"); return 1; }
  if (PQstatus(c->pg) == CONNECTION_OK && c->fd >= 0 && readable_now(c->fd))
    PQconsumeInput(c->pg);
  lua_pushstring(L, PQstatus(c->pg) == CONNECTION_OK ? "ok" : "bad");
  return 1;
}

static int escape(lua_State *L, int ident) {
  pgconn *c = conn_check(L);
  size_t len;
  const char *s = luaL_checklstring(L, 2, &len);
  if (!c->pg) return luaL_error(L, "greenhub.pg: the connection is closed");
  char *e = ident ? PQescapeIdentifier(c->pg, s, len) : PQescapeLiteral(c->pg, s, len);
  if (!e) {
    lua_pushnil(L);
    push_msg(L, PQerrorMessage(c->pg));
    return 2;
  }
  lua_pushstring(L, e);
  PQfreemem(e);
  return 1;
}
static int l_escape_literal(lua_State *L) { return escape(L, 0); }
static int l_escape_identifier(lua_State *L) { return escape(L, 1); }

/* c:statement_cache([n]) -> the limit before; n = 0 stops preparing
   (poolers in transaction mode cannot keep prepared statements) */
static int l_statement_cache(lua_State *L) {
  pgconn *c = conn_check(L);
  int before = c->cache_max;
  if (!lua_isnoneornil(L, 2)) {
    lua_Integer n = luaL_checkinteger(L, 2);
    luaL_argcheck(L, n >= 0 && n <= 100000, 2, "must be 0..100000");
    c->cache_max = (int)n;
  }
  lua_pushinteger(L, before);
  return 1;
}

static int l_fd(lua_State *L) {
  pgconn *c = conn_check(L);
  lua_pushinteger(L, c->pg ? c->fd : -1);
  return 1;
}

static int l_backend_pid(lua_State *L) {
  pgconn *c = conn_check(L);
  lua_pushinteger(L, c->pg ? PQbackendPID(c->pg) : 0);
  return 1;
}

static int l_tostring(lua_State *L) {
  pgconn *c = conn_check(L);
  if (!c->pg) lua_pushfstring(L, "greenhub.pg connection (closed): %p", (void *)c);
  else lua_pushfstring(L, "greenhub.pg connection (%s, pid %d): %p",
                       PQdb(c->pg), PQbackendPID(c->pg), (void *)c);
  return 1;
}

static int l_null_tostring(lua_State *L) {
  lua_pushliteral(L, "pg.null");
  return 1;
}

static int l_libversion(lua_State *L) {
  lua_pushinteger(L, PQlibVersion());
  return 1;
}

static const luaL_Reg conn_methods[] = {
  {"query", l_query}, {"wait_notify", l_wait_notify}, {"close", l_close},
  {"status", l_status}, {"escape_literal", l_escape_literal},
  {"escape_identifier", l_escape_identifier}, {"getfd", l_fd},
  {"backend_pid", l_backend_pid}, {"_recover", l_recover},
  {"statement_cache", l_statement_cache},
  {NULL, NULL}
};

static const luaL_Reg funcs[] = {
  {"_connect", l_connect}, {"_parse", l_parse}, {"libversion", l_libversion},
  {NULL, NULL}
};

GH_EXPORT int luaopen_greenhub_pgcore(lua_State *L) {
  lua_getglobal(L, "require");
  lua_pushliteral(L, "greenhub.core");
  lua_call(L, 1, 1);
  lua_getfield(L, -1, "_capi");
  const gh_capi *api = lua_touserdata(L, -1);
  if (!api || api->version != GH_CAPI_VERSION || api->hub_size != sizeof(gh_hub) ||
      api->thread_size != sizeof(gh_thread))
    return luaL_error(L, "greenhub.pgcore: built for another greenhub.core (rebuild both)");
  G = api;
  lua_settop(L, 0);
  gh_hub *h = G->get(L);

  lua_newtable(L);                          /* 1: module */
  lua_pushlightuserdata(L, h);              /* 2: upvalue hub */
  lua_newuserdatauv(L, 1, 0);               /* 3: pg.null */
  lua_createtable(L, 0, 2);
  lua_pushcfunction(L, l_null_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pushliteral(L, "pg.null");
  lua_setfield(L, -2, "__name");
  lua_pushliteral(L, "pg.null");
  lua_setfield(L, -2, "__metatable");
  lua_setmetatable(L, -2);
  lua_newtable(L);                          /* 4: env {recover = f} */

  lua_pushvalue(L, 3);
  lua_setfield(L, 1, "null");
  lua_pushvalue(L, 4);
  lua_setfield(L, 1, "_env");

  lua_pushvalue(L, 1);
  lua_pushvalue(L, 2); lua_pushvalue(L, 3); lua_pushvalue(L, 4);
  luaL_setfuncs(L, funcs, 3);
  lua_pop(L, 1);

  if (luaL_newmetatable(L, CONN_MT)) {      /* 5 */
    lua_newtable(L);
    lua_pushvalue(L, 2); lua_pushvalue(L, 3); lua_pushvalue(L, 4);
    luaL_setfuncs(L, conn_methods, 3);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, l_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushvalue(L, 2); lua_pushvalue(L, 3); lua_pushvalue(L, 4);
    lua_pushcclosure(L, l_close, 3);
    lua_setfield(L, -2, "__close");
    lua_pushcfunction(L, l_tostring);
    lua_setfield(L, -2, "__tostring");
  }
  lua_getfield(L, -1, "__index");
  lua_setfield(L, 1, "methods");
  lua_settop(L, 1);
  return 1;
}
