-- greenhub.backdoor: a Lua REPL over TCP, like eventlet's backdoor, for
-- looking inside a running service (gh.threads(), gh.stats()). Binds to
-- loopback only unless opts.allow_remote is true.
--   gh.backdoor("127.0.0.1", 3000)   then: nc 127.0.0.1 3000
local M = {}

local loopback = { ["127.0.0.1"] = true, ["::1"] = true, localhost = true }

local function repl(gh, conn, env)
  local function out(...)
    local t = table.pack(...)
    for i = 1, t.n do t[i] = tostring(t[i]) end
    conn:send(table.concat(t, "\t") .. "\n")
  end
  env = setmetatable({ print = out, gh = gh }, { __index = env or _G })
  conn:send("greenhub backdoor (" .. _VERSION .. "); gh.threads(), gh.stats()\n> ")
  while true do
    local line = conn:receive("*l")
    if not line then return end
    if line == "exit" or line == "quit" then conn:send("bye\n"); return end
    if line:match("%S") then
      local f, err = load("return " .. line, "=backdoor", "t", env)
      if not f then f, err = load(line, "=backdoor", "t", env) end
      if not f then
        out(err)
      else
        local r = table.pack(pcall(f))
        if not r[1] then out("error: " .. tostring(r[2]))
        elseif r.n > 1 then out(table.unpack(r, 2, r.n)) end
      end
    end
    conn:send("> ")
  end
end

function M.start(gh, host, port, opts)
  opts = opts or {}
  if not loopback[host] and not opts.allow_remote then
    error("greenhub: the backdoor binds to loopback only; pass {allow_remote = true} to bind " .. tostring(host), 2)
  end
  local server, err = gh.listen(host, port)
  if not server then return nil, err end
  gh.spawn(gh.serve, server, function(conn) repl(gh, conn, opts.env) end)
  return server
end

return M
