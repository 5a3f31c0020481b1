-- #12: req:read("a") (io's habit) raised "attempt to compare number with
-- string" from inside greenhub.http's body reader; res:read on the client
-- the same. Both now say which argument is wrong.
local H = require "helper"
local gh = H.gh
local http = require "greenhub.http"

describe("regress: read with a bad size", function()
  it("req:read and res:read raise a clear error", function()
    local _, port, stop = H.http_server(function(req)
      local ok, err = pcall(req.read, req, "a")
      local ok2, err2 = pcall(req.read, req, 0)
      return 200, nil, tostring(ok) .. " " .. err .. " | " .. tostring(ok2) .. " " .. err2
    end)
    local res = assert(http.fetch{ url = "http://127.0.0.1:" .. port .. "/", method = "POST", body = "abc", stream = true })
    local body = res:body()
    assert.matches("^false .*bad argument #1 to 'read' %(positive integer expected, got string%) | false .*got integer%)$", body)
    local r2 = assert(http.fetch{ url = "http://127.0.0.1:" .. port .. "/", stream = true })
    local ok, err = pcall(r2.read, r2, "a")
    assert.is_false(ok)
    assert.matches("bad argument #1 to 'read'", err)
    r2:close()
    stop()
  end)
end)
