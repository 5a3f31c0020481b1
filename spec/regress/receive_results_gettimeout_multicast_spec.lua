-- #11.27: a successful receive returned one value (LuaSocket: data, nil,
-- nil); gettimeout was missing; multicast options raised "unsupported".
local H = require "helper"
local gh = H.gh
local socket = gh.socket

local pair = H.tcp_pair

describe("regress: LuaSocket results, gettimeout and multicast options", function()
  it("a successful receive returns data, nil, nil", function()
    local c, s = pair()
    c:send("line\nabc")
    local r = table.pack(s:receive())
    assert.equal(3, r.n)
    assert.same({ "line" }, { r[1], r[2], r[3] })
    r = table.pack(s:receive(3))
    assert.equal(3, r.n)
    c:close(); s:close()
  end)

  it("gettimeout returns the block and total timeouts, -1 for none", function()
    local c = assert(socket.tcp())
    assert.same({ -1, -1 }, { c:gettimeout() })
    c:settimeout(2.5)
    c:settimeout(7, "t")
    assert.same({ 2.5, 7 }, { c:gettimeout() })
    c:close()
  end)

  it("multicast options are supported on UDP sockets", function()
    local u = assert(socket.udp())
    assert(u:setsockname("0.0.0.0", 0))
    assert.equal(1, u:setoption("ip-multicast-ttl", 4))
    assert.equal(4, u:getoption("ip-multicast-ttl"))
    assert.equal(1, u:setoption("ip-multicast-loop", false))
    assert.is_false(u:getoption("ip-multicast-loop"))
    assert.equal(1, u:setoption("ip-multicast-if", "127.0.0.1"))
    assert.equal("127.0.0.1", u:getoption("ip-multicast-if"))
    local ok, err = u:setoption("ip-add-membership", { multiaddr = "239.1.2.3", interface = "127.0.0.1" })
    assert(ok == 1 or err, "join")
    if ok then assert.equal(1, u:setoption("ip-drop-membership", { multiaddr = "239.1.2.3", interface = "127.0.0.1" })) end
    u:close()
    local u6 = socket.udp6()
    if u6 then
      assert.equal(1, u6:setoption("ipv6-unicast-hops", 9))
      assert.equal(9, u6:getoption("ipv6-unicast-hops"))
      assert.equal(1, u6:setoption("ipv6-multicast-hops", 3))
      assert.equal(1, u6:setoption("ipv6-multicast-loop", true))
      u6:close()
    end
  end)

end)
