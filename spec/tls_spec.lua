-- Green TLS on LuaSec: certificates are made at test time with openssl.
local H = require "helper"
local gh = H.gh

local have = gh.tls.available and os.execute("command -v openssl >/dev/null 2>&1")

local dir
local function sh(cmd) assert(os.execute(cmd .. " >/dev/null 2>&1"), cmd) end

setup(function()
  if not have then return end
  dir = os.tmpname(); os.remove(dir); sh("mkdir -p " .. dir)
  local d = dir .. "/"
  sh(("openssl req -x509 -newkey rsa:2048 -nodes -keyout %sca.key -out %sca.crt -days 2 -subj '/CN=greenhub test CA'"):format(d, d))
  for _, c in ipairs({ { "server", "DNS:localhost,IP:127.0.0.1" }, { "other", "DNS:other.example" } }) do
    local name, san = c[1], c[2]
    sh(("openssl req -newkey rsa:2048 -nodes -keyout %s%s.key -out %s%s.csr -subj '/CN=%s'"):format(d, name, d, name, name))
    local f = assert(io.open(d .. name .. ".ext", "w")); f:write("subjectAltName=" .. san .. "\n"); f:close()
    sh(("openssl x509 -req -in %s%s.csr -CA %sca.crt -CAkey %sca.key -CAcreateserial -out %s%s.crt -days 2 -extfile %s%s.ext"):format(d, name, d, d, d, name, d, name))
  end
  sh(("openssl req -x509 -newkey rsa:2048 -nodes -keyout %sself.key -out %sself.crt -days 2 -subj '/CN=localhost' -addext 'subjectAltName=DNS:localhost'"):format(d, d))
end)
teardown(function() if dir then os.execute("rm -rf " .. dir) end end)

local function tls_server(cert, handler)
  local srv = assert(gh.tls.listen("127.0.0.1", 0, { certificate = dir .. "/" .. cert .. ".crt", key = dir .. "/" .. cert .. ".key", handshake_timeout = H.scale(5) }))
  local _, port = srv:getsockname()
  local t = gh.spawn(gh.serve, srv, handler)
  return port, function() srv:close(); t:wait() end
end

local function echo(c)
  while true do
    local l = c:receive("*l")
    if not l then return end
    c:send(l .. "\n")
  end
end

describe("tls", function()
  it("needs LuaSec and openssl", function()
    assert(have, "install the Debian packages lua-sec and openssl")
  end)

  it("echo over TLS with 200 concurrent clients, SNI and verification on", function()
    local port, stop = tls_server("server", echo)
    local ts = {}
    for i = 1, 200 do
      ts[i] = gh.spawn(function()
        local c = assert(gh.tls.connect("localhost", port, { cafile = dir .. "/ca.crt" }))
        for j = 1, 3 do
          local msg = ("client %d line %d %s"):format(i, j, string.rep("x", i))
          assert(c:send(msg .. "\n"))
          assert(c:receive() == msg, "echo mismatch")
        end
        local verified = c:getpeerverification()
        c:close()
        return verified
      end)
    end
    for i = 1, 200 do assert.is_true(ts[i]:wait()) end
    stop()
  end)

  it("the same methods and results as a green TCP socket", function()
    local port, stop = tls_server("server", function(c) c:send("partial"); gh.sleep(0.6); c:send(" line\nrest") end)
    local c = assert(gh.tls.connect("127.0.0.1", port, { cafile = dir .. "/ca.crt" }))
    assert.matches("^SSL connection: greenhub.tls{client}", tostring(c))
    c:settimeout(0.2)
    local a, err, partial = c:receive("*l")
    assert.is_nil(a); assert.equal("timeout", err); assert.equal("partial", partial)
    c:settimeout(2)
    assert.equal("partial line", c:receive("*l", partial))
    assert.equal("rest", c:receive("*a"))
    assert.matches("X509 certificate", tostring(c:getpeercertificate()))
    assert.is_string(c:info("protocol"))
    c:close()
    stop()
  end)

  it("rejects a certificate from an unknown CA", function()
    local port, stop = tls_server("self", echo)
    local c, err = gh.tls.connect("localhost", port, { cafile = dir .. "/ca.crt" })
    assert.is_nil(c)
    assert.matches("certificate verify failed", err)
    stop()
  end)

  it("rejects a host name the certificate does not cover", function()
    local port, stop = tls_server("other", echo)
    local c, err = gh.tls.connect("localhost", port, { cafile = dir .. "/ca.crt" })
    assert.is_nil(c)
    assert.matches("does not match host localhost", err)
    -- the same certificate is fine for its own name (checkhost off here: we dial by IP)
    local ok = gh.tls.connect("127.0.0.1", port, { cafile = dir .. "/ca.crt", checkhost = false })
    assert.truthy(ok)
    ok:close()
    stop()
  end)

  it("handshake times out against a peer that never answers", function()
    local silent = assert(gh.listen("127.0.0.1", 0))
    local _, port = silent:getsockname()
    local held = {}
    local acc = gh.spawn(function() while true do local c = silent:accept(); if not c then return end held[#held + 1] = c end end)
    local t0 = H.now()
    local c, err = gh.tls.connect("127.0.0.1", port, { cafile = dir .. "/ca.crt", timeout = 0.2 })
    assert.is_nil(c)
    assert.equal("timeout", err)
    assert.is_true(H.now() - t0 >= 0.2 and H.now() - t0 < H.scale(1))
    silent:close(); acc:wait()
    for _, h in ipairs(held) do h:close() end
  end)

  it("a server handshake timeout sheds clients that send nothing", function()
    local srv = assert(gh.tls.listen("127.0.0.1", 0, { certificate = dir .. "/server.crt", key = dir .. "/server.key", handshake_timeout = 0.1 }))
    local _, port = srv:getsockname()
    local seen
    local t = gh.spawn(gh.serve, srv, function(c) seen = { c:receive() } end)
    local raw = assert(gh.connect("127.0.0.1", port)) -- plain TCP, never says hello
    gh.sleep(0.25)
    assert.same({ nil, "timeout", "" }, seen)
    raw:close(); srv:close(); t:wait()
  end)

  it("ssl.https: 50 concurrent requests under gh.patch() finish concurrently", function()
    local saved = { ssl_wrap = require("ssl").wrap, https = package.loaded["ssl.https"], coroutine = coroutine }
    local saved_loaded = {}
    for _, k in ipairs({ "socket", "socket.core", "socket.unix", "socket.http", "socket.url", "socket.headers", "coroutine" }) do saved_loaded[k] = package.loaded[k] end
    gh.patch()
    local ok, err = pcall(function()
      local https = require "ssl.https"
      local active, max_active = 0, 0
      local port, stop = tls_server("server", function(c)
        local l = c:receive("*l")
        if not l then return end
        repeat local h = c:receive("*l") until not h or h == ""
        active = active + 1
        max_active = math.max(max_active, active)
        gh.sleep(0.3)
        active = active - 1
        c:send("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello")
      end)
      local t0 = H.now()
      local ts = {}
      for i = 1, 50 do
        ts[i] = gh.spawn(function()
          local out = {}
          local _, code = https.request({ url = "https://127.0.0.1:" .. port .. "/" .. i, cafile = dir .. "/ca.crt", verify = "peer", sink = require("ltn12").sink.table(out) })
          return code, table.concat(out)
        end)
      end
      for i = 1, 50 do
        local code, body = ts[i]:wait()
        assert.equal(200, code); assert.equal("hello", body)
      end
      local dt = H.now() - t0
      -- concurrent: the 0.3 s server waits overlap (in sequence they would
      -- take 15 s); under valgrind the handshakes' CPU time dominates, so
      -- the wall-clock bound only holds for normal runs
      assert.is_true(max_active >= 10, "at most " .. max_active .. " requests overlapped")
      if not H.slow then assert.is_true(dt < 1, "took " .. dt) end
      stop()
    end)
    require("ssl").wrap = saved.ssl_wrap
    package.loaded["ssl.https"] = saved.https
    _G.coroutine = saved.coroutine
    for k, v in pairs(saved_loaded) do package.loaded[k] = v end
    assert(ok, err)
  end)
end)
