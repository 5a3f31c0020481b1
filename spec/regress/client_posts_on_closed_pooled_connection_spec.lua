-- #12: the client reused a pooled keep-alive connection the server had
-- closed while it sat idle (Node's default keep-alive timeout is 5 s,
-- greenhub's and nginx's 75 s): a GET was retried, but a POST (not
-- replayable) failed with "closed" every other time. The pool now sees
-- the EOF (or bytes nobody asked for) before it hands a connection out.
local H = require "helper"
local gh = H.gh
local http = require "greenhub.http"

describe("regress: a POST on a pooled connection the server closed", function()
  it("POSTs spaced past the server's idle timeout all succeed", function()
    local s, port, stop = H.http_server(function(req) return 200, nil, "got " .. (req:body() or "") end,
      { idle_timeout = 0.05 })
    local c = http.client()
    for i = 1, 4 do
      local res, err = c:fetch({ url = "http://127.0.0.1:" .. port .. "/", method = "POST", body = "x" .. i })
      assert.equal("got x" .. i, res and res.body, err)
      gh.sleep(0.15)
    end
    assert.equal(4, s:stats().connections)
    stop()
  end)

  it("a pooled connection the server wrote to unasked is not reused", function()
    local port, stop, held = H.raw_server(function(s)
      repeat local x = s:receive() until x == "" or not x
      s:send("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
      gh.sleep(0.02)
      s:send("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstale") -- nobody asked
    end)
    local c = http.client()
    for _ = 1, 2 do
      assert.equal("ok", assert(c:fetch({ url = "http://127.0.0.1:" .. port .. "/", method = "POST", body = "b" })).body)
      gh.sleep(0.1)
    end
    assert.equal(2, #held)
    stop()
  end)
end)
