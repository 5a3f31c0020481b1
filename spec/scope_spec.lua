-- gh.scope (deadlines and cancellation that cover every blocking call)
-- and gh.testing.virtual_clock.
local H = require "helper"
local gh = H.gh
local core = require "greenhub.core"

-- virtual seconds are whole nanoseconds: compare them to a nanosecond
local function near(expected, got)
  assert(math.abs(expected - got) < 1e-6, ("expected %s, got %s"):format(expected, got))
end

local function elapsed(f, ...)
  local t0 = gh.clock()
  local r = table.pack(f(...))
  return gh.clock() - t0, table.unpack(r, 1, r.n)
end

-- a TCP port whose accept queue is full: a connect to it hangs
local function full_listener()
  local l = assert(core.tcp())
  assert(l:bind("127.0.0.1", 0))
  assert(l:listen(1))
  local _, port = l:getsockname()
  local fillers = {}
  for i = 1, 4 do
    local c = core.tcp()
    c:settimeout(0.2)
    c:connect("127.0.0.1", port)
    fillers[i] = c
  end
  return l, port, fillers
end

describe("gh.scope", function()
  it("bounds the owner's blocking calls: values give nil, timeout; sleep raises", function()
    local a, b = H.tcp_pair()
    local t0 = gh.clock()
    do
      local sc <close> = gh.scope(0.1)
      assert.same({ nil, "timeout", "" }, { a:receive() })
      local dt = gh.clock() - t0
      assert.is_true(dt >= 0.09 and dt < H.scale(0.5), "receive took " .. dt)
      -- sticky: every later blocking call fails at once
      local d2, ok, err = elapsed(pcall, gh.sleep, 5)
      assert.is_false(ok); assert.equal("timeout", err)
      assert.is_true(d2 < 0.05)
      assert.same({ nil, "timeout" }, { gh.event():wait(10) })
      assert.same({ nil, "timeout" }, { gh.queue():get() })
      assert.same({ nil, "timeout" }, { gh.semaphore(0):acquire() })
      assert.is_nil((a:receive()))
    end
    -- out of the scope, calls work again
    assert.is_true(pcall(gh.sleep, 0.01))
    b:send("x\n")
    assert.equal("x", a:receive())
    a:close(); b:close()
  end)

  it("a pcall that swallowed the timeout cannot make the task hang (sticky)", function()
    local dt = elapsed(function()
      local sc <close> = gh.scope(0.05)
      pcall(gh.sleep, 1)
      pcall(gh.sleep, 5) -- at once
      pcall(gh.sleep, 5)
    end)
    assert.is_true(dt < H.scale(0.3), "took " .. dt)
  end)

  it("with_timeout is a scope too: after a swallowed interrupt, f's calls fail at once", function()
    local dt, r, e = elapsed(gh.with_timeout, 0.05, function()
      pcall(gh.sleep, 1)    -- the interrupt, swallowed
      gh.sleep(5)           -- fails at once: "timeout" raised
      return "never"
    end)
    assert.same({ nil, "timeout" }, { r, e })
    assert.is_true(dt < H.scale(0.3), "took " .. dt)
    local dt2, r2, e2 = elapsed(gh.with_timeout, 0.05, function()
      pcall(gh.sleep, 1)
      return gh.event():wait(10) -- nil, "timeout" at once: f's own results
    end)
    assert.same({ nil, "timeout" }, { r2, e2 })
    assert.is_true(dt2 < H.scale(0.3))
    -- nested both ways, results and errors unchanged
    assert.same({ nil, "timeout" }, { gh.with_timeout(0.2, function() return gh.with_timeout(0.05, gh.sleep, 1) end) })
    assert.same({ nil, "timeout" }, { gh.with_timeout(0.05, function() return gh.with_timeout(0.2, gh.sleep, 1) end) })
    assert.same({ 1, 2 }, { gh.with_timeout(1, function() return 1, 2 end) })
    assert.has_error(function() gh.with_timeout(1, error, "mine") end, "mine")
    -- a scope opened inside with_timeout is on its chain: its children
    -- fail at once too once the with_timeout's deadline passed
    local dt4 = elapsed(gh.with_timeout, 0.05, function()
      local inner <close> = gh.scope()
      local c = inner:spawn(function() pcall(gh.sleep, 5); pcall(gh.sleep, 5) end)
      pcall(gh.sleep, 1)
      pcall(c.wait, c)
    end)
    assert.is_true(dt4 < H.scale(0.3), "took " .. dt4)
    -- a scope leaked out of with_timeout unclosed: closing it later is fine
    local leaked
    gh.with_timeout(1, function() leaked = gh.scope() end)
    leaked:close()
    assert.is_true(pcall(gh.sleep, 0.01))
    -- inside a scope, with_timeout's deadline and the scope's both apply
    local sc <close> = gh.scope(0.05)
    local dt3 = elapsed(gh.with_timeout, 10, pcall, gh.sleep, 5)
    assert.is_true(dt3 < H.scale(0.3))
  end)

  it("children blocked in DNS, connect, TLS handshake and receive all return by the deadline", function()
    core._resolver_delay("slow.scope.test", 2) -- a worker takes 2 s, then "not found"
    local l, port, fillers = full_listener()
    local silent = assert(gh.listen("127.0.0.1", 0)) -- accepts (kernel), never answers
    local _, sport = silent:getsockname()
    local a, b = H.tcp_pair()
    local results = {}
    local t0 = gh.clock()
    do
      local sc <close> = gh.scope(0.3)
      sc:spawn(function() results.dns = table.pack(gh.resolve("slow.scope.test")) end)
      sc:spawn(function()
        local c = core.tcp()
        results.connect = table.pack(c:connect("127.0.0.1", port))
        c:close()
      end)
      sc:spawn(function() results.tls = table.pack(gh.tls.connect("127.0.0.1", sport, { verify = "none" })) end)
      sc:spawn(function() results.receive = table.pack(a:receive()) end)
      assert.same({ nil, "timeout" }, { sc:wait() }) -- and each child said what it got
    end
    local dt = gh.clock() - t0
    assert.is_true(dt >= 0.28 and dt < H.scale(1), "took " .. dt)
    for _, k in ipairs({ "dns", "connect", "tls", "receive" }) do
      assert.is_nil(results[k][1], k)
      assert.matches("timeout", tostring(results[k][2]), k)
    end
    for _, c in ipairs(fillers) do c:close() end
    l:close(); silent:close(); a:close(); b:close()
  end)

  it("waits for its children and returns their results through the handles", function()
    local sc <close> = gh.scope(5)
    local x = sc:spawn(function(v) gh.sleep(0.02); return v * 2 end, 21)
    local y = sc:spawn(function() return "y" end)
    assert.is_true(sc:wait())
    assert.equal(42, x:wait()); assert.equal("y", y:wait())
  end)

  it("cancels 10,000 children with one deadline", function()
    local before = gh.stats().threads
    local t0 = gh.clock()
    local ts = {}
    do
      local sc <close> = gh.scope(0.2)
      for i = 1, 10000 do ts[i] = sc:spawn(function() gh.sleep(100) end) end
      assert.same({ nil, "timeout" }, { sc:wait() })
    end
    local dt = gh.clock() - t0
    assert.is_true(dt < H.scale(2), "took " .. dt)
    for i = 1, 10000, 999 do assert.equal("dead", ts[i]:status()) end
    gh.sleep(0)
    assert.is_true(gh.stats().threads <= before)
  end)

  it("nests: the earliest deadline wins either way; cancelling the outer reaches inner children", function()
    local dt = elapsed(function()
      local outer <close> = gh.scope(0.1)
      local inner <close> = gh.scope(10)
      return pcall(gh.sleep, 5)
    end)
    assert.is_true(dt < H.scale(0.5), "outer deadline: " .. dt)
    dt = elapsed(function()
      local outer <close> = gh.scope(10)
      local inner <close> = gh.scope(0.1)
      return pcall(gh.sleep, 5)
    end)
    assert.is_true(dt < H.scale(0.5), "inner deadline: " .. dt)
    -- a child opens its own scope with children; the outer is cancelled
    local deep
    local outer = gh.scope()
    local mid = outer:spawn(function()
      local inner <close> = gh.scope()
      deep = inner:spawn(function() gh.sleep(100) end)
      inner:wait()
    end)
    gh.sleep(0.02)
    outer:cancel()
    assert.same({ nil, "cancelled" }, { outer:wait() })
    outer:close()
    assert.equal("dead", deep:status()); assert.equal("dead", mid:status())
    -- after leaving, the thread is bounded by nothing again
    assert.is_true(pcall(gh.sleep, 0.01))
  end)

  it("re-raises the first child error and cancels the siblings", function()
    local sibling
    local ok, err = pcall(function()
      local sc <close> = gh.scope(5)
      sibling = sc:spawn(function() gh.sleep(10) end)
      sc:spawn(function() gh.sleep(0.02); error({ code = 7 }) end)
      sc:spawn(function() gh.sleep(0.04); error("second") end)
      sc:wait()
    end)
    assert.is_false(ok); assert.same({ code = 7 }, err)
    assert.equal("dead", sibling:status())
    -- leaving without wait re-raises it too; the owner's own wait is cut short
    local t0 = gh.clock()
    local ok2, err2 = pcall(function()
      local sc <close> = gh.scope(5)
      sc:spawn(function() gh.sleep(0.02); error("boom", 0) end)
      local a, b = H.tcp_pair()
      local r, e = a:receive() -- the owner is in a blocking call when the child fails
      a:close(); b:close()
      assert(r == nil and e == "timeout")
    end)
    assert.is_false(ok2); assert.equal("boom", err2)
    assert.is_true(gh.clock() - t0 < H.scale(1))
  end)

  it("no child outlives the block; a plain gh.spawn inside is not a child", function()
    local child, plain
    do
      local sc <close> = gh.scope(5)
      child = sc:spawn(function() gh.sleep(100) end)
      plain = gh.spawn(function() gh.sleep(0.2); return "free" end)
    end
    assert.equal("dead", child:status())
    assert.is_true(plain:status() ~= "dead")
    local dt, v = elapsed(plain.wait, plain)
    assert.equal("free", v) -- not bounded by the scope's 5 s nor killed
    assert.is_true(dt < H.scale(1))
  end)

  it("cancel: wait says cancelled, leaving does not raise; the main thread can own scopes", function()
    local sc = gh.scope()
    local t = sc:spawn(function() gh.sleep(10) end)
    gh.spawn(function() gh.sleep(0.05); sc:cancel() end)
    local dt, r, e = elapsed(sc.wait, sc)
    assert.same({ nil, "cancelled" }, { r, e })
    assert.is_true(dt < H.scale(1))
    sc:close()
    assert.equal("dead", t:status())
    -- spawning on a cancelled scope: the child dies at once
    local sc2 <close> = gh.scope()
    sc2:cancel()
    local t2 = sc2:spawn(function() gh.sleep(10) end)
    assert.equal("dead", t2:status())
  end)

  it("rejects bad arguments and out-of-order closing", function()
    assert.has_error(function() gh.scope("x") end)
    assert.has_error(function() gh.scope(0 / 0) end)
    assert.has_error(function() gh.scope { timeout = "1" } end)
    local sc <close> = gh.scope()
    assert.has_error(function() sc:spawn(42) end)
    local outer = gh.scope()
    local inner = gh.scope()
    assert.has_error(function() outer:close() end)
    inner:close(); outer:close()
    local closed = gh.scope(); closed:close()
    assert.has_error(function() closed:spawn(print) end)
  end)

  it("the guide's patterns: fan-out with a deadline, the first connection wins", function()
    -- fan-out: two answer in time, one is late and killed
    local function fetch_all(delays, budget)
      local results = {}
      local sc <close> = gh.scope(budget)
      for i, d in ipairs(delays) do
        sc:spawn(function() gh.sleep(d); results[i] = "r" .. i end)
      end
      local ok, err = sc:wait()
      return results, ok, err
    end
    local dt, results, ok, err = elapsed(fetch_all, { 0.01, 0.02, 5 }, 0.2)
    assert.same({ "r1", "r2" }, results)
    assert.same({ nil, "timeout" }, { ok, err })
    assert.is_true(dt < H.scale(0.6))
    -- happy eyeballs: the first connection cancels the staggered others
    local l = assert(gh.listen("127.0.0.1", 0))
    local _, port = l:getsockname()
    local function connect_first(addrs, p, budget)
      local winner
      local sc <close> = gh.scope(budget)
      for i, ip in ipairs(addrs) do
        sc:spawn(function()
          gh.sleep((i - 1) * 0.25)
          local c = gh.connect(ip, p)
          if c and not winner then winner = c; sc:cancel()
          elseif c then c:close() end
        end)
      end
      local r, e = sc:wait()
      return winner, r, e
    end
    local dt2, c, r, e = elapsed(connect_first, { "127.0.0.1", "127.0.0.1", "127.0.0.1" }, port, 5)
    assert.is_truthy(c); assert.same({ nil, "cancelled" }, { r, e })
    assert.is_true(dt2 < H.scale(0.2), "took " .. dt2)
    c:close(); l:close()
  end)

  it("bounds a PostgreSQL query and cancels it on the server", function()
    local S = require "helpers.pg_server"
    local pg = require "greenhub.pg"
    local srv = assert(S.start())
    local db = assert(pg.connect(srv.conninfo, 10))
    local dt, r, e
    do
      local sc <close> = gh.scope(0.2)
      dt, r, e = elapsed(db.query, db, "select pg_sleep(10)")
    end
    assert.same({ nil, "timeout" }, { r, e })
    assert.is_true(dt < H.scale(1))
    assert.equal(1, H.bounded(5, db.query, db, "select 1 as one")[1].one)
    db:close()
    srv:stop()
  end)
end)

describe("gh.testing.virtual_clock", function()
  it("runs an hour of sleeps and timeouts in well under a second, in real-time order", function()
    local real0 = os.time()
    local order = {}
    local cpu0 = os.clock()
    do
      local vc <close> = gh.testing.virtual_clock()
      local t0 = gh.clock()
      for _, d in ipairs({ 1800, 60, 3599, 600, 0.5 }) do
        gh.spawn(function() gh.sleep(d); order[#order + 1] = d end)
      end
      -- a retry loop with exponential back-off against a deadline
      local tries = 0
      local worker = gh.spawn(function()
        local backoff = 1
        while true do
          tries = tries + 1
          if gh.with_timeout(backoff, gh.sleep, backoff * 2) then break end
          backoff = backoff * 2
          if backoff > 1024 then return "gave up", gh.clock() - t0 end
        end
      end)
      local what, when = worker:wait()
      assert.equal("gave up", what)
      assert.equal(11, tries)
      near(1 + 2 + 4 + 8 + 16 + 32 + 64 + 128 + 256 + 512 + 1024, when)
      gh.sleep(3600 - (gh.clock() - t0))
      near(3600, gh.clock() - t0)
      -- a scope's deadline follows virtual time too
      local sc <close> = gh.scope(30)
      local t1 = gh.clock()
      assert.is_false(pcall(gh.sleep, 100))
      near(30, gh.clock() - t1)
    end
    assert.same({ 0.5, 60, 600, 1800, 3599 }, order)
    assert.is_true(os.clock() - cpu0 < 1)
    assert.is_true(os.time() - real0 <= 2)
  end)

  it("the guide's retry with back-off runs on virtual time", function()
    local function with_retries(f, tries)
      local backoff = 0.5
      for _ = 1, tries do
        local r = f()
        if r then return r end
        gh.sleep(backoff)
        backoff = math.min(backoff * 2, 60)
      end
      return nil, "gave up"
    end
    local vc <close> = gh.testing.virtual_clock()
    local t0, calls = gh.clock(), {}
    local r, err = with_retries(function() calls[#calls + 1] = gh.clock() - t0 end, 5)
    assert.is_nil(r); assert.equal("gave up", err)
    for i, want in ipairs({ 0, 0.5, 1.5, 3.5, 7.5 }) do near(want, calls[i]) end
    near(15.5, gh.clock() - t0)
  end)

  it("advance fires due timers in order, each at its own instant", function()
    local vc <close> = gh.testing.virtual_clock()
    local t0 = gh.clock()
    local seen = {}
    gh.spawn(function()
      for _ = 1, 20 do gh.sleep(60); seen[#seen + 1] = gh.clock() - t0 end
    end)
    vc:advance(600)
    assert.equal(10, #seen)
    for i = 1, 10 do near(60 * i, seen[i]) end
    near(600, gh.clock() - t0)
    vc:advance(0)
    assert.equal(10, #seen)
    assert.has_error(function() vc:advance(-1) end)
    assert.has_error(function() gh.testing.virtual_clock() end) -- one at a time
  end)

  it("a socket timeout against a silent peer runs on virtual time", function()
    local a, b = H.tcp_pair()
    local real0 = gh.clock()
    do
      local vc <close> = gh.testing.virtual_clock()
      a:settimeout(3600)
      local t0 = gh.clock()
      assert.same({ nil, "timeout", "" }, { a:receive() })
      near(3600, gh.clock() - t0)
    end
    assert.is_true(gh.clock() - real0 < 1)
    -- data that is there comes first: no jump
    do
      local vc <close> = gh.testing.virtual_clock()
      local t0 = gh.clock()
      gh.spawn(function() b:send("hello\n") end)
      assert.equal("hello", a:receive())
      assert.equal(0, gh.clock() - t0)
    end
    a:close(); b:close()
  end)

  it("closing goes back to the real clock; armed timers keep their distance", function()
    local vc = gh.testing.virtual_clock()
    local fired
    gh.spawn(function() gh.sleep(0.1); fired = gh.clock() end)
    vc:advance(1000) -- it fires in virtual time
    assert.is_number(fired)
    fired = nil
    gh.spawn(function() gh.sleep(0.1); fired = true end)
    gh.sleep(0) -- armed on virtual time
    vc:close()
    local t0 = gh.clock()
    while not fired and gh.clock() - t0 < H.scale(2) do gh.sleep(0.01) end
    assert.is_true(fired)
    assert.is_true(gh.clock() - t0 < H.scale(0.5))
    vc:close() -- twice is fine
  end)
end)
