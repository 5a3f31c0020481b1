-- #12: when the server ended a connection that still had pipelined
-- requests unread (its last request under max_requests, a Connection:
-- close, a shutdown) it closed at once; with bytes unread the kernel
-- resets the connection and drops what of the answer it had not sent yet,
-- so a client reading a large answer slowly got it cut short. Now such a
-- close lingers as nginx's does: FIN after the answer, the rest read away.
local H = require "helper"
local gh = H.gh

describe("regress: a large answer, then a close with pipelined requests unread", function()
  it("the client gets the whole answer, then the close", function()
    local BIG = string.rep("z", 8 * 1024 * 1024)
    local _, port, stop = H.http_server(function() return 200, { ["content-length"] = #BIG }, BIG end,
      { max_requests = 1 })
    local c = H.connect(port)
    c:send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    gh.sleep(0.05)
    -- two more the server will not answer, sent while it is sending; read
    -- late: most of the answer still waits in the server's kernel
    c:send(("GET / HTTP/1.1\r\nHost: x\r\n\r\n"):rep(2))
    gh.sleep(0.2)
    local st, h, body = H.http_response(c)
    assert.same({ 200, "close", #BIG }, { st, h.connection, body and #body })
    assert.same({ nil, "closed", "" }, { c:receive("*a") })
    c:close(); stop()
  end)
end)
