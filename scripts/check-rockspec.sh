#!/bin/sh
# The rockspec must build the same C sources (and ship the same Lua files)
# as the Makefile. Prints the differences and fails on any.
set -e
mk=$(sed -n '/^SRCS := /,/[^\\]$/p' Makefile | sed 's/^SRCS := //; s/\\$//' | tr ' ' '\n' | grep '\.c$' | sort)
rs=$(grep -o '"csrc/[a-z_]*\.c"' rockspec/greenhub-scm-1.rockspec | tr -d '"' | sort)
ok=1
if [ "$mk" != "$rs" ]; then
  echo "rockspec and Makefile list different C sources:" >&2
  echo "Makefile: $mk" >&2; echo "rockspec: $rs" >&2
  ok=0
fi
for f in lua/greenhub.lua lua/greenhub/*.lua; do
  [ -e "$f" ] || continue
  grep -q "\"$f\"" rockspec/greenhub-scm-1.rockspec || { echo "rockspec misses $f" >&2; ok=0; }
done
[ $ok = 1 ] && echo "rockspec in step with Makefile"
[ $ok = 1 ]
