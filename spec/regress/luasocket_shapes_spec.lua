-- #11.29c: more LuaSocket shapes: sock.class was a function, getoption("error")
-- was unsupported, socket.unix.dgram was missing, connect("") reached
-- 127.0.0.1, receive(0) on a closed socket returned "".
local H = require "helper"
local gh = H.gh
local socket = gh.socket

local pair = H.tcp_pair

describe("regress: LuaSocket fidelity", function()
  it("sock.class is the class string, following the socket's life", function()
    local m = assert(socket.tcp())
    assert.equal("tcp{master}", m.class)
    local c, s = pair()
    assert.equal("tcp{client}", c.class)
    assert.equal("tcp{client}", s.class)
    local srv = assert(gh.listen("127.0.0.1", 0))
    assert.equal("tcp{server}", srv.class)
    assert.equal("udp{unconnected}", socket.udp().class)
    assert.matches("^tcp{client}", tostring(c))
    m:close(); c:close(); s:close(); srv:close()
  end)

  it("getoption('error') reads and clears the pending error, nil for none", function()
    local c, s = pair()
    assert.is_nil(c:getoption("error"))
    c:close(); s:close()
    -- a datagram to a closed port: the ICMP answer leaves an error pending
    local l = assert(gh.listen("127.0.0.1", 0)); local _, port = l:getsockname(); l:close()
    local u = assert(socket.udp())
    assert(u:setpeername("127.0.0.1", port))
    u:send("x")
    local err
    for _ = 1, 50 do err = u:getoption("error"); if err then break end gh.sleep(0.01) end
    assert.equal("connection refused", err)
    assert.is_nil(u:getoption("error")) -- read once, then cleared
    u:close()
  end)

  it("socket.unix.dgram exchanges datagrams by path", function()
    local dir = os.tmpname(); os.remove(dir)
    local pa, pb = dir .. ".a", dir .. ".b"
    local a = assert(socket.unix.dgram())
    local b = assert(socket.unix.dgram())
    assert.equal("unixdgram{unconnected}", a.class)
    assert.equal(1, a:bind(pa))
    assert.equal(1, b:bind(pb))
    assert.equal(5, b:sendto("hello", pa))
    a:settimeout(2)
    local data, from = a:receivefrom()
    assert.equal("hello", data)
    assert.equal(pb, from)
    assert.equal(1, a:connect(pb))
    assert.equal("unixdgram{connected}", a.class)
    a:send("back")
    b:settimeout(2)
    assert.equal("back", b:receive())
    a:close(); b:close(); os.remove(pa); os.remove(pb)
  end)

  it("connect('') is an error, not the loopback address", function()
    local srv = assert(gh.listen("127.0.0.1", 0))
    local c = assert(socket.tcp())
    local ok, err = c:connect("", select(2, srv:getsockname()))
    assert.is_nil(ok)
    assert.equal("host not found", err)
    c:close(); srv:close()
  end)

  it("receive(0) on a closed socket is nil, 'closed'", function()
    local c, s = pair()
    assert.equal("", s:receive(0))
    s:close()
    local r = table.pack(s:receive(0))
    assert.is_nil(r[1])
    assert.equal("closed", r[2])
    c:close()
  end)
end)
