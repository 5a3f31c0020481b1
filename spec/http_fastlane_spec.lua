-- greenhub.http's fast lane (csrc/sockhttp.c): s:_httpreq builds request
-- and response objects in C, and res:finish is a C finisher for a small
-- whole body. Every case it hands to the Lua finish, and every field it
-- reads from a response a handler may have changed, against raw sockets.
local H = require "helper"
local gh = H.gh

local start = H.http_server

local connect = H.connect
local function response(c, head) return H.http_response(c, head and "HEAD") end

-- the bodies of the next n responses on c
local function bodies(c, n)
  local t = {}
  for i = 1, n do t[i] = select(3, response(c)) end
  return t
end

local function get(port, path, extra)
  local c = connect(port)
  c:send("GET " .. path .. " HTTP/1.1\r\nHost: x\r\n" .. (extra or "") .. "\r\n")
  local st, h, body = response(c)
  return st, h, body, c
end

describe("http fast lane", function()
  it("request fields: method, target, path, query, version 1.1 (Request's), headers", function()
    local seen
    local _, port, stop = start(function(req, res)
      seen = { req.method, req.target, req.path, req.query, req.version, req.headers["x-a"],
               rawget(req, "version"), req.headers.host }
      res:finish("ok")
    end)
    local st, _, body, c = get(port, "/a/b?x=1&y", "X-A: 1\r\nx-a: 2\r\n")
    assert.equal(200, st); assert.equal("ok", body)
    assert.same({ "GET", "/a/b?x=1&y", "/a/b", "x=1&y", 1.1, "1, 2", nil, "x" }, seen)
    -- HTTP/1.0 carries its own version, and its answer closes
    c:send("GET /z HTTP/1.0\r\n\r\n")
    local line = assert(c:receive())
    assert.equal("HTTP/1.1 200 OK", line)
    assert.equal(1.0, seen[5]); assert.equal(1.0, seen[7]); assert.equal("/z", seen[3])
    c:close(); stop()
  end)

  it("req.headers: made on its first look, from the head's own lines, then kept", function()
    local seen
    local _, port, stop = start(function(req, res)
      local before = rawget(req, "headers")
      local h = req.headers
      local names = {}
      for k in pairs(h) do names[#names + 1] = k end
      table.sort(names)
      seen = { before, table.concat(names, " "), h["x-a"], h.host, h["x-empty"], h["x-sp"],
               req:header("X-A"), rawequal(h, req.headers), rawget(req, "headers") == h,
               req:header_list(), req.nothing, req.read ~= nil }
      res:finish("ok")
    end)
    local st = get(port, "/", "X-A: 1\r\nX-Empty:\r\nx-a:  2 \r\nX-Sp: a  b\r\n")
    assert.equal(200, st)
    assert.same({ nil, "host x-a x-empty x-sp", "1, 2", "x", "", "a  b", "1, 2", true, true,
                  { { "Host", "x" }, { "X-A", "1" }, { "X-Empty", "" }, { "x-a", "2" }, { "X-Sp", "a  b" } },
                  nil, true }, seen)
    -- a head with no header lines at all (1.0): an empty table
    local c = connect(port)
    c:send("GET / HTTP/1.0\r\n\r\n")
    assert.equal(200, (response(c)))
    assert.equal("", seen[2]); assert.same({}, seen[10]); c:close()
    stop()
  end)

  it("returned headers: the handler's table is used as it is, never written into", function()
    local shared = { ["content-type"] = "text/plain", ["x-list"] = { "a", "b" } }
    local errs = {}
    gh.onerror(function(_, e) errs[#errs + 1] = e end)
    local _, port, stop = start(function(req, res)
      if req.path == "/shared" then return 200, shared, "hi"
      elseif req.path == "/big" then return 200, shared, ("b"):rep(5000)
      elseif req.path == "/source" then
        local n = 0
        return 200, shared, function() n = n + 1; if n <= 3 then return ("s"):rep(1000) end end
      elseif req.path == "/merge" then
        res.headers["x-a"] = "1"
        return 201, { ["x-b"] = "2" }, "m"
      elseif req.path == "/bad" then return 200, "text/plain", "x" end
    end)
    local c = connect(port)
    for _ = 1, 3 do
      for _, path in ipairs({ "/shared", "/big", "/source" }) do
        c:send("GET " .. path .. " HTTP/1.1\r\nHost: x\r\n\r\n")
        local st, h, body = response(c)
        assert.same({ 200, "text/plain" }, { st, h["content-type"] }, path)
        assert.is_not_nil(h["x-list"], path)
        assert.equal(path == "/shared" and 2 or 5000 - 2000 * (path == "/source" and 1 or 0), #body, path)
      end
    end
    -- nothing was added to the handler's table (no Content-Length, no Date)
    local keys = {}
    for k in pairs(shared) do keys[#keys + 1] = k end
    table.sort(keys)
    assert.same({ "content-type", "x-list" }, keys)
    assert.same({ "a", "b" }, shared["x-list"])
    c:send("GET /merge HTTP/1.1\r\nHost: x\r\n\r\n")
    local st, h, body = response(c)
    assert.same({ 201, "1", "2", "m" }, { st, h["x-a"], h["x-b"], body })
    c:send("GET /bad HTTP/1.1\r\nHost: x\r\n\r\n")
    assert.equal(500, (response(c)))
    gh.sleep(0.01)
    gh.onerror(nil)
    assert.equal(1, #errs)
    assert.matches("the handler returned headers that are not a table %(a string%)", errs[1])
    c:close(); stop()
  end)

  it("pairs(req) shows the headers and the version before any look", function()
    local seen
    local _, port, stop = start(function(req, res)
      seen = {}
      for k, v in pairs(req) do seen[k] = v end
      res:finish("ok")
    end)
    assert.equal(200, (get(port, "/p?q=1", "X-A: 1\r\n")))
    assert.same({ method = "GET", target = "/p?q=1", path = "/p", query = "q=1", version = 1.1,
                  headers = { host = "x", ["x-a"] = "1" } },
                { method = seen.method, target = seen.target, path = seen.path, query = seen.query,
                  version = seen.version, headers = seen.headers })
    assert.is_nil(seen._fields)
    stop()
  end)

  it("pairs(res) of the client's response shows its headers and version", function()
    local _, port, stop = start(function() return 200, { ["x-b"] = "2" }, "hi" end)
    local res = assert(require("greenhub.http").fetch("http://127.0.0.1:" .. port .. "/"))
    local seen = {}
    for k, v in pairs(res) do seen[k] = v end
    assert.same({ 200, "OK", 1.1, "hi", "2" }, { seen.status, seen.reason, seen.version, seen.body,
                                                 seen.headers and seen.headers["x-b"] })
    assert.is_nil(seen._fields)
    stop()
  end)

  it("req.headers made on the first look equal the head's fields: 300 random heads", function()
    local seed = H.seed()
    local function value()
      local t = {}
      for i = 1, math.random(0, 12) do
        local r = math.random(10)
        t[i] = r == 1 and "\t" or r == 2 and " " or r == 3 and string.char(math.random(0x80, 0xff))
          or string.char(math.random(0x21, 0x7e))
      end
      return (table.concat(t):gsub("^[ \t]+", ""):gsub("[ \t]+$", ""))
    end
    local seen, list
    local _, port, stop = start(function(req, res)
      -- every other head: the list before the table, then after it
      if math.random(2) == 1 then list = req:header_list(); seen = req.headers
      else seen = req.headers; list = req:header_list() end
      res:finish("")
    end)
    local c = connect(port)
    for _ = 1, 300 do
      local lines, want, names = {}, { host = "x" }, {}
      local want_list = { { "Host", "x" } }
      for i = 1, math.random(0, 40) do
        local name = (i > 1 and math.random(4) == 1) and names[math.random(#names)] or H.random_token(math.random(1, 12))
        names[#names + 1] = name
        local v = value()
        local sent = name:gsub(".", function(ch) return math.random(2) == 1 and ch:upper() or ch:lower() end)
        lines[#lines + 1] = sent .. ":" .. (math.random(2) == 1 and " " or "") .. v .. (math.random(3) == 1 and " \t" or "")
        local k = name:lower()
        if k ~= "host" and k ~= "content-length" and k ~= "transfer-encoding" and k ~= "connection"
          and k ~= "expect" and k ~= "upgrade" then
          want[k] = want[k] and (want[k] .. ", " .. v) or v
          want_list[#want_list + 1] = { sent, v }
        else
          lines[#lines] = nil -- the framing fields stay out of it
        end
      end
      c:send("GET / HTTP/1.1\r\nHost: x\r\n" .. table.concat(lines, "\r\n") .. (#lines > 0 and "\r\n" or "") .. "\r\n")
      local st = response(c)
      assert.equal(200, st, "seed " .. seed)
      assert.same(want, seen, "seed " .. seed)
      assert.same(want_list, list, "seed " .. seed)
    end
    c:close(); stop()
  end)

  it("req.headers: set by the handler before a look, or its lines tampered with", function()
    local seen, errs = {}, {}
    gh.onerror(function(_, e) errs[#errs + 1] = tostring(e) end)
    local _, port, stop = start(function(req, res)
      if req.path == "/own" then req.headers = { mine = "1" }; seen[1] = req.headers.mine
      elseif req.path == "/bad" then req._fields = "no colon\r\n"; seen[2] = req.headers
      elseif req.path == "/type" then req._fields = 42; seen[3] = req.headers end
      res:finish("x")
    end)
    assert.equal(200, (get(port, "/own")))
    assert.equal("1", seen[1])
    assert.equal(500, (get(port, "/bad")))
    assert.equal(500, (get(port, "/type")))
    gh.sleep(0.05)
    stop(); gh.onerror(nil)
    assert.matches("http: bad _fields %(whitespace before a header colon%)", errs[1])
    assert.matches("http: bad _fields %(a number%)", errs[2])
  end)

  it("status: a handler's own, nil (200), a string (500, the handler's error)", function()
    local errs = {}
    gh.onerror(function(_, e) errs[#errs + 1] = tostring(e) end)
    local _, port, stop = start(function(req, res)
      if req.path == "/404" then res.status = 404
      elseif req.path == "/nil" then res.status = nil
      elseif req.path == "/str" then res.status = "200"
      elseif req.path == "/big" then res.status = 1000 end
      res:finish("b")
    end)
    assert.equal(404, (get(port, "/404")))
    assert.equal(200, (get(port, "/nil")))
    assert.equal(500, (get(port, "/str")))
    assert.equal(500, (get(port, "/big")))
    gh.sleep(0.05)
    stop(); gh.onerror(nil)
    assert.matches("http: bad response status 200", errs[1])
    assert.matches("http: bad response status 1000", errs[2])
  end)

  it("what a handler returns: every case the C answerer takes, and every one it hands on", function()
    local errs = {}
    gh.onerror(function(_, e) errs[#errs + 1] = tostring(e) end)
    local _, port, stop = start(function(req, res)
      local p = req.path
      if p == "/plain" then return 201, nil, "x"
      elseif p == "/res-headers" then res.headers["x-a"] = "1"; return 200, nil, "y"
      elseif p == "/nobody" then return 204
      elseif p == "/empty" then return 200
      elseif p == "/float" then return 200.0, nil, "f"
      elseif p == "/str" then return "200", nil, "s"
      elseif p == "/number-body" then return 200, nil, 42
      elseif p == "/written" then res:write("w1"); return 200, nil, "w2"
      elseif p == "/finished" then res:finish("done"); return 500, nil, "ignored"
      elseif p == "/reason" then return 599, { ["x-b"] = "2" }, "r"
      end
    end)
    local st, h, body = get(port, "/plain")
    assert.same({ 201, "1", "x" }, { st, h["content-length"], body })
    st, h, body = get(port, "/res-headers")
    assert.same({ 200, "1", "y" }, { st, h["x-a"], body })
    st, h, body = get(port, "/nobody")
    assert.same({ 204, nil, "" }, { st, h["content-length"], body })
    st, h, body = get(port, "/empty")
    assert.same({ 200, "0", "" }, { st, h["content-length"], body })
    assert.equal(500, (get(port, "/float")))
    assert.equal(500, (get(port, "/str")))
    st, _, body = get(port, "/number-body")
    assert.same({ 200, "42" }, { st, body })
    st, _, body = get(port, "/written")
    assert.same({ 200, "w1w2" }, { st, body })
    st, _, body = get(port, "/finished")
    assert.same({ 200, "done" }, { st, body })
    st, h, body = get(port, "/reason")
    assert.same({ 599, "2", "r" }, { st, h["x-b"], body })
    -- a HEAD's answer through the answerer: the length, no body; the
    -- connection goes on
    local c = connect(port)
    c:send("HEAD /plain HTTP/1.1\r\nHost: x\r\n\r\nGET /plain HTTP/1.1\r\nHost: x\r\n\r\n")
    st, h = response(c, true)
    assert.same({ 201, "1" }, { st, h["content-length"] })
    assert.equal("x", select(3, response(c)))
    c:close()
    gh.sleep(0.05)
    stop(); gh.onerror(nil)
    assert.equal(2, #errs)
    assert.matches("http: bad response status 200.0", errs[1])
    assert.matches("http: bad response status 200", errs[2])
  end)

  it("everything the finisher hands on: non-string, big, after write, replaced headers", function()
    local _, port, stop = start(function(req, res)
      if req.path == "/num" then res:finish(12345)
      elseif req.path == "/big" then res:finish(string.rep("z", 5000))
      elseif req.path == "/written" then res:write("a", "b"); res:finish("c")
      elseif req.path == "/flushed" then res:write("a"); res:flush(); res:finish("c", { ["x-t"] = "1" })
      elseif req.path == "/headers" then res.headers = { ["x-own"] = "yes" }; res:finish("h")
      elseif req.path == "/nobody" then res:finish() end
    end)
    local st, h, body = get(port, "/num"); assert.same({ 200, "12345" }, { st, body })
    st, h, body = get(port, "/big"); assert.equal(5000, #body)
    st, h, body = get(port, "/written"); assert.same({ 200, "abc" }, { st, body })
    st, h, body = get(port, "/flushed")
    assert.same({ 200, "ac", "chunked", "1" }, { st, body, h["transfer-encoding"], h["x-t"] })
    st, h, body = get(port, "/headers"); assert.same({ "h", "yes" }, { body, h["x-own"] })
    st, h, body = get(port, "/nobody"); assert.same({ 200, "", "0" }, { st, body, h["content-length"] })
    stop()
  end)

  it("bad headers raise before a byte is sent: 500, connection closed", function()
    gh.onerror(function() end)
    local _, port, stop = start(function(req, res)
      if req.path == "/crlf" then res.headers["x-a"] = "a\r\nx-b: evil" end
      if req.path == "/name" then res.headers["bad name"] = "v" end
      if req.path == "/te" then res.headers["transfer-encoding"] = "chunked" end
      res:finish("x")
    end)
    for _, p in ipairs({ "/crlf", "/name", "/te" }) do
      local st, h, body, c = get(port, p)
      assert.equal(500, st, p); assert.equal("", body)
      assert.is_nil(h["x-b"])
      assert.is_nil(c:receive())
      c:close()
    end
    stop(); gh.onerror(nil)
  end)

  it("HEAD, 204 and 304 carry no body; HEAD's answer says the length a GET's would have; a handler's Content-Length is kept and enforced", function()
    local _, port, stop = start(function(req, res)
      if req.path == "/204" then res.status = 204
      elseif req.path == "/304" then res.status = 304
      elseif req.path == "/cl" then res.headers["content-length"] = "3"
      elseif req.path == "/short" then res.headers["content-length"] = "10" end
      res:finish("abc")
    end)
    local c = connect(port)
    c:send("HEAD / HTTP/1.1\r\nHost: x\r\n\r\n")
    local st, h = response(c, true)
    assert.same({ 200, "3" }, { st, h["content-length"] })
    c:send("HEAD /204 HTTP/1.1\r\nHost: x\r\n\r\n")
    st, h = response(c, true)
    assert.same({ 204 }, { st, h["content-length"] })
    c:send("HEAD /cl HTTP/1.1\r\nHost: x\r\n\r\n")
    st, h = response(c, true)
    assert.same({ 200, "3" }, { st, h["content-length"] })
    c:send("GET /204 HTTP/1.1\r\nHost: x\r\n\r\n")
    st, h = response(c, true)
    assert.same({ 204 }, { st, h["content-length"] })
    c:send("GET /304 HTTP/1.1\r\nHost: x\r\n\r\n")
    st = response(c, true)
    assert.equal(304, st)
    c:send("GET /cl HTTP/1.1\r\nHost: x\r\n\r\n")
    local body
    st, h, body = response(c)
    assert.same({ 200, "3", "abc" }, { st, h["content-length"], body })
    -- a body shorter than the handler's length: the connection cannot be reused
    c:send("GET /short HTTP/1.1\r\nHost: x\r\n\r\n")
    assert.equal("HTTP/1.1 200 OK", c:receive())
    repeat local l = c:receive() until l == "" or l == nil
    assert.equal("abc", c:receive(3))
    assert.is_nil(c:receive(1))
    c:close(); stop()
  end)

  it("a finished response ignores finish and refuses write; a stale one touches nothing", function()
    local old, results = nil, {}
    local _, port, stop = start(function(req, res)
      if req.path == "/1" then old = res; res:finish("one")
      else
        -- the first request's response, finished: nothing reaches this one
        results = { old:finish("late"), (old:write("late")), select(2, old:write("late")) }
        res:finish("two")
      end
    end)
    local c = connect(port)
    c:send("GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert.same({ "one", "two" }, bodies(c, 2))
    assert.same({ true, nil, "finished" }, results)
    c:close(); stop()
  end)

  it("with coalesce on, the finisher's bytes go through the socket's send", function()
    local _, port, stop = start(function(req, res)
      req._conn.sock:setoption("coalesce", true)
      res:finish("co " .. req.path)
    end)
    local c = connect(port)
    c:send("GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n")
    assert.same({ "co /a", "co /b" }, bodies(c, 2))
    c:close(); stop()
  end)

  it("misuse: _httpreq without settings, the finisher on a non-response", function()
    local a, b = H.tcp_pair()
    assert.error_matches(function() a:_httpreq({}, {}) end, "http settings")
    assert.error_matches(function() a:_httpreq(io.stdout, {}) end, "http settings")
    a:close(); b:close()
    local http = require "greenhub.http"
    local s = http.server(function() end)
    assert.is_not_nil(s)
    local fin = getmetatable(select(2, pcall(function()
      local r
      local _, port, stop = start(function(_, res) r = res; res:finish("") end)
      get(port, "/"); stop()
      return r
    end))).finish
    assert.error(function() fin(nil, "x") end)
    assert.error(function() fin("str", "x") end)
  end)
end)
