-- greenhub.http's client: fetch, request in socket.http's shapes, the
-- keep-alive pool, retry on a stale pooled connection, redirects, chunked
-- uploads, streaming; against greenhub's server and Python's.
local H = require "helper"
local gh = H.gh
local http = require "greenhub.http"

local function start(handler, opts)
  local s, port, stop = H.http_server(handler, opts)
  return s, "http://127.0.0.1:" .. port, stop
end

describe("http client", function()
  it("fetch: status, headers, body; connections are reused", function()
    local s, base, stop = start(function(req) return 200, { ["x-path"] = req.path }, "hi " .. req.path end)
    local c = http.client()
    for i = 1, 20 do
      local res = assert(c:fetch(base .. "/p" .. i))
      assert.equal(200, res.status)
      assert.equal("hi /p" .. i, res.body)
      assert.equal("/p" .. i, res.headers["x-path"])
    end
    assert.equal(1, s:stats().connections) -- one pooled connection served all twenty
    stop()
  end)

  it("a pooled connection idle for the client's idle_timeout is not reused", function()
    local s, base, stop = start(function() return 200, nil, "ok" end)
    local c = http.client({ idle_timeout = 0.15 })
    assert.equal("ok", assert(c:fetch(base .. "/")).body)
    gh.sleep(0.02)
    assert.equal("ok", assert(c:fetch(base .. "/")).body)
    assert.equal(1, s:stats().connections) -- idle 20 ms: reused
    gh.sleep(0.3)
    assert.equal("ok", assert(c:fetch(base .. "/")).body)
    assert.equal(2, s:stats().connections) -- idle 300 ms: a new one
    assert.equal("ok", assert(c:fetch(base .. "/")).body)
    assert.equal(2, s:stats().connections)
    stop()
  end)

  it("max_body_size: a longer body is refused (nil, 'body too large') and its connection closed", function()
    local s, base, stop = start(function(req, res)
      local n = tonumber(req.query)
      if req.path == "/chunked" then
        for _ = 1, n // 100 do res:write(("c"):rep(100)) end
        return res:finish()
      end
      return 200, { ["content-length"] = n }, ("x"):rep(n) -- (over 2 KiB it would go chunked)
    end)
    local c = http.client({ max_body_size = 1000 })
    assert.equal(1000, #assert(c:fetch(base .. "/?1000")).body) -- at the limit: whole
    assert.same({ nil, "body too large" }, { c:fetch(base .. "/?1001") })
    assert.same({ nil, "body too large" }, { c:fetch(base .. "/?100000") }) -- past the inline size
    assert.same({ nil, "body too large" }, { c:fetch(base .. "/chunked?5000") })
    assert.equal(5000, #assert(c:fetch({ url = base .. "/chunked?5000", max_body_size = 5000 })).body)
    assert.equal(100000, #assert(c:fetch({ url = base .. "/?100000", max_body_size = false })).body)
    local before = s:stats().connections
    assert.equal(10, #assert(c:fetch(base .. "/?10")).body)
    assert.equal(10, #assert(c:fetch(base .. "/?10")).body)
    assert.equal(before, s:stats().connections) -- a body within the limit leaves the connection pooled
    -- streamed: res:body([max]), the fetch's limit by default
    local res = assert(c:fetch({ url = base .. "/chunked?3000", stream = true }))
    local b, err, partial = res:body()
    assert.same({ nil, "body too large" }, { b, err })
    assert.is_true(#partial > 1000)
    res = assert(c:fetch({ url = base .. "/?3000", stream = true }))
    assert.same({ nil, "body too large", "" }, { res:body(2999) }) -- announced too large: not read
    res = assert(c:fetch({ url = base .. "/?3000", stream = true }))
    assert.equal(3000, #assert(res:body(3000)))
    assert.has_error(function() res:body("many") end, "bad argument #1 to 'body' (non-negative number expected)")
    assert.has_error(function() c:fetch({ url = base .. "/?1", max_body_size = "1k" }) end,
      "bad argument #1 to 'fetch' (max_body_size: non-negative number or false expected)")
    assert.has_error(function() http.client({ max_body_size = -1 }) end,
      "bad argument #1 to 'client' (max_body_size: non-negative number or false expected)")
    -- without a limit (the default, as socket.http): any size
    assert.equal(200000, #assert(http.client():fetch(base .. "/?200000")).body)
    stop()
  end)

  it("timeout bounds each wait, not the whole fetch (as socket.http): a trickling server is waited for", function()
    local d = H.scale(0.1) -- a byte every d; each wait's bound 3 d
    local port, stop = H.raw_server(function(s)
      s:settimeout(5)
      repeat local l = s:receive() until l == "" or not l
      s:send("HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n")
      for i = 1, 6 do gh.sleep(d); s:send(tostring(i)) end
    end)
    local t0 = gh.clock()
    local res = assert(http.client({ timeout = 3 * d }):fetch("http://127.0.0.1:" .. port .. "/"))
    assert.equal("123456", res.body)
    assert.is_true(gh.clock() - t0 >= 5 * d) -- longer than timeout in all, no wait longer than it
    stop()
  end)

  it("a body that came with its head: whole, or streamed in pieces of at most max", function()
    local _, base, stop = start(function() return 200, nil, "0123456789" end)
    local c = http.client()
    assert.equal("0123456789", assert(c:fetch(base .. "/")).body)
    local res = assert(c:fetch({ url = base .. "/", stream = true }))
    local parts = {}
    while true do
      local d, err = res:read(3)
      assert.is_nil(err)
      if not d then break end
      assert.is_true(#d <= 3)
      parts[#parts + 1] = d
    end
    assert.equal("0123456789", table.concat(parts))
    -- the connection went back to the pool after each: one more works
    assert.equal("0123456789", assert(c:fetch(base .. "/")).body)
    stop()
  end)

  it("the response object: reason, version, keep_alive, headers made on their first look", function()
    local _, base, stop = start(function(req, res)
      res.headers["x-r"] = { "1", "2" }
      res.status = req.path == "/made" and 201 or 200
      if req.path == "/made" then res.headers.location = "/elsewhere" end
      res:finish("body")
    end)
    local c = http.client()
    local res = assert(c:fetch(base .. "/"))
    assert.same({ 200, "OK", 1.1, true, "body" }, { res.status, res.reason, res.version, res.keep_alive, res.body })
    assert.is_nil(rawget(res, "headers"))
    assert.equal("1, 2", res.headers["x-r"])
    assert.equal("4", res.headers["content-length"])
    assert.equal(res.headers, rawget(res, "headers"))
    -- res:header_list(): the lines as they came, repeats apart (before and
    -- after the look above)
    local list = res:header_list()
    local xr = {}
    for _, f in ipairs(list) do if f[1] == "x-r" then xr[#xr + 1] = f[2] end end
    assert.same({ "1", "2" }, xr)
    local function names(l) local t = {} for i, f in ipairs(l) do t[i] = f[1] end return t end
    assert.same(names(list), names(assert(c:fetch(base .. "/")):header_list())) -- (no look first)
    -- a Location on a status that is no redirect is not followed
    res = assert(c:fetch(base .. "/made"))
    assert.same({ 201, "body", "/elsewhere" }, { res.status, res.body, res.headers.location })
    stop()
    -- an HTTP/1.0 answer carries its own version, and its connection is not kept
    local l = assert(gh.listen("127.0.0.1", 0))
    local _, port = l:getsockname()
    local t = gh.spawn(function()
      local s = l:accept()
      repeat local line = s:receive() until line == ""
      s:send("HTTP/1.0 200 Fine\r\nContent-Length: 2\r\n\r\nok")
      s:close()
    end)
    res = assert(c:fetch("http://127.0.0.1:" .. port .. "/"))
    assert.same({ 200, "Fine", 1.0, false, "ok" }, { res.status, res.reason, res.version, res.keep_alive, res.body })
    t:wait(); l:close()
  end)

  it("bodiless answers (HEAD, 204, 304) and redirects with bodies give their connection back", function()
    local s, base, stop = start(function(req)
      if req.path == "/204" then return 204 end
      if req.path == "/304" then return 304 end
      if req.path == "/moved" then return 302, { location = "/here" }, "moved away" end
      return 200, nil, "here"
    end)
    local c = http.client()
    local res = assert(c:fetch({ url = base .. "/", method = "head" }))
    assert.same({ 200, "" }, { res.status, res.body })
    assert.same({ 204, "" }, { assert(c:fetch(base .. "/204")).status, c:fetch(base .. "/204").body })
    assert.equal(304, assert(c:fetch(base .. "/304")).status)
    assert.equal("here", assert(c:fetch(base .. "/moved")).body)
    res = assert(c:fetch({ url = base .. "/moved", redirects = false }))
    assert.same({ 302, "moved away" }, { res.status, res.body })
    -- streamed: nothing taken along; body() and read() work on a bodiless one too
    res = assert(c:fetch({ url = base .. "/204", stream = true }))
    assert.same({ 204, "" }, { res.status, res:body() })
    res = assert(c:fetch({ url = base .. "/", stream = true }))
    assert.same({ "here" }, { res:body() })
    assert.equal(1, s:stats().connections) -- every one of them on one pooled connection
    stop()
  end)

  it("length-framed bodies on both sides of what is taken along with the head", function()
    local sizes = { 65535, 65536, 65537, 300000 }
    local s, base, stop = start(function(req, res)
      local n = tonumber(req.path:sub(2))
      res.headers["content-length"] = n
      res:finish(string.rep("x", n - 1) .. "!")
    end)
    local c = http.client()
    for _ = 1, 2 do
      for _, n in ipairs(sizes) do
        local res = assert(c:fetch(base .. "/" .. n))
        assert.same({ 200, n, "!" }, { res.status, #res.body, res.body:sub(-1) })
      end
    end
    assert.equal(1, s:stats().connections)
    stop()
  end)

  it("res.headers made on the first look equal the answer's fields: 200 random answers", function()
    local seed = H.seed()
    local l = assert(gh.listen("127.0.0.1", 0))
    local _, port = l:getsockname()
    local heads, srv = gh.queue(), nil
    local t = gh.spawn(function()
      srv = l:accept()
      while true do
        local line = srv:receive()
        if not line then break end
        if line == "" then srv:send(heads:get()) end
      end
    end)
    local c = http.client()
    for _ = 1, 200 do
      local lines, want = {}, { ["content-length"] = "2" }
      for _ = 1, math.random(0, 30) do
        local name = H.random_token(math.random(1, 10))
        local k = name:lower()
        if k ~= "content-length" and k ~= "transfer-encoding" and k ~= "connection" then
          local v = tostring(math.random(1000)) .. (math.random(3) == 1 and "\tx y" or "")
          lines[#lines + 1] = name .. ": " .. v .. " "
          want[k] = want[k] and (want[k] .. ", " .. v) or v
        end
      end
      heads:put("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n" .. table.concat(lines, "\r\n")
        .. (#lines > 0 and "\r\n" or "") .. "\r\nok")
      local res = assert(c:fetch("http://127.0.0.1:" .. port .. "/"))
      assert.equal("ok", res.body)
      assert.same(want, res.headers, "seed " .. seed)
    end
    l:close(); srv:close(); t:wait()
  end)

  it("a fetch killed or timed out while it waits for the answer leaves the pool clean", function()
    local slow = gh.event()
    local s, base, stop = start(function(req)
      if req.path == "/slow" then slow:wait(5) end
      return 200, nil, "ok " .. req.path
    end)
    local c = http.client()
    assert.equal("ok /", assert(c:fetch(base .. "/")).body) -- one pooled connection
    local t = gh.spawn(function() return c:fetch(base .. "/slow") end)
    gh.sleep(0.05)
    t:kill()
    assert.equal("dead", t:status())
    -- the killed fetch's connection did not go back: the next one opens another
    assert.equal("ok /a", assert(c:fetch(base .. "/a")).body)
    local ok, err = gh.with_timeout(0.05, function() return c:fetch(base .. "/slow") end)
    assert.same({ nil, "timeout" }, { ok, err })
    assert.equal("ok /b", assert(c:fetch(base .. "/b")).body)
    slow:send()
    assert.equal(3, s:stats().connections)
    stop()
  end)

  it("s:_httpres: its arguments are checked", function()
    local l = assert(gh.listen("127.0.0.1", 0))
    local _, port = l:getsockname()
    local sock = assert(gh.connect("127.0.0.1", port))
    local mt = {}
    assert.has_error(function() sock:_httpres(nil, 10, 0, mt) end)
    assert.has_error(function() sock:_httpres("GET", 0, 0, mt) end)
    assert.has_error(function() sock:_httpres("GET", 10, -1, mt) end)
    assert.has_error(function() sock:_httpres("GET", 10, 0, nil) end)
    assert.has_error(function() l:_httpres("GET", 10, 0, mt) end)
    -- a bad head: nil, why, status (the connection is not usable after)
    local srv = l:accept()
    srv:send("HTTP/1.1 200 OK\r\nBad Header\r\n\r\n")
    sock:settimeout(2)
    assert.same({ nil, "whitespace before a header colon", 400 }, { sock:_httpres("GET", 1024, 0, mt) })
    srv:close()
    assert.same({ nil, "closed", 0 }, { sock:_httpres("GET", 1024, 0, mt) })
    sock:close(); l:close()
  end)

  it("parse_url's table is the caller's; fetches of one URL with and without headers share the pool", function()
    local u1 = http.parse_url("http://127.0.0.1:1/x")
    u1.host = "changed"
    assert.equal("127.0.0.1", http.parse_url("http://127.0.0.1:1/x").host)
    local s, base, stop = start(function() return 200, nil, "ok" end)
    local c = http.client()
    assert.equal("ok", assert(c:fetch(base .. "/")).body)
    assert.equal("ok", assert(c:fetch({ url = base .. "/", headers = { ["x-a"] = "1" } })).body)
    assert.equal(1, s:stats().connections)
    stop()
  end)

  it("request: socket.http's simple and generic forms", function()
    local _, base, stop = start(function(req)
      return 200, { ["content-type"] = "text/plain" }, req.method .. " " .. (req:body() or "")
    end)
    local body, code, headers, status = http.request(base .. "/x")
    assert.same({ "GET ", 200, "text/plain", "HTTP/1.1 200 OK" }, { body, code, headers["content-type"], status })
    body, code = http.request(base .. "/x", "a=1")
    assert.same({ "POST a=1", 200 }, { body, code })
    local out = {}
    local ltn12 = require "ltn12"
    local ok, code2 = http.request{ url = base .. "/y", method = "PUT", sink = ltn12.sink.table(out),
      source = ltn12.source.string("streamed body") }
    assert.same({ 1, 200, "PUT streamed body" }, { ok, code2, table.concat(out) })
    stop()
  end)

  it("a stale pooled connection is retried once for idempotent requests", function()
    local _, base, stop = start(function() return 200, nil, "ok" end, { idle_timeout = 0.05 })
    local c = http.client()
    assert.equal("ok", c:fetch(base .. "/").body)
    gh.sleep(0.2) -- the server closed its idle side meanwhile
    local res, err = c:fetch(base .. "/")
    assert.equal("ok", res and res.body, err)
    stop()
  end)

  it("follows redirects, drops credentials across origins, stops at too many", function()
    local seen = {}
    local _, other, stop2 = start(function(req)
      seen.auth, seen.cookie, seen.proxy, seen.kept = req.headers.authorization, req.headers.cookie,
        req.headers["proxy-authorization"], req.headers["x-kept"]
      return 200, nil, "other"
    end)
    local _, base, stop = start(function(req)
      if req.path == "/a" then return 302, { location = "/b" }, "" end
      if req.path == "/b" then return 301, { location = other .. "/c" }, "" end
      if req.path == "/loop" then return 307, { location = "/loop" }, "" end
      return 404, nil, ""
    end)
    local res = assert(http.fetch{ url = base .. "/a", headers = { authorization = "secret", cookie = "c=1",
      ["Proxy-Authorization"] = "p", ["x-kept"] = "yes" } })
    assert.equal("other", res.body)
    assert.is_nil(seen.auth); assert.is_nil(seen.cookie); assert.is_nil(seen.proxy)
    assert.equal("yes", seen.kept)
    assert.same({ nil, "too many redirects" }, { http.fetch(base .. "/loop") })
    stop(); stop2()
  end)

  it("streams a chunked response and uploads a source of unknown length", function()
    local _, base, stop = start(function(req, res)
      local b = assert(req:body())
      for i = 1, 300 do res:write(("%04d:%d "):format(i, #b)) end
      res:finish()
    end)
    local n = 0
    local src = function() n = n + 1; if n <= 10 then return string.rep("z", 1000) end end
    local res = assert(http.fetch{ url = base .. "/", method = "POST", body = src, stream = true })
    assert.equal("chunked", res.headers["transfer-encoding"])
    local parts = {}
    while true do
      local d = res:read(100)
      if not d then break end
      assert.is_true(#d <= 100)
      parts[#parts + 1] = d
    end
    assert.matches("^0001:10000 .*0300:10000 $", table.concat(parts))
    stop()
  end)

  it("talks to Python's http.server", function()
    local dir = os.tmpname(); os.remove(dir); os.execute("mkdir -p " .. dir)
    local f = assert(io.open(dir .. "/file.txt", "w")); f:write(string.rep("p", 5000)); f:close()
    local s = assert(gh.listen("127.0.0.1", 0)); local _, port = s:getsockname(); s:close()
    local py = gh.popen({ "/usr/bin/python3", "-m", "http.server", "--bind", "127.0.0.1", tostring(port) },
      { cwd = dir, stdin = "null", stdout = "null", stderr = "null",
        env = H.CHILD_ENV })
    local res
    for _ = 1, 100 do
      res = http.fetch("http://127.0.0.1:" .. port .. "/file.txt")
      if res then break end
      gh.sleep(0.05)
    end
    assert.equal(200, res.status)
    assert.equal(string.rep("p", 5000), res.body)
    local missing = assert(http.fetch("http://127.0.0.1:" .. port .. "/nope"))
    assert.equal(404, missing.status)
    py:kill("TERM"); py:wait(5); py:close()
    os.execute("rm -rf " .. dir)
  end)

  it("bad URLs and refused connections are errors, not raises", function()
    assert.same({ nil, "invalid URL nope" }, { http.fetch("nope") })
    local s = assert(gh.listen("127.0.0.1", 0)); local _, port = s:getsockname(); s:close()
    local res, err = http.fetch("http://127.0.0.1:" .. port .. "/")
    assert.is_nil(res)
    assert.equal("connection refused", err)
  end)
end)

describe("http.parse_url, DEFAULTS, reasons", function()
  it("splits URLs, with default ports and IPv6 hosts", function()
    assert.same({ scheme = "http", host = "a.example", port = 80, target = "/", hosthdr = "a.example" },
      http.parse_url("http://a.example"))
    assert.same({ scheme = "https", host = "::1", port = 8443, target = "/x?y=1", hosthdr = "[::1]:8443" },
      http.parse_url("HTTPS://[::1]:8443/x?y=1#frag"))
    assert.same({ nil, "unsupported scheme ftp" }, { http.parse_url("ftp://x/") })
    assert.equal(1024 * 1024, http.DEFAULTS.max_body_size)
    assert.equal("Not Found", http.reasons[404])
  end)
end)
