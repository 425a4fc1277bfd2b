#!/usr/bin/python3
"""uvloop_echo -- the uvloop peer for the echo benchmark (bench/echo_bench.sh).

The fastest idiomatic uvloop echo server: a Protocol whose data_received
hands each chunk straight back to transport.write (as uvloop's own echo
benchmark does), no streams layer in between.  uvloop turns TCP_NODELAY on
for TCP transports by itself; it is set again here so the peer does not
depend on that default.

Run it with /usr/bin/python3, which is where Debian's python3-uvloop lives.
Usage: uvloop_echo.py PORT   (binds 127.0.0.1, prints "ready" once listening)
"""
import asyncio
import socket
import sys

import uvloop


class EchoProtocol(asyncio.Protocol):
    __slots__ = ("transport",)

    def connection_made(self, transport):
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass

    def data_received(self, data):
        self.transport.write(data)

    def connection_lost(self, exc):
        self.transport = None


async def main(port):
    loop = asyncio.get_running_loop()
    server = await loop.create_server(EchoProtocol, "127.0.0.1", port, backlog=4096)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8888
    uvloop.install()
    try:
        asyncio.run(main(port))
    except KeyboardInterrupt:
        pass
