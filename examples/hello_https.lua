-- HTTPS/1.1 keep-alive hello world on green TLS (LuaSec underneath).
--   lua5.4 examples/hello_https.lua PORT CERT KEY
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
package.cpath = "build/?.so;" .. package.cpath
local gh = require "greenhub"

local port, cert, key = tonumber(arg[1]) or 8443, arg[2], arg[3]
assert(cert and key, "usage: hello_https.lua PORT CERT KEY")
local body = "Hello, World!"
local response = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: "
  .. #body .. "\r\n\r\n" .. body

local server = assert(gh.tls.listen("127.0.0.1", port, { certificate = cert, key = key, handshake_timeout = 10 }))
io.stderr:write("hello_https on 127.0.0.1:" .. port .. "\n")
gh.serve(server, function(conn)
  while true do
    local request = conn:receive("*l")
    if not request then return end
    while true do
      local h = conn:receive("*l")
      if not h then return end
      if h == "" then break end
    end
    if not conn:send(response) then return end
  end
end)
