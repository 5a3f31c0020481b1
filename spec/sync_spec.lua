-- Coordination: events, semaphores, locks, queues, pools.
local H = require "helper"
local gh = H.gh

describe("event", function()
  it("send(...) wakes every waiter, in the order they started waiting", function()
    local e = gh.event()
    local order, ts = {}, {}
    for i = 1, 1000 do
      ts[i] = gh.spawn(function()
        local a, b = e:wait()
        order[#order + 1] = i
        return a, b
      end)
    end
    gh.sleep(0)
    assert.is_false(e:ready())
    e:send("x", nil)
    assert.is_true(e:ready())
    for i = 1, 1000 do
      local r = table.pack(ts[i]:wait())
      assert.equal(2, r.n); assert.equal("x", r[1])
    end
    local want = {}
    for i = 1, 1000 do want[i] = i end
    assert.same(want, order)
  end)

  it("wait after send returns at once; a second send raises; reset re-arms", function()
    local e = gh.event()
    e:send(1, 2, 3)
    assert.same({ 1, 2, 3 }, { e:wait() })
    assert.has_error(function() e:send(4) end)
    e:reset()
    assert.is_false(e:ready())
    gh.spawn(function() e:send("again") end)
    assert.equal("again", e:wait())
  end)

  it("wait(timeout) returns nil, 'timeout' and leaves no waiter behind", function()
    local e = gh.event()
    local t0 = H.now()
    assert.same({ nil, "timeout" }, { e:wait(0.02) })
    assert.is_true(H.now() - t0 >= 0.02)
    assert.equal(0, gh.stats().timers)
    e:send("late")
    assert.equal("late", e:wait(0))
  end)

  it("send from the main thread, a green thread and a linked callback", function()
    local e1, e2, e3 = gh.event(), gh.event(), gh.event()
    local w = gh.spawn(function() return e1:wait(), e2:wait(), e3:wait() end)
    gh.sleep(0)
    e1:send("main")
    gh.spawn(function() e2:send("green") end)
    local t = gh.spawn(function() return "done" end)
    t:link(function(th) e3:send("link:" .. th:wait()) end)
    assert.same({ "main", "green", "link:done" }, { w:wait() })
  end)

  it("a killed waiter leaves no stale entry", function()
    local e = gh.event()
    local a = gh.spawn(function() return e:wait() end)
    local b = gh.spawn(function() return e:wait() end)
    gh.sleep(0)
    a:kill()
    e:send("v")
    assert.equal("v", b:wait())
    assert.equal(0, select("#", a:wait()))
  end)
end)

describe("semaphore and lock", function()
  it("acquire/release/count", function()
    local m = gh.semaphore(2)
    assert.equal(2, m:count())
    assert.is_true(m:acquire())
    assert.is_true(m:acquire())
    assert.equal(0, m:count())
    assert.same({ nil, "timeout" }, { m:acquire(0.01) })
    m:release(); m:release()
    assert.equal(2, m:count())
    assert.has_error(function() m:release() end)
  end)

  it("is FIFO: a release hands the unit to the longest waiter (no barging)", function()
    local m = gh.lock()
    assert.is_true(m:acquire())
    local order = {}
    local ts = {}
    for i = 1, 5 do
      ts[i] = gh.spawn(function() m:acquire(); order[#order + 1] = i; gh.sleep(0); m:release() end)
    end
    gh.sleep(0)
    m:release()
    -- a newcomer must queue behind the waiters even though it asks first
    local late = gh.spawn(function() m:acquire(); order[#order + 1] = "late"; m:release() end)
    for i = 1, 5 do ts[i]:wait() end
    late:wait()
    assert.same({ 1, 2, 3, 4, 5, "late" }, order)
    assert.equal(1, m:count())
  end)

  it("releasing an unheld lock raises", function()
    local l = gh.lock()
    local ok, err = pcall(l.release, l)
    assert.is_false(ok)
    assert.matches("unheld lock", err)
    assert.has_error(function() gh.semaphore(-1) end)
    assert.has_error(function() gh.semaphore("x") end)
  end)

  it("a waiter killed after being handed the unit passes it on", function()
    local m = gh.lock()
    m:acquire()
    local a = gh.spawn(function() m:acquire(); return "a" end)
    local b = gh.spawn(function() m:acquire(); m:release(); return "b" end)
    gh.sleep(0)
    m:release()   -- hands the unit to a (woken, not yet run)
    a:kill()      -- a dies before running: the unit must go to b
    assert.equal("b", b:wait())
    assert.equal(1, m:count())
  end)

  it("kill of a thread blocked in acquire leaves no stale waiter", function()
    local m = gh.lock()
    m:acquire()
    local a = gh.spawn(function() return m:acquire() end)
    gh.sleep(0)
    a:kill()
    m:release()
    assert.equal(1, m:count())
    assert.is_true(m:acquire(0))
  end)
end)

describe("queue", function()
  it("FIFO order, any value including nil, size()", function()
    local q = gh.queue()
    q:put(1); q:put(nil); q:put("three"); q:put(false)
    assert.equal(4, q:size())
    assert.equal(1, q:get())
    assert.is_nil(q:get())
    assert.equal("three", q:get())
    assert.equal(false, q:get())
    assert.equal(0, q:size())
  end)

  it("put blocks while full; get blocks while empty; timeouts", function()
    local q = gh.queue(1)
    assert.is_true(q:put("a"))
    assert.same({ nil, "timeout" }, { q:put("b", 0.01) })
    assert.equal("a", q:get())
    assert.same({ nil, "timeout" }, { q:get(0.01) })
    local got = {}
    local c = gh.spawn(function() for _ = 1, 3 do got[#got + 1] = q:get() end end)
    for i = 1, 3 do q:put(i) end
    c:wait()
    assert.same({ 1, 2, 3 }, got)
  end)

  it("close: put raises, get drains then returns nil, 'closed'", function()
    local q = gh.queue()
    q:put(1); q:put(2)
    local waiter = gh.spawn(function() local q2 = gh.queue(); return q2 end)
    q:close()
    assert.has_error(function() q:put(3) end)
    assert.equal(1, q:get())
    assert.equal(2, q:get())
    assert.same({ nil, "closed" }, { q:get() })
    local q3 = gh.queue()
    local g = gh.spawn(function() return q3:get() end)
    gh.sleep(0)
    q3:close()
    assert.same({ nil, "closed" }, { g:wait() })
    waiter:wait()
  end)

  it("a small bounded queue wraps its ring in order, nil included", function()
    local q = gh.queue(3)
    for round = 1, 5 do
      q:put(round); q:put(nil); q:put(round * 10)
      assert.same({ nil, "timeout" }, { q:put("x", 0) })
      assert.equal(round, q:get())
      q:put("late")
      assert.is_nil(q:get())
      assert.equal(round * 10, q:get())
      assert.equal("late", q:get())
      assert.equal(0, q:size())
    end
  end)

  it("grows beyond its initial ring without losing order", function()
    local q = gh.queue()
    for i = 1, 1000 do q:put(i) end
    for i = 1, 500 do assert.equal(i, q:get()) end
    for i = 1001, 1500 do q:put(i) end
    for i = 501, 1500 do assert.equal(i, q:get()) end
  end)

  it("kill of a thread blocked in get loses no item", function()
    local q = gh.queue()
    local a = gh.spawn(function() return q:get() end)
    local b = gh.spawn(function() return q:get() end)
    gh.sleep(0)
    q:put("x")  -- wakes a
    a:kill()    -- a dies before taking it: b must get it
    assert.equal("x", b:wait())
    assert.equal(0, q:size())
  end)

  it("100 producers and 100 consumers move 1,000,000 items, none lost or duplicated", function()
    local q = gh.queue(100)
    local per = 10000
    local seen = {}
    local total = 0
    local producers, consumers = {}, {}
    for p = 1, 100 do
      producers[p] = gh.spawn(function()
        for i = 1, per do q:put((p - 1) * per + i) end
      end)
    end
    for c = 1, 100 do
      consumers[c] = gh.spawn(function()
        while true do
          local v = q:get()
          if v == nil then return end
          assert(not seen[v], "duplicate item")
          seen[v] = true
          total = total + 1
        end
      end)
    end
    for p = 1, 100 do producers[p]:wait() end
    q:close()
    for c = 1, 100 do consumers[c]:wait() end
    assert.equal(100 * per, total)
    for v = 1, 100 * per do if not seen[v] then error("lost item " .. v) end end
  end)
end)

describe("pool", function()
  it("never runs more than n at once (asserted from inside the workers)", function()
    local p = gh.pool(5)
    local active, peak = 0, 0
    for i = 1, 50 do
      p:spawn(function()
        active = active + 1
        assert(active <= 5, "pool exceeded its size")
        if active > peak then peak = active end
        gh.sleep(0.001 * (i % 3))
        active = active - 1
      end)
      assert.is_true(p:running() <= 5)
    end
    p:waitall()
    assert.equal(5, peak)
    assert.equal(0, p:running())
    assert.equal(5, p:free())
  end)

  it("spawn returns a thread whose wait gives the results or re-raises", function()
    local p = gh.pool(2)
    local t = p:spawn(function(a, b) return a + b end, 1, 2)
    assert.equal(3, t:wait())
    local e = {}
    local bad = p:spawn(function() error(e) end)
    local ok, err = pcall(bad.wait, bad)
    assert.is_false(ok); assert.equal(e, err)
    p:waitall()
    assert.equal(0, p:running())
  end)

  it("imap yields results in input order while items finish out of order", function()
    local p = gh.pool(4)
    local finished = {}
    local out = {}
    for i, r in p:imap(function(x)
      gh.sleep((10 - x) * 0.002)
      finished[#finished + 1] = x
      return x * x
    end, { 1, 2, 3, 4, 5, 6, 7, 8 }) do out[i] = r end
    assert.same({ 1, 4, 9, 16, 25, 36, 49, 64 }, out)
    assert.are_not.same({ 1, 2, 3, 4, 5, 6, 7, 8 }, finished)
  end)

  it("imap raises an item's error at that item", function()
    local p = gh.pool(3)
    local got = {}
    local ok, err = pcall(function()
      for _, r in p:imap(function(x) if x == 3 then error("bad item") end return x end, { 1, 2, 3, 4 }) do
        got[#got + 1] = r
      end
    end)
    assert.is_false(ok)
    assert.matches("bad item", err)
    assert.same({ 1, 2 }, got)
    p:waitall()
  end)

  it("resize changes the bound; spawn_n has no handle", function()
    local p = gh.pool(1)
    local n = 0
    p:spawn_n(function() gh.sleep(0.01); n = n + 1 end)
    assert.equal(0, p:free())
    p:resize(3)
    assert.equal(2, p:free())
    p:spawn_n(function() n = n + 1 end)
    p:waitall()
    assert.equal(2, n)
    assert.has_error(function() gh.pool(0) end)
    assert.has_error(function() p:spawn(5) end)
  end)
end)
