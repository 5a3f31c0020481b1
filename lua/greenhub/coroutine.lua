-- greenhub.coroutine: a drop-in `coroutine` table whose resume lets the
-- hub's yields pass through. A blocking greenhub call inside a coroutine
-- resumed this way (a generator reading a socket, say) suspends the whole
-- green thread; the user's own yields still reach the user's own resume
-- untouched. gh.patch() installs it as the global `coroutine`.
local core = require "greenhub.core"

local raw = coroutine
-- resumers: weak coroutine -> the coroutine resuming it through this
-- module (the hub checks the whole chain before it lets a call block)
local resumers, MARK = core._coroutine()
local rawcreate, rawresume, rawyield, rawstatus = raw.create, raw.resume, raw.yield, raw.status
local rawclose, running = raw.close, raw.running
local pack, unpack = table.pack, table.unpack

local M = {}
for k, v in pairs(raw) do M[k] = v end

M.create = rawcreate

-- The inner coroutine yielded the hub's marker: yield it further up (to an
-- enclosing gh.coroutine or to the hub), then resume the inner one with
-- whatever the hub resumed us with.
local function pass(co, ok, first, ...)
  if ok and first == MARK and rawstatus(co) == "suspended" then
    return pass(co, rawresume(co, rawyield(MARK)))
  end
  resumers[co] = nil
  return ok, first, ...
end

function M.resume(co, ...)
  if rawstatus(co) == "suspended" then resumers[co] = running() end
  return pass(co, rawresume(co, ...))
end

-- As Lua 5.4's coroutine.wrap: an error closes the coroutine's pending
-- to-be-closed variables, and a string error gets the caller's position.
function M.wrap(f)
  local co = rawcreate(f)
  return function(...)
    local r = pack(M.resume(co, ...))
    if not r[1] then
      local err = r[2]
      if rawstatus(co) == "dead" then
        local ok, cerr = rawclose(co)
        if not ok then err = cerr end
      end
      if type(err) == "string" then error(err, 2) end
      error(err, 0)
    end
    return unpack(r, 2, r.n)
  end
end

return M
