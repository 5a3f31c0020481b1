-- HTTP/1.1 keep-alive hello world, written the natural way: one receive per
-- header line, one send per response.
--   lua5.4 examples/hello_http.lua [port]      then: curl localhost:8080/
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
package.cpath = "build/?.so;" .. package.cpath
local gh = require "greenhub"

local port = tonumber(arg[1]) or 8080
local body = "Hello, World!"
local response = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: "
  .. #body .. "\r\n\r\n" .. body

local server = assert(gh.listen("127.0.0.1", port))
io.stderr:write("hello_http on 127.0.0.1:" .. port .. "\n")
gh.serve(server, function(conn)
  while true do
    local request = conn:receive("*l")
    if not request then return end
    local close = false
    while true do -- headers
      local h = conn:receive("*l")
      if not h then return end
      if h == "" then break end
      if h:lower() == "connection: close" then close = true end
    end
    if not conn:send(response) or close then return end
  end
end)
