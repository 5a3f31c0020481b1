-- greenhub.socket: LuaSocket's `socket` module, green. Sockets come from
-- the C core; this file adds LuaSocket's module-level helpers (connect,
-- bind, select, dns, ...) on top, with LuaSocket's arguments and results.
local core = require "greenhub.core"
local closing = require("greenhub.util").closing

local M = {}

M._VERSION = "LuaSocket 3.0 (greenhub)"
M._SETSIZE = 1024 * 64
M._SOCKETINVALID = -1
M.BLOCKSIZE = 2048

M.tcp, M.tcp4, M.tcp6 = core.tcp, core.tcp4, core.tcp6
M.udp, M.udp4, M.udp6 = core.udp, core.udp4, core.udp6
M.sleep = core.sleep
M.gettime = function()
  -- wall-clock seconds as LuaSocket's gettime; measure intervals with gh.clock
  return os.time() + (core.clock() % 1)
end
-- what the program itself had loaded of LuaSocket: our own loads below
-- are undone, so gh.patch() can tell the user's references from ours
local user_socket, user_core = package.loaded["socket"], package.loaded["socket.core"]
do
  local ok, posix_time = pcall(require, "socket.core")
  if ok and type(posix_time) == "table" and posix_time.gettime then
    M.gettime = posix_time.gettime
  end
end

-- socket.unix() / socket.unix.stream(): Unix-domain stream sockets
-- socket.unix.dgram(): Unix-domain datagram sockets (LuaSocket 3.1)
M.unix = setmetatable({ stream = core.unix, dgram = core.unix_dgram }, {
  __call = function(_, ...) return core.unix(...) end,
})

--- connect(address, port [, locaddr, locport [, family]])
function M.connect(address, port, laddress, lport, family)
  local sock, err
  if family == "inet" then sock, err = core.tcp4()
  elseif family == "inet6" then sock, err = core.tcp6()
  else sock, err = core.tcp() end
  if not sock then return nil, err end
  if laddress then
    local ok, e = sock:bind(laddress, lport or 0)
    if not ok then sock:close(); return nil, e end
  end
  local ok, e = closing(sock, sock.connect, sock, address, port) -- interrupted: closed now
  if not ok then sock:close(); return nil, e end
  return sock
end
M.connect4 = function(a, p, la, lp) return M.connect(a, p, la, lp, "inet") end
M.connect6 = function(a, p, la, lp) return M.connect(a, p, la, lp, "inet6") end

-- A listening TCP socket with reuseaddr on (socket.bind and gh.listen).
function M._listen(host, port, backlog, name)
  name = name or "listen"
  if host == "*" then host = "0.0.0.0" end
  local sock, err = core.tcp()
  if not sock then return nil, err end
  if type(host) ~= "string" then
    local util = require "greenhub.util"
    error("bad argument #1 to '" .. name .. "' (string expected, got " .. type(host) .. ")", util.user_level())
  end
  local ok, e = require("greenhub.util").public(name, -1, sock._bind_reuse, sock, host, port)
  if not ok then sock:close(); return nil, e end
  ok, e = sock:listen(backlog)
  if not ok then sock:close(); return nil, e end
  return sock
end

--- bind(address, port [, backlog=32]): a listening TCP socket, reuseaddr on
function M.bind(host, port, backlog) return M._listen(host, port, backlog or 32, "bind") end

-- DNS, resolved by the hub's worker pool (never blocks other threads)
local dns = {}
M.dns = dns

function dns.getaddrinfo(host)
  if type(host) ~= "string" then error("bad argument #1 to 'getaddrinfo' (string expected)", 2) end
  local list, err = core.getaddrinfo(host)
  if not list then return nil, err end
  local out, seen = {}, {}
  for _, a in ipairs(list) do
    local k = a.family .. a.addr
    if not seen[k] then seen[k] = true; out[#out + 1] = a end
  end
  return out
end

function dns.toip(host)
  local list, err = core.getaddrinfo(host, "inet")
  if not list then return nil, err end
  if #list == 0 then return nil, "host not found" end
  local ips, seen = {}, {}
  for _, a in ipairs(list) do
    if not seen[a.addr] then seen[a.addr] = true; ips[#ips + 1] = a.addr end
  end
  return ips[1], { name = host, alias = {}, ip = ips }
end

function dns.gethostname()
  local f = io.open("/proc/sys/kernel/hostname")
  local name = f and f:read("l")
  if f then f:close() end
  return name or os.getenv("HOSTNAME") or "localhost"
end

function dns.tohostname(addr)
  local ip, info = dns.toip(addr)
  if not ip then return nil, info end
  return info.name, info
end

-- green select: helpers wait on each fd; the first ready one wakes us
local function fd_of(s)
  if type(s) == "number" then return s end
  local ok, fd = pcall(function() return s:getfd() end)
  return ok and fd or nil
end

local function green_select(recvt, sendt, timeout)
  recvt, sendt = recvt or {}, sendt or {}
  -- what is ready right now: buffered data, then one poll(2) with timeout 0
  -- (so a settimeout(0) + select(..., 0) loop sees new data at once)
  local r, w = {}, {}
  local fds, evs, objs = {}, {}, {}
  for _, s in ipairs(recvt) do
    if type(s) ~= "number" and s.dirty and s:dirty() then
      if not r[s] then r[#r + 1] = s; r[s] = true end
    else
      local fd = fd_of(s)
      if fd and fd >= 0 then fds[#fds + 1] = fd; evs[#evs + 1] = "r"; objs[#objs + 1] = s end
    end
  end
  for _, s in ipairs(sendt) do
    local fd = fd_of(s)
    if fd and fd >= 0 then fds[#fds + 1] = fd; evs[#evs + 1] = "w"; objs[#objs + 1] = s end
  end
  if #fds > 0 then
    local rev = core._poll(fds, evs)
    for i = 1, #fds do
      local s, ready = objs[i], rev[i]
      if evs[i] == "r" and ready:find("r", 1, true) and not r[s] then r[#r + 1] = s; r[s] = true end
      if evs[i] == "w" and ready:find("w", 1, true) and not w[s] then w[#w + 1] = s; w[s] = true end
    end
  end
  if #r > 0 or #w > 0 then return r, w end
  if timeout == 0 then return r, w, "timeout" end
  -- nothing yet: one helper thread per fd collected above waits for it
  local ev = core.event()
  local helpers = {}
  for i = 1, #fds do
    local s, fd, dir = objs[i], fds[i], evs[i]
    local out = dir == "r" and r or w
    helpers[#helpers + 1] = core.spawn(function()
      local ok = core.trampoline(fd, dir, 0)
      if not ok then ok = core.trampoline(fd, dir) end
      if ok and not out[s] then
        out[#out + 1] = s; out[s] = true
        if not ev:ready() then ev:send() end
      end
    end)
  end
  if #helpers > 0 then
    ev:wait(timeout ~= nil and timeout >= 0 and timeout or nil)
    if not ev:ready() then core.sleep(0) end
  elseif timeout and timeout > 0 then
    core.sleep(timeout)
  end
  for _, t in ipairs(helpers) do t:kill() end
  if #r == 0 and #w == 0 then return r, w, "timeout" end
  return r, w
end

--- select(recvt, sendt [, timeout]): green; waits in the hub
function M.select(recvt, sendt, timeout)
  return green_select(recvt, sendt, timeout)
end

--- _connect(host, port [, timeout]) -> connected TCP socket, or nil, err
-- (gh.connect; here so the submodules need not reach back to the facade)
function M._connect(host, port, timeout)
  local sock, err = core.tcp()
  if not sock then return nil, err end
  if timeout then sock:settimeout(timeout, "t") end
  local ok, e = closing(sock, sock.connect, sock, host, port) -- interrupted: closed now
  if not ok then sock:close(); return nil, e end
  if timeout then sock:settimeout(nil, "t") end
  return sock
end

-- LuaSocket's pure-Lua helpers: from the installed LuaSocket when present
local function try_luasocket_helpers()
  local ok, real = pcall(function()
    package.loaded["socket"] = nil
    return require "socket"
  end)
  package.loaded["socket"], package.loaded["socket.core"] = user_socket, user_core
  if ok and type(real) == "table" then
    for _, k in ipairs({ "protect", "newtry", "try", "skip", "sink", "source", "sinkt", "sourcet", "choose", "__unload" }) do
      if real[k] ~= nil and M[k] == nil then M[k] = real[k] end
    end
  end
end
try_luasocket_helpers()

M.skip = M.skip or function(d, ...) return select(d + 1, ...) end
M.newtry = M.newtry or function(finalizer)
  return function(...)
    local ok = ...
    if not ok then
      if finalizer then pcall(finalizer) end
      error({ (select(2, ...)) }, 0)
    end
    return ...
  end
end
M.try = M.try or M.newtry()
M.protect = M.protect or function(f)
  return function(...)
    local r = table.pack(pcall(f, ...))
    if r[1] then return table.unpack(r, 2, r.n) end
    local e = r[2]
    if type(e) == "table" then return nil, e[1] end
    error(e, 0)
  end
end

return M
