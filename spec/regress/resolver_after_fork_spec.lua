-- #11.8: a child's first name lookup after fork went to the parent's
-- resolver pool, whose workers do not exist in the child: it never ended.
local H = require "helper"

describe("regress: name lookups in a forked child", function()
  it("the child's first lookup (before any hub turn) completes", function()
    local out, code = H.run_script([[
      local gh = require "greenhub"
      local core = require "greenhub.core"
      core._resolver_delay("warm.test", 0)
      print("parent", gh.resolve("warm.test")) -- the parent's pool has workers now
      local pid = core._fork()
      if pid == 0 then
        -- no hub turn has run in the child yet: straight to a lookup
        local r = table.pack(gh.with_timeout(5, gh.resolve, "LOCALHOST"))
        io.stdout:write("child ", tostring(r[1] and #r[1] > 0), " ", tostring(r[2]), "\n")
        io.stdout:flush()
        os.exit(r[1] and 0 or 1)
      end
      local ok, how, st
      for _ = 1, 1000 do
        ok, how, st = core._waitpid(pid)
        if how then break end
        gh.sleep(0.01)
      end
      print("child exit", how, st)
    ]])
    assert.equal(0, code, out)
    assert.matches("child true", out)
    assert.matches("child exit\texit\t0", out)
  end)
end)
