-- #12: the client retries a request on a reused keep-alive connection that
-- fails before any byte of the answer (a server closing idle connections
-- races every client), but only when the failure was a clean close: the
-- reader gave (nil, "closed", 0). A server that closes the connection with
-- our request unread in its buffer resets it (RST), and the reset came as
-- (nil, "closed") with no byte count, so the GET failed instead of going
-- out again on a new connection. The reset now carries the count as well.
local H = require "helper"
local gh = H.gh
local http = require "greenhub.http"

describe("regress: a pooled connection reset under a request", function()
  -- answers one request keep-alive, then closes without reading the next
  -- (the client's next request is in flight: the kernel resets)
  local function server()
    return H.raw_server(function(s)
      repeat local x = s:receive() until x == "" or not x
      s:send("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
      gh.sleep(0.05)
      s:close()
    end)
  end

  it("a GET is sent again on a new connection and answered", function()
    local port, stop, held = server()
    local c = http.client()
    local url = "http://127.0.0.1:" .. port .. "/"
    assert.equal("ok", assert(c:fetch(url)).body)
    local res, err = c:fetch(url) -- on the pooled connection, closed 50 ms later
    assert.equal("ok", res and res.body, err)
    assert.equal(2, #held)
    stop()
  end)

  it("a POST is not (it may have been acted on): nil, 'closed'", function()
    local port, stop, held = server()
    local c = http.client()
    local url = "http://127.0.0.1:" .. port .. "/"
    assert.equal("ok", assert(c:fetch(url)).body)
    assert.same({ nil, "closed" }, { c:fetch({ url = url, method = "POST", body = "x" }) })
    assert.equal(1, #held)
    stop()
  end)

  it("a reset after part of the head is not retried either", function()
    local port, stop = H.raw_server(function(s)
      repeat local x = s:receive() until x == "" or not x
      s:send("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
      repeat local x = s:receive() until x == "" or not x
      s:send("HTTP/1.1 200 O")
      s:setoption("linger", { on = true, timeout = 0 }) -- close with RST
      s:close()
    end)
    local c = http.client()
    local url = "http://127.0.0.1:" .. port .. "/"
    assert.equal("ok", assert(c:fetch(url)).body)
    local res, err = c:fetch(url)
    assert.is_nil(res)
    assert.equal("closed", err)
    stop()
  end)
end)
