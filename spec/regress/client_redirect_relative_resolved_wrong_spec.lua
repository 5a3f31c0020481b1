-- #12: the client resolved a redirect's relative Location by gluing it to
-- the base URL's directory: "../g" was requested as /b/c/../g, "?y" as
-- /b/c/?y (the base's path lost), "g#s" with its fragment in the path, and
-- "g:h" (another scheme) as a path. Now RFC 3986 5.2 (merge, dot segments
-- removed), checked with the RFC's own examples (5.4) on real redirects.
local H = require "helper"
local gh = H.gh
local http = require "greenhub.http"

describe("regress: a redirect's relative Location", function()
  local port, stop, next_ref, seen
  setup(function()
    port, stop = H.raw_http_server(function(line)
      local target = line:match("^GET (%S+)")
      if target == "/b/c/d;p?q" then
        return "HTTP/1.1 302 Found\r\nLocation: " .. next_ref .. "\r\nContent-Length: 0\r\n\r\n"
      end
      seen = target
      return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    end)
  end)
  teardown(function() stop() end)

  -- RFC 3986 5.4.1 and 5.4.2 (base http://a/b/c/d;p?q), the authority here ours
  local cases = {
    { "g", "/b/c/g" }, { "./g", "/b/c/g" }, { "g/", "/b/c/g/" }, { "/g", "/g" },
    { "?y", "/b/c/d;p?y" }, { "g?y", "/b/c/g?y" }, { "g#s", "/b/c/g" }, { "g?y#s", "/b/c/g?y" },
    { ";x", "/b/c/;x" }, { "g;x", "/b/c/g;x" }, { "g;x?y#s", "/b/c/g;x?y" },
    { ".", "/b/c/" }, { "./", "/b/c/" }, { "..", "/b/" }, { "../", "/b/" }, { "../g", "/b/g" },
    { "../..", "/" }, { "../../", "/" }, { "../../g", "/g" }, { "../../../g", "/g" }, { "../../../../g", "/g" },
    { "/./g", "/g" }, { "/../g", "/g" }, { "g.", "/b/c/g." }, { ".g", "/b/c/.g" }, { "g..", "/b/c/g.." },
    { "..g", "/b/c/..g" }, { "./../g", "/b/g" }, { "./g/.", "/b/c/g/" }, { "g/./h", "/b/c/g/h" },
    { "g/../h", "/b/c/h" }, { "g;x=1/./y", "/b/c/g;x=1/y" }, { "g;x=1/../y", "/b/c/y" },
    { "g?y/./x", "/b/c/g?y/./x" }, { "g?y/../x", "/b/c/g?y/../x" }, { "g#s/./x", "/b/c/g" },
  }
  for _, case in ipairs(cases) do
    it(("%q -> %s"):format(case[1], case[2]), function()
      next_ref, seen = case[1], nil
      local res, err = http.fetch("http://127.0.0.1:" .. port .. "/b/c/d;p?q")
      assert.equal("ok", res and res.body, err)
      assert.equal(case[2], seen)
    end)
  end

  it("an absolute reference to another scheme is not taken as a path", function()
    next_ref = "g:h"
    assert.same({ nil, "bad redirect location g:h" }, { http.fetch("http://127.0.0.1:" .. port .. "/b/c/d;p?q") })
  end)

  it("a network-path reference keeps the scheme", function()
    next_ref = "//127.0.0.1:" .. port .. "/net"
    local res = assert(http.fetch("http://127.0.0.1:" .. port .. "/b/c/d;p?q"))
    assert.same({ "ok", "/net" }, { res.body, seen })
  end)
end)
