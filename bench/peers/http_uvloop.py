#!/usr/bin/python3
"""http_uvloop -- the Python uvloop peer of the HTTP benchmark (bench/http_bench.sh).

Like bench/peers/http_libuv.c it does not parse HTTP: each b"\\r\\n\\r\\n" in
the stream ends one request, which is answered with one fixed response (the
bytes corio's examples/http_hello sends, with a frozen Date).  An asyncio
Protocol on uvloop, no streams layer: keep-alive by default, and a read
holding several pipelined requests is answered with a single write.  The last
three bytes of a read are kept so a terminator split across reads still
counts once.

Run it with /usr/bin/python3, which is where Debian's python3-uvloop lives.
Usage: http_uvloop.py PORT   (binds 127.0.0.1, prints "ready" once listening)
"""
import asyncio
import resource
import socket
import sys

import uvloop

RESP = (b"HTTP/1.1 200 OK\r\n"
        b"Content-Type: text/plain\r\n"
        b"Access-Control-Allow-Origin: *\r\n"
        b"Access-Control-Allow-Methods: GET, POST, PUT, DELETE, OPTIONS\r\n"
        b"Access-Control-Allow-Headers: Content-Type\r\n"
        b"Content-Length: 13\r\n"
        b"Date: Wed, 25 Nov 2026 17:26:24 GMT\r\n"
        b"Server: corio\r\n"
        b"\r\n"
        b"Hello, world!")
TERM = b"\r\n\r\n"


class HelloProtocol(asyncio.Protocol):
    __slots__ = ("transport", "tail")

    def connection_made(self, transport):
        self.transport = transport
        self.tail = b""
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass

    def data_received(self, data):
        if self.tail:
            data = self.tail + data
        n = data.count(TERM)
        # Keep what could be the start of a terminator finished by the next read.
        end = data.rfind(TERM)
        rest = data[end + 4:] if end >= 0 else data
        self.tail = rest[-3:] if rest else b""
        if n == 1:
            self.transport.write(RESP)
        elif n:
            self.transport.write(RESP * n)

    def connection_lost(self, exc):
        self.transport = None


def main():
    if len(sys.argv) != 2:
        print("usage: http_uvloop.py PORT", file=sys.stderr)
        sys.exit(2)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    server = loop.run_until_complete(
        loop.create_server(HelloProtocol, "127.0.0.1", int(sys.argv[1]), backlog=4096))
    print("ready", flush=True)
    try:
        loop.run_forever()
    finally:
        server.close()


if __name__ == "__main__":
    main()
