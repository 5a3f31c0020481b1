-- 1,000 sequential keep-alive GETs: greenhub.http's client against the same
-- loop with LuaSocket's socket.http under gh.patch(). The two alternate in
-- rounds of 50 (so a noisy moment hits both); prints seconds each.
--   lua5.4 bench/http_client_bench.lua URL [N]
local root = (debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/.."
package.path = root .. "/lua/?.lua;" .. package.path
package.cpath = root .. "/build/?.so;" .. package.cpath
local gh = require("greenhub").patch()
local http = require "greenhub.http"
local sh = require "socket.http"
local url, n = arg[1], tonumber(arg[2]) or 1000
local c = http.client()
local function ours() local r = c:fetch(url); return r and r.status == 200 and r.body == "Hello, World!" end
local function theirs() local body, code = sh.request(url); return code == 200 and body == "Hello, World!" end
local function time(f, k)
  local t0 = gh.clock()
  for _ = 1, k do assert(f(), "a request failed") end
  return gh.clock() - t0
end
time(ours, 20); time(theirs, 20) -- warm both
local a, b, round = 0, 0, 50
for _ = 1, math.ceil(n / round) do
  a = a + time(ours, round)
  b = b + time(theirs, round)
end
print(("greenhub.http %.5f s, socket.http %.5f s, speedup %.2fx"):format(a, b, b / a))
