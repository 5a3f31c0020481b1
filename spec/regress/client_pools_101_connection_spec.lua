-- #12: the client gave a connection that answered 101 Switching Protocols
-- back to its keep-alive pool; the next fetch to that origin was written
-- into the other protocol and waited for an HTTP answer until its timeout.
local H = require "helper"
local gh = H.gh
local http = require "greenhub.http"

describe("regress: a 101's connection pooled", function()
  it("a 101 to a plain fetch is the answer, and its connection is never reused", function()
    local port, stop, held = H.raw_server(function(s)
      repeat local line = s:receive() until line == "" or line == nil
      s:send("HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: other\r\n\r\n")
    end)
    local c = http.client({ timeout = 2 })
    for _ = 1, 2 do
      local res, err = c:fetch("http://127.0.0.1:" .. port .. "/")
      assert.equal(101, res and res.status, err)
    end
    assert.equal(2, #held)
    stop()
  end)
end)
