rockspec_format = "3.0"
package = "greenhub-pg"
version = "scm-1"
source = {
  url = "git+https://github.com/greenhub/greenhub.git",
}
description = {
  summary = "greenhub.pg's C part: PostgreSQL on libpq's asynchronous API, waits in greenhub's hub",
  detailed = [[
greenhub.pgcore, the C half of greenhub.pg (the Lua half ships with
greenhub). Separate because it needs libpq (Debian: libpq-dev); it must be
built from the same source tree as the greenhub it is loaded with.
]],
  license = "MIT",
}
supported_platforms = { "linux" }
dependencies = {
  "lua >= 5.4, < 5.5",
  "greenhub",
}
external_dependencies = {
  PQ = { header = "libpq-fe.h", library = "pq" },
}
build = {
  type = "builtin",
  modules = {
    ["greenhub.pgcore"] = {
      sources = { "csrc/pg.c" },
      libraries = { "pq", "m" },
      incdirs = { "csrc", "$(PQ_INCDIR)" },
      libdirs = { "$(PQ_LIBDIR)" },
    },
  },
}
