# gevent.pywsgi / eventlet.wsgi hello world (the frameworks' own HTTP
# servers, as users run them).
#   /usr/bin/python3 wsgi_server.py gevent|eventlet PORT
import sys
impl, port = sys.argv[1], int(sys.argv[2])
BODY = b"Hello, World!"
def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))])
    return [BODY]
if impl == "gevent":
    from gevent.pywsgi import WSGIServer
    WSGIServer(("127.0.0.1", port), app, log=None).serve_forever()
else:
    import eventlet, eventlet.wsgi
    eventlet.wsgi.server(eventlet.listen(("127.0.0.1", port)), app, log_output=False)
