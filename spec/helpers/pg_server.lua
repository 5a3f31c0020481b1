-- A throwaway PostgreSQL server for the specs: initdb + pg_ctl in a temp
-- dir (as the postgres user when run as root: initdb refuses root), no TCP
-- port, its Unix socket in that private dir. start() -> server or nil, why.
local S = {}

local function sh(cmd)
  local p = io.popen("env -u LD_PRELOAD sh -c " .. ("%q"):format(cmd .. " 2>&1; echo \"RC:$?\""))
  local out = p:read("a")
  p:close()
  local rc = tonumber(out:match("RC:(%d+)%s*$"))
  return rc == 0, out
end

local function bindir()
  local p = io.popen("ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1")
  local d = p:read("l")
  p:close()
  return d
end

local Server = {}
Server.__index = Server

-- extra: more server options ("-c name=value ..."); pin: a CPU list for
-- the server and its backends (benchmarks)
function S.start(extra, pin)
  local B = bindir()
  if not B then return nil, "PostgreSQL server binaries not found (apt-get install postgresql)" end
  local p = io.popen("mktemp -d /tmp/ghpg.XXXXXX")
  local dir = p:read("l")
  p:close()
  local as = ""
  if io.popen("id -u"):read("l") == "0" then
    sh("chown postgres: " .. dir)
    as = "runuser -u postgres -- "
  end
  local self = setmetatable({ dir = dir, bin = B, as = as, extra = extra or "",
    pin = pin and ("taskset -c " .. pin .. " ") or "" }, Server)
  local ok, out = sh(as .. B .. "/initdb -D " .. dir .. "/data -A trust -U postgres --no-sync -E UTF8 --locale=C.UTF-8")
  if not ok then sh("rm -rf " .. dir); return nil, "initdb failed: " .. out end
  ok, out = self:start_again()
  if not ok then sh("rm -rf " .. dir); return nil, "pg_ctl start failed: " .. out end
  self.conninfo = "host=" .. dir .. " user=postgres dbname=postgres"
  return self
end

function Server:start_again()
  return sh(self.pin .. self.as .. self.bin .. "/pg_ctl -D " .. self.dir .. "/data -l " .. self.dir
    .. "/log -w -t 30 start -o \"-k " .. self.dir .. " -c listen_addresses='' -c fsync=off"
    .. " -c full_page_writes=off -c max_connections=300 " .. self.extra .. "\"")
end

function Server:halt(mode)
  return sh(self.pin .. self.as .. self.bin .. "/pg_ctl -D " .. self.dir .. "/data -m " .. (mode or "fast") .. " -w -t 30 stop")
end

function Server:psql(sql)
  return sh(self.bin .. "/psql -X -q -A -t -h " .. self.dir .. " -U postgres -d postgres -c " .. ("%q"):format(sql))
end

function Server:stop()
  self:halt("immediate")
  sh("rm -rf " .. self.dir)
end

return S
