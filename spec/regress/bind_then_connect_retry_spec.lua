-- #11.15: a socket bound with bind("127.0.0.2", 0) whose first connect
-- attempt failed retried the next address from another source address.
local H = require "helper"
local gh = H.gh

describe("regress: connect retries keep the bind", function()
  it("the retry connects from the bound address, with the options set", function()
    -- a name with two addresses: the first refuses, the second listens
    local srv = assert(gh.socket.tcp())
    assert(srv:setoption("reuseaddr", true))
    assert(srv:bind("127.0.0.1", 0))
    assert(srv:listen())
    local _, port = srv:getsockname()
    -- a failed attempt then another (the path a name with several
    -- addresses takes between them): the second must still be bound
    local c = assert(gh.socket.tcp())
    assert(c:setoption("tcp-nodelay", true))
    assert(c:bind("127.0.0.2", 0))
    -- first: a port nobody listens on -> refused; then the real one
    local ok, err = c:connect("127.0.0.1", 1)
    assert.is_nil(ok)
    assert.equal("connection refused", err)
    local ok2, err2 = c:connect("127.0.0.1", port)
    assert.equal(1, ok2, err2)
    local conn = assert(srv:accept())
    assert.equal("127.0.0.2", (conn:getpeername()))
    assert.equal("127.0.0.2", (c:getsockname()))
    assert.is_true(c:getoption("tcp-nodelay"))
    conn:close(); c:close(); srv:close()
  end)
end)
