#!/usr/bin/env bash
# make bench: greenhub next to its peers, measured side by side in one run,
# reported as ratios. Server pinned to CPU 0, load generator to CPU 1;
# every figure is the median of $RUNS runs.
#   RUNS=3 DUR=4 bash bench/run.sh [core|http|echo|syscalls|patch|tls|resp|httpmod|httpinstr|ws|prefork|fs|static|pg|scope|all]
set -u
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
DUR=${DUR:-4}
what=${1:-all}
PY=/usr/bin/python3
B=$(pwd)/build/bench
mkdir -p $B
cc -O2 -o $B/raw_http bench/raw_http.c
cc -O2 -o $B/echo_client bench/echo_client.c
cc -O2 -o $B/http_get bench/http_get.c
cc -O2 -o $B/ws_client bench/ws_client.c
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

median() { sort -g | awk '{v[NR]=$1} END {if (NR==0) print "n/a"; else print v[int((NR+1)/2)]}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a+0 == 0 || b+0 == 0) print "n/a"; else printf "%.2f", a / b }'; }
have_py() { $PY -c "import $1" 2>/dev/null; }

# ---------------------------------------------------------------- core
core() {
  echo "== core: green threads (ns per operation; lower is better)"
  printf "%-12s %10s %10s %10s %10s %10s\n" test bare greenhub cqueues eventlet gevent
  local floor=0
  for t in switch spawn spawn_batch queue event; do
    declare -A r=()
    for impl in bare greenhub cqueues eventlet gevent; do
      vals=""
      for _ in $(seq $RUNS); do
        case $impl in
          eventlet|gevent) have_py $impl || continue; v=$(taskset -c 0 $PY bench/core.py $impl $t 2>/dev/null) ;;
          *) v=$(taskset -c 0 lua5.4 bench/core.lua $impl $t 2>/dev/null) ;;
        esac
        vals="$vals$v"$'\n'
      done
      r[$impl]=$(printf "%s" "$vals" | grep -E '^[0-9.]+$' | median)
    done
    # queue and event have no bare form: their floor is the bare switch
    case $t in queue|event) r[bare]=$floor ;; switch) floor=${r[bare]} ;; esac
    printf "%-12s %10.0f %10.0f %10.0f %10.0f %10.0f\n" $t ${r[bare]} ${r[greenhub]} ${r[cqueues]:-0} ${r[eventlet]:-0} ${r[gevent]:-0}
    echo "   greenhub rate / bare rate: $(ratio ${r[bare]} ${r[greenhub]})   greenhub vs cqueues: $(ratio ${r[cqueues]:-0} ${r[greenhub]})x   vs eventlet: $(ratio ${r[eventlet]:-0} ${r[greenhub]})x   vs gevent: $(ratio ${r[gevent]:-0} ${r[greenhub]})x"
    unset r
  done
  echo "== core: 100,000 threads sleeping random 0-1 s (wall s, early fires, max lateness s)"
  for impl in greenhub cqueues luv; do
    echo "   $impl: $(taskset -c 0 lua5.4 bench/core.lua $impl sleeps)"
  done
  for impl in eventlet gevent; do have_py $impl && echo "   $impl: $(taskset -c 0 $PY bench/core.py $impl sleeps)"; done
  echo "== core: RSS bytes per suspended thread (100,000 in sleep(3600), timer included)"
  declare -A m=()
  for impl in bare greenhub cqueues; do m[$impl]=$(for _ in $(seq $RUNS); do lua5.4 bench/core.lua $impl memory; done | median); done
  for impl in eventlet gevent; do have_py $impl && m[$impl]=$($PY bench/core.py $impl memory); done
  for k in bare greenhub cqueues eventlet gevent; do printf "   %-9s %8.0f\n" $k ${m[$k]:-0}; done
  echo "   greenhub / bare: $(ratio ${m[greenhub]} ${m[bare]})"
}

# ---------------------------------------------------------------- servers
PORT=18080
start_server() { # name mode -> sets SPID
  local name=$1 mode=$2
  case $name in
    raw) if [ $mode = echo ]; then taskset -c 0 $B/raw_http $PORT -e & else taskset -c 0 $B/raw_http $PORT & fi ;;
    greenhub) if [ $mode = echo ]; then taskset -c 0 lua5.4 examples/echo.lua $PORT >/dev/null & else taskset -c 0 lua5.4 examples/hello_raw.lua $PORT 2>/dev/null & fi ;;
    greenhub-http) [ $mode = echo ] && return 1; taskset -c 0 lua5.4 examples/hello_http.lua $PORT 2>/dev/null & ;;
    scope-plain|scope-scope) taskset -c 0 lua5.4 bench/scope.lua $mode ${name#scope-} $PORT & ;;
    cqueues) taskset -c 0 lua5.4 bench/peers/cqueues_server.lua $PORT $mode & ;;
    luv) taskset -c 0 lua5.4 bench/peers/luv_server.lua $PORT $mode & ;;
    eventlet|gevent) have_py $name || return 1; taskset -c 0 $PY bench/peers/py_server.py $name $PORT $mode 2>/dev/null & ;;
  esac
  SPID=$!
  for _ in $(seq 50); do
    if (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  kill $SPID 2>/dev/null; return 1
}
stop_server() { kill $SPID 2>/dev/null; wait $SPID 2>/dev/null; PORT=$((PORT + 1)); }
cpu_ticks() { awk '{print $14 + $15}' /proc/$1/stat; }

http() {
  local conns=$1
  echo "== HTTP/1.1 keep-alive hello world, wrk -t1 -c$conns -d${DUR}s (median of $RUNS)"
  printf "   %-9s %10s %10s %12s %14s\n" server req/s ratio p99 "server us/req"
  local base="" basecpu=""
  for s in raw greenhub greenhub-http cqueues luv eventlet gevent; do
    local rps="" p99="" cpu=""
    for _ in $(seq $RUNS); do
      start_server $s http || { rps="$rps"; continue; }
      local c0; c0=$(cpu_ticks $SPID)
      out=$(taskset -c 1 wrk -t1 -c$conns -d${DUR}s --latency http://127.0.0.1:$PORT/ 2>&1)
      local c1; c1=$(cpu_ticks $SPID)
      stop_server
      local r; r=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
      local total; total=$(echo "$out" | awk '/requests in/ {print $1}')
      rps="$rps$r"$'\n'
      p99="$p99$(echo "$out" | awk '$1=="99%" {v=$2; if (v ~ /ms$/) {sub(/ms/,"",v); v=v*1000} else if (v ~ /us$/) {sub(/us/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v=v*1e6}; print v}')"$'\n'
      cpu="$cpu$(awk -v a=$c0 -v b=$c1 -v n=$total -v hz=$(getconf CLK_TCK) 'BEGIN { if (n > 0) printf "%.2f", (b - a) / hz * 1e6 / n }')"$'\n'
    done
    local mr mp mc
    mr=$(printf "%s" "$rps" | grep -E '^[0-9.]+$' | median)
    mp=$(printf "%s" "$p99" | grep -E '^[0-9.]+$' | median)
    mc=$(printf "%s" "$cpu" | grep -E '^[0-9.]+$' | median)
    [ -z "$base" ] && base=$mr && basecpu=$mc
    printf "   %-13s %10s %10s %10sus %14s\n" $s "$mr" "$(ratio "$mr" "$base")" "$mp" "$mc"
    [ $s = greenhub ] && echo "   greenhub server CPU per request / raw C: $(ratio "$mc" "$basecpu")"
  done
}

# one echo round against server $1: sets ROUND_RT (trips/s) and
# ROUND_CPU (server us per trip); 1 when the server did not start
echo_round() {
  start_server $1 echo || return 1
  local c0; c0=$(cpu_ticks $SPID)
  ROUND_RT=$(taskset -c 1 $B/echo_client $PORT 100 $DUR)
  local c1; c1=$(cpu_ticks $SPID)
  stop_server
  ROUND_CPU=$(awk -v a=$c0 -v b=$c1 -v r=$ROUND_RT -v d=$DUR -v hz=$(getconf CLK_TCK) 'BEGIN { if (r > 0) printf "%.2f", (b - a) / hz * 1e6 / (r * d) }')
}

echo_bench() {
  echo "== echo ping-pong, 64 B, 100 connections, ${DUR}s (round trips/s, median of $RUNS)"
  local base="" basecpu=""
  for s in raw greenhub cqueues luv eventlet gevent; do
    local rt="" cpu=""
    for _ in $(seq $RUNS); do
      echo_round $s || continue
      rt="$rt$ROUND_RT"$'\n'
      cpu="$cpu$ROUND_CPU"$'\n'
    done
    local m mc
    m=$(printf "%s" "$rt" | grep -E '^[0-9.]+$' | median)
    mc=$(printf "%s" "$cpu" | grep -E '^[0-9.]+$' | median)
    [ -z "$base" ] && base=$m && basecpu=$mc
    printf "   %-9s %10s trips/s  ratio %s  server us/trip %s\n" $s "$m" "$(ratio "$m" "$base")" "$mc"
  done
}

syscalls() {
  echo "== syscalls per keep-alive request (greenhub, strace -c -f, wrk -c10, 3 s)"
  strace -c -f -o $B/strace.txt taskset -c 0 lua5.4 examples/hello_raw.lua $PORT 2>/dev/null &
  local sp=$!
  sleep 1
  local out; out=$(taskset -c 1 wrk -t1 -c10 -d3s http://127.0.0.1:$PORT/ 2>&1)
  pkill -f "examples/hello_raw.lua $PORT" 2>/dev/null # strace writes its table when the tracee exits
  wait $sp 2>/dev/null
  local total; total=$(echo "$out" | awk '/requests in/ {print $1}')
  PORT=$((PORT + 1))
  echo "   requests: $total"
  awk -v n="$total" '$NF ~ /^(read|recvfrom|write|sendto|epoll_wait|epoll_ctl|accept4)$/ { printf "   %-12s %10d calls  %.3f per request\n", $NF, $4, $4 / n }' $B/strace.txt
}

http_client() {
  echo "== socket.http request loop (LuaSocket's module unchanged) against greenhub hello_http, ${DUR}s"
  start_server greenhub http || return
  local plain green green10
  plain=$(for _ in $(seq $RUNS); do taskset -c 1 lua5.4 bench/http_client.lua plain $PORT $DUR; done | median)
  green=$(for _ in $(seq $RUNS); do taskset -c 1 lua5.4 bench/http_client.lua green $PORT $DUR; done | median)
  green10=$(for _ in $(seq $RUNS); do taskset -c 1 lua5.4 bench/http_client.lua green10 $PORT $DUR; done | median)
  stop_server
  printf "   plain LuaSocket, sequential      %8.0f req/s\n" "$plain"
  printf "   gh.patch(), same sequential loop %8.0f req/s  ratio %s\n" "$green" "$(ratio "$green" "$plain")"
  printf "   gh.patch(), 10 green threads     %8.0f req/s  ratio %s\n" "$green10" "$(ratio "$green10" "$plain")"
}

# start one of the TLS bench servers on $PORT (pinned to CPU 0): sets SPID, URL
tls_start() {
  local s=$1 d=$2
  case $s in
    greenhub-tcp) taskset -c 0 lua5.4 examples/hello_raw.lua $PORT 2>/dev/null & URL=http://127.0.0.1:$PORT/ ;;
    greenhub-tls) taskset -c 0 lua5.4 examples/hello_https.lua $PORT $d/server.crt $d/server.key 2>/dev/null & URL=https://127.0.0.1:$PORT/ ;;
    nginx-tls)
      mkdir -p $d/nginx
      cat > $d/nginx/nginx.conf <<NGX
worker_processes 1;
daemon off;
master_process off;
error_log $d/nginx/error.log;
pid $d/nginx/nginx.pid;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$PORT ssl;
    ssl_certificate $d/server.crt;
    ssl_certificate_key $d/server.key;
    # Debian 12's nginx (1.22) leaves TLS 1.3 out by default; greenhub
    # (OpenSSL's default) speaks it, so both are asked for the same
    ssl_protocols TLSv1.2 TLSv1.3;
    location / { default_type text/plain; return 200 "Hello, World!"; }
  }
}
NGX
      taskset -c 0 nginx -c $d/nginx/nginx.conf -p $d/nginx 2>/dev/null & URL=https://127.0.0.1:$PORT/ ;;
  esac
  SPID=$!
  for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
}

# RUNS interleaved rounds (run i of every server, then run i+1: drift on
# this VM hits all alike) of the given TLS bench servers under one load
# command (wrk or ab, on CPU 1): each run's rate and server us per request
# go into the caller's associative arrays RATE and CPU
tls_rounds() {
  local d=$1 servers=$2 i s
  shift 2
  for i in $(seq $RUNS); do
    for s in $servers; do
      [ $s = nginx-tls ] && ! command -v nginx >/dev/null && continue
      tls_start $s $d
      local c0 c1 out rate n
      c0=$(cpu_ticks $SPID)
      out=$(taskset -c 1 "$@" $URL 2>&1)
      c1=$(cpu_ticks $SPID)
      stop_server
      read -r rate n < <(echo "$out" | awk '/requests in/ {n = $1} /^Complete requests/ {n = $3}
        /Requests\/sec/ {r = $2} /^Requests per second/ {r = $4} END {print r, n}')
      RATE[$s]+="$rate"$'\n'
      CPU[$s]+="$(awk -v a=$c0 -v b=$c1 -v n=${n:-0} -v hz=$(getconf CLK_TCK) 'BEGIN { if (n > 0) printf "%.2f", (b - a) / hz * 1e6 / n }')"$'\n'
    done
  done
}

tls_bench() {
  echo "== HTTPS keep-alive hello world, wrk -t1 -c100 -d${DUR}s, same certificate, TLS 1.3 both (median of $RUNS)"
  local d=$B/tls s
  mkdir -p $d
  [ -f $d/server.crt ] || openssl req -x509 -newkey rsa:2048 -nodes -keyout $d/server.key -out $d/server.crt \
      -days 30 -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 >/dev/null 2>&1
  command -v nginx >/dev/null || echo "   nginx not installed"
  declare -A RATE=() CPU=() R=() U=()
  tls_rounds $d "greenhub-tcp greenhub-tls nginx-tls" wrk -t1 -c100 -d${DUR}s
  for s in greenhub-tcp greenhub-tls nginx-tls; do
    R[$s]=$(printf "%s" "${RATE[$s]:-}" | grep -E '^[0-9.]+$' | median)
    U[$s]=$(printf "%s" "${CPU[$s]:-}" | grep -E '^[0-9.]+$' | median)
    printf "   %-13s %10s req/s   server us/req %s\n" $s "${R[$s]}" "${U[$s]}"
  done
  echo "   greenhub TLS / greenhub TCP: $(ratio ${R[greenhub-tls]} ${R[greenhub-tcp]})   greenhub TLS / nginx TLS: req/s $(ratio ${R[greenhub-tls]} ${R[nginx-tls]}), server CPU per request $(ratio ${U[greenhub-tls]} ${U[nginx-tls]})"

  # a new connection (a full handshake, RSA 2048, no session reuse) per request
  local n=$((DUR * 500))
  echo "== TLS handshakes: ab -n $n -c 20 (a new connection per request), same certificate (median of $RUNS)"
  if ! command -v ab >/dev/null; then echo "   ab not installed (apache2-utils)"; return; fi
  RATE=() CPU=()
  tls_rounds $d "greenhub-tls nginx-tls" ab -n $n -c 20
  for s in greenhub-tls nginx-tls; do
    R[$s]=$(printf "%s" "${RATE[$s]:-}" | grep -E '^[0-9.]+$' | median)
    U[$s]=$(printf "%s" "${CPU[$s]:-}" | grep -E '^[0-9.]+$' | median)
    printf "   %-13s %10s handshakes/s   server us/handshake %s\n" $s "${R[$s]}" "${U[$s]}"
  done
  echo "   greenhub / nginx: handshakes/s $(ratio ${R[greenhub-tls]} ${R[nginx-tls]}), server CPU per handshake $(ratio ${U[greenhub-tls]} ${U[nginx-tls]})"
}

# ---------------------------------------------------------------- http module
# greenhub.http next to the hand-written hello, raw C, nginx (return 200),
# nginx + lua-nginx-module (content_by_lua_block), gevent.pywsgi and
# eventlet.wsgi: one run each (wrk -t1 -c100), server on CPU 0; then the
# client loop against socket.http.
httpmod() {
  local d; d=$(mktemp -d)
  local servers=${HTTPMOD_SERVERS:-"raw hello_raw http.serve nginx nginx-lua gevent.pywsgi eventlet.wsgi"}
  echo "== greenhub.http: hello world, wrk -t1 -c100 -d${DUR}s, servers interleaved, median of $RUNS (req/s, server us/req, p99)"
  declare -A RPS=() CPU=() P99=() ROUND=()
  local PAIRED=""
  for _ in $(seq $RUNS); do
    for s in $servers; do
      case $s in
        raw) taskset -c 0 $B/raw_http $PORT & ;;
        hello_raw) taskset -c 0 lua5.4 examples/hello_raw.lua $PORT 2>$d/$s.err & ;;
        http.serve) taskset -c 0 lua5.4 examples/hello_http.lua $PORT 2>$d/$s.err & ;;
        nginx|nginx-lua)
          command -v nginx >/dev/null || continue
          local loc='return 200 "Hello, World!";' mods=""
          if [ $s = nginx-lua ]; then
            [ -e /usr/lib/nginx/modules/ngx_http_lua_module.so ] || continue
            mods="load_module /usr/lib/nginx/modules/ndk_http_module.so; load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;"
            loc='content_by_lua_block { ngx.print("Hello, World!") }'
          fi
          mkdir -p $d/$s
          cat > $d/$s/nginx.conf <<NGX
$mods
worker_processes 1; daemon off; master_process off;
error_log $d/$s/error.log; pid $d/$s/nginx.pid;
events { worker_connections 4096; }
http { access_log off; server { listen 127.0.0.1:$PORT; location / { default_type text/plain; $loc } } }
NGX
          taskset -c 0 nginx -c $d/$s/nginx.conf -p $d/$s 2>/dev/null & ;;
        gevent.pywsgi) have_py gevent || continue
          taskset -c 0 $PY bench/peers/wsgi_server.py gevent $PORT 2>/dev/null & ;;
        eventlet.wsgi) have_py eventlet || continue
          taskset -c 0 $PY bench/peers/wsgi_server.py eventlet $PORT 2>/dev/null & ;;
      esac
      SPID=$!
      for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
      if ! kill -0 $SPID 2>/dev/null; then echo "   $s did not start (port $PORT): run left out"; stop_server; continue; fi
      local c0; c0=$(cpu_ticks $SPID)
      local out; out=$(taskset -c 1 wrk -t1 -c100 -d${DUR}s --latency http://127.0.0.1:$PORT/ 2>&1)
      if ! kill -0 $SPID 2>/dev/null; then
        wait $SPID; echo "   $s died during its run (port $PORT, status $?): run left out"
        [ -s $d/$s.err ] && tail -5 $d/$s.err | sed 's/^/     /'
        stop_server; continue
      fi
      local c1; c1=$(cpu_ticks $SPID)
      stop_server
      local rps total p99 cpu
      rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
      total=$(echo "$out" | awk '/requests in/ {print $1}')
      p99=$(echo "$out" | awk '$1=="99%" {print $2}')
      cpu=$(awk -v a=$c0 -v b=$c1 -v n=$total -v hz=$(getconf CLK_TCK) 'BEGIN { if (n > 0) printf "%.2f", (b - a) / hz * 1e6 / n }')
      RPS[$s]="${RPS[$s]:-}$rps"$'\n'; CPU[$s]="${CPU[$s]:-}$cpu"$'\n'; P99[$s]="${P99[$s]:-} $p99"
      ROUND[$s]=$cpu
    done
    # the two measured in the same round (minutes apart at most): a ratio
    # the machine's slower and faster phases move less than the medians
    [ -n "${ROUND[http.serve]:-}" ] && [ -n "${ROUND[nginx-lua]:-}" ] &&
      PAIRED="$PAIRED $(ratio ${ROUND[http.serve]} ${ROUND[nginx-lua]})"
    ROUND=()
  done
  for s in $servers; do
    case $s in
      nginx|nginx-lua) command -v nginx >/dev/null || { echo "   $s: nginx not installed"; continue; } ;;
    esac
    [ -n "${RPS[$s]:-}" ] || { echo "   $s: not installed"; continue; }
    local rps cpu
    rps=$(printf "%s" "${RPS[$s]}" | grep -E '^[0-9.]+$' | median)
    cpu=$(printf "%s" "${CPU[$s]}" | grep -E '^[0-9.]+$' | median)
    eval "R_${s//[.-]/_}=$rps; C_${s//[.-]/_}=$cpu"
    printf "   %-14s %10s req/s %8s us/req  p99 %s\n" $s "$rps" "$cpu" "${P99[$s]}"
  done
  echo "   http.serve CPU/req vs nginx-lua: $(ratio ${C_http_serve:-0} ${C_nginx_lua:-0}) (target <= 1.0)   vs hello_raw: $(ratio ${C_http_serve:-0} ${C_hello_raw:-0}) (target <= 1.33)   req/s vs nginx-lua: $(ratio ${R_http_serve:-0} ${R_nginx_lua:-0}) (target >= 0.9)"
  [ -n "$PAIRED" ] && echo "   http.serve CPU/req vs nginx-lua round by round:$PAIRED (median $(echo $PAIRED | tr ' ' '\n' | median))"
  rm -rf $d
  echo "== greenhub.http client: 1,000 keep-alive GETs vs socket.http under gh.patch() (a connection each), the two alternating in rounds (client on CPU 1), median of $RUNS"
  echo "   against raw C (bench/raw_http.c: the client's own cost) and hello_raw (a greenhub server);"
  echo "   floor: a blocking C client's GET (bench/http_get.c), and the speedup a client at that floor would reach;"
  echo "   event-loop floor: the same C loop non-blocking with epoll_wait (the system calls a green client makes)"
  for srv in raw hello_raw; do
    if [ $srv = raw ]; then taskset -c 0 $B/raw_http $PORT & else taskset -c 0 lua5.4 examples/hello_raw.lua $PORT 2>/dev/null & fi
    SPID=$!
    for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
    local sp="" us="" theirs="" floor="" efloor=""
    for _ in $(seq $RUNS); do
      local line; line=$(taskset -c 1 lua5.4 bench/http_client_bench.lua http://127.0.0.1:$PORT/ 1000)
      sp="$sp$(echo "$line" | sed -n 's/.*speedup \([0-9.]*\)x.*/\1/p')"$'\n'
      us="$us$(echo "$line" | awk '{printf "%.2f", $2 / 1000 * 1e6}')"$'\n'
      theirs="$theirs$(echo "$line" | awk '{printf "%.2f", $5 / 1000 * 1e6}')"$'\n'
      floor="$floor$(taskset -c 1 $B/http_get $PORT 5000)"$'\n'
      efloor="$efloor$(taskset -c 1 $B/http_get $PORT 5000 epoll)"$'\n'
    done
    efloor=$(printf "%s" "$efloor" | median)
    us=$(printf "%s" "$us" | median); theirs=$(printf "%s" "$theirs" | median); floor=$(printf "%s" "$floor" | median)
    printf "   %-9s greenhub.http %6s us/GET  socket.http %6s us  speedup %sx (target >= 3x)  floor %s us: at best %sx  event-loop floor %s us: at best %sx\n" \
      $srv "$us" "$theirs" "$(printf "%s" "$sp" | grep -E '^[0-9.]+$' | median)" "$floor" "$(ratio "$theirs" "$floor")" \
      "$efloor" "$(ratio "$theirs" "$efloor")"
    stop_server
  done
}

# ---------------------------------------------------------------- httpinstr
# The same hello servers counted instead of timed: user-space instructions
# per request under callgrind (wrk -c10 for 6 s, an idle run of the same
# server subtracted). No noise from the machine's phases, but only the
# user part of the CPU (the kernel's recv and send are the same for all).
httpinstr() {
  command -v valgrind >/dev/null || { echo "== httpinstr: valgrind missing"; return; }
  local d; d=$(mktemp -d)
  local servers=${HTTPINSTR_SERVERS:-"raw hello_raw http.serve nginx-lua"}
  echo "== greenhub.http: user-space instructions per hello request (callgrind, wrk -t1 -c10 -d6s, idle run subtracted)"
  declare -A INS=()
  for s in $servers; do
    local tot=() n=0
    for load in 0 1; do
      local vg="valgrind --tool=callgrind --callgrind-out-file=$d/cg.out"
      case $s in
        raw) taskset -c 0 $vg $B/raw_http $PORT 2>/dev/null & ;;
        hello_raw) taskset -c 0 $vg lua5.4 examples/hello_raw.lua $PORT 2>/dev/null & ;;
        http.serve) taskset -c 0 $vg lua5.4 examples/hello_http.lua $PORT 2>/dev/null & ;;
        nginx-lua)
          [ -e /usr/lib/nginx/modules/ngx_http_lua_module.so ] || { echo "   nginx-lua: not installed"; continue 2; }
          mkdir -p $d/ng
          cat > $d/ng/nginx.conf <<NGX
load_module /usr/lib/nginx/modules/ndk_http_module.so; load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;
worker_processes 1; daemon off; master_process off;
error_log $d/ng/error.log; pid $d/ng/nginx.pid;
events { worker_connections 4096; }
http { access_log off; server { listen 127.0.0.1:$PORT; location / { default_type text/plain; content_by_lua_block { ngx.print("Hello, World!") } } } }
NGX
          taskset -c 0 $vg --smc-check=all nginx -c $d/ng/nginx.conf -p $d/ng 2>/dev/null & ;;
      esac
      SPID=$!
      for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
      sleep 1
      [ $load = 1 ] && n=$(taskset -c 1 wrk -t1 -c10 -d6s http://127.0.0.1:$PORT/ | awk '/requests in/ {print $1}')
      kill -INT $SPID 2>/dev/null; sleep 1; kill -QUIT $SPID 2>/dev/null; sleep 2; kill $SPID 2>/dev/null; wait $SPID 2>/dev/null
      tot[$load]=$(callgrind_annotate $d/cg.out 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",","",$1); print $1}')
      rm -f $d/cg.out
      PORT=$((PORT + 1))
    done
    if [ -n "${tot[0]:-}" ] && [ -n "${tot[1]:-}" ] && [ "${n:-0}" -gt 0 ]; then
      INS[$s]=$(( (tot[1] - tot[0]) / n ))
      printf "   %-12s %8d instructions/request  (%d requests)\n" $s ${INS[$s]} $n
    else
      echo "   $s: no figure (did not start or answer under valgrind)"
    fi
  done
  [ -n "${INS[http.serve]:-}" ] && [ -n "${INS[nginx-lua]:-}" ] &&
    echo "   http.serve / nginx-lua: $(ratio ${INS[http.serve]} ${INS[nginx-lua]})   http.serve / hello_raw: $(ratio ${INS[http.serve]} ${INS[hello_raw]:-0})"
  rm -rf $d
}

# ---------------------------------------------------------------- RESP
# redis-benchmark against redis-server and a small RESP server on greenhub
# (bench/resp_server.lua), unpipelined and with -P 16, with and without
# send coalescing; plus syscalls per pipelined batch (strace -c).
resp() {
  command -v redis-benchmark >/dev/null && command -v redis-server >/dev/null || { echo "== resp: redis-tools/redis-server missing"; return; }
  local N=${RESP_N:-300000}
  for P in 1 16; do
    echo "== RESP SET+GET, redis-benchmark -c 50 -P $P -n $N (requests/s and server us/request, median of $RUNS)"
    local base="" basecpu=""
    for s in redis greenhub greenhub-coalesce; do
      local vals="" cpu=""
      for _ in $(seq $RUNS); do
        case $s in
          redis) taskset -c 0 redis-server --port $PORT --save "" --appendonly no >/dev/null 2>&1 & ;;
          greenhub) taskset -c 0 lua5.4 bench/resp_server.lua $PORT 2>/dev/null & ;;
          greenhub-coalesce) taskset -c 0 lua5.4 bench/resp_server.lua $PORT coalesce 2>/dev/null & ;;
        esac
        SPID=$!
        for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
        local c0; c0=$(cpu_ticks $SPID)
        local out; out=$(taskset -c 1 redis-benchmark -p $PORT -c 50 -t set,get -n $N -P $P --csv 2>/dev/null)
        local c1; c1=$(cpu_ticks $SPID)
        stop_server
        local rps; rps=$(echo "$out" | awk -F'","' '/^"(SET|GET)"/ {gsub(/"/,"",$2); s+=$2; n++} END {if (n) printf "%.0f", s/n}')
        vals="$vals$rps"$'\n'
        cpu="$cpu$(awk -v a=$c0 -v b=$c1 -v n=$((2 * N)) -v hz=$(getconf CLK_TCK) 'BEGIN { printf "%.2f", (b - a) / hz * 1e6 / n }')"$'\n'
      done
      local m mc
      m=$(printf "%s" "$vals" | grep -E '^[0-9.]+$' | median)
      mc=$(printf "%s" "$cpu" | grep -E '^[0-9.]+$' | median)
      [ -z "$base" ] && base=$m && basecpu=$mc
      printf "   %-18s %10s req/s  ratio %s   server us/req %s  (CPU / redis %s)\n" $s "$m" "$(ratio "$m" "$base")" "$mc" "$(ratio "$mc" "$basecpu")"
    done
  done
  echo "== RESP -P 16: syscalls per pipelined batch of 16 (strace -c, 40000 requests)"
  for s in greenhub greenhub-coalesce; do
    local mode=""; [ $s = greenhub-coalesce ] && mode=coalesce
    strace -c -f -o $B/strace-resp.txt taskset -c 0 lua5.4 bench/resp_server.lua $PORT $mode 2>/dev/null &
    local tp=$!
    for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
    taskset -c 1 redis-benchmark -p $PORT -c 50 -t set -n 40000 -P 16 -q >/dev/null 2>&1
    pkill -f "resp_server.lua $PORT" 2>/dev/null; wait $tp 2>/dev/null
    local sends recvs
    sends=$(awk '$NF ~ /^(sendto|write|sendmsg)$/ {s+=$4} END {print s+0}' $B/strace-resp.txt)
    recvs=$(awk '$NF ~ /^(recvfrom|read|recvmsg)$/ {s+=$4} END {print s+0}' $B/strace-resp.txt)
    printf "   %-18s sends/batch %s  recvs/batch %s\n" $s "$(awk -v a=$sends 'BEGIN {printf "%.2f", a / (40000 / 16)}')" "$(awk -v a=$recvs 'BEGIN {printf "%.2f", a / (40000 / 16)}')"
    PORT=$((PORT + 1))
  done
}

# ---------------------------------------------------------------- websocket
ws_bench() {
  echo "== WebSocket echo, 64 B text messages, 100 connections, ${DUR}s, servers interleaved, median of $RUNS"
  echo "   (load: bench/ws_client.c; greenhub's raw TCP echo with bench/echo_client.c, per round trip)"
  declare -A RATE=() CPU=()
  for _ in $(seq $RUNS); do
    for s in greenhub-ws node-ws python-websockets greenhub-tcp-echo; do
      local client=$B/ws_client
      case $s in
        greenhub-ws) taskset -c 0 lua5.4 bench/ws_server.lua $PORT 2>/dev/null & ;;
        node-ws) [ -d /usr/share/nodejs/ws ] || continue
          NODE_PATH=/usr/share/nodejs taskset -c 0 node bench/peers/ws_node_server.js $PORT 2>/dev/null & ;;
        python-websockets) have_py websockets || continue
          taskset -c 0 $PY bench/peers/ws_py_server.py $PORT 2>/dev/null & ;;
        greenhub-tcp-echo) client=$B/echo_client
          taskset -c 0 lua5.4 examples/echo.lua $PORT >/dev/null 2>&1 & ;;
      esac
      SPID=$!
      for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
      local c0; c0=$(cpu_ticks $SPID)
      local r; r=$(taskset -c 1 $client $PORT 100 $DUR)
      local c1; c1=$(cpu_ticks $SPID)
      stop_server
      RATE[$s]+="$r"$'\n'
      CPU[$s]+="$(awk -v a=$c0 -v b=$c1 -v r=$r -v d=$DUR -v hz=$(getconf CLK_TCK) 'BEGIN { if (r > 0) printf "%.2f", (b - a) / hz * 1e6 / (r * d) }')"$'\n'
    done
  done
  declare -A MR=() MC=()
  printf "   %-20s %12s %16s\n" server "messages/s" "server us/msg"
  for s in greenhub-ws node-ws python-websockets greenhub-tcp-echo; do
    MR[$s]=$(printf "%s" "${RATE[$s]:-}" | grep -E '^[0-9.]+$' | median)
    MC[$s]=$(printf "%s" "${CPU[$s]:-}" | grep -E '^[0-9.]+$' | median)
    printf "   %-20s %12s %16s\n" $s "${MR[$s]}" "${MC[$s]}"
  done
  echo "   greenhub CPU/msg vs node ws: $(ratio "${MC[greenhub-ws]}" "${MC[node-ws]}") (target <= 0.67)   vs python websockets: $(ratio "${MC[greenhub-ws]}" "${MC[python-websockets]}")"
  echo "   greenhub CPU/msg vs its raw TCP echo per round trip: $(ratio "${MC[greenhub-ws]}" "${MC[greenhub-tcp-echo]}") (target <= 1.25)"
}

# ---------------------------------------------------------------- prefork
# wrk and the servers share both cores here, so the figures that mean
# something are server CPU per request (all worker processes summed) and the
# balance: each worker's share of the requests (greenhub: counted by the
# workers; nginx: its workers' CPU shares).
tree_ticks() { # supervisor pid -> "total child1 child2 ..." (CPU ticks)
  local t=0 c kids=""
  for c in $1 $(pgrep -P $1); do
    local v; v=$(awk '{print $14 + $15}' /proc/$c/stat 2>/dev/null || echo 0)
    t=$((t + v))
    [ $c != $1 ] && kids="$kids $v"
  done
  echo "$t$kids"
}
prefork_bench() {
  local d; d=$(mktemp -d)
  echo "== prefork: HTTP hello, wrk -t2 -c100 -d${DUR}s on the same 2 cores, median of $RUNS"
  printf "   %-22s %10s %16s   %s\n" server "req/s" "server us/req" "balance (share per worker)"
  for s in greenhub-1 greenhub-2 nginx-1 nginx-2; do
    local rps="" cpu="" bal=""
    for _ in $(seq $RUNS); do
      local n=${s##*-}
      case $s in
        greenhub-*) lua5.4 bench/prefork_server.lua $PORT $n 2>$d/err & ;;
        nginx-*) command -v nginx >/dev/null || continue
          mkdir -p $d/$s
          cat > $d/$s/nginx.conf <<NGX
worker_processes $n; daemon off;
error_log $d/$s/error.log; pid $d/$s/nginx.pid;
events { worker_connections 4096; }
http { access_log off; server { listen 127.0.0.1:$PORT reuseport; location / { default_type text/plain; return 200 "Hello, World!"; } } }
NGX
          nginx -c $d/$s/nginx.conf -p $d/$s 2>/dev/null & ;;
      esac
      SPID=$!
      for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
      sleep 0.3
      local a0 t0 c0; a0=$(tree_ticks $SPID); t0=${a0%% *}; c0=${a0#* }
      local out; out=$(wrk -t2 -c100 -d${DUR}s http://127.0.0.1:$PORT/ 2>&1)
      local a1 t1 c1; a1=$(tree_ticks $SPID); t1=${a1%% *}; c1=${a1#* }
      local total; total=$(echo "$out" | awk '/requests in/ {print $1}')
      rps="$rps$(echo "$out" | awk '/Requests\/sec/ {print $2}')"$'\n'
      cpu="$cpu$(awk -v a=$t0 -v b=$t1 -v n=$total -v hz=$(getconf CLK_TCK) 'BEGIN { if (n > 0) printf "%.2f", (b - a) / hz * 1e6 / n }')"$'\n'
      kill -TERM $SPID 2>/dev/null; wait $SPID 2>/dev/null
      case $s in
        greenhub-*) bal=$(awk '/^served/ {v[NR]=$2; t+=$2} END {for (i in v) printf "%.2f ", v[i]/t}' $d/err) ;;
        nginx-*) bal=$(awk -v a="$c0" -v b="$c1" 'BEGIN {n=split(a,x," "); split(b,y," "); for (i=1;i<=n;i++) {d[i]=y[i]-x[i]; t+=d[i]} for (i=1;i<=n;i++) if (t>0) printf "%.2f ", d[i]/t}') ;;
      esac
      PORT=$((PORT + 1))
    done
    printf "   %-22s %10s %16s   %s\n" $s "$(printf "%s" "$rps" | grep -E '^[0-9.]+$' | median)" "$(printf "%s" "$cpu" | grep -E '^[0-9.]+$' | median)" "$bal"
  done
  rm -rf $d
}

# ---------------------------------------------------------------- files
fs_bench() {
  local f; f=$(mktemp)
  head -c 268435456 /dev/urandom > $f
  echo "== gh.fs: reading a 256 MiB file (page cache warm), a 1 ms ticker running, median of $RUNS"
  cat $f > /dev/null
  declare -A MB=() GAP=()
  for _ in $(seq $RUNS); do
    for how in gh io ghchunk iochunk; do
      local a b
      read -r a b < <(taskset -c 0 lua5.4 bench/fs.lua $how $f)
      MB[$how]+="$a"$'\n'; GAP[$how]+="$b"$'\n'
    done
  done
  declare -A M=() G=()
  for how in gh io ghchunk iochunk; do
    M[$how]=$(printf "%s" "${MB[$how]}" | median); G[$how]=$(printf "%s" "${GAP[$how]}" | median)
  done
  printf "   %-34s %8s MB/s   worst ticker gap %8s ms\n" "gh.fs.readfile (whole)" "${M[gh]}" "${G[gh]}" \
    "io read(\"a\") (whole)" "${M[io]}" "${G[io]}" "gh.fs.open, read(1 MiB) pieces" "${M[ghchunk]}" "${G[ghchunk]}" \
    "io.open, read(1 MiB) pieces" "${M[iochunk]}" "${G[iochunk]}"
  echo "   throughput gh.fs / io: whole $(ratio "${M[gh]}" "${M[io]}"), in pieces $(ratio "${M[ghchunk]}" "${M[iochunk]}") (target >= 0.9)"
  echo "   gh.fs's gap: a whole read copies the buffer into one Lua string on the hub (Lua 5.4 has no external strings); in pieces, page-cache reads run on the hub in 128 KiB steps with a yield between, and the gap is one 1 MiB string's creation (target 5 ms)"
  rm -f $f
}

static_bench() {
  local d; d=$(mktemp -d)
  head -c 4096 /dev/urandom > $d/f4k.bin
  echo "== static file, 4 KiB, wrk -t1 -c100 -d${DUR}s, servers interleaved, median of $RUNS (req/s, server us/req)"
  declare -A RPS=() CPU=()
  for _ in $(seq $RUNS); do
    for s in http.static nginx; do
      case $s in
        http.static) taskset -c 0 lua5.4 bench/static_server.lua $PORT $d 2>/dev/null & ;;
        nginx) command -v nginx >/dev/null || continue
          mkdir -p $d/ngx
          cat > $d/ngx/nginx.conf <<NGX
worker_processes 1; daemon off; master_process off;
error_log $d/ngx/error.log; pid $d/ngx/nginx.pid;
events { worker_connections 4096; }
http { access_log off; sendfile on; server { listen 127.0.0.1:$PORT; root $d; } }
NGX
          taskset -c 0 nginx -c $d/ngx/nginx.conf -p $d/ngx 2>/dev/null & ;;
      esac
      SPID=$!
      for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
      local c0; c0=$(cpu_ticks $SPID)
      local out; out=$(taskset -c 1 wrk -t1 -c100 -d${DUR}s http://127.0.0.1:$PORT/f4k.bin 2>&1)
      local c1; c1=$(cpu_ticks $SPID)
      stop_server
      local total; total=$(echo "$out" | awk '/requests in/ {print $1}')
      RPS[$s]+="$(echo "$out" | awk '/Requests\/sec/ {print $2}')"$'\n'
      CPU[$s]+="$(awk -v a=$c0 -v b=$c1 -v n=$total -v hz=$(getconf CLK_TCK) 'BEGIN { if (n > 0) printf "%.2f", (b - a) / hz * 1e6 / n }')"$'\n'
    done
  done
  local gr gc nr nc
  gr=$(printf "%s" "${RPS[http.static]:-}" | grep -E '^[0-9.]+$' | median); gc=$(printf "%s" "${CPU[http.static]:-}" | grep -E '^[0-9.]+$' | median)
  nr=$(printf "%s" "${RPS[nginx]:-}" | grep -E '^[0-9.]+$' | median); nc=$(printf "%s" "${CPU[nginx]:-}" | grep -E '^[0-9.]+$' | median)
  printf "   %-12s %10s req/s %8s us/req\n" http.static "$gr" "$gc" nginx "$nr" "$nc"
  echo "   http.static req/s / nginx: $(ratio "$gr" "$nr") (target >= 0.8)   CPU/req: $(ratio "$gc" "$nc")"
  rm -rf $d
}

# ---------------------------------------------------------------- pg
pg_bench() {
  echo "== pg: 10,000 'SELECT \$1::int' round trips over the Unix socket (server on CPU 0, client on CPU 1; s, lower is better)"
  if [ ! -f /usr/include/postgresql/libpq-fe.h ] || [ ! -f build/greenhub/pgcore.so ]; then echo "   skipped: needs libpq-dev and postgresql"; return; fi
  cc -O2 -I/usr/include/postgresql -o $B/pg_loop bench/pg_loop.c -lpq || return
  local dir; dir=$(lua5.4 bench/pg_server.lua start ${PG_CPUS:-0}) || { echo "   skipped: cannot start PostgreSQL"; return; }
  local ci="host=$dir user=postgres dbname=postgres" N=10000
  declare -A T=()
  for _ in $(seq $RUNS); do
    T[libpq_C_1]+="$(taskset -c 1 $B/pg_loop "$ci" $N)"$'\n'
    T[libpq_C_prepared_1]+="$(taskset -c 1 $B/pg_loop "$ci" $N prepared)"$'\n'
    T[greenhub_1]+="$(taskset -c 1 lua5.4 bench/pg_bench.lua "$ci" $N 1)"$'\n'
    T[greenhub_10]+="$(taskset -c 1 lua5.4 bench/pg_bench.lua "$ci" $N 10)"$'\n'
    if have_py psycopg2; then
      T[psycopg2_1]+="$(taskset -c 1 $PY bench/peers/pg_py.py plain "$ci" $N 1)"$'\n'
      have_py gevent && T[gevent_10]+="$(taskset -c 1 $PY bench/peers/pg_py.py gevent "$ci" $N 10)"$'\n'
      have_py eventlet && T[eventlet_10]+="$(taskset -c 1 $PY bench/peers/pg_py.py eventlet "$ci" $N 10)"$'\n'
    fi
  done
  lua5.4 bench/pg_server.lua stop "$dir"
  declare -A M=()
  for k in libpq_C_1 libpq_C_prepared_1 greenhub_1 greenhub_10 psycopg2_1 gevent_10 eventlet_10; do
    M[$k]=$(printf "%s" "${T[$k]:-}" | grep -E '^[0-9.]+$' | median)
    printf "   %-22s %8s s  (%s us per query)\n" "${k//_/ } conn" "${M[$k]}" "$(awk -v t="${M[$k]}" -v n=$N 'BEGIN { if (t+0 > 0) printf "%.1f", t / n * 1e6; else print "n/a" }')"
  done
  echo "   greenhub 1 conn rate / libpq C loop: $(ratio ${M[libpq_C_1]} ${M[greenhub_1]}) (target >= 0.9; greenhub prepares on first use, the C loop with PQexecParams does not)   / C loop on a prepared statement: $(ratio ${M[libpq_C_prepared_1]} ${M[greenhub_1]})"
  echo "   greenhub 10 conns / 1 conn: $(ratio ${M[greenhub_1]} ${M[greenhub_10]})x (target >= 3)"
  echo "   greenhub vs psycopg2 (1 conn): $(ratio ${M[psycopg2_1]:-0} ${M[greenhub_1]})x   vs gevent (10): $(ratio ${M[gevent_10]:-0} ${M[greenhub_10]})x   vs eventlet (10): $(ratio ${M[eventlet_10]:-0} ${M[greenhub_10]})x"
}

# ---------------------------------------------------------------- scope
scope_bench() {
  echo "== gh.scope: a blocking call inside two scopes vs outside any (median of $RUNS, interleaved; target <= 1.05)"
  local sp="" ss=""
  for _ in $(seq $RUNS); do
    sp+="$(taskset -c 0 lua5.4 bench/scope.lua switch plain)"$'\n'
    ss+="$(taskset -c 0 lua5.4 bench/scope.lua switch scope)"$'\n'
  done
  local mp ms
  mp=$(printf "%s" "$sp" | grep -E '^[0-9.]+$' | median); ms=$(printf "%s" "$ss" | grep -E '^[0-9.]+$' | median)
  echo "   switch (queue ping-pong, every switch parks): plain $mp ns, in scope $ms ns: $(ratio "$ms" "$mp")"
  declare -A RT=() CPU=()
  for _ in $(seq $RUNS); do
    for m in plain scope; do
      echo_round scope-$m || continue
      RT[$m]+="$ROUND_RT"$'\n'
      CPU[$m]+="$ROUND_CPU"$'\n'
    done
  done
  local rp rs cp cs
  rp=$(printf "%s" "${RT[plain]}" | grep -E '^[0-9.]+$' | median); rs=$(printf "%s" "${RT[scope]}" | grep -E '^[0-9.]+$' | median)
  cp=$(printf "%s" "${CPU[plain]}" | grep -E '^[0-9.]+$' | median); cs=$(printf "%s" "${CPU[scope]}" | grep -E '^[0-9.]+$' | median)
  echo "   echo (100 connections, 64 B): plain $rp trips/s at $cp us/trip, in scope $rs trips/s at $cs us/trip: CPU $(ratio "$cs" "$cp"), rate $(ratio "$rs" "$rp")"
}

case $what in
  core) core ;;
  pg) pg_bench ;;
  scope) scope_bench ;;
  static) static_bench ;;
  fs) fs_bench ;;
  prefork) prefork_bench ;;
  ws) ws_bench ;;
  http) http 100; http 1000 ;;
  echo) echo_bench ;;
  syscalls) syscalls ;;
  patch) http_client ;;
  tls) tls_bench ;;
  resp) resp ;;
  httpmod) httpmod ;;
  httpinstr) httpinstr ;;
  all) core; http 100; http 1000; echo_bench; syscalls; http_client; tls_bench; resp; httpmod; httpinstr; ws_bench; prefork_bench; fs_bench; static_bench; pg_bench; scope_bench ;;
esac
