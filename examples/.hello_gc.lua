-- HTTP/1.1 hello world on greenhub.http: keep-alive, pipelining, HTTP/1.0
-- and Connection handled by the module.
--   lua5.4 examples/hello_http.lua [port]      then: curl localhost:8080/
-- the repository's lua/ and build/, found from this file (runs from anywhere)
local root = (debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/.."
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. "/build/?.so;" .. package.cpath
collectgarbage(os.getenv("GCMODE") or "incremental")
local gh = require "greenhub"
local http = require "greenhub.http"

local port = tonumber(arg[1]) or 8080
local listener = assert(gh.listen("127.0.0.1", port))
io.stderr:write("hello_http on 127.0.0.1:" .. port .. "\n")
http.serve(listener, function(req, res)
  res.headers["content-type"] = "text/plain"
  res:finish("Hello, World!")
end)
