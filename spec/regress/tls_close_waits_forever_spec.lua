-- #19: close() on a TLS socket with no timeout waited for its unsent
-- records as long as the peer did not read: forever. It now gives them
-- TLS_LINGER (5 s), then closes.
local H = require "helper"
local gh = H.gh
local tls = gh.tls

describe("regress: close() of a TLS socket whose peer reads nothing", function()
  if not tls.available then it("needs LuaSec", function() pending("lua-sec missing") end) return end
  local key, crt, dir = H.self_signed()
  teardown(function() os.execute("rm -rf " .. dir) end)

  it("close() without a timeout gives unsent records 5 s (virtual clock), then closes", function()
    local srv, port = H.tls_listen(key, crt)
    local peer
    local st = gh.spawn(function() peer = srv:accept(); assert(peer:dohandshake()) end)
    local c = assert(tls.connect("127.0.0.1", port, { verify = "none" }))
    H.bounded(10, st.wait, st)
    -- small kernel buffers (no autotuning opening the window later)
    peer:setoption("recv-buffer-size", 4096); c:setoption("send-buffer-size", 4096)
    c:settimeout(0.2)
    local big = ("l"):rep(8 << 20)
    -- the peer reads nothing: the kernel is full, records wait in the socket
    assert.equal("timeout", select(2, c:send(big)))
    c:settimeout(nil)
    local vc <close> = gh.testing.virtual_clock()
    local t0, r0 = gh.clock(), os.time()
    assert.equal(1, H.bounded(30, c.close, c))
    local waited = gh.clock() - t0
    assert.is_true(waited >= 5 and waited < 6, "waited " .. waited)
    assert.is_true(os.time() - r0 <= 3)
    peer:close(); srv:close()
  end)
end)
