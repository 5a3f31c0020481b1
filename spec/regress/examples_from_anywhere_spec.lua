-- #11.36: examples only ran from the repository root (package.path was
-- relative to the current directory); docs/design.md pointed to a file
-- outside the repository.
local H = require "helper"
local gh = H.gh

describe("regress: examples and docs stand on their own", function()
  it("an example runs from another directory", function()
    local root = io.popen("pwd"):read("l")
    local s = assert(gh.listen("127.0.0.1", 0)); local _, port = s:getsockname(); s:close()
    local p = assert(gh.popen({ "lua5.4", root .. "/examples/echo.lua", tostring(port) },
      { cwd = "/tmp", stdin = "null", stdout = "pipe", stderr = "pipe" }))
    local c
    for _ = 1, 100 do c = gh.connect("127.0.0.1", port); if c then break end gh.sleep(0.02) end
    if not c then
      p:kill("KILL")
      error("echo example did not start from /tmp: " .. tostring(p.stderr:receive("*a")))
    end
    c:settimeout(5)
    c:send("from elsewhere\n")
    assert.equal("from elsewhere", c:receive())
    c:close()
    p:kill("TERM"); p:wait(5); p:close()
  end)

  it("no document points outside the repository", function()
    for _, f in ipairs({ "README.md", "docs/api.md", "docs/design.md", "docs/patching.md", "docs/reliability.md", "docs/http.md" }) do
      local fh = assert(io.open(f))
      local text = fh:read("a")
      fh:close()
      assert.is_nil(text:find("../shared", 1, true), f .. " refers to ../shared")
      for target in text:gmatch("%]%(([^)#%s]+)%)") do
        if not target:match("^%a+:") then
          local base = f:match("^(.*)/[^/]*$") or "."
          local t = io.open(base .. "/" .. target)
          assert.truthy(t, f .. " links to missing " .. target)
          t:close()
        end
      end
    end
  end)
end)
