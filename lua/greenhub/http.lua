-- greenhub.http: an HTTP/1.1 server and client on green sockets. Heads are
-- parsed in C (csrc/http.c) straight out of the socket's receive buffer;
-- this file frames bodies and responses.
--   http.serve(listener, handler [, opts])
--   local s = http.server(handler [, opts]); s:serve(listener); s:shutdown([grace]); s:stats()
--   handler(req, res)   -- or return status [, headers [, body]]
local core = require "greenhub.core"
local closing = require("greenhub.util").closing
local gsocket = require "greenhub.socket"

local M = {}

local concat = table.concat
local find, sub = string.find, string.sub
local min = math.min
local xpcall, type = xpcall, type

M.DEFAULTS = {
  max_connections = 1024, header_timeout = 60, idle_timeout = 75, body_timeout = 60,
  send_timeout = 60, max_requests = 1000, max_request_line = 8192, max_header_size = 65536,
  max_headers = 100, max_body_size = 1024 * 1024, drain_limit = 256 * 1024, grace = 30,
  lingering_time = 30, lingering_timeout = 5, -- nginx's lingering close (see linger)
}

local REASONS = {
  [100] = "Continue", [101] = "Switching Protocols", [102] = "Processing", [103] = "Early Hints",
  [200] = "OK", [201] = "Created",
  [202] = "Accepted", [204] = "No Content", [206] = "Partial Content",
  [301] = "Moved Permanently", [302] = "Found", [303] = "See Other", [304] = "Not Modified",
  [307] = "Temporary Redirect", [308] = "Permanent Redirect", [400] = "Bad Request",
  [401] = "Unauthorized", [403] = "Forbidden", [404] = "Not Found", [405] = "Method Not Allowed",
  [408] = "Request Timeout", [409] = "Conflict", [411] = "Length Required",
  [413] = "Content Too Large", [414] = "URI Too Long", [417] = "Expectation Failed",
  [426] = "Upgrade Required", [429] = "Too Many Requests",
  [431] = "Request Header Fields Too Large", [500] = "Internal Server Error",
  [501] = "Not Implemented", [502] = "Bad Gateway", [503] = "Service Unavailable",
  [504] = "Gateway Timeout", [505] = "HTTP Version Not Supported",
}
M.reasons = REASONS

-- nil -> the default; false or math.huge -> no limit (nil)
local function limit(opts, k)
  local v = opts[k]
  if v == nil then v = M.DEFAULTS[k] end
  if v == false or v == math.huge then return nil end
  if type(v) ~= "number" or v < 0 then error("http: option " .. k .. " must be a non-negative number", 3) end
  return v
end

-- Date: cached once a second (responses get theirs in C)
local date_s, date_t = nil, -1
local function http_date()
  local t = os.time()
  if t ~= date_t then date_t, date_s = t, os.date("!%a, %d %b %Y %H:%M:%S GMT", t) end
  return date_s
end

-- header values: CR, LF and NUL would let a handler split the response
local checked, nchecked = {}, 0 -- names already seen valid (a bounded cache)
local function check_field(name, value)
  if not checked[name] then
    if type(name) ~= "string" or name == "" or name:find("[^%w!#$%%&'*+%-.^_`|~]") then
      error("http: bad response header name " .. tostring(name), 4)
    end
    if nchecked >= 256 then checked, nchecked = {}, 0 end
    checked[name], nchecked = true, nchecked + 1
  end
  if value:find("[%z\r\n]") then error("http: response header " .. name .. " holds CR, LF or NUL", 4) end
end

-- ---------------------------------------------------------------- request

local Request = { version = 1.1 } -- (a 1.0 request carries its own)
-- Request's fields, and req.headers made on its first look (csrc/sockhttp.c)
Request.__index = core._httpindex(Request)
-- pairs(req) (and a client's pairs(res)) shows what reading it shows: the
-- headers and the version are made its own fields first (and the raw
-- field lines, kept for header_list, are not shown)
local function next_shown(t, k)
  local nk, v = next(t, k)
  if nk == "_fields" then nk, v = next(t, nk) end
  return nk, v
end
local function show_all(t)
  local _ = t.headers
  if rawget(t, "version") == nil then rawset(t, "version", t.version) end
  return next_shown, t, nil
end
Request.__pairs = show_all

function Request:header(name)
  return self.headers[name:lower()]
end

--- header_list() -> { {name, value}, ... }: the head's fields in the order
-- they came, names as received (repeats not joined)
function Request:header_list()
  return core._httpfieldlist(rawget(self, "_fields"))
end

function Request:getpeername() return self._conn.sock:getpeername() end

-- the 100 goes out on the first body read, if no response has started
local function continue100(req)
  if req._expect and not req._res.headers_sent then
    req._expect = false
    local ok, err = req._conn.sock:send("HTTP/1.1 100 Continue\r\n\r\n")
    if not ok then return nil, err end
  end
  req._expect = false
  return true
end

-- The next piece of a body framed as b._kind ("length", "chunked",
-- "close", "none"): data; nil, "end" [, trailers]; or nil, err.
local function body_piece(b, sock, max)
  local kind = b._kind
  if kind == "length" then
    if b._left == 0 then return nil, "end" end
    local inline = b._body -- a client response's body that came with its head
    if inline then
      if #inline > max then b._body = sub(inline, max + 1); inline = sub(inline, 1, max)
      else b._body = nil end
      b._left = b._left - #inline
      return inline
    end
    local data, err = sock:receivepartial(min(max, b._left))
    if data then b._left = b._left - #data end
    return data, err
  elseif kind == "chunked" then
    local data, err, x = sock:_httpchunk(b._chunked, max)
    if not data and err == "end" then
      local t = {}
      for i = 1, #x, 2 do
        local k = x[i]:lower()
        t[k] = t[k] and (t[k] .. ", " .. x[i + 1]) or x[i + 1]
      end
      return nil, "end", t
    end
    if not data and type(x) == "number" then return nil, "bad chunk" end
    return data, err
  elseif kind == "close" then
    local data, err = sock:receivepartial(max)
    if not data and err == "closed" then return nil, "end" end
    return data, err
  end
  return nil, "end"
end

--- read([max]) -> next chunk, nil at the end, or nil, err
local function check_max(max)
  if max == nil then return 65536 end
  if math.type(max) ~= "integer" or max < 1 then
    error("bad argument #1 to 'read' (positive integer expected, got " ..
      (math.type(max) or type(max)) .. ")", 3)
  end
  return max
end

function Request:read(max)
  max = check_max(max)
  if self._done then return nil end
  if self._err then return nil, self._err end
  local ok, e = continue100(self)
  if not ok then self._err = e; return nil, e end
  local cap = self._conn.max_body
  local nread = self._read or 0
  if cap and self._kind == "length" and nread + self._left > cap then
    self._err = "body too large"
    return nil, self._err
  end
  local data, err, trailers = body_piece(self, self._conn.sock, max)
  if not data then
    if err == "end" then self.trailers = trailers; self._done = true; return nil end
    self._err = err
    return nil, err
  end
  nread = nread + #data
  self._read = nread
  if cap and nread > cap then self._err = "body too large"; return nil, self._err end
  if self._kind == "length" and self._left == 0 then self._done = true end
  return data
end

--- body([max]) -> the whole body, or nil, err, partial
function Request:body(max)
  if max ~= nil and (type(max) ~= "number" or max < 0) then
    error("bad argument #1 to 'body' (non-negative number expected)", 2)
  end
  local parts, n = {}, 0
  local cap = max or self._conn.max_body
  while true do
    local d, err = self:read()
    if not d then
      if err then return nil, err, concat(parts) end
      return concat(parts)
    end
    n = n + #d
    if cap and n > cap then self._err = "body too large"; return nil, "body too large", concat(parts) end
    parts[#parts + 1] = d
  end
end

--- source([max]): an LTN12 source over read
function Request:source(max)
  return function() return self:read(max) end
end

--- hijack() -> the green socket; the server forgets the connection
function Request:hijack()
  self._conn.hijacked = true
  return self._conn.sock
end

-- ---------------------------------------------------------------- response

local Response = { status = 200, headers_sent = false, _keep = true } -- (until set on the response)
Response.__index = Response

local httpresponse = core._httpresponse

-- Whether a connection can carry another request after this answer, as
-- its head must say (res._keep: true, false, or the request while its body
-- is not known to be read; the head settles it). A body left unread is
-- drained after the handler, up to drain_limit: the answer says
-- keep-alive only when that can work -- the body is read, or what is left
-- of it is a known length within the limit (not an error, not a chunked
-- body of unknown size, not an Expect: 100-continue whose 100 was never
-- sent: that client may never send it). Else Connection: close, as Go says
-- when it will not reuse the connection.
local function settle_keep(keep)
  if type(keep) ~= "table" then return keep end
  local req = keep
  if req._done then return true end
  local limit_ = req._conn.drain_limit
  return not req._err and not req._expect and req._kind == "length"
    and (not limit_ or req._left <= limit_)
end

-- the head (written in C, csrc/socket.c), with the framing decided there;
-- with body, the body follows it in the same string
-- (res._rq, set with the response: 1 the request was a HEAD, 2 HTTP/1.0)
local function head_text(res, length, body)
  local rq = res._rq or 0
  local status = res.status
  if math.type(status) ~= "integer" then error("http: bad response status " .. tostring(status), 4) end
  local nobody = status < 200 or status == 204 or status == 304
  if not nobody and rq & 1 ~= 0 then nobody = "head" end -- announces the length, sends no body
  local head, chunked, keep, handler_len = httpresponse(status, REASONS[status] or "Unknown",
    res.headers, length, nobody, rq & 2 ~= 0 and 0 or 1, settle_keep(res._keep), body)
  res._keep, res._chunked, res._bodyless = keep, chunked, nobody
  if handler_len and not nobody then res._length = handler_len end
  return head
end

local function send(res, data)
  local ok, err = res._sock:send(data)
  if not ok then res._failed = err; res._keep = false; return nil, err end
  return true
end

local function flatten(out, ...)
  for i = 1, select("#", ...) do
    local v = select(i, ...)
    if type(v) == "table" then for _, x in ipairs(v) do out[#out + 1] = tostring(x) end
    elseif v ~= nil then out[#out + 1] = tostring(v) end
  end
  return out
end

-- send the head (and what is buffered) now: the body goes out chunked
-- (1.1), with the handler's Content-Length, or close-delimited (1.0)
local function start(res)
  if res.headers_sent then return true end
  local head = head_text(res, nil)
  res.headers_sent = true
  local body = res._buf and concat(res._buf) or ""
  res._buf, res._nbuf = nil, nil
  if res._bodyless then return send(res, head) end
  if res._chunked then
    return send(res, #body > 0 and (head .. ("%x\r\n"):format(#body) .. body .. "\r\n") or head)
  end
  local len = res._length
  if len and #body > len then
    -- more than the handler's own Content-Length: what it announced goes
    -- out (a whole answer: the connection stays), the rest does not
    res._sent = len
    local ok, err = send(res, head .. sub(body, 1, len))
    if not ok then return nil, err end
    return nil, "too much data"
  end
  if len then res._sent = #body end
  return send(res, head .. body)
end

--- write(...): strings or arrays of strings appended to the body
function Response:write(...)
  if self._finished then return nil, "finished" end
  if self._failed then return nil, self._failed end
  local parts = flatten({}, ...)
  if not self.headers_sent then
    for _, p in ipairs(parts) do
      local buf = self._buf
      if not buf then buf = {}; self._buf = buf end
      buf[#buf + 1] = p
      self._nbuf = (self._nbuf or 0) + #p
    end
    if (self._nbuf or 0) >= 2048 then return start(self) end
    return true
  end
  if self._bodyless then return true end
  local data = concat(parts)
  if #data == 0 then return true end
  if self._chunked then return send(self, ("%x\r\n"):format(#data) .. data .. "\r\n") end
  if self._length then
    if self._sent + #data > self._length then self._keep = false; return nil, "too much data" end
    self._sent = self._sent + #data
  end
  return send(self, data)
end

--- inform(status [, headers]): an interim 1xx answer (103 Early Hints,
-- ...) before the final one; true, or nil, err. An HTTP/1.0 client gets
-- none (RFC 9110 15.2: true, nothing sent). 100 is the server's own (sent
-- on the first body read), 101 is an upgrade's (hijack)
function Response:inform(status, headers)
  if math.type(status) ~= "integer" or status < 102 or status > 199 then
    error("bad argument #1 to 'inform' (a 1xx status from 102 to 199 expected)", 2)
  end
  if headers ~= nil and type(headers) ~= "table" then
    error("bad argument #2 to 'inform' (table expected, got " .. type(headers) .. ")", 2)
  end
  if self._finished or self.headers_sent then return nil, "headers sent" end
  if self._failed then return nil, self._failed end
  if (self._rq or 0) & 2 ~= 0 then return true end
  return send(self, (httpresponse(status, REASONS[status] or "Informational", headers or {}, nil,
    true, 1, true)))
end

--- flush(): the head (and what is buffered) goes out now
function Response:flush()
  if self._failed then return nil, self._failed end
  return start(self)
end

--- finish([body [, trailers]]): end the response (the common case, a
-- small whole body with nothing written yet, is the C finisher's, below;
-- this is everything else)
local function finish(self, body, trailers)
  if self._finished then return true end
  if body ~= nil then
    local ok, err = self:write(body)
    if not ok then self._finished = true; return nil, err end
  end
  self._finished = true
  if self._failed then return nil, self._failed end
  if not self.headers_sent and trailers ~= nil and next(trailers) ~= nil then
    -- trailers go after a chunked body (HTTP/1.1): the head goes out
    -- without a length (a handler's Content-Length or a 1.0 client leave
    -- no place for them)
    local ok, err = start(self)
    if not ok then return nil, err end
  end
  if not self.headers_sent then
    -- complete within the first bytes: a computed Content-Length
    local data = self._buf and concat(self._buf) or ""
    local out = head_text(self, #data, data)
    self.headers_sent = true
    local len = self._length
    if len and not self._bodyless and #data ~= len then
      if #data < len then self._keep = false -- short: the client sees it cut, at the close
      else
        -- longer: what the handler's Content-Length announced goes out, as in start
        local ok, err = send(self, sub(out, 1, #out - (#data - len)))
        if not ok then return nil, err end
        return nil, "too much data"
      end
    end
    return send(self, out)
  end
  if self._chunked then
    local t = { "0\r\n" }
    if trailers then
      for name, v in pairs(trailers) do
        if type(v) ~= "string" and type(v) ~= "number" then
          error("http: trailer " .. tostring(name) .. " is a " .. type(v) .. " (a string or a number expected)", 2)
        end
        v = tostring(v); check_field(name, v); t[#t + 1] = name .. ": " .. v .. "\r\n"
      end
    end
    t[#t + 1] = "\r\n"
    return send(self, concat(t))
  end
  if self._length and self._sent ~= self._length then self._keep = false end -- short: close
  return true
end


-- what the socket did not take at once of a response the finisher wrote
local function send_rest(res, sock, rest)
  local ok, err = sock:send(rest)
  if not ok then res._failed = err; res._keep = false; return nil, err end
  return true
end

-- (Response.finish and answer_c, the C side of both, are made below
-- answer: they share their slow paths)
local answer_c

-- ---------------------------------------------------------------- server

local Server = {}
Server.__index = Server

--- server(handler [, opts]) -> s
function M.server(handler, opts)
  if type(handler) ~= "function" and not (getmetatable(handler) or {}).__call then
    error("bad argument #1 to 'server' (function expected, got " .. type(handler) .. ")", 2)
  end
  opts = opts or {}
  if type(opts) ~= "table" then error("bad argument #2 to 'server' (table expected)", 2) end
  local s = setmetatable({ handler = handler, conns = {}, listeners = {}, closing = false,
    nconns = 0, requests = 0, connections = 0, errors = {} }, Server)
  for k in pairs(M.DEFAULTS) do s[k] = limit(opts, k) end
  return s
end

-- requests in flight: connections busy with one (counted when asked, not
-- kept per request); and the connections in all
local function active(s)
  local n, all = 0, 0
  for c in pairs(s.conns) do
    all = all + 1
    if c.res then n = n + 1 end
  end
  return n, all
end

function Server:stats()
  local n, all = active(self)
  local errors = {}
  for k, v in pairs(self.errors) do errors[k] = v end
  return { connections = self.connections, open = self.nconns, active = n, idle = all - n,
           requests = self.requests, errors = errors }
end

local function count_error(s, status) s.errors[status] = (s.errors[status] or 0) + 1 end

-- answer a rejected request and close
local function reject(s, sock, status)
  count_error(s, status)
  sock:send(("HTTP/1.1 %d %s\r\nContent-Length: 0\r\nConnection: close\r\nDate: %s\r\n\r\n")
    :format(status, REASONS[status] or "Error", http_date()))
end

-- the unread rest of a request body: up to drain_limit is read away,
-- else the connection cannot be reused
local function drain(s, req)
  if req._done or req._err then return not req._err end
  if req._expect then return false end -- no 100 was sent: the client may not send the body
  local limit_ = s.drain_limit
  local n = 0
  while true do
    local d, err = req:read(65536)
    if not d then return err == nil end
    n = n + #d
    if limit_ and n > limit_ then return false end
  end
end

-- what a handler returned: status [, headers [, body]] (no table per call);
-- the common case, an integer status with a small string body, is the C
-- answerer's (answer_c), this is everything else
local function answer(res, status, headers, body)
  if not res._finished and status ~= nil then
    if res.headers_sent then error("http: the handler returned a response after writing one", 0) end
    res.status = status
    if headers then
      if type(headers) ~= "table" then
        error("http: the handler returned headers that are not a table (a " .. type(headers) .. ")", 0)
      end
      local own = res.headers
      -- the handler's own table when it set none on res and the head is
      -- made right here (finish, below, reads it once, in C; a source
      -- body's head waits for 2 KiB, so it gets a copy)
      if next(own) == nil and type(body) ~= "function" then res.headers = headers
      else for k, v in pairs(headers) do own[k] = v end end
    end
    if type(body) == "function" then -- an LTN12 source
      while true do
        local chunk, err = body()
        if not chunk then
          if err then error(err, 0) end
          break
        end
        local ok = res:write(chunk)
        if not ok then break end
      end
      return res:finish()
    end
    return res:finish(body)
  end
end

Response.finish, answer_c = core._httpfinisher(finish, REASONS, send_rest, answer)


-- the handler's own stack goes into the report (string errors)
local function with_traceback(e)
  if type(e) == "string" then return debug.traceback(e, 2) end
  return e
end

-- One connection: requests until it closes, errs, or asks to. The whole
-- connection runs under one xpcall (run, in Server:serve), not one per
-- request: a handler's error comes out there with the handler's own stack,
-- and conn.res is the response it was making (nil between requests).
local function connection(s, sock, conn)
  local handler = s.handler
  s.conns[conn] = conn
  s.connections = s.connections + 1
  sock:settimeout(s.send_timeout) -- bounds each send wait (and body waits, reset below)
  local nreq = 0
  -- a connection accepted before a shutdown began is served its first
  -- request even if its thread starts after (closed only when silent)
  local cfg, max_requests, max_body, idle = s._cfg, s.max_requests, s.max_body_size, s.idle_timeout
  local body_t = s.body_timeout ~= s.send_timeout
  local httpreq = sock._httpreq
  while nreq == 0 or not s.closing do
    -- the request and its response arrive made (csrc/sockhttp.c:
    -- push_request; req._kind, nil for no body, comes as kind)
    local req, res, kind = httpreq(sock, cfg, conn,
      nreq == 0 and (s.closing and 1 or s.header_timeout) or idle)
    if nreq == 0 then conn.fresh = nil end
    if not req then
      local err, x = res, kind
      if type(x) == "number" and err ~= "closed" and err ~= "timeout" then
        reject(s, sock, x)
        conn.linger = true -- the client may be sending the rest
      elseif err == "timeout" and x and x > 0 then reject(s, sock, 408) end
      break
    end
    nreq = nreq + 1
    s.requests = s.requests + 1
    conn.res = res -- busy
    if kind == "chunked" then req._chunked = core._httpchunked(4096, s.max_header_size)
    elseif kind == "length" and max_body and req._left > max_body then
      -- too large before anything was read: 413 at once, no 100
      req._expect = false
      req._err = "body too large"
    end
    if s.closing or (max_requests and nreq >= max_requests) then res._keep = false
    elseif kind then res._keep = req end -- settled by the head (settle_keep)
    if body_t then sock:settimeout(s.body_timeout) end
    local st, hh, hb = handler(req, res)
    if st ~= nil then answer_c(res, st, hh, hb) end -- returned: status [, headers [, body]]
    if body_t then sock:settimeout(s.send_timeout) end
    if conn.hijacked then
      s.conns[conn] = nil
      return "hijacked"
    end
    if not res._finished then
      if req._err == "body too large" and not res.headers_sent then
        res.status, res._keep = 413, false; count_error(s, 413)
      elseif req._err == "bad chunk" and not res.headers_sent then
        res.status, res._keep = 400, false; count_error(s, 400)
      elseif req._err == "timeout" and not res.headers_sent then
        res.status, res._keep = 408, false; count_error(s, 408)
      end
      res:finish()
    end
    conn.res = nil
    if not res._keep or (kind and not req._done and not drain(s, req)) then
      -- (_keep false too when a send failed); a body not read to its end
      -- may still be coming
      if kind and not req._done then conn.linger = true end
      break
    end
  end
  -- pipelined requests the server will not answer (a Connection: close,
  -- max_requests, a shutdown) are unread bytes too, read here or still in
  -- the kernel (a peek: _quiet is false for bytes, or the client's close)
  if not conn.linger and (sock:dirty() or not sock:_quiet(0, math.huge)) then conn.linger = true end
  s.conns[conn] = nil
end

-- Closing a connection the client may still be sending on (a body left
-- unread, a rejected head): closing at once with bytes unread makes the
-- kernel reset the connection, and a client still sending (curl uploading
-- past a 413) can lose the answer before it reads it. So first our FIN,
-- after the answer, then what comes is read away until the client closes
-- too, lingering_timeout passes without a byte, or lingering_time in all
-- (nginx's lingering_close, with its defaults). Over TLS our FIN is the
-- close_notify (reading goes on after it).
local LINGERING = { ["tcp{client}"] = "shutdown", ["unix{client}"] = "shutdown", ["tls{client}"] = "_closenotify" }
local function linger(s, sock)
  local total, each = s.lingering_time, s.lingering_timeout
  local fin = LINGERING[sock.class]
  if not fin or total == 0 or each == 0 then return end
  if not sock:flush() or not sock[fin](sock, "send") or not sock:flush() then return end
  local deadline = total and core.clock() + total
  while true do
    local wait = each
    if deadline then
      local left = deadline - core.clock()
      if left <= 0 then return end
      wait = wait and min(wait, left) or left
    end
    sock:settimeout(wait)
    if not sock:receivepartial(65536) then return end -- closed, timed out, or an error
  end
end

-- after an error on a connection (a handler's, or a kill): the response
-- in the making, if its head is not out yet, becomes an empty 500; the
-- connection then closes. A hijacked connection is the handler's: nothing
-- more is sent on it.
local function failed(s, conn)
  s.conns[conn] = nil
  local res = conn.res
  conn.res = nil
  if not res or conn.hijacked then return end
  count_error(s, 500)
  local keep = res._keep -- (the request, while its body is not known read)
  if type(keep) == "table" and not keep._done then conn.linger = true end
  res._keep = false
  if not res.headers_sent then
    res.status, res.headers, res._buf, res._nbuf, res._finished = 500, {}, nil, nil, false
    pcall(res.finish, res, "") -- (a send that fails here changes nothing: it closes)
  end
end

--- s:serve(listener) -> true when the listener closes or the server shuts down
function Server:serve(listener)
  self.listeners[listener] = true
  self._cfg = core._httpcfg(self.max_request_line, self.max_header_size, self.max_headers,
    self.header_timeout, Request, Response)
  local s = self
  local slot
  -- the end of a connection: closed (after lingering, if the client may
  -- still be sending), its place given back
  local function close_conn(sock, conn, ok, how)
    if how ~= "hijacked" or not ok then
      if conn.linger and not conn.hijacked then pcall(linger, s, sock) end -- (killed: closes now)
      sock:close()
    end
    s.nconns = s.nconns - 1
    if slot and s.nconns < (s.max_connections or math.huge) then local e = slot; slot = nil; e:send() end
  end
  local function run(sock)
    local conn = { sock = sock, max_body = s.max_body_size, drain_limit = s.drain_limit,
      thread = core.current(), fresh = true, hijacked = false }
    local ok, how = xpcall(connection, with_traceback, s, sock, conn)
    if ok then return close_conn(sock, conn, ok, how) end
    failed(s, conn)
    -- the error is reported now (it ends this thread): a lingering close
    -- goes on in a thread of its own. Killed: closed at once
    if how == core.Killed then conn.linger = nil end
    if conn.linger and not conn.hijacked then core.spawn_n(close_conn, sock, conn, ok, how)
    else close_conn(sock, conn, ok, how) end
    error(how, 0)
  end
  local backoff = 0.01
  while not self.closing do
    while self.max_connections and self.nconns >= self.max_connections do
      slot = slot or core.event()
      slot:wait()
    end
    local sock, err = listener:accept()
    if sock then
      backoff = 0.01
      self.nconns = self.nconns + 1 -- counted from accept: the bound holds in a burst
      core.spawn_n(run, sock)
    elseif err == "closed" then
      break
    elseif err ~= "timeout" then
      core.sleep(backoff)
      backoff = math.min(backoff * 2, 1)
    end
  end
  self.listeners[listener] = nil
  return true
end

--- s:on_shutdown(f): f() runs in a green thread of its own when a
-- shutdown begins -- for connections the server no longer holds
-- (hijacked: WebSocket), which shutdown does not wait for (Go's
-- RegisterOnShutdown). f should start their closing, not wait for it.
function Server:on_shutdown(f)
  if type(f) ~= "function" and not (getmetatable(f) or {}).__call then
    error("bad argument #1 to 'on_shutdown' (function expected, got " .. type(f) .. ")", 2)
  end
  local hooks = self._on_shutdown or {}
  self._on_shutdown = hooks
  hooks[#hooks + 1] = f
end

--- s:shutdown([grace]) -> true, or nil, "timeout" (what was left was killed)
function Server:shutdown(grace)
  grace = grace or self.grace
  local first = not self.closing
  self.closing = true
  -- (hijacked connections are not waited for: the hooks tell their owners,
  -- once)
  if first then for _, f in ipairs(self._on_shutdown or {}) do core.spawn(f) end end
  for l in pairs(self.listeners) do l:close() end
  -- idle keep-alive connections close now; a connection accepted but
  -- still before its first request is in flight (its client is sending
  -- it): it is served, unless nothing of a request came within a second
  for c in pairs(self.conns) do if not c.res and not c.fresh then c.sock:close() end end
  -- a running request's answer, if its head is not out yet, says
  -- Connection: close (the connection closes after it)
  for c in pairs(self.conns) do
    local res = c.res
    if res and not res.headers_sent then res._keep = false end
  end
  local t0 = core.clock()
  local deadline = grace and t0 + grace
  local function fresh_left()
    for c in pairs(self.conns) do
      if c.fresh then
        if core.clock() - t0 < 1 or c.sock:dirty() then return true end
        c.sock:close() -- silent (a speculative preconnect): closed
      end
    end
  end
  while active(self) > 0 or fresh_left() do
    if deadline and core.clock() >= deadline then
      -- what is left is killed (its handler sees gh.Killed), then closed
      for c in pairs(self.conns) do
        if c.thread and c.thread ~= core.current() then c.thread:kill() end
        c.sock:close()
      end
      return nil, "timeout"
    end
    core.sleep(0.01)
  end
  return true
end

-- ---------------------------------------------------------------- client

local Client = {}
Client.__index = Client

local IDEMPOTENT = { GET = true, HEAD = true, PUT = true, DELETE = true, OPTIONS = true, TRACE = true }

-- %XX decoded (nil for a % not followed by two hex digits)
local function pct_decode(p)
  if find(p, "%%") and (find(p, "%%%X") or find(p, "%%.%X") or find(p, "%%.?$")) then return nil end
  return (p:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

--- parse_url(url) -> { scheme, host, port, target, authority } or nil, err
function M.parse_url(url)
  if type(url) ~= "string" then return nil, "invalid URL" end
  local scheme, rest = url:match("^(%a[%w+.%-]*)://(.*)$")
  if not scheme then return nil, "invalid URL " .. url end
  scheme = scheme:lower()
  if scheme ~= "http" and scheme ~= "https" then return nil, "unsupported scheme " .. scheme end
  local authority, target = rest:match("^([^/?#]*)(.*)$")
  target = target:gsub("#.*$", "")
  if target == "" or target:sub(1, 1) == "?" then target = "/" .. target end
  local userinfo, hostport = authority:match("^(.*)@(.*)$")
  hostport = hostport or authority
  local host, port
  if hostport:sub(1, 1) == "[" then host, port = hostport:match("^%[([^%]]+)%]:?(%d*)$")
  else host, port = hostport:match("^([^:]*):?(%d*)$") end
  if not host or host == "" then return nil, "invalid URL " .. url end
  if target:find("[%s%c]") then return nil, "invalid URL " .. url end
  local defport = scheme == "https" and 443 or 80
  port = tonumber(port) or defport
  local hosthdr = (host:find(":", 1, true) and "[" .. host .. "]" or host) .. (port ~= defport and ":" .. port or "")
  -- user[:password]@ -> Basic credentials (each part percent-decoded), as
  -- socket.http, Go and curl send them
  local auth
  if userinfo then
    local user, password = userinfo:match("^([^:]*):?(.*)$")
    user, password = pct_decode(user), pct_decode(password)
    if not user or not password then return nil, "invalid URL " .. url end
    auth = "Basic " .. core._b64(user .. ":" .. password)
  end
  return { scheme = scheme, host = host, port = port, target = target, hosthdr = hosthdr, auth = auth }
end

-- max_body_size as client or fetch (fname) was given it: nil, false (no
-- limit) or a size
local function body_limit(v, fname)
  if v ~= nil and v ~= false and (type(v) ~= "number" or v < 0) then
    error("bad argument #1 to '" .. fname .. "' (max_body_size: non-negative number or false expected)", 3)
  end
  return v
end

--- client([opts]) -> c: keep-alive pool per (scheme, host, port)
function M.client(opts)
  opts = opts or {}
  if type(opts) ~= "table" then error("bad argument #1 to 'client' (table expected)", 2) end
  body_limit(opts.max_body_size, "client")
  return setmetatable({
    pool_size = opts.pool_size or 30, idle_timeout = opts.idle_timeout or 60,
    connect_timeout = opts.connect_timeout or 10, timeout = opts.timeout or 60,
    -- opts.tls: gh.tls params for https (cafile, verify, ...)
    max_header_size = opts.max_header_size or 1024 * 1024, tls = opts.tls or false, pools = {},
    max_body_size = opts.max_body_size, -- nil: no limit (socket.http, Go and requests set none)
    proxy = opts.proxy or false, -- "http://[user:password@]host:port" for http:// URLs (false: M.PROXY)
  }, Client)
end

-- TLS parameters are part of the pool key (a connection verified one way
-- is not reused for a request that asked for another)
local function tls_key(p)
  if not p then return "" end
  local keys = {}
  for k, v in pairs(p) do if type(v) ~= "table" then keys[#keys + 1] = tostring(k) .. "=" .. tostring(v) end end
  table.sort(keys)
  return concat(keys, ",")
end

-- URLs parsed once (a bounded cache: fetch loops hit the same few); the
-- entries are shared, so they are never changed (an https fetch gets its
-- own view with its TLS parameters, see with_tls)
local url_cache, nurls = {}, 0
local function parse_cached(url)
  local u = url_cache[url]
  if u then return u end
  local err
  u, err = M.parse_url(url)
  if not u then return nil, err end
  u.pkey = u.scheme .. "://" .. u.host .. ":" .. u.port .. "|"
  u.heads = {} -- method -> the request head when no headers and no body
  if nurls >= 256 then url_cache, nurls = {}, 0 end
  url_cache[url], nurls = u, nurls + 1
  return u
end

local function with_tls(u, tls)
  local key = tls_key(tls)
  return setmetatable({ tls = tls, pkey = u.pkey .. key, heads = u.heads }, { __index = u })
end

-- An http:// URL through an HTTP proxy (socket.http's proxy): the
-- connection is the proxy's (pooled as the proxy's), the request line
-- names the whole URL (absolute-form), Host and Authorization stay the
-- origin's, the proxy's own user:password@ goes as Proxy-Authorization.
-- Made once per URL and proxy (its request heads are kept as u's are).
local function with_proxy(u, proxy)
  local views = u.proxied
  if not views then views = {}; u.proxied = views end
  local v = views[proxy]
  if v then return v end
  local p, err = M.parse_url(proxy)
  if not p or p.scheme ~= "http" then return nil, "bad proxy " .. tostring(proxy) .. (err and " (" .. err .. ")" or "") end
  v = { scheme = "http", host = p.host, port = p.port, pkey = "proxy " .. p.scheme .. "://" .. p.host .. ":" .. p.port .. "|",
    target = u.scheme .. "://" .. u.hosthdr .. u.target, hosthdr = u.hosthdr, auth = u.auth,
    proxy_auth = p.auth and "Proxy-Authorization: " .. p.auth .. "\r\n" or "", heads = {} }
  views[proxy] = v
  return v
end

-- a pool: idle connections and when each went idle, as pairs in one array
local function take(c, u)
  local list = c.pools[u.pkey]
  local n = list and #list or 0
  while n > 0 do
    local sock, at = list[n - 1], list[n]
    list[n], list[n - 1] = nil, nil
    n = n - 2
    -- (not quiet: idle too long, the server closed it while it sat idle,
    -- or sent what nobody asked for)
    if sock:_quiet(at, c.idle_timeout) then return sock, true end
    sock:close()
  end
  local timeout = c.connect_timeout
  if u.scheme == "https" then
    local params = {}
    for k, v in pairs(u.tls or {}) do params[k] = v end
    params.timeout = params.timeout or timeout
    local t, err = require("greenhub.tls").connect(u.host, u.port, params) -- verification on by default
    if not t then return nil, err end
    return t, false
  end
  local sock, err = gsocket._connect(u.host, u.port, timeout)
  if not sock then return nil, err end
  sock:setoption("tcp-nodelay", true)
  return sock, false
end

local function give_back(c, u, sock)
  local key = u.pkey
  local list = c.pools[key]
  if not list then list = {}; c.pools[key] = list end
  local n = #list
  if n >= 2 * c.pool_size then sock:close(); return end
  list[n + 1], list[n + 2] = sock, core.clock()
end

-- the request head and, for a string body, the body
local function request_text(u, method, headers, body)
  if headers == nil and body == nil then -- the same each time: made once
    local text = u.heads[method]
    if not text then
      text = method .. " " .. u.target .. " HTTP/1.1\r\nHost: " .. u.hosthdr
        .. (u.auth and "\r\nAuthorization: " .. u.auth or "") .. "\r\n" .. (u.proxy_auth or "")
        .. "User-Agent: greenhub\r\n\r\n"
      u.heads[method] = text
    end
    return text, false
  end
  local lines = { method .. " " .. u.target .. " HTTP/1.1\r\n" }
  local has = {}
  for k, v in pairs(headers or {}) do
    local lk = k:lower()
    has[lk] = true
    if type(v) == "table" then
      for _, x in ipairs(v) do x = tostring(x); check_field(k, x); lines[#lines + 1] = k .. ": " .. x .. "\r\n" end
    else
      v = tostring(v); check_field(k, v); lines[#lines + 1] = k .. ": " .. v .. "\r\n"
    end
  end
  if not has.host then lines[#lines + 1] = "Host: " .. u.hosthdr .. "\r\n" end
  if u.auth and not has.authorization then lines[#lines + 1] = "Authorization: " .. u.auth .. "\r\n" end
  if u.proxy_auth and u.proxy_auth ~= "" and not has["proxy-authorization"] then lines[#lines + 1] = u.proxy_auth end
  if not has["user-agent"] then lines[#lines + 1] = "User-Agent: greenhub\r\n" end
  local chunked = false
  if type(body) == "string" then
    if not has["content-length"] then lines[#lines + 1] = "Content-Length: " .. #body .. "\r\n" end
  elseif body ~= nil and not has["content-length"] then
    chunked = true -- a source of unknown length
    lines[#lines + 1] = "Transfer-Encoding: chunked\r\n"
  end
  lines[#lines + 1] = "\r\n"
  if type(body) == "string" then lines[#lines + 1] = body end
  return concat(lines), chunked
end

-- a client's response (made in C by s:_httpres): version 1.1 unless it
-- says 1.0; res.headers made on its first look, as req.headers
local Resp = { version = 1.1 }
Resp.__index = core._httpindex(Resp)
Resp.__pairs = show_all
-- res:header_list(): the fields as they came, repeats not joined (several
-- Set-Cookie lines cannot be told apart once joined with ", ")
Resp.header_list = Request.header_list

--- res:read([max]) -> next body chunk, nil at the end, or nil, err
function Resp:read(max)
  max = check_max(max)
  if self._done then return nil end
  if self._err then return nil, self._err end
  local data, err, trailers = body_piece(self, self._sock, max)
  if not data then
    if err == "end" then
      self.trailers = trailers
      if self._kind == "close" then self._reusable = false end
      return self:_finish()
    end
    self._err = err
    self:close()
    return nil, err
  end
  if self._kind == "length" and self._left == 0 then self:_finish() end
  return data
end

function Resp:_finish()
  if not self._done then
    self._done = true
    if self._reusable then give_back(self._client, self._url, self._sock) else self._sock:close() end
    self._sock = nil
  end
  return nil
end

--- res:body([max]) -> the whole (rest of the) body, or nil, err, partial;
-- over max bytes (default: the fetch's max_body_size, else no limit):
-- nil, "body too large" and the connection closes
function Resp:body(max)
  if max == nil then max = self._max end
  if max == false or max == math.huge then max = nil end
  if max ~= nil and (type(max) ~= "number" or max < 0) then
    error("bad argument #1 to 'body' (non-negative number expected)", 2)
  end
  if max and self._kind == "length" and self._left > max and not self._done then
    self:close() -- announced too large: not read at all
    return nil, "body too large", ""
  end
  local parts, n = {}, 0
  while true do
    local d, err = self:read()
    if not d then
      if err then return nil, err, concat(parts) end
      return concat(parts)
    end
    n = n + #d
    parts[#parts + 1] = d
    if max and n > max then
      self:close()
      return nil, "body too large", concat(parts)
    end
  end
end

--- res:close(): drop the connection (unless the body was read to its end)
function Resp:close()
  if not self._done then
    self._done = true
    if self._sock then self._sock:close(); self._sock = nil end
  end
end

-- one exchange on one connection; retried once on a reused connection
-- that failed before any byte of the response (idempotent, replayable).
-- Unless streamed, a length-framed response body up to this size that came
-- with its head is taken along in C (res.body, res._done)
local INLINE_BODY = 65536
local MAX_1XX = 5
local REDIRECT = { [301] = true, [302] = true, [303] = true, [307] = true, [308] = true }

-- one try on one connection: the request out, the answer's head in ->
-- head, herr, hx (as _httpres gives them), ok, err (the sending's), and
-- true when the request body's own source failed (err is its error)
local function try(c, sock, u, method, headers, body, timeout, inline)
  sock:settimeout(timeout)
  local text, chunked = headers == nil and body == nil and u.heads[method], false
  if not text then text, chunked = request_text(u, method, headers, body) end
  local ok, err = sock:send(text)
  if ok and body ~= nil and type(body) ~= "string" then -- an LTN12 source
    while ok do
      local chunk, serr = body()
      if chunk == nil then
        if serr then return nil, nil, nil, false, serr, true end
        if chunked then ok, err = sock:send("0\r\n\r\n") end
        break
      end
      if #chunk > 0 then
        ok, err = sock:send(chunked and (("%x\r\n"):format(#chunk) .. chunk .. "\r\n") or chunk)
      end
    end
  end
  if not ok then return nil, nil, nil, ok, err end
  local head, herr, hx = sock:_httpres(method, c.max_header_size, inline, Resp)
  -- 1xx informational answers before the real one (a few, as Go allows:
  -- a server sending them without end would hold the fetch for ever)
  local n1xx = 0
  while head and head.status < 200 and head.status ~= 101 do
    n1xx = n1xx + 1
    if n1xx > MAX_1XX then return nil, "too many 1xx responses", nil, ok, err end
    head, herr, hx = sock:_httpres(method, c.max_header_size, inline, Resp)
  end
  return head, herr, hx, ok, err
end

local function exchange(c, u, method, headers, body, timeout, inline)
  for attempt = 1, 2 do
    local sock, reused = take(c, u)
    if not sock then return nil, reused end
    -- (killed, timed out, a source that raised: the socket closes now;
    -- util.closing's pcall written out, as every fetch comes this way)
    local done, head, herr, hx, ok, err, source_failed =
      pcall(try, c, sock, u, method, headers, body, timeout, inline)
    if not done then sock:close(); error(head, 0) end
    if head then return head, sock end
    sock:close()
    if source_failed then return nil, err end
    local before_any = not ok or (herr == "closed" and hx == 0)
    local replayable = IDEMPOTENT[method] and (body == nil or type(body) == "string")
    if not (reused and before_any and replayable and attempt == 1) then
      return nil, ok and herr or err
    end
  end
end

-- RFC 3986 5.2.4: a path without its "." and ".." segments
local function remove_dots(path)
  local out = {}
  local i, n = 1, #path
  while i <= n do
    if sub(path, i, i + 2) == "../" then i = i + 3
    elseif sub(path, i, i + 1) == "./" then i = i + 2
    elseif sub(path, i, i + 2) == "/./" then i = i + 2
    elseif i + 1 == n and sub(path, i, i + 1) == "/." then path, n = sub(path, 1, i), i
    elseif sub(path, i, i + 3) == "/../" then i = i + 3; out[#out] = nil
    elseif i + 2 == n and sub(path, i, i + 2) == "/.." then path, n = sub(path, 1, i), i; out[#out] = nil
    elseif (i == n and sub(path, i, i) == ".") or (i + 1 == n and sub(path, i, i + 1) == "..") then i = n + 1
    else
      local j = find(path, "/", i + 1, true) or n + 1
      out[#out + 1] = sub(path, i, j - 1)
      i = j
    end
  end
  return concat(out)
end

-- RFC 3986 5.2.2: the URL a redirect's Location (a reference) names,
-- resolved against the URL that answered (base)
local function resolve(base, loc)
  loc = loc:gsub("#.*$", "") -- (a fragment is the client's own, never sent)
  if loc:match("^%a[%w+.%-]*:") then return loc end
  local scheme, authority, path, query = base:match("^(%a[%w+.%-]*:)//([^/?#]*)([^?#]*)(%??[^#]*)")
  if sub(loc, 1, 2) == "//" then return scheme .. loc end
  if loc == "" then return scheme .. "//" .. authority .. path .. query end
  local lpath, lquery = loc:match("^([^?]*)(.*)$")
  if lpath == "" then return scheme .. "//" .. authority .. path .. lquery end
  if sub(lpath, 1, 1) ~= "/" then
    -- merge (5.2.3): the base's path up to its last "/" (or "/" when it has none)
    lpath = (path == "" and "/" or path:match("^(.*/)") or "") .. lpath
  end
  return scheme .. "//" .. authority .. remove_dots(lpath) .. lquery
end

--- c:fetch(url_or_opts) -> res or nil, err
-- opts: url, method ("GET"), headers, body (string | LTN12 source),
-- timeout, redirects (5), stream (false)
function Client:fetch(o)
  local url, method, headers, body, stream, redirects, timeout, tls, max, proxy
  if type(o) == "string" then -- a plain GET: no options table to read
    url, method, redirects, timeout, tls, max, proxy = o, "GET", 5, self.timeout, self.tls, self.max_body_size,
      self.proxy or M.PROXY
  elseif type(o) == "table" then
    url, headers, body, stream, redirects = o.url, o.headers, o.body, o.stream, o.redirects
    method = o.method
    method = method and method:upper() or "GET"
    if redirects == nil then redirects = 5 end
    timeout, tls = o.timeout or self.timeout, o.tls or self.tls
    proxy = o.proxy or self.proxy or M.PROXY
    max = body_limit(o.max_body_size, "fetch")
    if max == nil then max = self.max_body_size end
  else
    error("bad argument #1 to 'fetch' (string or table expected)", 2)
  end
  local hops = 0
  while true do
    local u = url_cache[url]
    if not u then
      local uerr
      u, uerr = parse_cached(url)
      if not u then return nil, uerr end
    end
    local cu = u -- what the connection is to (and pooled as)
    if proxy then
      if u.scheme == "https" then return nil, "https through a proxy (CONNECT) is not supported" end
      local perr
      cu, perr = with_proxy(u, proxy)
      if not cu then return nil, perr end
    elseif u.scheme == "https" then
      u = with_tls(u, tls); cu = u
    end
    local res, sock = exchange(self, cu, method, headers, body, timeout,
      stream and 0 or max and max < INLINE_BODY and max or INLINE_BODY)
    if not res then return nil, sock end
    local st = res.status
    if res._done then
      -- the whole body came with the head: the connection goes back now
      -- (a 101's connection speaks another protocol now: never pooled)
      if res.keep_alive and st ~= 101 then give_back(self, cu, sock) else sock:close() end
      if not (redirects and REDIRECT[st]) then return res end
    else
      res._sock, res._client, res._url, res._max = sock, self, cu, max
      res._reusable = res.keep_alive and res._kind ~= "close"
      if res._kind == "chunked" then res._chunked = core._httpchunked(4096, self.max_header_size) end
    end
    local loc = redirects and REDIRECT[st] and res.headers.location
    if loc then
      if not res._done then closing(res, res.body, res) end -- the redirect's own body: read away, the connection goes back
      hops = hops + 1
      if hops > redirects then return nil, "too many redirects" end
      local nextu = resolve(url, loc)
      local nu = M.parse_url(nextu)
      if not nu then return nil, "bad redirect location " .. loc end
      if nu.scheme ~= u.scheme or nu.host ~= u.host or nu.port ~= u.port then
        local h2 = {}
        for k, v in pairs(headers or {}) do
          local lk = k:lower()
          if lk ~= "authorization" and lk ~= "cookie" and lk ~= "proxy-authorization" and lk ~= "host" then h2[k] = v end
        end
        headers = h2
      end
      if st == 303 or ((st == 301 or st == 302) and method == "POST") then
        method, body = method == "HEAD" and "HEAD" or "GET", nil
      elseif body ~= nil and type(body) ~= "string" then
        return res, nil -- a streamed body cannot be sent again: the redirect is the answer
      end
      url = nextu
    else
      if not stream and not res._done then
        local b, err = closing(res, res.body, res) -- interrupted: the connection closes now
        if not b then return nil, err end
        res.body = b
      end
      return res
    end
  end
end

--- c:request(url [, body]) / c:request{url=, sink=, ...}: socket.http's shapes
function Client:request(a, b)
  if type(a) == "string" then
    local o = { url = a }
    if b ~= nil then
      o.method, o.body = "POST", b
      o.headers = { ["content-type"] = "application/x-www-form-urlencoded" }
    end
    local res, err = self:fetch(o)
    if not res then return nil, err end
    return res.body, res.status, res.headers, ("HTTP/%.1f %d %s"):format(res.version, res.status, res.reason)
  end
  if type(a) ~= "table" then error("bad argument #1 to 'request' (string or table expected)", 2) end
  local headers = {}
  for k, v in pairs(a.headers or {}) do headers[k] = v end
  if a.user and a.password then -- (socket.http's fields; a header of the caller's wins)
    local given = false
    for k in pairs(headers) do if type(k) == "string" and k:lower() == "authorization" then given = true end end
    if not given then headers.authorization = "Basic " .. core._b64(a.user .. ":" .. a.password) end
  end
  local res, err = self:fetch({ url = a.url, method = a.method, headers = headers, body = a.source,
    redirects = a.redirect ~= false and 5 or false, stream = true, timeout = a.timeout, proxy = a.proxy })
  if not res then return nil, err end
  local sink = a.sink
  while true do
    local d, rerr = res:read()
    if not d then
      if rerr then return nil, rerr end
      break
    end
    if sink then
      local ok, serr = sink(d)
      if not ok then res:close(); return nil, serr end
    end
  end
  if sink then sink(nil) end
  return 1, res.status, res.headers, ("HTTP/%.1f %d %s"):format(res.version, res.status, res.reason)
end

local default
local function client() default = default or M.client(); return default end
--- request / fetch with the default client
function M.request(a, b) return client():request(a, b) end
function M.fetch(o) return client():fetch(o) end

--- serve(listener, handler [, opts]) -> true
function M.serve(listener, handler, opts)
  return M.server(handler, opts):serve(listener)
end

-- ---------------------------------------------------------------- static files

local TYPES = {
  html = "text/html; charset=utf-8", htm = "text/html; charset=utf-8", css = "text/css; charset=utf-8",
  js = "text/javascript; charset=utf-8", mjs = "text/javascript; charset=utf-8",
  json = "application/json", txt = "text/plain; charset=utf-8", md = "text/markdown; charset=utf-8",
  csv = "text/csv; charset=utf-8", xml = "application/xml", svg = "image/svg+xml",
  png = "image/png", jpg = "image/jpeg", jpeg = "image/jpeg", gif = "image/gif", webp = "image/webp",
  ico = "image/x-icon", avif = "image/avif", woff = "font/woff", woff2 = "font/woff2", ttf = "font/ttf",
  otf = "font/otf", pdf = "application/pdf", wasm = "application/wasm", zip = "application/zip",
  gz = "application/gzip", tar = "application/x-tar", mp4 = "video/mp4", webm = "video/webm",
  mp3 = "audio/mpeg", ogg = "audio/ogg", wav = "audio/wav", lua = "text/plain; charset=utf-8",
}
M.mime_types = TYPES

local DAYS = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" }
local MONTHS = { "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" }
local MONTH_NO = {}
for i, m in ipairs(MONTHS) do MONTH_NO[m] = i end

-- IMF-fixdate, English whatever the locale
local function imf_date(t)
  local d = os.date("!*t", t)
  return ("%s, %02d %s %04d %02d:%02d:%02d GMT"):format(DAYS[d.wday], d.day, MONTHS[d.month], d.year, d.hour, d.min, d.sec)
end

-- epoch seconds of an IMF-fixdate (nil for anything else)
local function parse_imf(s)
  local day, mon, year, h, mi, sec = (s or ""):match("^%a%a%a, (%d%d) (%a%a%a) (%d%d%d%d) (%d%d):(%d%d):(%d%d) GMT$")
  local m = MONTH_NO[mon or ""]
  if not m then return nil end
  local y = tonumber(year) - (m <= 2 and 1 or 0) -- days from the civil date (H. Hinnant)
  local era = (y >= 0 and y or y - 399) // 400
  local yoe = y - era * 400
  local doy = (153 * (m + (m > 2 and -3 or 9)) + 2) // 5 + tonumber(day) - 1
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  local days = era * 146097 + doe - 719468
  return days * 86400 + tonumber(h) * 3600 + tonumber(mi) * 60 + tonumber(sec)
end
M._parse_imf, M._imf_date = parse_imf, imf_date

local function unescape(p)
  local bad = false
  local out = p:gsub("%%(..)", function(h)
    local n = tonumber(h, 16)
    if not n or not h:match("^%x%x$") then bad = true; return "" end
    return string.char(n)
  end)
  if bad or p:find("%%.?$") and not p:find("%%%x%x$") then return nil end
  return out
end

-- the response for an open regular file (http.static): headers, 304,
-- ranges, then the body by sendfile (plain TCP) or by 64 KiB reads
-- whether an If-None-Match list names etag ("*": any), compared weakly
-- (a W/ prefix does not count), as RFC 9110 13.1.2 says
local function etag_listed(list, etag)
  for tag in list:gmatch("[^,]+") do
    tag = tag:match("^%s*(.-)%s*$")
    if tag == "*" or tag:gsub("^W/", "") == etag then return true end
  end
  return false
end

local function serve_fd(req, res, fd, real, size, mtime, types)
  local h = res.headers
  local lm = imf_date(mtime)
  -- a strong validator from the time and the size, as nginx makes it
  local etag = ('"%x-%x"'):format(math.floor(mtime), size)
  h["last-modified"] = lm
  h["etag"] = etag
  h["accept-ranges"] = "bytes"
  h["content-type"] = types[(real:match("%.([%w]+)$") or ""):lower()] or "application/octet-stream"
  -- RFC 9110 13.2.2: If-None-Match, and only without it If-Modified-Since
  local inm = req.headers["if-none-match"]
  local ims = not inm and parse_imf(req.headers["if-modified-since"])
  if (inm and etag_listed(inm, etag)) or (ims and mtime <= ims) then
    res.status = 304
    return res:finish()
  end
  local from, count = 0, size
  local range = req.headers.range
  -- If-Range (13.1.5): the range only of the file the client has part of
  -- (this ETag, compared strongly, or exactly this Last-Modified); else
  -- the whole file, never a piece of a changed one
  local if_range = req.headers["if-range"]
  if range and if_range and if_range ~= etag and if_range ~= lm then range = nil end
  if range then
    local a, b = range:match("^bytes=(%d*)%-(%d*)$")
    if a and (a ~= "" or b ~= "") then
      if a == "" then -- the last b bytes
        local n = tonumber(b)
        from, count = math.max(size - n, 0), math.min(n, size)
      else
        from = tonumber(a)
        local last = b == "" and size - 1 or math.min(tonumber(b), size - 1)
        if from >= size or last < from then count = 0 else count = last - from + 1 end
      end
      if count == 0 then
        h["content-range"] = "bytes */" .. size
        res.status = 416
        return res:finish("range not satisfiable\n")
      end
      res.status = 206
      h["content-range"] = ("bytes %d-%d/%d"):format(from, from + count - 1, size)
    end -- a range set ("a-b,c-d") or another unit: the whole file, as allowed
  end
  h["content-length"] = tostring(count)
  if req.method == "HEAD" or count == 0 then return res:finish() end
  local sock = res._sock
  if sock._sendfile and not res.headers_sent and not res._buf then
    local head = head_text(res, nil) -- the framing: the Content-Length above
    res.headers_sent, res._sent = true, 0
    local ok, err = sock:flush()
    if ok then
      local n, serr = sock:_sendfile(fd, from, count, head) -- head and body together
      if n then res._sent = n else err = serr end
    end
    if err then res._failed = err; res._keep = false end
    return res:finish()
  end
  core._fs_seek(fd, "set", from)
  local left = count
  while left > 0 do
    local chunk = core._fs_fdread(fd, math.min(left, 65536))
    if not chunk or #chunk == 0 then break end
    left = left - #chunk
    if not res:write(chunk) then break end
  end
  return res:finish()
end

--- static(root [, opts]) -> a handler serving the files under root: GET
-- and HEAD, Content-Type by extension, Last-Modified / If-Modified-Since,
-- single Range requests, index.html for a directory; never anything
-- outside root (no "..", no link that leads out). opts.index (default
-- "index.html", false: none), opts.types (extension -> type, added to the
-- defaults). The body goes out with sendfile(2) on a plain TCP socket.
function M.static(root, opts)
  if type(root) ~= "string" then error("bad argument #1 to 'static' (string expected, got " .. type(root) .. ")", 2) end
  opts = opts or {}
  local index = opts.index == nil and "index.html" or opts.index
  local types = setmetatable(opts.types or {}, { __index = TYPES })
  local ttl = opts.cache_ttl or 1 -- seconds an open file is shared (0: never)
  local cache, ncached = {}, 0
  local real_root
  return function(req, res)
    if req.method ~= "GET" and req.method ~= "HEAD" then
      return 405, { allow = "GET, HEAD" }, "method not allowed\n"
    end
    if not real_root then
      local r, err = core._fs_realpath(root)
      if not r then return 500, nil, "static root: " .. tostring(err) .. "\n" end
      real_root = r
    end
    local path = unescape(req.path)
    if not path or path:find("%z") or path:find("\\", 1, true) then return 400, nil, "bad path\n" end
    local parts = {}
    for seg in path:gmatch("[^/]+") do
      if seg == ".." then return 403, nil, "forbidden\n" end
      if seg ~= "." then parts[#parts + 1] = seg end
    end
    local file = real_root .. "/" .. table.concat(parts, "/")
    local sendfile = res._sock._sendfile ~= nil
    -- on plain TCP an open file is shared for ttl seconds (sendfile reads
    -- at an offset of its own: the position is never moved); over TLS each
    -- request opens its own
    local e = sendfile and cache[file]
    if e and core.clock() - e.t < ttl then
      e.users = e.users + 1
    else
      -- one trip to a worker: the real path (links resolved), open, fstat
      local fd, real, kind, size, mtime = core._fs_openreal(file)
      if fd and kind == "directory" then
        core._fs_close(fd)
        fd = nil
        if index then fd, real, kind, size, mtime = core._fs_openreal(file:gsub("/$", "") .. "/" .. index) end
      end
      if not fd then return 404, nil, "not found\n" end
      -- a link anywhere on the way must not lead out of root
      if real ~= real_root and real:sub(1, #real_root + 1) ~= real_root .. "/" then
        core._fs_close(fd)
        return 403, nil, "forbidden\n"
      end
      if kind ~= "file" then core._fs_close(fd); return 404, nil, "not found\n" end
      e = { fd = fd, real = real, size = size, mtime = mtime, t = core.clock(), users = 1 }
      if sendfile and ttl > 0 then
        local old = cache[file]
        if old then old.stale = true; if old.users == 0 then core._fs_close(old.fd) end end
        if ncached >= 1000 then -- bounded: let the idle ones go
          for k, v in pairs(cache) do
            if v.users == 0 then core._fs_close(v.fd); cache[k] = nil; ncached = ncached - 1 end
          end
        end
        if not old then ncached = ncached + 1 end
        cache[file] = e
      else
        e.stale = true -- this request's alone
      end
    end
    local ok, served = pcall(serve_fd, req, res, e.fd, e.real, e.size, e.mtime, types)
    e.users = e.users - 1
    if e.users == 0 and (e.stale or core.clock() - e.t >= ttl) then
      core._fs_close(e.fd)
      if cache[file] == e then cache[file] = nil; ncached = ncached - 1 end
    end
    if not ok then error(served, 0) end
    return served
  end
end

return M
