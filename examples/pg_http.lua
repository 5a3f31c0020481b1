-- An HTTP notes service backed by PostgreSQL (greenhub.http + greenhub.pg):
--   POST /notes          body = the note; 201 and its id
--   GET  /notes          the notes, "id<TAB>text" a line (?q=word filters)
--   GET  /notes/<id>     the note, or 404
--   DELETE /notes/<id>   204, or 404
--   GET  /wait           waits (up to 10 s) for the next note to be posted
--                        (LISTEN/NOTIFY), then answers with it
-- Every request borrows a connection from a pool of 10; a slow database
-- stalls only the requests that wait on it. SIGTERM/SIGINT: graceful stop.
--   lua5.4 examples/pg_http.lua "host=/var/run/postgresql dbname=app" [port]
local root = (debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/.."
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. "/build/?.so;" .. package.cpath
local gh = require "greenhub"
local http = require "greenhub.http"
local pg = require "greenhub.pg"

local conninfo = arg[1] or os.getenv("PGCONNINFO") or "host=/var/run/postgresql dbname=postgres"
local port = tonumber(arg[2]) or 8082
local db = pg.pool { conninfo = conninfo, size = 10, timeout = 5 }

local ok, err = db:query("create table if not exists notes (id serial primary key, body text not null, at timestamptz default now())")
if not ok then
  io.stderr:write("pg_http: cannot reach the database: ", tostring(err), "\n")
  os.exit(1)
end

-- /wait: one listening connection; each waiter gets the next note
local arrived = gh.event()
gh.spawn(function()
  while true do
    local l, lerr = pg.connect(conninfo)
    if l then
      l:listen("notes")
      while true do
        local ch, payload = l:wait_notify()
        if not ch then break end -- the connection went: listen again
        local e = arrived
        arrived = gh.event()
        e:send(payload)
      end
      l:close()
    else
      io.stderr:write("pg_http: listen: ", lerr, "\n")
    end
    gh.sleep(1)
  end
end)

local function unescape(s)
  return (s:gsub("+", " "):gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

local function text(status, body) return status, { ["content-type"] = "text/plain; charset=utf-8" }, body end

local function handler(req, res)
  local id = req.path:match("^/notes/(%d+)$")
  if req.path == "/notes" and req.method == "POST" then
    local body = req:body()
    if not body or body == "" then return text(400, "empty note\n") end
    local rows, qerr = db:query("insert into notes (body) values ($1) returning id", body)
    if not rows then return text(503, "database: " .. qerr .. "\n") end
    db:query("select pg_notify('notes', $1)", body)
    return text(201, rows[1].id .. "\n")
  elseif req.path == "/notes" and req.method == "GET" then
    local q = req.query and req.query:match("q=([^&]*)")
    local rows, qerr
    if q then
      rows, qerr = db:query("select id, body from notes where body like '%' || $1 || '%' order by id", unescape(q))
    else
      rows, qerr = db:query("select id, body from notes order by id")
    end
    if not rows then return text(503, "database: " .. qerr .. "\n") end
    local out = {}
    for i, r in ipairs(rows) do out[i] = r.id .. "\t" .. r.body .. "\n" end
    return text(200, table.concat(out))
  elseif id and req.method == "GET" then
    local rows, qerr = db:query("select body from notes where id = $1", tonumber(id))
    if not rows then return text(503, "database: " .. qerr .. "\n") end
    if not rows[1] then return text(404, "no such note\n") end
    return text(200, rows[1].body)
  elseif id and req.method == "DELETE" then
    local rows, qerr = db:query("delete from notes where id = $1", tonumber(id))
    if not rows then return text(503, "database: " .. qerr .. "\n") end
    if rows.affected == 0 then return text(404, "no such note\n") end
    return 204
  elseif req.path == "/wait" and req.method == "GET" then
    local note = arrived:wait(10)
    if not note then return text(204, "") end
    return text(200, note)
  end
  return text(404, "not here\n")
end

local listener = assert(gh.listen("127.0.0.1", port))
local server = http.server(handler)
gh.spawn(server.serve, server, listener)
io.stderr:write("pg_http on 127.0.0.1:" .. port .. "\n")
local stopping = gh.event()
local function stop() if not stopping:ready() then stopping:send() end end
local hs = { gh.signal("TERM", stop), gh.signal("INT", stop) }
stopping:wait()
local done = server:shutdown(5)
for _, h in ipairs(hs) do h:cancel() end
db:close()
os.exit(done and 0 or 1)
