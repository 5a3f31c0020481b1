-- #11.18: gh.coroutine.wrap did not close pending <close> variables when
-- the coroutine errored, as Lua 5.4's coroutine.wrap does.
local H = require "helper"
local gh = H.gh

describe("regress: gh.coroutine.wrap and <close>", function()
  it("closes pending to-be-closed variables on error, like coroutine.wrap", function()
    for _, lib in ipairs({ coroutine, gh.coroutine }) do
      local closed = false
      local f = lib.wrap(function()
        local _ <close> = setmetatable({}, { __close = function() closed = true end })
        coroutine.yield(1)
        error("boom")
      end)
      assert.equal(1, f())
      local ok, err = pcall(f)
      assert.is_false(ok)
      assert.matches("boom", err)
      assert.is_true(closed)
    end
  end)

  it("an error raised by __close replaces the original, as in Lua", function()
    local f = gh.coroutine.wrap(function()
      local _ <close> = setmetatable({}, { __close = function() error("from close", 0) end })
      coroutine.yield()
      error("original", 0)
    end)
    f()
    local ok, err = pcall(f)
    assert.is_false(ok)
    assert.equal("from close", err)
  end)
end)
