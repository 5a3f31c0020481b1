-- gh.fs: files without stalling the hub. Each call runs on the worker
-- pool's own queue (csrc/fs.c, no Lua there); the calling green thread
-- parks until the result is back. Results and error strings are those of
-- Lua's io and os: nil, "path: No such file or directory", errno.
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

return M
