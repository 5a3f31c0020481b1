-- #12: socket.http's proxy (its generic form's `proxy` field, the module's
-- PROXY) was ignored: code moved over from socket.http went straight to
-- the origin, which a proxied network does not let through. An http://
-- URL now goes through the proxy: the request line names the whole URL,
-- Host (and the URL's own credentials) stay the origin's, the proxy's
-- user:password@ goes as Proxy-Authorization, and connections to the
-- proxy are pooled. https through a proxy (CONNECT) is an error, never a
-- silent direct connection.
local H = require "helper"
local http = require "greenhub.http"

describe("regress: an HTTP proxy", function()
  local s, port, stop, seen
  setup(function()
    -- the "proxy": a server that answers what it was asked
    s, port, stop = H.http_server(function(req)
      seen = { target = req.target, host = req.headers.host, auth = req.headers.authorization,
        pauth = req.headers["proxy-authorization"] }
      if req.target:match("/away$") then return 302, { location = "/there" }, "" end
      return 200, nil, "via proxy " .. req.target
    end)
  end)
  teardown(function() stop() end)
  local function proxy(userinfo) return "http://" .. (userinfo or "") .. "127.0.0.1:" .. port end

  it("a client's proxy: absolute-form, the origin's Host, pooled", function()
    local c = http.client({ proxy = proxy() })
    local before = s:stats().connections
    for _ = 1, 3 do
      local res = assert(c:fetch("http://origin.invalid:8080/a?b=1"))
      assert.equal("via proxy http://origin.invalid:8080/a?b=1", res.body)
    end
    assert.same({ "http://origin.invalid:8080/a?b=1", "origin.invalid:8080" }, { seen.target, seen.host })
    assert.equal(before + 1, s:stats().connections) -- one connection to the proxy for the three
  end)

  it("credentials: the URL's as Authorization, the proxy's as Proxy-Authorization", function()
    local c = http.client({ proxy = proxy("p:q@") })
    assert(c:fetch({ url = "http://u:v@origin.invalid/x", method = "POST", body = "b" }))
    local b64 = (require "greenhub.core")._b64
    assert.same({ "http://origin.invalid/x", "Basic " .. b64("u:v"), "Basic " .. b64("p:q") },
      { seen.target, seen.auth, seen.pauth })
  end)

  it("socket.http's shapes: the generic form's proxy, and http.PROXY", function()
    local out = {}
    assert.equal(1, (http.request({ url = "http://origin.invalid/g", proxy = proxy(),
      sink = function(d) if d then out[#out + 1] = d end return 1 end })))
    assert.equal("via proxy http://origin.invalid/g", table.concat(out))
    http.PROXY = proxy()
    local body, code = http.request("http://origin.invalid/p")
    http.PROXY = nil
    assert.same({ "via proxy http://origin.invalid/p", 200 }, { body, code })
  end)

  it("a redirect is followed through the proxy too", function()
    local res = assert(http.client({ proxy = proxy() }):fetch("http://origin.invalid/away"))
    assert.same({ 200, "via proxy http://origin.invalid/there" }, { res.status, res.body })
  end)

  it("https through a proxy, or a bad proxy: errors", function()
    local c = http.client({ proxy = proxy() })
    assert.same({ nil, "https through a proxy (CONNECT) is not supported" }, { c:fetch("https://origin.invalid/") })
    assert.same({ nil, "bad proxy socks5://x:1 (unsupported scheme socks5)" }, { http.client({ proxy = "socks5://x:1" }):fetch("http://o.invalid/") })
  end)
end)
