-- greenhub.pg: PostgreSQL without blocking the hub (libpq's asynchronous
-- API, csrc/pg.c). See docs/pg.md.
local ok, core = pcall(require, "greenhub.pgcore")
if not ok then
  error("greenhub.pg needs greenhub.pgcore, which is built only where libpq's header is "
        .. "(Debian: apt-get install libpq-dev, then make; or luarocks make "
        .. "rockspec/greenhub-pg-scm-1.rockspec)\n" .. tostring(core), 2)
end
local gh = require "greenhub.core"

local M = { null = core.null, libversion = core.libversion }

-- an interrupted query's connection is recovered (cancel, drain) in a
-- thread of its own, holding the connection's turn
core._env.recover = function(c)
  gh.spawn_n(function() c:_recover() end)
end

local CONNECT_TIMEOUT = 30

local function is_numeric(h)
  return h:match("^%d+%.%d+%.%d+%.%d+$") or h:find(":", 1, true)
end

local function split(v)
  local out = {}
  for x in (v .. ","):gmatch("([^,]*),") do out[#out + 1] = x end
  return out
end

-- every host name to its addresses (libpq would ask getaddrinfo on the
-- hub's thread): a name with several addresses becomes as many entries of
-- host (kept for TLS and GSS) with hostaddr set, tried in order by libpq
-- as it would have; a per-host port list is stretched to match
local function resolve_hosts(opts, timeout)
  if not opts.host or opts.hostaddr then return true end
  local hosts, ports = split(opts.host), opts.port and split(opts.port)
  if ports and #ports ~= #hosts then ports = nil end -- one port for all (or libpq's error)
  local H, A, P, any = {}, {}, {}, false
  for i, h in ipairs(hosts) do
    local addrs
    if h == "" or h:sub(1, 1) == "/" or h:sub(1, 1) == "@" or is_numeric(h) then
      addrs = { "" }
    else
      local list, err = gh.getaddrinfo(h, "any", timeout)
      if not list or not list[1] then
        return nil, ("could not translate host name \"%s\" to address: %s"):format(h, err or "host not found")
      end
      addrs, any = {}, true
      local seen = {}
      for _, a in ipairs(list) do
        if not seen[a.addr] then seen[a.addr] = true; addrs[#addrs + 1] = a.addr end
      end
    end
    for _, a in ipairs(addrs) do
      H[#H + 1], A[#A + 1] = h, a
      if ports then P[#P + 1] = ports[i] end
    end
  end
  if any then
    opts.host, opts.hostaddr = table.concat(H, ","), table.concat(A, ",")
    if ports then opts.port = table.concat(P, ",") end
  end
  return true
end

--- connect(conninfo [, timeout]) -> connection | nil, message
-- conninfo: a libpq string ("host=... dbname=...", a postgresql:// URI)
-- or a table of its keywords.
function M.connect(conninfo, timeout)
  local opts
  if type(conninfo) == "table" then
    opts = {}
    for k, v in pairs(conninfo) do
      if type(k) ~= "string" then error("greenhub.pg.connect: option names must be strings", 2) end
      opts[k] = tostring(v)
    end
  elseif type(conninfo) == "string" then
    local err
    opts, err = core._parse(conninfo)
    if not opts then return nil, err end
  else
    error("greenhub.pg.connect: conninfo must be a string or a table", 2)
  end
  if timeout == nil then timeout = tonumber(opts.connect_timeout) or CONNECT_TIMEOUT end
  if type(timeout) ~= "number" or timeout ~= timeout then
    error("greenhub.pg.connect: timeout must be a number", 2)
  end
  local t0 = gh.clock and gh.clock() or nil
  local okr, err = resolve_hosts(opts, timeout)
  if not okr then return nil, err end
  if t0 then timeout = math.max(0, timeout - (gh.clock() - t0)) end
  local keys, vals = {}, {}
  for k, v in pairs(opts) do keys[#keys + 1] = k; vals[#vals + 1] = v end
  return core._connect(keys, vals, timeout)
end

local C = core.methods

--- c:listen(channel): LISTEN on a channel (any name, quoted here)
function C:listen(channel)
  local q = self:escape_identifier(channel)
  if not q then return nil, "bad channel name" end
  return self:query("LISTEN " .. q)
end

function C:unlisten(channel)
  local q = channel == nil and "*" or self:escape_identifier(channel)
  return self:query("UNLISTEN " .. q)
end

-- ---------------------------------------------------------------- pool

local Pool = {}
Pool.__index = Pool

--- pool{conninfo = ..., size = 10 [, timeout = s] [, statement_cache = n]} : connections made on
-- demand, at most size at once; queries borrow one each.
function M.pool(opts)
  if type(opts) ~= "table" then error("greenhub.pg.pool: expects a table of options", 2) end
  local conninfo = opts.conninfo or opts[1]
  if type(conninfo) ~= "string" and type(conninfo) ~= "table" then
    error("greenhub.pg.pool: conninfo is required", 2)
  end
  local size = opts.size or 10
  if math.type(size) ~= "integer" or size < 1 then error("greenhub.pg.pool: size must be a positive integer", 2) end
  return setmetatable({
    conninfo = conninfo, size = size, timeout = opts.timeout, statement_cache = opts.statement_cache,
    sem = gh.semaphore(size), idle = {}, closed = false,
  }, Pool)
end

--- pool:acquire([timeout]) -> connection | nil, message [, sqlstate]
function Pool:acquire(timeout)
  if self.closed then return nil, "closed" end
  timeout = timeout or self.timeout
  local ok, err = self.sem:acquire(timeout)
  if not ok then return nil, err end
  local idle = self.idle
  while #idle > 0 do
    local db = table.remove(idle)
    local st = db:status()
    if st == "ok" or st == "busy" then return db end -- busy: being recovered; its turn comes
    db:close()
  end
  local db, cerr = M.connect(self.conninfo, timeout)
  if not db then
    self.sem:release()
    return nil, cerr, "08001"
  end
  if self.statement_cache then db:statement_cache(self.statement_cache) end
  return db
end

--- pool:release(db): back in the pool (a broken one is closed)
function Pool:release(db)
  local st = db:status()
  if self.closed or (st ~= "ok" and st ~= "busy") or #self.idle >= self.size then
    db:close()
  else
    self.idle[#self.idle + 1] = db
  end
  self.sem:release()
end

local function releaser(pool, db)
  return setmetatable({}, { __close = function() pool:release(db) end })
end

--- pool:query(sql, ...): as connection:query, on a borrowed connection
function Pool:query(sql, ...)
  local db, err, state = self:acquire()
  if not db then return nil, err, state end
  local _ <close> = releaser(self, db)
  return db:query(sql, ...)
end

--- pool:close(): idle connections close now, borrowed ones when returned
function Pool:close()
  self.closed = true
  for i = #self.idle, 1, -1 do self.idle[i]:close(); self.idle[i] = nil end
end

return M
