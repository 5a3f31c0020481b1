-- #11.20: a huge "t" timeout on UDP overflowed total * 2 in udp_step
-- (undefined behaviour, caught by UBSan).
local H = require "helper"
local gh = H.gh

describe("regress: UDP receive with a huge total timeout", function()
  it("waits and receives normally", function()
    local a = assert(gh.socket.udp())
    assert(a:setsockname("127.0.0.1", 0))
    local _, port = a:getsockname()
    a:settimeout(1e300, "t")
    local b = assert(gh.socket.udp())
    gh.spawn(function() gh.sleep(0.01); b:sendto("ping", "127.0.0.1", port) end)
    assert.equal("ping", H.bounded(5, a.receive, a))
    gh.spawn(function() gh.sleep(0.01); b:sendto("pong", "127.0.0.1", port) end)
    local data, ip = H.bounded(5, a.receivefrom, a)
    assert.equal("pong", data)
    assert.equal("127.0.0.1", ip)
    a:close(); b:close()
  end)
end)
