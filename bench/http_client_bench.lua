-- 1,000 sequential keep-alive GETs: greenhub.http's client against the same
-- loop with LuaSocket's socket.http under gh.patch(). Prints seconds each.
--   lua5.4 bench/http_client_bench.lua URL [N]
local root = (debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/.."
package.path = root .. "/lua/?.lua;" .. package.path
package.cpath = root .. "/build/?.so;" .. package.cpath
local gh = require("greenhub").patch()
local http = require "greenhub.http"
local url, n = arg[1], tonumber(arg[2]) or 1000
local function time(f)
  local t0 = gh.clock()
  for _ = 1, n do assert(f()) end
  return gh.clock() - t0
end
local c = http.client()
local a = time(function() local r = c:fetch(url); return r and r.status == 200 end)
local sh = require "socket.http"
local b = time(function() local body, code = sh.request(url); return code == 200 end)
print(("greenhub.http %.3f s, socket.http %.3f s, speedup %.2fx"):format(a, b, b / a))
