-- gh.fs: the same bytes and the same error shapes as io/os, without
-- stalling the hub.
local H = require "helper"
local gh = H.gh

local dir
setup(function()
  dir = os.tmpname(); os.remove(dir); assert(os.execute("mkdir -p " .. dir))
end)
teardown(function() os.execute("rm -rf " .. dir) end)

local function io_read(path)
  local f, err, code = io.open(path, "rb")
  if not f then return nil, err, code end
  local d = f:read("a"); f:close(); return d
end

describe("gh.fs", function()
  it("readfile gives io's bytes for text, binary, empty and /proc files", function()
    local bin = {}
    for i = 0, 255 do bin[#bin + 1] = string.char(i) end
    local files = {
      [dir .. "/text"] = "line one\nline two\r\nno newline at the end",
      [dir .. "/bin"] = table.concat(bin):rep(300),
      [dir .. "/empty"] = "",
    }
    for path, data in pairs(files) do
      local f = assert(io.open(path, "wb")); f:write(data); f:close()
      local got = assert(gh.fs.readfile(path))
      assert.equal(io_read(path), got)
      assert.equal(#data, #got)
    end
    -- a file whose size stat does not know: read to its end anyway
    assert.equal(io_read("/proc/self/status"):match("^Name:"), gh.fs.readfile("/proc/self/status"):match("^Name:"))
    assert.is_true(#gh.fs.readfile("/proc/self/maps") > 0)
  end)

  it("errors have io's shape: nil, 'path: message', errno", function()
    assert.same({ io.open(dir .. "/missing") }, { gh.fs.readfile(dir .. "/missing") })
    assert.same({ nil, dir .. ": Is a directory", 21 }, { gh.fs.readfile(dir) })
    assert.same({ os.remove(dir .. "/missing") }, { gh.fs.remove(dir .. "/missing") })
    assert.same({ os.rename(dir .. "/missing", dir .. "/x") }, { gh.fs.rename(dir .. "/missing", dir .. "/x") })
    assert.same({ nil, dir .. "/missing/x: No such file or directory", 2 }, { gh.fs.writefile(dir .. "/missing/x", "a") })
    assert.same({ nil, dir .. "/missing: No such file or directory", 2 }, { gh.fs.stat(dir .. "/missing") })
    assert.same({ nil, dir .. "/missing: No such file or directory", 2 }, { gh.fs.dir(dir .. "/missing") })
    assert.same({ nil, dir .. ": File exists", 17 }, { gh.fs.mkdir(dir) })
    assert.has_error(function() gh.fs.readfile(42) end, "bad argument #1 to 'readfile' (string expected, got number)")
    assert.has_error(function() gh.fs.writefile("x") end)
    assert.has_error(function() gh.fs.mkdir("x", "rwx") end)
  end)

  it("writefile, append, stat, rename, mkdir, dir, remove", function()
    local base = dir
    dir = dir .. "/d3"
    assert(os.execute("mkdir -p " .. dir))
    finally(function() dir = base end)
    local p = dir .. "/w"
    assert.is_true(gh.fs.writefile(p, "abc"))
    assert.is_true(gh.fs.writefile(p, "def", true))
    assert.equal("abcdef", io_read(p))
    assert.is_true(gh.fs.writefile(p, "x"))
    assert.equal("x", io_read(p))
    local st = assert(gh.fs.stat(p))
    assert.same({ "file", 1 }, { st.type, st.size })
    assert.is_true(math.abs(st.mtime - os.time()) < 60)
    assert.equal("directory", gh.fs.stat(dir).type)
    assert(os.execute("ln -sf " .. p .. " " .. dir .. "/link"))
    assert.equal("link", gh.fs.stat(dir .. "/link").type)
    assert.is_true(gh.fs.mkdir(dir .. "/sub", tonumber("750", 8)))
    assert.equal(tonumber("750", 8), gh.fs.stat(dir .. "/sub").mode & tonumber("777", 8) & ~tonumber("022", 8) | (tonumber("750", 8) & tonumber("022", 8)))
    assert.is_true(gh.fs.rename(p, dir .. "/sub/w"))
    local names = assert(gh.fs.dir(dir))
    table.sort(names)
    assert.same({ "link", "sub" }, names)
    assert.same({ "w" }, gh.fs.dir(dir .. "/sub"))
    assert.is_nil((gh.fs.remove(dir .. "/sub"))) -- not empty, as os.remove
    assert.is_true(gh.fs.remove(dir .. "/sub/w"))
    assert.is_true(gh.fs.remove(dir .. "/sub"))
    assert.is_true(gh.fs.remove(dir .. "/link"))
  end)

  it("a 64 MiB read keeps a 1 ms ticker going: only the string's creation is the hub's", function()
    local p = dir .. "/big"
    assert(os.execute("head -c 67108864 /dev/urandom > " .. p))
    local t0 = gh.clock()
    local ref = io_read(p) -- the blocking way: the whole read stalls the hub
    local io_time = gh.clock() - t0
    local worst, last, ticks, stop = 0, gh.clock(), 0, false
    local ticker = gh.spawn(function()
      while not stop do
        gh.sleep(0.001)
        local now = gh.clock()
        worst = math.max(worst, now - last); last = now; ticks = ticks + 1
      end
    end)
    gh.sleep(0.01)
    worst, ticks = 0, 0
    local data = assert(gh.fs.readfile(p))
    stop = true; ticker:wait()
    assert.equal(67108864, #data)
    assert.is_true(ref == data)
    assert.is_true(ticks > 3, "the ticker ran while the worker read")
    -- the read ran on a worker; what is left on the hub is copying the
    -- buffer into a Lua string (Lua 5.4 has no external strings), a
    -- fraction of a blocking read of the same file
    assert.is_true(worst < io_time, ("worst gap %.3f s, io read %.3f s"):format(worst, io_time))
    os.remove(p)
  end)

  it("100 concurrent reads; a killed reader leaves nothing behind", function()
    local p = dir .. "/c"
    assert(gh.fs.writefile(p, string.rep("z", 100000)))
    local ts = {}
    for i = 1, 100 do ts[i] = gh.spawn(gh.fs.readfile, p) end
    for i = 1, 100 do assert.equal(100000, #ts[i]:wait()) end
    for _ = 1, 20 do
      local t = gh.spawn(gh.fs.readfile, p)
      gh.sleep(0)
      t:kill()
    end
    gh.sleep(0.05)
    assert.equal(100000, #assert(gh.fs.readfile(p)))
    -- and names still resolve while files are read (DNS has its own queue)
    local a = gh.spawn(function() return gh.socket.dns.toip("localhost") end)
    assert.equal("127.0.0.1", a:wait())
  end)
end)
