-- A forked child shares its parent's epoll instance until its first loop
-- turn gives it one of its own. Closing an inherited socket (or reaping an
-- inherited child record) before that turn sent EPOLL_CTL_DEL to the
-- shared instance: the parent's socket, or pidfd, went deaf.
local H = require "helper"
local gh = H.gh
local core = require "greenhub.core"

local function reap(pid)
  local t0 = gh.clock()
  repeat
    local ok, how, st = core._waitpid(pid)
    if how then return ok, how, st end
    gh.sleep(0.005)
  until gh.clock() - t0 > 10
end

describe("regress: a forked child never edits its parent's poller", function()
  it("a socket the child closes still wakes the parent", function()
    local srv = assert(gh.listen("127.0.0.1", 0))
    local _, port = srv:getsockname()
    local c = assert(gh.connect("127.0.0.1", port))
    local a = assert(srv:accept())
    local got
    local reader = gh.spawn(function() got = { a:receive("*l") } end)
    gh.sleep(0.01) -- the reader is parked: a is in the poller
    local pid = core._fork()
    if pid == 0 then
      a:close() -- its first hub call in the child
      os.exit(0, true)
    end
    assert.same({ true, "exit", 0 }, { reap(pid) })
    c:send("hello\n")
    H.bounded(5, reader.wait, reader)
    assert.same({ "hello" }, got)
    a:close(); c:close(); srv:close()
  end)

  it("a child record the child finishes still wakes the parent", function()
    local p = assert(gh.popen({ "sleep", "0.1" }, { stdin = "null", stdout = "null" }))
    local pid = core._fork()
    if pid == 0 then
      p:wait(0) -- not its child: answers at once
      os.exit(0, true)
    end
    assert.same({ true, "exit", 0 }, { reap(pid) })
    assert.same({ true, "exit", 0 }, { H.bounded(5, p.wait, p) })
    p:close()
  end)
end)
