-- #11.22: thread_resume cleared any debug hook on a green thread at every
-- resume: debuggers and profilers that set hooks stopped working.
local H = require "helper"
local gh = H.gh

describe("regress: user debug hooks on green threads", function()
  it("survive the thread's yields and resumes", function()
    local lines = 0
    local t = gh.spawn(function()
      debug.sethook(function() lines = lines + 1 end, "l")
      for _ = 1, 5 do gh.sleep(0) end
      local before = lines
      for _ = 1, 5 do gh.sleep(0) end
      local hooked = debug.gethook() ~= nil
      debug.sethook()
      return hooked, lines > before
    end)
    assert.same({ true, true }, { t:wait() })
  end)

  it("a hook set from outside on a thread's coroutine stays", function()
    local co, calls = nil, 0
    local t = gh.spawn(function() co = coroutine.running(); for _ = 1, 10 do gh.sleep(0) end end)
    gh.sleep(0)
    debug.sethook(co, function() calls = calls + 1 end, "c")
    t:wait()
    assert.is_true(calls > 0)
  end)

  it("a pooled coroutine does not carry the previous thread's hook", function()
    gh.spawn(function() debug.sethook(function() end, "l") end):wait()
    local had = {}
    for i = 1, 20 do had[i] = gh.spawn(function() return debug.gethook() ~= nil end):wait() end
    for i = 1, 20 do assert.is_false(had[i]) end
  end)
end)
