-- Line-based chat: each line a client sends goes to every other client.
--   lua5.4 examples/chat.lua [port]      then: nc 127.0.0.1 7001 (twice)
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
package.cpath = "build/?.so;" .. package.cpath
local gh = require "greenhub"

local port = tonumber(arg[1]) or 7001
local server = assert(gh.listen("127.0.0.1", port))
local clients = {}

local function broadcast(from, msg)
  for c in pairs(clients) do
    if c ~= from then
      c:settimeout(1) -- a client that stops reading must not stall the room
      if not c:send(msg) then clients[c] = nil; c:close() end
    end
  end
end

print("chat server on 127.0.0.1:" .. port)
gh.serve(server, function(conn)
  local ip, p = conn:getpeername()
  local name = ip .. ":" .. p
  clients[conn] = true
  broadcast(conn, "* " .. name .. " joined\n")
  while true do
    local line = conn:receive("*l")
    if not line then break end
    broadcast(conn, name .. ": " .. line .. "\n")
  end
  clients[conn] = nil
  broadcast(conn, "* " .. name .. " left\n")
end)
