-- #11.13: nested with_timeouts expiring in the same hub turn: the inner
-- interrupt overwrote the outer and the outer timeout was lost.
local H = require "helper"
local gh = H.gh

describe("regress: nested timeouts that expire together", function()
  it("the outer timeout is not lost", function()
    local t = gh.spawn(function()
      local inner_result
      local r = table.pack(gh.with_timeout(0.02, function()
        inner_result = table.pack(gh.with_timeout(0.02, function()
          -- a busy wait past both deadlines, then park: both timers are
          -- due at the next turn and fire in it together
          local t0 = gh.clock()
          while gh.clock() - t0 < 0.05 do end
          gh.sleep(1)
        end))
        -- if the outer interrupt had been lost we would loop here forever
        while true do gh.sleep(0.001) end
      end))
      return r[1], r[2], inner_result
    end)
    local a, b, inner = H.bounded(5, t.wait, t)
    assert.is_nil(a)
    assert.equal("timeout", b)
    assert.is_nil(inner) -- the outer token unwound the inner call as well
  end)

  it("the inner timeout alone still comes back to its own with_timeout", function()
    local t = gh.spawn(function()
      local inner = table.pack(gh.with_timeout(0.01, gh.sleep, 1))
      return inner[1], inner[2], "outer continues"
    end)
    local r = table.pack(gh.with_timeout(5, t.wait, t))
    assert.same({ nil, "timeout", "outer continues" }, { r[1], r[2], r[3] })
  end)
end)
