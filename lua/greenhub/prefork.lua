-- greenhub.prefork: every core of the machine. A supervisor binds, forks
-- N workers, replaces the ones that die or stop turning, and restarts them
-- without refusing a connection. The supervisor itself runs on greenhub:
-- signals through gh.signal, workers watched as child processes (pidfds).
--
--   prefork.run{ listen = {"0.0.0.0", 8080}, workers = 4,
--                main = function(listener, worker_no) http.serve(listener, h) end }
--
-- Each worker slot has its own SO_REUSEPORT socket, bound by the supervisor
-- and kept open there for the life of the slot: a worker that exits leaves
-- the connections queued on its socket to its successor (a closed
-- reuseport socket would reset them).
local core = require "greenhub.core"
local gh = require "greenhub"

local M = {}

local my_no        -- worker number, inside a worker
local stop_hooks = {} -- inside a worker: run on a graceful stop

--- worker_no() -> this worker's slot number (1..n), nil in the supervisor
function M.worker_no() return my_no end

--- on_stop(f): inside a worker, f() runs when a graceful stop begins
-- (before the listeners close): e.g. an http server's s:shutdown(grace)
function M.on_stop(f)
  if type(f) ~= "function" then error("bad argument #1 to 'on_stop' (function expected)", 2) end
  stop_hooks[#stop_hooks + 1] = f
end

local function log(fmt, ...)
  local pid = core._procinfo()
  io.stderr:write(("[prefork %d] " .. fmt .. "\n"):format(pid, ...))
end

local function check(opts)
  if type(opts) ~= "table" then error("bad argument #1 to 'run' (table expected)", 3) end
  if type(opts.main) ~= "function" then error("bad argument to 'run' (main must be a function)", 3) end
  local l = opts.listen
  if type(l) ~= "table" then error("bad argument to 'run' (listen must be {host, port [, backlog]} or a list of them)", 3) end
  if type(l[1]) ~= "table" then l = { l } end
  for _, spec in ipairs(l) do
    if type(spec) ~= "table" or type(spec[1]) ~= "string" or not tonumber(spec[2]) then
      error("bad argument to 'run' (listen must be {host, port [, backlog]} or a list of them)", 3)
    end
  end
  local _, _, ncpu = core._procinfo()
  local n = opts.workers or ncpu
  if math.type(n) ~= "integer" or n < 1 then error("bad argument to 'run' (workers must be a positive integer)", 3) end
  for _, k in ipairs({ "graceful_timeout", "timeout" }) do
    local v = opts[k]
    if v ~= nil and (type(v) ~= "number" or v ~= v or v <= 0) then
      error("bad argument to 'run' (" .. k .. " must be a positive number)", 3)
    end
  end
  return l, n
end

-- a listening socket, SO_REUSEPORT on when asked; raises with LuaSocket's words
local function bind(spec, reuseport)
  local host, port, backlog = spec[1], tonumber(spec[2]), spec[3] or 1024
  if host == "*" then host = "0.0.0.0" end
  local s = assert(core.tcp())
  if reuseport then assert(s:setoption("reuseport", true)) end
  local ok, err = s:_bind_reuse(host, port)
  if ok then ok, err = s:listen(backlog) end
  if not ok then
    s:close()
    error(("prefork: cannot listen on %s:%s: %s"):format(host, tostring(port), err), 0)
  end
  return s
end

--- run{listen=, main=, workers=, reuseport=true, graceful_timeout=30,
-- timeout=30}: returns once every worker is gone after TERM/INT/QUIT;
-- raises when binding fails or a worker exits with status 3 (a broken
-- configuration should not respawn forever).
function M.run(opts)
  local specs, nworkers = check(opts)
  local reuseport = opts.reuseport ~= false
  local graceful = opts.graceful_timeout or 30
  local timeout = opts.timeout or 30
  local beat = math.min(1, timeout / 4)
  local mypid = core._procinfo()

  -- every socket before any fork: a bind error is one clear error
  local shared -- without reuseport: one socket per address for all slots
  local slots = {} -- slot -> { socks = {...}, worker = w }
  local function slot_socks()
    if not reuseport then
      shared = shared or (function() local t = {} for i, sp in ipairs(specs) do t[i] = bind(sp, false) end return t end)()
      return shared
    end
    local t = {}
    for i, sp in ipairs(specs) do t[i] = bind(sp, true) end
    return t
  end
  for i = 1, nworkers do slots[i] = { socks = slot_socks() } end

  local workers = {} -- pid -> w: { pid, slot, child, started, last, hb, threads }
  local sup_threads = {} -- the supervisor's own threads (killed in a worker)
  local handlers = {}
  local stopping, failure = false, nil
  local done = core.event()
  local function finish() if not done:ready() then done:send() end end
  local backoff = 0.1
  local in_worker = false

  local function live() local n = 0 for _ in pairs(workers) do n = n + 1 end return n end

  local spawn -- forward

  -- in the child: drop the supervisor, become worker `no` of `slot`
  local function become_worker(slot, no, hbr, hbw)
    in_worker = true
    my_no = no
    core._pdeathsig("TERM", mypid)
    for _, h in ipairs(handlers) do h:cancel() end
    for t in pairs(sup_threads) do if t ~= gh.current() then t:kill() end end
    for _, w in pairs(workers) do pcall(w.hb.close, w.hb) end
    core._closefd(hbr) -- the supervisor's end
    if reuseport then -- the other slots' sockets are theirs
      for i, s in pairs(slots) do
        if i ~= slot then for _, sk in ipairs(s.socks) do sk:close() end end
      end
    end
    local hb = core.fdopen(hbw, "w")
    local beater = gh.spawn(function()
      while hb:send(".") do gh.sleep(beat) end
    end)
    local listeners = slots[slot].socks
    gh.signal("TERM", function()
      for _, f in ipairs(stop_hooks) do pcall(f) end
      for _, l in ipairs(listeners) do l:close() end
    end)
    gh.signal("INT", function() end) -- the supervisor decides (a terminal's ^C reaches all)
    gh.sleep(0) -- the killed supervisor threads unwind
    local base = gh.stats().threads
    local ok, err = xpcall(opts.main, debug.traceback, listeners[1], no, listeners)
    if not ok then io.stderr:write(tostring(err), "\n") end
    for _, l in ipairs(listeners) do l:close() end
    -- in-flight work finishes; then out
    while gh.stats().threads > base do gh.sleep(0.02) end
    beater:kill()
    hb:close()
    os.exit(ok and 0 or 1, false)
  end

  local function reap(w)
    local ok, how, code = w.child:wait()
    if in_worker then return end
    workers[w.pid] = nil
    if w.hb then pcall(w.hb.close, w.hb) end
    local s = slots[w.slot]
    if s and s.worker == w then s.worker_alive = false end
    if how == "exit" and code == 3 and not stopping then
      failure = ("prefork: worker %d (pid %d) failed to boot (exit status 3): stopping"):format(w.no, w.pid)
      log("%s", failure)
      stopping = "fast"
      for pid, o in pairs(workers) do o.child:kill("KILL") end
    end
    if not stopping and not w.retired and slots[w.slot] then
      if not (how == "exit" and code == 0) then
        log("worker %d (pid %d) ended: %s %s", w.no, w.pid, tostring(how), tostring(code))
      end
      -- a crash loop backs off; a worker that lived a while resets it
      if core.clock() - w.started < 1 then backoff = math.min(backoff * 2, 10) else backoff = 0.1 end
      gh.sleep(core.clock() - w.started < 1 and backoff or 0)
      if not stopping and slots[w.slot] and not slots[w.slot].worker_alive then spawn(w.slot) end
    end
    if live() == 0 and stopping then finish() end
  end

  spawn = function(slot)
    local r, wfd = core._pipe()
    local pid = core._fork()
    if pid == 0 then return become_worker(slot, slot, r, wfd) end
    core._closefd(wfd)
    local w = { pid = pid, slot = slot, no = slot, started = core.clock(), child = core._child(pid) }
    w.last = w.started
    w.hb = core.fdopen(r, "r")
    workers[pid] = w
    slots[slot].worker, slots[slot].worker_alive = w, true
    local t1 = gh.spawn(function()
      while not in_worker do
        local d = w.hb:receivepartial(64)
        if not d then break end
        w.last = core.clock()
        w.ready = true
      end
    end)
    local t2 = gh.spawn(reap, w)
    sup_threads[t1], sup_threads[t2] = true, true
    return w
  end

  -- a worker whose hub stopped turning (a C call, an endless loop) is killed
  local watchdog = gh.spawn(function()
    while not in_worker do
      gh.sleep(math.min(0.5, timeout / 4))
      local now = core.clock()
      for _, w in pairs(workers) do
        if not w.killed and now - w.last > timeout then
          log("worker %d (pid %d) has not turned for %.1f s: replacing it", w.no, w.pid, now - w.last)
          w.killed = true
          w.child:kill("KILL")
        end
      end
    end
  end)
  sup_threads[watchdog] = true

  local function stop(how)
    if stopping then
      if how == "fast" and stopping ~= "fast" then stopping = "fast" else return end
    else
      stopping = how
    end
    if live() == 0 then finish() return end
    for _, w in pairs(workers) do w.child:kill(how == "fast" and "KILL" or "TERM") end
    if how == "graceful" then
      local t = gh.spawn(function()
        gh.sleep(graceful)
        for _, w in pairs(workers) do
          log("worker %d (pid %d) still running after %g s: killing it", w.no, w.pid, graceful)
          w.child:kill("KILL")
        end
      end)
      sup_threads[t] = true
    end
  end

  -- HUP: for each slot a new worker first; once it beats, the old one drains
  local function restart()
    for i, s in pairs(slots) do
      local old = s.worker
      if old then old.retired = true end
      local w = spawn(i)
      local t0 = core.clock()
      while not w.ready and workers[w.pid] and core.clock() - t0 < timeout do gh.sleep(0.01) end
      if old and workers[old.pid] then old.child:kill("TERM") end
    end
  end

  handlers[#handlers + 1] = gh.signal("TERM", function() stop("graceful") end)
  handlers[#handlers + 1] = gh.signal("INT", function() stop("graceful") end)
  handlers[#handlers + 1] = gh.signal("QUIT", function() stop("fast") end)
  handlers[#handlers + 1] = gh.signal("HUP", function() if not stopping then restart() end end)
  handlers[#handlers + 1] = gh.signal("TTIN", function()
    if stopping then return end
    local i = #slots + 1
    slots[i] = { socks = slot_socks() }
    spawn(i)
  end)
  handlers[#handlers + 1] = gh.signal("TTOU", function()
    if stopping or #slots <= 1 then return end
    local i = #slots
    local s = slots[i]
    slots[i] = nil
    if s.worker then s.worker.retired = true; s.worker.child:kill("TERM") end
    -- its socket goes once its worker is gone (connections still queued on
    -- it are reset then: Linux migrates them only with net.ipv4.tcp_migrate_req=1)
    local t = gh.spawn(function()
      if s.worker then s.worker.child:wait() end
      if reuseport then for _, sk in ipairs(s.socks) do sk:close() end end
    end)
    sup_threads[t] = true
  end)

  for i = 1, nworkers do spawn(i) end
  if in_worker then return end -- never reached: a worker exits in become_worker
  log("supervisor: %d workers", nworkers)

  done:wait()
  for t in pairs(sup_threads) do if t ~= gh.current() then t:kill() end end
  for _, h in ipairs(handlers) do h:cancel() end
  for _, s in pairs(slots) do for _, sk in ipairs(s.socks) do sk:close() end end
  if failure then error(failure, 0) end
  return true
end

return M
