-- #19: a TLS client that sent a lot and closed at once lost its last
-- records: the server's TLS 1.3 session tickets sat unread in the client's
-- receive buffer, so the kernel answered close() with a reset, and the
-- reset destroyed data still in flight (the server read "closed" early).
-- Unread input is now dropped before the fd closes.
local H = require "helper"
local gh = H.gh
local tls = gh.tls

describe("regress: closing a TLS socket with unread input", function()
  if not tls.available then it("needs LuaSec", function() pending("lua-sec missing") end) return end
  local key, crt, dir = H.self_signed()
  teardown(function() os.execute("rm -rf " .. dir) end)

  it("does not reset the connection under the records still on their way", function()
    for _ = 1, 3 do
      local srv = assert(tls.listen("127.0.0.1", 0, { key = key, certificate = crt }))
      local _, port = srv:getsockname()
      local got
      local go = gh.event()
      local st = gh.spawn(function()
        local c = srv:accept()
        c:settimeout(H.scale(20))
        assert(c:dohandshake()) -- TLS 1.3: the tickets go out now
        go:wait()
        got = { c:receive("*a") }
        c:close()
      end)
      local c = assert(tls.connect("127.0.0.1", port, { verify = "none" }))
      c:settimeout(H.scale(20))
      gh.sleep(0.02) -- the tickets arrive; nobody reads them
      local data = ("d"):rep(4 << 20)
      local co = gh.spawn(function() assert(c:send(data)); c:close() end)
      gh.sleep(0.05) -- the send is parked on a full pipe: the server reads late
      go:send(true)
      H.bounded(30, co.wait, co)
      H.bounded(30, st.wait, st)
      assert.is_nil(got[2], got[2])
      assert.equal(#data, #got[1])
      srv:close()
    end
  end)
end)
