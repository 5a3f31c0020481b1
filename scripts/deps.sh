#!/bin/sh
# Install (as root, with apt-get) or name the Debian packages a target needs.
#   sh scripts/deps.sh test|demo|bench
set -e
need_test="lua5.4 liblua5.4-dev lua-busted luarocks lua-socket lua-sec openssl libssl-dev pkg-config gcc make redis-server lua-redis python3 curl apache2-utils node-ws python3-websockets nginx libpq-dev postgresql"
need_demo="lua5.4 liblua5.4-dev libssl-dev pkg-config gcc make"
need_bench="valgrind lua5.4 liblua5.4-dev libssl-dev pkg-config gcc make lua-cqueues lua-luv lua-socket lua-sec openssl nginx-light wrk strace python3-eventlet python3-gevent util-linux procps redis-server redis-tools libnginx-mod-http-lua node-ws python3-websockets libpq-dev postgresql python3-psycopg2"
case "${1:-test}" in
  test) pkgs=$need_test ;;
  demo) pkgs=$need_demo ;;
  bench) pkgs=$need_bench ;;
  *) echo "usage: $0 test|demo|bench" >&2; exit 2 ;;
esac
missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "greenhub: installing:$missing" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q $missing >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1; apt-get install -y -q $missing >/dev/null; }
else
  echo "greenhub: missing Debian packages:$missing" >&2
  echo "install them with: sudo apt-get install$missing" >&2
  exit 1
fi
