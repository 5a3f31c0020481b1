-- #12: a response header value that is not a string or a number went out
-- as whatever tostring made of it: a table nested in a value's array as
-- "table: 0x55...", a boolean as "true", a function as its address. Now
-- it is the handler's error (500, reported with the header's name), for
-- header tables and trailers alike; numbers still go out as numbers.
local H = require "helper"

describe("regress: a response header value that is not a string", function()
  local errs
  before_each(function()
    errs = {}
    H.gh.onerror(function(_, e) errs[#errs + 1] = tostring(e) end)
  end)
  after_each(function() H.gh.onerror(nil) end)

  local function answer(handler)
    local _, port, stop = H.http_server(handler)
    local c = H.connect(port)
    c:send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    local st, h, body = H.http_response(c)
    c:close(); stop()
    return st, h, body
  end

  for _, case in ipairs({
    { "a table in an array", { { "a" } }, "table" },
    { "a boolean", true, "boolean" },
    { "a function", print, "function" },
  }) do
    it(case[1] .. ": 500, the error names the header", function()
      for _, how in ipairs({ "returned", "res.headers", "inform" }) do
        errs = {}
        local st = answer(function(_, res)
          if how == "returned" then return 200, { ["x-v"] = case[2] }, "b" end
          if how == "inform" then
            res:inform(103, { ["x-v"] = case[2] })
            return 200, nil, "b"
          end
          res.headers["x-v"] = case[2]
          res:finish("b")
        end)
        assert.equal(500, st, how)
        assert.matches("response header x-v is a " .. case[3], errs[1] or "", 1, true)
      end
    end)
  end

  -- everything the server sent on one request, to the close
  local function raw(handler)
    local _, port, stop = H.http_server(handler)
    local c = H.connect(port)
    c:send("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    local all = c:receive("*a")
    c:close(); stop()
    return all
  end

  it("a trailer that is a table: the handler's error, reported; the body is cut", function()
    local all = raw(function(_, res)
      res:write(string.rep("z", 3000))
      res:finish(nil, { ["x-t"] = {} })
    end)
    assert.matches("trailer x-t is a table", errs[1] or "", 1, true)
    assert.is_nil(all:find("x-t", 1, true))
    assert.is_nil(all:find("0\r\n\r\n$")) -- no last chunk: the client sees it cut
  end)

  it("numbers, and arrays of strings and numbers, still go out", function()
    local all = raw(function() return 200, { ["x-n"] = 42, ["x-f"] = 1.5, ["x-a"] = { "a", 7 } }, "b" end)
    assert.truthy(all:find("^HTTP/1.1 200 OK\r\n"))
    assert.truthy(all:find("\r\nx%-n: 42\r\n"))
    assert.truthy(all:find("\r\nx%-f: 1.5\r\n"))
    assert.truthy(all:find("\r\nx%-a: a\r\nx%-a: 7\r\n"))
    assert.same({}, errs)
  end)
end)
