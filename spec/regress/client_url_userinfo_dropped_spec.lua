-- #12: the client dropped a URL's user:password@ without a word: code
-- moved from socket.http (which sends them as Basic credentials, as Go and
-- curl do) lost its authentication, and socket.http's generic form's
-- user/password fields were ignored too. Now they go out as
-- "Authorization: Basic ...", each part percent-decoded; a header the
-- caller gives wins; a redirect to another host does not carry them.
local H = require "helper"
local gh = H.gh
local http = require "greenhub.http"

describe("regress: credentials in the URL", function()
  local port, stop, seen
  setup(function()
    port, stop = H.raw_http_server(function(line, lines)
      local auth
      for _, x in ipairs(lines) do auth = auth or x:match("^[Aa]uthorization: (.*)$") end
      seen = auth or "none"
      if line:match("^GET /away") then
        return "HTTP/1.1 302 Found\r\nLocation: http://localhost:" .. port .. "/there\r\nContent-Length: 0\r\n\r\n"
      end
      return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    end)
  end)
  teardown(function() stop() end)

  local function b64(s) return (require "greenhub.core")._b64(s) end

  it("user:password@ -> Basic, percent-decoded", function()
    assert.equal("ok", assert(http.fetch("http://alice:p%40ss%3A@127.0.0.1:" .. port .. "/")).body)
    assert.equal("Basic " .. b64("alice:p@ss:"), seen)
    assert.equal("Basic YWxpY2U6cEBzczo=", seen) -- (the base64 itself, checked once by hand)
  end)

  it("user@ alone -> Basic with an empty password (as Go)", function()
    assert(http.fetch({ url = "http://bob@127.0.0.1:" .. port .. "/", method = "POST", body = "x" }))
    assert.equal("Basic " .. b64("bob:"), seen)
  end)

  it("a header of the caller's wins", function()
    assert(http.fetch({ url = "http://alice:pw@127.0.0.1:" .. port .. "/", headers = { Authorization = "Bearer t" } }))
    assert.equal("Bearer t", seen)
  end)

  it("socket.http's shapes: the simple form, and the generic form's user and password", function()
    assert.equal("ok", (http.request("http://carol:c%20d@127.0.0.1:" .. port .. "/")))
    assert.equal("Basic " .. b64("carol:c d"), seen)
    local out = {}
    assert.equal(1, (http.request({ url = "http://127.0.0.1:" .. port .. "/", user = "dave", password = "pw",
      sink = function(d) if d then out[#out + 1] = d end return 1 end })))
    assert.equal("Basic " .. b64("dave:pw"), seen)
    assert.equal("ok", table.concat(out))
  end)

  it("a redirect to another host does not carry them", function()
    assert(http.fetch("http://alice:pw@127.0.0.1:" .. port .. "/away"))
    assert.equal("none", seen) -- (the request to localhost: none)
  end)

  it("a bad percent-escape is an invalid URL", function()
    assert.same({ nil, "invalid URL http://a%zz:b@127.0.0.1/" }, { http.fetch("http://a%zz:b@127.0.0.1/") })
  end)
end)
