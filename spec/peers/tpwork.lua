-- Functions gh.tpool runs in its threads (spec/tpool_spec.lua).
local M = {}
local calls = 0
function M.add(a, b) calls = calls + 1 return a + b, calls end
function M.echo(...) return ... end
function M.count(...) return select("#", ...) end
-- busy for s seconds of wall time (no yield: a real CPU hog); returns when
-- it started and ended (/proc/uptime), to see two calls overlap
local function uptime() local f = io.open("/proc/uptime"); local v = f:read("n"); f:close(); return v end
function M.spin(s)
  local up0, c = uptime(), 0
  repeat for _ = 1, 100000 do c = c + 1 end until uptime() - up0 >= s
  return up0, uptime()
end
function M.fail() error("boom from worker") end
function M.fail_table() error({ code = 7 }) end
function M.give_function() return print end
function M.state_id() return tostring(M):match("0x%x+") end
return M
