-- #11.3: a gh.coroutine resumed with the plain coroutine.resume blocked
-- inside: the hub's marker leaked into user code, the thread died parked.
local H = require "helper"
local gh = H.gh

describe("regress: gh.coroutine resumed by plain coroutine.resume", function()
  it("gives a clear error at the blocking call instead of leaking the marker", function()
    local raw_resume = coroutine.resume
    local t = gh.spawn(function()
      local co = gh.coroutine.create(function()
        gh.sleep(0.01)
        return "slept"
      end)
      return raw_resume(co)
    end)
    local ok, err = t:wait()
    assert.is_false(ok)
    assert.matches("coroutine greenhub does not own", err)
    assert.is_true(gh.stats().heap_ok)
    -- no timer of the dead thread is left behind
    gh.sleep(0.03)
    assert.equal(0, gh.stats().timers)
  end)

  it("a raw resume in the middle of a chain is caught too", function()
    local raw_resume = coroutine.resume
    local t = gh.spawn(function()
      local inner = gh.coroutine.create(function() gh.sleep(0.001); return 1 end)
      local mid = gh.coroutine.create(function() return raw_resume(inner) end)
      return gh.coroutine.resume(mid)
    end)
    local ok, inner_ok, err = t:wait()
    assert.is_true(ok)
    assert.is_false(inner_ok)
    assert.matches("does not own", err)
  end)

  it("gh.coroutine.resume all the way still passes the hub's yields", function()
    local t = gh.spawn(function()
      local inner = gh.coroutine.create(function() gh.sleep(0.001); coroutine.yield("mine"); return "end" end)
      local outer = gh.coroutine.wrap(function()
        local a, b = select(2, gh.coroutine.resume(inner)), select(2, gh.coroutine.resume(inner))
        return a, b
      end)
      return outer()
    end)
    assert.same({ "mine", "end" }, { t:wait() })
  end)
end)
