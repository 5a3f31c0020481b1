-- Bug: luaopen_greenhub_core pushed the HTTP fast lane's 25 upvalues
-- (s:_httpreq, csrc/sockhttp.c) without luaL_checkstack. A C function may
-- only assume 20 free stack slots: required straight (not through
-- require "greenhub", whose Lua frame happened to leave room), the pushes
-- ran past the stack and lua5.4 crashed with a segmentation fault.
local H = require "helper"

describe("regress: require 'greenhub.core' straight from a fresh state", function()
  it("loads, and its sockets have the HTTP reader", function()
    local out, code = H.run_script([[
      local core = require "greenhub.core"
      local s = assert(core.tcp())
      print(type(s._httpreq), core._VERSION)
    ]])
    assert.equal(0, code, out)
    assert.truthy(out:match("^function%s+%a+"), out)
  end)
end)
