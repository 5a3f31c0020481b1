-- #19: with setoption("coalesce", true), a TLS send too big to collect
-- was encrypted whole into the socket's own buffer (8 MiB taken while
-- the peer read nothing) instead of waiting for the peer as on TCP.
local H = require "helper"
local gh = H.gh
local tls = gh.tls

describe("regress: a big send on a coalescing TLS socket", function()
  if not tls.available then it("needs LuaSec", function() pending("lua-sec missing") end) return end
  local key, crt, dir = H.self_signed()
  teardown(function() os.execute("rm -rf " .. dir) end)

  it("coalesce on a TLS socket: a send too big to collect waits for the peer as on TCP", function()
    local go = gh.event()
    local got
    local srv, port, st = H.tls_one_shot(key, crt, function(c)
      c:settimeout(H.scale(20))
      assert(c:dohandshake())
      go:wait()
      got = #c:receive("*a")
    end)
    local c = assert(tls.connect("127.0.0.1", port, { verify = "none" }))
    c:setoption("coalesce", true)
    c:settimeout(0.2)
    local big = ("b"):rep(8 << 20)
    local ok, err, last = c:send(big) -- the peer reads nothing yet
    assert.is_nil(ok)
    assert.equal("timeout", err)
    assert.is_true(last < #big, "all 8 MiB taken while the peer read nothing")
    go:send(true)
    c:settimeout(H.scale(20))
    assert(c:send(big, last + 1))
    c:close()
    H.bounded(30, st.wait, st)
    assert.equal(#big, got)
    srv:close()
  end)
end)
