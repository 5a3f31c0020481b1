-- s:shutdown() closed every connection not busy with a request, including
-- one just accepted whose first request was on its way: its client got
-- "closed" with no answer (prefork's HUP under load lost a request to it).
local H = require "helper"
local gh = H.gh
local http = require "greenhub.http"

describe("regress: shutdown serves a connection accepted before its first request", function()
  it("a request that arrives after shutdown began on an accepted connection is answered", function()
    local l = assert(gh.listen("127.0.0.1", 0))
    local _, port = l:getsockname()
    local s = http.server(function() return 200, nil, "served" end)
    local t = gh.spawn(s.serve, s, l)
    local c = assert(gh.connect("127.0.0.1", port))
    c:settimeout(5)
    local silent = assert(gh.connect("127.0.0.1", port))
    silent:settimeout(5)
    gh.sleep(0.05) -- both accepted, neither has sent a byte
    local done = gh.spawn(s.shutdown, s, 5)
    gh.sleep(0.2)
    c:send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert.equal("HTTP/1.1 200 OK", c:receive())
    local head = {}
    repeat local h = c:receive(); head[#head + 1] = h:lower() until h == ""
    assert.matches("connection: close", table.concat(head, "\n"))
    assert.equal("served", c:receive(6))
    -- the silent one is closed after a second; shutdown then completes
    local t0 = gh.clock()
    local d, e = silent:receive()
    assert.same({ nil, "closed" }, { d, e })
    assert.is_true(gh.clock() - t0 < 3)
    assert.is_true(done:wait())
    c:close(); silent:close(); t:wait()
  end)
end)
