-- #11.32: pool:imap stopped silently at a result starting with nil, a
-- break did not stop the remaining work, the result queue was unbounded.
local H = require "helper"
local gh = H.gh

describe("regress: pool:imap", function()
  it("results starting with nil come through, in order", function()
    local p = gh.pool(3)
    local out = {}
    for i, a, b in p:imap(function(x) if x % 2 == 0 then return nil, "even " .. x end return x end, { 1, 2, 3, 4 }) do
      out[i] = { a, b }
    end
    assert.same({ { 1 }, { nil, "even 2" }, { 3 }, { nil, "even 4" } }, out)
  end)

  it("a break stops the feeder and the work still running", function()
    local p = gh.pool(3)
    local started = 0
    local src = 0
    local function items() src = src + 1; return src end -- endless
    for i in p:imap(function(x) started = started + 1; gh.sleep(x == 1 and 0 or 10); return x end, items) do
      assert.equal(1, i)
      break
    end
    gh.sleep(0.02)
    assert.equal(0, p:running())
    local seen = src
    gh.sleep(0.02)
    assert.equal(seen, src) -- nothing pulls items any more
    assert.is_true(started <= 1 + 3 * 2)
  end)

  it("memory is bounded by the pool size while the consumer is slow", function()
    local p = gh.pool(4)
    local src, taken = 0, 0
    local function items() src = src + 1; if src <= 1000 then return src end end
    for _ in p:imap(function(x) return x end, items) do
      taken = taken + 1
      gh.sleep(0.001)
      -- produced but not yet consumed: at most size running + size queued (+1 in hand)
      assert.is_true(src - taken <= 4 * 2 + 2, ("%d ahead"):format(src - taken))
      if taken == 50 then break end
    end
  end)
end)
