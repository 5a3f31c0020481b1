-- #12: a request with `Transfer-Encoding: gzip, chunked` was accepted and
-- its body handed to the handler still gzip-coded: the server decodes no
-- coding but chunked, so req:body() returned compressed bytes as if they
-- were the content (and nothing said so but the header). RFC 9112 6.1: a
-- transfer coding the server does not understand SHOULD get 501; Go and
-- nginx take chunked alone. Now 501 and close, the handler never runs. A
-- response keeps its codings: the client hands the body over as it came.
local H = require "helper"

describe("regress: a request body under gzip transfer coding", function()
  for _, coding in ipairs({ "gzip, chunked", "x-gzip, chunked", "deflate,chunked", "compress, chunked",
                            "GZIP , chunked" }) do
    it("Transfer-Encoding: " .. coding .. " -> 501, closed, no handler", function()
      local called = 0
      local s, port, stop = H.http_server(function(req)
        called = called + 1
        return 200, nil, req:body()
      end)
      local c = H.connect(port)
      c:send("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: " .. coding .. "\r\n\r\n5\r\n\31\139\8\0\0\r\n0\r\n\r\n")
      local st, h = H.http_response(c)
      assert.same({ 501, "close" }, { st, h.connection })
      assert.same({ nil, "closed", "" }, { c:receive("*a") })
      assert.equal(0, called)
      assert.equal(1, s:stats().errors[501])
      c:close(); stop()
    end)
  end

  it("plain chunked is still read", function()
    local _, port, stop = H.http_server(function(req) return 200, nil, req:body() end)
    local c = H.connect(port)
    c:send("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
    local st, _, body = H.http_response(c)
    assert.same({ 200, "abc" }, { st, body })
    c:close(); stop()
  end)

  it("the client still takes a response in gzip, chunked, as it came", function()
    local gh = require "greenhub"
    local http = require "greenhub.http"
    local l = assert(gh.listen("127.0.0.1", 0))
    local port = select(2, l:getsockname())
    local t = gh.spawn(function()
      local c = l:accept()
      c:receive("*l"); repeat local line = c:receive("*l") until line == ""
      c:send("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nConnection: close\r\n\r\n3\r\nxyz\r\n0\r\n\r\n")
      c:close()
    end)
    local res = assert(http.fetch("http://127.0.0.1:" .. port .. "/"))
    assert.same({ 200, "xyz", "gzip, chunked" }, { res.status, res.body, res.headers["transfer-encoding"] })
    t:wait(); l:close()
  end)
end)
