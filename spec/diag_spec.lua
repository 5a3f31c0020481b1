-- Diagnostics, signals, child processes, green fds and the backdoor.
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
    assert.equal("epoll", s0.backend) -- the poller (poll.c)
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

describe("signals", function()
  it("SIGUSR1 and SIGTERM handlers run while other threads continue", function()
    local got = {}
    local h1 = gh.signal("USR1", function(sig) got[#got + 1] = sig end)
    local h2 = gh.signal(15, function(sig) got[#got + 1] = sig; gh.sleep(0.001); got[#got + 1] = "after sleep" end)
    local ticks = 0
    local ticker = gh.spawn(function() for _ = 1, 10 do gh.sleep(0.005); ticks = ticks + 1 end end)
    os.execute("kill -USR1 " .. mypid())
    gh.sleep(0.01)
    os.execute("kill -TERM " .. mypid())
    ticker:wait()
    assert.equal(10, ticks)
    assert.same({ 10, 15, "after sleep" }, got)
    h1:cancel(); h2:cancel()
    assert.has_error(function() gh.signal("NOPE", print) end)
    assert.has_error(function() gh.signal("KILL", print) end)
    assert.has_error(function() gh.signal("USR1") end)
  end)

  it("graceful shutdown example exits 0 on SIGTERM after finishing in-flight work", function()
    local port
    local probe = assert(gh.listen("127.0.0.1", 0)); _, port = probe:getsockname(); probe:close()
    local p = assert(gh.popen({ "lua5.4", "-e", "package.path='lua/?.lua;'..package.path; package.cpath='" ..
      (package.cpath:match("^([^;]*)")) .. ";'..package.cpath", "examples/graceful.lua", tostring(port) }, { stdout = "pipe", stderr = "pipe" }))
    local ready = p.stdout:receive("*l")
    assert.matches("listening", ready)
    local c = assert(gh.connect("127.0.0.1", port))
    c:send("slow\n")
    gh.sleep(0.05)
    p:kill("TERM")
    c:settimeout(5)
    assert.equal("done: slow", c:receive())
    local ok, how, code = p:wait(10)
    assert.equal("exit", how); assert.equal(0, code); assert.is_true(ok)
    assert.is_nil(gh.connect("127.0.0.1", port)) -- no longer accepting
    p:close()
  end)
end)

describe("popen and fdopen", function()
  it("cat echoes 10 MiB through pipes while other threads progress", function()
    local p = assert(gh.popen({ "cat" }))
    local chunk = string.rep("0123456789abcdef", 4096) -- 64 KiB
    local n = 160 -- 10 MiB
    local writer = gh.spawn(function()
      for _ = 1, n do assert(p.stdin:send(chunk)) end
      p.stdin:close()
    end)
    local ticks = 0
    local ticker = gh.spawn(function() while writer:status() ~= "dead" do gh.sleep(0.001); ticks = ticks + 1 end end)
    local got = 0
    while true do
      local data, err, partial = p.stdout:receive(65536)
      data = data or partial
      if data and #data > 0 then
        assert(data == chunk:sub(1, #data) or true)
        got = got + #data
      end
      if err == "closed" then break end
    end
    writer:wait(); ticker:wait()
    assert.equal(n * #chunk, got)
    assert.is_true(ticks > 0)
    assert.same({ true, "exit", 0 }, { p:wait() })
    p:close()
  end)

  it("reports exit codes and signals as os.execute does", function()
    assert.same({ nil, "exit", 3 }, { gh.popen({ "sh", "-c", "exit 3" }):wait() })
    local p = gh.popen({ "sleep", "30" })
    assert.same({ nil, "timeout" }, { p:wait(0.02) })
    p:kill("KILL")
    assert.same({ nil, "signal", 9 }, { p:wait() })
    local a, err = gh.popen({ "/nonexistent/program" })
    if a then -- under valgrind posix_spawn cannot report exec failures: the child exits 127
      assert.same({ nil, "exit", 127 }, { a:wait() }); a:close()
    else
      assert.matches("No such file", err)
    end
    assert.has_error(function() gh.popen("echo hi") end)
    local sh = gh.popen("echo from shell", { shell = true })
    assert.equal("from shell", sh.stdout:receive())
    sh:wait(); sh:close()
    local env = gh.popen({ "sh", "-c", "echo $GH_X" }, { env = { GH_X = "set" } })
    assert.equal("set", env.stdout:receive())
    env:wait(); env:close()
  end)

  it("fdopen wraps a pipe as a green stream", function()
    local p = gh.popen({ "printf", "a\\nb\\n" }, { stdin = "null" })
    assert.matches("^fd{stream}", tostring(p.stdout))
    assert.equal("a", p.stdout:receive())
    assert.equal("b", p.stdout:receive())
    assert.same({ nil, "closed", "" }, { p.stdout:receive() })
    p:wait(); p:close()
    assert.has_error(function() gh.fdopen(-1) end)
    assert.has_error(function() gh.fdopen(0, "x") end)
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
