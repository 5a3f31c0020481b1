-- #12: the answer to a HEAD carried no Content-Length (RFC 9110 9.3.2: a
-- server SHOULD send the fields a GET's answer would carry), so `curl -I`
-- and caches saw no length for a resource they would fetch.
local H = require "helper"

describe("regress: HEAD without Content-Length", function()
  it("HEAD / answers with the GET's Content-Length and no body", function()
    local _, port, stop = H.http_server(function(_, res) res:finish("0123456789") end)
    local c = H.connect(port)
    c:send("HEAD / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
    local st, h = H.http_response(c, "HEAD")
    assert.same({ 200, "10" }, { st, h["content-length"] })
    local st2, _, body = H.http_response(c) -- the pipelined GET: no HEAD body bytes between
    assert.same({ 200, "0123456789" }, { st2, body })
    c:close(); stop()
  end)
end)
