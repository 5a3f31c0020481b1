-- Echo server for the stress specs, in its own process so its RSS can be
-- measured alone. Prints its port, then serves until stdin closes.
local gh = require "greenhub"
local srv = assert(gh.listen("127.0.0.1", 0, 8192))
local _, port = srv:getsockname()
io.stdout:write(port, "\n")
io.stdout:flush()
gh.spawn(gh.serve, srv, function(c)
  while true do
    local l = c:receive("*l")
    if not l then return end
    c:send(l .. "\n")
  end
end)
local stdin = gh.fdopen(0, "r")
stdin:receive("*a") -- until the test closes our stdin
os.exit(0)
