-- #11.9: lookups that timed out or were killed kept occupying the 4
-- resolver workers: one slow DNS server starved every later lookup.
local H = require "helper"
local gh = H.gh
local core = require "greenhub.core"

describe("regress: abandoned lookups", function()
  it("do not hold the workers that live lookups need", function()
    core._resolver_delay("stuck.test", H.scale(3))
    core._resolver_delay("quick.test", 0)
    -- more stuck lookups than workers, all given up on
    local ts = {}
    for i = 1, 8 do ts[i] = gh.spawn(gh.resolve, "stuck.test", 0.05) end
    for i = 1, 8 do assert.same({ nil, "timeout" }, { ts[i]:wait() }) end
    local killed = gh.spawn(gh.resolve, "stuck.test")
    gh.sleep(0.01)
    killed:kill()
    -- a live lookup still gets a worker at once
    local t0 = gh.clock()
    assert.same({ nil, "host not found" }, { gh.resolve("quick.test", H.scale(1)) })
    assert.is_true(gh.clock() - t0 < H.scale(1))
  end)

end)
