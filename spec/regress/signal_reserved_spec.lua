-- #11.6: gh.signal(32)/gh.signal(33) (glibc-reserved): the failing
-- sigaddset was ignored, and after cancel the hub still counted a watched
-- signal, so gh.run() never returned.
local H = require "helper"
local gh = H.gh

describe("regress: glibc-reserved signals", function()
  for _, sig in ipairs({ 32, 33 }) do
    it("gh.signal(" .. sig .. ") is a clear error and leaves nothing watched", function()
      local ok, err = pcall(gh.signal, sig, function() end)
      assert.is_false(ok)
      assert.matches("bad argument #1 to 'signal' %(signal reserved by the C library%)", err)
      gh.spawn(gh.sleep, 0.01)
      local t0 = gh.clock()
      H.bounded(5, function() end)
      gh.run() -- returns once the sleeper is done: no phantom signal source
      assert.is_true(gh.clock() - t0 < 2)
    end)
  end

  it("a real signal still works after a refused one, and cancel lets run() return", function()
    pcall(gh.signal, 32, function() end)
    local got
    local h = gh.signal("USR2", function(s) got = s end)
    os.execute("kill -USR2 " .. io.open("/proc/self/stat"):read("n"))
    gh.sleep(0.05)
    assert.equal(12, got)
    h:cancel()
    gh.run()
  end)
end)
