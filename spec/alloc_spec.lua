-- csrc/alloc.c: the small-object allocator greenhub puts on its Lua state
local H = require "helper"
local core = require "greenhub.core"

describe("the Lua state's allocator", function()
  it("is greenhub's on a standard state, the system's with GREENHUB_ALLOC=system", function()
    if os.getenv("GREENHUB_ALLOC") == "system" then
      assert.equal("system", core._allocator())
    else
      assert.equal("greenhub", core._allocator())
    end
    local out, code = H.run_script('print(require("greenhub.core")._allocator())', "GREENHUB_ALLOC=system ")
    assert.equal(0, code, out)
    assert.equal("system", out:match("%a+"))
  end)

  it("keeps every object whole across sizes, growth, shrinking and collections", function()
    local keep = {}
    -- strings of every length around and past the largest small block
    for n = 1, 700 do keep[#keep + 1] = string.rep(string.char(65 + n % 26), n) .. n end
    -- tables that grow through the small classes into large blocks and back
    local grown = {}
    for i = 1, 300 do
      local t = {}
      for j = 1, i do t["k" .. j] = j; t[j] = -j end
      grown[i] = t
    end
    for round = 1, 3 do
      collectgarbage()
      -- garbage of every size between the checks
      for i = 1, 20000 do local _ = { i, tostring(i), { i } } end
      for n = 1, 700 do
        local s = keep[n]
        assert.equal(n + #tostring(n), #s)
        assert.equal(string.rep(string.char(65 + n % 26), n) .. n, s)
      end
      for i = 1, 300, 7 do
        local t = grown[i]
        for j = 1, i do assert.equal(j, t["k" .. j]); assert.equal(-j, t[j]) end
        -- shrink: the rehash moves the parts to smaller blocks
        for j = 2, i do t["k" .. j] = nil; t[j] = nil end
        collectgarbage()
        t.fresh = round
        assert.equal(1, t.k1); assert.equal(-1, t[1]); assert.equal(round, t.fresh)
        for j = 2, i do t["k" .. j] = j; t[j] = -j end
      end
    end
  end)

  -- under make asan: the leak checker must scan the allocator's range, or
  -- a large block that only a small object points to looks leaked when a
  -- process ends without closing its state (exit status 66, not 3)
  it("leaves the leak checker nothing to report at os.exit", function()
    local out, code = H.run_script([[
      require "greenhub"
      keep = {}
      for i = 1, 200 do keep[i] = { big = string.rep("x", 4096) .. i, t = {} } end
      for i = 1, 200 do for j = 1, 100 do keep[i].t[j] = j end end
      os.exit(3)
    ]])
    assert.equal(3, code, out)
  end)

  it("gives memory back to Lua's count and reuses it", function()
    collectgarbage()
    local before = collectgarbage("count")
    local t = {}
    for i = 1, 100000 do t[i] = { i } end
    assert.is_true(collectgarbage("count") > before + 1000)
    t = nil
    collectgarbage(); collectgarbage()
    assert.is_true(collectgarbage("count") < before + 200)
  end)
end)
