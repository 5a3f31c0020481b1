-- gh.fs vs io for a whole-file read, with a 1 ms ticker running.
--   lua5.4 bench/fs.lua gh|io PATH  ->  "<MB/s> <worst ticker gap in ms>"
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
package.cpath = "build/?.so;" .. package.cpath
local gh = require "greenhub"
local how, path = arg[1], arg[2]
local worst, last, stop = 0, gh.clock(), false
local ticker = gh.spawn(function()
  while not stop do
    gh.sleep(0.001)
    local now = gh.clock()
    worst = math.max(worst, now - last); last = now
  end
end)
gh.sleep(0.02)
worst = 0
local t0 = gh.clock()
local data
if how == "gh" then
  data = assert(gh.fs.readfile(path))
else
  local f = assert(io.open(path, "rb")); data = f:read("a"); f:close()
end
local dt = gh.clock() - t0
gh.sleep(0.005) -- the ticker sees the gap the read left
stop = true; ticker:wait()
print(("%.0f %.1f"):format(#data / dt / 1e6, worst * 1e3))
