-- #12: an error raised by a handler after req:hijack() (a WebSocket
-- handler's, say) was swallowed: nothing reported it, and the hijacked
-- socket stayed open until the collector found it. It is now reported like
-- any handler error (with the handler's own stack) and the socket closes;
-- nothing else is sent on it.
local H = require "helper"
local gh = H.gh

describe("regress: a hijacked handler's error was swallowed", function()
  it("is reported, and the hijacked socket closes with nothing more sent", function()
    local reported
    gh.onerror(function(_, err) reported = err end)
    local _, port, stop = H.http_server(function(req)
      local sock = req:hijack()
      sock:send("upgraded\n")
      error("after the hijack")
    end)
    local c = H.connect(port)
    c:send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert.equal("upgraded", c:receive())
    local line, err, partial = c:receive()
    assert.same({ nil, "closed", "" }, { line, err, partial }) -- closed, no 500 after the handler's bytes
    gh.sleep(0.01)
    gh.onerror(nil)
    assert.matches("after the hijack", reported)
    assert.matches("hijacked_handler_error_swallowed_spec", reported) -- the handler's own stack
    c:close(); stop()
  end)

  it("a hijacked handler that returns keeps its socket open", function()
    local kept
    local _, port, stop = H.http_server(function(req)
      kept = req:hijack()
      kept:send("mine\n")
    end)
    local c = H.connect(port)
    c:send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert.equal("mine", c:receive())
    c:settimeout(0.1)
    local line, err = c:receive()
    assert.same({ nil, "timeout" }, { line, err }) -- still open
    kept:send("still mine\n")
    c:settimeout(5)
    assert.equal("still mine", c:receive())
    kept:close(); c:close(); stop()
  end)
end)
