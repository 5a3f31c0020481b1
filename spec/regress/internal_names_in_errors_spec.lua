-- #11.30: error messages named internals ('_signal_watch', '_spawn',
-- '_bind_reuse') and impossible argument numbers (#-1). They must name the
-- public function and the user's own line.
local H = require "helper"
local gh = H.gh

local function err_of(f, ...)
  local ok, err = pcall(f, ...)
  assert.is_false(ok)
  return err
end

describe("regress: argument errors name public functions", function()
  local here = "internal_names_in_errors_spec.lua:%d+: "
  it("gh.signal", function()
    local e = err_of(function() gh.signal("NOPE", print) end)
    assert.matches(here .. "bad argument #1 to 'signal' %(unknown signal 'NOPE'%)", e)
  end)

  it("gh.popen options", function()
    local e = err_of(function() gh.popen({ "true" }, { stdout = "pipes" }) end)
    assert.matches(here .. "bad argument #2 to 'popen' %(stdout must be 'inherit', 'pipe' or 'null'%)", e)
    assert.not_matches("#%-", e)
  end)

  it("gh.listen and socket.bind", function()
    assert.matches(here .. "bad argument #1 to 'listen'", err_of(function() gh.listen({}, 1) end))
    assert.matches(here .. "bad argument #2 to 'bind' %(port out of range%)",
      err_of(function() gh.socket.bind("127.0.0.1", 70000) end))
  end)

  it("p:kill and debug.blocking", function()
    local p = gh.popen({ "sleep", "5" }, { stdin = "null", stdout = "null" })
    assert.matches(here .. "bad argument #1 to 'kill' %(unknown signal 'NOPE'%)", err_of(function() p:kill("NOPE") end))
    p:kill("KILL"); p:wait()
    assert.matches(here .. "bad argument #1 to 'debug.blocking'", err_of(function() gh.debug.blocking("x") end))
  end)

  it("no message names an internal function", function()
    for _, f in ipairs({
      function() gh.signal(33, print) end,
      function() gh.popen({ "true" }, { stdin = 5 }) end,
      function() gh.listen(nil, 1) end,
    }) do
      assert.not_matches("'_", err_of(f))
    end
  end)
end)
