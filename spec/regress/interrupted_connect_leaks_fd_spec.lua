-- #12: a fetch interrupted while it waited (gh.with_timeout, a kill) left
-- its connection open until the collector found the socket: 300 timed-out
-- fetches in a loop held ~130 client fds open, on the way to EMFILE. Now
-- the connection closes as the fetch is interrupted, in its head or body;
-- websocket.connect's handshake, gh.tls.connect's handshake and gh.connect
-- itself had the same leak.
local H = require "helper"
local gh = H.gh
local http = require "greenhub.http"

-- this process's open fds
local PID = io.open("/proc/self/stat"):read("n")
local function nfds()
  local p = io.popen("ls /proc/" .. PID .. "/fd")
  local n = 0
  for _ in p:lines() do n = n + 1 end
  p:close()
  return n
end

-- A raw server whose connections wait (2 s at most) for their peer to
-- close: count.closed says how many saw it. answer(s), if given, runs first.
local function close_counter(answer)
  local count = { closed = 0 }
  local port, stop = H.raw_server(function(s)
    if answer then answer(s) end
    s:settimeout(2)
    local _, err = s:receive("*a")
    if err == nil or err == "closed" then count.closed = count.closed + 1 end
  end)
  return count, port, stop
end

-- n calls, each call(port, i) interrupted by gh.with_timeout (nil,
-- "timeout") against a close_counter(answer) server, with the collector
-- stopped (only the calls themselves may close): every connection closed
local function each_closes(n, answer, call)
  collectgarbage("stop")
  finally(function() collectgarbage("restart") end)
  local count, port, stop = close_counter(answer)
  for i = 1, n do
    assert.same({ nil, "timeout" }, { call(port, i) })
  end
  gh.sleep(0.2)
  collectgarbage("restart")
  assert.equal(n, count.closed)
  stop()
end

describe("regress: an interrupted connect, handshake or fetch leaks its fd", function()
  it("gh.connect and socket.connect interrupted while they connect close their socket at once", function()
    collectgarbage("stop")
    finally(function() collectgarbage("restart") end)
    local l = assert(gh.listen("127.0.0.1", 0, 0)) -- a backlog of one: the second connect waits
    local _, port = l:getsockname()
    local first = assert(gh.connect("127.0.0.1", port))
    local before = nfds()
    local socket = require "greenhub.socket" -- LuaSocket's socket.connect, as gh.patch() gives it
    for _ = 1, 5 do
      assert.same({ nil, "timeout" }, { gh.with_timeout(0.05, gh.connect, "127.0.0.1", port) })
      assert.same({ nil, "timeout" }, { gh.with_timeout(0.05, socket.connect, "127.0.0.1", port) })
    end
    local after = nfds()
    collectgarbage("restart")
    assert.equal(before, after)
    first:close(); l:close()
  end)

  it("gh.tls.connect interrupted in its handshake closes its connection at once", function()
    if not gh.tls.available then return pending("lua-sec missing") end
    each_closes(10, nil, function(port) -- a ClientHello comes; no answer goes
      return gh.with_timeout(0.05, gh.tls.connect, "127.0.0.1", port, { verify = "none" })
    end)
  end)

  it("fetches timed out in the head or in the body close their connection at once", function()
    local c = http.client()
    each_closes(20, function(s)
      local first = s:receive()
      repeat local x = s:receive() until x == "" or not x
      if first and first:find("/body", 1, true) then
        s:send("HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\nabc")
      end
    end, function(port, i)
      local path = i % 2 == 0 and "/body" or "/head"
      return gh.with_timeout(0.05, function() return c:fetch("http://127.0.0.1:" .. port .. path) end)
    end)
  end)

  it("websocket.connect timed out in its handshake closes its connection at once", function()
    local websocket = require "greenhub.websocket"
    each_closes(10, nil, function(port) -- the request comes; no answer goes
      return gh.with_timeout(0.05, websocket.connect, "ws://127.0.0.1:" .. port .. "/")
    end)
  end)
end)
