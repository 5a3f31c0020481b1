-- #11.34: requiring socket.http before gh.patch() left the caller holding
-- a blocking module; a green server in the same process then hung.
local H = require "helper"

describe("regress: gh.patch() after LuaSocket was loaded", function()
  it("makes the earlier module references green, and warns", function()
    local out, code = H.run_script([[
      local socket = require "socket"          -- the real LuaSocket, first
      local http = require "socket.http"
      http.TIMEOUT = 3
      local gh = require("greenhub").patch()
      local srv = assert(gh.listen("127.0.0.1", 0))
      local _, port = srv:getsockname()
      gh.spawn(gh.serve, srv, function(c)
        while c:receive() ~= "" do end
        c:send("HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello")
      end)
      -- the references taken before the patch: green now
      local body, status = http.request("http://127.0.0.1:" .. port .. "/")
      print("got", body, status)
      local t0 = gh.clock()
      socket.sleep(0.05) -- green: other threads run meanwhile
      local c = assert(socket.connect("127.0.0.1", port))
      print("green tcp", tostring(c):match("^tcp{client}") ~= nil)
      c:close()
      srv:close()
    ]])
    assert.equal(0, code, out)
    assert.matches("got\thello\t200", out)
    assert.matches("green tcp\ttrue", out)
    assert.matches("gh.patch%(%) came after LuaSocket was loaded", out)
    assert.matches("still block", out)
  end)

  it("says nothing when patched first", function()
    local out, code = H.run_script([[
      local gh = require("greenhub").patch()
      local http = require "socket.http"
      print("ok", type(http.request))
    ]])
    assert.equal(0, code, out)
    assert.not_matches("came after", out)
  end)
end)
