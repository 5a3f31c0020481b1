-- #12: http.request{url = ..., redirect = false} (socket.http's generic
-- form: do not follow) followed the redirect anyway: the option was read
-- as `a.redirect == false and false or 5`, which is 5 either way. Now the
-- 3xx comes back as socket.http gives it.
local H = require "helper"
local http = require "greenhub.http"

describe("regress: socket.http's redirect = false", function()
  it("returns the 3xx itself; without it, the redirect is followed", function()
    local _, port, stop = H.http_server(function(req)
      if req.path == "/away" then return 302, { location = "/there" }, "" end
      return 200, nil, "there"
    end)
    local url = "http://127.0.0.1:" .. port .. "/away"
    local r, code, headers = http.request({ url = url, redirect = false })
    assert.same({ 1, 302, "/there" }, { r, code, headers.location })
    local out = {}
    r, code = http.request({ url = url, sink = function(d) if d then out[#out + 1] = d end return 1 end })
    assert.same({ 1, 200, "there" }, { r, code, table.concat(out) })
    stop()
  end)
end)
