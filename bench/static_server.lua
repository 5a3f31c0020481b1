-- http.static for make bench: serves DIR on PORT.
--   lua5.4 bench/static_server.lua PORT DIR
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
package.cpath = "build/?.so;" .. package.cpath
local gh = require "greenhub"
local http = require "greenhub.http"
http.serve(assert(gh.listen("127.0.0.1", tonumber(arg[1]), 1024)), http.static(arg[2]))
