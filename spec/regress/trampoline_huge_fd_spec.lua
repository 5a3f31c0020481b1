-- #11.4: gh.trampoline(fd) with fd >= 2^30 overflowed an int and looped
-- forever; fd ~ 1e8 allocated a 3 GB table. Out-of-range fds: a clear error.
local H = require "helper"
local gh = H.gh

describe("regress: trampoline with absurd fds", function()
  for _, fd in ipairs({ 2 ^ 30, 2 ^ 31 - 1, 1e8, 2 ^ 40, -1 }) do
    it("fd " .. string.format("%.0f", fd) .. " is a clear error, at once", function()
      local t0 = gh.clock()
      local ok, err = pcall(gh.trampoline, math.tointeger(fd), "r", 0.01)
      assert.is_false(ok)
      assert.matches("not an open file descriptor", err)
      assert.is_true(gh.clock() - t0 < 1)
    end)
  end

  it("fdopen of a closed fd is a clear error too", function()
    local ok, err = pcall(gh.fdopen, 2 ^ 30)
    assert.is_false(ok)
    assert.matches("not an open file descriptor", err)
  end)
end)
