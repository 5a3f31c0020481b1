-- greenhub.http's server (the client: http_client_spec.lua): framing,
-- keep-alive, pipelining, chunked both ways, 100-continue, limits and
-- rejections, handler errors, shutdown. Raw sockets and real clients.
local H = require "helper"
local gh = H.gh
local http = require "greenhub.http"

local start = H.http_server

local connect, response = H.connect, H.http_response

describe("http server", function()
  it("answers a GET with a computed Content-Length, Date, keep-alive", function()
    local _, port, stop = start(function(req, res)
      res.headers["content-type"] = "text/plain"
      res:finish("hello " .. req.path .. " " .. (req.query or "-"))
    end)
    local c = connect(port)
    for i = 1, 3 do
      c:send("GET /p" .. i .. "?q=1 HTTP/1.1\r\nHost: x\r\n\r\n")
      local st, h, body = response(c)
      assert.equal(200, st)
      assert.equal("hello /p" .. i .. " q=1", body)
      assert.equal(tostring(#body), h["content-length"])
      assert.truthy(h.date)
    end
    c:close(); stop()
  end)

  it("stats: requests, open, active and idle connections, errors by status", function()
    local gate = gh.event()
    local s, port, stop = start(function(req, res)
      if req.path == "/wait" then gate:wait() end
      res:finish("x")
    end)
    local a, b, c = connect(port), connect(port), connect(port)
    a:send("GET /wait HTTP/1.1\r\nHost: x\r\n\r\n")
    b:send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert.equal(200, (response(b)))
    c:send("BAD\r\n\r\n")
    assert.equal(400, (response(c)))
    c:close() -- (the server lingers, reading, until the client closes: still open till then)
    gh.sleep(0.02)
    local st = s:stats()
    assert.same({ 3, 2, 1, 1, 2, 1 }, { st.connections, st.open, st.active, st.idle, st.requests, st.errors[400] })
    gate:send()
    assert.equal(200, (response(a)))
    gh.sleep(0.01)
    st = s:stats()
    assert.same({ 0, 2, 2 }, { st.active, st.idle, st.requests })
    a:close(); b:close(); c:close(); stop()
  end)

  it("handlers may return status, headers, body", function()
    local _, port, stop = start(function() return 201, { ["x-a"] = "1" }, "made" end)
    local c = connect(port)
    c:send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
    local st, h, body = response(c)
    assert.same({ 201, "1", "made" }, { st, h["x-a"], body })
    c:close(); stop()
  end)

  it("pipelined requests are answered in order", function()
    local _, port, stop = start(function(req) gh.sleep(req.path == "/1" and 0.02 or 0); return 200, nil, req.path end)
    local c = connect(port)
    c:send("GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\nGET /3 HTTP/1.1\r\nHost: x\r\n\r\n")
    for i = 1, 3 do assert.equal("/" .. i, select(3, response(c))) end
    c:close(); stop()
  end)

  it("a pipelining client that does not read fills the socket; every answer still comes, in order", function()
    -- the server's straight-from-C writes stop at a full socket and the
    -- rest goes out when it drains (a parked send), for every response
    local body = string.rep("b", 2000)
    local _, port, stop = start(function(req, res) res:finish(req.path .. body) end, { max_requests = false })
    local c = connect(port)
    local n, reqs = 6000, {}
    for i = 1, n do reqs[i] = "GET /" .. i .. " HTTP/1.1\r\nHost: x\r\n\r\n" end
    assert(c:send(table.concat(reqs)))
    gh.sleep(0.2) -- the server writes until the socket is full, then waits
    for i = 1, n do
      local st, _, b = response(c)
      assert.equal(200, st)
      assert.equal("/" .. i .. body, b)
    end
    c:close(); stop()
  end)

  it("Date is an IMF-fixdate of now, in English whatever the locale", function()
    local _, port, stop = start(function() return 200, nil, "x" end)
    os.setlocale("C")
    local c = connect(port)
    c:send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    local _, h = response(c)
    assert.equal(os.date("!%a, %d %b %Y %H:%M:%S GMT", os.time()):sub(1, 16), h.date:sub(1, 16))
    assert.matches("^%u%l%l, %d%d %u%l%l %d%d%d%d %d%d:%d%d:%d%d GMT$", h.date)
    c:close(); stop()
  end)

  it("streams a long response chunked to 1.1 and close-delimited to 1.0", function()
    local big = string.rep("0123456789", 1000)
    local _, port, stop = start(function(req, res)
      for i = 1, #big, 1000 do res:write(big:sub(i, i + 999)) end
      res:finish()
    end)
    local c = connect(port)
    c:send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    local st, h, body = response(c)
    assert.equal("chunked", h["transfer-encoding"]); assert.equal(big, body)
    c:close()
    c = connect(port)
    c:send("GET / HTTP/1.0\r\n\r\n")
    st, h, body = response(c)
    assert.equal("close", h.connection); assert.equal(big, body)
    c:close(); stop()
  end)

  it("reads Content-Length and chunked request bodies, with trailers", function()
    local _, port, stop = start(function(req, res)
      local b = assert(req:body())
      res:finish(req.method .. ":" .. b .. ":" .. ((req.trailers or {})["x-sum"] or "-"))
    end)
    local c = connect(port)
    c:send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
    assert.equal("POST:hello:-", select(3, response(c)))
    c:send("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\nX-Sum: 9\r\n\r\n")
    assert.equal("POST:abcde:9", select(3, response(c)))
    c:close(); stop()
  end)

  it("100-continue: sent on the first read, never when the handler answers first", function()
    local _, port, stop = start(function(req, res)
      if req.path == "/read" then return 200, nil, req:body() end
      return 403, nil, "no"
    end)
    local c = connect(port)
    c:send("POST /read HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
    assert.equal("HTTP/1.1 100 Continue", c:receive()); assert.equal("", c:receive())
    c:send("data")
    assert.equal("data", select(3, response(c)))
    c:send("POST /deny HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
    local st = response(c)
    assert.equal(403, st)
    c:close(); stop()
  end)

  it("rejects bad heads with their status and closes", function()
    local s, port, stop = start(function() return 200, nil, "x" end)
    for _, case in ipairs({
      { "GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400 },
      { "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400 },
      { "GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505 },
      { "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: fugazi, chunked\r\n\r\n", 501 },
      { "GET /" .. string.rep("a", 9000) .. " HTTP/1.1\r\nHost: x\r\n\r\n", 414 },
      { "GET / HTTP/1.1\r\n\r\n", 400 },
    }) do
      local c = connect(port)
      c:send(case[1])
      local st, h = response(c)
      assert.equal(case[2], st)
      assert.equal("close", h.connection)
      assert.same({ nil, "closed", "" }, { c:receive("*a") })
      c:close()
    end
    assert.equal(3, s:stats().errors[400])
    stop()
  end)

  it("req:body(max): a handler's own smaller limit; a bad max raises", function()
    local errs = {}
    gh.onerror(function(_, e) errs[#errs + 1] = e end)
    local _, port, stop = start(function(req)
      if req.path == "/bad" then return 200, nil, req:body("5") end
      local b, err, partial = req:body(5)
      return 200, nil, b or (err .. " " .. partial)
    end)
    local c = connect(port)
    c:send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n01234")
    assert.equal("01234", select(3, response(c)))
    c:send("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n6\r\n012345\r\n0\r\n\r\n")
    assert.equal("body too large ", select(3, response(c)))
    c:close()
    c = connect(port)
    c:send("POST /bad HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx")
    assert.equal(500, (response(c)))
    gh.sleep(0.01)
    gh.onerror(nil)
    assert.matches("bad argument #1 to 'body' %(non%-negative number expected%)", errs[1])
    c:close(); stop()
  end)

  it("max_body_size: 413 before reading; a chunked body one byte over too", function()
    -- a handler that does not answer after a failed read: the failure's status
    local _, port, stop = start(function(req) local b = req:body(); if b then return 200, nil, b end end,
      { max_body_size = 10 })
    local c = connect(port)
    c:send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n01234567890")
    assert.equal(413, (response(c)))
    c:close()
    c = connect(port)
    c:send("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\na\r\n0123456789\r\n0\r\n\r\n")
    assert.equal("0123456789", select(3, response(c)))
    c:send("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nb\r\n01234567890\r\n0\r\n\r\n")
    assert.equal(413, (response(c)))
    c:close(); stop()
  end)

  it("a handler error before the head: 500 with an empty body, the error reported", function()
    local reported
    gh.onerror(function(_, err) reported = err end)
    local _, port, stop = start(function() error("handler broke") end)
    local c = connect(port)
    c:send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    local st, _, body = response(c)
    assert.equal(500, st); assert.equal("", body)
    gh.sleep(0.01)
    assert.matches("handler broke", reported)
    assert.matches("http_spec", reported) -- the handler's own stack
    gh.onerror(nil)
    c:close(); stop()
  end)

  it("header timeout (slow head) gets 408; idle keep-alive connections close", function()
    local _, port, stop = start(function() return 200, nil, "ok" end, { header_timeout = 0.2, idle_timeout = 0.2 })
    local c = connect(port)
    c:send("GET / HTTP/1.1\r\n")
    assert.equal(408, (response(c)))
    c:close()
    c = connect(port)
    c:send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert.equal(200, (response(c)))
    local t0 = gh.clock()
    assert.same({ nil, "closed", "" }, { c:receive("*a") })
    assert.is_true(gh.clock() - t0 < 2)
    c:close(); stop()
  end)

  it("shutdown: idle connections close, a running request finishes", function()
    local s, port = nil, nil
    local l = assert(gh.listen("127.0.0.1", 0))
    _, port = l:getsockname()
    s = http.server(function(req) if req.path == "/slow" then gh.sleep(0.3) end return 200, nil, req.path end)
    local t = gh.spawn(s.serve, s, l)
    local idle = connect(port)
    idle:send("GET /fast HTTP/1.1\r\nHost: x\r\n\r\n")
    assert.equal("/fast", select(3, response(idle)))
    local busy = connect(port)
    busy:send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
    gh.sleep(0.05)
    local done = gh.spawn(s.shutdown, s, 5)
    assert.same({ nil, "closed", "" }, { idle:receive("*a") })
    local st, h, body = response(busy)
    assert.same({ 200, "/slow" }, { st, body })
    assert.is_true(done:wait())
    assert.is_true(t:wait())
    assert.is_nil(gh.connect("127.0.0.1", port))
    idle:close(); busy:close()
  end)

  it("res:inform: a 1xx before the final answer; none to HTTP/1.0; misuse", function()
    local got = {}
    local errs = {}
    gh.onerror(function(_, e) errs[#errs + 1] = tostring(e) end)
    local _, port, stop = start(function(req, res)
      if req.path == "/bad" then res:inform(200) end
      if req.path == "/late" then
        res:write(("w"):rep(3000)) -- the head went out
        got[#got + 1] = { res:inform(103) }
        return res:finish()
      end
      got[#got + 1] = { res:inform(103, { link = "</a.css>; rel=preload" }) }
      got[#got + 1] = { res:inform(102) }
      return 200, nil, "final"
    end)
    local c = connect(port)
    c:send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    local st, h, body = response(c)
    assert.same({ 103, "</a.css>; rel=preload", "" }, { st, h.link, body })
    st, h, body = response(c)
    assert.same({ 102, "" }, { st, body })
    st, h, body = response(c)
    assert.same({ 200, "final" }, { st, body })
    c:close()
    -- HTTP/1.0: no interim answer, inform says true
    c = connect(port)
    c:send("GET / HTTP/1.0\r\n\r\n")
    st, _, body = response(c)
    assert.same({ 200, "final" }, { st, body })
    c:close()
    assert.same({ { true }, { true }, { true }, { true } }, got)
    got = {}
    c = connect(port)
    c:send("GET /late HTTP/1.1\r\nHost: x\r\n\r\n")
    assert.equal(200, (response(c)))
    assert.same({ { nil, "headers sent" } }, got)
    c:send("GET /bad HTTP/1.1\r\nHost: x\r\n\r\n")
    assert.equal(500, (response(c)))
    gh.sleep(0.01)
    gh.onerror(nil)
    assert.matches("bad argument #1 to 'inform' %(a 1xx status from 102 to 199 expected%)", errs[1])
    -- our own client reads past them
    assert.equal("final", assert(http.fetch("http://127.0.0.1:" .. port .. "/")).body)
    c:close(); stop()
  end)

  it("s:on_shutdown: hooks run once, in threads of their own, for what shutdown does not wait for", function()
    local l = assert(gh.listen("127.0.0.1", 0))
    local _, port = l:getsockname()
    local hijacked, ran = {}, 0
    local s = http.server(function(req)
      local sock = req:hijack()
      hijacked[#hijacked + 1] = sock
      sock:send("upgraded\n")
    end)
    s:on_shutdown(function()
      ran = ran + 1
      for _, sock in ipairs(hijacked) do sock:send("bye\n"); sock:close() end
    end)
    assert.has_error(function() s:on_shutdown("x") end, "bad argument #1 to 'on_shutdown' (function expected, got string)")
    local t = gh.spawn(s.serve, s, l)
    local c = connect(port)
    c:send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert.equal("upgraded", c:receive())
    gh.sleep(0.02)
    local t0 = gh.clock()
    assert.is_true(s:shutdown(5)) -- not waiting for the hijacked one
    assert.is_true(gh.clock() - t0 < 1)
    assert.equal("bye", c:receive())
    local line, err = c:receive()
    assert.same({ nil, "closed" }, { line, err })
    assert.is_true(s:shutdown(5)) -- again: the hooks do not run twice
    gh.sleep(0.01)
    assert.equal(1, ran)
    t:wait(); c:close()
  end)

  it("shutdown past its grace kills the handlers still running", function()
    local l = assert(gh.listen("127.0.0.1", 0))
    local _, port = l:getsockname()
    local killed = false
    local s = http.server(function()
      local ok, err = pcall(gh.sleep, 30)
      killed = not ok and err == gh.Killed
      error(err, 0)
    end)
    local t = gh.spawn(s.serve, s, l)
    local c = connect(port)
    c:send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    gh.sleep(0.05)
    local t0 = gh.clock()
    assert.same({ nil, "timeout" }, { s:shutdown(0.1) })
    assert.is_true(gh.clock() - t0 < 2)
    gh.sleep(0.01)
    assert.is_true(killed)
    t:wait(); c:close()
  end)

  it("1,000 concurrent connections, each a few keep-alive requests", function()
    local n = math.min(1000, (H.fd_limit() - 100) // 2)
    local s, port, stop = start(function(req) gh.sleep(0.001); return 200, nil, req.path end)
    local ts, bad = {}, 0
    for i = 1, n do
      ts[i] = gh.spawn(function()
        local c = gh.connect("127.0.0.1", port)
        if not c then bad = bad + 1 return end
        c:settimeout(H.scale(10))
        for j = 1, 3 do
          c:send(("GET /%d/%d HTTP/1.1\r\nHost: x\r\n\r\n"):format(i, j))
          local st, _, body = response(c)
          if st ~= 200 or body ~= ("/%d/%d"):format(i, j) then bad = bad + 1 end
        end
        c:close()
      end)
    end
    for i = 1, n do ts[i]:wait() end
    assert.equal(0, bad)
    assert.equal(n * 3, s:stats().requests)
    stop()
  end)

  it("curl and Python's http.client get their answers", function()
    local srv, port, stop = start(function(req, res)
      if req.method == "POST" then return 200, nil, "got " .. #assert(req:body()) end
      res:finish("hello")
    end)
    local env = H.CHILD_ENV
    local curl = gh.popen({ "curl", "-s", "-m", "5", "http://127.0.0.1:" .. port .. "/",
      "-d", string.rep("x", 3000), "http://127.0.0.1:" .. port .. "/" }, { stdin = "null", stdout = "pipe", stderr = "null", env = env })
    curl.stdout:settimeout(10)
    assert.equal("got 3000got 3000", curl.stdout:receive("*a"))
    curl:wait(10)
    assert.equal(1, srv:stats().connections) -- curl reused its connection for both URLs
    local py = gh.popen({ "/usr/bin/python3", "-c", ([[
import http.client
c = http.client.HTTPConnection("127.0.0.1", %d, timeout=5)
out = []
for i in range(5):
    c.request("GET", "/" + str(i))
    out.append(c.getresponse().read().decode())
c.request("POST", "/", body=b"y" * 100000)
out.append(c.getresponse().read().decode())
print(",".join(out))
]]):format(port) }, { stdin = "null", stdout = "pipe", stderr = "pipe", env = env })
    py.stdout:settimeout(10)
    assert.equal("hello,hello,hello,hello,hello,got 100000", py.stdout:receive("*l"))
    py:wait(10)
    stop()
  end)

  it("ab -k (ApacheBench, HTTP/1.0 keep-alive) completes every request", function()
    if not io.open("/usr/bin/ab") then pending("apache2-utils (ab) not installed") return end
    local srv, port, stop = start(function() return 200, nil, "hello" end)
    local ab = gh.popen({ "ab", "-k", "-q", "-n", "2000", "-c", "20", "http://127.0.0.1:" .. port .. "/" },
      { stdin = "null", stdout = "pipe", stderr = "pipe", env = { PATH = os.getenv("PATH") or "/usr/bin:/bin" } })
    ab.stdout:settimeout(60)
    local out = ab.stdout:receive("*a") or ""
    ab:wait(60)
    assert.matches("Complete requests:%s+2000", out)
    assert.matches("Failed requests:%s+0", out)
    assert.matches("Keep%-Alive requests:%s+2000", out)
    assert.is_true(srv:stats().connections <= 20 + 5)
    stop()
  end)
end)

describe("http response heads", function()
  it("refuse header injection and bad names, and the server's own framing header", function()
    local errs = {}
    local _, port, stop = H.http_server(function(req)
      local cases = {
        inject = { ["x-a"] = "1\r\nSet-Cookie: evil" },
        name = { ["bad name"] = "1" },
        te = { ["transfer-encoding"] = "chunked" },
        lf = { ["x-b"] = "1\nX: y" },
        nul = { ["x-c"] = "a\0b" },
        fine = { ["x-d"] = "tab\there \xff" },
      }
      return 200, cases[req.path:sub(2)], "x"
    end)
    gh.onerror(function(_, err) errs[#errs + 1] = err end)
    local c = connect(port) -- a tab and obs-text are a value's own
    c:send("GET /fine HTTP/1.1\r\nHost: x\r\n\r\n")
    local st, h = response(c)
    assert.same({ 200, "tab\there \xff" }, { st, h["x-d"] })
    c:close()
    for _, case in ipairs({ "inject", "name", "te", "lf", "nul" }) do
      local c = connect(port)
      c:send("GET /" .. case .. " HTTP/1.1\r\nHost: x\r\n\r\n")
      local st, h, body = response(c)
      assert.equal(500, st)
      assert.is_nil(h["set-cookie"])
      c:close()
    end
    gh.sleep(0.01)
    gh.onerror(nil)
    assert.equal(5, #errs)
    assert.matches("CR, LF or NUL", errs[1])
    assert.matches("bad response header name", errs[2])
    assert.matches("frames the body", errs[3])
    assert.matches("x%-b holds CR, LF or NUL", errs[4])
    assert.matches("x%-c holds CR, LF or NUL", errs[5])
    stop()
  end)

  it("repeated fields, a handler Content-Length, HEAD", function()
    local _, port, stop = H.http_server(function(req, res)
      res.headers["set-cookie"] = { "a=1", "b=2" }
      res.headers["content-length"] = 5
      res:finish("hello")
    end)
    local c = connect(port)
    c:send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    local head = {}
    while true do local l = c:receive(); if l == "" then break end head[#head + 1] = l end
    assert.equal("hello", c:receive(5))
    local joined = table.concat(head, "\n")
    assert.matches("set%-cookie: a=1\nset%-cookie: b=2", joined)
    assert.matches("content%-length: 5", joined)
    c:send("HEAD / HTTP/1.1\r\nHost: x\r\n\r\n")
    local st, h = response(c, "HEAD")
    assert.equal(200, st)
    assert.equal("5", h["content-length"])
    c:close(); stop()
  end)
end)

describe("http HEAD", function()
  it("every way a handler answers: HEAD's answer has the length a GET's has and no body bytes", function()
    local big = string.rep("z", 5000)
    local _, port, stop = H.http_server(function(req, res)
      if req.path == "/fin" then res:finish("abc")
      elseif req.path == "/pieces" then res:write("ab"); res:write({ "c", "d" }); res:finish("e")
      elseif req.path == "/ret" then return 200, { ["x-r"] = "1" }, "return"
      elseif req.path == "/big" then res:finish(big)
      elseif req.path == "/empty" then res:finish() end
    end)
    local c = connect(port)
    for _, case in ipairs({ { "/fin", "3" }, { "/pieces", "5" }, { "/ret", "6" }, { "/empty", "0" },
                            { "/big", nil } }) do
      c:send("GET " .. case[1] .. " HTTP/1.1\r\nHost: x\r\n\r\n")
      local st, gh_, body = response(c)
      assert.equal(200, st)
      c:send("HEAD " .. case[1] .. " HTTP/1.1\r\nHost: x\r\n\r\n")
      local hst, hh = response(c, "HEAD")
      assert.equal(200, hst)
      assert.equal(case[2], hh["content-length"], case[1])
      if case[2] then assert.equal(tonumber(case[2]), #body) end
    end
    -- nothing of any body was sent after the heads: the next answer is read right
    c:send("GET /fin HTTP/1.1\r\nHost: x\r\n\r\n")
    local st, _, body = response(c)
    assert.same({ 200, "abc" }, { st, body })
    c:close(); stop()
  end)
end)

describe("http server options", function()
  it("max_requests: the last allowed answer says Connection: close, then the connection closes", function()
    local _, port, stop = H.http_server(function() return 200, nil, "ok" end, { max_requests = 2 })
    local c = connect(port)
    c:send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    local _, h1 = response(c)
    assert.is_nil(h1.connection)
    c:send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    local _, h2 = response(c)
    assert.equal("close", h2.connection)
    assert.same({ nil, "closed", "" }, { c:receive("*a") })
    c:close(); stop()
  end)

  it("max_connections: a client past the bound waits until a slot frees", function()
    local _, port, stop = H.http_server(function() return 200, nil, "ok" end, { max_connections = 1 })
    local a = connect(port)
    a:send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert.equal(200, (response(a)))
    local b = connect(port) -- the kernel queues it; the server does not take it
    b:settimeout(0.2)
    b:send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert.same({ nil, "timeout", "" }, { b:receive() })
    a:close()
    b:settimeout(5)
    assert.equal(200, (response(b)))
    b:close(); stop()
  end)

  it("body_timeout: a stalled body gives the handler nil, 'timeout' and the client 408", function()
    local got
    local _, port, stop = H.http_server(function(req) local b, err = req:body(); got = err; if b then return 200 end end,
      { body_timeout = 0.1 })
    local c = connect(port)
    c:send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
    assert.equal(408, (response(c)))
    assert.equal("timeout", got)
    c:close(); stop()
  end)

  it("drain_limit: a small unread body is drained (keep-alive), a large one closes", function()
    local _, port, stop = H.http_server(function() return 200, nil, "ignored" end, { drain_limit = 100 })
    local c = connect(port)
    c:send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n" .. string.rep("a", 50))
    assert.equal(200, (response(c)))
    c:send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert.equal(200, (response(c))) -- the same connection served the next one
    c:send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n" .. string.rep("b", 5000))
    assert.equal(200, (response(c)))
    assert.same({ nil, "closed", "" }, { c:receive("*a") })
    c:close(); stop()
  end)

  it("req:header, req:getpeername and req:hijack (the socket is the handler's)", function()
    local _, port, stop = H.http_server(function(req)
      local sock = req:hijack()
      sock:send(("raw %s %s\n"):format(req:header("X-Mixed-Case"), (req:getpeername())))
      sock:send("echo " .. sock:receive() .. "\n")
      sock:close()
    end)
    local c = connect(port)
    c:send("GET / HTTP/1.1\r\nHost: x\r\nx-mixed-case: yes\r\n\r\nleftover line\n")
    assert.equal("raw yes 127.0.0.1", c:receive())
    assert.equal("echo leftover line", c:receive()) -- buffered bytes stayed in the socket
    c:close(); stop()
  end)
end)
