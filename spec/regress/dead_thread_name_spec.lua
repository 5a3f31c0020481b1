-- #11.25: t:name() of a dead thread returned an address instead of its
-- source:line.
local H = require "helper"
local gh = H.gh

describe("regress: names of dead threads", function()
  it("is the spawned function's source:line", function()
    local t = gh.spawn(function() return 1 end)
    local pending = t:name()
    t:wait()
    assert.equal("dead", t:status())
    assert.matches("dead_thread_name_spec.lua:%d+$", t:name())
    assert.equal(pending, t:name())
  end)

  it("a given name stays after death", function()
    local t = gh.spawn(function() end)
    t:name("worker")
    t:wait()
    assert.equal("worker", t:name())
  end)

  it("a thread killed before it ran still has its function's name", function()
    local t = gh.spawn(function() end)
    t:kill()
    assert.matches("dead_thread_name_spec.lua:%d+$", t:name())
  end)
end)
