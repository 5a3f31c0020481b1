-- #11.7: pool:imap with an iterator that raises: the feeder thread died
-- and the consumer blocked forever.
local H = require "helper"
local gh = H.gh

describe("regress: pool:imap and a failing iterator", function()
  it("an iterator that raises: the error comes out of the loop, nothing hangs", function()
    local p = gh.pool(2)
    local n = 0
    local function items()
      n = n + 1
      if n == 3 then error("source broke") end
      return n
    end
    local got = {}
    local ok, err = pcall(H.bounded, 5, function()
      for _, r in p:imap(function(x) return x * 10 end, items) do got[#got + 1] = r end
    end)
    assert.is_false(ok)
    assert.matches("source broke", err)
    assert.same({ 10, 20 }, got)
  end)

end)
