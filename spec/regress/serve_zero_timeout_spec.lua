-- #11.5: gh.serve on a server socket with settimeout(0) spun on "timeout"
-- without yielding and froze the process.
local H = require "helper"
local gh = H.gh

describe("regress: gh.serve on a non-blocking server socket", function()
  it("waits for clients instead of spinning, and serves them", function()
    local srv = assert(gh.listen("127.0.0.1", 0))
    srv:settimeout(0)
    local _, port = srv:getsockname()
    local server = gh.spawn(gh.serve, srv, function(c) c:send(c:receive() .. "!\n") end)
    -- other threads keep running while serve waits
    local ticks = 0
    local ticker = gh.spawn(function() for _ = 1, 5 do gh.sleep(0.005); ticks = ticks + 1 end end)
    H.bounded(5, ticker.wait, ticker)
    assert.equal(5, ticks)
    local turns0 = gh.stats().turns
    gh.sleep(0.05)
    assert.is_true(gh.stats().turns - turns0 < 50, "the hub spins")
    local c = assert(gh.connect("127.0.0.1", port))
    c:send("hi\n")
    c:settimeout(5)
    assert.equal("hi!", c:receive())
    c:close(); srv:close()
    H.bounded(5, server.wait, server)
  end)
end)
