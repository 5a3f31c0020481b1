-- cqueues peer: HTTP keep-alive hello (mode http) or line echo (mode echo).
--   lua5.4 cqueues_server.lua PORT http|echo
local cqueues, socket = require "cqueues", require "cqueues.socket"
local port, mode = tonumber(arg[1]), arg[2]
local resp = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, World!"
local cq = cqueues.new()
local srv = socket.listen({ host = "127.0.0.1", port = port, reuseaddr = true, backlog = 4096 })
cq:wrap(function()
  for conn in srv:clients() do
    cq:wrap(function() pcall(function()
      conn:setmode("b", "bn")
      if mode == "echo" then
        for line in conn:lines("*l") do conn:write(line, "\n"); conn:flush() end
      else
        while true do
          local req = conn:read("*l")
          if not req then break end
          repeat local h = conn:read("*l") until not h or h == "" or h == "\r"
          conn:write(resp); conn:flush()
        end
      end
    end)
    conn:close()
    end)
  end
end)
assert(cq:loop())
