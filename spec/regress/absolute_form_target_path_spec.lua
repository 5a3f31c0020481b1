-- #12: a request in absolute-form ("GET http://host/a?b HTTP/1.1", which
-- RFC 9112 3.2.2 says a server MUST accept, and which clients send to
-- anything they take for a proxy) gave the handler req.path =
-- "http://host/a": routers matched nothing, and http.static looked for a
-- file under root/http:/host/. req.path and req.query are now the
-- target's path and query (an empty path is "/"), as Go's URL.Path and
-- OpenResty's $uri; req.target stays as it came.
local H = require "helper"
local http = require "greenhub.http"

describe("regress: an absolute-form request target", function()
  local function seen(target)
    local _, port, stop = H.http_server(function(req)
      return 200, nil, ("%s|%s|%s"):format(req.target, req.path, tostring(req.query))
    end)
    local c = H.connect(port)
    c:send("GET " .. target .. " HTTP/1.1\r\nHost: x\r\n\r\n")
    local st, _, body = H.http_response(c)
    c:close(); stop()
    return st, body
  end

  for _, case in ipairs({
    { "http://x/a?b=1", "http://x/a?b=1|/a|b=1" },
    { "HTTP://x:8080", "HTTP://x:8080|/|nil" },
    { "https://x/a/b", "https://x/a/b|/a/b|nil" },
    { "http://x?q", "http://x?q|/|q" },
    { "http://[::1]:80/v6", "http://[::1]:80/v6|/v6|nil" },
    -- other forms as before
    { "/p?q", "/p?q|/p|q" },
    { "*", "*|*|nil" },
    { "ftp://x/a", "ftp://x/a|ftp://x/a|nil" },
  }) do
    it(case[1] .. " -> " .. case[2], function()
      assert.same({ 200, case[2] }, { seen(case[1]) })
    end)
  end

  it("http.static serves the file an absolute-form target names", function()
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. dir))
    local f = assert(io.open(dir .. "/hello.txt", "w")); f:write("hi"); f:close()
    local _, port, stop = H.http_server(http.static(dir))
    local c = H.connect(port)
    c:send("GET http://example.com/hello.txt HTTP/1.1\r\nHost: example.com\r\n\r\n")
    local st, _, body = H.http_response(c)
    assert.same({ 200, "hi" }, { st, body })
    c:close(); stop()
    os.execute("rm -rf " .. dir)
  end)
end)
