-- The examples run and do what they say (each in its own process).
local H = require "helper"
local gh = H.gh

local cpath = package.cpath:match("^([^;]*)")
local function start(script, ...)
  local argv = { "lua5.4", "-e", "package.cpath='" .. cpath .. ";'..package.cpath", script, ... }
  return assert(gh.popen(argv, { stdin = "null", stdout = "pipe", stderr = "pipe" }))
end

local free_port = H.free_port

local function connect_retry(port)
  for _ = 1, 100 do
    local c = gh.connect("127.0.0.1", port)
    if c then c:settimeout(5); return c end
    gh.sleep(0.02)
  end
  error("example server did not start on port " .. port)
end

local function stop(p) p:kill("TERM"); p:wait(5); p:close() end

describe("examples", function()
  it("echo.lua echoes lines", function()
    local port = free_port()
    local p = start("examples/echo.lua", tostring(port))
    local c = connect_retry(port)
    c:send("hello example\n")
    assert.equal("hello example", c:receive())
    c:close(); stop(p)
  end)

  it("chat.lua broadcasts a line to the other clients", function()
    local port = free_port()
    local p = start("examples/chat.lua", tostring(port))
    local a = connect_retry(port)
    local b = connect_retry(port)
    assert.matches("joined", a:receive()) -- a hears b join
    b:send("hi all\n")
    assert.matches(": hi all$", a:receive())
    a:close(); b:close(); stop(p)
  end)

  it("ws_chat.lua serves its page and broadcasts over WebSocket", function()
    local websocket = require "greenhub.websocket"
    local http = require "greenhub.http"
    local port = free_port()
    local p = start("examples/ws_chat.lua", tostring(port))
    connect_retry(port):close()
    local page = assert(http.fetch("http://127.0.0.1:" .. port .. "/"))
    assert.equal(200, page.status)
    assert.matches("new WebSocket", page.body)
    local a = assert(websocket.connect("ws://127.0.0.1:" .. port .. "/chat"))
    a:settimeout(5)
    assert.matches("joined$", a:receive()) -- a hears itself join
    local b = assert(websocket.connect("ws://127.0.0.1:" .. port .. "/chat"))
    b:settimeout(5)
    assert.matches("joined$", a:receive()) -- and b
    assert(b:send("hi room"))
    assert.matches(": hi room$", a:receive())
    b:close()
    assert.matches("left$", a:receive())
    a:close(); stop(p)
  end)

  it("hello_raw.lua (HTTP by hand) answers keep-alive requests", function()
    local port = free_port()
    local p = start("examples/hello_raw.lua", tostring(port))
    local c = connect_retry(port)
    for _ = 1, 2 do
      c:send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
      assert.equal("HTTP/1.1 200 OK", c:receive())
      repeat local h = c:receive() until h == ""
      assert.equal("Hello, World!", c:receive(13))
    end
    c:close(); stop(p)
  end)

  it("http_app.lua stores, serves and deletes keys, and stops gracefully on TERM", function()
    local port = free_port()
    local p = start("examples/http_app.lua", tostring(port))
    connect_retry(port):close()
    local http = require "greenhub.http"
    local base = "http://127.0.0.1:" .. port
    assert.equal(201, http.fetch{ url = base .. "/k", method = "PUT", body = "v1" }.status)
    assert.equal(204, http.fetch{ url = base .. "/k", method = "PUT", body = "v2" }.status)
    assert.equal("v2", http.fetch(base .. "/k").body)
    assert.equal("k\n", http.fetch(base .. "/").body)
    assert.equal(204, http.fetch{ url = base .. "/k", method = "DELETE" }.status)
    assert.equal(404, http.fetch(base .. "/k").status)
    p:kill("TERM")
    assert.same({ true, "exit", 0 }, { p:wait(5) })
    p:close()
  end)

  it("hello_http.lua answers keep-alive requests", function()
    local port = free_port()
    local p = start("examples/hello_http.lua", tostring(port))
    local c = connect_retry(port)
    for _ = 1, 3 do
      c:send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
      assert.equal("HTTP/1.1 200 OK", c:receive())
      local len
      repeat
        local h = c:receive()
        len = len or tonumber(h:match("Content%-Length: (%d+)"))
      until h == ""
      assert.equal("Hello, World!", c:receive(len))
    end
    c:close(); stop(p)
  end)

  it("fetch.lua overlaps its socket.http requests", function()
    local p = start("examples/fetch.lua", "10", "0.2")
    local out = p.stdout:receive("*a")
    assert.same({ true, "exit", 0 }, { p:wait(30) })
    p:close()
    local n, total = out:match("(%d+) requests, 200 ms each on the server, (%d+) ms in total")
    assert.equal("10", n)
    assert.is_true(tonumber(total) < H.scale(1000), out) -- sequential would be 2000 ms
  end)

  it("demo.lua runs to the end", function()
    local p = start("examples/demo.lua")
    local out = p.stdout:receive("*a")
    assert.same({ true, "exit", 0 }, { p:wait(60) })
    p:close()
    assert.matches("4000 round trips, every byte checked", out)
    assert.matches("6%. hub:", out)
  end)
end)
