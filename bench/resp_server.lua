-- A small RESP (redis protocol) server on greenhub for redis-benchmark:
-- PING, SET, GET, INCR, and CONFIG (answered empty, as redis-benchmark
-- asks for it). One green thread per connection, one receive per line.
--   lua5.4 bench/resp_server.lua PORT [coalesce]
local root = (debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/.."
package.path = root .. "/lua/?.lua;" .. package.path
package.cpath = root .. "/build/?.so;" .. package.cpath
local gh = require "greenhub"

local port = tonumber(arg[1]) or 16379
local coalesce = arg[2] == "coalesce"
local store = {}

local function bulk(v)
  if v == nil then return "$-1\r\n" end
  return "$" .. #v .. "\r\n" .. v .. "\r\n"
end

local function handle(c)
  c:setoption("tcp-nodelay", true) -- as redis-server does
  if coalesce then c:setoption("coalesce", true) end
  local args = {}
  while true do
    local line = c:receive("*l")
    if not line then return end
    local n = tonumber(line:match("^%*(%d+)$"))
    if not n then c:send("-ERR protocol\r\n") return end
    for i = 1, n do
      local len = tonumber((c:receive("*l") or ""):match("^%$(%d+)$"))
      if not len then return end
      local a = c:receive(len + 2)
      if not a then return end
      args[i] = a:sub(1, len)
    end
    local cmd = args[1]:upper()
    local reply
    if cmd == "PING" then reply = "+PONG\r\n"
    elseif cmd == "SET" then store[args[2]] = args[3]; reply = "+OK\r\n"
    elseif cmd == "GET" then reply = bulk(store[args[2]])
    elseif cmd == "INCR" then
      local v = (tonumber(store[args[2]]) or 0) + 1
      store[args[2]] = tostring(v); reply = ":" .. v .. "\r\n"
    elseif cmd == "CONFIG" then reply = "*0\r\n"
    else reply = "-ERR unknown command\r\n" end
    if not c:send(reply) then return end
    for i = n, 1, -1 do args[i] = nil end
  end
end

local server = assert(gh.listen("127.0.0.1", port))
io.stderr:write("resp_server on 127.0.0.1:" .. port .. (coalesce and " (coalescing sends)" or "") .. "\n")
gh.serve(server, handle)
