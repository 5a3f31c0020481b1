-- A chat room over WebSocket: one http.serve answers the page at / and the
-- room at /chat. Open http://127.0.0.1:7002/ in two browser tabs.
--   lua5.4 examples/ws_chat.lua [port]
-- the repository's lua/ and build/, found from this file (runs from anywhere)
local root = (debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or ".") .. "/.."
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = root .. "/build/?.so;" .. package.cpath
local gh = require "greenhub"
local http = require "greenhub.http"
local websocket = require "greenhub.websocket"

local port = tonumber(arg[1]) or 7002

local PAGE = [[<!doctype html>
<meta charset="utf-8"><title>greenhub chat</title>
<style>body{font:16px sans-serif;max-width:40em;margin:2em auto}#log{height:20em;overflow:auto;border:1px solid #ccc;padding:.5em;white-space:pre-wrap}</style>
<div id="log"></div>
<form id="f"><input id="m" autocomplete="off" size="50" autofocus> <button>send</button></form>
<script>
const log = document.getElementById('log'), m = document.getElementById('m');
const ws = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/chat');
ws.onmessage = (e) => { log.textContent += e.data + '\n'; log.scrollTop = log.scrollHeight; };
ws.onclose = (e) => { log.textContent += '* disconnected (' + e.code + ')\n'; };
document.getElementById('f').onsubmit = (e) => { e.preventDefault(); if (m.value) ws.send(m.value); m.value = ''; };
</script>
]]

local members = {} -- ws -> name

local function broadcast(msg)
  for ws in pairs(members) do
    -- a member that stops reading must not stall the room: bound this send
    if not gh.with_timeout(1, ws.send, ws, msg) then members[ws] = nil; ws:close(1008, "too slow") end
  end
end

local function room(req, res)
  local ws, err = websocket.accept(req, res, { max_message = 4096 })
  if not ws then return end -- a bad upgrade was answered with 400
  local ip, p = req:getpeername()
  local name = ip .. ":" .. p
  members[ws] = name
  broadcast("* " .. name .. " joined")
  while true do
    local msg, kind = ws:receive()
    if not msg then break end
    if kind == "text" then broadcast(name .. ": " .. msg) end
  end
  members[ws] = nil
  broadcast("* " .. name .. " left")
end

local listener = assert(gh.listen("127.0.0.1", port))
print("ws chat on http://127.0.0.1:" .. port .. "/")
http.serve(listener, function(req, res)
  if req.path == "/chat" then return room(req, res) end
  if req.path == "/" then return 200, { ["content-type"] = "text/html; charset=utf-8" }, PAGE end
  return 404, nil, "not found\n"
end)
