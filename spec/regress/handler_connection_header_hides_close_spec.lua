-- #12: a Connection header the handler set replaced the server's own: a
-- handler that sets `Connection: keep-alive` (code written for HTTP/1.0
-- clients does) on a connection the server was about to close (its last
-- request under max_requests, a shutdown, an HTTP/1.0 client that did not
-- ask for keep-alive, a body left unread) told the client it stays; and a
-- handler's `Connection: close` did not close it. Now a closing server
-- says Connection: close whatever the handler set, and the handler's
-- close closes. An upgrade (101) keeps the handler's value.
local H = require "helper"

describe("regress: the handler's Connection header", function()
  local function first_answer(opts, request, headers)
    local _, port, stop = H.http_server(function() return 200, headers, "x" end, opts)
    local c = H.connect(port)
    c:send(request)
    local st, h = H.http_response(c)
    local after = { c:receive("*a") } -- what follows: the close, or a timeout if it stays
    c:close(); stop()
    return st, h.connection, after
  end
  local GET = "GET / HTTP/1.1\r\nHost: x\r\n\r\n"

  it("keep-alive from the handler, the last request under max_requests: close", function()
    local st, conn, after = first_answer({ max_requests = 1 }, GET, { connection = "keep-alive" })
    assert.same({ 200, "close", nil, "closed" }, { st, conn, after[1], after[2] })
  end)

  it("keep-alive from the handler, an HTTP/1.0 client that did not ask: close", function()
    local st, conn, after = first_answer(nil, "GET / HTTP/1.0\r\n\r\n", { Connection = "keep-alive" })
    assert.same({ 200, "close", nil, "closed" }, { st, conn, after[1], after[2] })
  end)

  it("keep-alive from the handler over a body left unread past drain_limit: close", function()
    local st, conn = first_answer({ drain_limit = 10 },
      "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" .. string.rep("b", 100),
      { connection = { "keep-alive" } })
    assert.same({ 200, "close" }, { st, conn })
  end)

  -- two GETs in one send to a handler that sets Connection: value: the
  -- first answer's status and Connection, then the second's status (nil:
  -- the connection closed after the first)
  local function two_gets(value)
    local _, port, stop = H.http_server(function() return 200, { connection = value }, "x" end)
    local c = H.connect(port)
    c:send(GET .. GET)
    local st, h = H.http_response(c)
    local st2 = H.http_response(c)
    c:close(); stop()
    return st, h.connection, st2
  end

  it("close from the handler closes the connection (the second request is not answered)", function()
    assert.same({ 200, "Close", nil }, { two_gets("Close") })
  end)

  it("keep-alive from the handler on a connection that stays: as set", function()
    assert.same({ 200, "keep-alive", 200 }, { two_gets("keep-alive") })
  end)

  it("a 101's Connection: Upgrade stays, even on the last request", function()
    local _, port, stop = H.http_server(function(_, res)
      res.status = 101
      res.headers.connection = "Upgrade"
      res.headers.upgrade = "x-test"
      res:finish()
    end, { max_requests = 1 })
    local c = H.connect(port)
    c:send(GET)
    local st, h = H.http_response(c)
    assert.same({ 101, "Upgrade" }, { st, h.connection })
    c:close(); stop()
  end)
end)
