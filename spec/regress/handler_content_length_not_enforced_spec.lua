-- #12: a Content-Length the handler set was not enforced on a whole body:
-- `return 200, {["content-length"] = "0"}, "bbb"` (or res:finish) sent the
-- head and all three bytes, which a keep-alive client then read as the
-- start of the next answer; a buffered write past it (the head going out at
-- 2 KiB) sent nothing at all, not even the head; and a value that is not
-- a number ("abc", "-1") went out as it was. Now the announced bytes go
-- out and the rest does not (finish/write say nil, "too much data", the
-- connection stays in step), and a bad value is the handler's error (500).
local H = require "helper"

describe("regress: the handler's own Content-Length", function()
  local results = {}
  local s, port, stop
  setup(function()
    s, port, stop = H.http_server(function(req, res)
      local p = req.path
      if p == "/next" then return 200, nil, "next" end
      if p == "/returned" then return 200, { ["content-length"] = "2" }, "abcdef" end
      res.headers["content-length"] = 2
      if p == "/finished" then results[p] = { res:finish("abcdef") }
      elseif p == "/buffered" then -- past 2 KiB while buffering: the head goes out from write
        results[p] = { res:write(string.rep("a", 3000)) }
        res:finish()
      elseif p == "/small" then -- written, then finished in Lua
        res:write("abc"); results[p] = { res:finish("def") }
      end
    end)
  end)
  teardown(function() stop() end)

  for _, p in ipairs({ "/returned", "/finished", "/buffered", "/small" }) do
    it(p .. ": the announced two bytes, nothing more; the connection carries the next request", function()
      local c = H.connect(port)
      c:send("GET " .. p .. " HTTP/1.1\r\nHost: x\r\n\r\nGET /next HTTP/1.1\r\nHost: x\r\n\r\n")
      local st, h, body = H.http_response(c)
      assert.same({ 200, "2", nil }, { st, h["content-length"], h.connection })
      assert.equal(p == "/buffered" and "aa" or "ab", body)
      local st2, _, body2 = H.http_response(c)
      assert.same({ 200, "next" }, { st2, body2 })
      if p ~= "/returned" then assert.same({ nil, "too much data" }, results[p]) end
      c:close()
    end)
  end

  for _, v in ipairs({ "abc", "-1", "1.5", " 2", "2 ", "99999999999999999999", 2.0, -2, {} }) do
    it(("a Content-Length of %s is the handler's error: 500, reported"):format(type(v) == "string" and ("%q"):format(v) or tostring(v)), function()
      local errs = {}
      H.gh.onerror(function(_, e) errs[#errs + 1] = tostring(e) end)
      local _, port2, stop2 = H.http_server(function() return 200, { ["content-length"] = v }, "ab" end)
      local c = H.connect(port2)
      c:send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
      local st, _, body = H.http_response(c)
      assert.same({ 500, "" }, { st, body })
      assert.matches("bad response Content-Length", errs[1] or "", 1, true)
      c:close(); stop2()
      H.gh.onerror(nil)
    end)
  end
end)
