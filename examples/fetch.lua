-- Concurrent fetch with unmodified socket.http: gh.patch() makes LuaSocket
-- green, so 20 requests to a slow local server overlap instead of queueing.
--   lua5.4 examples/fetch.lua [n] [delay]
-- the repository's lua/ and build/, found from this file (runs from anywhere)
local root = (debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/.."
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. "/build/?.so;" .. package.cpath
local gh = require("greenhub").patch()
local http = require "socket.http" -- LuaSocket's own module, unchanged

local n, delay = tonumber(arg[1]) or 20, tonumber(arg[2]) or 0.2

-- a local server whose every response takes `delay` seconds
local server = assert(gh.listen("127.0.0.1", 0))
local _, port = server:getsockname()
gh.spawn(gh.serve, server, function(conn)
  while true do
    local line = conn:receive("*l")
    if not line then return end
    repeat local h = conn:receive("*l") until not h or h == ""
    gh.sleep(delay)
    local body = "you asked for " .. line:match("^%u+ (%S+)")
    conn:send("HTTP/1.1 200 OK\r\nContent-Length: " .. #body .. "\r\n\r\n" .. body)
  end
end)

local t0 = gh.clock()
local pool = gh.pool(n)
local results = {}
for i = 1, n do
  results[i] = pool:spawn(function()
    local s = gh.clock()
    local body, code = http.request(("http://127.0.0.1:%d/page/%d"):format(port, i))
    return code, body, gh.clock() - s
  end)
end
for i, t in ipairs(results) do
  local code, body, dt = t:wait()
  print(("%3d  %s  %-24s %6.1f ms"):format(i, tostring(code), body, dt * 1000))
end
print(("%d requests, %.0f ms each on the server, %.0f ms in total"):format(
  n, delay * 1000, (gh.clock() - t0) * 1000))
server:close()
