-- greenhub: green threads for Lua 5.4 on a C hub (epoll, timer heap, run
-- queue). This file is the public facade: the C core does the work, the few
-- conveniences that are naturally Lua live here and in greenhub/*.lua.
local core = require "greenhub.core"

-- The public API: exactly these (docs/api.md lists the same; a spec
-- checks). The core's other functions (tcp, udp, getaddrinfo, ...) stay
-- inside: they are reached through gh.socket, gh.connect and the rest.
local M = {}
for _, k in ipairs({ "spawn", "spawn_after", "spawn_n", "sleep", "current", "run", "clock",
  "Killed", "event", "semaphore", "queue", "stats", "threads", "onerror", "trampoline",
  "notify_close" }) do
  M[k] = assert(core[k], k)
end

local timeout_start, timeout_cancel = core.timeout_start, core.timeout_cancel

local scope = require "greenhub.scope"

local function finish(tok, ok, ...)
  local expired = timeout_cancel(tok)
  if ok then return ... end
  local err = ...
  if err == tok then return nil, "timeout" end
  -- a later call, failing at once after f swallowed the timeout (sticky)
  if err == "timeout" and expired then return nil, "timeout" end
  error(err, 0)
end

--- Run f(...) in the calling thread; if it has not returned after s
-- seconds it is interrupted at its blocking point and this returns
-- nil, "timeout". Other errors pass through unchanged. It is a scope with
-- that deadline too: once it passed, f's blocking calls fail at once, so
-- a pcall that swallowed the interrupt cannot make f hang.
-- nil, a negative number or math.huge: no limit (f just runs).
function M.with_timeout(s, f, ...)
  if s == nil then return f(...) end
  if type(s) ~= "number" then
    error("bad argument #1 to 'with_timeout' (number expected, got " .. type(s) .. ")", 2)
  end
  if s ~= s then error("bad argument #1 to 'with_timeout' (seconds is NaN)", 2) end
  if s < 0 or s == math.huge then return f(...) end
  local tok = timeout_start(s)
  return finish(tok, pcall(f, ...))
end

-- Structured concurrency, virtual time ------------------------------------

--- scope([timeout] | {timeout =, deadline =}) -> sc: deadlines and
-- cancellation for the calling thread and sc:spawn's children
M.scope = scope.scope
--- testing.virtual_clock() -> vc (advance, close): timers on virtual time
M.testing = { virtual_clock = scope.virtual_clock }

-- Coordination --------------------------------------------------------------

--- lock(): a semaphore of one; releasing it while unheld raises
function M.lock() return core.semaphore(1) end

--- pool(n): green pool running at most n threads at once
M.pool = require "greenhub.pool"

-- Sockets ------------------------------------------------------------------

-- gh.socket (LuaSocket's `socket` module, green) and gh.coroutine load on
-- first use
local lazy = { socket = "greenhub.socket", coroutine = "greenhub.coroutine", tls = "greenhub.tls",
  fs = "greenhub.fs", tpool = "greenhub.tpool" }
setmetatable(M, { __index = function(t, k)
  local name = lazy[k]
  if name then
    local m = require(name)
    rawset(t, k, m)
    return m
  end
end })

--- patch(): from now on `require "socket"` / `require "socket.core"` give
-- greenhub's sockets and the global `coroutine` lets the hub's yields pass
-- through. LuaSocket-based code (socket.http, smtp, ftp, ltn12 users) then
-- runs green unchanged. Idempotent. If LuaSocket was loaded before, its
-- module tables are made green in place (so `local socket = require
-- "socket"` taken earlier, and socket.http loaded earlier, go green too),
-- and a warning names what cannot be fixed.
local patched = false
local green_fields = { "tcp", "tcp4", "tcp6", "udp", "udp4", "udp6", "connect", "connect4",
  "connect6", "bind", "select", "sleep", "dns" }
function M.patch()
  if patched then return M end
  patched = true
  local gsock = M.socket
  local earlier = {}
  for _, name in ipairs({ "socket", "socket.core" }) do
    local t = package.loaded[name]
    if type(t) == "table" and t ~= gsock and not earlier[t] then
      earlier[t] = true
      earlier[#earlier + 1] = name
      for _, k in ipairs(green_fields) do
        if t[k] ~= nil then t[k] = gsock[k] end
      end
    end
  end
  local unix = package.loaded["socket.unix"]
  if type(unix) == "table" and unix ~= gsock.unix then
    unix.stream, unix.dgram = gsock.unix.stream, gsock.unix.dgram
    if rawget(unix, "tcp") then unix.tcp = gsock.unix.stream end
    if rawget(unix, "udp") then unix.udp = gsock.unix.dgram end
    earlier[#earlier + 1] = "socket.unix"
  end
  package.loaded["socket"] = gsock
  package.loaded["socket.core"] = gsock
  package.loaded["socket.unix"] = gsock.unix
  -- LuaSec: ssl.wrap gives green TLS sockets, so ssl.https runs green
  M.tls.patch_luasec()
  _G.coroutine = M.coroutine
  package.loaded["coroutine"] = M.coroutine
  if #earlier > 0 then
    io.stderr:write("greenhub: gh.patch() came after LuaSocket was loaded (",
      table.concat(earlier, ", "), "): its module tables are green now, so code holding ",
      "them (socket.http loaded earlier too) runs green; but LuaSocket sockets created ",
      "before the patch, and socket functions copied into local variables, still block ",
      "the whole process. Call gh.patch() before requiring socket libraries.\n")
  end
  return M
end

--- connect(host, port [, timeout]) -> connected TCP socket, or nil, err
function M.connect(host, port, timeout)
  return M.socket._connect(host, port, timeout)
end

--- listen(host, port [, backlog]) -> listening TCP socket (reuseaddr on)
function M.listen(host, port, backlog)
  return M.socket._listen(host, port, backlog or 1024)
end

--- serve(server, handler [, concurrency]): accept until the server socket
-- is closed; each connection runs handler(conn, addr...) (addr...: what
-- conn:getpeername() gives, ip, port, family) in its own green thread, at
-- most `concurrency` at once. The connection is closed when the handler
-- ends. An error in the handler is reported with the handler's own
-- traceback (nothing of serve's stands between them).
local conn_guard = { __close = function(g)
  local conn, st = g[1], g[2]
  pcall(conn.close, conn)
  st.running = st.running - 1
  local slot = st.slot
  if slot and st.running < st.limit then st.slot = nil; slot:send() end
end }

function M.serve(server, handler, concurrency)
  if type(handler) ~= "function" and not (getmetatable(handler) or {}).__call then
    error("bad argument #2 to 'serve' (function expected, got " .. type(handler) .. ")", 2)
  end
  local st = { running = 0, limit = concurrency or math.huge, slot = nil }
  local backoff = 0.01
  local function run(conn)
    -- closes conn and frees the slot however the handler ends, without a
    -- pcall: an error keeps the handler's stack for the report
    local _ <close> = setmetatable({ conn, st }, conn_guard)
    return handler(conn, conn:getpeername())
  end
  while true do
    while st.running >= st.limit do
      st.slot = st.slot or core.event()
      st.slot:wait()
    end
    local conn, err = server:accept()
    if conn then
      backoff = 0.01
      st.running = st.running + 1
      core.spawn_n(run, conn)
    elseif err == "closed" then
      return
    elseif err == "timeout" then
      -- a server socket with a (zero) timeout: wait until a client is
      -- there instead of spinning on "timeout"
      local ok, fd = pcall(server.getfd, server)
      if ok and fd and fd >= 0 then core.trampoline(fd, "r") else core.sleep(0.01) end
    else
      -- out of fds (or similar): back off instead of spinning
      core.sleep(backoff)
      backoff = math.min(backoff * 2, 1)
    end
  end
end

--- resolve(host) -> list of IP addresses (strings), or nil, err
function M.resolve(host, timeout)
  local list, err = core.getaddrinfo(host, "any", timeout)
  if not list then return nil, err end
  local out, seen = {}, {}
  for _, a in ipairs(list) do
    if not seen[a.addr] then seen[a.addr] = true; out[#out + 1] = a.addr end
  end
  if #out == 0 then return nil, "host not found" end
  return out
end

-- Diagnostics ---------------------------------------------------------------

M.debug = {}
--- debug.blocking(seconds [, "raise"]) | debug.blocking(false): report (or
-- raise in) a green thread that runs longer than `seconds` without yielding
function M.debug.blocking(s, mode)
  return require("greenhub.util").public("debug.blocking", 0, core._blocking, s, mode)
end

-- Signals, child processes, streams on any fd --------------------------------

local proc = require "greenhub.proc"
--- signal(sig, handler) -> handle: run handler(signo) in a green thread on
-- each delivery of sig (number or name, "TERM"); handle:cancel()
M.signal = proc.signal
--- popen(argv [, opts]) -> process with green stdin/stdout/stderr
M.popen = proc.popen
--- fdopen(fd [, mode]) -> green stream on any fd (receive/send patterns)
M.fdopen = core.fdopen

--- backdoor(host, port [, opts]) -> server socket of a Lua REPL
function M.backdoor(host, port, opts)
  return require("greenhub.backdoor").start(M, host, port, opts)
end

return M
