-- A peer's test tables replayed against http.serve: the request vectors of
-- Go 1.19's net/http server tests (serve_test.go: TestServerValidatesHostHeader,
-- TestServerValidatesHeaders, TestServerValidatesMethod,
-- TestUnsupportedTransferEncodingsReturn501; transfer_test.go:
-- TestParseTransferEncoding, TestParseContentLength; the Debian package
-- golang-1.19-src). Each vector is sent on a raw socket as Go's test sends
-- it; the status must be Go's, except where this module's contract
-- (docs/http.md, RFC 9112) says otherwise -- each such case says why.
local H = require "helper"

describe("http.serve against Go's net/http request vectors", function()
  local s, port, stop
  setup(function()
    s, port, stop = H.http_server(function() return 200, nil, "" end)
  end)
  teardown(function() stop() end)

  local function status_of(raw)
    local c = H.connect(port)
    c:send(raw)
    local st, h = H.http_response(c)
    c:close()
    return st, h
  end

  -- {request line's method and target ("" for none), version, header lines, Go's status, ours}
  local host_cases = {
    { "GET / ", "HTTP/0.9", "", 505 },
    { "GET / ", "HTTP/1.1", "", 400 },
    { "GET / ", "HTTP/1.1", "Host: \r\n", 200 },
    { "GET / ", "HTTP/1.1", "Host: 1.2.3.4\r\n", 200 },
    { "GET / ", "HTTP/1.1", "Host: foo.com\r\n", 200 },
    { "GET / ", "HTTP/1.1", "Host: foo-bar_baz.com\r\n", 200 },
    { "GET / ", "HTTP/1.1", "Host: foo.com:80\r\n", 200 },
    { "GET / ", "HTTP/1.1", "Host: ::1\r\n", 200 },
    { "GET / ", "HTTP/1.1", "Host: [::1]\r\n", 200 },
    { "GET / ", "HTTP/1.1", "Host: [::1]:80\r\n", 200 },
    { "GET / ", "HTTP/1.1", "Host: [::1%25en0]:80\r\n", 200 },
    { "GET / ", "HTTP/1.1", "Host: \6\r\n", 400 },
    { "GET / ", "HTTP/1.1", "Host: \255\r\n", 400 },
    { "GET / ", "HTTP/1.1", "Host: {\r\n", 400 },
    { "GET / ", "HTTP/1.1", "Host: }\r\n", 400 },
    { "GET / ", "HTTP/1.1", "Host: first\r\nHost: second\r\n", 400 },
    { "GET / ", "HTTP/1.0", "", 200 },
    { "GET / ", "HTTP/1.0", "Host: first\r\nHost: second\r\n", 400 },
    { "GET / ", "HTTP/1.0", "Host: \255\r\n", 400 },
    -- Go lets HTTP/2's prior-knowledge preface through to its h2 server;
    -- there is no HTTP/2 here: a version other than 1.0/1.1 is 505
    { "", "PRI * HTTP/2.0", "", 200, 505 },
    -- Go excuses CONNECT from Host (golang/go#18215, old clients); the
    -- contract does not: HTTP/1.1 without Host is 400 (RFC 9112 3.2 MUST)
    { "", "CONNECT golang.org:443 HTTP/1.1", "", 200, 400 },
    { "", "PRI / HTTP/2.0", "", 505 },
    { "GET / ", "HTTP/2.0", "", 505 },
    { "GET / ", "HTTP/3.0", "", 505 },
  }
  for _, case in ipairs(host_cases) do
    local want = case[5] or case[4]
    it(("Host: %q %q -> %d"):format(case[2], case[3], want), function()
      assert.equal(want, (status_of(case[1] .. case[2] .. "\r\n" .. case[3] .. "\r\n")))
    end)
  end

  local header_cases = {
    { "", 200 },
    { "Foo: bar\r\n", 200 },
    { "X-Foo: bar\r\n", 200 },
    { "Foo: a space\r\n", 200 },
    { "A space: foo\r\n", 400 },
    { "foo\255bar: foo\r\n", 400 },
    { "foo\0bar: foo\r\n", 400 },
    { "Foo : bar\r\n", 400 },
    { "Foo\t: bar\r\n", 400 },
    { "foo: foo foo\r\n", 200 },
    { "foo: foo\tfoo\r\n", 200 },
    { "foo: foo\0foo\r\n", 400 },
    { "foo: foo\127foo\r\n", 400 },
    { "foo: foo\255foo\r\n", 200 },
  }
  for _, case in ipairs(header_cases) do
    it(("header %q -> %d"):format(case[1], case[2]), function()
      assert.equal(case[2], (status_of("GET / HTTP/1.1\r\nHost: foo\r\n" .. case[1] .. "\r\n")))
    end)
  end

  it("a header past the size limit (Go: 2 MiB of value) -> 431", function()
    local c = H.connect(port)
    -- the server answers once the limit is passed: the rest may meet a
    -- closed connection, so the send's result is not the point
    c:send("GET / HTTP/1.1\r\nHost: foo\r\nFoo: " .. string.rep("x", 1 << 21) .. "\r\n\r\n")
    assert.equal(431, (H.http_response(c)))
    c:close()
  end)

  it("methods: GET -> 200, GE(T -> 400", function()
    assert.equal(200, (status_of("GET / HTTP/1.1\r\nHost: foo.example\r\n\r\n")))
    assert.equal(400, (status_of("GE(T / HTTP/1.1\r\nHost: foo.example\r\n\r\n")))
  end)

  -- Go answers a lone unknown coding with 501; RFC 9112 6.3 says a request
  -- whose last coding is not chunked MUST get 400, and the contract follows
  -- it. A known-bad byte (the CR) is 400 in both.
  for _, case in ipairs({ { "fugazi", 501, 400 }, { "foo-bar", 501, 400 }, { "unknown", 501, 400 },
                          { "\rchunked", 400 }, { "fugazi, chunked", 501 } }) do
    local want = case[3] or case[2]
    it(("Transfer-Encoding: %q -> %d, closed"):format(case[1], want), function()
      local st, h = status_of("POST / HTTP/1.1\r\nConnection: close\r\nHost: localhost\r\nTransfer-Encoding: "
        .. case[1] .. "\r\n\r\n")
      assert.same({ want, "close" }, { st, h.connection })
    end)
  end

  -- transfer_test.go's TestParseTransferEncoding: every one but plain
  -- chunked is an error there; here the framing errors are 400
  for _, case in ipairs({
    { { "chunked, chunked", "identity", "chunked" }, 400 },
    { { "" }, 400 },
    { { "chunked, identity" }, 400 },
    { { "chunked", "identity" }, 400 },
    { { "\11chunked" }, 400 },
    { { "chunked" }, 200 },
  }) do
    local lines = {}
    for i, v in ipairs(case[1]) do lines[i] = "Transfer-Encoding: " .. v .. "\r\n" end
    it(("Transfer-Encoding lines %q -> %d"):format(table.concat(case[1], " | "), case[2]), function()
      local st = status_of("POST / HTTP/1.1\r\nHost: x\r\n" .. table.concat(lines) .. "\r\n0\r\n\r\n")
      assert.equal(case[2], st)
    end)
  end

  -- TestParseContentLength: the value itself. The largest legal one
  -- parses (the handler, which reads no body, answers 200), but is past
  -- max_body_size: the connection cannot be drained and closes
  for _, case in ipairs({ { "3", 200 }, { "+3", 400, "close" }, { "-3", 400, "close" },
                          { "9223372036854775807", 200, "close" }, { "9223372036854775808", 400, "close" } }) do
    it(("Content-Length: %s -> %d"):format(case[1], case[2]), function()
      local c = H.connect(port)
      c:send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: " .. case[1] .. "\r\n\r\nabc")
      local st, h = H.http_response(c)
      assert.same({ case[2], case[3] }, { st, h.connection })
      if case[3] then assert.same({ nil, "closed", "" }, { c:receive("*a") }) end
      c:close()
    end)
  end

  it("counted what it refused", function()
    local errors = s:stats().errors
    assert.is_true((errors[400] or 0) >= 20)
    assert.is_true((errors[505] or 0) >= 4)
  end)
end)
