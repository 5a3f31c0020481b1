-- greenhub.pool: a green pool bounds how many threads run at once.
--   local p = gh.pool(10); p:spawn(f, ...); p:waitall()
local core = require "greenhub.core"

local pack, unpack = table.pack, table.unpack
local Pool = {}
Pool.__index = Pool
Pool.__name = "greenhub.pool"

local function new(size)
  size = size or 1000
  if math.type(size) ~= "integer" or size < 1 then
    error("bad argument #1 to 'pool' (positive integer expected)", 2)
  end
  return setmetatable({ size = size, nrun = 0, waiting = {}, idle = nil }, Pool)
end

function Pool:__tostring()
  return string.format("greenhub.pool (%d/%d running)", self.nrun, self.size)
end

-- Block until a slot is free, then take it. A waiter killed meanwhile
-- removes itself and passes on a wake-up it had already received.
local function take_slot(self)
  while self.nrun >= self.size do
    local ev = core.event()
    local w = self.waiting
    w[#w + 1] = ev
    local ok, err = pcall(ev.wait, ev)
    if not ok then
      for i = 1, #w do if w[i] == ev then table.remove(w, i); break end end
      if ev:ready() and self.nrun < self.size and w[1] then table.remove(w, 1):send() end
      error(err, 0)
    end
  end
  self.nrun = self.nrun + 1
end

local function free_slot(self)
  self.nrun = self.nrun - 1
  local w = self.waiting
  if #w > 0 and self.nrun < self.size then table.remove(w, 1):send() end
  if self.nrun == 0 and self.idle then
    local e = self.idle
    self.idle = nil
    e:send()
  end
end

local function runner(self, f, ...)
  local r = pack(pcall(f, ...))
  free_slot(self)
  if not r[1] then error(r[2], 0) end
  return unpack(r, 2, r.n)
end

local function check_callable(f, fname)
  if type(f) ~= "function" and not (getmetatable(f) or {}).__call then
    error("bad argument #1 to '" .. fname .. "' (function expected, got " .. type(f) .. ")", 3)
  end
end

--- spawn(f, ...) -> thread; blocks while `size` threads are running
function Pool:spawn(f, ...)
  check_callable(f, "spawn")
  take_slot(self)
  return core.spawn(runner, self, f, ...)
end

function Pool:spawn_n(f, ...)
  check_callable(f, "spawn_n")
  take_slot(self)
  core.spawn_n(runner, self, f, ...)
end

--- waitall(): until no thread of the pool is running
function Pool:waitall()
  while self.nrun > 0 do
    self.idle = self.idle or core.event()
    self.idle:wait()
  end
end

function Pool:running() return self.nrun end
function Pool:free() return math.max(self.size - self.nrun, 0) end

--- resize(n): later spawns see the new bound; growing wakes waiters
function Pool:resize(n)
  if math.type(n) ~= "integer" or n < 1 then
    error("bad argument #1 to 'resize' (positive integer expected)", 2)
  end
  self.size = n
  local w = self.waiting
  for _ = 1, math.min(#w, n - self.nrun) do table.remove(w, 1):send() end
end

--- imap(f, iterable) -> iterator over f(item) results in input order, with
-- up to `size` calls running at once. An error in one item is raised when
-- the iteration reaches that item. iterable: an array or an iterator.
function Pool:imap(f, iterable)
  local nextitem
  if type(iterable) == "table" then
    local i, n = 0, #iterable
    nextitem = function()
      if i >= n then return false end
      i = i + 1
      return true, iterable[i]
    end
  elseif type(iterable) == "function" then
    nextitem = function()
      local v = iterable()
      if v == nil then return false end
      return true, v
    end
  else
    error("bad argument #2 to 'imap' (table or function expected)", 2)
  end
  -- errors travel as values, so they surface at their item (and are not
  -- reported as unwatched errors before the iteration gets there)
  local function call(item) return pack(pcall(f, item)) end
  local handles = core.queue()
  local feeder = core.spawn(function()
    while true do
      local more, item = nextitem()
      if not more then break end
      handles:put(self:spawn(call, item))
    end
    handles:close()
  end)
  return function()
    local t = handles:get()
    if t == nil then feeder:wait(); return nil end
    local r = t:wait()
    if not r[1] then error(r[2], 0) end
    return unpack(r, 2, r.n)
  end
end

return new
