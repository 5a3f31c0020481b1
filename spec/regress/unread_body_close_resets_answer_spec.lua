-- #12: a connection the server closed with the client still sending (a
-- 413 for a body over max_body_size, any answer over a body it would not
-- drain, a rejected head) was closed at once with bytes unread, so the
-- kernel reset it: a client that sends its whole body before reading
-- (curl, Python's http.client) failed in its send and never saw the
-- answer (curl exit 55 about one time in five). The server now closes as
-- nginx does (lingering close): its FIN after the answer, then what comes
-- is read away until the client closes, lingering_timeout passes without
-- a byte, or lingering_time in all.
local H = require "helper"
local gh = H.gh

describe("regress: an answer before the end of a body the server will not read", function()
  local BIG = string.rep("x", 16 * 1024 * 1024) -- past what the kernel buffers on both sides

  local function upload(port, head)
    local c = H.connect(port)
    local sent, err = c:send(head .. BIG) -- the whole body first, as curl does
    local ok = sent == #head + #BIG
    local st, h = H.http_response(c)
    local rest = { c:receive("*a") }
    c:close()
    return ok, err, st, h and h.connection, rest
  end

  it("413 over max_body_size: the client's send completes and it reads the 413", function()
    local s, port, stop = H.http_server(function(req) if req:body() then return 200, nil, "read" end end,
      { max_body_size = 1024 * 1024 })
    local ok, err, st, conn, rest = upload(port,
      "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: " .. #BIG .. "\r\n\r\n")
    assert.same({ true, nil, 413, "close" }, { ok, err, st, conn })
    assert.same({ nil, "closed", "" }, rest)
    assert.equal(1, s:stats().errors[413])
    stop()
  end)

  it("an answer without reading a chunked upload: the same", function()
    local _, port, stop = H.http_server(function() return 403, nil, "no" end)
    local ok, err, st, conn = upload(port, "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
      .. ("%x\r\n"):format(#BIG))
    assert.same({ true, nil, 403, "close" }, { ok, err, st, conn })
    stop()
  end)

  it("lingering is bounded: lingering_timeout without a byte, and lingering_time in all", function()
    local _, port, stop = H.http_server(function() return 403, nil, "no" end,
      { lingering_timeout = 0.2, lingering_time = 0.5 })
    -- silent after its head: the server waits lingering_timeout, then closes
    local c = H.connect(port)
    c:send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\nabc")
    assert.equal(403, (H.http_response(c)))
    local t0 = gh.clock()
    assert.same({ nil, "closed", "" }, { c:receive("*a") }) -- our FIN: the answer is whole
    c:close()
    -- one that keeps sending: closed after lingering_time in all
    local c2 = H.connect(port)
    c2:send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n")
    assert.equal(403, (H.http_response(c2)))
    t0 = gh.clock()
    local sent_ok = true
    while sent_ok and gh.clock() - t0 < 5 do
      sent_ok = c2:send(string.rep("y", 1000))
      gh.sleep(0.05)
    end
    assert.is_nil(sent_ok) -- reset once the server stopped lingering
    assert.is_true(gh.clock() - t0 < 2)
    c2:close(); stop()
  end)

  it("lingering_time = 0 closes at once, as before", function()
    local _, port, stop = H.http_server(function() return 403, nil, "no" end, { lingering_time = 0 })
    local c = H.connect(port)
    c:send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\nabc")
    assert.equal(403, (H.http_response(c)))
    c:close(); stop()
  end)
end)
