-- #12: the contract says a shutdown lets running requests finish "answered
-- with Connection: close"; a request already in its handler when the
-- shutdown began was answered without it (only requests that started
-- after were marked), and the connection closed under a client that had
-- been told it stays. Now every running answer whose head is not out yet
-- says Connection: close.
local H = require "helper"

describe("regress: a running request's answer during a shutdown", function()
  for _, how in ipairs({ "returned", "finished", "written" }) do
    it(how .. ": says Connection: close, then the connection closes", function()
      local gh = H.gh
      local s, port, stop = H.http_server(function(_, res)
        gh.sleep(0.2)
        if how == "returned" then return 200, nil, "slow" end
        if how == "finished" then return res:finish("slow") end
        res:write(string.rep("s", 3000)) -- over 2 KiB: the head goes out here, in Lua
        return res:finish()
      end)
      local c = H.connect(port)
      c:send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
      gh.sleep(0.05)
      local done = gh.spawn(s.shutdown, s, 5)
      local st, h = H.http_response(c)
      assert.same({ 200, "close" }, { st, h.connection })
      assert.same({ nil, "closed", "" }, { c:receive("*a") })
      assert.is_true(done:wait())
      c:close(); stop()
    end)
  end
end)
