#!/usr/bin/env bash
# Real clients against examples/http_hello: curl (one request, keep-alive
# across several URLs, HEAD, POST), Python's http.client (keep-alive on one
# connection), ab -k and h2load --h1 (pipelined, -m 4), then SIGTERM must
# stop the server with status 0.
#   http_clients_test.sh BUILD_DIR      (CORIO_BACKEND picks the backend)
set -euo pipefail
build=$1
# shellcheck source=tests/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

"$build/http_hello" 0 >"$tmp/log" 2>&1 &
pid=$!
pids+=("$pid")
port=$(wait_port "$tmp/log" "Server running on \('127.0.0.1', ([0-9]+)") ||
    fail "no 'Server running on' line: $(cat "$tmp/log")"

# curl: the seed's headers, exactly and in order, plus what HTTP requires
got=$(curl -s -i --max-time "$wait_s" "http://127.0.0.1:$port/" | sed -E 's/^Date: .*\r$/Date: X\r/')
expected=$'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nAccess-Control-Allow-Origin: *\r\nAccess-Control-Allow-Methods: GET, POST, PUT, DELETE, OPTIONS\r\nAccess-Control-Allow-Headers: Content-Type\r\nContent-Length: 13\r\nDate: X\r\nServer: corio\r\n\r\nHello, world!'
[[ $got == "$expected" ]] || fail "curl response differs: $(printf %q "$got")"

# curl keep-alive: three URLs, one connection
out=$(curl -sv --max-time "$wait_s" "http://127.0.0.1:$port/a" "http://127.0.0.1:$port/b" "http://127.0.0.1:$port/c" 2>"$tmp/curl.err")
[[ $out == "Hello, world!Hello, world!Hello, world!" ]] || fail "curl keep-alive bodies: $out"
grep -q "Re-using existing connection" "$tmp/curl.err" || fail "curl did not reuse the connection"

# HEAD and POST
code=$(curl -s -o "$tmp/head" -w '%{http_code}' -I --max-time "$wait_s" "http://127.0.0.1:$port/")
[[ $code == 200 ]] || fail "HEAD status $code"
grep -q "Content-Length: 13" "$tmp/head" || fail "HEAD lacks Content-Length"
out=$(curl -s --max-time "$wait_s" -d 'some=data' "http://127.0.0.1:$port/form")
[[ $out == "Hello, world!" ]] || fail "POST body: $out"

# Python http.client, keep-alive on one connection (the system python)
/usr/bin/python3 - "$port" <<'PY' || fail "python http.client"
import http.client, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=30)
socks = set()
for i in range(5):
    c.request("GET" if i % 2 == 0 else "POST", f"/{i}", body=None if i % 2 == 0 else b"x" * 1000)
    r = c.getresponse()
    body = r.read()
    assert r.status == 200 and body == b"Hello, world!", (r.status, body)
    assert r.getheader("Access-Control-Allow-Origin") == "*"
    assert r.getheader("Date") and r.getheader("Server") == "corio"
    socks.add(id(c.sock))
    assert not r.will_close
assert len(socks) == 1, "connection was not reused"
c.close()
PY

# ApacheBench with keep-alive and h2load over HTTP/1.1: every request
# answered, none failed, connections reused
out=$(ab -q -k -n 2000 -c 20 "http://127.0.0.1:$port/" 2>&1) || fail "ab: $out"
grep -qE "^Complete requests: +2000$" <<<"$out" || fail "ab complete: $out"
grep -qE "^Failed requests: +0$" <<<"$out" || fail "ab failed: $out"
grep -qE "^Keep-Alive requests: +2000$" <<<"$out" || fail "ab keep-alive: $out"
out=$(h2load --h1 -n 2000 -c 10 -m 4 "http://127.0.0.1:$port/" 2>&1) || fail "h2load: $out"
grep -qE "requests: 2000 total, 2000 started, 2000 done, 2000 succeeded, 0 failed, 0 errored" <<<"$out" ||
    fail "h2load: $out"
grep -qE "status codes: 2000 2xx" <<<"$out" || fail "h2load status codes: $out"

stop_server "$pid"
echo "PASS http clients on ${CORIO_BACKEND:-auto}"
