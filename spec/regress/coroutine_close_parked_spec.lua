-- #11.2: coroutine.close on a parked green thread's coroutine, then the
-- event it waited on is collected: a later kill wrote into freed memory.
local H = require "helper"
local gh = H.gh

describe("regress: a parked green coroutine closed from outside", function()
  it("keeps what it waits on alive and ends as killed, not resumed", function()
    local co
    local closed = false
    local t = gh.spawn(function()
      co = coroutine.running()
      local _ <close> = setmetatable({}, { __close = function() closed = true end })
      gh.event():wait() -- only this thread's stack holds the event
      error("must never run again")
    end)
    gh.sleep(0)
    assert.equal("suspended", t:status())
    assert.is_true(coroutine.close(co))
    assert.is_true(closed)
    for _ = 1, 3 do collectgarbage("collect") end
    t:kill() -- unlinking from the (collected) event was a use-after-free
    assert.equal("dead", t:status())
    assert.same({}, { t:wait() })
  end)

  it("a closed coroutine woken by its event is noticed, not resumed", function()
    local co
    local q = gh.queue()
    local t = gh.spawn(function()
      co = coroutine.running()
      q:get()
      error("must never run again")
    end)
    gh.sleep(0)
    coroutine.close(co)
    collectgarbage("collect")
    q:put(1)
    gh.sleep(0)
    assert.equal("dead", t:status())
    -- the item stays for the next getter? either way the hub keeps going
    local u = gh.spawn(function() gh.sleep(0.001); return "ok" end)
    assert.equal("ok", u:wait())
  end)

  it("a thread closed while sleeping is gone at its wake-up", function()
    local co
    local t = gh.spawn(function() co = coroutine.running(); gh.sleep(0.01); error("no") end)
    gh.sleep(0)
    coroutine.close(co)
    gh.sleep(0.03)
    assert.equal("dead", t:status())
  end)
end)
