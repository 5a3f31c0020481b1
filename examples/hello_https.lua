-- HTTPS/1.1 keep-alive hello world on green TLS (OpenSSL from C; the context from LuaSec).
--   lua5.4 examples/hello_https.lua PORT CERT KEY
-- the repository's lua/ and build/, found from this file (runs from anywhere)
local root = (debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/.."
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. "/build/?.so;" .. package.cpath
local gh = require "greenhub"

local port, cert, key = tonumber(arg[1]) or 8443, arg[2], arg[3]
assert(cert and key, "usage: hello_https.lua PORT CERT KEY")
local body = "Hello, World!"
-- One connection: requests until the client closes or asks to. HTTP/1.1
-- keeps the connection unless "Connection: close"; HTTP/1.0 closes after
-- the answer unless the client sent "Connection: keep-alive" (then the
-- answer says keep-alive too, as ab -k and Python's clients expect).
local function answer(keep, v10)
  return "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " .. #body
    .. (not keep and "\r\nConnection: close" or v10 and "\r\nConnection: keep-alive" or "")
    .. "\r\n\r\n" .. body
end
local keep11, keep10, close = answer(true, false), answer(true, true), answer(false)

local function handle(conn)
  while true do
    local request = conn:receive("*l")
    if not request then return end
    local v10 = request:sub(-8) == "HTTP/1.0"
    local keep = not v10
    while true do -- headers
      local h = conn:receive("*l")
      if not h then return end
      if h == "" then break end
      local c = h:byte(1)
      if (c == 67 or c == 99) and h:sub(1, 11):lower() == "connection:" then
        local v = h:sub(12):lower()
        if v:find("close", 1, true) then keep = false
        elseif v:find("keep-alive", 1, true) then keep = true end
      end
    end
    if not conn:send(keep and (v10 and keep10 or keep11) or close) or not keep then return end
  end
end

local server = assert(gh.tls.listen("127.0.0.1", port, { certificate = cert, key = key, handshake_timeout = 10 }))
io.stderr:write("hello_https on 127.0.0.1:" .. port .. "\n")
gh.serve(server, handle)
