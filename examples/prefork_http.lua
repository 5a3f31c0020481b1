-- HTTP on every core: a prefork supervisor with one greenhub worker per CPU.
--   lua5.4 examples/prefork_http.lua [port [workers]]
-- kill -HUP <supervisor> restarts the workers without refusing a
-- connection; TERM stops gracefully; TTIN/TTOU add or remove a worker.
local root = (debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/.."
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. "/build/?.so;" .. package.cpath
local http = require "greenhub.http"
local prefork = require "greenhub.prefork"
local core = require "greenhub.core"

local port = tonumber(arg[1]) or 8080
local workers = tonumber(arg[2])

prefork.run{
  listen = { "127.0.0.1", port },
  workers = workers and math.tointeger(workers) or nil,
  timeout = 10,
  main = function(listener, no)
    local pid = core._procinfo()
    local s = http.server(function(req, res)
      if req.path == "/slow" then require("greenhub").sleep(tonumber(req.query and req.query:match("s=([%d.]+)")) or 1) end
      return 200, { ["x-worker"] = no .. " " .. pid }, ("hello from worker %d (pid %d)\n"):format(no, pid)
    end)
    prefork.on_stop(function() s:shutdown(5) end)
    s:serve(listener)
  end,
}
