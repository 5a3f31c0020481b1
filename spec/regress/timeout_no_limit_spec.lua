-- #11.14: with_timeout(-1, f) and p:wait(-1) timed out at once;
-- with_timeout(nil, f) raised. nil, negative and math.huge mean no limit.
local H = require "helper"
local gh = H.gh

describe("regress: no-limit timeouts", function()
  for _, v in ipairs({ "nil", "-1", "math.huge" }) do
    it("with_timeout(" .. v .. ", f) runs f to the end", function()
      local s = load("return " .. v)()
      assert.same({ "done", 2 }, { gh.with_timeout(s, function(x) gh.sleep(0.02); return "done", x end, 2) })
    end)
  end

  it("with_timeout with no limit passes errors through unchanged", function()
    local ok, err = pcall(gh.with_timeout, nil, function() error({ code = 7 }) end)
    assert.is_false(ok)
    assert.same({ code = 7 }, err)
  end)

  it("p:wait(-1) waits for the process", function()
    local p = assert(gh.popen({ "sleep", "0.05" }, { stdin = "null", stdout = "null" }))
    assert.same({ true, "exit", 0 }, { p:wait(-1) })
  end)

  it("p:wait(math.huge) waits for the process", function()
    local p = assert(gh.popen({ "true" }, { stdin = "null", stdout = "null" }))
    assert.same({ true, "exit", 0 }, { p:wait(math.huge) })
  end)
end)
