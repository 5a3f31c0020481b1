-- #12: a connection's green thread killed (by hand, or by a shutdown past
-- its grace) stayed in the server's table of connections: s:stats() went
-- on counting it as open-and-idle, its table and socket object were held
-- for the server's life, and a shutdown walked it again. Its cleanup sat
-- at the end of the connection loop, which the kill never reached. Now the
-- connection's one xpcall ends it either way. Checked at each place a
-- connection waits; the server closes the socket and serves on.
local H = require "helper"
local gh = H.gh
local connect, response = H.connect, H.http_response
local start = H.http_server

describe("regress: a killed connection was left in the server", function()
  it("killed at each place it waits: the server forgets it, closes it, serves on", function()
    local reported = {}
    gh.onerror(function(_, err) reported[#reported + 1] = tostring(err) end)
    local s, port, stop = start(function(req, res)
      if req.path == "/sleep" then gh.sleep(30)
      elseif req.path == "/body" then req:body()
      elseif req.path == "/big" then
        for _ = 1, 1000 do if not res:write(("b"):rep(65536)) then break end end
      end
      return 200, nil, "ok"
    end, { max_body_size = 1e9 })
    local function the_thread()
      for _ = 1, 100 do
        local conn = next(s.conns)
        if conn then return conn.thread end
        gh.sleep(0.005)
      end
      error("no connection")
    end
    local places = {
      { "before a request", "" },
      { "in the middle of a head", "GET / HTTP/1.1\r\nHost: x\r\n" },
      { "between requests", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 200 },
      { "in the handler", "GET /sleep HTTP/1.1\r\nHost: x\r\n\r\n", 500 },
      { "reading a body", "POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\npart", 500 },
      { "sending a response the client does not read", "GET /big HTTP/1.1\r\nHost: x\r\n\r\n" },
    }
    for _, p in ipairs(places) do
      for _ = 1, 100 do if not next(s.conns) then break end; gh.sleep(0.005) end -- the last check's gone
      assert.is_nil(next(s.conns))
      local c = connect(port)
      if #p[2] > 0 then c:send(p[2]) end
      local t = the_thread()
      if p[3] == 200 then assert.equal(200, (response(c))) end
      gh.sleep(0.05)
      t:kill()
      gh.sleep(0.02)
      if p[3] == 500 then assert.equal(500, (response(c)), p[1]) end
      -- (what is left: nothing, or the part of /big sent before the kill)
      local err
      repeat local d, e = c:receive(65536); err = e until not d
      assert.equal("closed", err, p[1])
      local st = s:stats()
      assert.same({ 0, 0, 0 }, { st.open, st.active, st.idle }, p[1])
      assert.is_nil(next(s.conns), p[1])
      c:close()
      local c2 = connect(port)
      c2:send("GET /after HTTP/1.1\r\nHost: x\r\n\r\n")
      local st2, _, body = response(c2)
      assert.same({ 200, "ok" }, { st2, body }, p[1])
      c2:close()
    end
    gh.onerror(nil)
    assert.same({}, reported) -- a kill is not an error
    stop()
  end)
end)
