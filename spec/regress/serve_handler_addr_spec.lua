-- #11.36 (serve part): the source comment of gh.serve promised
-- handler(conn, addr...) (as DESIGN.md does) but only conn was passed.
local H = require "helper"
local gh = H.gh

describe("regress: gh.serve passes the peer address", function()
  it("the handler gets the peer's address after the connection", function()
    local srv = assert(gh.listen("127.0.0.1", 0))
    local _, port = srv:getsockname()
    local got = gh.event()
    gh.spawn(gh.serve, srv, function(conn, ip, p, family) got:send(ip, p, family) end)
    local c = assert(gh.connect("127.0.0.1", port))
    local ip, p, family = got:wait(5)
    assert.equal("127.0.0.1", ip)
    assert.equal(select(2, c:getsockname()), p)
    assert.equal("inet", family)
    c:close(); srv:close()
  end)
end)
