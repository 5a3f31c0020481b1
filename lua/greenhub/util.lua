-- greenhub.util: small helpers shared by the Lua layers (not API).
local M = {}

local pack, unpack = table.pack, table.unpack
local getinfo = debug.getinfo

-- Is this chunk one of greenhub's own Lua files (or C)?
local function ours(src)
  return src == "=[C]" or src:match("greenhub%.lua$") or src:match("greenhub/[%w_]+%.lua$")
end

--- The level (as error() counts from the function that calls
-- user_level) of the first function outside greenhub: the user's line.
function M.user_level()
  local level = 2
  while true do
    local info = getinfo(level + 1, "S")
    if not info then return level end
    if not ours(info.source) then return level end
    level = level + 1
  end
end

--- public(name, shift, f, ...): call internal f; an argument error it
-- raises is reported as `name`'s, with argument numbers moved by shift,
-- at the user's line
function M.public(name, shift, f, ...)
  local r = pack(pcall(f, ...))
  if r[1] then return unpack(r, 2, r.n) end
  local e = r[2]
  if type(e) == "string" then
    local n, rest = e:match("^bad argument #(%-?%d+) to '[^']*' (.*)$")
    if n then
      error(("bad argument #%d to '%s' %s"):format(tonumber(n) + shift, name, rest), M.user_level())
    end
  end
  error(e, 0)
end

local function closed_on_error(obj, done, ...)
  if not done then obj:close(); error((...), 0) end
  return ...
end

--- closing(obj, f, ...): f(...)'s results; if f raises (a kill, a
-- gh.with_timeout, a source's error), obj is closed first and the same
-- error goes on -- a socket or response made for the call is not left
-- open until the collector finds it
function M.closing(obj, f, ...)
  return closed_on_error(obj, pcall(f, ...))
end

return M
