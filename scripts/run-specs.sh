#!/bin/sh
# Run the busted specs against the module built in $1 (build or build-asan)
# and end with one line "N passed, N failed".
#   GH_SAN=1       preload the sanitizer runtimes (module built with them)
#   GH_VALGRIND=1  run under valgrind memcheck
#   SPECS=...      spec files or directories (default: spec)
dir=${1:-build}
specs=${SPECS:-spec}
LUA=${LUA:-lua5.4}
log=$(mktemp)
# thousands of sockets: as high as allowed (root may raise the hard limit)
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
set -- $LUA /usr/bin/busted --ignore-lua --cpath="$dir/?.so" $specs
if [ -n "$GH_SAN" ]; then
  asan=$(cc -print-file-name=libasan.so)
  ubsan=$(cc -print-file-name=libubsan.so)
  export LD_PRELOAD="$asan $ubsan"
  export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:exitcode=66"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
  export GH_SLOW=1
fi
if [ -n "$GH_VALGRIND" ]; then
  set -- valgrind -q --error-exitcode=67 --leak-check=full --show-leak-kinds=definite \
    --errors-for-leak-kinds=definite --suppressions=scripts/valgrind.supp "$@"
  export GH_SLOW=1
fi
rcfile=$(mktemp)
{ timeout 1800 "$@"; echo $? > "$rcfile"; } 2>&1 | tee "$log"
rc=$(cat "$rcfile")
rm -f "$rcfile"
# busted: "12 successes / 0 failures / 1 errors / 0 pending : 1.2 seconds"
summary=$(grep -E '[0-9]+ success(es)? / [0-9]+ failures? / [0-9]+ errors? / [0-9]+ pending' "$log" | tail -n 1)
if [ -z "$summary" ]; then
  passed=0; failed=1
  echo "greenhub: the spec run did not finish (no busted summary)" >&2
else
  passed=$(echo "$summary" | sed -E 's/^[^0-9]*([0-9]+) success.*/\1/')
  fails=$(echo "$summary" | sed -E 's/.* ([0-9]+) failures?.*/\1/')
  errs=$(echo "$summary" | sed -E 's/.* ([0-9]+) errors?.*/\1/')
  failed=$((fails + errs))
fi
if grep -qE '^(==[0-9]+==ERROR|.*runtime error:)' "$log"; then
  echo "greenhub: sanitizer reported errors (see above)" >&2
  failed=$((failed + 1))
fi
if [ "$rc" = 66 ] || [ "$rc" = 67 ] || grep -qE '==[0-9]+== (Invalid|Conditional|Syscall param|Mismatched|Source and destination)|definitely lost in' "$log"; then
  echo "greenhub: valgrind/sanitizer reported errors (exit $rc; see above)" >&2
  failed=$((failed + 1))
fi
rm -f "$log"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
