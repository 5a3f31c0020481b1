-- Green sockets: TCP, UDP, Unix; LuaSocket's return shapes and error words.
local H = require "helper"
local gh = H.gh
local core = require "greenhub.core"
local socket = gh.socket

-- A listening socket on a free loopback port, and that port.
local function server(host)
  local s = assert(gh.listen(host or "127.0.0.1", 0))
  local _, port = s:getsockname()
  return s, port
end

-- Echo lines back until the peer closes.
local function echo_handler(c)
  while true do
    local l = c:receive("*l")
    if not l then return end
    assert(c:send(l .. "\n"))
  end
end

local function with_server(handler, f, host, backlog)
  local s = assert(gh.listen(host or "127.0.0.1", 0, backlog))
  local _, port = s:getsockname()
  local t = gh.spawn(gh.serve, s, handler)
  local r = table.pack(H.bounded(20, f, port))
  s:close()
  t:wait()
  return table.unpack(r, 1, r.n)
end

describe("tcp", function()
  it("echo round trip with LuaSocket's return values", function()
    with_server(echo_handler, function(port)
      local c = assert(socket.connect("127.0.0.1", port))
      assert.matches("^tcp{client}: 0x", tostring(c))
      assert.equal(6, c:send("hello\n"))
      assert.equal("hello", c:receive())
      assert.equal(3, c:send("hi\n"))
      assert.equal("hi", c:receive("l"))
      assert.equal(1, c:close())
      assert.matches("closed", tostring(c))
    end)
  end)

  it("send(data, i, j) sends a slice and returns the last index", function()
    with_server(echo_handler, function(port)
      local c = assert(gh.connect("127.0.0.1", port))
      assert.equal(5, c:send("xxabc\nyy", 3, 6) and 6 - 1)
      assert.equal("abc", c:receive())
      assert.equal(0, c:send(""))
      assert.equal(4, c:send("abcd\n", -5, 4))
      assert.equal(5, c:send("\n", 1, 1) + 4)
      assert.equal("abcd", c:receive())
      c:close()
    end)
  end)

  it("line, count and *a patterns across 1-byte packets", function()
    local payload = "line one\r\nline two\nABCDEFGHIJ" .. string.rep("z", 3000) .. "tail"
    with_server(function(c)
      c:setoption("tcp-nodelay", true)
      for i = 1, #payload do
        c:send(payload, i, i)
        if i % 7 == 0 then gh.sleep(0.0005) end
      end
    end, function(port)
      local c = assert(gh.connect("127.0.0.1", port))
      assert.equal("line one", c:receive("*l"))
      assert.equal("pre:line two", c:receive("l", "pre:"))
      assert.equal("ABCDE", c:receive(5))
      assert.equal("FGHIJ", c:receive(5))
      assert.equal(string.rep("z", 3000) .. "tail", c:receive("*a"))
      assert.same({ nil, "closed", "" }, { c:receive(1) })
      c:close()
    end)
  end)

  it("partial results on close come back as LuaSocket does", function()
    with_server(function(c) c:send("no newline here") end, function(port)
      local c = assert(gh.connect("127.0.0.1", port))
      local a, b, partial = c:receive("*l")
      assert.is_nil(a)
      assert.equal("closed", b)
      assert.equal("no newline here", partial)
      c:close()
    end)
    with_server(function(c) c:send("12345") end, function(port)
      local c = assert(gh.connect("127.0.0.1", port))
      assert.same({ nil, "closed", "p12345" }, { c:receive(10, "p") })
      c:close()
    end)
    -- as LuaSocket: a count includes the prefix, so receive(n, partial)
    -- finishes an interrupted receive(n)
    with_server(function(c) c:send("abc"); gh.sleep(0.05); c:send("defgh") end, function(port)
      local c = assert(gh.connect("127.0.0.1", port))
      c:settimeout(0.02)
      local _, err, partial = c:receive(6)
      assert.equal("timeout", err); assert.equal("abc", partial)
      c:settimeout(1)
      assert.equal("abcdef", c:receive(6, partial))
      assert.equal("gh", c:receive(2))
      assert.equal("xy", c:receive(1, "xy")) -- prefix already long enough: no read
      c:close()
    end)
  end)

  it("receive timeout returns the partial data, and the prefix continues it", function()
    with_server(function(c) c:send("par"); gh.sleep(0.1); c:send("tial\n"); c:receive() end, function(port)
      local c = assert(gh.connect("127.0.0.1", port))
      c:settimeout(0.03)
      local t0 = H.now()
      local a, err, partial = c:receive()
      assert.is_nil(a)
      assert.equal("timeout", err)
      assert.equal("par", partial)
      assert.is_true(H.now() - t0 >= 0.03)
      c:settimeout(1)
      assert.equal("partial", c:receive("*l", partial))
      c:close()
    end)
  end)

  it("settimeout(0) never blocks", function()
    with_server(function(c) c:receive() end, function(port)
      local c = assert(gh.connect("127.0.0.1", port))
      c:settimeout(0)
      assert.same({ nil, "timeout", "" }, { c:receive() })
      c:close()
    end)
  end)

  it("a line longer than line-max is an error, not unbounded memory", function()
    with_server(function(c) c:send(string.rep("x", 5000) .. "\nnext\n"); gh.sleep(0.05) end, function(port)
      local c = assert(gh.connect("127.0.0.1", port))
      assert.equal(1, c:setoption("line-max", 1000))
      assert.equal(1000, c:getoption("line-max"))
      local a, err = c:receive()
      assert.is_nil(a)
      assert.equal("line too long", err)
      assert.equal("next", c:receive()) -- only the long line was dropped
      c:close()
    end)
  end)

  it("bad arguments raise clear errors", function()
    with_server(echo_handler, function(port)
      local c = assert(gh.connect("127.0.0.1", port))
      assert.has_error(function() c:receive("*x") end)
      assert.has_error(function() c:receive(-1) end)
      assert.has_error(function() c:receive({}) end)
      assert.has_error(function() c:send() end)
      assert.has_error(function() c:send({}) end)
      assert.has_error(function() c:setoption("no-such-option", true) end)
      assert.has_error(function() c:getoption("nope") end)
      assert.has_error(function() c:settimeout("x") end)
      assert.has_error(function() c:settimeout(1, "q") end)
      assert.has_error(function() c:accept() end)
      assert.has_error(function() c.receive(io.stdout) end)
      assert.has_error(function() socket.tcp():connect("127.0.0.1", 70000) end)
      -- and nothing was half-done: the socket still works
      assert.equal(3, c:send("ok\n"))
      assert.equal("ok", c:receive())
      c:close()
    end)
  end)

  it("connection refused", function()
    local s, port = server()
    s:close() -- nothing listens there now
    local c, err = gh.connect("127.0.0.1", port)
    assert.is_nil(c)
    assert.equal("connection refused", err)
  end)

  it("connect times out against a full accept queue", function()
    local s = assert(socket.tcp())
    assert(s:_bind_reuse("127.0.0.1", 0))
    assert(s:listen(0))
    local _, port = s:getsockname()
    local fillers = {}
    for i = 1, 4 do
      fillers[i] = gh.spawn(function() return gh.connect("127.0.0.1", port, 2) end)
    end
    gh.sleep(0.05)
    local t0 = H.now()
    local c, err = gh.connect("127.0.0.1", port, 0.2)
    assert.is_nil(c)
    assert.equal("timeout", err)
    assert.is_true(H.now() - t0 >= 0.2)
    for _, f in ipairs(fillers) do f:kill() end
    s:close()
  end)

  it("accept times out", function()
    local s = server()
    s:settimeout(0.02)
    assert.same({ nil, "timeout" }, { s:accept() })
    s:close()
  end)

  it("send blocks when the peer stops reading, then times out", function()
    local s, port = server()
    local peer
    gh.spawn(function() peer = s:accept() end)
    local c = assert(gh.connect("127.0.0.1", port))
    gh.sleep(0.01)
    c:settimeout(0.2)
    local big = string.rep("x", 16 * 1024 * 1024)
    local t0 = H.now()
    local a, err, last = c:send(big)
    local cpu0 = os.clock()
    assert.is_nil(a)
    assert.equal("timeout", err)
    assert.is_true(last > 0 and last < #big)
    assert.is_true(H.now() - t0 >= 0.2)
    c:close(); peer:close(); s:close()
  end)

  it("send to a closed peer is nil, 'closed' (no SIGPIPE)", function()
    local s, port = server()
    local c = assert(gh.connect("127.0.0.1", port))
    local peer = assert(s:accept())
    peer:close()
    gh.sleep(0.01)
    local err
    for _ = 1, 100 do
      local ok, e = c:send(string.rep("x", 65536))
      if not ok then err = e; break end
    end
    assert.equal("closed", err)
    c:close(); s:close()
  end)

  it("peer reset mid-receive gives 'closed' with the partial data", function()
    local s, port = server()
    local c = assert(gh.connect("127.0.0.1", port))
    local peer = assert(s:accept())
    peer:send("half a li")
    gh.sleep(0.01)
    peer:setoption("linger", { on = true, timeout = 0 })
    assert.same({ on = true, timeout = 0 }, peer:getoption("linger"))
    peer:close() -- RST
    local a, err, partial = c:receive("*l")
    assert.is_nil(a)
    assert.equal("closed", err)
    assert.equal("half a li", partial)
    c:close(); s:close()
  end)

  it("closing a socket wakes its waiters with 'closed'", function()
    local s, port = server()
    local c = assert(gh.connect("127.0.0.1", port))
    local peer = assert(s:accept())
    local reader = gh.spawn(function() return c:receive() end)
    local acceptor = gh.spawn(function() return s:accept() end)
    local before = gh.stats().fds
    gh.sleep(0.01)
    assert.equal(before + 2, gh.stats().fds)
    c:close()
    s:close()
    assert.same({ nil, "closed", "" }, { reader:wait() })
    assert.same({ nil, "closed" }, { acceptor:wait() })
    assert.equal(before, gh.stats().fds)
    peer:close()
  end)

  it("a wake-up for a closed fd never reaches a new socket on the same fd", function()
    local s, port = server()
    local c1 = assert(gh.connect("127.0.0.1", port))
    local p1 = assert(s:accept())
    local fd = c1:getfd()
    local r1 = gh.spawn(function() return c1:receive() end)
    gh.sleep(0)
    c1:close()
    local c2 = assert(gh.connect("127.0.0.1", port))
    local p2 = assert(s:accept())
    assert.equal(fd, c2:getfd()) -- the kernel reused the number
    local r2 = gh.spawn(function() return c2:receive() end)
    p1:send("for the old socket\n") -- no reader: the old fd is gone
    gh.sleep(0.02)
    assert.equal("suspended", r2:status())
    p2:send("for the new one\n")
    assert.equal("for the new one", r2:wait())
    assert.same({ nil, "closed", "" }, { r1:wait() })
    c2:close(); p1:close(); p2:close(); s:close()
  end)

  it("a second reader on one socket raises", function()
    local s, port = server()
    local c = assert(gh.connect("127.0.0.1", port))
    local peer = assert(s:accept())
    local first = gh.spawn(function() return c:receive() end)
    gh.sleep(0)
    local ok, err = pcall(c.receive, c)
    assert.is_false(ok)
    assert.matches("already has a reader", err)
    peer:send("x\n")
    assert.equal("x", first:wait())
    c:close(); peer:close(); s:close()
  end)

  it("__close closes a socket in a <close> variable", function()
    local s, port = server()
    local fd
    do
      local c <close> = assert(gh.connect("127.0.0.1", port))
      fd = c:getfd()
      assert.is_true(fd >= 0)
    end
    local peer = assert(s:accept())
    peer:settimeout(1)
    assert.same({ nil, "closed", "" }, { peer:receive() })
    peer:close(); s:close()
  end)

  it("options: tcp-nodelay, keepalive, reuseaddr, reuseport", function()
    local s, port = server()
    local c = assert(gh.connect("127.0.0.1", port))
    for _, name in ipairs({ "tcp-nodelay", "keepalive", "reuseaddr", "reuseport" }) do
      assert.equal(1, c:setoption(name, true))
      assert.is_true(c:getoption(name))
      assert.equal(1, c:setoption(name, false))
      assert.is_false(c:getoption(name))
    end
    c:close(); s:close()
  end)

  it("getpeername, getsockname, getstats, dirty, shutdown", function()
    with_server(echo_handler, function(port)
      local c = assert(gh.connect("127.0.0.1", port))
      local ip, p, fam = c:getpeername()
      assert.same({ "127.0.0.1", port, "inet" }, { ip, p, fam })
      assert.equal("127.0.0.1", (c:getsockname()))
      c:send("a\nb\n")
      assert.equal("a", c:receive())
      gh.sleep(0.01)
      assert.is_true(c:dirty()) -- "b\n" is buffered
      assert.equal("b", c:receive())
      assert.is_false(c:dirty())
      local r, sent, age = c:getstats()
      assert.equal(4, r); assert.equal(4, sent); assert.is_true(age >= 0)
      assert.equal(1, c:shutdown("send"))
      assert.same({ nil, "closed", "" }, { c:receive() })
      c:close()
    end)
  end)

  it("IPv6 on ::1", function()
    with_server(echo_handler, function(port)
      local c = assert(gh.connect("::1", port))
      local ip, _, fam = c:getpeername()
      assert.equal("::1", ip); assert.equal("inet6", fam)
      c:send("six\n")
      assert.equal("six", c:receive())
      c:close()
    end, "::1")
  end)

  it("500 concurrent green clients against one echo server", function()
    with_server(echo_handler, function(port)
      local ts = {}
      for i = 1, 500 do
        ts[i] = gh.spawn(function()
          local c = assert(gh.connect("127.0.0.1", port))
          for j = 1, 5 do
            local msg = i .. ":" .. j .. ":" .. string.rep("x", i % 50)
            assert(c:send(msg .. "\n"))
            assert(c:receive() == msg, "echo mismatch")
          end
          c:close()
          return true
        end)
      end
      for i = 1, 500 do assert.is_true(ts[i]:wait()) end
    end)
  end)

  it("5,000 simultaneous connections", function()
    local n = 5000
    assert(H.fd_limit() >= 2 * n + 100, "raise ulimit -n to at least " .. (2 * n + 100) .. " (scripts/run-specs.sh does)")
    with_server(function(c)
      local l = c:receive()
      c:send(l .. "\n")
      c:receive() -- hold the connection until the client closes
    end, function(port)
      local conns, ts = {}, {}
      for i = 1, n do
        ts[i] = gh.spawn(function()
          local c = assert(gh.connect("127.0.0.1", port))
          conns[i] = c
          c:send(i .. "\n")
          return c:receive()
        end)
        if i % 500 == 0 then gh.sleep(0.001) end -- let the acceptor keep up
      end
      for i = 1, n do assert.equal(tostring(i), ts[i]:wait()) end
      local open = 0
      for i = 1, n do if conns[i]:getfd() >= 0 then open = open + 1 end end
      assert.equal(n, open) -- all n were open at once
      for i = 1, n do conns[i]:close() end
    end, nil, 4096)
  end)
end)


describe("serve", function()
  it("runs each connection in its own thread, at most n at once, and closes it after", function()
    local srv = assert(gh.listen("127.0.0.1", 0))
    local _, port = srv:getsockname()
    local active, peak, served = 0, 0, 0
    local t = gh.spawn(gh.serve, srv, function(c)
      active = active + 1
      if active > peak then peak = active end
      c:send("hello\n")
      gh.sleep(0.02)
      active = active - 1
      served = served + 1
    end, 3)
    local cs = {}
    for i = 1, 10 do
      cs[i] = gh.spawn(function()
        local c = assert(gh.connect("127.0.0.1", port))
        c:settimeout(5)
        local l = c:receive()
        local _, err = c:receive() -- the server closes after the handler
        c:close()
        return l, err
      end)
    end
    for i = 1, 10 do assert.same({ "hello", "closed" }, { cs[i]:wait() }) end
    assert.equal(10, served)
    assert.equal(3, peak)
    srv:close()
    t:wait() -- serve returns once the server socket is closed
    assert.has_error(function() gh.serve(srv, "not a function") end)
  end)
end)

describe("udp", function()
  it("round trip with sendto/receivefrom and connected send/receive", function()
    local srv = assert(socket.udp())
    assert.equal(1, srv:setsockname("127.0.0.1", 0))
    local _, port = srv:getsockname()
    assert.matches("^udp{unconnected}", tostring(srv))
    local t = gh.spawn(function()
      local data, ip, p = srv:receivefrom()
      srv:sendto("re:" .. data, ip, p)
      return ip
    end)
    local c = assert(socket.udp())
    assert.equal(1, c:setpeername("127.0.0.1", port))
    assert.matches("^udp{connected}", tostring(c))
    assert.equal(4, c:send("ping"))
    c:settimeout(1)
    assert.equal("re:ping", c:receive())
    assert.equal("127.0.0.1", t:wait())
    c:settimeout(0.02)
    assert.same({ nil, "timeout" }, { c:receive() })
    c:close(); srv:close()
  end)

  it("udp6 on ::1", function()
    local a = assert(socket.udp6())
    assert(a:setsockname("::1", 0))
    local _, port = a:getsockname()
    local b = assert(socket.udp6())
    assert.equal(3, b:sendto("six", "::1", port))
    local data, ip = a:receivefrom()
    assert.equal("six", data); assert.equal("::1", ip)
    a:close(); b:close()
  end)
end)

describe("unix", function()
  it("stream round trip", function()
    local path = os.tmpname()
    os.remove(path)
    local s = assert(socket.unix())
    assert.equal(1, s:bind(path))
    assert.equal(1, s:listen())
    gh.spawn(function() local c = s:accept(); c:send(c:receive() .. "!\n"); c:close() end)
    local c = assert(socket.unix())
    assert.equal(1, c:connect(path))
    assert.matches("^unix{client}", tostring(c))
    c:send("hi\n")
    assert.equal("hi!", c:receive())
    c:close(); s:close()
    os.remove(path)
  end)
end)

describe("dns", function()
  it("numeric addresses and localhost resolve without the worker pool", function()
    assert.same({ "127.0.0.1" }, gh.resolve("127.0.0.1"))
    assert.same({ "::1" }, gh.resolve("::1"))
    assert.equal("127.0.0.1", (socket.dns.toip("localhost")))
  end)

  it("a pending lookup does not block other threads; timeouts apply", function()
    core._resolver_delay("slow.test", 0.2) -- a worker takes 0.2 s, then "not found"
    local ticks = 0
    local ticker = gh.spawn(function() for _ = 1, 10 do gh.sleep(0.01); ticks = ticks + 1 end end)
    local t0 = H.now()
    local ips, e = gh.resolve("slow.test")
    local dt = H.now() - t0
    assert.is_true(dt >= 0.2)
    assert.equal(10, ticks) -- the ticker ran while the lookup was pending
    assert.is_nil(ips); assert.equal("host not found", e)
    ticker:wait()
    local a, err = gh.resolve("slow.test", 0.05)
    assert.is_nil(a); assert.equal("timeout", err)
    ips = gh.resolve("LOCALHOST") -- a real lookup (not the inline fast path)
    assert.truthy(ips and #ips > 0)
  end)

  it("unknown names: nil, 'host not found'", function()
    local a, err = gh.resolve("no-such-host.invalid")
    assert.is_nil(a)
    assert.truthy(err == "host not found" or err == "temporary failure in name resolution")
    local c, e2 = gh.connect("no-such-host.invalid", 80)
    assert.is_nil(c); assert.is_string(e2)
  end)

  it("getaddrinfo lists families", function()
    local l = assert(socket.dns.getaddrinfo("::1"))
    assert.same({ family = "inet6", addr = "::1" }, l[1])
  end)
end)

describe("trampoline", function()
  it("waits for a foreign fd and returns true, or nil, 'timeout'", function()
    local s, port = server()
    local c = assert(gh.connect("127.0.0.1", port))
    local peer = assert(s:accept())
    local fd = c:getfd()
    assert.same({ nil, "timeout" }, { gh.trampoline(fd, "r", 0.02) })
    gh.spawn(function() gh.sleep(0.01); peer:send("x") end)
    assert.is_true(gh.trampoline(fd, "r", 1))
    assert.is_true(gh.trampoline(fd, "w", 1))
    assert.has_error(function() gh.trampoline(fd, "x") end)
    assert.has_error(function() gh.trampoline("x", "r") end)
    assert.equal("x", c:receive(1))
    local t = gh.spawn(function() return gh.trampoline(fd, "r") end)
    gh.sleep(0.01)
    assert.equal("suspended", t:status())
    gh.notify_close(fd)
    assert.same({ nil, "closed" }, { t:wait() })
    c:close(); peer:close(); s:close()
  end)
end)

describe("select", function()
  it("waits in the hub for readable sockets", function()
    local s, port = server()
    local c = assert(gh.connect("127.0.0.1", port))
    local peer = assert(s:accept())
    local r, w, err = socket.select({ c }, nil, 0.02)
    assert.same({}, r); assert.equal("timeout", err)
    gh.spawn(function() gh.sleep(0.01); peer:send("x\n") end)
    r = socket.select({ c, s }, nil, 1)
    assert.equal(c, r[1])
    local _, w2 = socket.select(nil, { c }, 1)
    assert.equal(c, w2[1])
    c:close(); peer:close(); s:close()
  end)
end)

describe("method tables per family", function()
  it("stream and datagram classes carry their own methods, as LuaSocket's do", function()
    local t, u, d = socket.tcp(), socket.udp(), socket.unix.dgram()
    for _, m in ipairs({ "accept", "listen", "receivepartial", "shutdown", "flush" }) do
      assert.is_function(t[m], m); assert.is_nil(u[m], m); assert.is_nil(d[m], m)
    end
    for _, m in ipairs({ "receivefrom", "sendto", "setpeername", "setsockname" }) do
      assert.is_nil(t[m], m); assert.is_function(u[m], m); assert.is_function(d[m], m)
    end
    for _, m in ipairs({ "receive", "send", "bind", "close", "settimeout", "getoption" }) do
      assert.is_function(t[m], m); assert.is_function(u[m], m)
    end
    assert.is_not.equal(t.receive, u.receive)
    -- a class's method given another family's socket refuses, it does not misread
    assert.has_error(function() t.receive(u) end, "greenhub: receive is not available on udp{unconnected}")
    assert.has_error(function() u.receive(t) end, "greenhub: receive is not available on tcp{master}")
    -- and the datagram methods still work end to end
    assert(u:setsockname("127.0.0.1", 0))
    local _, port = u:getsockname()
    local v = socket.udp()
    assert(v:setpeername("127.0.0.1", port))
    assert.equal("udp{connected}", v.class)
    assert.equal(5, v:send("hello"))
    u:settimeout(5)
    assert.equal("hello", u:receive())
    assert.has_error(function() u:send("x") end, "greenhub: send is not available on udp{unconnected}")
    t:close(); u:close(); v:close(); d:close()
  end)

  it("a method given anything but one of greenhub's sockets raises: other userdata, tables, nil", function()
    local t = socket.tcp()
    local ev = require("greenhub").event()
    for _, x in ipairs({ io.stdout, ev, {}, "s", 1, false }) do
      assert.has_error(function() t.settimeout(x, 1) end)
      assert.has_error(function() t.receive(x) end)
      assert.has_error(function() t.close(x) end)
    end
    assert.has_error(function() t.settimeout(nil, 1) end)
    local ok, err = pcall(t.getfd, io.stdout)
    assert.is_false(ok)
    assert.matches("greenhub socket expected", err)
    -- a closed socket is still a socket
    t:close()
    assert.is_true(pcall(t.settimeout, t, 1))
  end)
end)
