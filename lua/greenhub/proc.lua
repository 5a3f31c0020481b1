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
  local p = setmetatable({ pid = pid, child = core._child(pid) }, Proc)
  if i >= 0 then p.stdin = core.fdopen(i, "w") end
  if o >= 0 then p.stdout = core.fdopen(o, "r") end
  if e >= 0 then p.stderr = core.fdopen(e, "r") end
  return p
end

--- wait([timeout]) -> ok, "exit"|"signal", code (as os.execute), or nil,
-- "timeout"; nil, negative or math.huge: no limit. The child is a source
-- of the hub (its pidfd, or SIGCHLD): no polling.
function Proc:wait(timeout)
  local ok, how, code = self.child:wait(timeout)
  if how == nil and ok == nil then return nil, "timeout" end
  return ok, how, code
end

--- kill([sig]): signal the process; once it has been reaped, a no-op that
-- says so (its pid may belong to another process by then)
function Proc:kill(sig)
  return public("kill", -1, self.child.kill, self.child, sig)
end

--- close(): close the streams; the process is reaped in the background
-- (p:wait() still answers, with the status the reaper saw). A process
-- object dropped without wait or close is reaped the same way.
function Proc:close()
  for _, k in ipairs({ "stdin", "stdout", "stderr" }) do
    if self[k] then self[k]:close() end
  end
  self.child:orphan()
end

return M
