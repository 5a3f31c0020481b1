-- Diagnostics: stats, threads, debug.blocking, the backdoor (signals and
-- processes: proc_spec.lua).
local H = require "helper"
local gh = H.gh

local function mypid()
  local f = io.open("/proc/self/stat")
  local pid = f:read("n")
  f:close()
  return pid
end

describe("stats and threads", function()
  it("stats counts move as expected", function()
    local s0 = gh.stats()
    assert.equal(os.getenv("GREENHUB_BACKEND") or "epoll", s0.backend) -- the poller (poller.c)
    local e = gh.event()
    local ts = {}
    for i = 1, 3 do ts[i] = gh.spawn(function() e:wait() end) end
    local sl = gh.spawn(function() gh.sleep(0.05) end)
    local s1 = gh.stats()
    assert.equal(s0.threads + 4, s1.threads)
    assert.equal(s0.ready + 4, s1.ready)
    gh.sleep(0)
    local s2 = gh.stats()
    assert.equal(0, s2.ready)
    assert.equal(s0.suspended + 4, s2.suspended)
    assert.equal(s0.timers + 1, s2.timers)
    assert.is_true(s2.switches >= s1.switches + 4)
    assert.is_true(s2.turns > s1.turns)
    e:send()
    for i = 1, 3 do ts[i]:wait() end
    sl:wait()
    local s3 = gh.stats()
    assert.equal(s0.threads, s3.threads)
    assert.is_true(s3.poll_time > s0.poll_time) -- the main thread slept in epoll_wait
    assert.is_number(s3.run_time)
  end)

  it("threads() lists live threads with what they wait on and for how long", function()
    local e = gh.event()
    local srv = assert(gh.listen("127.0.0.1", 0))
    local a = gh.spawn(function() gh.sleep(10) end)
    local b = gh.spawn(function() e:wait() end)
    local c = gh.spawn(function() srv:accept() end)
    b:name("event waiter")
    gh.sleep(0.02)
    local seen = {}
    for _, t in ipairs(gh.threads()) do seen[t] = { t:waiting() } end
    assert.equal("sleep", seen[a][1])
    assert.is_true(seen[a][2] >= 0 and seen[a][2] < 5)
    assert.equal("event", seen[b][1])
    assert.equal("read fd " .. srv:getfd(), seen[c][1])
    assert.equal("event waiter", b:name())
    assert.matches("diag_spec.lua:%d+$", a:name()) -- default: where its function is
    assert.matches("in function", a:traceback())
    a:kill(); e:send(); srv:close(); c:wait(); b:wait()
  end)

  it("the default error report names the thread", function()
    local out = H.run_script([[
      local gh = require "greenhub"
      gh.spawn(function() error("oops") end):name("worker-42")
      gh.sleep(0.01)
    ]])
    assert.matches("uncaught error in green thread worker%-42", out)
  end)
end)

describe("debug.blocking", function()
  it("reports a thread that runs too long without yielding, with its traceback", function()
    local out = H.run_script([[
      local gh = require "greenhub"
      gh.debug.blocking(0.05)
      local function busy() local t0 = gh.clock(); while gh.clock() - t0 < 0.2 do end end
      gh.spawn(busy):name("hog")
      local fine = gh.spawn(function() for _ = 1, 5 do gh.sleep(0.01) end end)
      gh.run()
    ]])
    assert.matches("green thread hog ran 0%.%d+ s without yielding", out)
    assert.matches("stack traceback", out)
    assert.matches("lua_%w+:3: in function", out) -- where busy runs
  end)

  it("raise mode interrupts the offender within 2x the threshold", function()
    gh.debug.blocking(0.05, "raise")
    local t0
    local t = gh.spawn(function()
      t0 = gh.clock()
      while true do end
    end)
    local ok, err = pcall(t.wait, t)
    local dt = gh.clock() - t0
    gh.debug.blocking(false)
    assert.is_false(ok)
    assert.matches("without yielding", err)
    assert.is_true(dt < H.scale(0.1), "took " .. dt)
    assert.has_error(function() gh.debug.blocking(-1) end)
  end)
end)

describe("backdoor", function()
  it("answers an expression over a socket, loopback only by default", function()
    local srv = assert(gh.backdoor("127.0.0.1", 0))
    local _, port = srv:getsockname()
    local c = assert(gh.connect("127.0.0.1", port))
    c:settimeout(2)
    assert.matches("greenhub backdoor", c:receive())
    c:send("1 + 2\n")
    assert.equal("> 3", c:receive())
    c:send("#gh.threads() > 0\n")
    assert.equal("> true", c:receive())
    c:send("x = \n")
    assert.matches("^> .*unexpected", c:receive())
    c:send("quit\n")
    assert.equal("> bye", c:receive())
    c:close(); srv:close()
    assert.has_error(function() gh.backdoor("0.0.0.0", 0) end)
  end)
end)
