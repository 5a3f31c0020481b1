-- greenhub.coroutine: a drop-in `coroutine` table whose coroutines let the
-- hub's yields pass through. A blocking greenhub call inside one of them
-- (a generator reading a socket, say) suspends the whole green thread; the
-- user's own yields still reach the user's own resume untouched.
-- gh.patch() installs it as the global `coroutine`.
local core = require "greenhub.core"

local raw = coroutine
local wrapped, MARK = core._coroutine()
local rawcreate, rawresume, rawyield, rawstatus = raw.create, raw.resume, raw.yield, raw.status
local pack, unpack = table.pack, table.unpack

local M = {}
for k, v in pairs(raw) do M[k] = v end

function M.create(f)
  local co = rawcreate(f)
  wrapped[co] = true
  return co
end

-- The inner coroutine yielded the hub's marker: yield it further up (to an
-- enclosing gh.coroutine or to the hub), then resume the inner one with
-- whatever the hub resumed us with.
local function pass(co, ok, first, ...)
  if ok and first == MARK and rawstatus(co) == "suspended" then
    return pass(co, rawresume(co, rawyield(MARK)))
  end
  return ok, first, ...
end

function M.resume(co, ...)
  return pass(co, rawresume(co, ...))
end

function M.wrap(f)
  local co = M.create(f)
  return function(...)
    local r = pack(pass(co, rawresume(co, ...)))
    if not r[1] then
      local err = r[2]
      if type(err) == "string" then error(err, 2) end
      error(err, 0)
    end
    return unpack(r, 2, r.n)
  end
end

return M
