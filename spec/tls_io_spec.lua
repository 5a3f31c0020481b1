-- TLS record I/O in C (csrc/tls.c): the green TLS socket is a green socket
-- whose bytes go through OpenSSL. Many connections at once, records cut
-- to single bytes both ways, renegotiation refused, close_notify both
-- ways, half-close, kills at the blocking points, ALPN and SNI through
-- LuaSec's contexts, and third-party peers (openssl s_client, Python ssl).
local H = require "helper"
local gh = H.gh
local tls = gh.tls
local core = require "greenhub.core"

local ENV = H.CHILD_ENV

local have = tls.available and os.execute("command -v openssl >/dev/null 2>&1")

describe("tls record I/O in C", function()
  if not have then it("needs LuaSec and openssl", function() error("install lua-sec and openssl") end) return end
  local key, crt, dir = H.self_signed()
  teardown(function() os.execute("rm -rf " .. dir) end)
  local function sparams_server() return { mode = "server", key = key, certificate = crt } end

  local function listen(extra) return H.tls_listen(key, crt, extra) end

  it("LuaSec's context has the layout greenhub relies on", function()
    local ctx = assert(require("ssl").newcontext({ mode = "server", protocol = "any", key = key, certificate = crt }))
    local size, ours = core._tlsctxsize(ctx)
    assert.equal(ours, size)
  end)

  it("1,000 concurrent TLS connections, each a handshake and three echoes", function()
    -- (200 under valgrind, where a handshake costs 50 times as much; an
    -- ECDSA key: the handshakes are not what is tested here)
    local n = os.getenv("GH_VALGRIND") and 200 or 1000
    assert(H.fd_limit() >= 2 * n + 100, "raise ulimit -n (scripts/run-specs.sh does)")
    local ekey, ecrt = dir .. "/ec.key", dir .. "/ec.crt"
    assert(os.execute("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "
      .. ekey .. " -out " .. ecrt .. " -days 2 -subj /CN=localhost >/dev/null 2>&1"))
    local srv = assert(tls.listen("127.0.0.1", 0, { key = ekey, certificate = ecrt }))
    local _, port = srv:getsockname()
    local served = 0
    local st = gh.spawn(gh.serve, srv, function(c)
      c:settimeout(H.scale(30))
      while true do
        local l = c:receive("*l")
        if not l then break end
        c:send(l .. "\n")
      end
      served = served + 1
    end)
    local up, done = 0, 0
    local all = gh.event()
    local ts = {}
    for i = 1, n do
      ts[i] = gh.spawn(function()
        local c = assert(tls.connect("127.0.0.1", port, { verify = "none", timeout = H.scale(60) }))
        up = up + 1
        if up == n then all:send(true) end
        all:wait(H.scale(60)) -- every connection open at the same time
        for j = 1, 3 do
          local msg = ("%d/%d %s"):format(i, j, ("z"):rep(i % 50))
          assert(c:send(msg .. "\n"))
          assert.equal(msg, c:receive())
        end
        c:close()
        done = done + 1
      end)
    end
    for i = 1, n do H.bounded(120, ts[i].wait, ts[i]) end
    assert.equal(n, done)
    for _ = 1, 100 do if served == n then break end gh.sleep(0.01) end
    assert.equal(n, served)
    srv:close(); st:wait()
  end)

  it("a peer whose bytes arrive one at a time (a trickling proxy) is read whole", function()
    local got
    local srv, port, st = H.tls_one_shot(key, crt, function(c)
      c:settimeout(H.scale(20))
      got = { c:receive("*l"), c:receive(5), c:receive("*l") }
      c:send(("y"):rep(3000) .. "\n")
      c:receive() -- until the client closes
    end)
    -- the proxy: every byte from the client goes on alone, with a pause
    local front = assert(gh.listen("127.0.0.1", 0))
    local _, fport = front:getsockname()
    local pt = gh.spawn(function()
      local a = front:accept()
      local b = assert(gh.connect("127.0.0.1", port))
      b:setoption("tcp-nodelay", true); a:setoption("tcp-nodelay", true)
      local back = gh.spawn(function()
        while true do
          local d = b:receivepartial(65536)
          if not d then break end
          for k = 1, #d do a:send(d:sub(k, k)) end
        end
        a:close()
      end)
      local sent = 0
      while true do
        local d = a:receivepartial(65536)
        if not d then break end
        for k = 1, #d do
          b:send(d:sub(k, k)); sent = sent + 1
          if sent % 64 == 0 then gh.sleep(0) end
        end
      end
      b:close(); back:wait()
    end)
    local c = assert(tls.connect("127.0.0.1", fport, { verify = "none", timeout = H.scale(30) }))
    c:settimeout(H.scale(20))
    assert(c:send("first line\nABCDEsecond\n"))
    assert.equal(("y"):rep(3000), c:receive())
    c:close()
    H.bounded(30, st.wait, st); H.bounded(30, pt.wait, pt)
    assert.same({ "first line", "ABCDE", "second" }, got)
    front:close()
  end)

  it("records of one byte each (a send per byte) make whole lines and counts", function()
    local got
    local srv, port, st = H.tls_one_shot(key, crt, function(c)
      c:settimeout(H.scale(20))
      got = { c:receive("*l"), c:receive(4), c:receive("*a") }
    end)
    local c = assert(tls.connect("127.0.0.1", port, { verify = "none" }))
    local msg = "hello over tiny records\n1234rest of it"
    for k = 1, #msg do assert(c:send(msg:sub(k, k))) end
    c:close()
    H.bounded(20, st.wait, st)
    assert.same({ "hello over tiny records", "1234", "rest of it" }, got)
    srv:close()
  end)

  it("renegotiation is refused (openssl s_client's R); the server stays up", function()
    local srv, port = listen()
    local lines, errs = {}, {}
    local st = gh.spawn(gh.serve, srv, function(c)
      c:settimeout(H.scale(10))
      while true do
        local l, e = c:receive()
        if not l then errs[#errs + 1] = e; return end
        lines[#lines + 1] = l
        c:send("echo " .. l .. "\n")
      end
    end)
    local p = gh.popen({ "openssl", "s_client", "-tls1_2", "-connect", "127.0.0.1:" .. port },
      { stdin = "pipe", stdout = "pipe", stderr = "pipe", env = ENV })
    local out = {}
    local rd = gh.spawn(function() out[1] = p.stdout:receive("*a") end)
    local rd2 = gh.spawn(function() out[2] = p.stderr:receive("*a") end)
    p.stdin:send("hello\n")
    for _ = 1, 200 do if #lines > 0 then break end gh.sleep(0.01) end
    p.stdin:send("R\n")
    gh.sleep(0.3)
    p.stdin:send("after\n")
    gh.sleep(0.3)
    p.stdin:close()
    H.bounded(20, p.wait, p, H.scale(10))
    H.bounded(10, rd.wait, rd); H.bounded(10, rd2.wait, rd2)
    p:close()
    local text = (out[1] or "") .. (out[2] or "")
    assert.same({ "hello" }, lines)           -- nothing after the attempt
    assert.matches("RENEGOTIATING", text)
    assert.matches("no renegotiation", text)  -- the server said no
    assert.equal(1, #errs)
    -- and the server goes on serving
    local c = assert(tls.connect("127.0.0.1", port, { verify = "none" }))
    c:send("again\n")
    assert.equal("echo again", c:receive())
    c:close(); srv:close(); st:wait()
  end)

  it("close() sends close_notify (Python sees a clean end, not a ragged EOF)", function()
    local srv, port, st = H.tls_one_shot(key, crt, function(c)
      c:send("bye\n")
    end)
    local py = [[
import socket, ssl, sys
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[1]))), suppress_ragged_eofs=False)
data = b""
try:
    while True:
        d = s.recv(100)
        if not d: break
        data += d
    print("clean", data.decode().strip())
except ssl.SSLEOFError:
    print("ragged", data.decode().strip())
]]
    local p = gh.popen({ "/usr/bin/python3", "-c", py, tostring(port) }, { stdin = "null", stdout = "pipe", env = ENV })
    local out = H.bounded(20, p.stdout.receive, p.stdout, "*a")
    p:wait(); p:close()
    H.bounded(10, st.wait, st)
    assert.equal("clean bye\n", out)
    srv:close()
  end)

  it("shutdown('send') gives the peer the end of the stream; the other way still flows", function()
    local srv, port, st = H.tls_one_shot(key, crt, function(c)
      c:settimeout(H.scale(10))
      local all, err = c:receive("*a")
      c:send("you sent " .. #all .. " bytes" .. (err and (" " .. err) or ""))
    end)
    local c = assert(tls.connect("127.0.0.1", port, { verify = "none" }))
    c:settimeout(H.scale(10))
    assert(c:send(("q"):rep(100000)))
    assert.equal(1, c:shutdown("send"))
    assert.same({ "127.0.0.1", port, "inet" }, { c:getpeername() })
    assert.equal("you sent 100000 bytes", c:receive("*a"))
    c:close(); H.bounded(10, st.wait, st); srv:close()
  end)

  it("kills at each blocking point (handshake, receive, send into a full pipe) leave no fd behind", function()
    local srv, port = listen()
    local conns = {}
    local st = gh.spawn(function()
      while true do
        local c = srv:accept()
        if not c then return end
        conns[#conns + 1] = c
      end
    end)
    local fds = H.open_fds
    local before = fds()
    -- a server-side thread killed while its handshake waits for a hello
    local raw = assert(gh.connect("127.0.0.1", port))
    for _ = 1, 100 do if #conns == 1 then break end gh.sleep(0.01) end
    local hs = gh.spawn(function() return conns[1]:dohandshake() end)
    gh.sleep(0.05)
    hs:kill()
    gh.sleep(0.01)
    assert.equal("dead", hs:status())
    conns[1]:close(); raw:close()
    -- a client killed in receive, then one killed in send with the pipe full
    local ct = gh.spawn(tls.connect, "127.0.0.1", port, { verify = "none" })
    for _ = 1, 100 do if #conns == 2 then break end gh.sleep(0.01) end
    local peer = conns[2]
    assert(peer:dohandshake())
    local c = assert(H.bounded(10, ct.wait, ct))
    local r = gh.spawn(function() return c:receive() end)
    gh.sleep(0.05); r:kill()
    local big = ("b"):rep(1 << 20)
    local w = gh.spawn(function() while true do c:send(big) end end)
    gh.sleep(0.2)
    assert.equal("suspended", w:status())
    w:kill()
    -- close: the records already made get the socket's timeout to leave
    -- (the peer reads nothing here), then the fd goes anyway
    c:settimeout(0.2)
    local t0 = gh.clock()
    assert.equal(1, c:close())
    assert.is_true(gh.clock() - t0 < H.scale(2))
    peer:close()
    gh.sleep(0.05)
    assert.is_true(fds() <= before + 1, "fds: " .. before .. " before, " .. fds() .. " after")
    srv:close(); st:wait()
  end)

  it("a timed-out send leaves the stream whole: the records already made still go, in order", function()
    local received
    local go = gh.event()
    local srv, port, st = H.tls_one_shot(key, crt, function(c)
      c:settimeout(H.scale(20))
      assert(c:dohandshake())
      go:wait()
      received = { c:receive("*a") }
    end)
    local c = assert(tls.connect("127.0.0.1", port, { verify = "none" }))
    c:settimeout(0.1)
    local chunk = ("c"):rep(1 << 20)
    local sent = 0
    local ok, err, last
    repeat
      ok, err, last = c:send(chunk)
      sent = sent + (ok or last or 0)
    until not ok
    assert.equal("timeout", err)
    go:send(true)
    c:settimeout(H.scale(20))
    assert(c:send("END"))
    c:close()
    H.bounded(30, st.wait, st)
    assert.is_nil(received[2])
    local data = received[1] or received[3]
    assert.equal(sent + 3, #data)
    assert.equal("END", data:sub(-3))
    assert.is_nil(data:sub(1, -4):find("[^c]"))
    srv:close()
  end)

  it("ALPN and SNI through LuaSec's contexts", function()
    local other = require("ssl").newcontext({ mode = "server", protocol = "any", key = key, certificate = crt,
      alpn = { "h2" } })
    local srv, port = listen({ alpn = { "h2", "http/1.1" } })
    local seen = {}
    local st = gh.spawn(gh.serve, srv, function(c)
      c:sni({ ["other.test"] = other })
      assert(c:dohandshake())
      seen[#seen + 1] = { c:getalpn(), c:getsniname() }
      c:send("ok\n")
    end)
    -- SNI picks the other context (its own ALPN list) for other.test
    local c0 = assert(tls.wrap(assert(gh.connect("127.0.0.1", port)), { verify = "none", alpn = "h2" }, "other.test"))
    assert.equal("ok", c0:receive())
    assert.equal("h2", c0:getalpn())
    c0:close()
    for _ = 1, 50 do
      local c = assert(tls.connect("127.0.0.1", port, { verify = "none", alpn = { "spdy/1", "http/1.1" } }))
      assert.equal("ok", c:receive())
      assert.equal("http/1.1", c:getalpn())
      c:close()
    end
    srv:close(); st:wait()
    assert.equal(51, #seen)
    assert.same({ "h2", "other.test" }, seen[1])
    assert.same({ "http/1.1" }, seen[51])
  end)

  it("settimeout(0) polling sees data that arrives later (no wait ever armed)", function()
    local srv, port, th = H.tls_one_shot(key, crt, function(c)
      c:send("first\n")
      gh.sleep(0.05)
      c:send("second\n")
      c:receive()
    end)
    local c = assert(tls.connect("127.0.0.1", port, { verify = "none" }))
    c:settimeout(0)
    local got, polls = {}, 0
    while #got < 2 and polls < 500 do
      local l, e = c:receive()
      if l then got[#got + 1] = l else assert.equal("timeout", e); polls = polls + 1; gh.sleep(0.005) end
    end
    assert.same({ "first", "second" }, got)
    assert.is_true(polls > 0)
    c:send("x\n"); c:close(); H.bounded(10, th.wait, th); srv:close()
  end)

  it("STARTTLS: bytes of the handshake already read with the plain text go to OpenSSL", function()
    local l = assert(gh.listen("127.0.0.1", 0))
    local _, port = l:getsockname()
    local got
    local st = gh.spawn(function()
      local c = l:accept()
      gh.sleep(0.1) -- the line and the client's hello are both here before we read
      assert.equal("STARTTLS", c:receive())
      assert.is_true(c:dirty(), "the hello was read ahead with the line")
      local t = assert(tls.wrap(c, sparams_server()))
      assert.equal(-1, c:getfd())
      t:settimeout(H.scale(10))
      got = t:receive()
      t:send("secret back\n")
      t:close()
    end)
    local c = assert(gh.connect("127.0.0.1", port))
    c:send("STARTTLS\n")
    local t = assert(tls.wrap(c, { verify = "none" }))
    t:settimeout(H.scale(10))
    assert(t:send("secret\n")) -- the handshake first: its hello follows the line at once
    assert.equal("secret back", t:receive())
    t:close()
    H.bounded(20, st.wait, st)
    assert.equal("secret", got)
    l:close()
  end)

  it("coalesce on a TLS socket: small sends leave as fewer writes, every byte in order", function()
    local got
    local srv, port, st = H.tls_one_shot(key, crt, function(c)
      c:settimeout(H.scale(10))
      got = c:receive("*a")
    end)
    local c = assert(tls.connect("127.0.0.1", port, { verify = "none" }))
    assert.equal(1, c:setoption("coalesce", true))
    local want = {}
    for i = 1, 2000 do
      local piece = ("%d,"):format(i)
      want[#want + 1] = piece
      assert(c:send(piece))
    end
    assert(c:flush())
    for i = 1, 100 do assert(c:send(("z"):rep(i))); want[#want + 1] = ("z"):rep(i) end
    c:close() -- flushes what is collected, then close_notify
    H.bounded(20, st.wait, st)
    assert.equal(table.concat(want), got)
    srv:close()
  end)

  it("a server's SNI map with strict refuses a name it does not have", function()
    local other = assert(require("ssl").newcontext({ mode = "server", protocol = "any", key = key, certificate = crt }))
    local srv, port = listen()
    local seen = {}
    local st = gh.spawn(gh.serve, srv, function(c)
      c:sni({ ["known.test"] = other }, true)
      seen[#seen + 1] = { c:dohandshake() }
    end)
    local good = assert(tls.wrap(assert(gh.connect("127.0.0.1", port)), { verify = "none" }, "known.test"))
    assert.is_true(good:dohandshake())
    good:close()
    local bad = assert(tls.wrap(assert(gh.connect("127.0.0.1", port)), { verify = "none" }, "unknown.test"))
    local ok, err = bad:dohandshake()
    assert.is_nil(ok)
    assert.is_string(err)
    bad:close()
    for _ = 1, 100 do if #seen == 2 then break end gh.sleep(0.01) end
    assert.same({ true }, seen[1])
    assert.is_nil(seen[2][1])
    srv:close(); st:wait()
  end)

  it("certificates, verification, info and finished messages come through", function()
    local srv, port, th = H.tls_one_shot(key, crt, function(c)
      c:dohandshake(); c:receive()
    end)
    local c = assert(tls.connect("127.0.0.1", port, { verify = "none" }))
    local cert = assert(c:getpeercertificate())
    assert.matches("X509 certificate", tostring(cert))
    assert.equal(1, #c:getpeerchain())
    assert.is_nil(c:getlocalcertificate())
    local ok, why = c:getpeerverification()
    assert.is_false(ok)
    assert.matches("self.signed", tostring(why))
    assert.matches("^TLS", c:info("protocol"))
    assert.is_string(c:info().cipher)
    assert.is_string(c:getfinished()); assert.is_string(c:getpeerfinished())
    assert.matches("^SSL connection: greenhub.tls{client}", tostring(c))
    assert.equal("nothing", c:want()) -- (LuaSec's words: nothing, read, write, x509lookup)
    c:send("x\n")
    assert.equal(2, select(2, c:getstats())) -- plaintext bytes, as LuaSec counts
    c:close()
    H.bounded(10, th.wait, th); srv:close()
    assert.same({ nil, "closed" }, { c:getpeercertificate() })
    assert.matches("%(closed%)$", tostring(c))
  end)

  it("wrap refuses what is not a LuaSec context or not a connected stream", function()
    local a, b = H.tcp_pair()
    assert.has_error(function() core._tlswrap(a, {}, false) end)
    local ctx = assert(require("ssl").newcontext({ mode = "client", protocol = "any", verify = "none" }))
    local u = core.udp()
    assert.has_error(function() core._tlswrap(u, ctx, false) end)
    local t = assert(core._tlswrap(a, ctx, false))
    assert.has_error(function() core._tlswrap(t, ctx, false) end)
    assert.equal(-1, a:getfd()) -- the fd went to the TLS socket
    assert.is_nil(t.accept); assert.is_nil(t._sendfile); assert.is_nil(t.setfd)
    t:close(); b:close(); u:close()
  end)
end)
