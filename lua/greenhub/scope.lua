-- gh.scope: structured concurrency with deadlines; gh.testing: a virtual
-- clock. The deadline and the cancelled flag live in C (csrc/scope.c) and
-- the hub applies them where a thread parks: the sooner of a wait's own
-- deadline and its scopes' is its one timer. Children, errors and
-- cancelling are kept here.
local core = require "greenhub.core"

local M = {}

local MAIN = {}                                       -- the main thread's key
local current = setmetatable({}, { __mode = "k" })    -- thread -> innermost open scope
local function me() return core.current() or MAIN end
local function noop() end

local Scope = {}
Scope.__index = Scope
Scope.__name = "greenhub.scope"

local WEAK = { __mode = "k" }

-- the inner scopes of p, made on first use
local function subs_of(p)
  local subs = p.subs
  if not subs then
    subs = setmetatable({}, WEAK)
    p.subs = subs
  end
  return subs
end

local function seconds(v, what)
  if v == nil then return nil end
  if type(v) ~= "number" then error(("bad argument #1 to 'scope' (%s must be a number)"):format(what), 3) end
  if v ~= v then error(("bad argument #1 to 'scope' (%s is NaN)"):format(what), 3) end
  return v
end

--- scope([timeout]) / scope{timeout = s} / scope{deadline = gh.clock() + s}
-- -> sc: the calling thread's blocking calls, and its children's, are
-- bounded by the scope (and every enclosing one) until it is closed
function M.scope(opts)
  local timeout, deadline
  if type(opts) == "number" or opts == nil then
    timeout = seconds(opts, "timeout")
  elseif type(opts) == "table" then
    timeout, deadline = seconds(opts.timeout, "timeout"), seconds(opts.deadline, "deadline")
  else
    error("bad argument #1 to 'scope' (number or table expected, got " .. type(opts) .. ")", 2)
  end
  if timeout and timeout ~= math.huge then
    local d = core.clock() + math.max(timeout, 0)
    if not deadline or d < deadline then deadline = d end
  end
  if deadline == math.huge then deadline = nil end
  local who = me()
  local parent = current[who]
  local sc = setmetatable({
    c = core._scope_new(parent and parent.c, deadline), parent = parent, owner = who,
    children = {}, n = 0, subs = nil,
    closed = false, failed = false, err = nil, raised = false, cancelled = false,
  }, Scope)
  if parent then subs_of(parent)[sc] = true end
  core._scope_enter(sc.c)
  current[who] = sc
  return sc
end

-- the scope's own "timeout" raised in a child (a sleep cut short) is the
-- deadline passing, not the child's failure
local function is_failure(sc, err)
  if err == core.Killed then return false end
  if err == "timeout" and core._scope_expired(sc.c) then return false end
  return true
end

function Scope:_ended(t, ok, err)
  self.children[t] = nil
  self.n = self.n - 1
  if not ok and not self.failed and is_failure(self, err) then
    self.failed, self.err = true, err
    self:_cancel()
  end
  if self.n == 0 and self.waiter then
    local w = self.waiter
    self.waiter = nil
    w:send()
  end
end

-- kill every child but the running thread (a copy of the list: a dying
-- child leaves it); -> that list
local function kill_children(sc, running)
  local list = {}
  for t in pairs(sc.children) do list[#list + 1] = t end
  for _, t in ipairs(list) do
    if t ~= running and t:status() ~= "dead" then t:kill() end
  end
  return list
end

-- cancel: sticky in C (every later wait inside times out at once), the
-- children killed (not the caller), inner scopes too, the owner's current
-- wait cut short
function Scope:_cancel()
  if self.cancelled then return end
  self.cancelled = true
  core._scope_cancel(self.c)
  local running = core.current()
  if self.subs then for sub in pairs(self.subs) do sub:_cancel() end end
  kill_children(self, running)
  if self.owner ~= running and not self.closed then
    core._scope_poke(self.owner ~= MAIN and self.owner or nil)
  end
end

--- sc:spawn(f, ...) -> a thread handle; the child belongs to the scope
function Scope:spawn(f, ...)
  if self.closed then error("greenhub: spawn on a closed scope", 2) end
  if type(f) ~= "function" and not (getmetatable(f) or {}).__call then
    error("bad argument #1 to 'spawn' (function expected, got " .. type(f) .. ")", 2)
  end
  local sc, t = self, nil
  t = core.spawn(function(...)
    local r = table.pack(pcall(f, ...))
    sc:_ended(t, r[1], r[2])
    if not r[1] then error(r[2], 0) end
    return table.unpack(r, 2, r.n)
  end, ...)
  core._scope_enter(self.c, t)
  current[t] = self
  self.children[t] = true
  self.n = self.n + 1
  t:link(noop) -- observed: its error is the scope's to re-raise, not onerror's
  if self.cancelled then t:kill() end
  return t
end

--- sc:wait() -> true once every child ended; nil, "timeout" when the
-- deadline passed first; nil, "cancelled" after cancel; the first child
-- error is re-raised
function Scope:wait()
  while self.n > 0 and not self.failed and not core._scope_expired(self.c) do
    self.waiter = self.waiter or core.event()
    self.waiter:wait() -- in the scope: its deadline and cancel cut it short
  end
  -- children whose calls just failed with the deadline are runnable: let
  -- them end (and say what they got) before the owner goes on
  for _ = 1, 3 do
    if self.n == 0 or self.failed or self.cancelled then break end
    core.sleep(0)
  end
  if self.failed and not self.raised then
    self.raised = true
    error(self.err, 0)
  end
  if self.cancelled then return nil, "cancelled" end
  if self.n > 0 or core._scope_expired(self.c) then return nil, "timeout" end
  return true
end

--- sc:cancel(): cancel now (children killed, blocking calls in the scope
-- fail at once); sc:wait() then says nil, "cancelled"
function Scope:cancel()
  self:_cancel()
end

--- leaving the block (<close>): children still running are killed and
-- waited for; a child's error not yet re-raised is raised here
function Scope:close(err)
  if self.closed then return end
  if current[me()] ~= self then
    error("greenhub: a scope is closed by the thread that opened it, inner scopes first", 2)
  end
  self.closed = true
  local running = core.current()
  core._scope_cancel(self.c) -- what children do while dying fails at once
  local list = kill_children(self, running)
  core._scope_leave(self.c)
  current[self.owner] = self.parent
  if self.parent and self.parent.subs then self.parent.subs[self] = nil end
  for _, t in ipairs(list) do
    if t:status() ~= "dead" then pcall(t.wait, t) end
  end
  if err == nil and self.failed and not self.raised then
    self.raised = true
    error(self.err, 0)
  end
end
Scope.__close = Scope.close

function Scope:__tostring()
  return ("greenhub.scope (%d children%s): %p"):format(self.n,
    self.cancelled and ", cancelled" or "", self)
end

-- ---------------------------------------------------------------- testing

local VC = {}
VC.__index = VC
VC.__name = "greenhub.virtual_clock"

--- testing.virtual_clock() -> vc: gh.clock() and every timer follow
-- virtual time, which moves only by vc:advance(s) and, when nothing can
-- run and no fd is ready, jumps to the next timer
function M.virtual_clock()
  if core._vclock(true) then error("greenhub: a virtual clock is already on", 2) end
  return setmetatable({ on = true }, VC)
end

--- vc:advance(s): move time forward by s, firing due timers in order
-- (each at its own instant) and running the threads they wake
function VC:advance(s)
  if not self.on then error("greenhub: the virtual clock is closed", 2) end
  if type(s) ~= "number" or s ~= s or s < 0 then error("bad argument #1 to 'advance' (seconds >= 0 expected)", 2) end
  local target = core._vclock_now() + math.floor(s * 1e9 + 0.5) -- ns: exact
  while true do
    core.sleep(0) -- threads ready now run first (and arm their timers)
    local nxt = core._next_timer()
    if not nxt or nxt > target then break end
    core._vclock_set(nxt)
    core.sleep(0) -- a turn: due timers fire
    core.sleep(0) -- and the threads they woke run
  end
  core._vclock_set(target)
  core.sleep(0)
end

--- vc:close(): the real clock again (timers keep their distance)
function VC:close()
  if self.on then
    self.on = false
    core._vclock(false)
  end
end
VC.__close = VC.close

return M
