-- HTTP hello on greenhub.prefork for make bench; on TERM each worker
-- prints how many requests it served ("served N" on stderr).
--   lua5.4 bench/prefork_server.lua PORT WORKERS
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
package.cpath = "build/?.so;" .. package.cpath
local http = require "greenhub.http"
local prefork = require "greenhub.prefork"
prefork.run{
  listen = { "127.0.0.1", tonumber(arg[1]) },
  workers = math.tointeger(tonumber(arg[2])),
  main = function(listener)
    local n = 0
    local s = http.server(function() n = n + 1; return 200, nil, "Hello, World!" end)
    prefork.on_stop(function() io.stderr:write("served ", n, "\n"); s:shutdown(1) end)
    s:serve(listener)
  end,
}
