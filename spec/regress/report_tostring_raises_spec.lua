-- #11.1: an unwatched thread dying with an error object whose __tostring
-- raises must not wedge the hub (the report ran unprotected in the loop).
local H = require "helper"

describe("regress: error report with a raising __tostring", function()
  it("is reported, and the hub keeps working afterwards", function()
    local out, code = H.run_script([[
      local gh = require "greenhub"
      local bad = setmetatable({}, { __tostring = function() error("tostring exploded") end })
      gh.spawn(function() error(bad) end)
      gh.sleep(0.01)
      -- the hub must not be left "in loop": later blocking calls still work
      gh.sleep(0.01)
      local t = gh.spawn(function() gh.sleep(0.001); return 42 end)
      print("result", t:wait())
      gh.onerror(function(th, err, tb) print("handler got", type(err)) end)
      gh.spawn(function() error(bad) end)
      gh.sleep(0.01)
      print("done")
    ]])
    assert.equal(0, code, out)
    assert.matches("uncaught error in green thread", out)
    assert.matches("error object is a table value", out)
    assert.matches("result\t42", out)
    assert.matches("handler got\ttable", out)
    assert.matches("done", out)
  end)

  it("an onerror handler whose error object cannot be printed is survived too", function()
    local out, code = H.run_script([[
      local gh = require "greenhub"
      local bad = setmetatable({}, { __tostring = function() error("again") end })
      gh.onerror(function() error(bad) end)
      gh.spawn(function() error("x") end)
      gh.sleep(0.01)
      gh.sleep(0.01)
      print("alive")
    ]])
    assert.equal(0, code, out)
    assert.matches("error in the onerror handler", out)
    assert.matches("alive", out)
  end)
end)
