#!/usr/bin/python3
"""Real clients against examples/chat_server, checked byte for byte.

    chat_test.py CHAT_SERVER_BINARY        (CORIO_BACKEND picks the backend)

Starts the server on port 0, reads its port and its log from its stdout,
and drives plain socket clients through the whole protocol: every line
reaches every other client unchanged and never its sender, lines sent in
pieces or several at once, a client that never reads (dropped while the
others get everything), a line longer than the limit (that client is told
and disconnected, nobody else notices), a client leaving, and SIGINT (every
client gets the goodbye line, then EOF, and the server exits with status
0; under ASan that also means it leaked nothing).  Then SIGTERM with no
client.

Every wait is for an event (bytes, EOF, a log line, the exit) with the one
generous ceiling WAIT; nothing sleeps in the hope that something happened.
"""
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time

WAIT = 30.0  # the ceiling for every wait, as in tests/lib.sh
GOODBYE = b"server: goodbye\n"
TOO_LONG = b"server: line too long (limit 4096 bytes), goodbye\n"


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


class Server:
    """The server process and the lines of its log (its stdout)."""

    def __init__(self, binary):
        self.proc = subprocess.Popen([binary, "0"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.lines = []
        self.partial = b""
        m = self.wait_line(r"listening on 127\.0\.0\.1:(\d+)$")
        self.port = int(m.group(1))

    def _read_more(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        r, _, _ = select.select([self.proc.stdout], [], [], left)
        if not r:
            return False
        data = os.read(self.proc.stdout.fileno(), 65536)
        if not data:
            return False
        self.partial += data
        *done, self.partial = self.partial.split(b"\n")
        self.lines += [d.decode("utf-8", "replace") for d in done]
        return True

    def wait_line(self, pattern, start=0):
        """The first log line from index start on that matches pattern."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + WAIT
        i = start
        while True:
            while i < len(self.lines):
                m = rx.search(self.lines[i])
                if m:
                    return m
                i += 1
            if not self._read_more(deadline):
                fail("no log line matching %r; log:\n%s" % (pattern, self.log()))

    def log(self):
        return "\n".join(self.lines) + ("\n" + self.partial.decode("utf-8", "replace") if self.partial else "")

    def wait_exit(self):
        deadline = time.monotonic() + WAIT
        while self._read_more(deadline):  # keep its log, up to EOF
            pass
        try:
            return self.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            fail("server still running %g s after the signal; log:\n%s" % (WAIT, self.log()))


class Client:
    def __init__(self, server, rcvbuf=None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(WAIT)
        self.sock.connect(("127.0.0.1", server.port))
        self.name = "127.0.0.1:%d" % self.sock.getsockname()[1]
        self.buf = b""
        # Lines sent before the server has registered us would not reach
        # us: wait until it says so.
        server.wait_line(re.escape(self.name) + r" joined \(\d+ online\)$")

    def send(self, data):
        self.sock.sendall(data)

    def expect(self, want):
        """Read until len(want) bytes are here; they must be exactly want."""
        deadline = time.monotonic() + WAIT
        while len(self.buf) < len(want):
            if time.monotonic() > deadline:
                fail("%s: timed out waiting for %r, have %r" % (self.name, want[:80], self.buf[:80]))
            data = self.sock.recv(1 << 20)
            if not data:
                fail("%s: EOF while waiting for %r, have %r" % (self.name, want[:80], self.buf[:80]))
            self.buf += data
        got, self.buf = self.buf[: len(want)], self.buf[len(want) :]
        if got != want:
            fail("%s: expected %r, got %r" % (self.name, want[:200], got[:200]))

    def read_to_end(self, reset_ok):
        """Everything up to EOF (or a reset, if reset_ok)."""
        deadline = time.monotonic() + WAIT
        while True:
            if time.monotonic() > deadline:
                fail("%s: no EOF within %g s" % (self.name, WAIT))
            try:
                data = self.sock.recv(1 << 20)
            except ConnectionResetError:
                if not reset_ok:
                    raise
                data = b""
            if not data:
                got, self.buf = self.buf, b""
                return got
            self.buf += data

    def expect_end(self, want, reset_ok=False):
        """Exactly want, then EOF."""
        got = self.read_to_end(reset_ok)
        if got != want:
            fail("%s: expected %r then EOF, got %r" % (self.name, want[:200], got[:200]))

    def close(self):
        self.sock.close()


def main():
    binary = sys.argv[1]
    srv = Server(binary)

    a, b, c = Client(srv), Client(srv), Client(srv)
    everyone = [a, b, c]

    def others(sender):
        return [x for x in everyone if x is not sender]

    # every line to every other client, in turn
    for i in range(30):
        sender = everyone[i % 3]
        line = b"line %d from %s\n" % (i, sender.name.encode())
        sender.send(line)
        for x in others(sender):
            x.expect(line)

    # unchanged: any byte but the newline, and an empty line
    odd = b"\x00\x01 binary \xff\xfe\r\t caf\xc3\xa9 \x1b[31m\r\n"
    a.send(odd)
    b.expect(odd)
    c.expect(odd)
    b.send(b"\n")
    a.expect(b"\n")
    c.expect(b"\n")

    # a line arriving in pieces goes out whole, once it is complete; a line
    # from someone else in between goes out first
    a.send(b"hel")
    b.send(b"x\n")
    a.expect(b"x\n")
    c.expect(b"x\n")
    a.send(b"lo wor")
    a.send(b"ld\n")
    b.expect(b"hello world\n")
    c.expect(b"hello world\n")
    # several lines in one send
    c.send(b"one\ntwo\nthree\n")
    a.expect(b"one\ntwo\nthree\n")
    b.expect(b"one\ntwo\nthree\n")

    # a client that never reads is dropped; the others keep getting every
    # line.  The talker sends in rounds and waits for the readers to have
    # each round, so a reader is never behind by more than a round (far
    # below any limit) however slowly this machine runs it.
    slow = Client(srv, rcvbuf=4096)
    mark = len(srv.lines)
    sent = b""
    for r in range(40):
        burst = b"".join(b"round %02d line %02d %s\n" % (r, i, b"." * 960) for i in range(25))
        a.send(burst)
        b.expect(burst)
        c.expect(burst)
        sent += burst
    srv.wait_line(re.escape(slow.name) + r" dropped: too slow$", mark)
    srv.wait_line(re.escape(slow.name) + r" left \(\d+ online\)$", mark)
    got = slow.read_to_end(reset_ok=True)
    if not sent.startswith(got) or len(got) >= len(sent):
        fail("the slow client got %d bytes that are not a strict prefix of the %d sent" % (len(got), len(sent)))
    slow.close()

    # the longest line allowed: 4096 bytes with its newline
    longest = b"z" * 4095 + b"\n"
    a.send(longest)
    b.expect(longest)
    c.expect(longest)

    # a line over the limit (one byte over, or never ending): that client
    # is told and disconnected, the others see nothing of it
    for data in (b"y" * 4096 + b"\n", b"y" * 20000):
        long = Client(srv)
        mark = len(srv.lines)
        long.send(data)
        long.expect_end(TOO_LONG, reset_ok=True)
        srv.wait_line(re.escape(long.name) + r" dropped: line too long$", mark)
        srv.wait_line(re.escape(long.name) + r" left \(\d+ online\)$", mark)
        long.close()
        a.send(b"still here\n")
        b.expect(b"still here\n")
        c.expect(b"still here\n")

    # a client leaving (its unterminated tail is not a line) and one joining
    d = Client(srv)
    d.send(b"hi from d\n")
    for x in everyone:
        x.expect(b"hi from d\n")
    mark = len(srv.lines)
    d.send(b"no newline")
    d.close()
    srv.wait_line(re.escape(d.name) + r" left \(3 online\)$", mark)
    b.send(b"after d\n")
    a.expect(b"after d\n")
    c.expect(b"after d\n")

    # Ctrl-C: everyone gets exactly the goodbye (so no client ever got its
    # own lines back), then EOF, and the server exits 0
    srv.proc.send_signal(signal.SIGINT)
    for x in everyone:
        x.expect_end(GOODBYE)
        x.close()
    status = srv.wait_exit()
    if status != 0:
        fail("exit status %d after SIGINT; log:\n%s" % (status, srv.log()))
    srv.wait_line(r"SIGINT, saying goodbye to 3 clients$")
    srv.wait_line(r"^chat: stopped$")

    # SIGTERM with nobody online
    srv = Server(binary)
    srv.proc.send_signal(signal.SIGTERM)
    status = srv.wait_exit()
    if status != 0:
        fail("exit status %d after SIGTERM; log:\n%s" % (status, srv.log()))
    srv.wait_line(r"SIGTERM, saying goodbye to 0 clients$")


if __name__ == "__main__":
    main()
