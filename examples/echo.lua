-- Echo server: every line a client sends comes back.
--   lua5.4 examples/echo.lua [port]      then: nc 127.0.0.1 7000
-- the repository's lua/ and build/, found from this file (runs from anywhere)
local root = (debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/.."
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. "/build/?.so;" .. package.cpath
local gh = require "greenhub"

local port = tonumber(arg[1]) or 7000
local server = assert(gh.listen("127.0.0.1", port))
print("echo server on 127.0.0.1:" .. port)
gh.serve(server, function(conn)
  while true do
    local line, err = conn:receive("*l")
    if not line then break end
    conn:send(line .. "\n")
  end
end)
