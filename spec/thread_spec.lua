-- Green threads: spawn, spawn_n, spawn_after, sleep, current, wait, kill,
-- link, status, cancel, run, with_timeout.
local H = require "helper"
local gh = H.gh

describe("spawn", function()
  it("starts threads in FIFO order at the next hub turn", function()
    local order = {}
    for i = 1, 50 do gh.spawn(function() order[#order + 1] = i end) end
    assert.same({}, order) -- nothing runs before the caller blocks
    gh.sleep(0)
    local want = {}
    for i = 1, 50 do want[i] = i end
    assert.same(want, order)
  end)

  it("passes arguments and returns results through wait", function()
    local t = gh.spawn(function(a, b, c) return c, b, a, nil end, 1, "two", { 3 })
    local r = table.pack(t:wait())
    assert.equal(4, r.n)
    assert.same({ { 3 }, "two", 1 }, { r[1], r[2], r[3] })
    assert.is_nil(r[4])
  end)

  it("spawn_n runs without a handle", function()
    local ran = 0
    assert.equal(0, select("#", gh.spawn_n(function(x) ran = x end, 7)))
    gh.sleep(0)
    assert.equal(7, ran)
  end)

  it("accepts callable tables", function()
    local obj = setmetatable({}, { __call = function(self, x) return x * 2 end })
    assert.equal(42, gh.spawn(obj, 21):wait())
  end)

  it("reports status through a thread's life", function()
    local t = gh.spawn(function() gh.sleep(0.01) end)
    assert.equal("pending", t:status())
    gh.sleep(0)
    assert.equal("suspended", t:status())
    local seen
    local u = gh.spawn(function() seen = gh.current():status() end)
    u:wait()
    assert.equal("running", seen)
    t:wait()
    assert.equal("dead", t:status())
    assert.matches("greenhub.thread %(dead%)", tostring(t))
  end)

  it("current() is the running thread, nil in the main thread", function()
    assert.is_nil(gh.current())
    local me
    local t = gh.spawn(function() me = gh.current() end)
    t:wait()
    assert.equal(t, me)
  end)

  it("raises clear errors for bad arguments", function()
    local ok, err = pcall(gh.spawn, 42)
    assert.is_false(ok)
    assert.matches("bad argument #1 to '[%w.]*spawn' %(function expected, got number%)", err)
    assert.has_error(function() gh.spawn() end)
    assert.has_error(function() gh.spawn_n({}) end)
    assert.has_error(function() gh.spawn_after("x", print) end)
    assert.has_error(function() gh.spawn_after(0 / 0, print) end)
    assert.has_error(function() gh.spawn_after(1, 5) end)
    assert.has_error(function() gh.sleep("x") end)
    assert.has_error(function() gh.sleep({}) end)
    ok, err = pcall(gh.sleep, 0 / 0)
    assert.is_false(ok)
    assert.matches("NaN", err)
    assert.has_error(function() gh.with_timeout("x", print) end)
    assert.has_error(function() gh.with_timeout(0 / 0, print) end)
    assert.has_error(function() gh.onerror(5) end)
    assert.has_error(function() gh.spawn(print):link(5) end)
    assert.has_error(function() gh.spawn(print).wait({}) end)
  end)
end)

describe("sleep", function()
  it("sleep(0) and sleep() are fair: ready threads take turns", function()
    local log = {}
    local function worker(name)
      for i = 1, 3 do
        log[#log + 1] = name .. i
        gh.sleep(i == 2 and nil or 0)
      end
    end
    local a, b = gh.spawn(worker, "a"), gh.spawn(worker, "b")
    a:wait(); b:wait()
    assert.same({ "a1", "b1", "a2", "b2", "a3", "b3" }, log)
  end)

  it("a busy sleep(0) loop does not starve timers", function()
    local fired = false
    gh.spawn(function() gh.sleep(0.02); fired = true end)
    local t0 = H.now()
    while not fired and H.now() - t0 < 2 do gh.sleep(0) end
    assert.is_true(fired)
  end)

  it("negative sleeps count as 0", function()
    local t0 = H.now()
    gh.sleep(-5)
    assert.is_true(H.now() - t0 < 0.5)
  end)

  it("timers never fire early and fire within 10 ms late", function()
    local late = {}
    local ts = {}
    for i = 1, 20 do
      local d = 0.005 * i
      ts[i] = gh.spawn(function()
        local t0 = H.now()
        gh.sleep(d)
        return H.now() - t0 - d
      end)
    end
    for i = 1, 20 do late[i] = ts[i]:wait() end
    table.sort(late)
    assert.is_true(late[1] >= 0, "a timer fired early by " .. -late[1])
    assert.is_true(late[#late] < H.scale(0.010), "a timer fired " .. late[#late] .. " s late")
  end)

  it("sleeps in the main thread for the right time", function()
    local t0 = H.now()
    gh.sleep(0.03)
    local dt = H.now() - t0
    assert.is_true(dt >= 0.03 and dt < 0.03 + H.scale(0.010), dt)
  end)

  it("equal deadlines wake in the order they were set", function()
    local order = {}
    local ts = {}
    for i = 1, 20 do ts[i] = gh.spawn(function() gh.sleep(0.01); order[#order + 1] = i end) end
    for i = 1, 20 do ts[i]:wait() end
    local want = {}
    for i = 1, 20 do want[i] = i end
    assert.same(want, order)
  end)

  it("100,000 threads sleep concurrently and all wake", function()
    local n, done = 100000, 0
    local t0 = H.now()
    for i = 1, n do
      gh.spawn_n(function() gh.sleep((i % 100) / 1000); done = done + 1 end)
    end
    assert.equal(n, gh.stats().threads)
    while done < n and H.now() - t0 < H.scale(10) do gh.sleep(0.01) end
    assert.equal(n, done)
    assert.equal(0, gh.stats().threads)
    assert.equal(0, gh.stats().timers)
  end)
end)

describe("spawn_after", function()
  it("starts the thread after the delay", function()
    local t0 = H.now()
    local t = gh.spawn_after(0.03, function(x) return H.now() - t0, x end, "arg")
    assert.equal("pending", t:status())
    local dt, x = t:wait()
    assert.is_true(dt >= 0.03, dt)
    assert.equal("arg", x)
  end)

  it("cancel() before it starts: it never runs", function()
    local ran = false
    local t = gh.spawn_after(0.01, function() ran = true end)
    assert.is_true(t:cancel())
    assert.equal("dead", t:status())
    gh.sleep(0.03)
    assert.is_false(ran)
    assert.equal(0, select("#", t:wait()))
    assert.equal(0, gh.stats().timers)
  end)

  it("cancel() after it started does nothing", function()
    local t = gh.spawn_after(0, function() gh.sleep(0.01) return "done" end)
    gh.sleep(0.002)
    assert.equal("suspended", t:status())
    assert.is_false(t:cancel())
    assert.equal("done", t:wait())
  end)
end)

describe("wait", function()
  it("re-raises the thread's error value unchanged (tables stay tables)", function()
    local e = { code = 42 }
    local t = gh.spawn(function() gh.sleep(0); error(e) end)
    local ok, err = pcall(t.wait, t)
    assert.is_false(ok)
    assert.equal(e, err)
    -- again, after death
    ok, err = pcall(t.wait, t)
    assert.equal(e, err)
  end)

  it("re-raises string errors with their position", function()
    local t = gh.spawn(function() error("boom") end)
    local ok, err = pcall(t.wait, t)
    assert.is_false(ok)
    assert.matches("thread_spec.lua:%d+: boom", err)
  end)

  it("several threads can wait on one", function()
    local t = gh.spawn(function() gh.sleep(0.01) return "r" end)
    local ws = {}
    for i = 1, 10 do ws[i] = gh.spawn(function() return t:wait() .. i end) end
    for i = 1, 10 do assert.equal("r" .. i, ws[i]:wait()) end
  end)

  it("a thread cannot wait for itself", function()
    local t
    t = gh.spawn(function() return pcall(t.wait, t) end)
    local ok, err = t:wait()
    assert.is_false(ok)
    assert.matches("cannot wait for itself", err)
  end)
end)

describe("kill", function()
  it("kills a sleeping thread at its blocking point", function()
    local after = false
    local t = gh.spawn(function() gh.sleep(10); after = true end)
    gh.sleep(0)
    t:kill()
    assert.equal("dead", t:status()) -- it has seen it when kill returns
    assert.is_false(after)
    assert.equal(0, select("#", t:wait()))
    assert.equal(0, gh.stats().timers)
  end)

  it("kills a pending thread without running it", function()
    local ran = false
    local t = gh.spawn(function() ran = true end)
    t:kill()
    assert.equal("dead", t:status())
    gh.sleep(0)
    assert.is_false(ran)
  end)

  it("is a no-op on a dead thread", function()
    local t = gh.spawn(function() return 1 end)
    assert.equal(1, t:wait())
    t:kill()
    t:kill("again")
    assert.equal(1, t:wait())
  end)

  it("raises the given error inside the thread; wait re-raises it", function()
    local seen
    local t = gh.spawn(function()
      local ok, err = pcall(gh.sleep, 10)
      seen = err
      error(err)
    end)
    gh.sleep(0)
    local e = { "stop" }
    gh.onerror(function() end) -- it dies with e while nobody waits yet
    t:kill(e)
    gh.onerror(nil)
    assert.equal(e, seen)
    local ok, err = pcall(t.wait, t)
    assert.is_false(ok)
    assert.equal(e, err)
  end)

  it("the default error is the gh.Killed sentinel", function()
    local seen
    local t = gh.spawn(function()
      local ok, err = pcall(gh.sleep, 10)
      seen = err
      return "survived"
    end)
    gh.sleep(0)
    t:kill()
    assert.equal(gh.Killed, seen)
    assert.equal("greenhub.Killed", tostring(seen))
    assert.equal("survived", t:wait())
  end)

  it("a thread killed while waiting on another leaves no stale waiter", function()
    local target = gh.spawn(function() gh.sleep(0.02) return 1 end)
    local waiter = gh.spawn(function() return target:wait() end)
    gh.sleep(0)
    waiter:kill()
    assert.equal("dead", waiter:status())
    assert.equal(1, target:wait())
  end)

  it("a thread can kill itself", function()
    local t
    t = gh.spawn(function() t:kill(); error("not reached") end)
    assert.equal(0, select("#", t:wait()))
  end)

  it("kill from another green thread runs the victim at once", function()
    local log = {}
    local victim = gh.spawn(function()
      local ok = pcall(gh.sleep, 10)
      log[#log + 1] = "victim saw kill"
    end)
    local killer = gh.spawn(function()
      gh.sleep(0)
      victim:kill()
      log[#log + 1] = "kill returned"
    end)
    killer:wait()
    assert.same({ "victim saw kill", "kill returned" }, log)
  end)

  it("closes the victim's <close> variables", function()
    local closed = false
    local t = gh.spawn(function()
      local _ <close> = setmetatable({}, { __close = function() closed = true end })
      gh.sleep(10)
    end)
    gh.sleep(0)
    t:kill()
    assert.is_true(closed)
  end)
end)

describe("link", function()
  it("calls g(t, ...) when t ends", function()
    local got = {}
    local t = gh.spawn(function() gh.sleep(0.01) return "x" end)
    t:link(function(th, a, b) got = { th, a, b, th:wait() } end, 1, 2)
    t:wait()
    gh.sleep(0)
    assert.same({ t, 1, 2, "x" }, got)
  end)

  it("calls g at once if t is already dead", function()
    local t = gh.spawn(function() return 5 end)
    t:wait()
    local got
    t:link(function(th, a) got = a + th:wait() end, 10)
    assert.equal(15, got)
  end)

  it("runs every link, in order, also when t errors", function()
    local got = {}
    local t = gh.spawn(function() gh.sleep(0); error("x") end)
    for i = 1, 3 do t:link(function() got[#got + 1] = i end) end
    gh.sleep(0.01)
    assert.same({ 1, 2, 3 }, got)
  end)

  it("an error in a linked function is reported and the hub keeps running", function()
    local reports = {}
    gh.onerror(function(th, err, tb) reports[#reports + 1] = { err = err, tb = tb } end)
    local t = gh.spawn(function() return 1 end)
    t:link(function() error("link failed") end)
    local after = gh.spawn(function() gh.sleep(0.01) return "still running" end)
    assert.equal("still running", after:wait())
    gh.onerror(nil)
    assert.equal(1, #reports)
    assert.matches("link failed", reports[1].err)
    assert.matches("stack traceback", reports[1].tb)
  end)
end)

describe("errors nobody waits on", function()
  it("go to the onerror handler with the thread and traceback", function()
    local got
    gh.onerror(function(th, err, tb) got = { th = th, err = err, tb = tb } end)
    local t = gh.spawn(function() gh.sleep(0); local x = nil; return x.field end)
    gh.sleep(0.01)
    gh.onerror(nil)
    assert.equal(t, got.th)
    assert.matches("attempt to index", got.err)
    assert.matches("stack traceback", got.tb)
  end)

  it("are not reported when someone waits", function()
    local reported = false
    gh.onerror(function() reported = true end)
    local t = gh.spawn(function() gh.sleep(0); error("mine") end)
    local ok = pcall(t.wait, t)
    gh.onerror(nil)
    assert.is_false(ok)
    assert.is_false(reported)
  end)

  it("default: traceback on stderr, hub keeps running", function()
    local out, code = H.run_script([[
      local gh = require "greenhub"
      gh.spawn(function() gh.sleep(0.01); error("unwatched failure") end)
      local t = gh.spawn(function() gh.sleep(0.05) return "alive" end)
      print(t:wait())
    ]])
    assert.equal(0, code)
    assert.matches("uncaught error in green thread", out)
    assert.matches("unwatched failure", out)
    assert.matches("stack traceback", out)
    assert.matches("alive", out)
  end)
end)

describe("with_timeout", function()
  it("returns f's results when it finishes in time", function()
    local r = table.pack(gh.with_timeout(0.5, function(a) gh.sleep(0.01) return a, nil, 3 end, 1))
    assert.same({ 1, nil, 3, n = 3 }, r)
  end)

  it("returns nil, 'timeout' and interrupts f when it does not", function()
    local after = false
    local t0 = H.now()
    local a, b = gh.with_timeout(0.02, function() gh.sleep(5); after = true end)
    assert.is_nil(a)
    assert.equal("timeout", b)
    assert.is_false(after)
    assert.is_true(H.now() - t0 < 1)
  end)

  it("works inside green threads and leaves no timer behind", function()
    local t = gh.spawn(function()
      local a = { gh.with_timeout(0.01, gh.sleep, 1) }
      local b = { gh.with_timeout(1, gh.sleep, 0.001) }
      return a[2], #b
    end)
    local r1, r2 = t:wait()
    assert.equal("timeout", r1)
    assert.equal(0, r2)
    assert.equal(0, gh.stats().timers)
  end)

  it("passes other errors through unchanged", function()
    local e = {}
    local ok, err = pcall(gh.with_timeout, 1, function() error(e) end)
    assert.is_false(ok)
    assert.equal(e, err)
  end)

  it("nests: the inner timeout does not catch the outer one", function()
    local inner_result
    local a, b = gh.with_timeout(0.02, function()
      inner_result = { gh.with_timeout(5, gh.sleep, 1) }
      return "no"
    end)
    assert.equal("timeout", b)
    assert.is_nil(inner_result)
    local x, y = gh.with_timeout(5, function()
      return gh.with_timeout(0.01, gh.sleep, 1)
    end)
    assert.is_nil(x); assert.equal("timeout", y)
  end)

  it("interrupts a wait on another thread", function()
    local t = gh.spawn(function() gh.sleep(1) end)
    local a, b = gh.with_timeout(0.01, t.wait, t)
    assert.equal("timeout", b)
    assert.equal("suspended", t:status())
    t:kill()
  end)
end)

describe("run", function()
  it("runs until no thread, timer or waiter is left", function()
    local done = 0
    for i = 1, 10 do gh.spawn(function() gh.sleep(i / 1000); done = done + 1 end) end
    gh.spawn_after(0.02, function() done = done + 1 end)
    gh.run()
    assert.equal(11, done)
    assert.equal(0, gh.stats().threads)
  end)

  it("refuses to run inside a green thread", function()
    local ok, err = gh.spawn(function() return pcall(gh.run) end):wait()
    assert.is_false(ok)
    assert.matches("main thread", err)
  end)
end)

describe("blocking where it cannot yield", function()
  it("inside a coroutine greenhub does not own: works in the main thread, a clear error in a green thread", function()
    local co = coroutine.wrap(function() gh.sleep(0.01); return "ran the hub nested" end)
    assert.equal("ran the hub nested", co())
    local t = gh.spawn(function()
      return pcall(coroutine.wrap(function() gh.sleep(0.01) end))
    end)
    local ok, err = t:wait()
    assert.is_false(ok)
    assert.matches("coroutine greenhub does not own", err)
    assert.matches("gh.patch", err)
  end)

  it("across a C-call boundary: a clear error, not a crash", function()
    local t = gh.spawn(function()
      return pcall(table.sort, { 3, 1, 2 }, function(a, b) gh.sleep(0) return a < b end)
    end)
    local ok, err = t:wait()
    assert.is_false(ok)
    assert.matches("cannot yield", err)
  end)

  it("the main thread may block anywhere", function()
    local v = { 3, 1, 2 }
    table.sort(v, function(a, b) gh.sleep(0) return a < b end)
    assert.same({ 1, 2, 3 }, v)
  end)

  it("a bare coroutine.yield in a green thread acts as sleep(0)", function()
    local log = {}
    local a = gh.spawn(function() log[#log + 1] = "a1"; coroutine.yield("ignored"); log[#log + 1] = "a2" end)
    local b = gh.spawn(function() log[#log + 1] = "b1" end)
    a:wait(); b:wait()
    assert.same({ "a1", "b1", "a2" }, log)
  end)
end)

describe("the main chunk", function()
  it("blocks without an explicit loop; ending it ends the program", function()
    local out, code = H.run_script([[
      local gh = require "greenhub"
      gh.spawn(function() gh.sleep(0.02); print("worker done") end)
      gh.spawn(function() gh.sleep(30); print("never printed") end)
      print("main sleeping")
      gh.sleep(0.05)
      print("main woke")
    ]])
    assert.equal(0, code)
    assert.equal("main sleeping\nworker done\nmain woke\n", out)
  end)

  it("a deadlocked main thread gets a clear error instead of hanging", function()
    local t = gh.spawn(function() gh.sleep(math.huge) end)
    gh.sleep(0)
    local ok, err = pcall(t.wait, t)
    assert.is_false(ok)
    assert.matches("deadlock", err)
    t:kill()
  end)
end)

describe("stats", function()
  it("counts threads, timers and switches", function()
    local s0 = gh.stats()
    local t = gh.spawn(function() gh.sleep(0.01) end)
    local s1 = gh.stats()
    assert.equal(s0.threads + 1, s1.threads)
    assert.equal(s0.ready + 1, s1.ready)
    gh.sleep(0)
    assert.equal(s0.timers + 1, gh.stats().timers)
    t:wait()
    local s2 = gh.stats()
    assert.equal(s0.threads, s2.threads)
    assert.is_true(s2.switches >= s0.switches + 2)
    assert.is_true(s2.turns > s0.turns)
    assert.is_true(s2.heap_ok)
  end)
end)
