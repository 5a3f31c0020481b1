-- #11.26 (security): p:kill() after p:wait() signalled whatever process
-- then had that pid. Once reaped, a process handle never signals by pid.
local H = require "helper"
local gh = H.gh

describe("regress: killing a reaped process", function()
  it("is a no-op that says so, and never reaches a pid reuser", function()
    local p = assert(gh.popen({ "true" }, { stdin = "null", stdout = "null" }))
    assert.same({ true, "exit", 0 }, { p:wait() })
    -- stand-in for the process that now owns the old pid
    local victim = assert(gh.popen({ "sleep", "5" }, { stdin = "null", stdout = "null" }))
    p.pid = victim.pid -- as if the kernel had handed the pid on
    assert.same({ nil, "No such process" }, { p:kill("KILL") })
    assert.same({ nil, "timeout" }, { victim:wait(0.1) }) -- still alive
    victim:kill("KILL")
    assert.same({ nil, "signal", 9 }, { victim:wait() })
  end)

  it("a live process is signalled through its pidfd", function()
    local p = assert(gh.popen({ "sleep", "5" }, { stdin = "null", stdout = "null" }))
    assert.is_true(p:kill("TERM"))
    assert.same({ nil, "signal", 15 }, { p:wait(5) })
  end)
end)
