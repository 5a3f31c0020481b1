-- http.static(root): files with gh.fs and sendfile, ranges, conditional
-- GETs, and nothing outside root.
local H = require "helper"
local gh = H.gh
local http = require "greenhub.http"

local root, port, server, stop
setup(function()
  root = os.tmpname(); os.remove(root)
  assert(os.execute("mkdir -p " .. root .. "/sub " .. root .. "/empty"))
  local function put(name, data) local f = assert(io.open(root .. "/" .. name, "wb")); f:write(data); f:close() end
  put("index.html", "<h1>home</h1>\n")
  put("sub/t.txt", "abcdefghij")
  put("app.js", "x()")
  put("data.bin", string.rep("\0\1\2\255", 262144)) -- 1 MiB
  put("noext", "?")
  assert(os.execute("ln -s /etc/passwd " .. root .. "/evil"))
  assert(os.execute("ln -s /etc " .. root .. "/evildir"))
  assert(os.execute("ln -s sub/t.txt " .. root .. "/inside"))
  local l = assert(gh.listen("127.0.0.1", 0))
  _, port = l:getsockname()
  server = http.server(http.static(root))
  stop = gh.spawn(server.serve, server, l)
end)
teardown(function() server:shutdown(1); os.execute("rm -rf " .. root) end)

-- one raw request: status, headers (lower-case), body
local function get(target, extra, method)
  local c = assert(gh.connect("127.0.0.1", port))
  c:settimeout(10)
  c:send((method or "GET") .. " " .. target .. " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" .. (extra or "") .. "\r\n")
  local all = assert(c:receive("*a"))
  c:close()
  local head, body = all:match("^(.-)\r\n\r\n(.*)$")
  local status = tonumber(head:match("^HTTP/1.1 (%d+)"))
  local h = {}
  for k, v in head:gmatch("\r\n([^:]+):%s*([^\r]*)") do h[k:lower()] = v end
  return status, h, body
end

describe("http.static", function()
  it("serves files with their types, index.html for a directory, HEAD without a body", function()
    local s, h, b = get("/sub/t.txt")
    assert.same({ 200, "abcdefghij", "text/plain; charset=utf-8", "10", "bytes" },
      { s, b, h["content-type"], h["content-length"], h["accept-ranges"] })
    assert.matches("^%a%a%a, %d%d %a%a%a %d%d%d%d %d%d:%d%d:%d%d GMT$", h["last-modified"])
    s, h, b = get("/")
    assert.same({ 200, "<h1>home</h1>\n", "text/html; charset=utf-8" }, { s, b, h["content-type"] })
    assert.equal("text/javascript; charset=utf-8", select(2, get("/app.js"))["content-type"])
    assert.equal("application/octet-stream", select(2, get("/noext"))["content-type"])
    s, h, b = get("/sub/t.txt", nil, "HEAD")
    assert.same({ 200, "", "10" }, { s, b, h["content-length"] })
    assert.equal(404, (get("/empty")))
    assert.equal(404, (get("/nope.txt")))
    assert.equal(405, (get("/sub/t.txt", nil, "POST")))
    assert.equal(200, (get("/inside"))) -- a link that stays inside root
    assert.equal(200, (get("/sub/./t.txt")))
    assert.equal(200, (get("/sub/t%2etxt")))
  end)

  it("a 1 MiB file goes out whole and byte exact (sendfile), also in ranges", function()
    local f = io.open(root .. "/data.bin", "rb"); local want = f:read("a"); f:close()
    local s, h, b = get("/data.bin")
    assert.equal(200, s); assert.equal(#want, #b); assert.is_true(want == b)
    s, h, b = get("/data.bin", "Range: bytes=1000-524287\r\n")
    assert.equal(206, s)
    assert.equal("bytes 1000-524287/1048576", h["content-range"])
    assert.is_true(want:sub(1001, 524288) == b)
  end)

  it("keep-alive requests do not stall between head and body (no Nagle wait)", function()
    -- head and file went out as two writes: with Nagle on, the body
    -- waited for the peer's delayed ACK (40 ms a request)
    local c = assert(gh.connect("127.0.0.1", port))
    c:settimeout(10)
    local t0 = gh.clock()
    for _ = 1, 20 do
      c:send("GET /sub/t.txt HTTP/1.1\r\nHost: x\r\n\r\n")
      assert.equal("HTTP/1.1 200 OK", c:receive())
      repeat local l = c:receive() until l == ""
      assert.equal("abcdefghij", c:receive(10))
    end
    c:close()
    assert.is_true(gh.clock() - t0 < H.scale(0.4), ("20 requests took %.2f s"):format(gh.clock() - t0))
  end)

  it("ranges: a-b, a-, -n, past the end, unsatisfiable, several (whole file)", function()
    local cases = {
      { "bytes=2-4", 206, "cde", "bytes 2-4/10" },
      { "bytes=7-", 206, "hij", "bytes 7-9/10" },
      { "bytes=-3", 206, "hij", "bytes 7-9/10" },
      { "bytes=-30", 206, "abcdefghij", "bytes 0-9/10" },
      { "bytes=8-100", 206, "ij", "bytes 8-9/10" },
      { "bytes=10-", 416, nil, "bytes */10" },
      { "bytes=5-2", 416, nil, "bytes */10" },
      { "bytes=0-1,4-5", 200, "abcdefghij", nil },
      { "items=0-1", 200, "abcdefghij", nil },
    }
    for _, c in ipairs(cases) do
      local s, h, b = get("/sub/t.txt", "Range: " .. c[1] .. "\r\n")
      assert.equal(c[2], s, c[1])
      if c[3] then assert.equal(c[3], b, c[1]) end
      assert.equal(c[4], h["content-range"], c[1])
    end
  end)

  it("If-Modified-Since: 304 when not modified since, 200 when it was", function()
    local _, h = get("/sub/t.txt")
    local lm = h["last-modified"]
    assert.equal(304, (get("/sub/t.txt", "If-Modified-Since: " .. lm .. "\r\n")))
    assert.equal(200, (get("/sub/t.txt", "If-Modified-Since: Thu, 01 Jan 1970 00:00:00 GMT\r\n")))
    assert.equal(200, (get("/sub/t.txt", "If-Modified-Since: yesterday\r\n")))
    local t = http._parse_imf("Sun, 06 Nov 1994 08:49:37 GMT")
    assert.equal(784111777, t)
    assert.equal("Sun, 06 Nov 1994 08:49:37 GMT", http._imf_date(t))
  end)

  it("refuses every way out of root", function()
    for _, target in ipairs({ "/../etc/passwd", "/sub/../../etc/passwd", "/%2e%2e/etc/passwd",
        "/%2E%2E/%2e%2e/etc/passwd", "/sub/%2e%2e%2f%2e%2e%2fetc/passwd", "/..%2f..%2fetc/passwd",
        "/evil", "/evildir/passwd", "/evildir/" }) do
      local s, _, b = get(target)
      assert.is_true(s == 403 or s == 404 or s == 400, target .. " -> " .. tostring(s))
      assert.is_nil(b:find("root:", 1, true), target)
    end
    assert.equal(400, (get("/a%00b")))
    assert.equal(400, (get("/a%zzb")))
  end)

  it("shares an open file for cache_ttl seconds: a file replaced by rename is seen after it", function()
    local l = assert(gh.listen("127.0.0.1", 0))
    local _, p = l:getsockname()
    local s = http.server(http.static(root, { cache_ttl = 0.2 }))
    local t = gh.spawn(s.serve, s, l)
    local function fetch()
      local c = assert(gh.connect("127.0.0.1", p)); c:settimeout(5)
      c:send("GET /swap.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
      local all = c:receive("*a"); c:close()
      return all:match("\r\n\r\n(.*)$")
    end
    local f = io.open(root .. "/swap.txt", "wb"); f:write("old version"); f:close()
    assert.equal("old version", fetch())
    f = io.open(root .. "/swap.new", "wb"); f:write("the new one"); f:close()
    assert(os.rename(root .. "/swap.new", root .. "/swap.txt"))
    assert.equal("old version", fetch()) -- the shared open file, consistent
    gh.sleep(0.25)
    assert.equal("the new one", fetch())
    s:shutdown(1); t:wait()
  end)

  it("serves over TLS too (no sendfile there)", function()
    if not gh.tls.available then pending("lua-sec missing") return end
    local _, crt, dir = H.self_signed()
    local l = assert(gh.tls.listen("127.0.0.1", 0, { certificate = crt, key = dir .. "/key.pem" }))
    local _, p = l:getsockname()
    local s = http.server(http.static(root))
    local t = gh.spawn(s.serve, s, l)
    local c = http.client{ tls = { cafile = crt } }
    local res = assert(c:fetch("https://127.0.0.1:" .. p .. "/data.bin"))
    local f = io.open(root .. "/data.bin", "rb"); local want = f:read("a"); f:close()
    assert.equal(200, res.status)
    assert.is_true(res.body == want)
    res = assert(c:fetch{ url = "https://127.0.0.1:" .. p .. "/sub/t.txt", headers = { range = "bytes=3-5" } })
    assert.same({ 206, "def" }, { res.status, res.body })
    s:shutdown(1); t:wait()
    os.execute("rm -rf " .. dir)
  end)
end)
