-- Bug: a query sent on a connection whose server had closed it while it was
-- idle (pg_terminate_backend, a restart) parked forever: the EOF's edge had
-- come and gone before the query, and the fresh query skipped the kernel
-- check. Now it returns nil, message, "08006" at once.
local H = require "helper"
local gh = H.gh
local S = require "helpers.pg_server"
local pg = require "greenhub.pg"

describe("regress: pg query after the server closed an idle connection", function()
  local srv
  setup(function() srv = assert(S.start()) end)
  teardown(function() if srv then srv:stop() end end)

  it("fails cleanly instead of hanging", function()
    local admin = assert(pg.connect(srv.conninfo, 10))
    for _ = 1, 3 do
      local c = assert(pg.connect(srv.conninfo, 10))
      assert(c:query("select 1"))
      assert(admin:query("select pg_terminate_backend($1)", c:backend_pid()))
      gh.sleep(0.1) -- the FATAL message and EOF arrive while c is idle
      local t0 = gh.clock()
      local r, err, state = gh.with_timeout(H.scale(3), c.query, c, "select 1")
      assert.is_nil(r)
      assert.is_true(err ~= "timeout", "the query hung")
      assert.is_string(err)
      assert.equal("08006", state)
      assert.is_true(gh.clock() - t0 < H.scale(1))
      assert.equal("bad", c:status())
      c:close()
    end
    admin:close()
  end)
end)
