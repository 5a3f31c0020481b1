-- gh.coroutine: blocking calls inside user coroutines pass through to the
-- hub, while the user's own yields reach the user's resume untouched.
local H = require "helper"
local gh = H.gh
local coroutine = gh.coroutine -- what gh.patch() makes the global one

describe("gh.coroutine", function()
  it("a generator reading lines from a green socket, inside a green thread", function()
    local srv = assert(gh.listen("127.0.0.1", 0))
    local _, port = srv:getsockname()
    gh.spawn(function()
      local c = srv:accept()
      for i = 1, 5 do c:send("line " .. i .. "\n"); gh.sleep(0.002) end
      c:close()
    end)
    local t = gh.spawn(function()
      local c = assert(gh.connect("127.0.0.1", port))
      local lines = coroutine.wrap(function()
        while true do
          local l = c:receive("*l")
          if not l then return end
          coroutine.yield(l)
        end
      end)
      local got = {}
      for l in lines do got[#got + 1] = l end
      return got
    end)
    -- meanwhile other threads keep running
    local ticks = 0
    local ticker = gh.spawn(function() for _ = 1, 3 do gh.sleep(0.001); ticks = ticks + 1 end end)
    assert.same({ "line 1", "line 2", "line 3", "line 4", "line 5" }, t:wait())
    ticker:wait()
    assert.equal(3, ticks)
    srv:close()
  end)

  it("user yields reach the user's resume untouched; nesting works", function()
    local co = gh.coroutine
    local inner = co.create(function(a)
      local b = co.yield(a + 1)
      gh.sleep(0.001)
      local c2 = co.yield(b * 2)
      return "done", c2
    end)
    local outer = gh.spawn(function()
      local r = {}
      r[1] = { co.resume(inner, 1) }
      r[2] = { co.resume(inner, 10) }
      r[3] = { co.resume(inner, "x") }
      r[4] = co.status(inner)
      return r
    end)
    local r = outer:wait()
    assert.same({ true, 2 }, r[1])
    assert.same({ true, 20 }, r[2])
    assert.same({ true, "done", "x" }, r[3])
    assert.equal("dead", r[4])
  end)

  it("works in the main thread too, and wrap re-raises errors", function()
    local g = gh.coroutine.wrap(function() gh.sleep(0.001); coroutine.yield(1); error("gen failed") end)
    assert.equal(1, g())
    assert.has_error(function() g() end)
    local nested = gh.coroutine.wrap(function()
      local inner = gh.coroutine.wrap(function() gh.sleep(0.001); return "deep" end)
      return inner()
    end)
    assert.equal("deep", nested())
  end)

  it("a killed thread blocked inside a user coroutine sees the kill", function()
    local seen
    local t = gh.spawn(function()
      local g = gh.coroutine.wrap(function() local ok, err = pcall(gh.sleep, 10); seen = err; error(err, 0) end)
      g()
    end)
    gh.sleep(0)
    t:kill()
    assert.equal(gh.Killed, seen)
    assert.equal("dead", t:status())
  end)
end)
