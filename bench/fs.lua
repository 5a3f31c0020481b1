-- gh.fs vs io reading a file, with a 1 ms ticker running: whole (readfile
-- vs read("a")) or in 1 MiB pieces (gh.fs.open vs io.open).
--   lua5.4 bench/fs.lua gh|io|ghchunk|iochunk PATH  ->  "<MB/s> <worst ticker gap in ms>"
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
elseif how == "io" then
  local f = assert(io.open(path, "rb")); data = f:read("a"); f:close()
else
  local f = assert((how == "ghchunk" and gh.fs.open or io.open)(path, "rb"))
  local n = 0
  while true do
    local piece = f:read(1048576)
    if not piece then break end
    n = n + #piece
  end
  f:close()
  data = { n = n }
end
local bytes = type(data) == "table" and data.n or #data
local dt = gh.clock() - t0
gh.sleep(0.005) -- the ticker sees the gap the read left
stop = true; ticker:wait()
print(("%.0f %.1f"):format(bytes / dt / 1e6, worst * 1e3))
