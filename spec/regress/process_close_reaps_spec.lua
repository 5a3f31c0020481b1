-- #11.33: p:close() without p:wait() left a zombie until the program
-- exited, and a dropped process object leaked its pidfd.
local H = require "helper"
local gh = H.gh

local function state(pid)
  local f = io.open("/proc/" .. pid .. "/stat")
  if not f then return nil end
  local s = f:read("a"); f:close()
  return s:match("^%d+ %b() (%a)")
end

local fds = H.open_fds

describe("regress: process objects clean up after themselves", function()
  it("close() without wait() reaps the child in the background", function()
    local p = assert(gh.popen({ "true" }))
    local pid = p.pid
    p:close()
    local t0 = gh.clock()
    while state(pid) and gh.clock() - t0 < 5 do gh.sleep(0.01) end
    assert.is_nil(state(pid)) -- no zombie left
    assert.same({ true, "exit", 0 }, { p:wait() }) -- wait still answers
  end)

  it("a dropped process object is reaped and its pidfd closed", function()
    collectgarbage(); collectgarbage()
    local fd0 = fds()
    local pids = {}
    for i = 1, 5 do
      local p = assert(gh.popen({ "true" }, { stdin = "null", stdout = "null" }))
      pids[i] = p.pid
    end
    gh.sleep(0.05)
    collectgarbage(); collectgarbage()
    -- each exits when the machine gets to it (slow under ASan on a busy
    -- machine): bounded wait until none is left unreaped
    local t0 = gh.clock()
    local function left()
      for i = 1, 5 do if state(pids[i]) then return pids[i] end end
    end
    while left() and gh.clock() - t0 < 5 do gh.sleep(0.01) end
    local z = left()
    assert.is_nil(z, "zombie " .. tostring(z))
    assert.is_true(fds() <= fd0 + 1) -- no pidfd left (the listing's own fd aside)
  end)
end)
