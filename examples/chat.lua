-- Line-based chat: each line a client sends goes to every other client.
--   lua5.4 examples/chat.lua [port]      then: nc 127.0.0.1 7001 (twice)
-- the repository's lua/ and build/, found from this file (runs from anywhere)
local root = (debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/.."
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. "/build/?.so;" .. package.cpath
local gh = require "greenhub"

local port = tonumber(arg[1]) or 7001
local server = assert(gh.listen("127.0.0.1", port))
local clients = {}

local function broadcast(from, msg)
  for c in pairs(clients) do
    if c ~= from then
      -- a client that stops reading must not stall the room; a bound on
      -- this send only (a socket timeout would also cut the recipient's
      -- own receive, dropping idle clients)
      if not gh.with_timeout(1, c.send, c, msg) then clients[c] = nil; c:close() end
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
