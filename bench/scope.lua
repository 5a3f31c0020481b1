-- The cost of gh.scope on blocking calls: what a park costs inside a scope
-- (two enclosing scopes, deadlines far away) next to outside any.
--   lua5.4 bench/scope.lua switch plain|scope     -> ns per switch (queue ping-pong: every switch parks)
--   lua5.4 bench/scope.lua echo plain|scope PORT  -> the echo server (a scope per connection)
package.path = "lua/?.lua;" .. package.path
package.cpath = "build/?.so;" .. package.cpath
local gh = require "greenhub"
local test, mode = arg[1], arg[2]

local function scoped(f)
  if mode ~= "scope" then return f() end
  local outer <close> = gh.scope(3600)
  local inner <close> = gh.scope(7200)
  return f()
end

if test == "switch" then
  local N = 400000
  local q1, q2 = gh.queue(1), gh.queue(1)
  local a = gh.spawn(function() scoped(function() for i = 1, N do q1:put(i); q2:get() end end) end)
  local b = gh.spawn(function() scoped(function() for _ = 1, N do q2:put(q1:get()) end end) end)
  local t0 = gh.clock()
  a:wait(); b:wait()
  print(("%.1f"):format((gh.clock() - t0) / (2 * N) * 1e9))
elseif test == "echo" then
  local server = assert(gh.listen("127.0.0.1", tonumber(arg[3])))
  gh.serve(server, function(conn)
    scoped(function()
      while true do
        local line = conn:receive("*l")
        if not line then break end
        conn:send(line .. "\n")
      end
    end)
  end)
end
