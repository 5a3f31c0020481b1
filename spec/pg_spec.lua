-- greenhub.pg against a throwaway PostgreSQL server (spec/helpers/pg_server.lua:
-- initdb + pg_ctl in a temp dir, Unix socket only), started and stopped here.
local H = require "helper"
local gh = H.gh
local S = require "helpers.pg_server"
local pg = require "greenhub.pg"

-- a ticker: the largest gap between its 1 ms ticks while f runs
local function ticking(f, ...)
  local stop, gap, last = false, 0, gh.clock()
  local t = gh.spawn(function()
    while not stop do
      gh.sleep(0.001)
      local now = gh.clock()
      if now - last > gap then gap = now - last end
      last = now
    end
  end)
  local r = table.pack(f(...))
  stop = true
  t:wait()
  return gap, table.unpack(r, 1, r.n)
end

local open_fds = H.open_fds

describe("greenhub.pg", function()
  local srv, db

  setup(function()
    local err
    srv, err = S.start()
    assert(srv, err)
    db = assert(pg.connect(srv.conninfo, 10))
  end)

  teardown(function()
    if db then db:close() end
    if srv then srv:stop() end
  end)

  it("maps result types: integers, floats, numeric, bool, NULL, text", function()
    local rows = H.bounded(10, db.query, db, [[
      select 1::int2 as i2, 2147483647::int4 as i4, 9223372036854775807::int8 as i8,
             1.5::float4 as f4, 0.1::float8 as f8, 'Infinity'::float8 as inf, 'NaN'::float8 as nan,
             12.25::numeric as n, 42::numeric as ni, 123456789012345678901234::numeric as nbig,
             0.12345678901234567890::numeric as nlong, true as t, false as f, null::int as z,
             'héllo'::text as s, '\x00ff'::bytea as b, '2026-12-04'::date as d, 7::oid as o]])
    local r = rows[1]
    assert.equal(1, #rows)
    assert.equal(1, r.i2); assert.equal("integer", math.type(r.i2))
    assert.equal(2147483647, r.i4)
    assert.equal(math.maxinteger, r.i8); assert.equal("integer", math.type(r.i8))
    assert.equal(1.5, r.f4); assert.equal(0.1, r.f8); assert.equal("float", math.type(r.f8))
    assert.equal(math.huge, r.inf); assert.is_true(r.nan ~= r.nan)
    assert.equal(12.25, r.n); assert.equal(42, r.ni); assert.equal("integer", math.type(r.ni))
    assert.equal("123456789012345678901234", r.nbig)      -- would lose precision: a string
    assert.equal("0.12345678901234567890", r.nlong)
    assert.is_true(r.t); assert.is_false(r.f)
    assert.equal(pg.null, r.z); assert.equal("pg.null", tostring(pg.null))
    assert.equal("héllo", r.s); assert.equal("\\x00ff", r.b)
    assert.equal("2026-12-04", r.d); assert.equal("7", r.o)
  end)

  it("binds parameters: nil and pg.null are NULL, trailing nils count, floats exactly", function()
    local rows = H.bounded(10, db.query, db,
      "select $1::int as a, $2::text as b, $3::bool as c, $4::text is null as d, $5::float8 as e, $6::int8 as f, $7::text is null as g, $8::text is null as h",
      -7, "it's \"quoted\" \\ ", false, nil, 0.1, math.mininteger, pg.null, nil)
    local r = rows[1]
    assert.same({ a = -7, b = "it's \"quoted\" \\ ", c = false, d = true, e = 0.1, f = math.mininteger, g = true, h = true }, r)
    -- the count includes trailing nils: three placeholders, three values
    local r3 = H.bounded(10, db.query, db, "select coalesce($1::int, 0) + coalesce($2::int, 0) + coalesce($3::int, 0) as s", 1, nil, nil)
    assert.equal(1, r3[1].s)
    local r4 = H.bounded(10, db.query, db, "select $1::float8 as x, $2::float8 as y, $3::float8 as z", math.huge, -math.huge, 0 / 0)
    assert.equal(math.huge, r4[1].x); assert.equal(-math.huge, r4[1].y); assert.is_true(r4[1].z ~= r4[1].z)
    local long = string.rep("x", 1000000)
    assert.equal(1000000, H.bounded(10, db.query, db, "select length($1::text) as n", long)[1].n)
  end)

  it("returns nil, message, sqlstate for SQL errors; the connection goes on", function()
    local rows, msg, state = H.bounded(10, db.query, db, "select * from no_such_table")
    assert.is_nil(rows)
    assert.equal('relation "no_such_table" does not exist', msg)
    assert.equal("42P01", state)
    assert.is_nil((H.bounded(10, db.query, db, "selec 1")))
    assert.equal("42601", select(3, H.bounded(10, db.query, db, "selec 1")))
    assert.equal("08P01", select(3, H.bounded(10, db.query, db, "select $1::int, $2::int", 1)))
    assert(H.bounded(10, db.query, db, "create table uq (id int primary key, v text)"))
    local ins = assert(H.bounded(10, db.query, db, "insert into uq values (1, 'a'), (2, 'b')"))
    assert.equal(2, ins.affected); assert.equal(0, #ins)
    local _, m2, s2 = H.bounded(10, db.query, db, "insert into uq values ($1, $2)", 1, "again")
    assert.equal("23505", s2)
    assert.matches("duplicate key value violates unique constraint", m2)
    local up = H.bounded(10, db.query, db, "update uq set v = $1 where id > $2 returning id", "z", 0)
    assert.equal(2, up.affected); assert.equal(2, #up)
    assert.equal(1, H.bounded(10, db.query, db, "select 1 as one")[1].one)
  end)

  it("runs several statements in one string without parameters (the last result)", function()
    local rows = H.bounded(10, db.query, db, "create temp table m (x int); insert into m values (1), (2); select sum(x) as s from m")
    assert.equal(3, rows[1].s)
    local r, _, st = H.bounded(10, db.query, db, "select 1; select * from nope; select 2")
    assert.is_nil(r); assert.equal("42P01", st)
  end)

  it("refuses COPY both ways with a clear error; big results come whole", function()
    assert(H.bounded(10, db.query, db, "create table big (x int); insert into big select generate_series(1, 100000)"))
    assert.same({ nil, "COPY TO STDOUT is not supported by greenhub.pg", "0A000" },
      { H.bounded(10, db.query, db, "copy big to stdout") })
    local r, msg, st = H.bounded(10, db.query, db, "copy big from stdin")
    assert.is_nil(r); assert.equal("57014", st)
    assert.matches("COPY FROM STDIN is not supported by greenhub.pg", msg)
    local rows = H.bounded(10, db.query, db, "select x from big order by x")
    assert.equal(100000, #rows); assert.equal(100000, rows[100000].x)
    local v = H.bounded(10, db.query, db, "select repeat('ab', 5000000) as v")[1].v
    assert.equal(10000000, #v)
  end)

  it("prepares a query with parameters once per connection and recovers stale statements", function()
    local c = assert(pg.connect(srv.conninfo, 10))
    local function nprep() return c:query("select count(*) as n from pg_prepared_statements")[1].n end
    assert.equal(0, nprep())
    for i = 1, 5 do assert.equal(i, c:query("select $1::int as v", i)[1].v) end
    assert.equal(1, nprep())
    assert.equal("x", c:query("select $1::text as v", "x")[1].v)
    assert.equal(2, nprep())
    -- DISCARD ALL drops them on the server: the next use prepares again
    assert(c:query("discard all"))
    assert.equal(0, nprep())
    assert.equal(7, c:query("select $1::int as v", 7)[1].v)
    assert.equal(1, nprep())
    -- a changed result type: outside a transaction it is prepared again at once
    assert(c:query("create table shape (a int)"))
    assert(c:query("insert into shape values (1)"))
    assert.equal(1, c:query("select * from shape where a = $1", 1)[1].a)
    assert(c:query("alter table shape add column b text default 'new'"))
    local r = c:query("select * from shape where a = $1", 1)
    assert.equal("new", r[1].b)
    -- inside a transaction the error is the caller's (the transaction is aborted)
    assert(c:query("alter table shape add column c int default 3"))
    assert(c:query("begin"))
    local r2, _, st = c:query("select * from shape where a = $1", 1)
    assert.is_nil(r2); assert.equal("0A000", st)
    assert(c:query("rollback"))
    assert.equal(3, c:query("select * from shape where a = $1", 1)[1].c)
    -- a syntax error is not cached; statement_cache(0) stops preparing
    assert.equal("42601", select(3, c:query("selec $1::int", 1)))
    assert.equal(128, c:statement_cache(0))
    local before = nprep()
    assert.equal(9, c:query("select $1::int + 0 as v", 9)[1].v)
    assert.equal(before, nprep())
    assert.has_error(function() c:statement_cache(-1) end)
    -- past the limit queries still run, unprepared
    c:statement_cache(3)
    for i = 1, 10 do assert.equal(i, c:query("select $1::int + " .. i .. " - " .. i .. " as v", i)[1].v) end
    assert.is_true(nprep() <= before + 3)
    c:close()
  end)

  it("raises on arguments it cannot send", function()
    assert.has_error(function() db:query("select $1", {}) end, "bad argument #2 to 'query' (cannot send a table as a parameter)")
    assert.has_error(function() db:query("select $1", print) end)
    assert.has_error(function() db:query("select $1::text", "a\0b") end,
      "bad argument #2 to 'query' (a zero byte cannot be sent as text (encode bytea as hex))")
    assert.has_error(function() db:query(nil) end)
    assert.equal(1, H.bounded(10, db.query, db, "select 1 as one")[1].one) -- nothing was left half-done
  end)

  it("keeps the documented small promises: repeated columns, getfd, status busy, unlisten, pool acquire/release", function()
    assert.same({ a = 2 }, H.bounded(10, db.query, db, "select 1 as a, 2 as a")[1]) -- the last wins
    assert.is_true(db:getfd() >= 0)
    local c = assert(pg.connect(srv.conninfo, 10))
    local t = gh.spawn(function() return c:query("select pg_sleep(0.1)") end)
    gh.sleep(0.02)
    assert.equal("busy", c:status())
    assert(H.bounded(5, t.wait, t))
    assert.equal("ok", c:status())
    assert(c:listen("a chan"))
    assert(c:unlisten("a chan"))
    assert(c:unlisten())
    db:query("notify \"a chan\", 'x'")
    assert.same({ nil, "timeout" }, { c:wait_notify(0.1) }) -- no longer listening
    c:close()
    assert.equal(-1, c:getfd())
    local pool = pg.pool { conninfo = srv.conninfo, size = 1 }
    local one = assert(pool:acquire(1))
    assert.same({ nil, "timeout" }, { pool:acquire(0.05) }) -- the only one is out
    assert(one:query("begin")); assert(one:query("select 1")); assert(one:query("commit"))
    pool:release(one)
    local again = assert(pool:acquire(1))
    assert.equal(one, again) -- the same connection, back from the pool
    pool:release(again)
    pool:close()
    assert.same({ nil, "closed" }, { pool:acquire(1) })
    assert.has_error(function() pg.pool { conninfo = srv.conninfo, size = 0 } end)
    assert.has_error(function() pg.pool {} end)
  end)

  it("escapes literals and identifiers", function()
    assert.equal("'it''s'", db:escape_literal("it's"))
    assert.equal(" E'a\\\\b'", db:escape_literal("a\\b")) -- libpq's own leading space
    assert.equal('"we""ird"', db:escape_identifier('we"ird'))
    local q = "select " .. db:escape_literal("x'); drop table uq; --") .. " as v"
    assert.equal("x'); drop table uq; --", H.bounded(10, db.query, db, q)[1].v)
  end)

  it("runs 50 green threads on a pool of 10 while a ticker keeps ticking", function()
    local pool = pg.pool { conninfo = srv.conninfo, size = 10 }
    local t0 = gh.clock()
    local gap, all = ticking(function()
      local ts = {}
      for i = 1, 50 do
        ts[i] = gh.spawn(function()
          local rows = assert(pool:query("select pg_sleep(0.1), $1::int as i, pg_backend_pid() as pid", i))
          return rows[1].i, rows[1].pid
        end)
      end
      local pids = {}
      for i = 1, 50 do
        local v, pid = ts[i]:wait()
        assert.equal(i, v)
        pids[pid] = true
      end
      return pids
    end)
    local dt = gh.clock() - t0
    local n = 0
    for _ in pairs(all) do n = n + 1 end
    assert.is_true(n <= 10, n .. " connections")
    assert.is_true(dt >= 0.5 and dt < H.scale(2.5), "took " .. dt) -- serial would be 5 s
    assert.is_true(gap < H.scale(0.05), "ticker gap " .. gap)
    pool:close()
  end)

  it("cancels a query on the server when with_timeout fires; the connection is reused", function()
    local c = assert(pg.connect(srv.conninfo, 10))
    local pid = c:backend_pid()
    local t0 = gh.clock()
    local r, e = gh.with_timeout(0.2, c.query, c, "select pg_sleep(10)")
    assert.is_nil(r); assert.equal("timeout", e)
    local one = H.bounded(5, c.query, c, "select 1 as one")
    assert.equal(1, one[1].one)
    assert.is_true(gh.clock() - t0 < H.scale(1.2), "reuse took " .. (gh.clock() - t0))
    -- the server says it no longer runs the sleep
    local act = H.bounded(5, db.query, db, "select count(*) as n from pg_stat_activity where pid = $1 and query like '%pg_sleep(10)%' and state = 'active'", pid)
    assert.equal(0, act[1].n)
    c:close()
  end)

  it("cancels a killed thread's query; the next user of the connection waits its turn", function()
    local c = assert(pg.connect(srv.conninfo, 10))
    local t = gh.spawn(function() return c:query("select pg_sleep(10)") end)
    gh.sleep(0.1)
    t:kill()
    assert.equal("dead", t:status())
    local t0 = gh.clock()
    assert.equal(2, H.bounded(5, c.query, c, "select 2 as two")[1].two)
    assert.is_true(gh.clock() - t0 < H.scale(1), "waited " .. (gh.clock() - t0))
    c:close()
  end)

  it("survives kills at every blocking point: in line, in wait_notify, while connecting", function()
    local c = assert(pg.connect(srv.conninfo, 10))
    -- one thread holds the connection; two wait in line; the first of those is killed
    local a = gh.spawn(function() return c:query("select pg_sleep(0.2), 1 as v") end)
    local b = gh.spawn(function() return c:query("select 2 as v") end)
    local d = gh.spawn(function() return c:query("select 3 as v") end)
    gh.sleep(0.05)
    b:kill()
    assert.equal(1, H.bounded(5, a.wait, a)[1].v)
    assert.equal(3, H.bounded(5, d.wait, d)[1].v)
    -- the holder is killed while two wait in line: both run after the recovery
    local h = gh.spawn(function() return c:query("select pg_sleep(10)") end)
    local w1 = gh.spawn(function() return c:query("select 4 as v") end)
    local w2 = gh.spawn(function() return c:query("select 5 as v") end)
    gh.sleep(0.05)
    h:kill()
    assert.equal(4, H.bounded(5, w1.wait, w1)[1].v)
    assert.equal(5, H.bounded(5, w2.wait, w2)[1].v)
    -- killed in wait_notify: the connection still listens and answers
    assert(c:listen("killchan"))
    local n = gh.spawn(function() return c:wait_notify(10) end)
    gh.sleep(0.05)
    n:kill()
    assert(db:query("notify killchan, 'later'"))
    assert.equal("later", select(2, H.bounded(5, c.wait_notify, c, 2)))
    -- killed while connecting to a server that never answers: no fd left behind
    local l = assert(gh.listen("127.0.0.1", 0))
    local _, port = l:getsockname()
    collectgarbage(); collectgarbage()
    local fds = open_fds()
    local k = gh.spawn(function() return pg.connect("host=127.0.0.1 port=" .. port, 10) end)
    gh.sleep(0.05)
    k:kill()
    collectgarbage(); collectgarbage()
    l:close()
    assert.equal(fds - 1, open_fds())
    -- a timeout inside a pool query gives the connection back, recovered
    local pool = pg.pool { conninfo = srv.conninfo, size = 1 }
    assert.same({ nil, "timeout" }, { gh.with_timeout(0.1, pool.query, pool, "select pg_sleep(10)") })
    assert.equal(6, H.bounded(5, pool.query, pool, "select 6 as v")[1].v)
    pool:close()
    c:close()
  end)

  it("serialises threads sharing one connection", function()
    local ts = {}
    for i = 1, 20 do
      ts[i] = gh.spawn(function() return db:query("select $1::int * 2 as v, pg_sleep(0.005)", i)[1].v end)
    end
    for i = 1, 20 do assert.equal(i * 2, H.bounded(10, ts[i].wait, ts[i])) end
  end)

  it("delivers LISTEN/NOTIFY between two connections", function()
    local l = assert(pg.connect(srv.conninfo, 10))
    assert(l:listen("ghchan"))
    assert(l:listen("other chan"))
    gh.spawn(function()
      gh.sleep(0.05)
      db:query("select pg_notify('ghchan', $1)", "payload 'with' quotes")
      db:query("notify \"other chan\"")
    end)
    local ch, payload, pid = H.bounded(5, l.wait_notify, l, 2)
    assert.equal("ghchan", ch); assert.equal("payload 'with' quotes", payload)
    assert.equal(db:backend_pid(), pid)
    local ch2, p2 = H.bounded(5, l.wait_notify, l, 2)
    assert.equal("other chan", ch2); assert.equal("", p2)
    local t0 = gh.clock()
    assert.same({ nil, "timeout" }, { l:wait_notify(0.1) }) -- (H.bounded would take it for its own)
    assert.is_true(gh.clock() - t0 >= 0.09)
    -- a notification that arrives during a query is kept for wait_notify
    db:query("notify ghchan, 'during'")
    assert(l:query("select pg_sleep(0.05)"))
    assert.equal("during", select(2, H.bounded(5, l.wait_notify, l, 1)))
    l:close()
  end)

  it("reports closed connections; close wakes a thread waiting on it", function()
    local c = assert(pg.connect(srv.conninfo, 10))
    local t = gh.spawn(function() return c:query("select pg_sleep(5)") end)
    gh.sleep(0.05)
    c:close()
    assert.same({ nil, "closed" }, { H.bounded(2, t.wait, t) })
    assert.same({ nil, "closed" }, { c:query("select 1") })
    assert.equal("closed", c:status())
    c:close() -- twice is fine
    do local c2 <close> = assert(pg.connect(srv.conninfo, 10)) end
  end)

  it("fails to connect cleanly: no server, a silent server, bad conninfo; the hub never stalls", function()
    local gap, c, err = ticking(pg.connect, "host=/nonexistent/dir user=postgres", 2)
    assert.is_nil(c); assert.matches("No such file or directory", err)
    -- a TCP peer that never answers: the timeout, with the name resolved by the hub
    local l = assert(gh.listen("127.0.0.1", 0))
    local _, port = l:getsockname()
    local t0 = gh.clock()
    local gap2, c2, err2 = ticking(pg.connect, "host=localhost port=" .. port .. " user=postgres", 0.3)
    assert.is_nil(c2); assert.equal("timeout", err2)
    assert.is_true(gh.clock() - t0 < H.scale(1))
    assert.is_true(gap < H.scale(0.05) and gap2 < H.scale(0.05), "ticker gaps " .. gap .. ", " .. gap2)
    l:close()
    -- every address of a name is tried (a server on 127.0.0.1 only is found
    -- however localhost resolves); this one answers nonsense
    local l2 = assert(gh.listen("127.0.0.1", 0))
    local _, port2 = l2:getsockname()
    local srvt = gh.spawn(function() local s2 = l2:accept(); s2:send("N"); gh.sleep(1); s2:close() end)
    local c6, err6 = pg.connect("host=localhost port=" .. port2 .. " user=x sslmode=disable", 2)
    assert.is_nil(c6)
    assert.matches('at "127%.0%.0%.1", port ' .. port2 .. " failed: expected authentication request", err6)
    srvt:kill(); l2:close()
    local c3, err3 = pg.connect("host= = =")
    assert.is_nil(c3); assert.is_string(err3)
    require("greenhub.core")._resolver_delay("nohost.pg.test", 0) -- "not found", no DNS asked
    local c4, err4 = pg.connect("host=nohost.pg.test user=postgres", 2)
    assert.is_nil(c4); assert.matches("could not translate host name", err4)
    assert.has_error(function() pg.connect(42) end)
    -- a table of keywords works too
    local c5 = assert(pg.connect({ host = srv.dir, user = "postgres", dbname = "postgres" }, 5))
    assert.equal("ok", c5:status())
    c5:close()
  end)

  it("leaks no fd and no memory over 10,000 queries", function()
    local c = assert(pg.connect(srv.conninfo, 10))
    for _ = 1, 200 do c:query("select $1::int as v", 1) end
    collectgarbage(); collectgarbage()
    local fds, mem = open_fds(), collectgarbage("count")
    H.bounded(H.scale(60), function()
      for i = 1, 10000 do
        local r = c:query("select $1::int as v", i)
        if r[1].v ~= i then error("wrong row " .. i) end
      end
    end)
    collectgarbage(); collectgarbage()
    assert.equal(fds, open_fds())
    assert.is_true(collectgarbage("count") < mem + 256, "Lua heap grew from " .. mem .. " to " .. collectgarbage("count"))
    c:close()
    -- connections opened and closed give their fds back
    for _ = 1, 20 do assert(pg.connect(srv.conninfo, 10)):close() end
    assert.equal(fds - 1, open_fds())
  end)

  it("says how to get the C part when greenhub.pgcore is missing", function()
    local out = H.run_script([[
      package.preload["greenhub.pgcore"] = function() error("module 'greenhub.pgcore' not found") end
      local ok, err = pcall(require, "greenhub.pg")
      print(ok, err)
    ]])
    assert.matches("false", out)
    assert.matches("apt%-get install libpq%-dev", out)
  end)

  it("examples/pg_http.lua: notes over HTTP in PostgreSQL, /wait through LISTEN/NOTIFY", function()
    local http = require "greenhub.http"
    local cpath = package.cpath:match("^([^;]*)")
    local port = H.free_port()
    local p = assert(gh.popen({ "lua5.4", "-e", "package.cpath='" .. cpath .. ";'..package.cpath",
      "examples/pg_http.lua", srv.conninfo, tostring(port) }, { stdin = "null", stdout = "pipe", stderr = "pipe" }))
    local base = "http://127.0.0.1:" .. port
    local up
    for _ = 1, 200 do
      local c = gh.connect("127.0.0.1", port)
      if c then c:close(); up = true; break end
      gh.sleep(0.02)
    end
    assert(up, "pg_http did not start")
    local r = assert(http.fetch { url = base .. "/notes", method = "POST", body = "first note" })
    assert.equal(201, r.status)
    local id = tonumber(r.body)
    assert.is_number(id)
    assert.equal("first note", http.fetch(base .. "/notes/" .. id).body)
    assert.equal(404, http.fetch(base .. "/notes/99999").status)
    -- a waiter gets the next note posted
    local w = gh.spawn(function() return http.fetch(base .. "/wait") end)
    gh.sleep(0.2)
    assert.equal(201, http.fetch { url = base .. "/notes", method = "POST", body = "second, with 'quotes'" }.status)
    local wr = H.bounded(10, w.wait, w)
    assert.equal(200, wr.status); assert.equal("second, with 'quotes'", wr.body)
    assert.matches("\tfirst note\n.*\tsecond, with 'quotes'\n", http.fetch(base .. "/notes").body)
    assert.matches("second", http.fetch(base .. "/notes?q=quo").body)
    assert.equal("", http.fetch(base .. "/notes?q=nothing+like+it").body)
    assert.equal(204, http.fetch { url = base .. "/notes/" .. id, method = "DELETE" }.status)
    assert.equal(404, http.fetch { url = base .. "/notes/" .. id, method = "DELETE" }.status)
    p:kill("TERM")
    assert.same({ true, "exit", 0 }, { p:wait(10) })
    p:close()
  end)

  it("gives clean errors while the server restarts, then the pool reconnects", function()
    local pool = pg.pool { conninfo = srv.conninfo, size = 4 }
    for _ = 1, 4 do assert(pool:query("select 1")) end
    local errors, oks, raised = 0, 0, 0
    local stop = false
    local workers = {}
    for w = 1, 4 do
      workers[w] = gh.spawn(function()
        while not stop do
          local ok, r, e = pcall(pool.query, pool, "select $1::int as w", w)
          if not ok then raised = raised + 1
          elseif r then oks = oks + 1; assert(r[1].w == w)
          else errors = errors + 1; assert(type(e) == "string") end
          gh.sleep(0.005)
        end
      end)
    end
    gh.sleep(0.2)
    local before = oks
    assert(srv:halt("fast"))
    gh.sleep(0.2)
    local during = errors
    assert(srv:start_again())
    local t0 = gh.clock()
    local after0 = oks
    while oks == after0 and gh.clock() - t0 < H.scale(5) do gh.sleep(0.05) end
    gh.sleep(0.2)
    stop = true
    for w = 1, 4 do
      local okw = pcall(H.bounded, 10, workers[w].wait, workers[w])
      if not okw then
        for _, t in ipairs(gh.threads()) do print(t, t:traceback()) end
        error("worker " .. w .. " stuck")
      end
    end
    assert.equal(0, raised)
    assert.is_true(before > 0)
    assert.is_true(during > 0, "no errors while the server was down")
    assert.is_true(oks > after0, "no success after the restart")
    pool:close()
    -- the shared connection of the other specs is gone with that server: a fresh one
    db:close()
    db = assert(pg.connect(srv.conninfo, 10))
    assert.equal(1, db:query("select 1 as one")[1].one)
  end)
end)
