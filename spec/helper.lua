-- Shared helpers for the specs: the module, a bound on hung tests, and
-- running small Lua scripts in a child interpreter.
local H = {}

H.gh = require "greenhub"

-- Run f under a hard bound: a test that hangs in a greenhub wait fails
-- after s seconds instead of stalling the suite.
function H.bounded(s, f, ...)
  local r = table.pack(H.gh.with_timeout(s, f, ...))
  if r[1] == nil and r[2] == "timeout" and r.n == 2 then
    error("test did not finish within " .. s .. " s", 2)
  end
  return table.unpack(r, 1, r.n)
end

-- Slow runs (sanitizers, valgrind) relax wall-clock bounds, never logic.
H.slow = os.getenv("GH_SLOW") ~= nil
function H.scale(x) return H.slow and x * 10 or x end

local cpath = package.cpath:match("^([^;]*)")
-- Run a Lua script in a fresh lua5.4 with the same module paths.
-- Returns stdout+stderr and the exit code.
function H.run_script(src, prefix)
  local name = os.tmpname()
  local f = assert(io.open(name, "w"))
  f:write(src)
  f:close()
  local cmd = (prefix or "") .. string.format(
    "timeout 60 lua5.4 -e 'package.path=\"lua/?.lua;lua/?/init.lua;\"..package.path; package.cpath=%q..\";\"..package.cpath' %s 2>&1; echo \"EXIT:$?\"",
    cpath, name)
  local p = assert(io.popen(cmd))
  local out = p:read("a")
  p:close()
  os.remove(name)
  local code = tonumber(out:match("EXIT:(%d+)%s*$"))
  return out:gsub("EXIT:%d+%s*$", ""), code
end

H.now = H.gh.clock

-- A loopback port free now (for a server another process will start).
function H.free_port()
  local s = assert(H.gh.listen("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return port
end

-- A self-signed certificate for localhost and 127.0.0.1 in a fresh
-- directory: key, cert, dir (the caller removes dir).
function H.self_signed()
  local dir = os.tmpname(); os.remove(dir); os.execute("mkdir -p " .. dir)
  local key, crt = dir .. "/key.pem", dir .. "/cert.pem"
  assert(os.execute("openssl req -x509 -newkey rsa:2048 -nodes -keyout " .. key .. " -out " .. crt ..
    " -days 2 -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 >/dev/null 2>&1"))
  return key, crt, dir
end

-- A TLS listener on 127.0.0.1 with that key and certificate (extra:
-- more gh.tls params): listener, port.
function H.tls_listen(key, crt, extra)
  local p = { key = key, certificate = crt }
  for k, v in pairs(extra or {}) do p[k] = v end
  local srv = assert(H.gh.tls.listen("127.0.0.1", 0, p))
  local _, port = srv:getsockname()
  return srv, port
end

-- A TLS server on 127.0.0.1 that runs handler(conn) for one client, then
-- closes it: listener, port, the thread.
function H.tls_one_shot(key, crt, handler)
  local srv, port = H.tls_listen(key, crt)
  local th = H.gh.spawn(function()
    local c = srv:accept()
    handler(c)
    c:close()
  end)
  return srv, port, th
end

-- A greenhub.http server on 127.0.0.1 in a green thread: server, port,
-- and a function that stops it.
function H.http_server(handler, opts)
  local http = require "greenhub.http"
  local l = assert(H.gh.listen("127.0.0.1", 0))
  local _, port = l:getsockname()
  local s = http.server(handler, opts)
  local t = H.gh.spawn(s.serve, s, l)
  return s, port, function() l:close(); s:shutdown(1); t:wait() end
end

-- Seed math.random from the clock; the seed, for a failing test's message.
function H.seed()
  local seed = os.time()
  math.randomseed(seed)
  return seed
end

-- A random token (RFC 9110 tchar: a header name, a method) of n characters.
local TCHAR = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
function H.random_token(n)
  local t = {}
  for i = 1, n do
    local k = math.random(#TCHAR)
    t[i] = TCHAR:sub(k, k)
  end
  return table.concat(t)
end

-- A raw TCP server on 127.0.0.1 (any port): on_conn(sock) runs in a green
-- thread of its own for each connection it accepts. Returns the port; a
-- stop that closes the listener and every accepted socket; and the list
-- of accepted sockets (its length: how many connections came).
function H.raw_server(on_conn)
  local l = assert(H.gh.listen("127.0.0.1", 0))
  local _, port = l:getsockname()
  local held = {}
  local t = H.gh.spawn(function()
    while true do
      local s = l:accept()
      if not s then return end
      held[#held + 1] = s
      H.gh.spawn(on_conn, s)
    end
  end)
  return port, function()
    l:close(); t:wait()
    for _, s in ipairs(held) do s:close() end
  end, held
end

-- A raw HTTP/1.1 server for client specs, over raw_server: each request's
-- line and its header lines (as received, the blank one last) go to
-- answer(line, lines), which returns the whole response to send.
function H.raw_http_server(answer)
  return H.raw_server(function(s)
    while true do
      local line = s:receive()
      if not line then return end
      local lines = {}
      repeat local x = s:receive(); lines[#lines + 1] = x until x == "" or not x
      s:send(answer(line, lines))
    end
  end)
end

-- A green connection to 127.0.0.1:port with a 5 s timeout.
function H.connect(port)
  local c = assert(H.gh.connect("127.0.0.1", port))
  c:settimeout(5)
  return c
end

-- One HTTP response off c: status, headers (lower-case; a chunked body's
-- trailers join them), body. No body for a HEAD (method "HEAD"), 1xx, 204
-- and 304; else by Content-Length, chunked, or read to the close.
function H.http_response(c, method)
  local line, err = c:receive()
  if not line then return nil, err end
  local status = tonumber(line:match("^HTTP/1%.%d (%d%d%d)"))
  local h = {}
  local function field(l)
    local k, v = l:match("^([^:]+):%s*(.-)%s*$")
    h[k:lower()] = v
  end
  while true do
    local l = assert(c:receive())
    if l == "" then break end
    field(l)
  end
  if method == "HEAD" or status == 204 or status == 304 or status < 200 then return status, h, "" end
  if h["content-length"] then return status, h, c:receive(tonumber(h["content-length"])) end
  if h["transfer-encoding"] == "chunked" then
    local parts = {}
    while true do
      local n = tonumber(assert(c:receive()):match("^%x+"), 16)
      if n == 0 then
        while true do local l = assert(c:receive()); if l == "" then break end; field(l) end
        break
      end
      parts[#parts + 1] = c:receive(n)
      assert(c:receive() == "")
    end
    return status, h, table.concat(parts)
  end
  return status, h, c:receive("*a")
end

-- A connected pair of green TCP sockets on 127.0.0.1: client, server side.
function H.tcp_pair()
  local srv = assert(H.gh.listen("127.0.0.1", 0))
  local _, port = srv:getsockname()
  local c = assert(H.gh.connect("127.0.0.1", port))
  local s = assert(srv:accept())
  srv:close()
  return c, s
end

-- The environment for child processes the specs start (python, openssl):
-- a plain one, so make asan's sanitizer preload does not follow them.
H.CHILD_ENV = { PATH = os.getenv("PATH") or "/usr/bin:/bin", HOME = "/" }

-- The fds this process has open now. Listed by a worker thread, so
-- /proc/self is this process (popen("ls /proc/self/fd") lists the child
-- ls, which inherits none of greenhub's close-on-exec fds).
function H.open_fds()
  return #assert(H.gh.fs.dir("/proc/self/fd"))
end

-- The soft limit on open fds (specs that open thousands check it first).
function H.fd_limit()
  local f = io.open("/proc/self/limits")
  if not f then return math.huge end
  local text = f:read("a")
  f:close()
  local soft = text:match("Max open files%s+(%S+)")
  return tonumber(soft) or math.huge
end

return H
