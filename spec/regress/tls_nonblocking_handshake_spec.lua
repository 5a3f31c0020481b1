-- #11.29b: TLS dohandshake() with settimeout(0) said "timeout" forever
-- where LuaSec says "wantread"/"wantwrite"; tostring did not start with
-- "SSL" (copas tells TLS sockets apart by that).
local H = require "helper"
local gh = H.gh
local tls = gh.tls

describe("regress: non-blocking TLS handshakes", function()
  if not tls.available then it("needs LuaSec", function() pending("lua-sec missing") end) return end
  local key, crt, dir = H.self_signed()
  teardown(function() os.execute("rm -rf " .. dir) end)

  local function server(handler) return H.tls_one_shot(key, crt, handler) end

  it("a non-blocking handshake says wantread/wantwrite and completes when driven", function()
    local srv, port, th = server(function(c) c:dohandshake(); c:send("hi\n") end)
    local raw = assert(gh.connect("127.0.0.1", port))
    local c = assert(tls.wrap(raw, { verify = "none" }))
    assert.matches("^SSL", tostring(c))
    c:settimeout(0)
    local saw, done = {}, false
    local t0 = gh.clock()
    while gh.clock() - t0 < 5 do
      local ok, err = c:dohandshake()
      if ok then done = true break end
      assert.is_true(err == "wantread" or err == "wantwrite", err)
      saw[err] = true
      gh.sleep(0.001)
    end
    assert.is_true(done)
    assert.is_true(saw.wantread)
    c:settimeout(5)
    assert.equal("hi", c:receive())
    H.bounded(10, th.wait, th)
    c:close(); srv:close()
  end)

end)
