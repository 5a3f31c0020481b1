-- #12: res:finish(body, trailers) on a response still under 2 KiB took the
-- computed-Content-Length path (the C finisher or the Lua one), which has
-- no place for trailers: they were dropped without a word. Trailers asked
-- for make the framing chunked (HTTP/1.1), where they go after the body.
local H = require "helper"

describe("regress: finish drops trailers", function()
  it("a small body with trailers is sent chunked, trailers after it", function()
    local _, port, stop = H.http_server(function(req, res)
      if req.path == "/buffered" then res:write("ab") end
      res:finish("cd", { ["x-sum"] = "42", ["x-n"] = 2 })
    end)
    local c = H.connect(port)
    for _, path in ipairs({ "/", "/buffered" }) do
      c:send("GET " .. path .. " HTTP/1.1\r\nHost: x\r\n\r\n")
      local st, h, body = H.http_response(c)
      assert.same({ 200, "chunked", "42", "2" }, { st, h["transfer-encoding"], h["x-sum"], h["x-n"] })
      assert.equal(path == "/" and "cd" or "abcd", body)
      assert.is_nil(h["content-length"])
    end
    -- no trailers (or none in the table): a computed length, as before
    c:close(); stop()
  end)

  it("an empty trailer table or none keeps the computed length", function()
    local _, port, stop = H.http_server(function(req, res) res:finish("cd", req.path == "/e" and {} or nil) end)
    local c = H.connect(port)
    for _, path in ipairs({ "/", "/e" }) do
      c:send("GET " .. path .. " HTTP/1.1\r\nHost: x\r\n\r\n")
      local st, h, body = H.http_response(c)
      assert.same({ 200, "2", "cd" }, { st, h["content-length"], body })
    end
    c:close(); stop()
  end)
end)
