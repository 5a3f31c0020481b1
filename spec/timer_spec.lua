-- The timer heap (csrc/timer.c): its invariant under random arms and
-- cancels (the C self-test), and what users see of it: equal deadlines
-- fire in the order they were set, cancelled timers never fire, and the
-- heap stays consistent (gh.stats().heap_ok) after heavy churn.
local H = require "helper"
local gh = H.gh
local core = require "greenhub.core"

describe("the timer heap", function()
  it("keeps its invariant and pops in (deadline, order set) order, at every size", function()
    for _, n in ipairs({ 1, 2, 3, 7, 64, 1000, 50000 }) do
      for seed = 1, 3 do
        assert.is_true(core._timer_selftest(n, seed), "n=" .. n .. " seed=" .. seed)
      end
    end
  end)

  it("threads sleeping to the same deadline wake in the order they slept", function()
    local order = {}
    local ts = {}
    for i = 1, 50 do ts[i] = gh.spawn_after(0.01, function() order[#order + 1] = i end) end
    for i = 1, 50 do ts[i]:wait() end
    for i = 1, 50 do assert.equal(i, order[i]) end
  end)

  it("cancelled timers never fire, and the heap stays whole through the churn", function()
    local fired = 0
    local ts = {}
    for i = 1, 2000 do ts[i] = gh.spawn_after(0.02 + (i % 7) * 0.001, function() fired = fired + 1 end) end
    for i = 1, 2000, 2 do assert.is_true(ts[i]:cancel()) end
    assert.is_true(gh.stats().heap_ok)
    for i = 2, 2000, 2 do ts[i]:wait() end
    assert.equal(1000, fired)
    assert.is_true(gh.stats().heap_ok)
    -- with_timeout arms and cancels a timer per call
    for _ = 1, 1000 do assert.equal(1, gh.with_timeout(1, function() return 1 end)) end
    assert.is_true(gh.stats().heap_ok)
  end)
end)
