-- #11.35: examples/chat.lua's broadcast set a 1 s timeout on each
-- recipient, which also became that recipient's receive timeout: idle
-- clients were dropped after 1 s.
local H = require "helper"
local gh = H.gh

describe("regress: chat example keeps idle clients", function()
  it("a client idle for longer than a second still gets messages", function()
    local s = assert(gh.listen("127.0.0.1", 0)); local _, port = s:getsockname(); s:close()
    local p = assert(gh.popen({ "lua5.4", "-e", "package.cpath='" .. package.cpath:match("^([^;]*)") .. ";'..package.cpath",
      "examples/chat.lua", tostring(port) }, { stdin = "null", stdout = "pipe", stderr = "pipe" }))
    local a
    for _ = 1, 100 do a = gh.connect("127.0.0.1", port); if a then break end gh.sleep(0.02) end
    assert(a, "chat did not start")
    a:settimeout(5)
    local b = assert(gh.connect("127.0.0.1", port))
    assert.matches("joined", a:receive()) -- a broadcast reached a
    gh.sleep(1.5)                          -- a stays idle past 1 s
    b:send("still there?\n")
    assert.matches("still there%?", a:receive())
    a:close(); b:close()
    p:kill("TERM"); p:wait(5); p:close()
  end)
end)
