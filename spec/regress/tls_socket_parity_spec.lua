-- #11.28: TLS sockets: getpeername/getsockname said "not supported by
-- LuaSec", shutdown("send") closed the whole connection. (Also checks the
-- LuaSocket result shapes of #11.27 and receivepartial of #11.29 on TLS.)
local H = require "helper"
local gh = H.gh
local tls = gh.tls

describe("regress: TLS sockets behave as TCP ones", function()
  if not tls.available then it("needs LuaSec", function() pending("lua-sec missing") end) return end
  local key, crt, dir = H.self_signed()
  teardown(function() os.execute("rm -rf " .. dir) end)

  local function server(handler) return H.tls_one_shot(key, crt, handler) end

  it("getpeername/getsockname give addresses on both sides", function()
    local peer
    local srv, port, th = server(function(c) c:dohandshake(); peer = { c:getpeername() }; c:receive() end)
    local c = assert(tls.connect("127.0.0.1", port, { verify = "none" }))
    local ip, p = c:getsockname()
    assert.equal("127.0.0.1", ip)
    assert.same({ "127.0.0.1", port, "inet" }, { c:getpeername() })
    c:send("x\n")
    H.bounded(10, th.wait, th)
    assert.same({ "127.0.0.1", p, "inet" }, peer)
    c:close(); srv:close()
  end)

  it("shutdown('send') half-closes: the answer still comes back", function()
    local srv, port, th = server(function(c)
      local d = c:receive(5)
      c:send("got " .. #d)
    end)
    local c = assert(tls.connect("127.0.0.1", port, { verify = "none" }))
    c:send("12345")
    assert.equal(1, c:shutdown("send"))
    c:settimeout(5)
    local got, err, partial = c:receive("*a")
    assert.equal("got 5", got or partial, err)
    H.bounded(10, th.wait, th)
    c:close(); srv:close()
  end)

  it("receive returns three values; gettimeout and receivepartial exist", function()
    local srv, port, th = server(function(c) c:send("line\nrest") end)
    local c = assert(tls.connect("127.0.0.1", port, { verify = "none" }))
    c:settimeout(5)
    local r = table.pack(c:receive())
    assert.equal(3, r.n)
    assert.equal("line", r[1])
    assert.equal("rest", c:receivepartial(100))
    assert.same({ 5, -1 }, { c:gettimeout() })
    H.bounded(10, th.wait, th)
    c:close(); srv:close()
  end)
end)
