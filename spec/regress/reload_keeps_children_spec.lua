-- busted loads each spec file with a fresh package.loaded, so greenhub's
-- C module opens again on the same hub. The second open replaced the
-- signal and child state with an empty one: children started before it
-- were never reaped under SIGCHLD (GREENHUB_BACKEND=poll) and held the
-- loop forever, so gh.run() never returned.
local H = require "helper"

describe("regress: opening the module again keeps its children", function()
  it("a child started before a reload is reaped after it", function()
    local out, code = H.run_script([[
      local gh = require "greenhub"
      local p = gh.popen({ "sh", "-c", "sleep 0.1; exit 3" }, { stdin = "null", stdout = "null" })
      local q = gh.popen({ "sleep", "0.1" }, { stdin = "null", stdout = "null" })
      q:close() -- orphaned: reaped by the loop
      for k in pairs(package.loaded) do
        if k:match("^greenhub") then package.loaded[k] = nil end
      end
      local gh2 = require "greenhub"
      print(p:wait(5))
      local t0 = gh2.clock()
      gh2.run()
      print(("ran %.2f"):format(gh2.clock() - t0))
      local f = io.open("/proc/" .. q.pid .. "/stat")
      print(f and "zombie" or "reaped")
    ]])
    assert.equal(0, code, out)
    assert.matches("nil\texit\t3", out)
    assert.matches("ran 0%.%d", out)
    assert.matches("reaped", out)
  end)
end)
