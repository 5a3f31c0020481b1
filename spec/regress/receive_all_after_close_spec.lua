-- #11.24: receive("*a") after the peer closed, with nothing buffered,
-- returned "" forever; LuaSocket returns nil, "closed", "".
local H = require "helper"
local gh = H.gh

describe("regress: receive('*a') at end of stream", function()
  it("returns the data once, then nil, 'closed', ''", function()
    local c, s = H.tcp_pair()
    c:send("tail")
    c:close()
    assert.equal("tail", s:receive("*a"))
    assert.same({ nil, "closed", "" }, { s:receive("*a") })
    assert.same({ nil, "closed", "" }, { s:receive("*a") })
    s:close()
  end)

  it("a read-until-error loop ends", function()
    local c, s = H.tcp_pair()
    c:close()
    local n = 0
    while s:receive("*a") do n = n + 1; assert(n < 10, "spins") end
    s:close()
  end)
end)
