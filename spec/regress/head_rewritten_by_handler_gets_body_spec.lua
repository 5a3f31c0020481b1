-- #12: the server decided whether an answer carries a body from req.method
-- and req.version as they were when the handler finished, so a handler
-- that routes HEAD as GET by rewriting req.method (common in routers) sent
-- a body to a HEAD: the client read it as the start of the next answer
-- and the connection went out of step. The answer now follows the request
-- as it was received.
local H = require "helper"

describe("regress: HEAD rewritten by the handler gets a body", function()
  local function check(handler, body)
    local _, port, stop = H.http_server(handler)
    local c = H.connect(port)
    c:send("HEAD / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
    local st, h = H.http_response(c, "HEAD")
    assert.same({ 200, tostring(#body) }, { st, h["content-length"] })
    local st2, _, got = H.http_response(c) -- the pipelined GET right after, no HEAD body between
    assert.same({ 200, body }, { st2, got })
    c:close(); stop()
  end

  it("a small whole body (the C finisher)", function()
    check(function(req, res)
      if req.method == "HEAD" then req.method = "GET" end
      res:finish("0123456789")
    end, "0123456789")
  end)

  it("written, then finished (the Lua finish)", function()
    check(function(req, res)
      if req.method == "HEAD" then req.method = "GET" end
      res:write("01234")
      res:finish("56789")
    end, "0123456789")
  end)

  it("a handler that also rewrites req.version keeps the 1.1 framing", function()
    local _, port, stop = H.http_server(function(req, res)
      if req.method == "HEAD" then req.method = "GET"; req.version = 1.0 end
      res:finish("abc")
    end)
    local c = H.connect(port)
    c:send("HEAD / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
    local st, h = H.http_response(c, "HEAD")
    assert.same({ 200, "3" }, { st, h["content-length"] })
    assert.is_nil(h.connection) -- still a 1.1 keep-alive answer
    local st2, _, got = H.http_response(c)
    assert.same({ 200, "abc" }, { st2, got })
    c:close(); stop()
  end)
end)
