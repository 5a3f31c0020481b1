-- socket.http request loop against a local keep-alive-less hello server.
--   lua5.4 bench/http_client.lua plain|green|green10 PORT SECONDS
-- plain: LuaSocket, sequential; green: the same loop after gh.patch();
-- green10: after gh.patch(), 10 green threads each running the loop.
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
package.cpath = "build/?.so;" .. package.cpath
local mode, port, secs = arg[1], tonumber(arg[2]), tonumber(arg[3]) or 3
local gh
if mode ~= "plain" then gh = require("greenhub").patch() end
local socket = require "socket"
local http = require "socket.http"
local url = "http://127.0.0.1:" .. port .. "/"
local n = 0
local t0 = socket.gettime()
local function loop()
  while socket.gettime() - t0 < secs do
    local body, code = http.request(url)
    assert(code == 200, tostring(code))
    n = n + 1
  end
end
if mode == "green10" then
  local ts = {}
  for i = 1, 10 do ts[i] = gh.spawn(loop) end
  for i = 1, 10 do ts[i]:wait() end
else
  loop()
end
print(n / (socket.gettime() - t0))
