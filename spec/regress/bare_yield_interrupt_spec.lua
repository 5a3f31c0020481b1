-- #11.12: kill or with_timeout during a bare coroutine.yield() aborted the
-- whole thread: pcall and cleanup never ran, with_timeout never returned.
local H = require "helper"
local gh = H.gh

describe("regress: interrupting a bare coroutine.yield", function()
  it("kill raises at the yield: pcall sees it and <close> runs", function()
    local caught, closed
    local t = gh.spawn(function()
      local _ <close> = setmetatable({}, { __close = function() closed = true end })
      local ok, err = pcall(function()
        while true do coroutine.yield() end
      end)
      caught = { ok, err }
      error(err, 0)
    end)
    gh.sleep(0); gh.sleep(0)
    t:kill()
    assert.equal("dead", t:status())
    assert.is_false(caught[1])
    assert.equal(gh.Killed, caught[2])
    assert.is_true(closed)
  end)

  it("with_timeout returns nil, 'timeout' from a loop of bare yields", function()
    local t = gh.spawn(function()
      local r = table.pack(gh.with_timeout(0.02, function()
        while true do coroutine.yield() end
      end))
      return "after", r[1], r[2]
    end)
    assert.same({ "after", nil, "timeout" }, { H.bounded(5, t.wait, t) })
  end)

  it("a user's hook on the thread is back after the interrupt", function()
    local hits = 0
    local hook = function() hits = hits + 1 end
    local t = gh.spawn(function()
      debug.sethook(hook, "", 1)
      pcall(function() while true do coroutine.yield() end end)
      local h = debug.gethook()
      return h == hook
    end)
    gh.sleep(0); gh.sleep(0)
    t:kill("stop")
    assert.is_true(t:wait())
    assert.is_true(hits > 0)
  end)
end)
