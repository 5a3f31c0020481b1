-- #12: a Host header's value was never checked, and two Host lines were
-- refused only on HTTP/1.1: `Host: a b`, `Host: a@b`, `Host: {` or a
-- control byte reached the handler (and anything that builds URLs or
-- picks a virtual host from it). RFC 9112 3.2: a request with more than
-- one Host line or an invalid Host value MUST get 400, whatever its
-- version. Checked byte by byte as Go's server does (uri-host [":" port]).
local H = require "helper"

describe("regress: an invalid Host", function()
  local calls = 0
  local s, port, stop
  setup(function()
    s, port, stop = H.http_server(function(req) calls = calls + 1; return 200, nil, req.headers.host or "-" end)
  end)
  teardown(function() stop() end)

  local function status(version, hosts)
    local c = H.connect(port)
    c:send("GET / HTTP/" .. version .. "\r\n" .. hosts .. "\r\n")
    local st, h, body = H.http_response(c)
    c:close()
    return st, h, body
  end

  for _, v in ipairs({ "a b", "a@b", "{", "}", "a/b", "a\\b", "\255", "a\1b", "a\"b", "<x>", "a?b", "a#b" }) do
    for _, version in ipairs({ "1.1", "1.0" }) do
      it(("Host %q on HTTP/%s -> 400, closed, no handler"):format(v, version), function()
        local before = calls
        local st, h = status(version, "Host: " .. v .. "\r\n")
        assert.same({ 400, "close" }, { st, h.connection })
        assert.equal(before, calls)
      end)
    end
  end

  it("two Host lines on HTTP/1.0 -> 400", function()
    assert.equal(400, (status("1.0", "Host: a\r\nHost: b\r\n")))
  end)

  for _, v in ipairs({ "", "example.com", "example.com:8080", "[::1]:80", "[fe80::1%25eth0]", "1.2.3.4",
                       "xn--bcher-kva.example", "under_score.example", "a.b-c~d!$&'()*+,;=" }) do
    it(("Host %q -> 200, as sent"):format(v), function()
      local st, _, body = status("1.1", "Host: " .. v .. "\r\n")
      assert.same({ 200, v == "" and "" or v }, { st, body })
    end)
  end
end)
