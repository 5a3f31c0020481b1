-- greenhub.websocket: RFC 6455 WebSocket server and client over green
-- sockets (and gh.tls for wss://). Framing, masking and UTF-8 checks are in
-- C (csrc/websocket.c); this file is the handshake, message assembly,
-- control frames and the closing handshake.
--
--   local websocket = require "greenhub.websocket"
--   local ws, err = websocket.accept(req, res [, opts])  -- in an http handler
--   local ws, err = websocket.connect(url [, opts])      -- ws:// and wss://
--   ws:receive() -> msg, "text"|"binary" | nil, "closed", code, reason | nil, "timeout"
--   ws:send(msg [, "text"|"binary"]) -> true | nil, err
--   ws:ping([data]); ws:close([code [, reason]]); ws:settimeout(s); ws.protocol
local core = require "greenhub.core"
local sem = core.semaphore

local M = {}

local OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10
local KINDS = { text = OP_TEXT, binary = OP_BINARY }
local MAX_MESSAGE, CLOSE_TIMEOUT = 1024 * 1024, 3

local WS = {}
WS.__index = WS
WS.__name = "greenhub.websocket"

local function check_opts(opts, fname)
  if opts == nil then return {} end
  if type(opts) ~= "table" then
    error("bad argument to '" .. fname .. "' (options table expected, got " .. type(opts) .. ")", 3)
  end
  local mm = opts.max_message
  if mm ~= nil and (math.type(mm) ~= "integer" or mm < 0) then
    error("bad argument to '" .. fname .. "' (max_message must be a non-negative integer)", 3)
  end
  local ct = opts.close_timeout
  if ct ~= nil and (type(ct) ~= "number" or ct ~= ct) then
    error("bad argument to '" .. fname .. "' (close_timeout must be a number)", 3)
  end
  return opts
end

local function new(sock, server, opts, protocol)
  local self = setmetatable({
    sock = sock, server = server, protocol = protocol,
    max_message = opts.max_message or MAX_MESSAGE,
    close_timeout = opts.close_timeout or CLOSE_TIMEOUT,
    state = "open", wlock = sem(0), writing = false, nwait = 0,
    c = sock._wsframe ~= nil, -- a green socket: frames come out of its C buffer
  }, WS)
  if not self.c then -- another library's socket: frames parsed from what it returns
    self.buf, sock.pending = sock.pending or "", nil
    self.pos = 1
  end
  return self
end

-- ---------------------------------------------------------------- frames

-- the next frame: fin, op, payload | nil, err | nil, "protocol", code, why
local function read_frame(self)
  if self.c then return self.sock:_wsframe(self.server, self.max_message) end
  while true do
    local fin, op, payload, nxt = core._wsparse(self.buf, self.server, self.max_message, self.pos)
    if fin ~= nil then
      if nxt > #self.buf then self.buf, self.pos = "", 1 else self.pos = nxt end
      return fin, op, payload
    end
    if op ~= "more" then return nil, op, payload, nxt end
    local data, err = self.sock:receivepartial(65536)
    if not data then return nil, err end
    self.buf, self.pos = self.buf:sub(self.pos) .. data, 1
  end
end

local wsencode = core._wsencode

-- Frames from several threads never interleave: a thread that finds a send
-- in progress queues on the lock (taken only then).
local function write_frame(self, op, payload)
  local frame = wsencode(op, payload, not self.server)
  if self.writing then -- another thread is mid-send: wait for it to hand over
    self.nwait = self.nwait + 1
    local ok, e = pcall(self.wlock.acquire, self.wlock)
    self.nwait = self.nwait - 1
    if not ok then error(e, 0) end -- killed while waiting: the turn passes on
  end
  self.writing = true
  local ok, err = self.sock:send(frame)
  -- the next waiter inherits "writing"; with none, the way is free
  if self.nwait > 0 then self.wlock:release() else self.writing = false end
  if not ok then return nil, err end
  return true
end

local function close_payload(code, reason)
  if code == nil then return "" end
  return string.pack(">I2", code) .. (reason or "")
end

-- codes a peer may send in a close frame (RFC 6455 7.4)
local function valid_code(c)
  return (c >= 1000 and c <= 1003) or (c >= 1007 and c <= 1014) or (c >= 3000 and c <= 4999)
end

-- The end of the connection: the TCP side goes (a server closes first; a
-- client gives the server close_timeout to do so).
local function finish(self)
  if self.state == "closed" then return end
  self.state = "closed"
  if not self.server and self.c then
    self.sock:settimeout(self.close_timeout)
    self.sock:receive("*a")
  end
  self.sock:close()
end

-- A protocol violation: send the close code, drop the connection, and tell
-- the caller what was sent.
local function fail(self, code, why)
  if self.state == "open" then
    self.state = "closing"
    write_frame(self, OP_CLOSE, close_payload(code, why:sub(1, 123)))
  end
  finish(self)
  self.close_code, self.close_reason = code, why
  return nil, "closed", code, why
end

-- ---------------------------------------------------------------- messages

--- receive() -> msg, "text"|"binary"; nil, "closed", code, reason; nil,
-- "timeout" (the connection stays usable); nil, err. Pings are answered and
-- pongs consumed on the way.
local function receive_slow(self, fin, op, payload, why)
  if self.state == "closed" then return nil, "closed", self.close_code, self.close_reason end
  local parts, op0, size, tail = nil, nil, 0, 0
  if self.partial then -- a message a timeout interrupted: go on with it
    parts, op0, size, tail = self.partial[1], self.partial[2], self.partial[3], self.partial[4]
    self.partial = nil
  end
  local first = op ~= nil -- the caller read the first frame already
  while true do
    if first then first = false else fin, op, payload, why = read_frame(self) end
    if fin == nil then
      if op == "protocol" then return fail(self, payload, why) end
      if op == "timeout" then
        if parts then self.partial = { parts, op0, size, tail } end
        return nil, "timeout"
      end
      -- the peer went away without a close frame (1006: never sent)
      self.state = "closed"
      self.sock:close()
      self.close_code, self.close_reason = 1006, ""
      return nil, "closed", 1006, ""
    end
    if op >= OP_CLOSE then
      if op == OP_PING then
        if self.state == "open" then write_frame(self, OP_PONG, payload) end
      elseif op == OP_CLOSE then
        local code, reason
        if #payload == 1 then return fail(self, 1002, "close frame of one byte") end
        if #payload >= 2 then
          code = string.unpack(">I2", payload)
          reason = payload:sub(3)
          if not valid_code(code) then return fail(self, 1002, "invalid close code") end
          if not core._wsutf8(reason, true) then return fail(self, 1007, "invalid UTF-8 in the close reason") end
        end
        if self.state == "open" then -- echo it: the closing handshake
          self.state = "closing"
          write_frame(self, OP_CLOSE, close_payload(code))
        end
        finish(self)
        self.close_code, self.close_reason = code or 1005, reason or ""
        return nil, "closed", self.close_code, self.close_reason
      end -- a pong: nothing to do
    elseif op == OP_CONT then
      if not parts then return fail(self, 1002, "continuation without a message") end
      size = size + #payload
      if size > self.max_message then return fail(self, 1009, "message too big") end
      if op0 == OP_TEXT then
        local chk = tail > 0 and parts[#parts]:sub(-tail) .. payload or payload
        local ok, t = core._wsutf8(chk, fin)
        if not ok then return fail(self, 1007, "invalid UTF-8 in a text message") end
        tail = t
      end
      parts[#parts + 1] = payload
      if fin then
        local msg = table.concat(parts)
        return msg, op0 == OP_TEXT and "text" or "binary"
      end
    else -- a new text or binary message
      if parts then return fail(self, 1002, "new message inside a fragmented one") end
      if fin then return payload, op == OP_TEXT and "text" or "binary" end
      if op == OP_TEXT then
        local ok, t = core._wsutf8(payload)
        if not ok then return fail(self, 1007, "invalid UTF-8 in a text message") end
        tail = t
      end
      parts, op0, size = { payload }, op, #payload
    end
  end
end

function WS:receive()
  -- the common case in one C call: a whole data frame from a green socket
  if self.c and self.state == "open" and not self.partial then
    local fin, op, payload, why = self.sock:_wsframe(self.server, self.max_message)
    if fin then
      if op == OP_TEXT then return payload, "text" end
      if op == OP_BINARY then return payload, "binary" end
    end
    return receive_slow(self, fin, op, payload, why)
  end
  return receive_slow(self)
end

--- send(msg [, kind = "text"]) -> true | nil, err
function WS:send(msg, kind)
  if type(msg) ~= "string" then
    error("bad argument #1 to 'send' (string expected, got " .. type(msg) .. ")", 2)
  end
  local op = KINDS[kind or "text"]
  if not op then error("bad argument #2 to 'send' ('text' or 'binary' expected)", 2) end
  if self.state ~= "open" then return nil, "closed" end
  return write_frame(self, op, msg)
end

--- ping([data]) -> true | nil, err (the pong is consumed by receive)
function WS:ping(data)
  data = data or ""
  if type(data) ~= "string" or #data > 125 then
    error("bad argument #1 to 'ping' (string of at most 125 bytes expected)", 2)
  end
  if self.state ~= "open" then return nil, "closed" end
  return write_frame(self, OP_PING, data)
end

--- close([code = 1000 [, reason]]) -> true | nil, err. Runs the closing
-- handshake: waits up to close_timeout for the peer's close frame.
function WS:close(code, reason)
  code = code or 1000
  if math.type(code) ~= "integer" or not (valid_code(code) and code ~= 1005 and code ~= 1006) then
    error("bad argument #1 to 'close' (a close code 1000-1003, 1007-1014 or 3000-4999 expected)", 2)
  end
  reason = reason or ""
  if type(reason) ~= "string" or #reason > 123 then
    error("bad argument #2 to 'close' (string of at most 123 bytes expected)", 2)
  end
  if self.state == "closed" then return true end
  if self.state == "open" then
    self.state = "closing"
    local ok, err = write_frame(self, OP_CLOSE, close_payload(code, reason))
    if not ok then finish(self); return nil, err end
  end
  -- wait for the peer's close, dropping what comes before it
  local deadline = core.clock() + self.close_timeout
  local saved_b, saved_t = self.sock:gettimeout()
  while true do
    local left = deadline - core.clock()
    if left <= 0 then break end
    self.sock:settimeout(left)
    local fin, op = read_frame(self)
    if fin == nil then break end
    if op == OP_CLOSE then break end
  end
  self.sock:settimeout(saved_b)
  self.close_code, self.close_reason = self.close_code or code, self.close_reason or reason
  self.state = "closing"
  finish(self)
  return true
end

--- settimeout(s [, "b"|"t"]): bounds receive and send, as a socket's
function WS:settimeout(s, mode) return self.sock:settimeout(s, mode) end
function WS:getpeername() return self.sock:getpeername() end
function WS:__tostring()
  return "websocket{" .. (self.server and "server" or "client") .. ", " .. self.state .. "}: " .. tostring(self.sock)
end
function WS:__close() if self.state ~= "closed" then pcall(self.close, self) end end

-- ---------------------------------------------------------------- handshake

local function tokens(v)
  local t = {}
  for tok in (v or ""):gmatch("[^,%s]+") do t[tok:lower()] = true end
  return t
end

local function choose_protocol(offered, supported)
  if not supported or not offered then return nil end
  local want = {}
  for p in offered:gmatch("[^,%s]+") do want[p] = true end
  for _, p in ipairs(supported) do if want[p] then return p end end
end

local function refuse(res, status, why, extra)
  res.status = status
  if extra then for k, v in pairs(extra) do res.headers[k] = v end end
  res.headers["content-type"] = "text/plain"
  res:finish(why .. "\n")
  return nil, why
end

--- accept(req, res [, opts]) -> ws | nil, err. In an http handler: checks
-- the upgrade, answers 101 and takes the connection over (req:hijack()).
-- opts: protocols = {...} (first of ours the client offers), origin =
-- function(origin) -> bool, headers = {...} (added to the 101),
-- max_message (1 MiB), close_timeout (3 s). A bad upgrade gets 400 (426
-- for a version other than 13, 403 for a refused origin).
function M.accept(req, res, opts)
  opts = check_opts(opts, "accept")
  local h = req.headers
  if req.method ~= "GET" then return refuse(res, 400, "websocket upgrade must be a GET") end
  if not tokens(h.upgrade).websocket then return refuse(res, 400, "not a websocket upgrade") end
  if not tokens(h.connection).upgrade then return refuse(res, 400, "connection: upgrade missing") end
  if h["sec-websocket-version"] ~= "13" then
    return refuse(res, 426, "unsupported websocket version", { ["sec-websocket-version"] = "13" })
  end
  local key = h["sec-websocket-key"]
  if not key or not key:match("^[%w+/]+=*$") or #key ~= 24 then
    return refuse(res, 400, "bad sec-websocket-key")
  end
  if opts.origin and not opts.origin(h.origin) then return refuse(res, 403, "origin refused") end
  local protocol = choose_protocol(h["sec-websocket-protocol"], opts.protocols)
  local lines = { "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n",
    "Sec-WebSocket-Accept: ", core._wsaccept(key), "\r\n" }
  if protocol then lines[#lines + 1] = "Sec-WebSocket-Protocol: " .. protocol .. "\r\n" end
  for k, v in pairs(opts.headers or {}) do lines[#lines + 1] = k .. ": " .. v .. "\r\n" end
  lines[#lines + 1] = "\r\n"
  local sock = req:hijack()
  sock:settimeout(nil) -- a session waits as long as it likes: ws:settimeout bounds it
  local ok, err = sock:send(table.concat(lines))
  if not ok then sock:close(); return nil, err end
  return new(sock, true, opts, protocol)
end

local function parse_ws_url(url)
  if type(url) ~= "string" then return nil, "invalid URL" end
  local scheme, rest = url:match("^(%a[%w+.%-]*)://(.*)$")
  scheme = scheme and scheme:lower()
  if scheme ~= "ws" and scheme ~= "wss" then return nil, "unsupported scheme " .. tostring(scheme) end
  local http = require "greenhub.http"
  local u, err = http.parse_url((scheme == "wss" and "https" or "http") .. "://" .. rest)
  if not u then return nil, err end
  u.scheme = scheme
  return u
end

--- connect(url [, opts]) -> ws | nil, err. opts: headers, protocols,
-- timeout (connect + handshake, default 30 s), tls (gh.tls parameters for
-- wss://), max_message, close_timeout.
function M.connect(url, opts)
  opts = check_opts(opts, "connect")
  local u, err = parse_ws_url(url)
  if not u then return nil, err end
  local timeout = opts.timeout or 30
  local sock
  local gh = require "greenhub"
  if u.scheme == "wss" then
    local params = {}
    for k, v in pairs(opts.tls or {}) do params[k] = v end
    params.timeout = params.timeout or timeout
    sock, err = gh.tls.connect(u.host, u.port, params)
  else
    sock, err = gh.connect(u.host, u.port, timeout)
  end
  if not sock then return nil, err end
  sock:settimeout(timeout)
  local key = core._wskey()
  local lines = { "GET ", u.target, " HTTP/1.1\r\nHost: ", u.hosthdr,
    "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ", key,
    "\r\nSec-WebSocket-Version: 13\r\n" }
  if opts.protocols then
    lines[#lines + 1] = "Sec-WebSocket-Protocol: " .. table.concat(opts.protocols, ", ") .. "\r\n"
  end
  for k, v in pairs(opts.headers or {}) do lines[#lines + 1] = k .. ": " .. v .. "\r\n" end
  lines[#lines + 1] = "\r\n"
  -- interrupted (gh.with_timeout, a kill) in the handshake: the
  -- connection closes now, not when the collector finds it
  local closing = require("greenhub.util").closing
  local ok, serr = closing(sock, sock.send, sock, table.concat(lines))
  if not ok then sock:close(); return nil, serr end
  local head, herr = closing(sock, sock._httphead, sock, "response", 8192, 65536, 100, "GET")
  if not head then sock:close(); return nil, herr end
  local h = head.headers
  local function bad(why) sock:close(); return nil, why end
  if head.status ~= 101 then return bad("handshake refused: " .. head.status) end
  if not tokens(h.upgrade).websocket or not tokens(h.connection).upgrade then
    return bad("handshake: not an upgrade to websocket")
  end
  if h["sec-websocket-accept"] ~= core._wsaccept(key) then return bad("handshake: bad sec-websocket-accept") end
  local protocol = h["sec-websocket-protocol"]
  if protocol then
    local offered = false
    for _, p in ipairs(opts.protocols or {}) do if p == protocol then offered = true end end
    if not offered then return bad("handshake: server chose a protocol not offered") end
  end
  if h["sec-websocket-extensions"] then return bad("handshake: server chose an extension not offered") end
  sock:settimeout(nil)
  return new(sock, false, opts, protocol)
end

return M
