#!/usr/bin/env python3
"""Client load for tests/reload_test.sh: requests without pause against one
port while the server behind it is reloaded, counting every outcome.

    reload_load.py PORT PROGRESS_FILE STOP_FILE

Threads, each with its own connection pattern:
  - fresh:  a new connection per request ("Connection: close");
  - keep:   keep-alive connections, reconnecting when the server closes one;
  - big:    a 4 MiB file over keep-alive, so that responses are in flight
            when a server hands its sockets over.
Every response must be a 200 with the file's exact bytes.

What counts as a failure: a refused connection, a connection that breaks
on a fresh connection or in the middle of a response, a bad status or
body.  One case is a retry, as HTTP clients do it (RFC 9112, 9.3.1;
curl, browsers, Go's Transport, urllib3): a request sent on a reused
keep-alive connection that the server closed before answering any byte
is sent again on a new connection; a server that stops closes idle
keep-alive connections, and a request can cross that close on the wire.

PROGRESS_FILE gets the number of good responses, rewritten about every
50; the run ends when STOP_FILE exists, printing one line:
"ok N failed N refused N retried N" and the first failures.
"""
import os
import socket
import sys
import threading
import time

PORT = int(sys.argv[1])
PROGRESS = sys.argv[2]
STOP = sys.argv[3]
TIMEOUT = 30
SMALL = b"hello\n"
BIG_LEN = 4 * 1024 * 1024

lock = threading.Lock()
counts = {"ok": 0, "failed": 0, "refused": 0, "retried": 0}
failures = []


def note(kind, what=None):
    with lock:
        counts[kind] += 1
        if what and len(failures) < 10:
            failures.append(what)
        if kind == "ok" and counts["ok"] % 50 == 0:
            with open(PROGRESS + ".tmp", "w") as f:
                f.write(str(counts["ok"]))
            os.replace(PROGRESS + ".tmp", PROGRESS)


class NoAnswer(Exception):
    """The connection ended before the first byte of a response."""


def connect():
    s = socket.create_connection(("127.0.0.1", PORT), timeout=TIMEOUT)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def recv_some(s, got_any):
    try:
        data = s.recv(65536)
    except (ConnectionResetError, BrokenPipeError):
        if not got_any:
            raise NoAnswer()
        raise
    if not data and not got_any:
        raise NoAnswer()
    return data


def request(s, path, close):
    """One request on s.  Returns (body, server_closes)."""
    hdr = "GET %s HTTP/1.1\r\nHost: x\r\n%s\r\n" % (path, "Connection: close\r\n" if close else "")
    try:
        s.sendall(hdr.encode())
    except (ConnectionResetError, BrokenPipeError):
        raise NoAnswer()
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = recv_some(s, bool(buf))
        if not data:
            raise IOError("connection closed inside a response head")
        buf += data
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    if not lines[0].startswith("HTTP/1.1 200 "):
        raise IOError("status: " + lines[0])
    length = None
    closes = close
    for line in lines[1:]:
        k, _, v = line.partition(":")
        if k.lower() == "content-length":
            length = int(v.strip())
        elif k.lower() == "connection" and v.strip().lower() == "close":
            closes = True
    if length is None:
        raise IOError("no Content-Length")
    body = bytearray(rest)
    while len(body) < length:
        data = s.recv(min(1 << 20, length - len(body)))
        if not data:
            raise IOError("connection closed inside a body (%d of %d)" % (len(body), length))
        body += data
    if len(body) != length:
        raise IOError("more bytes than Content-Length")
    return bytes(body), closes


def check(path, body):
    if path.startswith("/a.txt"):
        return body == SMALL
    return len(body) == BIG_LEN and body[:8] == b"\0" * 8


def one_fresh(path):
    try:
        s = connect()
    except ConnectionRefusedError:
        note("refused", "connection refused")
        return
    except OSError as e:
        note("failed", "connect: %r" % e)
        return
    try:
        body, _ = request(s, path, True)
        if check(path, body):
            note("ok")
        else:
            note("failed", "bad body on a fresh connection")
    except NoAnswer:
        note("failed", "fresh connection closed without an answer")
    except OSError as e:
        note("failed", "fresh connection: %r" % e)
    finally:
        s.close()


def fresh_loop():
    i = 0
    while not os.path.exists(STOP):
        i += 1
        one_fresh("/a.txt?f%d" % i)


def keep_loop(path_base):
    s = None
    reused = False
    i = 0
    while not os.path.exists(STOP):
        i += 1
        path = "%s?k%d" % (path_base, i)
        if s is None:
            try:
                s = connect()
            except ConnectionRefusedError:
                note("refused", "connection refused")
                continue
            except OSError as e:
                note("failed", "connect: %r" % e)
                continue
            reused = False
        try:
            body, closes = request(s, path, False)
        except NoAnswer:
            s.close()
            s = None
            if reused:
                note("retried")  # the standard retry: on a fresh connection, below
                one_fresh(path)
            else:
                note("failed", "fresh keep-alive connection closed without an answer")
            continue
        except OSError as e:
            note("failed", "keep-alive: %r" % e)
            s.close()
            s = None
            continue
        if check(path, body):
            note("ok")
        else:
            note("failed", "bad body on keep-alive")
        reused = True
        if closes:
            s.close()
            s = None
    if s:
        s.close()


threads = [threading.Thread(target=fresh_loop) for _ in range(2)]
threads += [threading.Thread(target=keep_loop, args=("/a.txt",)) for _ in range(2)]
threads += [threading.Thread(target=keep_loop, args=("/big.bin",))]
for t in threads:
    t.start()
for t in threads:
    t.join()
print("ok %(ok)d failed %(failed)d refused %(refused)d retried %(retried)d" % counts)
for f in failures:
    print("  " + f)
