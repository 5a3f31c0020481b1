-- Graceful shutdown: on SIGTERM stop accepting, let in-flight connections
-- finish (at most 5 s), then exit 0.
--   lua5.4 examples/graceful.lua [port]     then: kill -TERM <pid>
-- the repository's lua/ and build/, found from this file (runs from anywhere)
local root = (debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/.."
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. "/build/?.so;" .. package.cpath
local gh = require "greenhub"

local port = tonumber(arg[1]) or 7002
local server = assert(gh.listen("127.0.0.1", port))
local inflight = 0
local stopping = gh.event()

gh.signal("TERM", function()
  io.stderr:write("SIGTERM: no new connections; waiting for ", inflight, " in flight\n")
  server:close() -- gh.serve returns
  stopping:send()
end)

local acceptor = gh.spawn(gh.serve, server, function(conn)
  inflight = inflight + 1
  while true do
    local line = conn:receive("*l")
    if not line then break end
    gh.sleep(0.3) -- "work"
    conn:send("done: " .. line .. "\n")
    if stopping:ready() then break end
  end
  inflight = inflight - 1
end)

print("listening on 127.0.0.1:" .. port)
io.stdout:flush()
stopping:wait()
acceptor:wait()
local deadline = gh.clock() + 5
while inflight > 0 and gh.clock() < deadline do gh.sleep(0.01) end
os.exit(inflight == 0 and 0 or 1)
