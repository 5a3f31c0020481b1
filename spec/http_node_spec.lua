-- greenhub.http against Node's own http module (Debian's nodejs, which
-- node-ws brings): Node's keep-alive client against the server, and the
-- client against Node's server. Peers nobody here wrote.
local H = require "helper"
local gh = H.gh
local http = require "greenhub.http"

-- (without the sanitizer runtimes a make asan run preloads: they are ours)
local NODE = os.execute("env -u LD_PRELOAD sh -c 'command -v node' >/dev/null 2>&1")

local function peer(argv)
  local p = assert(gh.popen(argv, { stdout = "pipe", env = { PATH = os.getenv("PATH") } }))
  p.stdout:settimeout(H.scale(30))
  return p, function() return (p.stdout:receive("*l")) end
end

describe("http against Node's http module", function()
  if not NODE then pending("node is not installed") return end

  it("Node's keep-alive client against the server", function()
    local s, port, stop = H.http_server(function(req, res)
      if req.path == "/echo" then
        local b = assert(req:body(1e6))
        return 200, nil, ("%s %d %s"):format(req.method, #b, req.headers["transfer-encoding"] or "-")
      elseif req.path == "/stream" then
        for _ = 1, 5 do res:write(("s"):rep(1000)) end
        return res:finish("end", { ["x-sum"] = "5" })
      elseif req.path == "/fail" then
        error("on purpose")
      end
      return 200, nil, "ok " .. req.path
    end)
    gh.onerror(function() end) -- /fail's report
    local p, line = peer({ "node", "spec/peers/http_node_client.js", tostring(port) })
    local out, fails = {}, {}
    for l in line do
      out[#out + 1] = l
      if l == "done" then break end
      if not l:match("^ok ") then fails[#fails + 1] = l end
    end
    gh.onerror(nil)
    assert.same({}, fails)
    assert.equal("done", out[#out], table.concat(out, "\n"))
    assert.equal(10, #out) -- nine checks and done
    assert.is_true(s:stats().connections <= 21) -- one, then at most twenty for the last 300
    p:wait(10); p:close(); stop()
  end)

  it("the client against Node's server", function()
    local p, line = peer({ "node", "spec/peers/http_node_server.js" })
    local port = tonumber(assert(line()):match("^ready (%d+)$"))
    local base = "http://127.0.0.1:" .. port
    local c = http.client()
    local r = assert(c:fetch(base .. "/chunked"))
    assert.same({ 200, "hello world", "chunked" }, { r.status, r.body, r.headers["transfer-encoding"] })
    r = assert(c:fetch({ url = base .. "/chunked", stream = true }))
    assert.equal("hello world", r:body())
    assert.equal("42", r.trailers["x-sum"])
    r = assert(c:fetch({ url = base .. "/echo", method = "POST", body = "abc" }))
    assert.equal("POST 3 - abc", r.body)
    local parts, i = { "a", "bb", "ccc" }, 0
    r = assert(c:fetch({ url = base .. "/echo", method = "PUT", body = function() i = i + 1; return parts[i] end }))
    assert.equal("PUT 6 chunked abbccc", r.body)
    r = assert(c:fetch(base .. "/redirect"))
    assert.same({ 200, "GET 0 - " }, { r.status, r.body })
    r = assert(c:fetch(base .. "/big"))
    assert.equal(1048576, #r.body)
    r = assert(c:fetch({ url = base .. "/x", method = "HEAD" }))
    assert.same({ 200, "" }, { r.status, r.body })
    assert.equal("ok /after-head", assert(c:fetch(base .. "/after-head")).body)
    -- Node closes a keep-alive connection idle for 200 ms: the pooled one
    -- is not used for a POST (which is not sent again)
    gh.sleep(0.4)
    r = assert(c:fetch({ url = base .. "/echo", method = "POST", body = "after idle" }))
    assert.equal("POST 10 - after idle", r.body)
    local body, code = http.request(base .. "/echo", "x=1")
    assert.same({ "POST 3 - x=1", 200 }, { body, code })
    p:kill(); p:wait(5); p:close()
  end)
end)
