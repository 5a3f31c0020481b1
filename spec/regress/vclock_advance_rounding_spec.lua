-- Bug: vc:advance(s) compared timer deadlines with its target in floating
-- seconds; depending on where virtual time stood, the timer due exactly
-- at the target rounded past it and did not fire (9 ticks of 60 s in
-- advance(600), now and then). Now it counts in whole nanoseconds.
local H = require "helper"
local gh = H.gh

describe("regress: virtual clock advance", function()
  it("fires the timer due exactly at the target, wherever time stands", function()
    for round = 1, 300 do
      local vc <close> = gh.testing.virtual_clock()
      vc:advance(round * 0.001237) -- move the starting point around
      local ticks = 0
      gh.spawn(function() for _ = 1, 20 do gh.sleep(60); ticks = ticks + 1 end end)
      vc:advance(600)
      assert.equal(10, ticks, "round " .. round)
      vc:advance(1200) -- let the ticker finish
    end
  end)
end)
