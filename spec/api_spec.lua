-- The public API is what docs/api.md says it is: every gh.NAME the
-- reference mentions exists, and greenhub exports nothing it does not
-- mention (the core's own tcp, udp, getaddrinfo, ... stay inside).
-- Submodules do not reach back into the facade.
local H = require "helper"
local gh = H.gh

local function doc_names()
  local f = assert(io.open("docs/api.md"))
  local text = f:read("a")
  f:close()
  local names = {}
  for name in text:gmatch("gh%.([%a_][%w_]*)") do names[name] = true end
  return names
end

local LAZY = { socket = true, coroutine = true, tls = true } -- loaded on first use

describe("the public API", function()
  it("greenhub exports exactly what docs/api.md documents", function()
    local documented = doc_names()
    local exported = {}
    for k in pairs(gh) do exported[k] = true end
    for k in pairs(LAZY) do exported[k] = true end
    local undocumented, missing = {}, {}
    for k in pairs(exported) do if not documented[k] then undocumented[#undocumented + 1] = k end end
    for k in pairs(documented) do if gh[k] == nil then missing[#missing + 1] = k end end
    table.sort(undocumented); table.sort(missing)
    assert.same({}, undocumented, "exported but not in docs/api.md: " .. table.concat(undocumented, ", "))
    assert.same({}, missing, "in docs/api.md but not exported: " .. table.concat(missing, ", "))
  end)

  it("the lazily loaded parts load, and the core's internals are not exported", function()
    for k in pairs(LAZY) do assert.equal("table", type(gh[k]), k) end
    for _, k in ipairs({ "tcp", "udp", "unix", "getaddrinfo", "strerror", "pack", "unpack",
      "timeout_start", "_select", "_poll" }) do
      assert.is_nil(rawget(gh, k), k)
    end
  end)

  it("no submodule requires the facade", function()
    for _, name in ipairs({ "backdoor", "coroutine", "http", "pool", "proc", "socket", "tls", "util" }) do
      local f = assert(io.open("lua/greenhub/" .. name .. ".lua"))
      local src = f:read("a")
      f:close()
      assert.is_nil(src:find('require%s*%(?%s*"greenhub"%s*%)?'), name .. ".lua requires \"greenhub\"")
    end
  end)
end)
