-- #12: an answer given without reading the request's body said keep-alive
-- (no Connection: close) even when the server was then going to close the
-- connection: a body over drain_limit or max_body_size, a chunked body, an
-- Expect: 100-continue whose 100 was never sent (drain gives up on all of
-- them). A keep-alive client then sent its next request into a closed
-- connection (a POST is not retried: a user-visible error). The head now
-- says Connection: close whenever the connection will not carry another
-- request, as Go's server does; a body within the drain limit still keeps it.
local H = require "helper"

describe("regress: an answer over an unread body says whether the connection stays", function()
  local s, port, stop
  setup(function()
    s, port, stop = H.http_server(function(req, res)
      local how = req.path
      if how == "/read" then local b = assert(req:body()); return 200, nil, tostring(#b) end
      if how == "/big" then return 200, nil, string.rep("b", 5000) end -- the Lua finish (over 2 KiB)
      if how == "/write" then res:write("w"); res:flush(); return res:finish() end -- the head before the end
      return 401, nil, "no" -- the C answerer, the body never read
    end, { drain_limit = 1000, max_body_size = 100000 })
  end)
  teardown(function() stop() end)

  -- the answer to raw, and whether the connection then carries a GET
  local function exchange(raw, body)
    local c = H.connect(port)
    c:send(raw)
    if body then c:send(body) end
    local st, h, b = H.http_response(c)
    c:send("GET /read HTTP/1.1\r\nHost: x\r\n\r\n")
    local st2 = H.http_response(c)
    c:close()
    return st, h.connection, b, st2
  end
  local function post(path, n, extra)
    return ("POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n%s\r\n"):format(path, n, extra or "")
  end

  for _, path in ipairs({ "/", "/big", "/write" }) do
    it(path .. ": a body over drain_limit left unread -> Connection: close, closed", function()
      local st, conn, _, st2 = exchange(post(path, 5000), string.rep("x", 5000))
      assert.same({ path == "/" and 401 or 200, "close" }, { st, conn })
      assert.is_nil(st2)
    end)

    it(path .. ": a body within drain_limit left unread -> kept, drained, the next request answered", function()
      local st, conn, _, st2 = exchange(post(path, 500), string.rep("x", 500))
      assert.same({ path == "/" and 401 or 200, nil, 200 }, { st, conn, st2 })
    end)

    it(path .. ": a chunked body left unread -> Connection: close", function()
      local st, conn, _, st2 = exchange(("POST %s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"):format(path),
        "3\r\nabc\r\n0\r\n\r\n")
      assert.same({ "close" }, { conn })
      assert.is_number(st)
      assert.is_nil(st2)
    end)

    it(path .. ": Expect: 100-continue answered without the body -> no 100, Connection: close", function()
      local c = H.connect(port)
      c:send(post(path, 10, "Expect: 100-continue\r\n"))
      local st, h = H.http_response(c)
      assert.is_true(st ~= 100)
      assert.equal("close", h.connection)
      c:close()
    end)
  end

  it("a body over max_body_size -> Connection: close", function()
    local st, conn, _, st2 = exchange(post("/", 200000), string.rep("x", 1000))
    assert.same({ 401, "close" }, { st, conn })
    assert.is_nil(st2)
  end)

  it("a body the handler read, over drain_limit -> kept", function()
    local st, conn, b, st2 = exchange(post("/read", 5000), string.rep("x", 5000))
    assert.same({ 200, nil, "5000", 200 }, { st, conn, b, st2 })
  end)

  it("a chunked body the handler read -> kept", function()
    local st, conn, b, st2 = exchange("POST /read HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
      "3\r\nabc\r\n0\r\n\r\n")
    assert.same({ 200, nil, "3", 200 }, { st, conn, b, st2 })
  end)

  it("Expect: 100-continue and the body read -> 100, then kept", function()
    local c = H.connect(port)
    c:send(post("/read", 4, "Expect: 100-continue\r\n"))
    assert.equal(100, (H.http_response(c)))
    c:send("abcd")
    local st, h, b = H.http_response(c)
    assert.same({ 200, nil, "4" }, { st, h.connection, b })
    c:send("GET /read HTTP/1.1\r\nHost: x\r\n\r\n")
    assert.equal(200, (H.http_response(c)))
    c:close()
  end)
end)
