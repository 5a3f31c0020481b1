-- Bug: "COPY ... TO STDOUT" through db:query spun forever inside C (each
-- PQgetResult gave the COPY_OUT result again; the hub never ran again, so
-- not even with_timeout could stop it). Now the data is drained and
-- dropped and the query says COPY is not supported; the connection goes on.
local H = require "helper"
local gh = H.gh
local S = require "helpers.pg_server"
local pg = require "greenhub.pg"

describe("regress: pg COPY TO STDOUT", function()
  local srv
  setup(function() srv = assert(S.start()) end)
  teardown(function() if srv then srv:stop() end end)

  it("returns an error instead of spinning; the connection stays usable", function()
    local out = H.run_script(([[
      local gh = require "greenhub"
      local pg = require "greenhub.pg"
      local db = assert(pg.connect(%q, 10))
      print(gh.with_timeout(5, db.query, db, "copy (select generate_series(1, 50000)) to stdout"))
      print(db:query("select 42 as v")[1].v)
    ]]):format(srv.conninfo))
    assert.matches("nil\tCOPY TO STDOUT is not supported by greenhub.pg\t0A000", out)
    assert.matches("\n42\n", out)
  end)
end)
