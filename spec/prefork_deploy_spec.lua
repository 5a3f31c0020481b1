-- examples/deploy/nginx.conf: nginx (Debian's) in front of two prefork
-- supervisors. Requests spread over both; one supervisor killed under a
-- steady client loop costs no client a failed request; it comes back.
local H = require "helper"
local gh = H.gh

local NGINX = os.execute("env -u LD_PRELOAD sh -c 'command -v nginx' >/dev/null 2>&1")
local cpath = package.cpath:match("^([^;]*)")

local free_port = H.free_port

local function supervisor(port)
  return assert(gh.popen({ "lua5.4", "-e", "package.cpath='" .. cpath .. ";'..package.cpath",
    "spec/peers/prefork_app.lua", tostring(port), "2", "30" }, { stdin = "null", stdout = "null", stderr = "null" }))
end

local function get(port)
  local c, err = gh.connect("127.0.0.1", port)
  if not c then return nil, err end
  c:settimeout(H.scale(10))
  c:send("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
  local all, e = c:receive("*a")
  c:close()
  if not all then return nil, e end
  return tonumber(all:match("^HTTP/1.1 (%d+)")), all:match("\r\n\r\n(.*)$")
end

local function up(port)
  for _ = 1, 200 do if get(port) == 200 then return true end gh.sleep(0.025) end
end

describe("deploy: nginx in front of two prefork supervisors", function()
  if not NGINX then pending("nginx is not installed") return end
  it("spreads, survives losing a supervisor, takes it back", function()
    local front, a, b = free_port(), free_port(), free_port()
    local dir = os.tmpname(); os.remove(dir); os.execute("mkdir -p " .. dir .. "/tmp")
    local conf = assert(io.open("examples/deploy/nginx.conf")):read("a")
    conf = conf:gsub("127%.0%.0%.1:8080", "127.0.0.1:" .. front)
      :gsub("127%.0%.0%.1:8081", "127.0.0.1:" .. a):gsub("127%.0%.0%.1:8082", "127.0.0.1:" .. b)
    local f = assert(io.open(dir .. "/nginx.conf", "w")); f:write(conf); f:close()
    local pa, pb = supervisor(a), supervisor(b)
    local ng
    finally(function() -- nothing outlives the test, whatever its fate
      for _, p in ipairs({ ng, pa, pb }) do
        if p and not p.done then p:kill("KILL"); p:wait(5); p:close() end
      end
      os.execute("rm -rf " .. dir)
    end)
    assert(up(a) and up(b), "supervisors did not start")
    ng = assert(gh.popen({ "nginx", "-c", dir .. "/nginx.conf", "-p", dir },
      { stdin = "null", stdout = "null", stderr = "null", env = { PATH = os.getenv("PATH") } }))
    assert(up(front), "nginx did not start")
    -- which supervisor answered: its workers' pids are its children
    local function children(p)
      local t = {}
      for l in io.popen("env -u LD_PRELOAD pgrep -P " .. p.pid):lines() do t[tonumber(l)] = true end
      return t
    end
    local ka, kb = children(pa), children(pb)
    local by = { a = 0, b = 0 }
    for _ = 1, 40 do
      local status, body = get(front)
      assert.equal(200, status)
      local pid = tonumber(body:match(" (%d+)$"))
      if ka[pid] then by.a = by.a + 1 elseif kb[pid] then by.b = by.b + 1 end
    end
    assert.is_true(by.a > 0 and by.b > 0, ("a %d, b %d"):format(by.a, by.b))
    -- a steady client loop; supervisor a dies (SIGKILL: its workers follow)
    local st = { ok = 0, failed = 0, errs = {} }
    local loop = gh.spawn(function()
      while not st.stop do
        local status, body = get(front)
        if status == 200 then st.ok = st.ok + 1
        else st.failed = st.failed + 1; st.errs[#st.errs + 1] = tostring(status) .. " " .. tostring(body) end
      end
    end)
    gh.sleep(0.3)
    pa:kill("KILL"); pa:wait(5); pa:close(); pa.done = true
    gh.sleep(1)
    -- back again on the same port
    pa = supervisor(a)
    assert(up(a))
    gh.sleep(1.5) -- nginx tries it again after fail_timeout
    st.stop = true; loop:wait()
    assert.equal(0, st.failed, table.concat(st.errs, "\n"))
    assert.is_true(st.ok > 20)
    ka = children(pa)
    -- nginx tries it again once its fail_timeout is over: within seconds
    local back, t1 = 0, gh.clock()
    while back == 0 and gh.clock() - t1 < H.scale(5) do
      local status, body = get(front)
      assert.equal(200, status)
      ka = children(pa) -- its workers, as they start
      if ka[tonumber(body:match(" (%d+)$"))] then back = back + 1 end
      gh.sleep(0.01)
    end
    assert.is_true(back > 0, "the restarted supervisor gets requests again")
    ng:kill("TERM"); ng:wait(5); ng:close(); ng.done = true
    for _, p in ipairs({ pa, pb }) do p:kill("TERM"); p:wait(10); p:close(); p.done = true end
  end)
end)
