-- The strict HTTP/1.x head parser and chunked decoder (csrc/http.c), run
-- over a green socket's receive buffer (s:_httphead, s:_httpchunk): the
-- groundwork of greenhub.http. Every rejection rule of the contract
-- (shared design http.md, research §2.4) with its status.
local H = require "helper"
local gh = H.gh
local core = require "greenhub.core"

local function head_of(raw, kind, ...)
  local c, s = H.tcp_pair()
  c:send(raw)
  s:settimeout(2)
  local r = table.pack(s:_httphead(kind or "request", ...))
  c:close(); s:close()
  return table.unpack(r, 1, r.n)
end

describe("http head parser", function()
  it("parses a request head: method, target, version, headers, framing", function()
    local h = assert(head_of("GET /a/b?x=1 HTTP/1.1\r\nHost: example\r\nX-A: 1\r\nx-a:  2 \r\nAccept: */*\r\n\r\n",
      "request", nil, nil, nil, nil, nil, nil, true)) -- with the raw field list
    assert.equal("GET", h.method)
    assert.equal("/a/b?x=1", h.target)
    assert.equal(1.1, h.version)
    assert.equal("example", h.headers.host)
    assert.equal("1, 2", h.headers["x-a"]) -- repeated fields joined, OWS trimmed
    assert.same({ "Host", "example", "X-A", "1", "x-a", "2", "Accept", "*/*" }, h.fields)
    assert.equal("none", h._kind)
    assert.is_true(h.keep_alive)
  end)

  it("reads a head that arrives a byte at a time, and leaves the body in the buffer", function()
    local c, s = H.tcp_pair()
    local raw = "POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nhello"
    gh.spawn(function() for i = 1, #raw do c:send(raw:sub(i, i)); gh.sleep(0) end end)
    s:settimeout(5)
    local h = assert(s:_httphead("request"))
    assert.equal("length", h._kind)
    assert.equal(5, h._left)
    assert.is_true(h.expect_continue)
    assert.equal("hello", s:receive(5))
    c:close(); s:close()
  end)

  it("pipelined requests come out one head at a time", function()
    local c, s = H.tcp_pair()
    c:send("GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n")
    assert.equal("/1", s:_httphead("request").target)
    assert.equal("/2", s:_httphead("request").target)
    c:close()
    assert.same({ nil, "closed", 0 }, { s:_httphead("request") })
    s:close()
  end)

  it("keep-alive per version and Connection", function()
    assert.is_false(head_of("GET / HTTP/1.0\r\n\r\n").keep_alive)
    assert.is_true(head_of("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive)
    assert.is_false(head_of("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n").keep_alive)
    assert.is_true(head_of("GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n").upgrade)
    assert.equal("/", head_of("\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n").target) -- one leading CRLF
  end)

  local rejections = {
    { "malformed request line", "GET  / HTTP/1.1\r\nHost: h\r\n\r\n", 400 },
    { "lower-case version", "GET / http/1.1\r\nHost: h\r\n\r\n", 400 },
    { "HTTP/2.0", "GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505 },
    { "HTTP/0.9", "GET / HTTP/0.9\r\n\r\n", 505 },
    { "space before a colon", "GET / HTTP/1.1\r\nHost : h\r\n\r\n", 400 },
    { "obs-fold", "GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n", 400 },
    { "whitespace before the first field", "GET / HTTP/1.1\r\n Host: h\r\n\r\n", 400 },
    { "bare CR", "GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n", 400 },
    { "bare LF", "GET / HTTP/1.1\nHost: h\n\n", 400 },
    { "non-token name", "GET / HTTP/1.1\r\nHost: h\r\nX(y): 1\r\n\r\n", 400 },
    { "empty name", "GET / HTTP/1.1\r\nHost: h\r\n: 1\r\n\r\n", 400 },
    { "NUL in a value", "GET / HTTP/1.1\r\nHost: h\r\nX: a\0b\r\n\r\n", 400 },
    { "DEL in a value", "GET / HTTP/1.1\r\nHost: h\r\nX: a\127b\r\n\r\n", 400 },
    { "CL and TE", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400 },
    { "two Content-Lengths", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n", 400 },
    { "Content-Length list", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 3\r\n\r\n", 400 },
    { "signed Content-Length", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +3\r\n\r\n", 400 },
    { "Content-Length overflow", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999\r\n\r\n", 400 },
    { "chunked not last", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400 },
    { "chunked twice", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 400 },
    { "TE in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400 },
    { "unknown coding before chunked", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: fugazi, chunked\r\n\r\n", 501 },
    { "gzip before chunked (decoded nowhere)", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501 },
    { "missing Host on 1.1", "GET / HTTP/1.1\r\nX: 1\r\n\r\n", 400 },
    { "two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400 },
    { "two Hosts on 1.0", "GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", 400 },
    { "a Host with a space", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400 },
    { "a Host with userinfo", "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", 400 },
  }
  for _, case in ipairs(rejections) do
    it("rejects " .. case[1] .. " with " .. case[3], function()
      local h, why, status = head_of(case[2])
      assert.is_nil(h)
      assert.equal(case[3], status, why)
      assert.is_string(why)
    end)
  end

  it("limits: request line 414, head 431, field count 431", function()
    local h, _, st = head_of("GET /" .. string.rep("a", 200) .. " HTTP/1.1\r\nHost: h\r\n\r\n", "request", 100)
    assert.is_nil(h); assert.equal(414, st)
    h, _, st = head_of("GET / HTTP/1.1\r\nHost: h\r\nX: " .. string.rep("b", 500) .. "\r\n\r\n", "request", 100, 300)
    assert.is_nil(h); assert.equal(431, st)
    local many = {}
    for i = 1, 12 do many[i] = "X" .. i .. ": v\r\n" end
    h, _, st = head_of("GET / HTTP/1.1\r\nHost: h\r\n" .. table.concat(many) .. "\r\n", "request", nil, nil, 10)
    assert.is_nil(h); assert.equal(431, st)
  end)

  it("an over-long line is refused before it ends (no unbounded buffering)", function()
    local c, s = H.tcp_pair()
    c:send("GET /" .. string.rep("a", 5000)) -- no CRLF, ever
    s:settimeout(2)
    local h, _, st = s:_httphead("request", 1000)
    assert.is_nil(h); assert.equal(414, st)
    c:close(); s:close()
  end)

  it("parses response heads, with the request method deciding the body", function()
    local h = assert(head_of("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", "response"))
    assert.equal(200, h.status); assert.equal("OK", h.reason); assert.equal("length", h._kind)
    assert.equal("none", head_of("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n", "response", nil, nil, nil, "HEAD")._kind)
    assert.equal("none", head_of("HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n", "response")._kind)
    local c = head_of("HTTP/1.0 200 OK\r\n\r\n", "response")
    assert.equal("close", c._kind); assert.is_false(c.keep_alive)
    assert.equal(204, head_of("HTTP/1.1 204\r\n\r\n", "response").status) -- no reason phrase
  end)
end)

describe("chunked bodies", function()
  local function decode(raw, max)
    local c, s = H.tcp_pair()
    gh.spawn(function() for i = 1, #raw, 7 do c:send(raw:sub(i, i + 6)); gh.sleep(0) end end)
    s:settimeout(2)
    local dec = core._httpchunked()
    local parts = {}
    while true do
      local d, err, x = s:_httpchunk(dec, max)
      if not d then c:close(); s:close(); return table.concat(parts), err, x, parts end
      parts[#parts + 1] = d
    end
  end

  it("decodes data and trailers, chunk extensions ignored, pieces bounded by max", function()
    local body, how, trailers, parts = decode("5;name=value\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: 1\r\n\r\n", 3)
    assert.equal("hello world", body)
    assert.equal("end", how)
    assert.same({ "X-Sum", "1" }, trailers)
    for _, p in ipairs(parts) do assert.is_true(#p <= 3) end
  end)

  for _, case in ipairs({
    { "a 0x prefix", "0x5\r\nhello\r\n0\r\n\r\n" },
    { "a chunk-size overflow", "11111111111111111\r\nx\r\n" },
    { "junk after the size", "5 x\r\nhello\r\n0\r\n\r\n" },
    { "data without CRLF", "5\r\nhelloXX0\r\n\r\n" },
    { "a bare LF", "5\nhello\r\n0\r\n\r\n" },
    { "a bad trailer", "0\r\nBad Name: 1\r\n\r\n" },
  }) do
    it("rejects " .. case[1], function()
      local _, why, status = decode(case[2])
      assert.equal(400, status, why)
    end)
  end
end)
