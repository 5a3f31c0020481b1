-- WebSocket echo server for make bench: http.serve + websocket.accept.
--   lua5.4 bench/ws_server.lua PORT
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
package.cpath = "build/?.so;" .. package.cpath
local gh = require "greenhub"
local http = require "greenhub.http"
local websocket = require "greenhub.websocket"
local l = assert(gh.listen("127.0.0.1", tonumber(arg[1]), 1024))
http.serve(l, function(req, res)
  local ws = websocket.accept(req, res)
  if not ws then return end
  while true do
    local m, k = ws:receive()
    if not m then return end
    ws:send(m, k)
  end
end, { max_connections = 10000 })
