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

--- imap(f, iterable) -> iterator over (i, f(item_i)...) in input order,
-- ipairs-shaped so that results starting with nil come through:
--   for i, a, b in p:imap(f, items) do ... end
-- Up to `size` calls run at once and at most `size` finished results wait
-- for the consumer (memory is bounded by the pool size). An error in an
-- item, or in the iterator producing items, is raised when the iteration
-- reaches it. Leaving the loop early (break, error) stops the feeder and
-- kills the calls still running. iterable: an array or an iterator.
function Pool:imap(f, iterable)
  check_callable(f, "imap")
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
  local handles = core.queue(self.size)
  local feeder = core.spawn(function()
    while true do
      local ok, more, item = pcall(nextitem)
      if not ok then handles:put({ false, more, n = 2 }); break end
      if not more then break end
      handles:put(self:spawn(call, item))
    end
    handles:close()
  end)
  local index, done = 0, false
  local function stop()
    if done then return end
    done = true
    feeder:kill()
    if not handles:closed() then handles:close() end
    while handles:size() > 0 do
      local t = handles:get()
      if type(t) ~= "table" then t:kill() end
    end
  end
  local function step()
    if done then return nil end
    local t = handles:get()
    if t == nil then done = true; feeder:wait(); return nil end
    local r = type(t) == "table" and t or t:wait()
    index = index + 1
    if not r[1] then stop(); error(r[2], 0) end
    return index, unpack(r, 2, r.n)
  end
  -- the generic for's closing value: a break or an error in the loop body
  -- stops the remaining work
  return step, nil, nil, setmetatable({}, { __close = stop })
end

return new
