-- greenhub.pg: N "SELECT $1::int" round trips on one connection, or spread
-- over C connections (one green thread each). Prints the seconds taken.
--   lua5.4 bench/pg_bench.lua CONNINFO N C
package.path = "lua/?.lua;" .. package.path
package.cpath = "build/?.so;" .. package.cpath
local gh = require "greenhub"
local pg = require "greenhub.pg"
local conninfo, n, conns = arg[1], tonumber(arg[2]), tonumber(arg[3] or 1)
local dbs = {}
for i = 1, conns do dbs[i] = assert(pg.connect(conninfo)) end
local per = n // conns
local function run(db)
  for i = 1, per do
    local r = db:query("SELECT $1::int AS v", i)
    if r[1].v ~= i then error("bad result") end
  end
end
local t0 = gh.clock()
if conns == 1 then
  run(dbs[1])
else
  local ts = {}
  for i = 1, conns do ts[i] = gh.spawn(run, dbs[i]) end
  for i = 1, conns do ts[i]:wait() end
end
print(string.format("%.6f", gh.clock() - t0))
