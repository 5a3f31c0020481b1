-- #11.29: s:receivepartial(max): what is buffered or arrives next, at most
-- max bytes (copas and cqueues have it; every proxy loop needs it).
local H = require "helper"
local gh = H.gh

local pair = H.tcp_pair

describe("regress: receivepartial", function()
  it("returns what has arrived, up to max, without waiting for more", function()
    local c, s = pair()
    c:send("hello")
    assert.equal("hello", H.bounded(5, s.receivepartial, s, 100))
    c:send("0123456789")
    assert.equal("0123", s:receivepartial(4))
    assert.equal("456789", s:receivepartial())
    c:close(); s:close()
  end)

  it("serves what a line receive left buffered first", function()
    local c, s = pair()
    c:send("one\ntwo")
    assert.equal("one", s:receive("*l"))
    assert.equal("two", s:receivepartial(100))
    c:close(); s:close()
  end)

  it("waits for the next arrival; nil, 'timeout' and nil, 'closed'", function()
    local c, s = pair()
    gh.spawn(function() gh.sleep(0.02); c:send("late") end)
    assert.equal("late", H.bounded(5, s.receivepartial, s))
    s:settimeout(0.02)
    assert.same({ nil, "timeout" }, { s:receivepartial() })
    c:close()
    s:settimeout(2)
    assert.same({ nil, "closed" }, { s:receivepartial() })
    s:close()
  end)

  it("pipes a stream through (a proxy loop)", function()
    local c, s = pair()
    local payload = string.rep("0123456789abcdef", 20000)
    gh.spawn(function() c:send(payload); c:close() end)
    local parts = {}
    while true do
      local d, err = s:receivepartial(8192)
      if not d then assert.equal("closed", err) break end
      assert.is_true(#d <= 8192)
      parts[#parts + 1] = d
    end
    assert.equal(payload, table.concat(parts))
    s:close()
  end)

  it("rejects a bad max", function()
    local c, s = pair()
    assert.has_error(function() s:receivepartial(0) end)
    c:close(); s:close()
  end)
end)
