/*
 * fs.c - file system calls that do not stall the hub (gh.fs). Each call
 * runs on the worker pool's own queue (resolver.c's work_run: slow disks
 * never delay DNS) with no Lua there; the green thread parks until the
 * result is back. Results and error strings are those of Lua's io and os
 * functions: nil, "path: strerror", errno.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "greenhub.h"

enum { OP_READ, OP_WRITE, OP_STAT, OP_REMOVE, OP_RENAME, OP_MKDIR, OP_DIR };

typedef struct fs_job {
  int op;
  int err;                 /* errno of the failure, 0 for success */
  char *path, *path2;      /* path2: rename's target */
  char *data;              /* read: what was read; write: what to write;
                              dir: the names, each NUL-terminated */
  size_t len;
  int append;              /* write: append instead of truncate */
  int mode;                /* mkdir */
  struct stat st;          /* stat */
} fs_job;

static void fs_free(void *arg) {
  fs_job *j = arg;
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
  }
}

/* io's failure: nil, "path: message", errno (os.rename's has no path) */
static int push_err(lua_State *L, const fs_job *j) {
  lua_pushnil(L);
  if (j->op == OP_RENAME) lua_pushstring(L, strerror(j->err)); /* as os.rename: no name */
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
      case OP_READ:
        lua_pushlstring(L, j->data ? j->data : "", j->len);
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
  const char *path = luaL_checkstring(L, patharg);
  hub_self(L, HUB(L), "gh.fs"); /* raises where it cannot wait: before any allocation */
  fs_job *j = calloc(1, sizeof *j);
  if (j) j->path = strdup(path);
  if (!j || !j->path) { if (j) fs_free(j); gh_nomem(L); }
  j->op = op;
  return j;
}

static int submit(lua_State *L, fs_job *j) {
  return work_run(L, HUB(L), fs_run, fs_free, j, (lua_KContext)j, fs_done);
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

static const luaL_Reg fs_funcs[] = {
  {"_fs_readfile", l_readfile}, {"_fs_writefile", l_writefile}, {"_fs_stat", l_stat},
  {"_fs_remove", l_remove}, {"_fs_rename", l_rename}, {"_fs_mkdir", l_mkdir},
  {"_fs_dir", l_dir},
  {NULL, NULL}
};

void fs_open(lua_State *L, int mod, int hub) {
  gh_setfuncs(L, mod, hub, fs_funcs);
}
