-- greenhub.proc: signals and child processes for the facade.
--   gh.signal(sig, handler) -> handle (handle:cancel())
--   gh.popen(argv [, opts]) -> proc with proc.stdin/.stdout/.stderr green
--   streams, proc:wait() -> ok, "exit"|"signal", code, proc:kill([sig])
local core = require "greenhub.core"
local public = require("greenhub.util").public

local M = {}

-- signal number -> list of handler entries, in registration order
local handlers = {}

core._signal_dispatcher(function(sig)
  local list = handlers[sig]
  if not list then return end
  for _, h in ipairs(list) do
    if h.active then core.spawn_n(h.f, sig) end
  end
end)

function M.signal(sig, f)
  if type(f) ~= "function" then
    error("bad argument #2 to 'signal' (function expected, got " .. type(f) .. ")", 2)
  end
  local num = public("signal", 0, core._signal_watch, sig, true)
  local list = handlers[num] or {}
  handlers[num] = list
  local h = { f = f, active = true, sig = num }
  list[#list + 1] = h
  function h.cancel()
    if not h.active then return end
    h.active = false
    for i, x in ipairs(list) do if x == h then table.remove(list, i) break end end
    if #list == 0 then handlers[num] = nil; core._signal_watch(num, false) end
  end
  return setmetatable(h, { __index = { cancel = function(self) self.cancel() end },
    __tostring = function() return "greenhub.signal (" .. num .. ")" end })
end

local Proc = {}
Proc.__index = Proc
Proc.__name = "greenhub.process"

function M.popen(argv, opts)
  if type(argv) == "string" then
    if not (opts and opts.shell) then
      error("bad argument #1 to 'popen' (argv table expected; pass {shell = true} to run a command line)", 2)
    end
    argv = { "/bin/sh", "-c", argv }
  end
  if type(argv) ~= "table" then
    error("bad argument #1 to 'popen' (table expected, got " .. type(argv) .. ")", 2)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error("bad argument #2 to 'popen' (table expected, got " .. type(opts) .. ")", 2)
  end
  local pid, i, o, e = public("popen", 0, core._spawn, argv, opts)
  if not pid then return nil, i end
  local p = setmetatable({ pid = pid }, Proc)
  if i >= 0 then p.stdin = core.fdopen(i, "w") end
  if o >= 0 then p.stdout = core.fdopen(o, "r") end
  if e >= 0 then p.stderr = core.fdopen(e, "r") end
  p.pidfd = core._pidfd(pid)
  return p
end

-- Reap pid (waiting on its pidfd when there is one), then close the
-- pidfd. Returns the status { ok, how, code } (or { nil, err } when pid
-- is not our child), or nil when the timeout ran out first.
local function reap(pid, pidfd, timeout)
  local deadline = timeout and core.clock() + timeout
  local backoff = 0.001
  while true do
    local r = table.pack(core._waitpid(pid))
    if r.n > 0 then
      if pidfd then core._closefd(pidfd) end
      return r
    end
    local left = deadline and deadline - core.clock()
    if left and left <= 0 then return nil end
    if pidfd then
      core.trampoline(pidfd, "r", left)
    else -- no pidfd (old kernel): poll with a growing sleep
      core.sleep(left and math.min(backoff, left) or backoff)
      backoff = math.min(backoff * 2, 0.05)
    end
  end
end

--- wait([timeout]) -> ok, "exit"|"signal", code (as os.execute), or nil,
-- "timeout"; nil, negative or math.huge: no limit
function Proc:wait(timeout)
  if not self.status then
    if timeout and (timeout < 0 or timeout == math.huge) then timeout = nil end
    if self.reaping then -- the background reaper has it: wait for its word
      local deadline = timeout and core.clock() + timeout
      while not self.status do
        if deadline and core.clock() >= deadline then return nil, "timeout" end
        core.sleep(0.005)
      end
    else
      local st = reap(self.pid, self.pidfd, timeout)
      if not st then return nil, "timeout" end
      self.status, self.pidfd = st, nil
    end
  end
  return table.unpack(self.status, 1, self.status.n)
end

--- kill([sig]): signal the process; once it has been reaped, a no-op that
-- says so (its pid may belong to another process by then)
function Proc:kill(sig)
  if self.status then return nil, "No such process" end
  if self.pidfd then return public("kill", -1, core._pidfd_kill, self.pidfd, sig) end
  return public("kill", -1, core._kill, self.pid, sig)
end

-- Nobody will wait any more: reap in the background so no zombie stays.
local function reap_later(self)
  if self.status or self.reaping then return end
  self.reaping = true
  local pid, pidfd = self.pid, self.pidfd
  core.spawn_n(function()
    local st = reap(pid, pidfd)
    self.status, self.pidfd = self.status or st, nil
  end)
end

--- close(): close the streams; the process is reaped in the background
-- (p:wait() still answers, with the status the reaper saw)
function Proc:close()
  for _, k in ipairs({ "stdin", "stdout", "stderr" }) do
    if self[k] then self[k]:close() end
  end
  reap_later(self)
end

-- a process object dropped without wait or close: reap it, free its pidfd
function Proc:__gc()
  if self.status or self.reaping then return end
  local pid, pidfd = self.pid, self.pidfd
  if select("#", core._waitpid(pid)) > 0 then
    if pidfd then core._closefd(pidfd) end
    return
  end
  pcall(core.spawn_n, reap, pid, pidfd)
end

return M
