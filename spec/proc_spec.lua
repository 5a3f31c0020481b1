-- Signals (gh.signal), child processes (gh.popen) and green streams on
-- any fd (gh.fdopen).
local H = require "helper"
local gh = H.gh

local function mypid()
  local f = io.open("/proc/self/stat")
  local pid = f:read("n")
  f:close()
  return pid
end

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

describe("children as event sources", function()
  local function zombie(pid)
    local f = io.open("/proc/" .. pid .. "/stat")
    if not f then return false end
    local s = f:read("a"); f:close()
    return s:match("^%d+ %b() (%a)") == "Z"
  end

  it("many threads wait on one child; each gets the status at its end", function()
    local p = assert(gh.popen({ "sh", "-c", "sleep 0.1; exit 7" }, { stdin = "null", stdout = "null" }))
    local got, ts = {}, {}
    for i = 1, 10 do
      ts[i] = gh.spawn(function() got[i] = { p:wait(i % 2 == 0 and 10 or nil) } end)
    end
    local t0 = gh.clock()
    for i = 1, 10 do ts[i]:wait() end
    assert.is_true(gh.clock() - t0 >= 0.05) -- they really waited
    for i = 1, 10 do assert.same({ nil, "exit", 7 }, got[i]) end
    assert.same({ nil, "exit", 7 }, { p:wait(0) }) -- the status stays
    assert.same({ nil, "No such process" }, { p:kill() })
    p:close()
  end)

  it("a timed-out wait leaves the child watched; a later wait still sees its end", function()
    local p = assert(gh.popen({ "sleep", "0.2" }, { stdin = "null", stdout = "null" }))
    assert.same({ nil, "timeout" }, { p:wait(0.01) })
    assert.same({ nil, "timeout" }, { p:wait(0) })
    assert.same({ true, "exit", 0 }, { p:wait(5) })
    p:close()
  end)

  it("killing a waiting thread leaves the loop free to finish", function()
    local out, code = H.run_script([[
      local gh = require "greenhub"
      local p = gh.popen({ "sleep", "30" }, { stdin = "null", stdout = "null" })
      local t = gh.spawn(function() p:wait() end)
      gh.sleep(0.02)
      t:kill()
      local t0 = gh.clock()
      gh.run() -- nothing waits for the child any more: returns at once
      print(("ran %.2f"):format(gh.clock() - t0))
      p:kill("KILL"); print(p:wait(5))
    ]])
    assert.equal(0, code, out)
    assert.matches("ran 0%.0%d", out)
    assert.matches("nil\tsignal\t9", out)
  end)

  it("gh.run() sees a closed child through and reaps it (no zombie, no poll)", function()
    local out, code = H.run_script([[
      local gh = require "greenhub"
      local p = gh.popen({ "sleep", "0.2" }, { stdin = "null", stdout = "null" })
      local pid = p.pid
      p:close()
      local t0 = gh.clock()
      gh.run()
      local f = io.open("/proc/" .. pid .. "/stat")
      print(("ran %.2f %s"):format(gh.clock() - t0, f and "left" or "reaped"))
      print(gh.stats().switches)
    ]])
    assert.equal(0, code, out)
    local ran = tonumber(out:match("ran (%S+)"))
    assert.is_true(ran >= 0.15 and ran < 5, out)
    assert.matches("reaped", out)
  end)

  it("a user's SIGCHLD handler and child waits work together", function()
    local seen = 0
    local h = gh.signal("CHLD", function() seen = seen + 1 end)
    local p = assert(gh.popen({ "true" }, { stdin = "null", stdout = "null" }))
    assert.same({ true, "exit", 0 }, { H.bounded(5, p.wait, p) })
    local t0 = gh.clock()
    while seen == 0 and gh.clock() - t0 < 5 do gh.sleep(0.005) end
    assert.is_true(seen >= 1)
    h:cancel()
    -- after the handler is gone, children are still seen to end
    local q = assert(gh.popen({ "sh", "-c", "exit 4" }, { stdin = "null", stdout = "null" }))
    assert.same({ nil, "exit", 4 }, { H.bounded(5, q.wait, q) })
    p:close(); q:close()
  end)

  it("only its own children are reaped: os.execute and io.popen keep theirs", function()
    local p = assert(gh.popen({ "sleep", "0.05" }, { stdin = "null", stdout = "null" }))
    assert.is_true(os.execute("exit 0"))
    local f = io.popen("echo hi")
    assert.equal("hi", f:read("l"))
    assert.is_true(f:close())
    assert.same({ nil, "exit", 5 }, { os.execute("exit 5") })
    assert.same({ true, "exit", 0 }, { H.bounded(5, p.wait, p) })
    assert.is_false(zombie(p.pid))
    p:close()
  end)

  it("a child of a forked hub does not wait for its parent's children", function()
    local p = assert(gh.popen({ "sleep", "30" }, { stdin = "null", stdout = "null" }))
    local core = require "greenhub.core"
    local pid = core._fork()
    if pid == 0 then
      local ok, err = p:wait(1)
      os.exit((ok == nil and err ~= "timeout" and err ~= "exit") and 0 or 1, true)
    end
    local ok, how, st
    local t0 = gh.clock()
    repeat ok, how, st = core._waitpid(pid); if how == nil then gh.sleep(0.01) end
    until how or gh.clock() - t0 > 10
    assert.same({ true, "exit", 0 }, { ok, how, st })
    p:kill("KILL")
    assert.same({ nil, "signal", 9 }, { p:wait(5) })
    p:close()
  end)

  it("tostring names the pid and whether it was reaped", function()
    local p = assert(gh.popen({ "sleep", "5" }, { stdin = "null", stdout = "null" }))
    assert.matches("greenhub.child %(" .. p.pid .. ", running%)", tostring(p.child))
    p:kill("KILL")
    p:wait()
    assert.matches("reaped", tostring(p.child))
    p:close()
  end)
end)
