-- #11.37: examples/hello_http.lua (by hand then; now on greenhub.http, the
-- hand-written one is hello_raw.lua, checked too) and hello_https.lua ignored
-- "Connection: close" and never said "Connection: keep-alive" to HTTP/1.0
-- clients: ab stalled, Python's client lost every second request.
local H = require "helper"
local gh = H.gh

local function start(example)
  local s = assert(gh.listen("127.0.0.1", 0)); local _, port = s:getsockname(); s:close()
  local p = assert(gh.popen({ "lua5.4", "-e", "package.cpath='" .. package.cpath:match("^([^;]*)") .. ";'..package.cpath",
    example, tostring(port) }, { stdin = "null", stdout = "null", stderr = "pipe" }))
  for _ = 1, 100 do
    local c = gh.connect("127.0.0.1", port)
    if c then c:close(); return p, port end
    gh.sleep(0.02)
  end
  error(example .. " did not start")
end

local function response(c)
  local head = {}
  while true do
    local l = assert(c:receive("*l"))
    if l == "" then break end
    head[#head + 1] = l
  end
  local len = tonumber(table.concat(head, "\n"):match("Content%-Length: (%d+)"))
  return table.concat(head, "\n"), c:receive(len)
end

-- third-party clients run without the sanitizer runtimes a spec run may preload
local clean_env = { PATH = os.getenv("PATH") or "/usr/bin:/bin", HOME = os.getenv("HOME") or "/" }

for _, example in ipairs({ "examples/hello_http.lua", "examples/hello_raw.lua" }) do
describe("regress: " .. example .. " honours Connection", function()
  local p, port
  setup(function() p, port = start(example) end)
  teardown(function() p:kill("TERM"); p:wait(5); p:close() end)

  it("HTTP/1.0 without keep-alive: one answer, then the server closes", function()
    local c = assert(gh.connect("127.0.0.1", port)); c:settimeout(5)
    c:send("GET / HTTP/1.0\r\nHost: x\r\n\r\n")
    local head, body = response(c)
    assert.equal("Hello, World!", body)
    assert.matches("Connection: close", head)
    assert.same({ nil, "closed", "" }, { c:receive("*a") })
    c:close()
  end)

  it("HTTP/1.0 with keep-alive: the answer says keep-alive and the connection stays", function()
    local c = assert(gh.connect("127.0.0.1", port)); c:settimeout(5)
    for _ = 1, 3 do
      c:send("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
      local head, body = response(c)
      assert.matches("Connection: keep%-alive", head)
      assert.equal("Hello, World!", body)
    end
    c:close()
  end)

  it("HTTP/1.1 with Connection: close is closed after the answer", function()
    local c = assert(gh.connect("127.0.0.1", port)); c:settimeout(5)
    c:send("GET / HTTP/1.1\r\nHost: x\r\nconnection: close\r\n\r\n")
    local head = response(c)
    assert.matches("Connection: close", head)
    assert.same({ nil, "closed", "" }, { c:receive("*a") })
    c:close()
  end)

  it("Python's http.client and curl --http1.0 get every answer", function()
    local py = gh.popen({ "/usr/bin/python3", "-c", ([[
import http.client, urllib.request
ok = 0
for i in range(10):
    ok += urllib.request.urlopen("http://127.0.0.1:%d/", timeout=5).read() == b"Hello, World!"
c = http.client.HTTPConnection("127.0.0.1", %d, timeout=5)
for i in range(10):
    c.request("GET", "/")
    ok += c.getresponse().read() == b"Hello, World!"
print(ok)
]]):format(port, port) }, { stdin = "null", stdout = "pipe", stderr = "pipe", env = clean_env })
    py.stdout:settimeout(20)
    assert.equal("20", py.stdout:receive("*l"))
    py:wait(10)
    local curl = gh.popen({ "curl", "-s", "--http1.0", "-m", "5", "http://127.0.0.1:" .. port .. "/",
      "http://127.0.0.1:" .. port .. "/" }, { stdin = "null", stdout = "pipe", stderr = "null", env = clean_env })
    curl.stdout:settimeout(20)
    assert.equal("Hello, World!Hello, World!", curl.stdout:receive("*a"))
    curl:wait(10)
  end)
end)
end
