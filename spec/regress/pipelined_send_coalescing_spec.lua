-- #11.29d: pipelined load cost one send syscall per reply. Opt-in
-- setoption("coalesce", true) collects sends and writes them in one
-- syscall when the thread blocks (or at 64 KiB, flush(), close()).
local H = require "helper"
local gh = H.gh

local pair = H.tcp_pair

describe("regress: coalesced sends", function()
  it("are held until the thread blocks, then go out together and in order", function()
    local c, s = pair()
    assert.equal(1, s:setoption("coalesce", true))
    assert.is_true(s:getoption("coalesce"))
    for i = 1, 16 do assert.equal(4, s:send(("r%03d"):format(i))) end
    c:settimeout(0)
    assert.same({ nil, "timeout", "" }, { c:receive(1) }) -- nothing left yet
    gh.sleep(0)                                             -- s's thread blocks
    c:settimeout(2)
    local want = {}
    for i = 1, 16 do want[i] = ("r%03d"):format(i) end
    assert.equal(table.concat(want), c:receive(64))
    c:close(); s:close()
  end)

  it("a receive that waits flushes first (request/response on one socket)", function()
    local c, s = pair()
    s:setoption("coalesce", true)
    local server = gh.spawn(function()
      while true do
        local l = s:receive()
        if not l then return end
        s:send(l:upper() .. "\n")
      end
    end)
    c:settimeout(2)
    c:send("a\nb\nc\n")
    assert.equal("A", c:receive()); assert.equal("B", c:receive()); assert.equal("C", c:receive())
    c:close()
    H.bounded(5, server.wait, server)
    s:close()
  end)

  it("large writes and a slow reader: everything arrives, in order", function()
    local c, s = pair()
    s:setoption("coalesce", true)
    local chunks = {}
    for i = 1, 200 do chunks[i] = string.rep(string.char(64 + i % 26), 1000 + i * 37) end
    local payload = table.concat(chunks)
    local writer = gh.spawn(function()
      for i = 1, 200 do assert(s:send(chunks[i])) end
      assert.equal(1, s:close()) -- close flushes what is left, waiting as needed
    end)
    gh.sleep(0.05) -- let the kernel buffers fill
    c:settimeout(5)
    local got = c:receive("*a")
    assert.equal(#payload, #got)
    assert.equal(payload, got)
    H.bounded(5, writer.wait, writer)
    c:close()
  end)

  it("flush() pushes out now; a peer reset shows up at the next send", function()
    local c, s = pair()
    s:setoption("coalesce", true)
    s:send("now")
    assert.equal(1, s:flush())
    c:settimeout(2)
    assert.equal("now", c:receive(3))
    c:setoption("linger", { on = true, timeout = 0 })
    c:close()
    gh.sleep(0.01)
    s:send("x"); gh.sleep(0.01) -- background flush meets the reset
    local ok, err
    for _ = 1, 3 do ok, err = s:send("y"); if not ok then break end gh.sleep(0.01) end
    assert.is_nil(ok)
    assert.equal("closed", err)
    s:close()
  end)

  it("the hub does not go idle with output still waiting for the peer", function()
    local out, code = H.run_script([[
      local gh = require "greenhub"
      local srv = assert(gh.listen("127.0.0.1", 0))
      local _, port = srv:getsockname()
      local c = assert(gh.connect("127.0.0.1", port))
      local s = assert(srv:accept())
      c:setoption("recv-buffer-size", 4096)
      s:setoption("send-buffer-size", 4096)
      s:setoption("coalesce", true)
      local blob = string.rep("z", 60000)
      gh.spawn(function() s:send(blob) end) -- then the thread ends: no park
      gh.run() -- nothing parks at all: the turn itself must flush
      c:settimeout(2)
      print("got", #c:receive(60000))
    ]])
    assert.equal(0, code, out)
    assert.matches("got\t60000", out)
  end)
end)
