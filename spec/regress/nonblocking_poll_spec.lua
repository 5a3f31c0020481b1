-- #11.29a: a settimeout(0) polling loop never saw new data after a short
-- read had marked the socket drained (it was never registered with epoll).
local H = require "helper"
local gh = H.gh
local socket = gh.socket

local pair = H.tcp_pair

describe("regress: non-blocking polling", function()
  for _, how in ipairs({ "gh.sleep(0)", "socket.sleep", "select 0", "select 0.05" }) do
    it("sees data that arrives later (" .. how .. ")", function()
      local c, s = pair()
      s:settimeout(0)
      c:send("first\n")
      gh.sleep(0.01)
      assert.equal("first", s:receive())
      assert.same({ nil, "timeout", "" }, { s:receive() }) -- drained
      gh.spawn(function() gh.sleep(0.01); c:send("second\n") end)
      local got
      local t0 = gh.clock()
      while gh.clock() - t0 < 2 do
        local line = s:receive()
        if line then got = line; break end
        if how == "gh.sleep(0)" then gh.sleep(0)
        elseif how == "socket.sleep" then socket.sleep(0.001)
        elseif how == "select 0" then socket.select({ s }, nil, 0); gh.sleep(0.001)
        else socket.select({ s }, nil, 0.05) end
      end
      assert.equal("second", got)
      c:close(); s:close()
    end)
  end

  it("select(..., 0) reports a socket whose data arrived meanwhile", function()
    local c, s = pair()
    c:send("x")
    gh.sleep(0.01)
    local r = socket.select({ s }, nil, 0)
    assert.equal(s, r[1])
    local r2, _, err = socket.select({ s }, nil, 0)
    assert.equal(s, r2[1]) -- still unread
    s:receive(1)
    r, _, err = socket.select({ s }, nil, 0)
    assert.equal(0, #r)
    assert.equal("timeout", err)
    c:close(); s:close()
  end)
end)
