-- gh.tpool: Lua work on other cores. call(modname, funcname, ...) runs
-- require(modname)[funcname](...) in a pool of OS threads, each with a
-- lua_State of its own (kept: modules stay loaded between calls). The
-- calling green thread parks meanwhile; others run. Arguments and results
-- are copied (nil, booleans, numbers, strings, tables of those; anything
-- else raises); an error raised there is raised here with its message.
local core = require "greenhub.core"

local M = {}

--- call(modname, funcname, ...) -> the function's results
function M.call(modname, funcname, ...)
  if type(modname) ~= "string" then
    error("bad argument #1 to 'call' (string expected, got " .. type(modname) .. ")", 2)
  end
  if type(funcname) ~= "string" then
    error("bad argument #2 to 'call' (string expected, got " .. type(funcname) .. ")", 2)
  end
  return core._tpool_call(modname, funcname, ...)
end

--- size([n]) -> the most threads running calls at once (default 4); n sets it
function M.size(n)
  if n ~= nil and math.type(n) ~= "integer" then error("bad argument #1 to 'size' (integer expected)", 2) end
  return require("greenhub.util").public("size", 0, core._tpool_size, n)
end

return M
