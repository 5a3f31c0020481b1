-- Core benchmarks, one measurement per run, printed as "<value>".
--   lua5.4 bench/core.lua <impl> <test>
-- impl: bare | greenhub | cqueues | luv      test: switch | spawn | sleeps | memory
-- switch: ns per resume/yield round trip (sleep(0) ping-pong for hubs)
-- spawn:  ns per spawn+finish+wait, one at a time
-- spawn_batch: ns per spawn+finish+wait, 100,000 spawned before any is waited on
-- sleeps: wall seconds for 100,000 threads sleeping random 0-1 s (+ min lateness)
-- queue:  ns per item through queue(1), one producer, one consumer
-- event:  ns per event ping-pong round trip
-- memory: bytes of RSS per suspended thread (100,000 in a 3600 s sleep)
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
package.cpath = "build/?.so;" .. package.cpath
local impl, test = arg[1], arg[2]

local function rss()
  local f = io.open("/proc/self/statm")
  local _, res = f:read("n", "n")
  f:close()
  return res * 4096
end

local clock
do
  local ok, gh = pcall(require, "greenhub.core")
  clock = gh.clock
end

local N_SWITCH, N_SPAWN, N_BATCH, N_SLEEP, N_MEM, N_QUEUE = 2000000, 200000, 100000, 100000, 100000, 1000000

local B = {}

B.bare = {
  switch = function()
    local co = coroutine.wrap(function() while true do coroutine.yield() end end)
    local t0 = clock()
    for _ = 1, N_SWITCH do co() end
    return (clock() - t0) / N_SWITCH * 1e9
  end,
  spawn = function()
    local create, resume = coroutine.create, coroutine.resume
    local f = function() end
    local t0 = clock()
    for _ = 1, N_SPAWN do resume(create(f)) end
    return (clock() - t0) / N_SPAWN * 1e9
  end,
  spawn_batch = function()
    local create, resume = coroutine.create, coroutine.resume
    local f = function() end
    local cs = {}
    local t0 = clock()
    for i = 1, N_BATCH do cs[i] = create(f) end
    for i = 1, N_BATCH do resume(cs[i]) end
    return (clock() - t0) / N_BATCH * 1e9
  end,
  memory = function()
    local t = {}
    collectgarbage(); collectgarbage()
    local r0 = rss()
    local f = function() coroutine.yield() end
    for i = 1, N_MEM do local co = coroutine.create(f); coroutine.resume(co); t[i] = co end
    collectgarbage(); collectgarbage()
    return (rss() - r0) / N_MEM
  end,
}

local gh
B.greenhub = {
  switch = function()
    gh = require "greenhub"
    local n = N_SWITCH // 2
    local function pp() for _ = 1, n do gh.sleep(0) end end
    local a, b = gh.spawn(pp), gh.spawn(pp)
    local t0 = clock()
    a:wait(); b:wait()
    return (clock() - t0) / (2 * n) * 1e9
  end,
  spawn = function()
    gh = require "greenhub"
    local f = function() end
    local spawn = gh.spawn
    local t0 = clock()
    for _ = 1, N_SPAWN do spawn(f):wait() end
    return (clock() - t0) / N_SPAWN * 1e9
  end,
  spawn_batch = function()
    gh = require "greenhub"
    local f = function() end
    local ts = {}
    local t0 = clock()
    for i = 1, N_BATCH do ts[i] = gh.spawn(f) end
    for i = 1, N_BATCH do ts[i]:wait() end
    return (clock() - t0) / N_BATCH * 1e9
  end,
  sleeps = function()
    gh = require "greenhub"
    local early, late = 0, 0
    local t0 = clock()
    for _ = 1, N_SLEEP do
      local d = math.random()
      gh.spawn_n(function()
        local s = clock()
        gh.sleep(d)
        local l = clock() - s - d
        if l < 0 then early = early + 1 end
        if l > late then late = l end
      end)
    end
    gh.run()
    return clock() - t0, early, late
  end,
  memory = function()
    gh = require "greenhub"
    local t = {}
    local f = function() gh.sleep(3600) end
    collectgarbage(); collectgarbage()
    local r0 = rss()
    for i = 1, N_MEM do t[i] = gh.spawn(f) end
    gh.sleep(0)
    collectgarbage(); collectgarbage()
    return (rss() - r0) / N_MEM
  end,
}

B.greenhub.queue = function()
  gh = require "greenhub"
  local q = gh.queue(1)
  local n = N_QUEUE
  local c = gh.spawn(function() for _ = 1, n do q:get() end end)
  local t0 = clock()
  for i = 1, n do q:put(i) end
  c:wait()
  return (clock() - t0) / n * 1e9
end
B.greenhub.event = function()
  gh = require "greenhub"
  local n = N_QUEUE // 2
  local a, b = gh.event(), gh.event()
  local peer = gh.spawn(function()
    for _ = 1, n do a:wait(); a:reset(); b:send() end
  end)
  local t0 = clock()
  for _ = 1, n do a:send(); b:wait(); b:reset() end
  peer:wait()
  return (clock() - t0) / n * 1e9
end

B.cqueues = {
  switch = function()
    local cqueues = require "cqueues"
    local cq = cqueues.new()
    local n = N_SWITCH // 2
    local function pp() for _ = 1, n do cqueues.sleep(0) end end
    cq:wrap(pp); cq:wrap(pp)
    local t0 = clock()
    assert(cq:loop())
    return (clock() - t0) / (2 * n) * 1e9
  end,
  spawn = function()
    local cqueues = require "cqueues"
    local cq = cqueues.new()
    local f = function() end
    local t0 = clock()
    for _ = 1, N_SPAWN do cq:wrap(f); cq:step(0) end
    return (clock() - t0) / N_SPAWN * 1e9
  end,
  spawn_batch = function()
    local cqueues = require "cqueues"
    local cq = cqueues.new()
    local f = function() end
    local t0 = clock()
    for _ = 1, N_BATCH do cq:wrap(f) end
    assert(cq:loop())
    return (clock() - t0) / N_BATCH * 1e9
  end,
  sleeps = function()
    local cqueues = require "cqueues"
    local cq = cqueues.new()
    local early, late = 0, 0
    local t0 = clock()
    for _ = 1, N_SLEEP do
      local d = math.random()
      cq:wrap(function()
        local s = clock()
        cqueues.sleep(d)
        local l = clock() - s - d
        if l < 0 then early = early + 1 end
        if l > late then late = l end
      end)
    end
    assert(cq:loop())
    return clock() - t0, early, late
  end,
  memory = function()
    local cqueues = require "cqueues"
    local cq = cqueues.new()
    collectgarbage(); collectgarbage()
    local r0 = rss()
    for _ = 1, N_MEM do cq:wrap(function() cqueues.sleep(3600) end) end
    cq:step(0)
    collectgarbage(); collectgarbage()
    return (rss() - r0) / N_MEM
  end,
}

B.cqueues.queue = function()
  -- cqueues has no queue: a one-slot hand-off on a condition variable
  local cqueues, condition = require "cqueues", require "cqueues.condition"
  local cq = cqueues.new()
  local slot, full = nil, false
  local notfull, notempty = condition.new(), condition.new()
  local n = N_QUEUE
  cq:wrap(function()
    for i = 1, n do
      while full do notfull:wait() end
      slot, full = i, true
      notempty:signal(1)
    end
  end)
  cq:wrap(function()
    for _ = 1, n do
      while not full do notempty:wait() end
      full = false
      notfull:signal(1)
    end
  end)
  local t0 = clock()
  assert(cq:loop())
  return (clock() - t0) / n * 1e9
end
B.cqueues.event = function()
  local cqueues, condition = require "cqueues", require "cqueues.condition"
  local cq = cqueues.new()
  local n = N_QUEUE // 2
  local ca, cb = condition.new(), condition.new()
  local fa, fb = false, false
  cq:wrap(function() for _ = 1, n do while not fa do ca:wait() end fa = false; fb = true; cb:signal() end end)
  cq:wrap(function() for _ = 1, n do fa = true; ca:signal(); while not fb do cb:wait() end fb = false end end)
  local t0 = clock()
  assert(cq:loop())
  return (clock() - t0) / n * 1e9
end

B.luv = {
  sleeps = function()
    local uv = require "luv"
    local early, late = 0, 0
    local t0 = clock()
    for _ = 1, N_SLEEP do
      local d = math.random()
      local s = clock()
      local t = uv.new_timer()
      t:start(math.ceil(d * 1000), 0, function()
        local l = clock() - s - d
        if l < 0 then early = early + 1 end
        if l > late then late = l end
        t:close()
      end)
    end
    uv.run()
    return clock() - t0, early, late
  end,
}

local f = B[impl] and B[impl][test]
if not f then print("n/a"); return end
print(f())
