-- greenhub.http over TLS: http.serve on a gh.tls.listen socket, and the
-- client's https (verification on) through gh.tls.connect.
local H = require "helper"
local gh = H.gh
local http = require "greenhub.http"

describe("http over TLS", function()
  if not gh.tls.available then it("needs LuaSec", function() pending("lua-sec missing") end) return end
  local _, _, dir = H.self_signed() -- dir/key.pem, dir/cert.pem
  teardown(function() os.execute("rm -rf " .. dir) end)

  it("serves https and fetches over it with verification, keep-alive and bodies", function()
    local l = assert(gh.tls.listen("127.0.0.1", 0, { certificate = dir .. "/cert.pem", key = dir .. "/key.pem" }))
    local _, port = l:getsockname()
    local s = http.server(function(req, res)
      if req.method == "POST" then return 200, nil, "got " .. #assert(req:body()) end
      for i = 1, 300 do res:write(("line %03d\n"):format(i)) end -- chunked (over 2 KiB)
      res:finish()
    end)
    local t = gh.spawn(s.serve, s, l)
    local c = http.client{ tls = { cafile = dir .. "/cert.pem" } }
    local base = "https://127.0.0.1:" .. port
    for _ = 1, 3 do
      local res = assert(c:fetch(base .. "/"))
      assert.equal(200, res.status)
      assert.equal("chunked", res.headers["transfer-encoding"])
      assert.equal(2700, #res.body)
    end
    local n = 0
    local res = assert(c:fetch{ url = base .. "/", method = "POST",
      body = function() n = n + 1; if n <= 5 then return string.rep("q", 1000) end end })
    assert.equal("got 5000", res.body)
    assert.equal(1, s:stats().connections) -- one TLS connection for all four
    -- verification is on: an unknown CA is refused
    local bad, err = http.fetch(base .. "/")
    assert.is_nil(bad)
    assert.matches("certificate", err)
    l:close(); s:shutdown(1); t:wait()
  end)
end)
