-- gh.patch(): unmodified LuaSocket modules (socket.http, socket.smtp,
-- ltn12) and LuaSocket clients (lua-redis) run green (gh.coroutine has
-- its own spec, coroutine_spec.lua).
local H = require "helper"
local gh = H.gh

local raw_coroutine = coroutine
local saved = {}
for _, k in ipairs({ "socket", "socket.core", "socket.unix", "socket.http", "socket.smtp", "socket.url", "socket.headers", "socket.tp", "coroutine" }) do
  saved[k] = package.loaded[k]
end

setup(function() gh.patch() end)
teardown(function()
  _G.coroutine = raw_coroutine
  for k in pairs(saved) do package.loaded[k] = saved[k] end
end)

-- A tiny HTTP/1.1 server: each response is delayed `delay` seconds.
local function http_server(delay)
  local srv = assert(gh.listen("127.0.0.1", 0))
  local _, port = srv:getsockname()
  local t = gh.spawn(gh.serve, srv, function(c)
    while true do
      local line = c:receive("*l")
      if not line then return end
      local path = line:match("^%u+ (%S+)")
      local len = 0
      while true do
        local h = c:receive("*l")
        if not h or h == "" then break end
        len = tonumber(h:match("^[Cc]ontent%-[Ll]ength: *(%d+)")) or len
      end
      local body = len > 0 and c:receive(len) or ""
      if delay then gh.sleep(delay) end
      local out = "path=" .. path .. (body ~= "" and (" body=" .. body) or "")
      c:send("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " .. #out .. "\r\n\r\n" .. out)
    end
  end)
  return port, function() srv:close(); t:wait() end
end

describe("gh.patch()", function()
  it("makes require 'socket' and 'socket.core' return greenhub's, idempotently", function()
    assert.equal(gh.socket, require "socket")
    assert.equal(gh.socket, require "socket.core")
    gh.patch()
    assert.equal(gh.socket, require "socket")
    assert.equal(gh.coroutine, _G.coroutine)
    local s = require("socket").tcp()
    assert.matches("^tcp{master}", tostring(s))
    s:close()
    assert.is_function(gh.socket.protect)
    assert.is_function(gh.socket.newtry)
    assert.is_function(gh.socket.sink)
    assert.is_function(gh.socket.source)
    assert.is_function(gh.socket.skip)
    assert.is_string(gh.socket._VERSION)
  end)

  it("socket.http: 50 requests delayed 300 ms each finish concurrently in under 1 s", function()
    local http = require "socket.http"
    local port, stop = http_server(0.3)
    local t0 = H.now()
    local ts = {}
    for i = 1, 50 do
      ts[i] = gh.spawn(function()
        return http.request("http://127.0.0.1:" .. port .. "/item/" .. i)
      end)
    end
    for i = 1, 50 do
      local body, code = ts[i]:wait()
      assert.equal(200, code)
      assert.equal("path=/item/" .. i, body)
    end
    local dt = H.now() - t0
    assert.is_true(dt < H.scale(1), "took " .. dt .. " s")
    assert.is_true(dt >= 0.3)
    stop()
  end)

  it("socket.http with ltn12 sources and sinks (POST)", function()
    local http, ltn12 = require "socket.http", require "ltn12"
    local port, stop = http_server()
    local out = {}
    local _, code = http.request({
      url = "http://127.0.0.1:" .. port .. "/post",
      method = "POST",
      source = ltn12.source.string("payload"),
      headers = { ["content-length"] = 7 },
      sink = ltn12.sink.table(out),
    })
    assert.equal(200, code)
    assert.equal("path=/post body=payload", table.concat(out))
    stop()
  end)

  it("ltn12 pumps a green socket source into a sink", function()
    local ltn12, socket = require "ltn12", require "socket"
    local srv = assert(gh.listen("127.0.0.1", 0))
    local _, port = srv:getsockname()
    local data = string.rep("0123456789", 5000)
    gh.spawn(function()
      local c = srv:accept()
      ltn12.pump.all(ltn12.source.string(data), socket.sink("close-when-done", c))
    end)
    local c = assert(socket.connect("127.0.0.1", port))
    local got = {}
    assert(ltn12.pump.all(socket.source("until-closed", c), (ltn12.sink.table(got))))
    assert.equal(data, table.concat(got))
    srv:close()
  end)

  it("socket.smtp sends a message to a green SMTP stub server", function()
    local smtp = require "socket.smtp"
    local srv = assert(gh.listen("127.0.0.1", 0))
    local _, port = srv:getsockname()
    local received = {}
    local server = gh.spawn(function()
      local c = srv:accept()
      c:send("220 stub ESMTP\r\n")
      while true do
        local l = c:receive("*l")
        if not l then break end
        local cmd = l:upper():match("^(%a+)")
        if cmd == "EHLO" or cmd == "HELO" then c:send("250 stub\r\n")
        elseif cmd == "MAIL" or cmd == "RCPT" then received[#received + 1] = l; c:send("250 ok\r\n")
        elseif cmd == "DATA" then
          c:send("354 go\r\n")
          local body = {}
          while true do
            local d = c:receive("*l")
            if d == "." then break end
            body[#body + 1] = d
          end
          received.body = table.concat(body, "\n")
          c:send("250 queued\r\n")
        elseif cmd == "QUIT" then c:send("221 bye\r\n"); break
        else c:send("250 ok\r\n") end
      end
      c:close()
    end)
    local ok, err = smtp.send({
      from = "<a@example.org>",
      rcpt = "<b@example.org>",
      server = "127.0.0.1",
      port = port,
      source = smtp.message({ headers = { subject = "hi" }, body = "green mail" }),
    })
    assert.is_truthy(ok, err)
    server:wait()
    assert.matches("a@example.org", received[1])
    assert.matches("b@example.org", received[2])
    assert.matches("green mail", received.body)
    srv:close()
  end)

  it("socket.select works on green sockets", function()
    local socket = require "socket"
    local srv = assert(socket.bind("127.0.0.1", 0))
    local _, port = srv:getsockname()
    gh.spawn(function() gh.sleep(0.01); local c = socket.connect("127.0.0.1", port); c:send("x\n"); gh.sleep(0.05); c:close() end)
    local r = socket.select({ srv }, nil, 1)
    assert.equal(srv, r[1])
    local c = srv:accept()
    r = socket.select({ c }, nil, 1)
    assert.equal(c, r[1])
    assert.equal("x", c:receive())
    c:close(); srv:close()
  end)
end)

describe("redis client (lua-redis) against a real redis-server", function()
  local redis_ok = io.open("/usr/share/lua/5.3/redis.lua") and io.open("/usr/bin/redis-server")
  it("100 concurrent green clients do SET/GET round trips, every value checked", function()
    assert(redis_ok, "needs Debian packages redis-server and lua-redis")
    -- a free port: bind, read it, release
    local probe = assert(gh.listen("127.0.0.1", 0))
    local _, port = probe:getsockname()
    probe:close()
    local dir = os.tmpname(); os.remove(dir)
    os.execute("mkdir -p " .. dir)
    local pidfile = dir .. "/redis.pid"
    assert(os.execute(("redis-server --port %d --bind 127.0.0.1 --save '' --appendonly no --daemonize yes --pidfile %s --dir %s --logfile %s/log"):format(port, pidfile, dir, dir)))
    local function stop()
      local f = io.open(pidfile)
      if f then os.execute("kill " .. f:read("l")); f:close() end
      os.execute("sleep 0.2; rm -rf " .. dir)
    end
    local ok, err = pcall(function()
      package.path = package.path .. ";/usr/share/lua/5.3/?.lua"
      local redis = require "redis"
      local client
      for _ = 1, 50 do -- wait for the server to listen
        local ok2, c = pcall(redis.connect, "127.0.0.1", port)
        if ok2 then client = c; break end
        gh.sleep(0.05)
      end
      assert(client, "redis-server did not start")
      assert.is_true(client:ping())
      local ts = {}
      for i = 1, 100 do
        ts[i] = gh.spawn(function()
          local c = redis.connect("127.0.0.1", port)
          for j = 1, 20 do
            local k, v = ("k:%d:%d"):format(i, j), ("v:%d:%d:%s"):format(i, j, string.rep("x", j))
            c:set(k, v)
            assert(c:get(k) == v, "value mismatch for " .. k)
          end
          c:quit()
          return true
        end)
      end
      for i = 1, 100 do assert.is_true(ts[i]:wait()) end
      assert.equal("v:7:3:xxx", client:get("k:7:3"))
      client:quit()
    end)
    stop()
    assert(ok, err)
  end)
end)
