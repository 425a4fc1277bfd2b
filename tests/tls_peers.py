#!/usr/bin/env python3
"""Python's ssl module and openssl s_client as corio's TLS peers (tests/tls_peers_test.sh).

  tls_peers.py echo PORT CAFILE [tls1_2|tls1_3]
      Client of examples/tls_echo: a short message, then a large random
      payload sent while the echo is read back (non-blocking, both ways
      at once, so neither side's buffers can deadlock); both must come
      back byte for byte.  Ends with close_notify (unwrap), and the server's own
      close_notify must follow (no truncation either way).  Prints the
      protocol version.
  tls_peers.py drop PORT CAFILE
      Handshake, one echo, then close the TCP connection without
      close_notify (what an attacker cutting the connection looks like).
  tls_peers.py server CERT KEY
      An HTTPS server for examples/tls_get, one connection at a time,
      "listening on 127.0.0.1:PORT" once it listens.  By path:
        /cl/N    N bytes (pattern) with Content-Length
        /eof/N   N bytes, no Content-Length, then close_notify and close
        /cut/N   N bytes, no Content-Length, then a TCP close without
                 close_notify (a truncated body)
        other    404 with Content-Length
  tls_peers.py s_client PORT CAFILE VERSION [SESS_OUT|-] [SESS_IN|-]
      Drive `openssl s_client`: one line echoed, then stdin closed.
      Prints "New" or "Reused" and the protocol, from s_client's report.
"""
import os
import pty
import re
import select
import socket
import ssl
import subprocess
import sys
import threading
import time

LIMIT = 30  # the one ceiling for every wait (tests/lib.sh's wait_s)


def pattern(n):
    """n bytes that tls_get prints and the test recomputes (i % 251)."""
    return bytes(i % 251 for i in range(n))


def client_ctx(cafile, version=None):
    ctx = ssl.create_default_context(cafile=cafile)  # verification and host name check on
    if version == "tls1_2":
        ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    elif version == "tls1_3":
        ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    return ctx


def recv_exact(s, n):
    got = bytearray()
    while len(got) < n:
        b = s.recv(min(n - len(got), 1 << 20))
        if not b:
            raise SystemExit("EOF after %d of %d bytes" % (len(got), n))
        got += b
    return bytes(got)


def echo(port, cafile, version=None):
    ctx = client_ctx(cafile, version)
    raw = socket.create_connection(("127.0.0.1", port), timeout=LIMIT)
    s = ctx.wrap_socket(raw, server_hostname="localhost")
    first = b"hello, corio over TLS\n"
    s.sendall(first)
    assert recv_exact(s, len(first)) == first
    big = os.urandom(8 << 20)
    # send and receive at once, on one thread: an SSL object must not be
    # used by two threads at a time (a sender thread would race the
    # reader's TLS 1.3 post-handshake processing)
    s.setblocking(False)
    sent, got = 0, bytearray()
    end = time.monotonic() + LIMIT
    while len(got) < len(big):
        assert time.monotonic() < end, "echo stalled at %d of %d bytes (sent %d)" % (len(got), len(big), sent)
        want_w = [s] if sent < len(big) else []
        r, w, _ = select.select([s], want_w, [], 1)
        if w:
            try:
                sent += s.send(big[sent:sent + (256 << 10)])
            except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
                pass
        while r or s.pending():
            r = None
            try:
                b = s.recv(1 << 20)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                break
            if not b:
                raise SystemExit("EOF after %d of %d bytes" % (len(got), len(big)))
            got += b
    assert bytes(got) == big, "large payload differs"
    s.settimeout(LIMIT)
    print(s.version())
    # close_notify, then wait for the server's: unwrap raises if the
    # server closes the TCP connection without one
    s.unwrap().close()


def drop(port, cafile):
    s = client_ctx(cafile).wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=LIMIT),
                                       server_hostname="localhost")
    s.sendall(b"x")
    assert recv_exact(s, 1) == b"x"
    os._exit(0)  # the kernel closes the TCP connection; nobody sends close_notify


def server(cert, key):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(16)
    print("listening on 127.0.0.1:%d" % ls.getsockname()[1], flush=True)
    while True:
        raw, _ = ls.accept()
        raw.settimeout(LIMIT)
        try:
            s = ctx.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError) as e:  # clients that refuse our certificate
            print("handshake failed: %s" % e, file=sys.stderr, flush=True)
            raw.close()
            continue
        try:
            head = b""
            while b"\r\n\r\n" not in head:
                b = s.recv(4096)
                if not b:
                    break
                head += b
            m = re.match(rb"GET /(cl|eof|cut)/(\d+) HTTP/1\.[01]\r\n", head)
            if not m:
                s.sendall(b"HTTP/1.0 404 Not Found\r\nContent-Length: 10\r\n\r\nnot found\n")
                s.unwrap().close()
                continue
            mode, n = m.group(1), int(m.group(2))
            body = pattern(n)
            if mode == b"cl":
                s.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n" % n + body)
                s.unwrap().close()
            else:
                s.sendall(b"HTTP/1.0 200 OK\r\n\r\n" + body)
                if mode == b"eof":
                    s.unwrap().close()  # close_notify: the body is whole
                else:  # cut: a TCP close with no close_notify before it
                    s.close()
        except (ssl.SSLError, OSError) as e:
            print("connection failed: %s" % e, file=sys.stderr, flush=True)
            s.close()


def s_client(port, cafile, version, sess_out, sess_in):
    cmd = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-servername", "localhost",
           "-CAfile", cafile, "-verify_return_error", "-verify_hostname", "localhost", "-" + version]
    if sess_out != "-":
        cmd += ["-sess_out", sess_out]
    if sess_in != "-":
        cmd += ["-sess_in", sess_in]
    # s_client buffers its stdout unless it is a terminal, and the echo
    # must be seen before stdin closes (s_client then sends close_notify
    # and ends): so its stdout is a pty
    master, slave = pty.openpty()
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=slave, stderr=subprocess.PIPE)
    os.close(slave)
    timer = threading.Timer(LIMIT, p.kill)
    timer.start()
    line = b"echo me through s_client"
    p.stdin.write(line + b"\n")
    p.stdin.flush()

    def more():
        try:
            return os.read(master, 65536)
        except OSError:  # EIO: the pty's other side is closed
            return b""

    out = b""
    while line not in out:  # the handshake report, then what the server sent
        b = more()
        if not b:
            break
        out += b
    p.stdin.close()
    while True:
        b = more()
        if not b:
            break
        out += b
    err = p.stderr.read()
    p.wait()
    timer.cancel()
    os.close(master)
    text = out.decode(errors="replace")
    assert line in out, "no echo from the server:\n" + text + err.decode(errors="replace")
    assert p.returncode == 0, "s_client exit status %d:\n%s" % (p.returncode, err.decode(errors="replace"))
    m = re.search(r"^(New|Reused), (TLSv1\.[23])", text, re.M)
    assert m, "no New/Reused line:\n" + text
    assert "Verify return code: 0 (ok)" in text, text
    print(m.group(1), m.group(2))


def main():
    cmd = sys.argv[1]
    if cmd == "echo":
        echo(int(sys.argv[2]), sys.argv[3], sys.argv[4] if len(sys.argv) > 4 else None)
    elif cmd == "drop":
        drop(int(sys.argv[2]), sys.argv[3])
    elif cmd == "server":
        server(sys.argv[2], sys.argv[3])
    elif cmd == "s_client":
        s_client(int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6])
    else:
        raise SystemExit("unknown command " + cmd)


if __name__ == "__main__":
    main()
