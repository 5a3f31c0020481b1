-- greenhub.proc: signals and child processes for the facade.
--   gh.signal(sig, handler) -> handle (handle:cancel())
--   gh.popen(argv [, opts]) -> proc with proc.stdin/.stdout/.stderr green
--   streams, proc:wait() -> ok, "exit"|"signal", code, proc:kill([sig])
local core = require "greenhub.core"

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
  local num = core._signal_watch(sig, true)
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
  local pid, i, o, e = core._spawn(argv, opts)
  if not pid then return nil, i end
  local p = setmetatable({ pid = pid }, Proc)
  if i >= 0 then p.stdin = core.fdopen(i, "w") end
  if o >= 0 then p.stdout = core.fdopen(o, "r") end
  if e >= 0 then p.stderr = core.fdopen(e, "r") end
  p.pidfd = core._pidfd(pid)
  return p
end

--- wait([timeout]) -> ok, "exit"|"signal", code (as os.execute), or nil, "timeout"
function Proc:wait(timeout)
  if self.status then return table.unpack(self.status, 1, 3) end
  if timeout and (timeout < 0 or timeout == math.huge) then timeout = nil end
  local deadline = timeout and core.clock() + timeout
  local backoff = 0.001
  while true do
    local ok, how, code = core._waitpid(self.pid)
    if how then
      self.status = { ok, how, code }
      if self.pidfd then core._closefd(self.pidfd); self.pidfd = nil end
      return ok, how, code
    end
    local left = deadline and deadline - core.clock()
    if left and left <= 0 then return nil, "timeout" end
    if self.pidfd then
      core.trampoline(self.pidfd, "r", left)
    else -- no pidfd (old kernel): poll with a growing sleep
      core.sleep(left and math.min(backoff, left) or backoff)
      backoff = math.min(backoff * 2, 0.05)
    end
  end
end

function Proc:kill(sig) return core._kill(self.pid, sig) end

function Proc:close()
  for _, k in ipairs({ "stdin", "stdout", "stderr" }) do
    if self[k] then self[k]:close() end
  end
end

return M
