-- #19: when a peer's close_notify arrived in the same read as its last
-- data, the data was returned and the end forgotten: the next receive
-- waited for its timeout instead of saying "closed" (OpenSSL says the end
-- once; it is now remembered until told).
local H = require "helper"
local gh = H.gh
local tls = gh.tls

describe("regress: the end of a TLS stream behind its last data", function()
  if not tls.available then it("needs LuaSec", function() pending("lua-sec missing") end) return end
  local key, crt, dir = H.self_signed()
  teardown(function() os.execute("rm -rf " .. dir) end)

  it("a peer's close_notify ends receive with \"closed\" after its data", function()
    local got
    local srv, port, st = H.tls_one_shot(key, crt, function(c)
      c:settimeout(H.scale(10))
      got = { c:receive("*l"), c:receive("*l") }
    end)
    local py = [[
import socket, ssl, sys
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[1]))))
s.sendall(b"line one\npartial")
raw = s.unwrap()   # sends close_notify, waits for the server's
print("unwrapped")
]]
    local p = gh.popen({ "/usr/bin/python3", "-c", py, tostring(port) }, { stdin = "null", stdout = "pipe", env = H.CHILD_ENV })
    local out = H.bounded(20, p.stdout.receive, p.stdout, "*a")
    p:wait(); p:close()
    H.bounded(10, st.wait, st)
    assert.same({ "line one", nil, "closed", "partial" }, { got[1], got[2], got[3], got[4] })
    assert.equal("unwrapped\n", out) -- our close answered with close_notify
    srv:close()
  end)
end)
