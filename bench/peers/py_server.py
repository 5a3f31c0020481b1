# eventlet / gevent peers: HTTP keep-alive hello or line echo, written the
# natural way (readline per header line).
#   /usr/bin/python3 py_server.py eventlet|gevent PORT http|echo
import sys
impl, port, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
if impl == "eventlet":
    import eventlet
    listen, spawn = eventlet.listen, eventlet.spawn_n
    def serve(sock, h): eventlet.serve(sock, lambda c, a: h(c))
else:
    from gevent.server import StreamServer
    import gevent.socket
    def listen(addr, backlog=4096):
        s = gevent.socket.socket(); s.setsockopt(1, 2, 1); s.bind(addr); s.listen(backlog); return s
    def serve(sock, h): StreamServer(sock, lambda c, a: h(c)).serve_forever()
RESP = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, World!"
def handle(conn):
    f = conn.makefile("rb")
    try:
        while True:
            line = f.readline()
            if not line: break
            if mode == "echo":
                conn.sendall(line); continue
            while True:
                h = f.readline()
                if not h or h in (b"\r\n", b"\n"): break
            conn.sendall(RESP)
    except OSError:
        pass
    conn.close()
serve(listen(("127.0.0.1", port), backlog=4096), handle)
