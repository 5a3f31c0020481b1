-- A small key/value service on greenhub.http:
--   GET /k      -> the value, or 404
--   PUT /k      -> stores the request body (read as a stream), 201 or 204
--   DELETE /k   -> 204, or 404
--   GET /       -> the keys, one a line
-- SIGTERM or SIGINT: stop accepting, let running requests finish (5 s).
--   lua5.4 examples/http_app.lua [port]
--   curl -T file localhost:8081/k; curl localhost:8081/k; curl -X DELETE localhost:8081/k
local root = (debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/.."
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. "/build/?.so;" .. package.cpath
local gh = require "greenhub"
local http = require "greenhub.http"

local M = {}

--- handler for the service over a table of values
function M.handler(store)
  return function(req, res)
    local key = req.path:match("^/(.+)$")
    if not key then
      if req.method ~= "GET" then return 405, { allow = "GET" }, "" end
      local keys = {}
      for k in pairs(store) do keys[#keys + 1] = k end
      table.sort(keys)
      return 200, { ["content-type"] = "text/plain" }, #keys > 0 and table.concat(keys, "\n") .. "\n" or ""
    end
    if req.method == "GET" or req.method == "HEAD" then
      local v = store[key]
      if not v then return 404, nil, "no such key\n" end
      return 200, { ["content-type"] = "application/octet-stream" }, v
    elseif req.method == "PUT" then
      local parts = {}
      for chunk in req:source() do parts[#parts + 1] = chunk end -- streamed in
      local existed = store[key] ~= nil
      store[key] = table.concat(parts)
      return existed and 204 or 201, nil, ""
    elseif req.method == "DELETE" then
      if not store[key] then return 404, nil, "no such key\n" end
      store[key] = nil
      return 204
    end
    return 405, { allow = "GET, HEAD, PUT, DELETE" }, ""
  end
end

--- start(port) -> server, listener (serving in a green thread)
function M.start(port, opts)
  local listener = assert(gh.listen("127.0.0.1", port or 0))
  local server = http.server(M.handler({}), opts)
  gh.spawn(server.serve, server, listener)
  return server, listener
end

if arg and arg[0] and arg[0]:match("http_app%.lua$") then
  local server, listener = M.start(tonumber(arg[1]) or 8081)
  local _, port = listener:getsockname()
  io.stderr:write("http_app on 127.0.0.1:" .. port .. "\n")
  local stopping = gh.event()
  local function stop() if not stopping:ready() then stopping:send() end end
  local hs = { gh.signal("TERM", stop), gh.signal("INT", stop) }
  stopping:wait()
  io.stderr:write("http_app: shutting down\n")
  local ok = server:shutdown(5)
  for _, h in ipairs(hs) do h:cancel() end
  os.exit(ok and 0 or 1)
end

return M
