-- #11.19: receive(2^40) raised "out of memory" (it preallocated);
-- LuaSocket reads what comes and returns nil, "closed", partial.
local H = require "helper"
local gh = H.gh

describe("regress: receive with an enormous count", function()
  it("grows as data arrives and returns the partial data on close", function()
    local srv = assert(gh.listen("127.0.0.1", 0))
    local _, port = srv:getsockname()
    gh.spawn(function()
      local c = srv:accept()
      c:send(string.rep("z", 100000))
      c:close()
    end)
    local c = assert(gh.connect("127.0.0.1", port))
    local data, err, partial = c:receive(2 ^ 40)
    assert.is_nil(data)
    assert.equal("closed", err)
    assert.equal(100000, #partial)
    c:close(); srv:close()
  end)
end)
