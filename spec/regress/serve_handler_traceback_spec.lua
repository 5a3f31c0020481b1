-- #11.31: a gh.serve handler that raised was reported as greenhub.lua:107
-- with a traceback stopping inside greenhub: the handler's stack was lost.
local H = require "helper"
local gh = H.gh

describe("regress: gh.serve handlers", function()
  it("an error is reported with the handler's own stack", function()
    local out, code = H.run_script([[
      local gh = require "greenhub"
      local function deep_helper(x) error("handler failed on " .. x) end
      local function handler(conn) deep_helper(conn:receive()) end
      local srv = assert(gh.listen("127.0.0.1", 0))
      local _, port = srv:getsockname()
      gh.spawn(gh.serve, srv, handler)
      local c = assert(gh.connect("127.0.0.1", port))
      c:send("req\n")
      c:settimeout(2)
      print("client", c:receive())
      srv:close()
      gh.sleep(0.01)
    ]])
    assert.equal(0, code, out)
    assert.matches("uncaught error in green thread", out)
    assert.matches(":2: handler failed on req", out)
    assert.matches("in upvalue 'deep_helper'", out)
    assert.matches(":3: in upvalue 'handler'", out) -- the handler's frame
    assert.matches("green thread [^ ]*:3: ", out) -- named after the handler
    assert.matches("client\tnil\tclosed", out) -- and the connection was closed
  end)

end)
