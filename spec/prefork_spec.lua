-- greenhub.prefork against real multi-process servers started here.
local H = require "helper"
local gh = H.gh
local core = require "greenhub.core"

local cpath = package.cpath:match("^([^;]*)")

local free_port = H.free_port

local function start(port, workers, timeout, mode, env)
  local argv = { "lua5.4", "-e", "package.cpath='" .. cpath .. ";'..package.cpath",
    "spec/peers/prefork_app.lua", tostring(port), tostring(workers), tostring(timeout or 30), mode }
  local p = assert(gh.popen(argv, { stdin = "null", stdout = "null", stderr = "pipe", env = env }))
  -- whatever the test's fate, no server outlives it (a leaked supervisor
  -- would hold every later gh.run() of the suite)
  finally(function()
    if not p.stopped then p:kill("KILL"); p:wait(5); p:close() end
  end)
  return p
end

-- one request on a fresh connection: status, body ("worker pid") | nil, err
local function get(port, path)
  local c, err = gh.connect("127.0.0.1", port)
  if not c then return nil, err end
  c:settimeout(H.scale(10))
  c:send("GET " .. (path or "/") .. " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
  local all, e = c:receive("*a")
  c:close()
  if not all then return nil, e end
  local status = tonumber(all:match("^HTTP/1.1 (%d+)"))
  if not status then return nil, "no response" end
  return status, all:match("\r\n\r\n(.*)$")
end

local function wait_up(port)
  for _ = 1, 200 do
    if get(port) == 200 then return end
    gh.sleep(0.025)
  end
  error("prefork server did not come up on " .. port)
end

local function alive(pid) return io.open("/proc/" .. pid .. "/stat") ~= nil end

-- the workers' pids, from the children of the supervisor
local function worker_pids(sup)
  local t = {}
  local f = io.popen("env -u LD_PRELOAD pgrep -P " .. sup)
  for l in f:lines() do t[#t + 1] = tonumber(l) end
  f:close()
  table.sort(t)
  return t
end

-- keep asking, one fresh connection at a time, until stop(); count answers by pid and failures
local function steady(port)
  local st = { ok = 0, failed = 0, pids = {}, errors = {} }
  st.thread = gh.spawn(function()
    while not st.stop do
      local status, body = get(port)
      if status == 200 then
        st.ok = st.ok + 1
        local pid = tonumber(body:match(" (%d+)$"))
        st.pids[pid] = (st.pids[pid] or 0) + 1
      else
        st.failed = st.failed + 1
        st.errors[#st.errors + 1] = tostring(status) .. " " .. tostring(body)
        st.last_fail = gh.clock()
      end
    end
  end)
  return st
end

local function stop_server(p)
  p.stopped = true
  p:kill("TERM")
  local ok, how, code = p:wait(H.scale(15))
  if how == nil then p:kill("KILL"); p:wait(5) end
  local err = p.stderr:receive("*a")
  p:close()
  return ok, how, code, err
end

describe("prefork", function()
  it("spreads requests over every worker", function()
    local port = free_port()
    local p = start(port, 2)
    wait_up(port)
    local seen = {}
    for _ = 1, 60 do
      local status, body = get(port)
      assert.equal(200, status)
      seen[body:match("^(%d+)")] = true
    end
    assert.is_true(seen["1"] and seen["2"], "both workers answered")
    assert.equal(2, #worker_pids(p.pid))
    local ok, how, code = stop_server(p)
    assert.same({ true, "exit", 0 }, { ok, how, code })
  end)

  it("replaces a worker killed with SIGKILL; no connection fails afterwards", function()
    local port = free_port()
    local p = start(port, 2)
    wait_up(port)
    local before = worker_pids(p.pid)
    local st = steady(port)
    gh.sleep(0.3)
    os.execute("kill -9 " .. before[1])
    local t0 = gh.clock()
    local now
    repeat gh.sleep(0.05); now = worker_pids(p.pid)
    until (#now == 2 and now[1] ~= before[1] and now[2] ~= before[1]) or gh.clock() - t0 > H.scale(10)
    local replaced = gh.clock()
    local ok_before = st.ok
    gh.sleep(0.5)
    st.stop = true; st.thread:wait()
    assert.equal(2, #now)
    assert.is_false(now[1] == before[1] or now[2] == before[1])
    -- the one request the killed worker had accepted may die with it
    -- (the client loop has one in flight); none after, and none queued
    -- on the dead worker's socket was lost
    assert.is_true(st.failed <= 1, table.concat(st.errors, "\n"))
    assert.is_true(st.last_fail == nil or st.last_fail < replaced, table.concat(st.errors, "\n"))
    assert.is_true(st.ok - ok_before > 5)
    stop_server(p)
  end)

  it("HUP under load: no failed request, every worker new", function()
    local port = free_port()
    local p = start(port, 2)
    wait_up(port)
    local before = worker_pids(p.pid)
    local st = steady(port)
    gh.sleep(0.3)
    p:kill("HUP")
    local t0 = gh.clock()
    local now
    repeat gh.sleep(0.05); now = worker_pids(p.pid)
    until (#now == 2 and now[1] ~= before[1] and now[1] ~= before[2] and now[2] ~= before[1] and now[2] ~= before[2])
      or gh.clock() - t0 > H.scale(10)
    gh.sleep(0.3)
    st.stop = true; st.thread:wait()
    assert.equal(0, st.failed, table.concat(st.errors, "\n"))
    for _, pid in ipairs(now) do assert.is_nil(({ [before[1]] = 1, [before[2]] = 1 })[pid]) end
    local served_new = 0
    for pid, n in pairs(st.pids) do if pid == now[1] or pid == now[2] then served_new = served_new + n end end
    assert.is_true(served_new > 0)
    stop_server(p)
  end)

  it("TERM lets a slow request finish, exits 0 and leaves no process", function()
    local port = free_port()
    local p = start(port, 2)
    wait_up(port)
    local pids = worker_pids(p.pid)
    local slow = gh.spawn(get, port, "/slow?s=0.5")
    gh.sleep(0.1)
    local ok, how, code, err = stop_server(p)
    assert.same({ 200 }, { (slow:wait()) })
    assert.same({ true, "exit", 0 }, { ok, how, code }, err)
    for _, pid in ipairs(pids) do assert.is_false(alive(pid)) end
    assert.is_nil(gh.connect("127.0.0.1", port))
  end)

  it("QUIT stops at once: a slow request in flight is cut, no process left", function()
    local port = free_port()
    local p = start(port, 2)
    wait_up(port)
    local pids = worker_pids(p.pid)
    local slow = gh.spawn(get, port, "/slow?s=5")
    gh.sleep(0.1)
    local t0 = gh.clock()
    p:kill("QUIT")
    local ok, how, code = p:wait(H.scale(10))
    p:close()
    assert.same({ true, "exit", 0 }, { ok, how, code })
    assert.is_true(gh.clock() - t0 < 2)
    assert.is_nil((slow:wait())) -- cut, not answered
    for _, pid in ipairs(pids) do assert.is_false(alive(pid)) end
  end)

  it("TERM kills what is still running after graceful_timeout", function()
    local port = free_port()
    local env = { GH_GRACEFUL = "0.5" }
    for _, k in ipairs({ "PATH", "LD_PRELOAD", "ASAN_OPTIONS", "UBSAN_OPTIONS", "GH_SLOW" }) do env[k] = os.getenv(k) end
    local p = start(port, 1, 30, nil, env)
    wait_up(port)
    local pids = worker_pids(p.pid)
    local slow = gh.spawn(get, port, "/slow?s=30")
    gh.sleep(0.1)
    local t0 = gh.clock()
    local ok, how, code, err = stop_server(p)
    assert.same({ true, "exit", 0 }, { ok, how, code }, err)
    assert.is_true(gh.clock() - t0 < H.scale(5))
    assert.matches("still running after 0.5 s: killing it", err)
    assert.is_nil((slow:wait()))
    assert.is_false(alive(pids[1]))
  end)

  it("replaces a worker whose hub stopped turning", function()
    local port = free_port()
    local p = start(port, 1, 1)
    wait_up(port)
    local before = worker_pids(p.pid)
    local spin = gh.spawn(get, port, "/spin")
    local t0 = gh.clock()
    local now
    repeat gh.sleep(0.05); now = worker_pids(p.pid)
    until (#now == 1 and now[1] ~= before[1]) or gh.clock() - t0 > H.scale(10)
    assert.is_true(now[1] ~= before[1])
    assert.equal(200, (get(port)))
    spin:kill()
    local _, _, _, err = stop_server(p)
    assert.matches("has not turned", err)
  end)

  it("TTIN adds a worker, TTOU removes one", function()
    local port = free_port()
    local p = start(port, 1)
    wait_up(port)
    p:kill("TTIN")
    local t0 = gh.clock()
    repeat gh.sleep(0.05) until #worker_pids(p.pid) == 2 or gh.clock() - t0 > H.scale(10)
    assert.equal(2, #worker_pids(p.pid))
    p:kill("TTOU")
    t0 = gh.clock()
    repeat gh.sleep(0.05) until #worker_pids(p.pid) == 1 or gh.clock() - t0 > H.scale(10)
    assert.equal(1, #worker_pids(p.pid))
    for _ = 1, 10 do assert.equal(200, (get(port))) end
    stop_server(p)
  end)

  it("a bind error is one clear message and a non-zero exit, before any fork", function()
    local busy = assert(gh.listen("127.0.0.1", 0))
    local _, port = busy:getsockname()
    local p = start(port, 2)
    local ok, how, code = p:wait(H.scale(10))
    local err = p.stderr:receive("*a")
    p:close(); busy:close()
    assert.same({ nil, "exit", 2 }, { ok, how, code })
    assert.matches("cannot listen on 127.0.0.1:" .. port .. ": address already in use", err)
    assert.is_nil(err:match("supervisor: "))
  end)

  it("a worker exiting with status 3 at boot stops everything", function()
    local port = free_port()
    local p = start(port, 2, 30, "boot-fail")
    local ok, how, code = p:wait(H.scale(10))
    local err = p.stderr:receive("*a")
    p:close()
    assert.same({ nil, "exit", 2 }, { ok, how, code })
    assert.matches("failed to boot %(exit status 3%)", err)
  end)

  it("works with gh.serve listeners", function()
    local port = free_port()
    local p = start(port, 2, 30, "serve")
    local seen = {}
    for i = 1, 40 do
      local c
      for _ = 1, 200 do c = gh.connect("127.0.0.1", port); if c then break end; gh.sleep(0.025) end
      c:settimeout(5)
      c:send("hi " .. i .. "\n")
      local l = assert(c:receive("*l"))
      c:close()
      local no = l:match("^(%d+) %d+ hi " .. i .. "$")
      assert(no, l)
      seen[no] = true
    end
    assert.is_true(seen["1"] and seen["2"])
    local ok, how, code = stop_server(p)
    assert.same({ true, "exit", 0 }, { ok, how, code })
  end)

  it("works with TLS listeners (gh.tls.server over each worker's socket)", function()
    if not gh.tls.available then pending("lua-sec missing") return end
    local http = require "greenhub.http"
    local _, crt, dir = H.self_signed()
    local port = free_port()
    local env = { GH_TLS_DIR = dir }
    for _, k in ipairs({ "PATH", "LD_PRELOAD", "ASAN_OPTIONS", "UBSAN_OPTIONS", "GH_SLOW" }) do env[k] = os.getenv(k) end
    local p = start(port, 2, 30, "tls", env)
    local c = http.client{ tls = { cafile = crt } }
    local res
    for _ = 1, 200 do res = c:fetch("https://127.0.0.1:" .. port .. "/"); if res then break end; gh.sleep(0.025) end
    assert.equal(200, res.status)
    assert.matches("^%d %d+$", res.body)
    local ok, how, code = stop_server(p)
    os.execute("rm -rf " .. dir)
    assert.same({ true, "exit", 0 }, { ok, how, code })
  end)
end)
