-- luv peer (plain callbacks): HTTP keep-alive hello or echo.
--   lua5.4 luv_server.lua PORT http|echo
local uv = require "luv"
local port, mode = tonumber(arg[1]), arg[2]
local resp = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, World!"
local server = uv.new_tcp()
server:bind("127.0.0.1", port)
server:listen(4096, function()
  local c = uv.new_tcp()
  server:accept(c)
  local pending = ""
  c:read_start(function(err, data)
    if not data then c:close(); return end
    if mode == "echo" then c:write(data); return end
    pending = pending .. data
    local n = 0
    while true do
      local s, e = pending:find("\r\n\r\n", 1, true)
      if not s then break end
      pending = pending:sub(e + 1)
      n = n + 1
    end
    if n > 0 then c:write(string.rep(resp, n)) end
  end)
end)
uv.run()
