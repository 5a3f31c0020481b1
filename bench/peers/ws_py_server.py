# WebSocket echo server for make bench: Python's websockets (asyncio).
import asyncio, sys
import websockets

async def echo(ws, path=None):
    async for m in ws:
        await ws.send(m)

async def main():
    async with websockets.serve(echo, "127.0.0.1", int(sys.argv[1]), compression=None):
        await asyncio.Future()

asyncio.run(main())
