-- #11.10: exit waited for lookups still running in getaddrinfo
-- (resolver_close joined the workers).
local H = require "helper"
local gh = H.gh
local core = require "greenhub.core"

describe("regress: exit with a lookup in flight", function()
  it("exit does not wait for a lookup still running", function()
    local t0 = os.time()
    local out, code = H.run_script([[
      local gh = require "greenhub"
      local core = require "greenhub.core"
      core._resolver_delay("stuck.test", 30)
      gh.spawn(gh.resolve, "stuck.test")
      gh.sleep(0.05)
      print("leaving")
    ]])
    assert.equal(0, code, out)
    assert.matches("leaving", out)
    assert.is_true(os.time() - t0 < 10)
  end)
end)
