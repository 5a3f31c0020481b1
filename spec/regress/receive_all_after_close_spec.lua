-- #11.24: receive("*a") after the peer closed, with nothing buffered,
-- returned "" forever; LuaSocket returns nil, "closed", "".
local H = require "helper"
local gh = H.gh

describe("regress: receive('*a') at end of stream", function()
  it("returns the data once, then nil, 'closed', ''", function()
    local srv = assert(gh.listen("127.0.0.1", 0))
    local _, port = srv:getsockname()
    local c = assert(gh.connect("127.0.0.1", port))
    local s = assert(srv:accept())
    c:send("tail")
    c:close()
    assert.equal("tail", s:receive("*a"))
    assert.same({ nil, "closed", "" }, { s:receive("*a") })
    assert.same({ nil, "closed", "" }, { s:receive("*a") })
    s:close(); srv:close()
  end)

  it("a read-until-error loop ends", function()
    local srv = assert(gh.listen("127.0.0.1", 0))
    local _, port = srv:getsockname()
    local c = assert(gh.connect("127.0.0.1", port))
    local s = assert(srv:accept())
    c:close()
    local n = 0
    while s:receive("*a") do n = n + 1; assert(n < 10, "spins") end
    s:close(); srv:close()
  end)
end)
