-- greenhub.tls: green TLS. LuaSec makes the contexts (ssl.newcontext and
-- its parameters); the connections are greenhub's own, in C (csrc/tls.c):
-- OpenSSL reads and writes the fd, want-read parks in the hub.
--   gh.tls.connect(host, port [, params])   handshake, SNI, verification
--   gh.tls.wrap(sock, params_or_context)    wrap a connected green socket
--   gh.tls.listen(host, port, params)       server; works with gh.serve
local core = require "greenhub.core"
local closing = require("greenhub.util").closing
local ok_ssl, ssl = pcall(require, "ssl")

local M = {}
M.available = ok_ssl

local function need_ssl()
  if not ok_ssl then error("greenhub.tls needs LuaSec (Debian package lua-sec)", 3) end
end

local CAFILE = "/etc/ssl/certs/ca-certificates.crt"

-- The TLS socket is a green socket of class "tls{client}" (csrc/tls.c):
-- receive patterns, send, timeouts, getpeername, shutdown, stats and
-- options as on TCP, with OpenSSL reading and writing the fd from C. The
-- few methods below make LuaSec's objects of what C hands over.
local TLS = debug.getregistry()["greenhub.tls{client}"].__index
local x509 = ok_ssl and require("ssl.x509")

local function cert(pem, err)
  if not pem then return nil, err end
  return x509.load(pem)
end

--- getpeercertificate([n]) / getlocalcertificate(): LuaSec certificates
function TLS:getpeercertificate(n) return cert(self:_peercert(n)) end
function TLS:getlocalcertificate() return cert(self:_localcert()) end

--- getpeerchain(): the peer's chain, LuaSec certificates
function TLS:getpeerchain()
  local pems, err = self:_peerchain()
  if not pems then return nil, err end
  for i, pem in ipairs(pems) do pems[i] = x509.load(pem) end
  return pems
end

--- info([field]): as LuaSec's (cipher, protocol, key, authentication,
-- encryption, mac, bits, algbits, export, compression)
function TLS:info(field)
  local str, bits, algbits, protocol = self:_info()
  if field == "compression" then return nil end
  local i = { bits = bits, algbits = algbits }
  if str then
    i.cipher, i.protocol, i.key, i.authentication, i.encryption, i.mac =
      str:match("^(%S+)%s+(%S+)%s+Kx=(%S+)%s+Au=(%S+)%s+Enc=(%S+)%s+Mac=(%S+)")
    i.export = str:match("%sexport%s*$") ~= nil
  end
  if protocol then i.protocol = protocol end
  if field then return i[field] end
  return next(i) and i or nil
end

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
-- first use, or call :dohandshake()); host enables SNI and name checks.
-- sock is left closed (its fd now belongs to the TLS socket).
function M.wrap(sock, params, host, handshake_timeout)
  need_ssl()
  local ctx, err = context(params or {}, "client")
  if not ctx then return nil, err end
  -- (a LuaSec context given as it is: its own mode says which side)
  local server
  if type(params) == "table" then server = params.mode == "server" end
  local check = false -- (a server never checks: _tlswrap ignores it there)
  if host then
    local verify = type(params) == "table" and params.verify or "peer"
    check = verify ~= "none" and (type(params) ~= "table" or params.checkhost ~= false)
  end
  return core._tlswrap(sock, ctx, server, host, check, handshake_timeout)
end

--- connect(host, port [, params]) -> TLS socket after the handshake, or nil, err
function M.connect(host, port, params)
  need_ssl()
  params = params or {}
  local sock, err = core.tcp()
  if not sock then return nil, err end
  if params.timeout then sock:settimeout(params.timeout, "t") end
  -- interrupted (gh.with_timeout, a kill) in the connect or the
  -- handshake: the connection closes now, not when the collector finds it
  local ok, e = closing(sock, sock.connect, sock, host, port)
  if not ok then sock:close(); return nil, e end
  local t, werr = M.wrap(sock, params, host, params.timeout)
  if not t then sock:close(); return nil, werr end
  local hs, herr = closing(t, t.dohandshake, t)
  if not hs then t:close(); return nil, herr end
  return t
end

local Server = {}
Server.__index = Server
Server.__name = "greenhub.tls.server"
function Server:accept()
  local c, err = self.sock:accept()
  if not c then return nil, err end
  local t, e = core._tlswrap(c, self.ctx, true, nil, false, self.handshake_timeout)
  if not t then c:close(); return nil, e end
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
