-- make bench's PostgreSQL: start a throwaway server pinned to a CPU and
-- print its conninfo and dir; "stop DIR" stops it.
--   lua5.4 bench/pg_server.lua start CPU  |  lua5.4 bench/pg_server.lua stop DIR
package.path = "spec/?.lua;" .. package.path
local S = require "helpers.pg_server"
if arg[1] == "start" then
  local srv = assert(S.start(nil, arg[2]))
  print(srv.dir)
else
  local B = io.popen("ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1"):read("l")
  local as = io.popen("id -u"):read("l") == "0" and "runuser -u postgres -- " or ""
  os.execute(as .. B .. "/pg_ctl -D " .. arg[2] .. "/data -m immediate -w stop >/dev/null 2>&1; rm -rf " .. arg[2])
end
