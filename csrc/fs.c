/*
 * fs.c - file system calls that do not stall the hub (gh.fs). Each call
 * runs on the worker pool's own queue (resolver.c's work_run: slow disks
 * never delay DNS) with no Lua there; the green thread parks until the
 * result is back. Results and error strings are those of Lua's io and os
 * functions: nil, "path: strerror", errno.
 *
 * One exception, reads of an open file (f:read) of at most FS_INLINE_MAX
 * bytes whose bytes are all in the page cache: preadv2(RWF_NOWAIT) takes
 * them on the hub's thread (the kernel refuses with EAGAIN rather than
 * wait for a disk: then the workers do it), and the caller yields once, as
 * a parked one would, so the others run between pieces. That is io's
 * speed (no hand-off to a worker and back) with the hub never stalled for
 * longer than one such copy.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "greenhub.h"

enum { OP_READ, OP_WRITE, OP_STAT, OP_REMOVE, OP_RENAME, OP_MKDIR, OP_DIR,
       OP_OPEN, OP_FDREAD, OP_FDWRITE, OP_REALPATH, OP_OPENREAL };

typedef struct fs_job {
  int op;
  int err;                 /* errno of the failure, 0 for success */
  char *path, *path2;      /* path2: rename's target */
  char *data;              /* read: what was read; write: what to write;
                              dir: the names, each NUL-terminated */
  size_t len;
  int append;              /* write: append instead of truncate */
  int mode;                /* mkdir; open: the flags */
  struct stat st;          /* stat */
  int fd;                  /* open: the result; fdread/fdwrite: the file */
  size_t max;              /* fdread: at most this much (0: to the end) */
} fs_job;

static void fs_free(void *arg) {
  fs_job *j = arg;
  if ((j->op == OP_OPEN || j->op == OP_OPENREAL) && j->fd >= 0) close(j->fd); /* opened for a caller now gone */
  free(j->path);
  free(j->path2);
  free(j->data);
  free(j);
}

/* read the whole file into one buffer, filled in place */
static void op_read(fs_job *j) {
  int fd = open(j->path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) { j->err = errno; return; }
  struct stat st;
  size_t cap = (fstat(fd, &st) == 0 && st.st_size > 0) ? (size_t)st.st_size + 1 : 65536;
  char *buf = malloc(cap);
  size_t n = 0;
  if (!buf) { j->err = ENOMEM; close(fd); return; }
  for (;;) {
    if (n == cap) { /* grew while we read, or a file of unknown size */
      char *nb = realloc(buf, cap * 2);
      if (!nb) { j->err = ENOMEM; break; }
      buf = nb;
      cap *= 2;
    }
    ssize_t r = read(fd, buf + n, cap - n);
    if (r < 0) { if (errno == EINTR) continue; j->err = errno; break; }
    if (r == 0) break;
    n += (size_t)r;
  }
  close(fd);
  if (j->err) { free(buf); return; }
  j->data = buf;
  j->len = n;
}

static void op_write(fs_job *j) {
  int fd = open(j->path, O_WRONLY | O_CREAT | O_CLOEXEC | (j->append ? O_APPEND : O_TRUNC), 0666);
  if (fd < 0) { j->err = errno; return; }
  size_t n = 0;
  while (n < j->len) {
    ssize_t w = write(fd, j->data + n, j->len - n);
    if (w < 0) { if (errno == EINTR) continue; j->err = errno; break; }
    n += (size_t)w;
  }
  if (close(fd) < 0 && !j->err) j->err = errno;
}

static void op_dir(fs_job *j) {
  DIR *d = opendir(j->path);
  if (!d) { j->err = errno; return; }
  size_t cap = 4096, n = 0;
  char *buf = malloc(cap);
  if (!buf) { j->err = ENOMEM; closedir(d); return; }
  struct dirent *e;
  errno = 0;
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    size_t k = strlen(e->d_name) + 1;
    if (n + k > cap) {
      while (n + k > cap) cap *= 2;
      char *nb = realloc(buf, cap);
      if (!nb) { j->err = ENOMEM; break; }
      buf = nb;
    }
    memcpy(buf + n, e->d_name, k);
    n += k;
    errno = 0;
  }
  if (!j->err && errno) j->err = errno;
  closedir(d);
  if (j->err) { free(buf); return; }
  j->data = buf;
  j->len = n;
}

static void op_open(fs_job *j) {
  j->fd = open(j->path, j->mode | O_CLOEXEC, 0666);
  if (j->fd < 0) j->err = errno;
}

/* up to max bytes (0: all to the end of the file), filled in place */
static void op_fdread(fs_job *j) {
  size_t cap = j->max ? j->max : 65536, n = 0;
  char *buf = malloc(cap ? cap : 1);
  if (!buf) { j->err = ENOMEM; return; }
  while (!j->max || n < j->max) {
    if (n == cap) {
      char *nb = realloc(buf, cap * 2);
      if (!nb) { j->err = ENOMEM; break; }
      buf = nb;
      cap *= 2;
    }
    ssize_t r = read(j->fd, buf + n, cap - n);
    if (r < 0) { if (errno == EINTR) continue; j->err = errno; break; }
    if (r == 0) break;
    n += (size_t)r;
    if (j->max) break; /* a short read is an answer: the caller asks again */
  }
  if (j->err) { free(buf); return; }
  j->data = buf;
  j->len = n;
}

static void op_fdwrite(fs_job *j) {
  size_t n = 0;
  while (n < j->len) {
    ssize_t w = write(j->fd, j->data + n, j->len - n);
    if (w < 0) { if (errno == EINTR) continue; j->err = errno; break; }
    n += (size_t)w;
  }
}

/* on a worker thread */
static void fs_run(void *arg) {
  fs_job *j = arg;
  switch (j->op) {
    case OP_READ: op_read(j); break;
    case OP_WRITE: op_write(j); break;
    case OP_STAT: if (lstat(j->path, &j->st) < 0) j->err = errno; break;
    case OP_REMOVE: if (remove(j->path) < 0) j->err = errno; break;
    case OP_RENAME: if (rename(j->path, j->path2) < 0) j->err = errno; break;
    case OP_MKDIR: if (mkdir(j->path, (mode_t)j->mode) < 0) j->err = errno; break;
    case OP_DIR: op_dir(j); break;
    case OP_OPEN: op_open(j); break;
    case OP_FDREAD: op_fdread(j); break;
    case OP_FDWRITE: op_fdwrite(j); break;
    case OP_OPENREAL: /* realpath, open, fstat in one trip (http.static) */
      j->data = realpath(j->path, NULL);
      if (!j->data) { j->err = errno; break; }
      j->len = strlen(j->data);
      j->fd = open(j->data, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
      if (j->fd < 0) { j->err = errno; break; }
      if (fstat(j->fd, &j->st) < 0) { j->err = errno; close(j->fd); j->fd = -1; }
      break;
    case OP_REALPATH:
      j->data = realpath(j->path, NULL);
      if (!j->data) j->err = errno;
      else j->len = strlen(j->data);
      break;
  }
}

/* io's failure: nil, "path: message", errno (os.rename's has no path) */
static int push_err(lua_State *L, const fs_job *j) {
  lua_pushnil(L);
  if (j->op == OP_RENAME || j->op == OP_FDREAD || j->op == OP_FDWRITE) /* as io: no name */
    lua_pushstring(L, strerror(j->err));
  else lua_pushfstring(L, "%s: %s", j->path, strerror(j->err));
  lua_pushinteger(L, j->err);
  return 3;
}

static int fs_done(lua_State *L, int status, lua_KContext ctx) {
  fs_job *j = (fs_job *)ctx;
  (void)status;
  int n;
  if (j->err) {
    n = push_err(L, j);
  } else {
    switch (j->op) {
      case OP_READ: case OP_FDREAD: case OP_REALPATH:
        lua_pushlstring(L, j->data ? j->data : "", j->len);
        n = 1;
        break;
      case OP_OPENREAL: { /* fd, real path, type, size, mtime */
        const struct stat *st = &j->st;
        hub_fd_forget(HUB(L), j->fd);
        lua_pushinteger(L, j->fd);
        j->fd = -1;
        lua_pushlstring(L, j->data, j->len);
        lua_pushstring(L, S_ISREG(st->st_mode) ? "file" : S_ISDIR(st->st_mode) ? "directory" : "other");
        lua_pushinteger(L, (lua_Integer)st->st_size);
        lua_pushinteger(L, (lua_Integer)st->st_mtim.tv_sec);
        n = 5;
        break;
      }
      case OP_OPEN:
        hub_fd_forget(HUB(L), j->fd);
        lua_pushinteger(L, j->fd);
        j->fd = -1; /* the caller's now */
        n = 1;
        break;
      case OP_STAT: {
        const struct stat *st = &j->st;
        lua_createtable(L, 0, 4);
        lua_pushstring(L, S_ISREG(st->st_mode) ? "file" : S_ISDIR(st->st_mode) ? "directory"
                        : S_ISLNK(st->st_mode) ? "link" : "other");
        lua_setfield(L, -2, "type");
        lua_pushinteger(L, (lua_Integer)st->st_size);
        lua_setfield(L, -2, "size");
        lua_pushnumber(L, (lua_Number)st->st_mtim.tv_sec + (lua_Number)st->st_mtim.tv_nsec / 1e9);
        lua_setfield(L, -2, "mtime");
        lua_pushinteger(L, (lua_Integer)(st->st_mode & 07777));
        lua_setfield(L, -2, "mode");
        n = 1;
        break;
      }
      case OP_DIR: {
        lua_newtable(L);
        lua_Integer i = 0;
        for (size_t off = 0; off < j->len; off += strlen(j->data + off) + 1) {
          lua_pushstring(L, j->data + off);
          lua_rawseti(L, -2, ++i);
        }
        n = 1;
        break;
      }
      default:
        lua_pushboolean(L, 1);
        n = 1;
    }
  }
  fs_free(j);
  return n;
}

static fs_job *job_new(lua_State *L, int op, int patharg) {
  const char *path = patharg ? luaL_checkstring(L, patharg) : "";
  hub_self(L, HUB(L), "gh.fs"); /* raises where it cannot wait: before any allocation */
  fs_job *j = calloc(1, sizeof *j);
  if (j) j->path = strdup(path);
  if (!j || !j->path) { if (j) fs_free(j); gh_nomem(L); }
  j->op = op;
  j->fd = -1;
  return j;
}

static int submit(lua_State *L, fs_job *j) {
  return work_run(L, HUB(L), 0, fs_run, fs_free, j, (lua_KContext)j, fs_done);
}

/* _fs_readfile(path) -> data | nil, err, errno */
static int l_readfile(lua_State *L) { return submit(L, job_new(L, OP_READ, 1)); }

/* _fs_writefile(path, data [, append]) -> true | nil, err, errno */
static int l_writefile(lua_State *L) {
  size_t len;
  const char *data = luaL_checklstring(L, 2, &len);
  int append = lua_toboolean(L, 3);
  fs_job *j = job_new(L, OP_WRITE, 1);
  /* a copy: the worker must never read a string the caller's death frees */
  j->data = malloc(len ? len : 1);
  if (!j->data) { fs_free(j); return gh_nomem(L); }
  memcpy(j->data, data, len);
  j->len = len;
  j->append = append;
  return submit(L, j);
}

static int l_stat(lua_State *L) { return submit(L, job_new(L, OP_STAT, 1)); }
static int l_remove(lua_State *L) { return submit(L, job_new(L, OP_REMOVE, 1)); }
static int l_dir(lua_State *L) { return submit(L, job_new(L, OP_DIR, 1)); }

static int l_rename(lua_State *L) {
  const char *to = luaL_checkstring(L, 2);
  fs_job *j = job_new(L, OP_RENAME, 1);
  j->path2 = strdup(to);
  if (!j->path2) { fs_free(j); return gh_nomem(L); }
  return submit(L, j);
}

static int l_mkdir(lua_State *L) {
  lua_Integer mode = luaL_optinteger(L, 2, 0777);
  fs_job *j = job_new(L, OP_MKDIR, 1);
  j->mode = (int)(mode & 07777);
  return submit(L, j);
}

/* _fs_open(path, mode) -> fd | nil, err, errno. mode: io.open's */
static int l_open(lua_State *L) {
  const char *m = luaL_checkstring(L, 2);
  int flags, plus;
  const char *p = m + 1;
  /* io.open's rule: [rwa], an optional '+', then only 'b's */
  if ((plus = (*m && *p == '+'))) p++;
  switch (*m) {
    case 'r': flags = plus ? O_RDWR : O_RDONLY; break;
    case 'w': flags = (plus ? O_RDWR : O_WRONLY) | O_CREAT | O_TRUNC; break;
    case 'a': flags = (plus ? O_RDWR : O_WRONLY) | O_CREAT | O_APPEND; break;
    default: return luaL_argerror(L, 2, "invalid mode");
  }
  if (strspn(p, "b") != strlen(p)) return luaL_argerror(L, 2, "invalid mode");
  fs_job *j = job_new(L, OP_OPEN, 1);
  j->mode = flags;
  return submit(L, j);
}

#define FS_INLINE_MAX (1 << 20)
#ifdef RWF_NOWAIT
#define FS_INLINE_STEP (128 << 10) /* per hub turn: the hub's longest hold */

/* The hub's read buffer, kept in the registry between reads so its pages
   are touched once (a first touch costs more than the copy on some VMs),
   on the reader's stack while in use (a second reader meanwhile gets a
   fresh one; a killed reader's goes with its thread). */
static const char scratch_key = 0;

static char *take_scratch(lua_State *L) {
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &scratch_key) == LUA_TNIL) {
    lua_pop(L, 1);
    return lua_newuserdatauv(L, FS_INLINE_MAX, 0);
  }
  lua_pushnil(L);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &scratch_key);
  return lua_touserdata(L, -1);
}

static void give_scratch(lua_State *L, int idx) {
  int empty = lua_rawgetp(L, LUA_REGISTRYINDEX, &scratch_key) == LUA_TNIL;
  lua_pop(L, 1);
  if (empty) {
    lua_pushvalue(L, idx);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &scratch_key);
  }
}

static int inline_step(lua_State *L);

static int inline_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status;
  gh_hub *h = HUB(L);
  hub_check_intr(L, h, hub_me(L, h));
  if (ctx == 1) return 1; /* done: the data is on top */
  if (ctx == 2) { /* read: the string is made in a turn of its own */
    lua_pushlstring(L, lua_touserdata(L, 3), (size_t)lua_tointeger(L, 4));
    give_scratch(L, 3);
    return 1;
  }
  return inline_step(L);
}

/* Stack: fd, max, buffer, bytes so far. Steps of FS_INLINE_STEP with a
   yield between; a short or refused step ends it with what there is.
   Returns -1 (nothing read, stack as on entry) when the workers must. */
static int inline_step(lua_State *L) {
  gh_hub *h = HUB(L);
  int fd = (int)lua_tointeger(L, 1);
  size_t max = (size_t)lua_tointeger(L, 2), got = (size_t)lua_tointeger(L, 4);
  char *buf = lua_touserdata(L, 3);
  size_t want = max - got < FS_INLINE_STEP ? max - got : FS_INLINE_STEP;
  struct iovec iov = { buf + got, want };
  ssize_t r;
  do r = preadv2(fd, &iov, 1, -1, RWF_NOWAIT); while (r < 0 && errno == EINTR);
  if (r < 0 && got == 0) { /* not in the page cache, or not a file this works on */
    give_scratch(L, 3);
    lua_settop(L, 2);
    return -1;
  }
  if (r > 0) got += (size_t)r;
  if (r == (ssize_t)want && got < max) { /* more to come: the others run first */
    lua_pushinteger(L, (lua_Integer)got);
    lua_replace(L, 4);
    return hub_yield(L, h, hub_self(L, h, "gh.fs"), 0, inline_k);
  }
  lua_pushinteger(L, (lua_Integer)got);
  lua_replace(L, 4);
  if (got <= FS_INLINE_STEP) { /* one step: the string at once */
    lua_pushlstring(L, buf, got);
    give_scratch(L, 3);
    return hub_yield(L, h, hub_self(L, h, "gh.fs"), 1, inline_k);
  }
  return hub_yield(L, h, hub_self(L, h, "gh.fs"), 2, inline_k);
}
#endif

/* _fs_fdread(fd, max) -> data ("" at the end) | nil, err, errno; max 0: to the end */
static int l_fdread(lua_State *L) {
  int fd = (int)luaL_checkinteger(L, 1);
  lua_Integer max = luaL_checkinteger(L, 2);
  luaL_argcheck(L, max >= 0, 2, "must not be negative");
#ifdef RWF_NOWAIT
  if (max > 0 && max <= FS_INLINE_MAX) { /* from the page cache, here */
    hub_self(L, HUB(L), "gh.fs"); /* raises where it cannot wait */
    lua_settop(L, 2);
    take_scratch(L);
    lua_pushinteger(L, 0);
    int r = inline_step(L);
    if (r >= 0) return r;
  }
#endif
  fs_job *j = job_new(L, OP_FDREAD, 0);
  j->fd = fd;
  j->max = (size_t)max;
  return submit(L, j);
}

/* _fs_fdwrite(fd, data) -> true | nil, err, errno */
static int l_fdwrite(lua_State *L) {
  int fd = (int)luaL_checkinteger(L, 1);
  size_t len;
  const char *data = luaL_checklstring(L, 2, &len);
  fs_job *j = job_new(L, OP_FDWRITE, 0);
  j->fd = fd;
  j->data = malloc(len ? len : 1);
  if (!j->data) { fs_free(j); return gh_nomem(L); }
  memcpy(j->data, data, len);
  j->len = len;
  return submit(L, j);
}

/* _fs_seek(fd, whence, offset) -> position | nil, err, errno (never blocks) */
static int l_seek(lua_State *L) {
  static const char *const names[] = {"set", "cur", "end", NULL};
  static const int whences[] = {SEEK_SET, SEEK_CUR, SEEK_END};
  int fd = (int)luaL_checkinteger(L, 1);
  int w = whences[luaL_checkoption(L, 2, "cur", names)];
  lua_Integer off = luaL_optinteger(L, 3, 0);
  off_t r = lseek(fd, (off_t)off, w);
  if (r < 0) {
    int e = errno;
    lua_pushnil(L);
    lua_pushstring(L, strerror(e));
    lua_pushinteger(L, e);
    return 3;
  }
  lua_pushinteger(L, (lua_Integer)r);
  return 1;
}

/* _fs_close(fd) -> true | nil, err, errno */
static int l_close(lua_State *L) {
  int fd = (int)luaL_checkinteger(L, 1);
  hub_fd_forget(HUB(L), fd);
  if (close(fd) < 0) {
    int e = errno;
    lua_pushnil(L);
    lua_pushstring(L, strerror(e));
    lua_pushinteger(L, e);
    return 3;
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* _fs_openreal(path) -> fd, real path, type, size, mtime | nil, err, errno */
static int l_openreal(lua_State *L) { return submit(L, job_new(L, OP_OPENREAL, 1)); }

/* _fs_realpath(path) -> the path with every link and dot resolved */
static int l_realpath(lua_State *L) { return submit(L, job_new(L, OP_REALPATH, 1)); }

static const luaL_Reg fs_funcs[] = {
  {"_fs_realpath", l_realpath}, {"_fs_openreal", l_openreal},
  {"_fs_open", l_open}, {"_fs_fdread", l_fdread}, {"_fs_fdwrite", l_fdwrite},
  {"_fs_seek", l_seek}, {"_fs_close", l_close},
  {"_fs_readfile", l_readfile}, {"_fs_writefile", l_writefile}, {"_fs_stat", l_stat},
  {"_fs_remove", l_remove}, {"_fs_rename", l_rename}, {"_fs_mkdir", l_mkdir},
  {"_fs_dir", l_dir},
  {NULL, NULL}
};

void fs_open(lua_State *L, int mod, int hub) {
  gh_setfuncs(L, mod, hub, fs_funcs);
}
