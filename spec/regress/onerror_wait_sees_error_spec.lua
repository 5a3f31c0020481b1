-- #11.21: inside gh.onerror, t:wait() on the thread that just failed
-- returned success instead of re-raising its error.
local H = require "helper"
local gh = H.gh

describe("regress: onerror and t:wait()", function()
  after_each(function() gh.onerror(nil) end)

  it("t:wait() inside the handler re-raises the thread's error", function()
    local seen
    gh.onerror(function(t, err)
      seen = table.pack(pcall(t.wait, t))
      seen.err = err
    end)
    gh.spawn(function() error({ code = 1 }) end)
    gh.sleep(0.01)
    assert.is_false(seen[1])
    assert.same({ code = 1 }, seen[2])
    assert.equal(seen.err, seen[2])
  end)
end)
