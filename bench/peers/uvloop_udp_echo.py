#!/usr/bin/python3
"""uvloop_udp_echo -- the uvloop peer for the UDP echo benchmark (bench/udp_bench.sh).

The idiomatic fast asyncio datagram server: loop.create_datagram_endpoint
with a DatagramProtocol whose datagram_received hands each datagram
straight back with transport.sendto, on uvloop's loop.

Run it with /usr/bin/python3, which is where Debian's python3-uvloop lives.
Usage: uvloop_udp_echo.py PORT   (binds 127.0.0.1, prints "ready" once bound)
"""
import asyncio
import sys

import uvloop


class Echo(asyncio.DatagramProtocol):
    __slots__ = ("transport",)

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.transport.sendto(data, addr)


async def main(port):
    loop = asyncio.get_running_loop()
    await loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", port))
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 9999
    uvloop.install()
    try:
        asyncio.run(main(port))
    except KeyboardInterrupt:
        pass
