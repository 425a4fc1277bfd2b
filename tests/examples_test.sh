#!/usr/bin/env bash
# The examples, run as a user runs them, checked byte for byte.
#   examples_test.sh BUILD_DIR NAME      (CORIO_BACKEND picks the backend)
# NAME: hello_server | echo | file_writer | cat | copy | chat | pipeline | udp_echo | subprocess_run | curl_fetch | unix_echo
set -euo pipefail
build=$1
name=$2
# shellcheck source=tests/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# graceful_stop PID PORT SEND1 EXPECT1 SEND2 EXPECT2: a client connects and
# sends SEND1 (expecting EXPECT1 back, "" for nothing yet); then the server
# gets SIGTERM; once it refuses new connections the client sends SEND2 and
# must receive EXPECT2 up to EOF (after a half-close); the server must then
# exit with status 0.
graceful_stop() {
    /usr/bin/python3 - "$1" "$2" "$3" "$4" "$5" "$6" "$wait_s" <<'PY' || fail "graceful stop: client failed"
import os, signal, socket, sys, time
pid, port = int(sys.argv[1]), int(sys.argv[2])
send1, want1, send2, want2 = (os.fsencode(a) for a in sys.argv[3:7])
limit = float(sys.argv[7])
c = socket.create_connection(("127.0.0.1", port), timeout=limit)
c.sendall(send1)
got = b""
while len(got) < len(want1):
    got += c.recv(65536)
assert got == want1, got
os.kill(pid, signal.SIGTERM)
end = time.monotonic() + limit
while True:  # the listener goes away at once
    try:
        socket.create_connection(("127.0.0.1", port), timeout=limit).close()
    except ConnectionRefusedError:
        break
    except ConnectionResetError:
        pass  # queued in the backlog as the listener closed: look again
    assert time.monotonic() < end, "still accepting after SIGTERM"
    time.sleep(0.05)
c.sendall(send2)
c.shutdown(socket.SHUT_WR)
got = b""
while True:
    b = c.recv(65536)
    if not b:
        break
    got += b
assert got == want2, got
c.close()
PY
    local status=0
    timeout "$wait_s" tail --pid="$1" -f /dev/null || fail "still running $wait_s s after SIGTERM"
    wait "$1" || status=$?
    pids=()
    [[ $status == 0 ]] || fail "exit status $status after SIGTERM; log: $(cat "$tmp/log")"
    grep -q "Terminated, stopping" "$tmp/log" || fail "no 'stopping' line: $(cat "$tmp/log")"
}

case $name in
hello_server)
    "$build/hello_server" 0 >"$tmp/log" 2>&1 &
    pids+=($!)
    port=$(wait_port "$tmp/log" "Server running on \('127.0.0.1', ([0-9]+)") || fail "no 'Server running on' line"
    expected=$'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nAccess-Control-Allow-Origin: *\r\nAccess-Control-Allow-Methods: GET, POST, PUT, DELETE, OPTIONS\r\nAccess-Control-Allow-Headers: Content-Type\r\n\r\nHello, world!'
    for i in 1 2 3; do
        got=$(curl -s -i --max-time "$wait_s" "http://127.0.0.1:$port/")
        [[ $got == "$expected" ]] || fail "response $i differs: $(printf %q "$got")"
    done
    # the server may log its last line after the client has the answer
    processed3() { [[ $(grep -c "^Request processed" "$tmp/log") == 3 ]]; }
    wait_until processed3 || fail "expected 3 'Request processed' lines"
    grep -q "^Handling request" "$tmp/log" || fail "no 'Handling request' line"
    grep -q "^GET / HTTP/1.1" "$tmp/log" || fail "request not printed"
    # SIGTERM with a request half sent: it is still answered, then exit 0
    graceful_stop "${pids[0]}" "$port" $'GET / HTTP/1.1\r\nHost: x\r\n' "" $'\r\n' "$expected"
    ;;
echo)
    "$build/echo_server" 0 >"$tmp/log" 2>&1 &
    pids+=($!)
    port=$(wait_port "$tmp/log" "listening on 127.0.0.1:([0-9]+)") || fail "echo_server did not report its port"
    got=$("$build/echo_client" "$port" alpha "beta gamma" 2>&1)
    [[ $got == *alpha* && $got == *"beta gamma"* ]] || fail "echo_client output: $got"
    got=$(printf 'from stdin\nline two\n' | "$build/echo_client" "$port" 2>&1)
    [[ $got == $'from stdin\nline two' ]] || fail "echo_client stdin output: $(printf %q "$got")"
    # SIGTERM with a client connected: it is still echoed until it closes, then exit 0
    big=$(printf 'after%.0s' $(seq 10000))
    graceful_stop "${pids[0]}" "$port" before before "$big" "$big"
    # a second SIGTERM during the grace period ends it at once: once the
    # first has come, SIGTERM's default disposition is back (SigCgt).  A
    # log of its own: the shell truncates a reused one only once the new
    # process runs, so wait_port could read the first server's port.
    "$build/echo_server" 0 >"$tmp/log2" 2>&1 &
    pids+=($!)
    port=$(wait_port "$tmp/log2" "listening on 127.0.0.1:([0-9]+)") || fail "echo_server did not report its port"
    /usr/bin/python3 - "${pids[0]}" "$port" "$wait_s" <<'PY' || fail "second SIGTERM: client failed"
import os, signal, socket, sys, time
pid, port, limit = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
def caught():
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("SigCgt:"):
                return int(line.split()[1], 16) & (1 << (signal.SIGTERM - 1)) != 0
    return False
c = socket.create_connection(("127.0.0.1", port), timeout=limit)
c.sendall(b"x")
assert c.recv(1) == b"x"
assert caught(), "SIGTERM not caught while serving"
os.kill(pid, signal.SIGTERM)
end = time.monotonic() + limit
while caught():
    assert time.monotonic() < end, "SIGTERM still caught after the first one"
    time.sleep(0.01)
os.kill(pid, signal.SIGTERM)
PY
    status=0
    timeout "$wait_s" tail --pid="${pids[0]}" -f /dev/null || fail "still running $wait_s s after a second SIGTERM"
    wait "${pids[0]}" || status=$?
    pids=()
    [[ $status == 143 ]] || fail "exit status $status after a second SIGTERM, want 143"
    ;;
file_writer)
    cd "$tmp"
    for i in $(seq 20); do
        rm -f example.txt
        out=$("$build/file_writer")
        [[ $out == "Hello, world!" ]] || fail "run $i printed $(printf %q "$out")"
        [[ $(cat example.txt) == "Hello, world!" ]] || fail "example.txt differs"
    done
    ;;
cat)
    head -c 300000 /dev/urandom >"$tmp/a"
    printf 'second\n' >"$tmp/b"
    printf 'from stdin\n' | "$build/cat" "$tmp/a" - "$tmp/b" >"$tmp/out"
    cat "$tmp/a" - "$tmp/b" <<<'from stdin' >"$tmp/want"
    cmp "$tmp/out" "$tmp/want" || fail "cat output differs"
    if "$build/cat" "$tmp/missing" 2>"$tmp/err" >/dev/null; then fail "missing file not reported"; fi
    grep -q "No such file or directory" "$tmp/err" || fail "error text: $(cat "$tmp/err")"
    "$build/cat" /dev/null </dev/null >"$tmp/empty" && [[ ! -s $tmp/empty ]] || fail "/dev/null"
    ;;
copy)
    mkdir -p "$tmp/src/d1/d2" "$tmp/src/empty"
    for i in $(seq 200); do head -c $((i * 97)) /dev/urandom >"$tmp/src/d1/f$i"; done
    head -c 3000000 /dev/urandom >"$tmp/src/d1/d2/big"
    printf 'x' >"$tmp/src/top"
    chmod 0640 "$tmp/src/top"
    ln -s d1/f1 "$tmp/src/link"
    "$build/copy" -j 8 "$tmp/src" "$tmp/dst"
    diff -r --no-dereference "$tmp/src" "$tmp/dst" || fail "trees differ"
    [[ $(stat -c %a "$tmp/dst/top") == 640 ]] || fail "mode not kept"
    [[ $(readlink "$tmp/dst/link") == d1/f1 ]] || fail "symlink not recreated"
    ;;
chat)
    # real socket clients, the whole protocol and SIGINT: tests/chat_test.py
    /usr/bin/python3 "$(dirname "${BASH_SOURCE[0]}")/chat_test.py" "$build/chat_server"
    ;;
pipeline)
    # the checksum the program must print for N items per producer: the
    # sum of splitmix64's finaliser over 0 .. 3N-1, mod 2^64
    checksum() {
        /usr/bin/python3 - "$1" <<'PY'
import sys
M = (1 << 64) - 1
def mix(x):
    x ^= x >> 30; x = (x * 0xbf58476d1ce4e5b9) & M
    x ^= x >> 27; x = (x * 0x94d049bb133111eb) & M
    return x ^ (x >> 31)
print("0x%016x" % (sum(mix(v) for v in range(3 * int(sys.argv[1]))) & M))
PY
    }
    for n in 1 1000 100000; do
        args=("$n")
        [[ $n == 100000 ]] && args=() # the default
        out=$(timeout "$wait_s" "$build/pipeline" "${args[@]}") || fail "pipeline $n: exit status $?"
        re="^checksum (0x[0-9a-f]{16}) consumed ([0-9]+) \(c0 ([0-9]+), c1 ([0-9]+)\)$"
        [[ $out =~ $re ]] || fail "pipeline $n printed $(printf %q "$out")"
        [[ ${BASH_REMATCH[1]} == "$(checksum "$n")" ]] || fail "pipeline $n: checksum ${BASH_REMATCH[1]}, want $(checksum "$n")"
        [[ ${BASH_REMATCH[2]} == $((3 * n)) ]] || fail "pipeline $n: consumed ${BASH_REMATCH[2]}"
        ((BASH_REMATCH[3] + BASH_REMATCH[4] == 3 * n)) || fail "pipeline $n: per-consumer counts $out"
        if ((n >= 1000)); then
            # both consumers are served (getters are woken in turn)
            ((BASH_REMATCH[3] > 0 && BASH_REMATCH[4] > 0)) || fail "pipeline $n: a consumer got nothing: $out"
        fi
    done
    # a producer failing cancels everything: status 1, the error and the
    # count on stderr, nothing on stdout, and no hang.  The one line on
    # stderr must be all: under ASan a leak report would come there too
    # (with the same exit status).
    for k in 0 500 99999; do
        status=0
        timeout "$wait_s" "$build/pipeline" --fail-at "$k" 100000 >"$tmp/out" 2>"$tmp/err" || status=$?
        [[ $status == 1 ]] || fail "pipeline --fail-at $k: exit status $status, stderr: $(cat "$tmp/err")"
        [[ ! -s $tmp/out ]] || fail "pipeline --fail-at $k printed $(cat "$tmp/out")"
        grep -qE "^pipeline: failed: Input/output error \(1 task failed\); consumed [0-9]+ items before the cancel$" "$tmp/err" ||
            fail "pipeline --fail-at $k: stderr $(cat "$tmp/err")"
        [[ $(wc -l <"$tmp/err") == 1 ]] || fail "pipeline --fail-at $k: stderr $(cat "$tmp/err")"
    done
    # usage errors
    for bad in "x" "--fail-at" "--fail-at x 10" "1 2" "-5"; do
        status=0
        # shellcheck disable=SC2086 # split on purpose
        "$build/pipeline" $bad >/dev/null 2>"$tmp/err" || status=$?
        [[ $status == 2 ]] || fail "pipeline $bad: status $status"
        grep -q "^usage: pipeline" "$tmp/err" || fail "pipeline $bad: stderr $(cat "$tmp/err")"
    done
    ;;
udp_echo)
    "$build/udp_echo" 0 >"$tmp/log" 2>&1 &
    pids+=($!)
    port=$(wait_port "$tmp/log" "listening on 127.0.0.1:([0-9]+)") || fail "udp_echo did not report its port"
    # socat: one datagram out, its echo back on stdout
    if command -v socat >/dev/null; then
        # (socat lingers after stdin's EOF for -t seconds: stop it as soon
        # as the echo is there instead)
        printf 'hello over udp' | socat -t "$wait_s" - "UDP:127.0.0.1:$port" >"$tmp/socat" &
        sp=$!
        echoed() { [[ $(cat "$tmp/socat") == "hello over udp" ]]; }
        wait_until echoed || fail "socat got $(printf %q "$(cat "$tmp/socat")")"
        kill "$sp" 2>/dev/null || true
        wait "$sp" 2>/dev/null || true
    else
        echo "socat missing: the socat client part is skipped"
    fi
    # Python: three sockets, datagrams of many sizes (empty and 60000
    # bytes too), each echoed to its own sender, byte for byte, in order
    /usr/bin/python3 - "$port" "$wait_s" <<'PY'
import os, socket, sys
port, wait = int(sys.argv[1]), float(sys.argv[2])
socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(3)]
for s in socks:
    s.settimeout(wait)
sizes = [0, 1, 64, 1000, 1472, 8000, 60000]
for rnd in range(5):
    for i, s in enumerate(socks):
        sent = []
        for n in sizes:
            d = bytes([i, rnd]) + os.urandom(max(n - 2, 0)) if n >= 2 else b"x" * n
            s.sendto(d, ("127.0.0.1", port))
            sent.append(d)
        for d in sent:
            got, addr = s.recvfrom(65536)
            assert addr == ("127.0.0.1", port), addr
            assert got == d, (len(got), len(d))
print("python client ok")
PY
    ;;
unix_echo)
    command -v socat >/dev/null || { echo "SKIP: socat is not installed"; exit 77; }
    sock=$tmp/echo.sock
    "$build/unix_echo" -v "$sock" >"$tmp/log" 2>"$tmp/err" &
    pids+=($!)
    first=$!
    wait_port "$tmp/log" "^listening on (.*)$" >/dev/null || fail "unix_echo did not say it listens"
    [[ -S $sock ]] || fail "no socket file at $sock"
    got=$(printf 'hello over a unix socket\n' | socat -t "$wait_s" - "UNIX-CONNECT:$sock")
    [[ $got == "hello over a unix socket" ]] || fail "socat got $(printf %q "$got")"
    grep -q "^connection from pid [0-9]* (uid $(id -u), gid $(id -g))$" "$tmp/err" || fail "no credentials line: $(cat "$tmp/err")"
    # Python, 1 MiB in pieces while reading back, byte for byte
    /usr/bin/python3 - "$sock" "$wait_s" <<'PY' || fail "python client"
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(float(sys.argv[2]))
s.connect(sys.argv[1])
data = os.urandom(1 << 20)
got = bytearray()
for i in range(0, len(data), 65536):
    s.sendall(data[i:i + 65536])
    while len(got) < i + 65536:
        got += s.recv(1 << 20)
s.shutdown(socket.SHUT_WR)
while True:
    b = s.recv(65536)
    if not b:
        break
    got += b
assert bytes(got) == data, "echo differs"
PY
    # a second server at a live socket refuses and leaves it alone
    status=0
    "$build/unix_echo" "$sock" >/dev/null 2>"$tmp/err2" || status=$?
    [[ $status == 1 ]] || fail "second server: status $status"
    grep -q "Address already in use" "$tmp/err2" || fail "second server: $(cat "$tmp/err2")"
    got=$(printf 'still there\n' | socat -t "$wait_s" - "UNIX-CONNECT:$sock")
    [[ $got == "still there" ]] || fail "first server disturbed: $(printf %q "$got")"
    # killed, it leaves a stale file, which the next one replaces
    kill -KILL "$first"
    wait "$first" 2>/dev/null || true
    [[ -S $sock ]] || fail "the killed server's file is gone"
    # (on io_uring the kernel tears a dead process's ring down a moment
    # later, and its listening socket with it: until then it still
    # accepts, so it is live, and a new server is refused; try again)
    restart() {
        "$build/unix_echo" "$sock" >"$tmp/log3" 2>&1 &
        pids+=($!)
        wait_port "$tmp/log3" "^(listening on|unix_echo: cannot) (.*)$" >/dev/null
        grep -q "^listening on" "$tmp/log3"
    }
    wait_until restart || fail "no restart over the stale file: $(cat "$tmp/log3")"
    got=$(printf 'again\n' | socat -t "$wait_s" - "UNIX-CONNECT:$sock")
    [[ $got == "again" ]] || fail "after restart: $(printf %q "$got")"
    # the abstract namespace
    "$build/unix_echo" "@corio-example-$$" >"$tmp/log4" 2>&1 &
    pids+=($!)
    wait_port "$tmp/log4" "^listening on (.*)$" >/dev/null || fail "abstract: $(cat "$tmp/log4")"
    got=$(printf 'abstract\n' | socat -t "$wait_s" - "ABSTRACT-CONNECT:corio-example-$$")
    [[ $got == "abstract" ]] || fail "abstract: $(printf %q "$got")"
    # a file that is not a socket is never removed
    printf 'data' >"$tmp/plain"
    status=0
    "$build/unix_echo" "$tmp/plain" >/dev/null 2>&1 || status=$?
    [[ $status == 1 && $(cat "$tmp/plain") == data ]] || fail "plain file: status $status"
    status=0
    "$build/unix_echo" >/dev/null 2>&1 || status=$?
    [[ $status == 2 ]] || fail "usage: status $status"
    ;;
curl_fetch)
    # libcurl's multi interface driven by corio_fd_watch (examples/curl_fetch.c)
    [[ -x $build/curl_fetch ]] || { echo "SKIP: curl_fetch not built (libcurl4-openssl-dev missing)"; exit 77; }
    # 1. against corio-serve: exact statuses and byte counts, a refused port
    mkdir -p "$tmp/site"
    printf 'hello\n' >"$tmp/site/a.txt"
    head -c 3000000 /dev/urandom >"$tmp/site/big.bin"
    "$build/tools/corio-serve" -q --port 0 "$tmp/site" >"$tmp/log" 2>&1 &
    pids+=($!)
    port=$(wait_port "$tmp/log" 'port ([0-9]+) ') || fail "corio-serve did not start: $(cat "$tmp/log")"
    closed=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    u=http://127.0.0.1:$port
    status=0
    got=$("$build/curl_fetch" "$u/a.txt" "$u/big.bin" "$u/missing" "http://127.0.0.1:$closed/" "$u/a.txt") || status=$?
    expected="$u/a.txt: 200, 6 bytes
$u/big.bin: 200, 3000000 bytes
$u/missing: 404, $(curl -s "$u/missing" | wc -c) bytes
http://127.0.0.1:$closed/: error: Couldn't connect to server
$u/a.txt: 200, 6 bytes"
    [[ $got == "$expected" ]] || fail "curl_fetch output: $got"
    [[ $status == 1 ]] || fail "curl_fetch status $status with a failed transfer"
    got=$("$build/curl_fetch" "$u/a.txt") || fail "curl_fetch status $? with no failure"
    # 2. concurrency: a server that answers only once 4 requests are in
    # flight at the same time; one after the other would never finish
    cat >"$tmp/barrier.py" <<'PY'
import http.server, sys, threading
barrier = threading.Barrier(4, timeout=float(sys.argv[1]))
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        barrier.wait()
        body = self.path.encode() * 1000
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
print("port", s.server_address[1], flush=True)
s.serve_forever()
PY
    python3 "$tmp/barrier.py" "$wait_s" >"$tmp/blog" 2>&1 &
    pids+=($!)
    bport=$(wait_port "$tmp/blog" '^port ([0-9]+)') || fail "barrier server did not start"
    b=http://127.0.0.1:$bport
    got=$("$build/curl_fetch" "$b/1" "$b/22" "$b/333" "$b/4444") || fail "concurrent fetch status $?"
    [[ $got == "$b/1: 200, 2000 bytes
$b/22: 200, 3000 bytes
$b/333: 200, 4000 bytes
$b/4444: 200, 5000 bytes" ]] || fail "concurrent fetch output: $got"
    ;;
subprocess_run)
    run=$build/subprocess_run
    # both pipes, relayed line by line, and the child's exit code
    status=0
    "$run" sh -c 'echo a; echo b >&2; echo c; exit 3' >"$tmp/out" || status=$?
    [[ $status == 3 ]] || fail "exit 3: status $status"
    grep -v '^err: ' "$tmp/out" >"$tmp/outs" || true
    [[ $(cat "$tmp/outs") == $'out: a\nout: c' ]] || fail "stdout lines: $(cat "$tmp/out")"
    [[ $(grep -c '^err: b$' "$tmp/out") == 1 && $(wc -l <"$tmp/out") == 3 ]] || fail "stderr line: $(cat "$tmp/out")"
    # a Python child: each line as it arrives, in the child's order per pipe
    status=0
    "$run" /usr/bin/python3 -c 'import sys
for i in range(3):
    print("o%d" % i, flush=True); print("e%d" % i, file=sys.stderr, flush=True)
print("tail without newline", end="")' >"$tmp/out" || status=$?
    [[ $status == 0 ]] || fail "python child: status $status"
    [[ $(grep '^out: ' "$tmp/out") == $'out: o0\nout: o1\nout: o2\nout: tail without newline' ]] || fail "python out: $(cat "$tmp/out")"
    [[ $(grep '^err: ' "$tmp/out") == $'err: e0\nerr: e1\nerr: e2' ]] || fail "python err: $(cat "$tmp/out")"
    # a lot of output, byte for byte
    "$run" seq 200000 >"$tmp/out" || fail "seq: status $?"
    seq 200000 | sed 's/^/out: /' | cmp - "$tmp/out" || fail "seq output differs"
    # a signal ends it: 128 + the signal's number
    status=0
    "$run" sh -c 'kill -TERM $$' >/dev/null || status=$?
    [[ $status == 143 ]] || fail "SIGTERM: status $status"
    # the deadline kills the whole group, the grandchild included
    status=0
    timeout "$wait_s" "$run" -t 0.3 sh -c 'sleep 1000 & echo $!; wait' >"$tmp/out" 2>"$tmp/err" || status=$?
    [[ $status == 137 ]] || fail "deadline: status $status, stderr $(cat "$tmp/err")"
    grep -q 'killing its process group' "$tmp/err" || fail "deadline: stderr $(cat "$tmp/err")"
    gc=$(sed -n 's/^out: \([0-9]*\)$/\1/p' "$tmp/out")
    [[ -n $gc ]] || fail "deadline: no grandchild pid in $(cat "$tmp/out")"
    gone() { ! kill -0 "$gc" 2>/dev/null; }
    wait_until gone || fail "grandchild $gc still alive"
    # a command that cannot be run, and usage errors
    status=0
    "$run" /nonexistent/prog 2>"$tmp/err" || status=$?
    [[ $status == 127 ]] || fail "missing program: status $status"
    grep -q "No such file or directory" "$tmp/err" || fail "missing program: $(cat "$tmp/err")"
    for bad in "" "-t" "-t x true" "-t -1 true"; do
        status=0
        # shellcheck disable=SC2086 # split on purpose
        "$run" $bad >/dev/null 2>"$tmp/err" || status=$?
        [[ $status == 2 ]] || fail "usage '$bad': status $status"
        grep -q "^usage: subprocess_run" "$tmp/err" || fail "usage '$bad': $(cat "$tmp/err")"
    done
    ;;
*)
    fail "unknown example $name"
    ;;
esac
echo "PASS $name on ${CORIO_BACKEND:-auto}"
