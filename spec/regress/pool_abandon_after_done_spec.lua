-- A caller killed after its worker job had finished but before the hub
-- had drained the done list: job_abandon took the job for a running one
-- (its running flag was never cleared), counted a stuck worker, dropped the
-- hub reference, and the hub later dropped it again and never freed the
-- job (a leak under ASan, and a reference count gone wrong). A caller
-- killed after the hub had drained the job leaked its result (a lookup's
-- addrinfo, a read's buffer): the interrupt was raised after the result
-- had been taken out of the job. Lookups had both windows; gh.fs made them
-- easy to hit. Under make asan the child's leak check fails the exit code.
local H = require "helper"

describe("regress: a job whose caller dies after it finished", function()
  it("is freed once and leaves the loop idle", function()
    local out, code = H.run_script([[
      local gh = require "greenhub"
      local p = os.tmpname()
      local f = io.open(p, "w"); f:write("x"); f:close()
      for _ = 1, 300 do
        local t = gh.spawn(gh.fs.readfile, p)
        gh.sleep(0)                       -- the job is queued or running
        local t0 = gh.clock()
        while gh.clock() - t0 < 0.0005 do end -- the worker finishes meanwhile
        t:kill()
      end
      local t0 = gh.clock()
      gh.run()                            -- idle: no reference left behind
      os.remove(p)
      print(("idle after %.2f s, stuck %d"):format(gh.clock() - t0, 0))
      print(#assert(gh.fs.readfile("/etc/hostname")) > 0)
    ]])
    assert.equal(0, code, out)
    assert.matches("idle after 0%.%d%d s", out)
    assert.matches("true", out)
  end)
end)
