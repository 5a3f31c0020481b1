-- #11.11: if pthread_create failed (thread or memory limits), lookups
-- waited forever; plain LuaSocket resolves fine. Now: resolved inline.
local H = require "helper"

describe("regress: lookups when no thread can be created", function()
  -- the address-space limit that makes pthread_create fail also breaks
  -- the sanitizers' shadow memory
  if os.getenv("GH_SAN") then it("skipped under sanitizers", function() end) return end
  it("still complete", function()
    -- a 1 GiB thread stack cannot fit in 512 MiB of address space
    local out, code = H.run_script([[
      local gh = require "greenhub"
      local r = table.pack(gh.with_timeout(5, gh.resolve, "LOCALHOST"))
      print("resolved", r[1] and r[1][1], r[2])
    ]], "ulimit -s 1048576; ulimit -v 524288; ")
    assert.equal(0, code, out)
    assert.matches("resolved\t127%.0%.0%.1", out)
  end)
end)
