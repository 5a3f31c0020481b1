-- Bug: a closed scope's timer stayed armed until the scope was garbage
-- collected, so gh.run() (which runs until no timer is left) waited for a
-- deadline nobody was under any more -- an hour for with_timeout(3600, f).
-- Leaving a scope (and with_timeout) now disarms it.
local H = require "helper"

describe("regress: a closed scope's timer", function()
  it("does not keep gh.run() waiting", function()
    local out, code = H.run_script([[
      local gh = require "greenhub"
      collectgarbage("stop") -- the scopes stay alive: only leaving may disarm
      do local sc <close> = gh.scope(3600) end
      assert(gh.with_timeout(3600, function() return true end))
      local t = gh.spawn(function() local sc <close> = gh.scope(3600); gh.sleep(0.01) end)
      local t0 = gh.clock()
      gh.run()
      print(("ran %.2f s, timers %d"):format(gh.clock() - t0, gh.stats().timers))
    ]], "timeout 20 ")
    assert.equal(0, code, out)
    local s, timers = out:match("ran ([%d.]+) s, timers (%d+)")
    assert.is_true(tonumber(s) < 2, out)
    assert.equal("0", timers)
  end)
end)
