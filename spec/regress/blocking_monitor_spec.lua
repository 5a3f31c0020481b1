-- #11.17: debug.blocking(math.huge) overflowed to a negative threshold and
-- reported every thread; time inside a blocking C call was never reported.
local H = require "helper"

describe("regress: debug.blocking", function()
  it("math.huge means never: nothing is reported", function()
    local out, code = H.run_script([[
      local gh = require "greenhub"
      gh.debug.blocking(math.huge)
      for i = 1, 20 do gh.spawn(function() local x = 0; for j = 1, 1e5 do x = x + j end; gh.sleep(0) end) end
      gh.sleep(0.05)
      gh.debug.blocking(1e300, "raise")
      print(gh.spawn(function() local x = 0; for j = 1, 1e5 do x = x + j end; return "fine" end):wait())
    ]])
    assert.equal(0, code, out)
    assert.not_matches("without yielding", out)
    assert.matches("fine", out)
  end)

  it("a green thread stuck in a blocking C call is reported by name, while it blocks and after", function()
    local out, code = H.run_script([[
      local gh = require "greenhub"
      gh.debug.blocking(0.1)
      local t = gh.spawn(function()
        os.execute("sleep 0.5")
        gh.sleep(0)
        return "back"
      end)
      t:name("shell-caller")
      print(t:wait())
    ]])
    assert.equal(0, code, out)
    assert.matches("the hub has been blocked for 0%.%d+ s by green thread", out)
    -- the shell's 0.5 s, and what a loaded machine adds to starting it
    local secs = tonumber(out:match("green thread shell%-caller blocked the hub for (%d+%.%d+) s"))
    assert.is_truthy(secs, out)
    assert.is_true(secs >= 0.4 and secs < 5, out)
    assert.matches("it is now at:", out)
  end)

  it("a user's hook is not replaced while blocking detection is on", function()
    local out, code = H.run_script([[
      local gh = require "greenhub"
      gh.debug.blocking(10)
      local hits = 0
      local t = gh.spawn(function()
        debug.sethook(function() hits = hits + 1 end, "", 100)
        for _ = 1, 5 do local x = 0; for j = 1, 1e4 do x = x + j end; gh.sleep(0) end
      end)
      t:wait()
      print("hits", hits > 0)
    ]])
    assert.equal(0, code, out)
    assert.matches("hits\ttrue", out)
  end)
end)
