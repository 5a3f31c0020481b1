-- Faults: resets, half-closes, slowloris, blocked writers, fd exhaustion,
-- signals interrupting syscalls, fork. In each the server keeps serving the
-- other clients and only the affected one sees the error.
local H = require "helper"
local gh = H.gh
local core = require "greenhub.core"

-- An echo server that records what each handler saw.
local function echo_server(opts)
  opts = opts or {}
  local srv = assert(gh.listen("127.0.0.1", 0))
  local _, port = srv:getsockname()
  local errors = {}
  local t = gh.spawn(gh.serve, srv, function(c)
    if opts.idle then c:settimeout(opts.idle) end
    while true do
      local l, err, partial = c:receive("*l")
      if not l then
        -- a clean close between lines is not an error
        if err ~= "closed" or partial ~= "" then errors[#errors + 1] = { err = err, partial = partial } end
        return
      end
      local ok, e = c:send(l .. "\n")
      if not ok then errors[#errors + 1] = { err = e }; return end
    end
  end)
  return port, errors, function() srv:close(); t:wait() end
end

-- A well-behaved client doing n round trips; returns true when all match.
local function good_client(port, n)
  local c = assert(gh.connect("127.0.0.1", port))
  for i = 1, n do
    c:send("ping " .. i .. "\n")
    if c:receive() ~= "ping " .. i then return false end
  end
  c:close()
  return true
end

describe("faults", function()
  it("a peer resetting mid-line: only that handler sees 'closed' with the partial line", function()
    local port, errors, stop = echo_server()
    local good = gh.spawn(good_client, port, 50)
    local bad = assert(gh.connect("127.0.0.1", port))
    bad:send("half a li")
    gh.sleep(0.01)
    bad:setoption("linger", { on = true, timeout = 0 })
    bad:close()
    assert.is_true(good:wait())
    gh.sleep(0.01)
    assert.equal(1, #errors)
    assert.equal("closed", errors[1].err)
    assert.equal("half a li", errors[1].partial)
    assert.is_true(good_client(port, 5))
    stop()
  end)

  it("a half-closed peer still gets its answers", function()
    local port, errors, stop = echo_server()
    local c = assert(gh.connect("127.0.0.1", port))
    c:send("one\ntwo\n")
    c:shutdown("send")
    assert.equal("one", c:receive())
    assert.equal("two", c:receive())
    assert.same({ nil, "closed", "" }, { c:receive() })
    c:close()
    stop()
  end)

  it("slowloris: an idle timeout sheds peers that send nothing", function()
    local port, errors, stop = echo_server({ idle = 0.05 })
    local idlers = {}
    for i = 1, 20 do idlers[i] = assert(gh.connect("127.0.0.1", port)) end
    idlers[21] = assert(gh.connect("127.0.0.1", port)); idlers[21]:send("GET / HTT") -- trickles, never ends the line
    assert.is_true(good_client(port, 10))
    gh.sleep(0.15)
    assert.equal(21, #errors)
    for _, e in ipairs(errors) do assert.equal("timeout", e.err) end
    for _, c in ipairs(idlers) do
      c:settimeout(1)
      assert.same({ nil, "closed", "" }, { c:receive() }) -- the server hung up
      c:close()
    end
    assert.is_true(good_client(port, 10))
    stop()
  end)

  it("a peer that stops reading: the writer blocks, times out, and never busy-loops", function()
    local srv = assert(gh.listen("127.0.0.1", 0))
    local _, port = srv:getsockname()
    local data = string.rep("x", 64 * 1024 * 1024)
    local result
    local writer = gh.spawn(function()
      local c = srv:accept()
      c:settimeout(0.3)
      local s0 = gh.stats()
      local ok, err, last = c:send(data)
      local s1 = gh.stats()
      result = { ok = ok, err = err, last = last, turns = s1.turns - s0.turns }
      c:close()
    end)
    local reader = assert(gh.connect("127.0.0.1", port)) -- never reads
    local others = gh.spawn(function() for _ = 1, 20 do gh.sleep(0.01) end return true end)
    writer:wait()
    assert.is_true(others:wait())
    assert.is_nil(result.ok)
    assert.equal("timeout", result.err)
    assert.is_true(result.last > 0 and result.last < #data)
    -- blocked means parked: a handful of loop turns (the ticker's), not a spin
    assert.is_true(result.turns < 200, "the hub turned " .. result.turns .. " times while the writer was blocked")
    reader:close(); srv:close()
  end)

  it("a peer closing while 2 MiB is in flight: the writer gets 'closed', others keep working", function()
    local srv = assert(gh.listen("127.0.0.1", 0))
    local _, port = srv:getsockname()
    local res
    local w = gh.spawn(function()
      local c = srv:accept()
      c:setoption("send-buffer-size", 65536) -- so the 2 MiB cannot all sit in kernel buffers
      local ok, err, last = c:send(string.rep("y", 2 * 1024 * 1024))
      res = { ok = ok, err = err, last = last }
      c:close()
    end)
    local port2, errors, stop = echo_server()
    local other = gh.spawn(good_client, port2, 50)
    local c = assert(gh.socket.tcp4())
    c:setoption("recv-buffer-size", 65536)
    assert(c:connect("127.0.0.1", port))
    assert.equal(65536, #c:receive(65536))
    c:setoption("linger", { on = true, timeout = 0 })
    c:close()
    w:wait()
    assert.is_nil(res.ok)
    assert.equal("closed", res.err)
    assert.is_true(res.last >= 65536 and res.last < 2 * 1024 * 1024)
    assert.is_true(other:wait())
    assert.equal(0, #errors)
    stop()
    srv:close()
  end)

  it("EMFILE on accept: no spinning, and serving recovers when fds free up", function()
    local out, code = H.run_script([[
      local gh = require "greenhub"
      local srv = assert(gh.listen("127.0.0.1", 0))
      local _, port = srv:getsockname()
      local served = 0
      gh.spawn(gh.serve, srv, function(c) c:send("hi\n"); served = served + 1 end)
      local client = assert(gh.socket.tcp4())
      local hog = {}
      while true do -- use up every fd
        local s = gh.socket.tcp4()
        if not s then break end
        hog[#hog + 1] = s
      end
      local t = gh.spawn(function() client:settimeout(5); assert(client:connect("127.0.0.1", port)); return client:receive() end)
      local cpu0, wall0 = os.clock(), gh.clock()
      gh.sleep(0.5)
      local cpu = os.clock() - cpu0
      print("served while out of fds:", served, "cpu:", string.format("%.3f", cpu))
      for _, s in ipairs(hog) do s:close() end
      print("after freeing:", t:wait(), served)
      srv:close()
    ]], "ulimit -n 64;")
    assert.equal(0, code, out)
    local served, cpu = out:match("served while out of fds:%s+(%d+)%s+cpu:%s+([%d.]+)")
    assert.equal("0", served)
    assert.is_true(tonumber(cpu) < 0.1, "accept loop spun: " .. cpu .. " s CPU in 0.5 s")
    assert.matches("after freeing:%s+hi%s+1", out)
  end)

  it("signals at a high rate (EINTR everywhere) lose and corrupt nothing", function()
    local got = 0
    local h = gh.signal("USR2", function() got = got + 1 end)
    local f = io.open("/proc/self/stat"); local pid = f:read("n"); f:close()
    local p = assert(gh.popen({ "sh", "-c", "while kill -USR2 " .. pid .. " 2>/dev/null; do :; done" }, { stdin = "null", stdout = "null" }))
    local port, errors, stop = echo_server()
    local ts = {}
    for i = 1, 20 do ts[i] = gh.spawn(good_client, port, 100) end
    local t0 = H.now()
    gh.sleep(0.05)
    for i = 1, 20 do assert.is_true(ts[i]:wait()) end
    assert.is_true(H.now() - t0 >= 0.05)
    p:kill("KILL"); p:wait(); p:close()
    h:cancel()
    assert.is_true(got > 0)
    assert.equal(0, #errors)
    stop()
  end)

  it("EINTR on every blocking syscall (a signal every 200 us, no SA_RESTART) loses and corrupts nothing", function()
    local port, errors, stop = echo_server()
    core._interrupt_timer(H.slow and 5000 or 200) -- valgrind would livelock at 200 us
    local ok, err = pcall(function()
      local ts = {}
      for i = 1, 20 do ts[i] = gh.spawn(good_client, port, 200) end
      local sleeper = gh.spawn(function() local t0 = H.now(); gh.sleep(0.05); return H.now() - t0 end)
      local resolved = gh.spawn(gh.resolve, "LOCALHOST")
      for i = 1, 20 do assert.is_true(ts[i]:wait()) end
      assert.is_true(sleeper:wait() >= 0.05)
      assert.truthy(resolved:wait())
      local big = string.rep("0123456789", 200000) -- 2 MB through one connection
      local srv = assert(gh.listen("127.0.0.1", 0))
      local _, p2 = srv:getsockname()
      local rx = gh.spawn(function() local c = srv:accept(); local d = c:receive("*a"); c:close(); return d end)
      local c = assert(gh.connect("127.0.0.1", p2))
      assert.equal(#big, c:send(big))
      c:close()
      assert.equal(big, rx:wait())
      srv:close()
    end)
    core._interrupt_timer(0)
    assert(ok, err)
    assert.equal(0, #errors)
    stop()
  end)

  it("a child forked after the hub started gets a fresh hub", function()
    local port, errors, stop = echo_server()
    io.stdout:flush(); io.stderr:flush()
    local pid = core._fork()
    if pid == 0 then
      local ok = pcall(function()
        gh.sleep(0.01)
        assert(good_client(port, 20))
      end)
      os.exit(ok and 0 or 1, false)
    end
    -- the parent keeps serving meanwhile, on its own epoll set
    assert.is_true(good_client(port, 20))
    local how, code
    for _ = 1, 500 do
      local _, h, c = core._waitpid(pid)
      if h then how, code = h, c; break end
      gh.sleep(0.01)
    end
    assert.equal("exit", how)
    assert.equal(0, code)
    assert.equal(0, #errors)
    stop()
  end)
end)
