# psycopg2 peers for greenhub.pg: N "SELECT %s::int" round trips on C
# connections. mode: plain (one connection only), gevent (the wait callback
# psycogreen installs, written out here), eventlet (eventlet's own patch).
#   /usr/bin/python3 bench/peers/pg_py.py MODE DSN N C   -> seconds
import sys, time
mode, dsn, n, conns = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
if mode == "eventlet":
    import eventlet
    eventlet.monkey_patch(psycopg=True)
    spawn = eventlet.spawn
    def joinall(ts):
        for t in ts: t.wait()
elif mode == "gevent":
    import gevent, gevent.socket
    from psycopg2 import extensions
    def wait(conn, timeout=None):
        while True:
            s = conn.poll()
            if s == extensions.POLL_OK: break
            elif s == extensions.POLL_READ: gevent.socket.wait_read(conn.fileno(), timeout=timeout)
            elif s == extensions.POLL_WRITE: gevent.socket.wait_write(conn.fileno(), timeout=timeout)
            else: raise Exception("bad poll state %r" % s)
    extensions.set_wait_callback(wait)
    spawn = gevent.spawn
    joinall = gevent.joinall
import psycopg2
dbs = [psycopg2.connect(dsn) for _ in range(conns)]
per = n // conns
def run(db):
    cur = db.cursor()
    for i in range(1, per + 1):
        cur.execute("SELECT %s::int", (i,))
        if cur.fetchone()[0] != i: raise Exception("bad result")
t0 = time.monotonic()
if conns == 1:
    run(dbs[0])
else:
    joinall([spawn(run, d) for d in dbs])
print("%.6f" % (time.monotonic() - t0))
