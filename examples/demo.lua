-- make demo: a self-contained tour. Green threads sleep, hand results back,
-- get killed and time out, all in one process, then it prints what happened.
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
package.cpath = "build/?.so;" .. package.cpath
local gh = require "greenhub"

local t0 = gh.clock()
local function stamp() return string.format("%6.1f ms", (gh.clock() - t0) * 1000) end

print("1. three workers sleep concurrently (30, 20, 10 ms):")
local workers = {}
for i, d in ipairs({ 0.03, 0.02, 0.01 }) do
  workers[i] = gh.spawn(function()
    gh.sleep(d)
    print(string.format("   %s  worker %d woke after %d ms", stamp(), i, d * 1000))
    return i * i
  end)
end
for i, w in ipairs(workers) do print(string.format("   worker %d returned %d", i, w:wait())) end

print("2. 10,000 green threads each sleep a random 0-50 ms:")
local n, done, t1 = 10000, 0, gh.clock()
for _ = 1, n do gh.spawn_n(function() gh.sleep(math.random() * 0.05); done = done + 1 end) end
gh.run()
print(string.format("   %d done in %.0f ms (sequential would be ~250 s)", done, (gh.clock() - t1) * 1000))

print("3. kill and with_timeout:")
local sleeper = gh.spawn(function() gh.sleep(3600) end)
gh.sleep(0)
sleeper:kill()
print("   killed a thread sleeping for an hour; status: " .. sleeper:status())
print("   with_timeout(0.02, sleep 1 s) ->", gh.with_timeout(0.02, gh.sleep, 1))

local s = gh.stats()
print(string.format("4. hub stats: %d context switches, %d loop turns, %d threads spawned",
  s.switches, s.turns, s.spawned))
