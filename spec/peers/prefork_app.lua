-- A prefork server for spec/prefork_spec.lua.
--   lua5.4 spec/peers/prefork_app.lua PORT WORKERS TIMEOUT [boot-fail]
-- Routes: / (who answered: "worker pid"), /slow?s=N, /spin (never yields).
-- GH_GRACEFUL: graceful_timeout (default 10).
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
local gh = require "greenhub"
local http = require "greenhub.http"
local prefork = require "greenhub.prefork"
local core = require "greenhub.core"

local port, workers, timeout, mode = tonumber(arg[1]), math.tointeger(tonumber(arg[2])), tonumber(arg[3]), arg[4]
local graceful = tonumber(os.getenv("GH_GRACEFUL") or "10")
local ok, err = pcall(prefork.run, {
  listen = { "127.0.0.1", port },
  workers = workers,
  timeout = timeout,
  graceful_timeout = graceful,
  main = function(listener, no)
    if mode == "boot-fail" then os.exit(3) end
    local pid = core._procinfo()
    if mode == "serve" then -- plain gh.serve: a line echo that names the worker
      return gh.serve(listener, function(c)
        local l = c:receive("*l")
        if l then c:send(no .. " " .. pid .. " " .. l .. "\n") end
      end)
    end
    if mode == "tls" then -- greenhub.http over TLS: cert and key in GH_TLS_DIR
      local dir = os.getenv("GH_TLS_DIR")
      listener = assert(gh.tls.server(listener, { certificate = dir .. "/cert.pem", key = dir .. "/key.pem" }))
    end
    local s = http.server(function(req)
      if req.path == "/slow" then gh.sleep(tonumber(req.query:match("s=([%d.]+)"))) end
      if req.path == "/spin" then while true do end end
      return 200, nil, no .. " " .. pid
    end)
    prefork.on_stop(function() s:shutdown(10) end)
    s:serve(listener)
  end,
})
if not ok then io.stderr:write("prefork_app: ", tostring(err), "\n") os.exit(2) end
io.stderr:write("prefork_app: stopped\n")
