-- A forked child inherited its parent's signalfd. Its mask belongs to the
-- open file, so a child that cancelled a handler (gh.signal's h:cancel())
-- removed that signal from its parent's signalfd too: the parent never saw
-- it again (prefork's HUP and TTIN went dead once a worker had started).
-- Under GREENHUB_BACKEND=poll the self-pipe was shared the same way.
local H = require "helper"
local gh = H.gh
local core = require "greenhub.core"

describe("regress: a forked child's signal handlers are its own", function()
  it("the parent still gets a signal its child stopped watching", function()
    local got = 0
    local h = gh.signal("USR2", function() got = got + 1 end)
    local pid = core._fork()
    if pid == 0 then
      h:cancel()
      gh.signal("USR1", function() end) -- and changes its own set again
      gh.sleep(0.05)
      os.exit(0, false)
    end
    local t0 = gh.clock()
    repeat local _, how = core._waitpid(pid); gh.sleep(0.01) until how or gh.clock() - t0 > 10
    local mypid = core._procinfo()
    os.execute("kill -USR2 " .. mypid)
    t0 = gh.clock()
    while got == 0 and gh.clock() - t0 < 5 do gh.sleep(0.01) end
    h:cancel()
    assert.equal(1, got)
  end)
end)
