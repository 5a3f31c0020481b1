-- #12: the client read 1xx informational answers until a final one came,
-- with no bound: a server sending "100 Continue" without end held a fetch
-- (and its green thread) for ever, each answer within the read timeout.
-- Now a few are read past (5, as Go's client) and then the fetch fails.
local H = require "helper"
local gh = H.gh
local http = require "greenhub.http"

describe("regress: endless 1xx answers", function()
  local function server(n1xx)
    return H.raw_server(function(s)
      s:settimeout(5)
      while true do
        local line = s:receive("*l")
        if not line then return end
        if line == "" then
          for _ = 1, n1xx do
            if not s:send("HTTP/1.1 100 Continue\r\n\r\n") then return end
          end
          if n1xx < 1000 then s:send("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok") end
        end
      end
    end)
  end

  it("a few 1xx before the answer are read past", function()
    local port, stop = server(5)
    local res = assert(http.client():fetch("http://127.0.0.1:" .. port .. "/"))
    assert.same({ 200, "ok" }, { res.status, res.body })
    stop()
  end)

  it("more than five: nil, 'too many 1xx responses', at once", function()
    local port, stop = server(1000)
    local t0 = gh.clock()
    assert.same({ nil, "too many 1xx responses" },
                { http.client({ timeout = 5 }):fetch("http://127.0.0.1:" .. port .. "/") })
    assert.is_true(gh.clock() - t0 < 2)
    stop()
  end)
end)
