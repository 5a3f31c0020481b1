-- #11.23: the partial result of a "*l" receive kept its '\r', so resuming
-- the read with that prefix gave "abc\r"; LuaSocket drops CRs from it too.
local H = require "helper"
local gh = H.gh

describe("regress: partial of a line receive", function()
  it("has no CR, and resuming with it gives the clean line", function()
    local c, s = H.tcp_pair()
    c:send("ab\rc\r")
    s:settimeout(0.05)
    local line, err, partial = s:receive("*l")
    assert.is_nil(line)
    assert.equal("timeout", err)
    assert.equal("abc", partial)
    c:send("\n")
    s:settimeout(2)
    assert.equal("abc", s:receive("*l", partial))
    c:close(); s:close()
  end)
end)
