-- make demo: a self-contained tour in one process. A green echo server and
-- many green clients talk over loopback; then timers, kill and timeouts.
-- the repository's lua/ and build/, found from this file (runs from anywhere)
local root = (debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/.."
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. "/build/?.so;" .. package.cpath
local gh = require "greenhub"

local t0 = gh.clock()
local function ms(t) return string.format("%.1f ms", (gh.clock() - (t or t0)) * 1000) end

print("1. an echo server and 200 green clients, 20 round trips each:")
local server = assert(gh.listen("127.0.0.1", 0))
local _, port = server:getsockname()
gh.spawn(gh.serve, server, function(conn)
  while true do
    local line = conn:receive("*l")
    if not line then return end
    conn:send(line .. "\n")
  end
end)
local t1 = gh.clock()
local clients = {}
for i = 1, 200 do
  clients[i] = gh.spawn(function()
    local c = assert(gh.connect("127.0.0.1", port))
    for j = 1, 20 do
      local msg = ("client %d message %d"):format(i, j)
      c:send(msg .. "\n")
      assert(c:receive("*l") == msg, "echo mismatch")
    end
    c:close()
    return 20
  end)
end
local total = 0
for _, c in ipairs(clients) do total = total + c:wait() end
print(("   %d round trips, every byte checked, in %s"):format(total, ms(t1)))

print("2. three workers sleep concurrently (30, 20, 10 ms):")
local workers = {}
for i, d in ipairs({ 0.03, 0.02, 0.01 }) do
  workers[i] = gh.spawn(function()
    local s = gh.clock()
    gh.sleep(d)
    print(("   worker %d woke after %s"):format(i, ms(s)))
    return i * i
  end)
end
for i, w in ipairs(workers) do print(("   worker %d returned %d"):format(i, w:wait())) end

print("3. 10,000 green threads each sleep a random 0-50 ms:")
local n, done, t2 = 10000, 0, gh.clock()
for _ = 1, n do gh.spawn_n(function() gh.sleep(math.random() * 0.05); done = done + 1 end) end
while done < n do gh.sleep(0.005) end
print(("   %d done in %s (one after another would take ~250 s)"):format(done, ms(t2)))

print("4. kill and with_timeout:")
local sleeper = gh.spawn(function() gh.sleep(3600) end)
gh.sleep(0)
sleeper:kill()
print("   killed a thread sleeping for an hour; its status: " .. sleeper:status())
local c = assert(gh.connect("127.0.0.1", port))
print("   receive with a 20 ms timeout on a silent socket ->", gh.with_timeout(0.02, c.receive, c))
c:close()
server:close()

print("5. greenhub.http: the key/value service of examples/http_app.lua, over real sockets:")
local http = require "greenhub.http"
local app = dofile(root .. "/examples/http_app.lua")
local web, weblistener = app.start(0)
local base = ("http://127.0.0.1:%d"):format(select(2, weblistener:getsockname()))
local n2 = 0
local upload = function() n2 = n2 + 1; if n2 <= 4 then return ("chunk %d;"):format(n2) end end
local function show(what, res, err)
  if not res then print(("   %-28s -> error: %s"):format(what, err)) return end
  print(("   %-28s -> %d %s"):format(what, res.status, (res.body or ""):gsub("\n", " ")))
end
show("PUT /greeting (streamed)", http.fetch{ url = base .. "/greeting", method = "PUT", body = upload })
show("PUT /answer", http.fetch{ url = base .. "/answer", method = "PUT", body = "42" })
show("GET /greeting", http.fetch(base .. "/greeting"))
show("GET /", http.fetch(base .. "/"))
show("DELETE /answer", http.fetch{ url = base .. "/answer", method = "DELETE" })
show("GET /answer", http.fetch(base .. "/answer"))
local hits = {}
for i = 1, 100 do hits[i] = gh.spawn(http.fetch, base .. "/greeting") end
local okn = 0
for i = 1, 100 do local r = hits[i]:wait(); if r and r.status == 200 then okn = okn + 1 end end
print(("   100 concurrent GETs: %d answered 200; server stats: %d requests on %d connections"):format(
  okn, web:stats().requests, web:stats().connections))
weblistener:close()
web:shutdown(1)

local s = gh.stats()
print(("6. hub: %d context switches, %d loop turns, %d threads spawned, total %s"):format(
  s.switches, s.turns, s.spawned, ms()))
