-- greenhub: green threads for Lua 5.4 on a C hub (epoll, timer heap, run
-- queue). This file is the public facade: the C core does the work, the few
-- conveniences that are naturally Lua live here and in greenhub/*.lua.
local core = require "greenhub.core"

local M = {}
for k, v in pairs(core) do
  if not k:match("^timeout_") then M[k] = v end
end

local pack, unpack = table.pack, table.unpack
local timeout_start, timeout_cancel = core.timeout_start, core.timeout_cancel

local function finish(tok, ok, ...)
  timeout_cancel(tok)
  if ok then return ... end
  local err = ...
  if err == tok then return nil, "timeout" end
  error(err, 0)
end

--- Run f(...) in the calling thread; if it has not returned after s
-- seconds it is interrupted at its blocking point and this returns
-- nil, "timeout". Other errors pass through unchanged.
function M.with_timeout(s, f, ...)
  if type(s) ~= "number" then
    error("bad argument #1 to 'with_timeout' (number expected, got " .. type(s) .. ")", 2)
  end
  if s ~= s then error("bad argument #1 to 'with_timeout' (seconds is NaN)", 2) end
  local tok = timeout_start(s)
  return finish(tok, pcall(f, ...))
end

M.pack, M.unpack = pack, unpack
return M
