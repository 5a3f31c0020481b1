-- greenhub.websocket against peers nobody here wrote (node's ws, Python's
-- websockets), and protocol violations from a raw socket.
local H = require "helper"
local gh = H.gh
local http = require "greenhub.http"
local websocket = require "greenhub.websocket"
local core = require "greenhub.core"

-- (without the sanitizer runtimes a make asan run preloads: they are ours)
local NODE = os.execute("env -u LD_PRELOAD sh -c 'command -v node' >/dev/null 2>&1") and os.execute("test -d /usr/share/nodejs/ws")
local PY = os.execute("env -u LD_PRELOAD /usr/bin/python3 -c 'import websockets' 2>/dev/null")

-- an echo server; "close-me CODE REASON" makes it close. Returns port, seen, stop.
local function echo_server(opts)
  local l = assert(gh.listen("127.0.0.1", 0, 1024))
  local _, port = l:getsockname()
  local seen = {}
  local t = gh.spawn(http.serve, l, function(req, res)
    local ws, err = websocket.accept(req, res, opts or { protocols = { "chat" } })
    if not ws then seen[#seen + 1] = "refused " .. tostring(err); return end
    while true do
      local m, k, code, reason = ws:receive()
      if not m then seen[#seen + 1] = table.concat({ k, tostring(code), tostring(reason) }, " "); return end
      local c, r = m:match("^close%-me (%d+) (.*)$")
      if c then ws:close(tonumber(c), r) else ws:send(m, k) end
    end
  end, { max_connections = 2000 })
  return port, seen, function() l:close(); t:kill() end
end

-- run a peer; returns its output lines as they come (nil at the end)
local function peer(argv)
  local p = assert(gh.popen(argv, { stdin = "pipe", stdout = "pipe", env = { NODE_PATH = "/usr/share/nodejs", PATH = os.getenv("PATH") } }))
  p.stdout:settimeout(H.scale(30))
  return p, function() return (p.stdout:receive("*l")) end
end

local function all_lines(next_line)
  local out = {}
  for l in next_line do out[#out + 1] = l; if l == "done" then break end end
  return out
end

local function expect_ok(lines, n)
  local fails = {}
  for _, l in ipairs(lines) do if not l:match("^ok ") and l ~= "done" then fails[#fails + 1] = l end end
  assert.same({}, fails)
  assert.equal("done", lines[#lines], table.concat(lines, "\n"))
  if n then assert.is_true(#lines >= n, table.concat(lines, "\n")) end
end

describe("websocket server, node ws as the client", function()
  if not NODE then pending("node and node-ws are not installed") return end
  it("echoes text and binary from 0 B to 1 MiB, fragments, pings and closes both ways", function()
    local port, seen, stop = echo_server()
    local p, lines = peer({ "node", "spec/peers/ws_node_client.js", "ws://127.0.0.1:" .. port .. "/" })
    local out = all_lines(lines)
    expect_ok(out, 17)
    p:wait(10); p:close()
    gh.sleep(0.05)
    assert.same({ "closed 4002 client bye" }, { seen[2] })
    stop()
  end)

  it("500 concurrent connections", function()
    local ok = pcall(require("greenhub.core")._setrlimit_nofile or function() end, 4096)
    local port, seen, stop = echo_server()
    local p, lines = peer({ "node", "spec/peers/ws_node_client.js", "ws://127.0.0.1:" .. port .. "/", "many", "500" })
    local out = all_lines(lines)
    expect_ok(out, 4)
    p:wait(10); p:close()
    gh.sleep(0.05)
    local closed = 0
    for _, s in ipairs(seen) do if s == "closed 1000 " then closed = closed + 1 end end
    assert.equal(500, closed)
    stop()
  end)
end)

describe("websocket server, Python websockets as the client", function()
  if not PY then pending("python3-websockets is not installed") return end
  it("echoes UTF-8 text and binary up to 1 MiB, a fragmented message, ping, close", function()
    local port, seen, stop = echo_server()
    local p, lines = peer({ "/usr/bin/python3", "spec/peers/ws_py.py", "client", "ws://127.0.0.1:" .. port .. "/" })
    local out = all_lines(lines)
    expect_ok(out, 16)
    p:wait(10); p:close()
    gh.sleep(0.05)
    assert.same({ "closed 4003 py bye" }, seen)
    stop()
  end)
end)

-- a peer server: returns port, the process, its line reader
local function peer_server(argv)
  local p, lines = peer(argv)
  local port = tonumber((lines() or ""):match("^port (%d+)"))
  assert(port, "peer server did not start")
  return port, p, lines
end

local function client_round(url)
  local ws = assert(websocket.connect(url, { protocols = { "chat" }, max_message = 2097152 }))
  assert.equal("chat", ws.protocol)
  for _, n in ipairs({ 0, 125, 126, 65535, 65536, 1024 * 1024 }) do
    local m = string.rep("é", n // 2)
    assert(ws:send(m))
    assert.same({ m, "text" }, { ws:receive() })
    local b = string.rep("\0\255", n // 2)
    assert(ws:send(b, "binary"))
    assert.same({ b, "binary" }, { ws:receive() })
  end
  assert(ws:send("fragment please"))
  return ws
end

describe("websocket client against node ws", function()
  if not NODE then pending("node and node-ws are not installed") return end
  it("echo, fragments, a server ping, close codes both ways", function()
    local port, p, lines = peer_server({ "node", "spec/peers/ws_node_server.js" })
    local url = "ws://127.0.0.1:" .. port .. "/"
    local ws = client_round(url)
    assert.same({ "one-two-three", "text" }, { ws:receive() })
    assert(ws:send("ping me"))
    assert.same({ "pong seen: server ping", "text" }, { ws:receive() })
    assert(ws:send("close 4005 node says bye"))
    assert.same({ nil, "closed", 4005, "node says bye" }, { ws:receive() })
    assert.same({ nil, "closed" }, { ws:send("late") })
    local ws2 = assert(websocket.connect(url))
    assert.is_nil(ws2.protocol)
    assert.is_true(ws2:close(4006, "greenhub bye"))
    local got = {}
    for _ = 1, 2 do got[#got + 1] = lines() end
    assert.same({ "closed 4005 ", "closed 4006 greenhub bye" }, got)
    p.stdin:close(); p:wait(10); p:close()
  end)
end)

describe("websocket client against Python websockets", function()
  if not PY then pending("python3-websockets is not installed") return end
  it("echo, fragments, close codes both ways", function()
    local port, p, lines = peer_server({ "/usr/bin/python3", "spec/peers/ws_py.py", "server" })
    local url = "ws://127.0.0.1:" .. port .. "/"
    local ws = client_round(url)
    assert.same({ "undeuxtrois", "text" }, { ws:receive() })
    assert(ws:ping("from greenhub"))
    assert(ws:send("after ping"))
    assert.same({ "after ping", "text" }, { ws:receive() })
    assert(ws:send("close 4007 python says bye"))
    assert.same({ nil, "closed", 4007, "python says bye" }, { ws:receive() })
    local ws2 = assert(websocket.connect(url))
    assert.is_true(ws2:close(4008, "greenhub bye"))
    local got = {}
    for _ = 1, 2 do got[#got + 1] = lines() end
    assert.same({ "closed 4007 ", "closed 4008 greenhub bye" }, got)
    p.stdin:close(); p:wait(10); p:close()
  end)
end)

-- ---------------------------------------------------------------- raw peers

local function raw_client(port, path)
  local c = assert(gh.connect("127.0.0.1", port))
  c:settimeout(H.scale(5))
  local key = core._wskey()
  c:send("GET " .. (path or "/") .. " HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" ..
    "Sec-WebSocket-Key: " .. key .. "\r\nSec-WebSocket-Version: 13\r\n\r\n")
  local status = c:receive("*l")
  assert.matches("^HTTP/1.1 101", status)
  local accept
  repeat
    local l = c:receive("*l")
    accept = accept or l:match("^Sec%-WebSocket%-Accept: (.*)$")
  until l == ""
  assert.equal(core._wsaccept(key), accept)
  return c
end

-- a client frame by hand: masked unless told, with a zero key
local function frame(b0, payload, opts)
  opts = opts or {}
  local n = #payload
  local len = n < 126 and string.char((opts.unmasked and 0 or 0x80) | n)
    or string.char((opts.unmasked and 0 or 0x80) | 126) .. string.pack(">I2", n)
  return string.char(b0) .. len .. (opts.unmasked and "" or "\0\0\0\0") .. payload
end

-- the server's close frame: its code
local function close_code(c)
  local hdr = c:receive(2)
  if not hdr then return nil end
  assert.equal(0x88, hdr:byte(1))
  local n = hdr:byte(2) & 0x7f
  local body = n > 0 and c:receive(n) or ""
  return #body >= 2 and string.unpack(">I2", body) or nil
end

describe("websocket protocol violations from a raw socket", function()
  local cases = {
    { "an unmasked client frame", frame(0x81, "hi", { unmasked = true }), 1002 },
    { "reserved bits", frame(0x81 | 0x40, "hi"), 1002 },
    { "an unknown opcode", frame(0x83, "hi"), 1002 },
    { "invalid UTF-8", frame(0x81, "\xff\xfe"), 1007 },
    { "a surrogate in UTF-8", frame(0x81, "\xed\xa0\x80"), 1007 },
    { "invalid UTF-8 across fragments", frame(0x01, "ok\xe2\x82") .. frame(0x80, "x"), 1007 },
    { "an oversized message", frame(0x82, string.rep("x", 201)), 1009 },
    { "an oversized fragmented message", frame(0x02, string.rep("x", 100)) .. frame(0x80, string.rep("x", 101)), 1009 },
    { "a bad close code", frame(0x88, string.pack(">I2", 1005)), 1002 },
    { "a close frame of one byte", frame(0x88, "x"), 1002 },
    { "a fragmented ping", frame(0x09, "x"), 1002 },
    { "a ping over 125 bytes", string.char(0x89, 0x80 | 126) .. string.pack(">I2", 126) .. "\0\0\0\0" .. string.rep("x", 126), 1002 },
    { "a continuation with no message", frame(0x80, "x"), 1002 },
    { "a new message inside a fragmented one", frame(0x01, "a") .. frame(0x81, "b"), 1002 },
  }
  for _, case in ipairs(cases) do
    it("closes " .. case[1] .. " with " .. case[3], function()
      local port, seen, stop = echo_server({ max_message = 200 })
      local c = raw_client(port)
      c:send(case[2])
      assert.equal(case[3], close_code(c))
      local r1, r2 = c:receive(1); assert.same({ nil, "closed" }, { r1, r2 }) -- and the server hangs up
      c:close()
      gh.sleep(0.01)
      assert.matches("^closed " .. case[3], seen[1])
      stop()
    end)
  end

  it("exactly max_message is allowed; interleaved pings are answered", function()
    local port, _, stop = echo_server({ max_message = 200 })
    local c = raw_client(port)
    c:send(frame(0x01, string.rep("a", 100)) .. frame(0x89, "ping!") .. frame(0x80, string.rep("b", 100)))
    assert.equal(string.char(0x8a, 5) .. "ping!", c:receive(7))
    local hdr = c:receive(4)
    assert.equal(string.char(0x81, 126) .. string.pack(">I2", 200), hdr)
    assert.equal(string.rep("a", 100) .. string.rep("b", 100), c:receive(200))
    c:close(); stop()
  end)

  it("refuses bad upgrades with 400, 426 and 403", function()
    local port, seen, stop = echo_server({ origin = function(o) return o == "http://good" end })
    local function status(extra, version)
      local c = assert(gh.connect("127.0.0.1", port))
      c:settimeout(5)
      c:send("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" ..
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: " .. (version or "13") .. "\r\n" .. extra .. "\r\n")
      local l = c:receive("*l")
      c:close()
      return tonumber(l:match("^HTTP/1.1 (%d+)"))
    end
    assert.equal(101, status("Origin: http://good\r\n"))
    assert.equal(403, status("Origin: http://evil\r\n"))
    assert.equal(426, status("Origin: http://good\r\n", "8"))
    local c = assert(gh.connect("127.0.0.1", port)); c:settimeout(5)
    c:send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert.matches("^HTTP/1.1 400", c:receive("*l")); c:close()
    stop()
  end)
end)

describe("websocket receive and blocking", function()
  it("a timeout leaves the connection usable; a partial message survives it", function()
    local port, _, stop = echo_server()
    local ws = assert(websocket.connect("ws://127.0.0.1:" .. port .. "/"))
    ws:settimeout(0.05)
    assert.same({ nil, "timeout" }, { ws:receive() })
    ws:settimeout(5)
    assert(ws:send("still here"))
    assert.same({ "still here", "text" }, { ws:receive() })
    assert(ws:close())
    stop()
    -- a raw server sends half a fragmented message, then the rest later
    local l = assert(gh.listen("127.0.0.1", 0)); local _, p2 = l:getsockname()
    local t = gh.spawn(http.serve, l, function(req, res)
      local key = req.headers["sec-websocket-key"]
      local s = req:hijack()
      s:send("HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " .. core._wsaccept(key) .. "\r\n\r\n")
      s:send(string.char(0x01, 3) .. "abc")
      gh.sleep(0.1)
      s:send(string.char(0x80, 3) .. "def")
      gh.sleep(0.2)
      s:close()
    end)
    local c = assert(websocket.connect("ws://127.0.0.1:" .. p2 .. "/"))
    c:settimeout(0.05)
    assert.same({ nil, "timeout" }, { c:receive() })
    c:settimeout(5)
    assert.same({ "abcdef", "text" }, { c:receive() })
    assert.same({ nil, "closed", 1006, "" }, { c:receive() })
    l:close(); t:kill()
  end)

  it("killing a thread waiting in receive leaves the socket to close cleanly", function()
    local port, seen, stop = echo_server()
    local ws = assert(websocket.connect("ws://127.0.0.1:" .. port .. "/"))
    local t = gh.spawn(function() return ws:receive() end)
    gh.sleep(0.02)
    t:kill()
    assert.is_true(ws:close(1001, "leaving"))
    gh.sleep(0.02)
    assert.same({ "closed 1001 leaving" }, seen)
    local t2 = gh.spawn(function() return gh.with_timeout(0.05, ws.receive, ws) end)
    assert.same({ nil, "closed", 1001, "leaving" }, { t2:wait() })
    stop()
  end)

  it("bad arguments raise; send after close says closed", function()
    local port, _, stop = echo_server()
    local ws = assert(websocket.connect("ws://127.0.0.1:" .. port .. "/"))
    assert.has_error(function() ws:send(42) end)
    assert.has_error(function() ws:send("x", "yaml") end)
    assert.has_error(function() ws:close(999) end)
    assert.has_error(function() ws:ping(string.rep("x", 126)) end)
    assert.has_error(function() websocket.connect("ws://x/", 5) end)
    assert.same({ nil, "unsupported scheme http" }, { websocket.connect("http://127.0.0.1/") })
    ws:close()
    assert.same({ nil, "closed" }, { ws:send("x") })
    stop()
  end)
end)

describe("websocket over TLS (wss://)", function()
  if not gh.tls.available then it("needs LuaSec", function() pending("lua-sec missing") end) return end
  it("a greenhub wss server and client: echo up to 1 MiB, fragments, close codes", function()
    local _, _, dir = H.self_signed()
    local l = assert(gh.tls.listen("127.0.0.1", 0, { certificate = dir .. "/cert.pem", key = dir .. "/key.pem" }))
    local _, port = l:getsockname()
    local seen = {}
    local t = gh.spawn(http.serve, l, function(req, res)
      local ws = assert(websocket.accept(req, res))
      while true do
        local m, k, code = ws:receive()
        if not m then seen[#seen + 1] = code; return end
        ws:send(m, k)
      end
    end)
    local ws = assert(websocket.connect("wss://127.0.0.1:" .. port .. "/", { tls = { cafile = dir .. "/cert.pem" } }))
    for _, n in ipairs({ 0, 126, 65536, 1024 * 1024 }) do
      local m = string.rep("z", n)
      assert(ws:send(m, "binary"))
      assert.same({ m, "binary" }, { ws:receive() })
    end
    assert.is_true(ws:close(4010, "tls bye"))
    gh.sleep(0.05)
    assert.same({ 4010 }, seen)
    -- verification is on: an unknown CA is refused
    local bad, err = websocket.connect("wss://127.0.0.1:" .. port .. "/")
    assert.is_nil(bad)
    assert.matches("certificate", err)
    l:close(); t:kill()
    os.execute("rm -rf " .. dir)
  end)
end)

describe("websocket sends from many threads", function()
  it("never interleave frames, also when a waiting sender is killed", function()
    local port, _, stop = echo_server()
    local ws = assert(websocket.connect("ws://127.0.0.1:" .. port .. "/"))
    local big = string.rep("b", 256 * 1024) -- sends that block on a full socket
    local ts = {}
    for i = 1, 8 do
      ts[i] = gh.spawn(function() assert(ws:send(i .. big)) end)
    end
    gh.sleep(0) -- all are sending or queued
    ts[5]:kill()
    for i = 1, 8 do if i ~= 5 then ts[i]:wait() end end
    assert(ws:send("after")) -- the turn was not lost with the killed sender
    local got = {}
    while true do
      local m = assert(ws:receive())
      if m == "after" then break end
      assert.equal(#big + 1, #m) -- whole frames, never interleaved
      got[#got + 1] = tonumber(m:sub(1, 1))
    end
    table.sort(got)
    -- 5 is there only if it had sent before the kill
    local want = { 1, 2, 3, 4, 5, 6, 7, 8 }
    if #got == 7 then table.remove(want, 5) end
    assert.same(want, got)
    ws:close(); stop()
  end)
end)
