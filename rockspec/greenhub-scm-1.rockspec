rockspec_format = "3.0"
package = "greenhub"
version = "scm-1"
source = {
  url = "git+https://github.com/greenhub/greenhub.git",
}
description = {
  summary = "Green threads for Lua 5.4 on a C hub (epoll, timer heap, run queue)",
  detailed = [[
greenhub multiplexes thousands of green threads (Lua coroutines) on an epoll
hub written in C. Blocking calls (sleep, socket I/O, waits) yield to the hub,
so plain sequential code runs concurrently; the API follows LuaSocket.
]],
  license = "MIT",
}
supported_platforms = { "linux" }
dependencies = {
  "lua >= 5.4, < 5.5",
}
build = {
  type = "builtin",
  modules = {
    ["greenhub.core"] = {
      sources = {
        "csrc/poller.c",
        "csrc/hub.c",
        "csrc/timer.c",
        "csrc/thread.c",
        "csrc/timeout.c",
        "csrc/buffer.c",
        "csrc/compat.c",
        "csrc/socket.c",
        "csrc/stream.c",
        "csrc/sockaddr.c",
        "csrc/udp.c",
        "csrc/sockhttp.c",
        "csrc/resolver.c",
        "csrc/sync.c",
        "csrc/diag.c",
        "csrc/proc.c",
        "csrc/module.c",
        "csrc/http.c",
        "csrc/websocket.c",
        "csrc/wsframe.c",
        "csrc/fs.c",
        "csrc/tpool.c",
        "csrc/scope.c",
        "csrc/tls.c",
      },
      libraries = { "ssl", "crypto", "pthread", "m", "dl" },
      defines = {},
      incdirs = { "csrc" },
    },
    greenhub = "lua/greenhub.lua",
    ["greenhub.socket"] = "lua/greenhub/socket.lua",
    ["greenhub.pool"] = "lua/greenhub/pool.lua",
    ["greenhub.coroutine"] = "lua/greenhub/coroutine.lua",
    ["greenhub.proc"] = "lua/greenhub/proc.lua",
    ["greenhub.backdoor"] = "lua/greenhub/backdoor.lua",
    ["greenhub.tls"] = "lua/greenhub/tls.lua",
    ["greenhub.util"] = "lua/greenhub/util.lua",
    ["greenhub.http"] = "lua/greenhub/http.lua",
    ["greenhub.websocket"] = "lua/greenhub/websocket.lua",
    ["greenhub.prefork"] = "lua/greenhub/prefork.lua",
    ["greenhub.fs"] = "lua/greenhub/fs.lua",
    ["greenhub.tpool"] = "lua/greenhub/tpool.lua",
    -- its C part is greenhub-pg (rockspec/greenhub-pg-scm-1.rockspec: needs libpq)
    ["greenhub.pg"] = "lua/greenhub/pg.lua",
    ["greenhub.scope"] = "lua/greenhub/scope.lua",
  },
}
test = {
  type = "busted",
}
