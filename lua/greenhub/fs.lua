-- gh.fs: files without stalling the hub. Each call runs on the worker
-- pool's own queue (csrc/fs.c, no Lua there); the calling green thread
-- parks until the result is back. Results and error strings are those of
-- Lua's io and os: nil, "path: No such file or directory", errno. Files
-- opened with gh.fs.open read and write through the same workers, with
-- io's formats and results.
local core = require "greenhub.core"

local M = {}

local function need_string(v, n, fname)
  if type(v) ~= "string" then
    error(("bad argument #%d to '%s' (string expected, got %s)"):format(n, fname, type(v)), 3)
  end
end

--- readfile(path) -> data | nil, err, errno (the whole file, read in one
-- buffer on a worker thread)
function M.readfile(path)
  need_string(path, 1, "readfile")
  return core._fs_readfile(path)
end

--- writefile(path, data [, append]) -> true | nil, err, errno (created if
-- missing, else truncated or appended to; not atomic)
function M.writefile(path, data, append)
  need_string(path, 1, "writefile"); need_string(data, 2, "writefile")
  return core._fs_writefile(path, data, append)
end

--- stat(path) -> {type=, size=, mtime=, mode=} | nil, err, errno (lstat:
-- a symbolic link is "link")
function M.stat(path) need_string(path, 1, "stat") return core._fs_stat(path) end

--- remove(path), rename(from, to), mkdir(path [, mode=0777]) -> true |
-- nil, err, errno (as os.remove, os.rename)
function M.remove(path) need_string(path, 1, "remove") return core._fs_remove(path) end
function M.rename(a, b)
  need_string(a, 1, "rename"); need_string(b, 2, "rename")
  return core._fs_rename(a, b)
end
function M.mkdir(path, mode)
  need_string(path, 1, "mkdir")
  if mode ~= nil and math.type(mode) ~= "integer" then error("bad argument #2 to 'mkdir' (integer expected)", 2) end
  return core._fs_mkdir(path, mode)
end

--- dir(path) -> { names without "." and ".." } in no set order | nil, err, errno
function M.dir(path) need_string(path, 1, "dir") return core._fs_dir(path) end

-- ---------------------------------------------------------------- files

local CHUNK = 65536

local File = {}
File.__index = File
File.__name = "greenhub.fs.file"

local function check(f, name)
  if getmetatable(f) ~= File then
    error(("bad argument #1 to '%s' (greenhub.fs.file expected)"):format(name), 3)
  end
  if not f.fd then error("attempt to use a closed file", 3) end
end

--- open(path [, mode = "r"]) -> file | nil, err, errno (io.open's modes)
function M.open(path, mode)
  need_string(path, 1, "open")
  mode = mode or "r"
  if type(mode) ~= "string" then error("bad argument #2 to 'open' (string expected, got " .. type(mode) .. ")", 2) end
  local fd, err, code = require("greenhub.util").public("open", 0, core._fs_open, path, mode)
  if not fd then return nil, err, code end
  return setmetatable({ fd = fd, buf = "", eof = false }, File)
end

-- what is buffered ahead goes back to the kernel's position (before a
-- write or a seek: the file's position is where the reader stands)
local function unread(f)
  if #f.buf > 0 then
    core._fs_seek(f.fd, "cur", -#f.buf)
    f.buf = ""
  end
  f.eof = false
end

-- more bytes into f.buf: true, or false at the end, or nil, err, errno
local function fill(f)
  if f.eof then return false end
  local data, err, code = core._fs_fdread(f.fd, CHUNK)
  if not data then return nil, err, code end
  if #data == 0 then f.eof = true; return false end
  f.buf = f.buf .. data
  return true
end

local function read_line(f, keep)
  local from = 1
  while true do
    local i = f.buf:find("\n", from, true)
    if i then
      local line = f.buf:sub(1, keep and i or i - 1)
      f.buf = f.buf:sub(i + 1)
      return line
    end
    from = #f.buf + 1
    local ok, err, code = fill(f)
    if ok == nil then return nil, err, code end
    if not ok then
      if #f.buf == 0 then return nil end
      local line = f.buf
      f.buf = ""
      return line
    end
  end
end

local function read_count(f, n)
  if n == 0 then -- "" unless at the end, as io
    if #f.buf > 0 then return "" end
    local ok, err, code = fill(f)
    if ok == nil then return nil, err, code end
    return ok and "" or nil
  end
  if #f.buf == 0 and not f.eof then
    -- the common case: one job reads the piece in place, no copy in Lua
    local data, err, code = core._fs_fdread(f.fd, n)
    if not data then return nil, err, code end
    if #data == n then return data end
    if #data == 0 then f.eof = true; return nil end
    f.buf = data -- a short read: go on below
  end
  while #f.buf < n do
    if #f.buf == 0 or n - #f.buf > CHUNK then
      -- a large count: one job reads the rest of it in place
      local data, err, code = core._fs_fdread(f.fd, n - #f.buf)
      if not data then return nil, err, code end
      if #data == 0 then f.eof = true; break end
      f.buf = f.buf .. data
    else
      local ok, err, code = fill(f)
      if ok == nil then return nil, err, code end
      if not ok then break end
    end
  end
  if #f.buf == 0 then return nil end
  local out = f.buf:sub(1, n)
  f.buf = f.buf:sub(n + 1)
  return out
end

local function read_all(f)
  local data, err, code = core._fs_fdread(f.fd, 0) -- the rest, in one buffer
  if not data then return nil, err, code end
  local out = f.buf .. data
  f.buf = ""
  f.eof = true
  return out
end

-- a numeral exactly as io reads it (liolib's l_getn): skip spaces, then
-- take an optional sign, "0x", digits, a point, digits, an exponent,
-- consuming what fits; convert what was taken (nil when it is no number)
local function read_number(f)
  while true do
    local s = f.buf:find("[^ \t\n\v\f\r]")
    if s then f.buf = f.buf:sub(s); break end
    f.buf = ""
    local ok, err, code = fill(f)
    if ok == nil then return nil, err, code end
    if not ok then return nil end
  end
  while #f.buf < 201 and not f.eof do
    local ok, err, code = fill(f)
    if ok == nil then return nil, err, code end
  end
  local s, i, out = f.buf, 1, {}
  local function test2(set)
    local c = s:sub(i, i)
    if c ~= "" and #out < 200 and set:find(c, 1, true) then out[#out + 1] = c; i = i + 1; return true end
    return false
  end
  local function digits(hex)
    local n = 0
    while #out < 200 do
      local c = s:sub(i, i)
      if c == "" or not (hex and c:find("^%x") or c:find("^%d")) then break end
      out[#out + 1] = c; i = i + 1; n = n + 1
    end
    return n
  end
  local count, hex = 0, false
  test2("-+")
  if test2("00") then
    if test2("xX") then hex = true else count = 1 end
  end
  count = count + digits(hex)
  if test2(".") then count = count + digits(hex) end
  if count > 0 and test2(hex and "pP" or "eE") then
    test2("-+")
    digits(false)
  end
  f.buf = s:sub(i)
  return tonumber(table.concat(out))
end

local function read1(f, fmt)
  if math.type(fmt) == "integer" then return read_count(f, fmt) end
  if type(fmt) == "number" then return read_count(f, math.tointeger(fmt) or error("bad argument to 'read' (number has no integer representation)", 3)) end
  if type(fmt) ~= "string" then error("bad argument to 'read' (invalid format)", 3) end
  local c = fmt:gsub("^%*", ""):sub(1, 1)
  if c == "l" then return read_line(f, false)
  elseif c == "L" then return read_line(f, true)
  elseif c == "a" then return read_all(f)
  elseif c == "n" then return read_number(f)
  end
  error("bad argument to 'read' (invalid format)", 3)
end

--- f:read(...) -> as io's file:read (formats "l", "L", "a", "n", counts)
function File:read(...)
  check(self, "read")
  local n = select("#", ...)
  if n == 0 then return (read1(self, "l")) end
  local out = {}
  for i = 1, n do
    local v, err, code = read1(self, (select(i, ...)))
    if v == nil then
      if err then return nil, err, code end
      out[i] = nil
      return table.unpack(out, 1, i)
    end
    out[i] = v
  end
  return table.unpack(out, 1, n)
end

--- f:lines(...) -> an iterator over f:read(...) (the file stays open)
function File:lines(...)
  check(self, "lines")
  local fmts = table.pack(...)
  if fmts.n == 0 then fmts = { "l", n = 1 } end
  return function()
    local r = table.pack(self:read(table.unpack(fmts, 1, fmts.n)))
    if r[1] == nil and r[2] then error(r[2], 2) end
    return table.unpack(r, 1, r.n)
  end
end

--- f:write(...) -> f | nil, err, errno (strings and numbers, as io)
function File:write(...)
  check(self, "write")
  unread(self)
  local parts = table.pack(...)
  for i = 1, parts.n do
    local v = parts[i]
    if math.type(v) == "integer" then parts[i] = ("%d"):format(v)
    elseif type(v) == "number" then parts[i] = ("%.14g"):format(v)
    elseif type(v) ~= "string" then
      error(("bad argument #%d to 'write' (string expected, got %s)"):format(i, type(v)), 2)
    end
  end
  local ok, err, code = core._fs_fdwrite(self.fd, table.concat(parts, "", 1, parts.n))
  if not ok then return nil, err, code end
  return self
end

--- f:seek([whence = "cur" [, offset = 0]]) -> position | nil, err, errno
function File:seek(whence, offset)
  check(self, "seek")
  whence = whence or "cur"
  if whence == "cur" and (offset or 0) == 0 then -- where the reader stands
    local pos, err, code = core._fs_seek(self.fd, "cur", 0)
    if not pos then return nil, err, code end
    return pos - #self.buf
  end
  unread(self)
  return core._fs_seek(self.fd, whence, offset or 0)
end

function File:flush() check(self, "flush") return self end -- writes are not buffered
function File:setvbuf() check(self, "setvbuf") return true end

--- f:close() -> true | nil, err, errno
function File:close()
  check(self, "close")
  local fd = self.fd
  self.fd = nil
  return core._fs_close(fd)
end

File.__close = function(f) if f.fd then f:close() end end
File.__gc = function(f) if f.fd then pcall(core._fs_close, f.fd); f.fd = nil end end
File.__tostring = function(f)
  return f.fd and ("file (%p)"):format(f) or "file (closed)"
end

return M
