-- greenhub.tls: green TLS on LuaSec. LuaSec does the TLS; greenhub makes it
-- cooperative: every LuaSec call runs non-blocking, and "wantread" /
-- "wantwrite" park the green thread on the fd until it is ready.
--   gh.tls.connect(host, port [, params])   handshake, SNI, verification
--   gh.tls.wrap(sock, params_or_context)    wrap a connected green socket
--   gh.tls.listen(host, port, params)       server; works with gh.serve
local core = require "greenhub.core"
local ok_ssl, ssl = pcall(require, "ssl")

local M = {}
M.available = ok_ssl
local raw_wrap = ok_ssl and ssl.wrap -- kept: gh.patch() replaces ssl.wrap

local function need_ssl()
  if not ok_ssl then error("greenhub.tls needs LuaSec (Debian package lua-sec)", 3) end
end

local CAFILE = "/etc/ssl/certs/ca-certificates.crt"

-- Methods live in a plain table (code such as ssl.https copies them from
-- getmetatable(sock).__index); LuaSec's own extras are passed through.
local TLS = {}
local MT = { __index = TLS, __name = "greenhub.tls" }

for _, name in ipairs({ "getpeercertificate", "getpeerverification", "getpeerchain",
  "getlocalcertificate", "getlocalchain", "getpeerfinished", "getfinished",
  "getalpn", "getsniname", "info", "getfd", "setstats", "getstats",
  "setoption", "getoption" }) do
  TLS[name] = function(self, ...)
    local f = self.conn[name]
    if not f then return nil, "not supported by LuaSec" end
    return f(self.conn, ...)
  end
end

-- "SSL connection: ..." as LuaSec's own objects (copas and others tell TLS
-- sockets from TCP ones by that prefix)
function MT:__tostring()
  return "SSL connection: greenhub.tls{" .. (self.server_side and "server" or "client") .. "}: "
    .. tostring(self.conn):gsub("^SSL connection: ", "")
end

--- getpeername()/getsockname(): as on the TCP socket underneath
function TLS:getpeername()
  if self.closed then return nil, "closed" end
  return core._fdname(self.fd, true)
end
function TLS:getsockname()
  if self.closed then return nil, "closed" end
  return core._fdname(self.fd, false)
end

--- shutdown([how]): shutdown(2) of the TCP stream underneath, exactly as
-- on a TCP socket ("send" half-closes; no TLS close_notify is sent)
function TLS:shutdown(how)
  if self.closed then return nil, "closed" end
  return require("greenhub.util").public("shutdown", -1, core._fdshutdown, self.fd, how or "both")
end

function TLS:gettimeout()
  local t = self.timeout
  return t and t >= 0 and t or -1, -1
end

-- LuaSec passes some system errors through as strerror text; give them
-- LuaSocket's words, as a green TCP socket would
local closed_words = { ["Broken pipe"] = true, ["Connection reset by peer"] = true,
  ["Connection aborted"] = true, ["Software caused connection abort"] = true }
local function word(err)
  if closed_words[err] then return "closed" end
  return err
end

-- seconds left before the call's deadline (nil = none)
local function left(deadline)
  if not deadline then return nil end
  return math.max(deadline - core.clock(), 0)
end

-- Wait for what LuaSec asked for; nil, err when that fails.
local function await(self, want, deadline)
  local l = left(deadline)
  if l and l <= 0 then return nil, "timeout" end
  local ok, err = core.trampoline(self.fd, want == "wantwrite" and "w" or "r", l)
  if not ok then return nil, err end
  return true
end

local function deadline_of(self, t)
  t = t or self.timeout
  return t and t >= 0 and core.clock() + t or nil
end

-- Check the peer certificate names a host (subjectAltName, else CN).
local function host_matches(pattern, host)
  pattern, host = pattern:lower(), host:lower()
  if pattern == host then return true end
  local rest = pattern:match("^%*%.(.+)$")
  if rest then
    local _, tail = host:match("^([^.]+)%.(.+)$")
    return tail == rest
  end
  return false
end

local function verify_host(conn, host)
  local cert = conn:getpeercertificate()
  if not cert then return nil, "no peer certificate" end
  local ext = cert:extensions() or {}
  local san = ext["2.5.29.17"]
  local names, ips = {}, {}
  if san then
    for _, n in ipairs(san.dNSName or {}) do names[#names + 1] = n end
    for _, ip in ipairs(san.iPAddress or {}) do ips[#ips + 1] = ip end
  end
  if host:match("^[%d.]+$") or host:find(":", 1, true) then
    for _, ip in ipairs(ips) do if ip == host then return true end end
    return nil, "certificate does not match host " .. host
  end
  if #names == 0 then
    for _, e in ipairs(cert:subject() or {}) do
      if e.name == "commonName" or e.oid == "2.5.4.3" then names[#names + 1] = e.value end
    end
  end
  for _, n in ipairs(names) do if host_matches(n, host) then return true end end
  return nil, "certificate does not match host " .. host
end

--- dohandshake(): true, or nil, err (LuaSec's words, or "timeout"). With
-- settimeout(0) it is one non-blocking step that says "wantread" or
-- "wantwrite" as LuaSec does, so a handshake driver of its own (copas) can
-- wait and call again.
function TLS:dohandshake()
  if self.handshaken then return true end
  if self.handshake_error then return nil, self.handshake_error end
  local deadline = deadline_of(self, self.hs_timeout)
  local nonblocking = self.timeout == 0 and not self.hs_timeout
  while true do
    local ok, err = self.conn:dohandshake()
    if ok then break end
    if err == "wantread" or err == "wantwrite" then
      if nonblocking then return nil, err end
      local w, e = await(self, err, deadline)
      -- a timeout is not fatal: the handshake may be driven on later
      if not w then
        if e ~= "timeout" then self.handshake_error = e end
        return nil, e
      end
    else
      self.handshake_error = err
      return nil, err
    end
  end
  if self.verify_host then
    local ok, err = verify_host(self.conn, self.verify_host)
    if not ok then self.handshake_error = err; self:close(); return nil, err end
  end
  self.handshaken = true
  return true
end

--- _httphead: greenhub.http's head reader (the C parser over a string;
-- bytes read past the head stay pending for the body)
function TLS:_httphead(kind, max_line, max_head, max_headers, method, idle, header, raw, mt, conn)
  local buf = self.pending or ""
  self.pending = nil
  local saved = self.timeout
  while true do
    if #buf > 0 then
      local head, n, status = core._httpparse(buf, kind, max_line or 8192, max_head or 65536,
        max_headers or 100, method, raw, mt, conn)
      if head then
        if n < #buf then self.pending = buf:sub(n + 1) end
        self.timeout = saved
        return head
      end
      if n then self.timeout = saved; return nil, n, status end -- rejected: why, status
    end
    local t = #buf == 0 and idle or header
    if t and t >= 0 then self.timeout = t end
    local data, err = self:receivepartial(65536)
    self.timeout = saved
    if not data then return nil, err, #buf end
    buf = buf .. data
  end
end

--- _httpchunk: the chunked decoder over what arrives
function TLS:_httpchunk(dec, max)
  local buf = self.pending or ""
  self.pending = nil
  while true do
    local what, v, used = core._httpchunkstr(dec, buf, max)
    if what == "data" then
      if used < #buf then self.pending = buf:sub(used + 1) end
      return v, nil, nil
    elseif what == "end" then
      if used < #buf then self.pending = buf:sub(used + 1) end
      return nil, "end", v
    elseif what == nil then
      return nil, v, 400
    end
    buf = buf:sub(v + 1) -- "more": v is what the decoder used
    local data, err = self:receivepartial(65536)
    if not data then
      if #buf > 0 then self.pending = buf end
      return nil, err
    end
    buf = buf .. data
  end
end

function TLS:settimeout(t, mode)
  if t ~= nil and type(t) ~= "number" then error("bad argument #1 to 'settimeout' (number expected)", 2) end
  self.timeout = t
  return 1
end

function TLS:sni(name)
  return self.conn:sni(name)
end

--- dirty(): decrypted data is waiting (ours or OpenSSL's)
function TLS:dirty()
  return (self.pending ~= nil and #self.pending > 0) or self.conn:dirty()
end

-- Bytes taken out of the stream but not used (the HTTP parser reads
-- ahead) come first in every later receive.
local function take_pending(self, pattern, prefix)
  local p = self.pending
  self.pending = nil
  prefix = (prefix or "") .. p
  if pattern == nil or pattern == "*l" or pattern == "l" then
    local line, rest = prefix:match("^(.-)\n(.*)$")
    if line then
      if #rest > 0 then self.pending = rest end
      return line:gsub("\r", ""), true
    end
  elseif math.type(pattern) == "integer" and #prefix >= pattern then
    if #prefix > pattern then self.pending = prefix:sub(pattern + 1) end
    return prefix:sub(1, pattern), true
  end
  return prefix, false
end

--- receive([pattern [, prefix]]) as a green socket's
function TLS:receive(pattern, prefix)
  if self.pending then
    local got, done = take_pending(self, pattern, prefix)
    if done then return got, nil, nil end
    prefix = got
  end
  if not self.handshaken then
    local ok, err = self:dohandshake()
    if not ok then return nil, err, prefix or "" end
  end
  local conn = self.conn
  local data, e, partial = conn:receive(pattern, prefix)
  if data then return data, nil, nil end -- the common case: no clock, no wait
  local deadline = deadline_of(self)
  local acc = partial
  while true do
    if not (e == "wantread" or e == "wantwrite" or e == "timeout") then
      return nil, word(e), acc or ""
    end
    -- OpenSSL may already hold the next record (after a TLS 1.3 session
    -- ticket, say): then there is nothing to wait for on the fd
    if not (e ~= "wantwrite" and conn:dirty()) then
      local w, werr = await(self, e == "timeout" and "wantread" or e, deadline)
      if not w then return nil, werr, acc or "" end
    end
    data, e, partial = conn:receive(pattern, acc)
    if data then return data, nil, nil end
    acc = partial
  end
end

--- receivepartial([max]): what has arrived (decrypted), up to max bytes,
-- or what arrives next; nil, err when closed or the wait runs out
function TLS:receivepartial(max)
  max = max or 65536
  if math.type(max) ~= "integer" or max < 1 then
    error("bad argument #1 to 'receivepartial' (positive integer expected)", 2)
  end
  if self.pending then
    local p = self.pending
    self.pending = #p > max and p:sub(max + 1) or nil
    return p:sub(1, max), nil, nil
  end
  if not self.handshaken then
    local ok, err = self:dohandshake()
    if not ok then return nil, err end
  end
  local conn, deadline = self.conn, nil
  while true do
    local data, e, partial = conn:receive(max)
    if data then return data, nil, nil end
    if partial and partial ~= "" then return partial, nil, nil end
    if not (e == "wantread" or e == "wantwrite" or e == "timeout") then return nil, word(e) end
    if not (e ~= "wantwrite" and conn:dirty()) then
      deadline = deadline or deadline_of(self)
      local w, werr = await(self, e == "timeout" and "wantread" or e, deadline)
      if not w then return nil, werr end
    end
  end
end

--- send(data [, i [, j]]) as a green socket's
function TLS:send(data, i, j)
  if not self.handshaken then
    local ok, err = self:dohandshake()
    if not ok then return nil, err, (i or 1) - 1 end
  end
  local deadline = self.timeout and deadline_of(self)
  i = i or 1
  while true do
    local last, e, sent = self.conn:send(data, i, j)
    if last then return last end
    if e == "wantwrite" or e == "wantread" or e == "timeout" then
      if sent and sent >= i then i = sent + 1 end
      local w, werr = await(self, e == "timeout" and "wantwrite" or e, deadline)
      if not w then return nil, werr, (sent or i - 1) end
    else
      return nil, word(e), sent or i - 1
    end
  end
end

function TLS:close()
  if self.closed then return 1 end
  self.closed = true
  core.notify_close(self.fd) -- wake our waiters first
  self.conn:close()
  return 1
end
MT.__close = TLS.close
MT.__gc = TLS.close


local function context(params, mode)
  need_ssl()
  if type(params) ~= "table" then return params end -- a LuaSec context
  local p = {}
  for k, v in pairs(params) do p[k] = v end
  p.mode = p.mode or mode
  p.protocol = p.protocol or "any"
  p.options = p.options or { "all", "no_sslv2", "no_sslv3", "no_tlsv1", "no_tlsv1_1" }
  if p.mode == "client" then
    if p.verify == nil then p.verify = "peer" end
    if p.verify ~= "none" and not p.cafile and not p.capath then p.cafile = CAFILE end
  end
  return ssl.newcontext(p)
end

--- wrap(sock, params_or_context [, host]) -> TLS socket (handshake on
-- first use, or call :dohandshake()); host enables SNI and name checks
function M.wrap(sock, params, host)
  need_ssl()
  local ctx, err = context(params or {}, "client")
  if not ctx then return nil, err end
  local fd = sock:getfd()
  local conn, e = raw_wrap(sock, ctx)
  if not conn then return nil, e end
  conn:settimeout(0)
  local self = setmetatable({ conn = conn, fd = fd, timeout = nil,
    server_side = type(params) == "table" and params.mode == "server" }, MT)
  if host then
    if not host:match("^[%d.]+$") and not host:find(":", 1, true) then conn:sni(host) end
    local verify = type(params) == "table" and params.verify or "peer"
    if verify ~= "none" and (type(params) ~= "table" or params.checkhost ~= false) then
      self.verify_host = host
    end
  end
  return self
end

--- connect(host, port [, params]) -> TLS socket after the handshake, or nil, err
function M.connect(host, port, params)
  need_ssl()
  params = params or {}
  local sock, err = core.tcp()
  if not sock then return nil, err end
  if params.timeout then sock:settimeout(params.timeout, "t") end
  local ok, e = sock:connect(host, port)
  if not ok then sock:close(); return nil, e end
  local t, werr = M.wrap(sock, params, host)
  if not t then sock:close(); return nil, werr end
  t.hs_timeout = params.timeout
  local hs, herr = t:dohandshake()
  if not hs then t:close(); return nil, herr end
  return t
end

local Server = {}
Server.__index = Server
Server.__name = "greenhub.tls.server"
function Server:accept()
  local c, err = self.sock:accept()
  if not c then return nil, err end
  local t, e = M.wrap(c, self.ctx)
  if not t then c:close(); return nil, e end
  t.server_side = true
  t.hs_timeout = self.handshake_timeout
  return t -- the handshake runs in the handler's thread, on first use
end
function Server:close() return self.sock:close() end
function Server:getsockname() return self.sock:getsockname() end
function Server:settimeout(...) return self.sock:settimeout(...) end
function Server:getfd() return self.sock:getfd() end
function Server:__tostring() return "tls{server}: " .. tostring(self.sock) end

--- server(listener, params) -> a TLS server over a listening socket of
-- one's own (one a prefork supervisor bound, say), for gh.serve
function M.server(listener, params)
  need_ssl()
  local p = {}
  for k, v in pairs(params or {}) do p[k] = v end
  p.mode = "server"
  if p.verify == nil then p.verify = "none" end
  local ctx, err = context(p, "server")
  if not ctx then return nil, err end
  return setmetatable({ sock = listener, ctx = ctx, handshake_timeout = p.handshake_timeout }, Server)
end

--- listen(host, port, params [, backlog]) -> TLS server for gh.serve
function M.listen(host, port, params, backlog)
  need_ssl()
  local sock, e = require("greenhub.socket")._listen(host, port, backlog or 1024)
  if not sock then return nil, e end
  local srv, err = M.server(sock, params)
  if not srv then sock:close(); return nil, err end
  return srv
end

--- patch LuaSec so ssl.wrap (and so ssl.https) gives green TLS sockets
function M.patch_luasec()
  if not ok_ssl then return false end
  ssl.wrap = function(sock, cfg) return M.wrap(sock, cfg) end
  return true
end

return M
