-- gh.tpool: Lua work on other OS threads, each with a state of its own.
local H = require "helper"
local gh = H.gh

describe("gh.tpool", function()
  setup(function() package.path = "spec/peers/?.lua;" .. package.path end)

  it("calls a module's function and returns its results; modules stay loaded", function()
    local a, n1 = gh.tpool.call("tpwork", "add", 1, 2)
    assert.equal(3, a)
    local _, n2 = gh.tpool.call("tpwork", "add", 2, 2)
    assert.is_true(n2 >= 1 and n1 >= 1) -- a counter kept in the thread's state
    assert.equal(0, gh.tpool.call("tpwork", "count"))
    assert.equal(3, gh.tpool.call("tpwork", "count", nil, nil, nil))
  end)

  it("copies nil, booleans, numbers, strings and nested tables both ways", function()
    local t = { 1, 2.5, "three", true, false, { x = { y = { z = "deep" } } }, [10] = "ten",
      big = string.rep("\0\1\255", 100000), [1.5] = "float key", [true] = "bool key" }
    local r = gh.tpool.call("tpwork", "echo", t, nil, -0.0, math.maxinteger, math.huge, "")
    assert.same(t, r)
    local all = table.pack(gh.tpool.call("tpwork", "echo", t, nil, 7, "", false))
    assert.equal(5, all.n)
    assert.same({ nil, 7, "", false }, { all[2], all[3], all[4], all[5] })
    assert.equal(math.type(7), math.type(all[3]))
  end)

  it("raises errors in the caller with their message; bad arguments raise", function()
    local ok0, e0 = pcall(gh.tpool.call, "tpwork", "fail")
    assert.is_false(ok0)
    assert.equal("spec/peers/tpwork.lua:" .. (function() local n = 0 for l in io.lines("spec/peers/tpwork.lua") do n = n + 1 if l:find("boom from worker", 1, true) then return n end end end)() .. ": boom from worker", e0)
    assert.has_error(function() gh.tpool.call("tpwork", "fail_table") end, "(error object is not a string)")
    assert.has_error(function() gh.tpool.call("tpwork", "give_function") end,
      "greenhub: cannot copy a function to or from a tpool thread")
    assert.has_error(function() gh.tpool.call("tpwork", "echo", print) end,
      "greenhub: cannot copy a function to or from a tpool thread")
    assert.has_error(function() gh.tpool.call("tpwork", "echo", { deep = { io.stdout } }) end,
      "greenhub: cannot copy a userdata to or from a tpool thread")
    local cyc = {}; cyc.self = cyc
    assert.has_error(function() gh.tpool.call("tpwork", "echo", cyc) end)
    assert.has_error(function() gh.tpool.call("tpwork", "nope") end, "module 'tpwork' has no function 'nope'")
    local ok, err = pcall(gh.tpool.call, "no_such_module", "f")
    assert.is_false(ok); assert.matches("module 'no_such_module' not found", err)
    assert.has_error(function() gh.tpool.call(1, "f") end, "bad argument #1 to 'call' (string expected, got number)")
    assert.has_error(function() gh.tpool.size(0) end)
    assert.has_error(function() gh.tpool.size(1.5) end, "bad argument #1 to 'size' (integer expected)")
  end)

  it("runs on other cores while the hub keeps turning", function()
    assert.equal(4, gh.tpool.size())
    local ticks, stop = 0, false
    local ticker = gh.spawn(function() while not stop do gh.sleep(0.005); ticks = ticks + 1 end end)
    local a = gh.spawn(gh.tpool.call, "tpwork", "spin", 0.4)
    local b = gh.spawn(gh.tpool.call, "tpwork", "spin", 0.4)
    local a0, a1 = a:wait()
    local b0, b1 = b:wait()
    stop = true; ticker:wait()
    -- (valgrind runs one thread at a time: there the hub turns far less)
    assert.is_true(ticks > (H.slow and 3 or 20), "the hub turned while the workers spun: " .. ticks)
    -- the two ran at the same time, on two threads
    assert.is_true(a0 < b1 and b0 < a1, ("a %.2f-%.2f, b %.2f-%.2f"):format(a0, a1, b0, b1))
  end)

  it("size bounds the threads at once; a killed caller loses nothing else", function()
    assert.equal(1, gh.tpool.size(1))
    local a = gh.spawn(gh.tpool.call, "tpwork", "spin", 0.2)
    local b = gh.spawn(gh.tpool.call, "tpwork", "spin", 0.2)
    local a0, a1 = a:wait()
    local b0, b1 = b:wait()
    assert.is_true(a1 <= b0 or b1 <= a0, ("one at a time: a %.2f-%.2f, b %.2f-%.2f"):format(a0, a1, b0, b1))
    assert.equal(4, gh.tpool.size(4))
    local k = gh.spawn(gh.tpool.call, "tpwork", "spin", 0.1)
    gh.sleep(0.01)
    k:kill()
    assert.equal(5, (gh.tpool.call("tpwork", "add", 2, 3)))
  end)
end)
