-- #11.16: after "line too long", the tail of that same long line came back
-- as the next line: a peer could inject a line.
local H = require "helper"
local gh = H.gh

local pair = H.tcp_pair

describe("regress: the tail of an over-long line", function()
  it("is discarded up to its newline, even when it arrives later", function()
    local c, s = pair()
    s:setoption("line-max", 100)
    s:settimeout(2)
    c:send(string.rep("a", 150))
    local line, err = s:receive("*l")
    assert.is_nil(line)
    assert.equal("line too long", err)
    c:send(string.rep("b", 50) .. "INJECTED\r\nreal line\n")
    assert.equal("real line", s:receive("*l"))
    c:close(); s:close()
  end)

  it("a too-long line that already holds its newline drops just that line", function()
    local c, s = pair()
    s:setoption("line-max", 10)
    c:send(string.rep("x", 20) .. "\nnext\n")
    assert.same({ nil, "line too long" }, { s:receive("*l") })
    assert.equal("next", s:receive("*l"))
    c:close(); s:close()
  end)
end)
