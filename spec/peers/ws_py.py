# Python `websockets` as a client of greenhub's server ("client URL") or as
# an echo server for greenhub's client ("server"). spec/websocket_spec.lua.
import asyncio, sys
import websockets

def say(s):
    print(s, flush=True)

async def client(url):
    async with websockets.connect(url, subprotocols=["chat"], max_size=2**21) as ws:
        say(("ok" if ws.subprotocol == "chat" else "fail") + " protocol %s" % ws.subprotocol)
        for n in (0, 125, 126, 65535, 65536, 1 << 20):
            t = "é" * (n // 2)
            await ws.send(t)
            r = await ws.recv()
            say(("ok" if r == t else "fail") + " text %d" % n)
            b = bytes([n % 256]) * n
            await ws.send(b)
            r = await ws.recv()
            say(("ok" if r == b else "fail") + " binary %d" % n)
        await ws.send(["frag", "ment", "ed ✓"])  # a fragmented message
        r = await ws.recv()
        say(("ok" if r == "fragmented ✓" else "fail") + " fragmented %s" % r)
        pong = await ws.ping(b"py ping")
        await asyncio.wait_for(pong, 5)
        say("ok pong")
        await ws.close(4003, "py bye")
        say("ok close %d" % ws.close_code)

async def server():
    async def echo(ws, path=None):
        try:
            async for m in ws:
                if m == "fragment please":
                    await ws.send(["un", "deux", "trois"])
                elif isinstance(m, str) and m.startswith("close "):
                    _, code, reason = m.split(" ", 2)
                    await ws.close(int(code), reason)
                else:
                    await ws.send(m)
        except websockets.ConnectionClosed:
            pass
        say("closed %s %s" % (ws.close_code, ws.close_reason))
    async with websockets.serve(echo, "127.0.0.1", 0, subprotocols=["chat"], max_size=2**21) as srv:
        say("port %d" % srv.sockets[0].getsockname()[1])
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.read)

if sys.argv[1] == "client":
    asyncio.run(client(sys.argv[2]))
    say("done")
else:
    asyncio.run(server())
