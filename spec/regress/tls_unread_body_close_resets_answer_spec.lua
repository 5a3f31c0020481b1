-- #12: the lingering close (unread_body_close_resets_answer) was for plain
-- TCP only: over TLS, a server answering 413 to an upload still coming
-- closed with bytes unread, the kernel reset the connection, and a client
-- that sends its whole body before reading failed in its send (curl's
-- exit 55). Over TLS our close_notify is the FIN now, and what comes is
-- read away as on TCP.
local H = require "helper"
local gh = H.gh
local http = require "greenhub.http"

describe("regress: a TLS answer before the end of a body the server will not read", function()
  if not gh.tls.available then it("needs LuaSec", function() pending("lua-sec missing") end) return end

  it("413 over max_body_size: the client's send completes, it reads the 413, then the close", function()
    local _, _, dir = H.self_signed()
    local l = assert(gh.tls.listen("127.0.0.1", 0, { certificate = dir .. "/cert.pem", key = dir .. "/key.pem" }))
    local _, port = l:getsockname()
    local s = http.server(function(req) if req:body() then return 200, nil, "read" end end,
      { max_body_size = 1024 * 1024 })
    local t = gh.spawn(s.serve, s, l)
    local BIG = string.rep("x", 16 * 1024 * 1024)
    local c = assert(gh.tls.connect("127.0.0.1", port, { cafile = dir .. "/cert.pem" }))
    c:settimeout(H.scale(10))
    local head = "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: " .. #BIG .. "\r\n\r\n"
    local sent, err = c:send(head .. BIG)
    assert.same({ #head + #BIG, nil }, { sent, err })
    local st, h = H.http_response(c)
    assert.same({ 413, "close" }, { st, h.connection })
    assert.same({ nil, "closed", "" }, { c:receive(1) })
    c:close()
    l:close(); s:shutdown(1); t:wait()
  end)
end)
