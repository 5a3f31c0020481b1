# Core benchmarks for eventlet / gevent, same work as bench/core.lua.
#   /usr/bin/python3 bench/core.py <eventlet|gevent> <switch|spawn|sleeps|memory>
import sys, time, random, gc
impl, test = sys.argv[1], sys.argv[2]
if impl == "eventlet":
    import eventlet
    spawn, sleep = eventlet.spawn, eventlet.sleep
    def joinall(ts):
        for t in ts: t.wait()
else:
    import gevent
    spawn, sleep = gevent.spawn, gevent.sleep
    def joinall(ts): gevent.joinall(ts)

N_SWITCH, N_SPAWN, N_SLEEP, N_MEM = 200000, 100000, 100000, 100000
now = time.monotonic

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096

if test == "switch":
    n = N_SWITCH // 2
    def pp():
        for _ in range(n): sleep(0)
    ts = [spawn(pp), spawn(pp)]
    t0 = now(); joinall(ts)
    print((now() - t0) / (2 * n) * 1e9)
elif test == "spawn":
    f = lambda: None
    t0 = now()
    for _ in range(N_SPAWN // 10):
        joinall([spawn(f)])
    print((now() - t0) / (N_SPAWN // 10) * 1e9)
elif test == "spawn_batch":
    f = lambda: None
    t0 = now()
    ts = [spawn(f) for _ in range(N_SPAWN)]
    joinall(ts)
    print((now() - t0) / N_SPAWN * 1e9)
elif test == "sleeps":
    early = [0]; late = [0.0]
    def s(d):
        st = now(); sleep(d); l = now() - st - d
        if l < 0: early[0] += 1
        late[0] = max(late[0], l)
    t0 = now()
    ts = [spawn(s, random.random()) for _ in range(N_SLEEP)]
    joinall(ts)
    print(now() - t0, early[0], late[0])
elif test == "queue":
    n = N_SPAWN
    if impl == "eventlet":
        from eventlet.queue import Queue
    else:
        from gevent.queue import Queue
    q = Queue(1)
    def consumer():
        for _ in range(n): q.get()
    c = spawn(consumer)
    t0 = now()
    for i in range(n): q.put(i)
    joinall([c])
    print((now() - t0) / n * 1e9)
elif test == "event":
    n = N_SPAWN // 2
    if impl == "eventlet":
        from eventlet.event import Event
        class Ev:
            def __init__(self): self.e = Event()
            def send(self): self.e.send(None)
            def wait(self): self.e.wait()
            def reset(self): self.e.reset()
    else:
        from gevent.event import Event as GE
        class Ev:
            def __init__(self): self.e = GE()
            def send(self): self.e.set()
            def wait(self): self.e.wait()
            def reset(self): self.e.clear()
    a, b = Ev(), Ev()
    def peer():
        for _ in range(n):
            a.wait(); a.reset(); b.send()
    p = spawn(peer)
    t0 = now()
    for _ in range(n):
        a.send(); b.wait(); b.reset()
    joinall([p])
    print((now() - t0) / n * 1e9)
elif test == "memory":
    gc.collect(); r0 = rss()
    ts = [spawn(sleep, 3600) for _ in range(N_MEM)]
    sleep(0); gc.collect()
    print((rss() - r0) / N_MEM)
