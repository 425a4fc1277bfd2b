#!/usr/bin/env bash
# corio-serve against a temporary directory, with curl and the system
# Python: listings, exact bytes (a 5 MB file too), Content-Type, HEAD,
# Range (206, 416), 304 by If-Modified-Since and If-None-Match, index.html,
# 404 (also for a file with a trailing '/'), redirects to the cleaned path
# only (never "//host/"), and every way out of DIR we know of (../,
# %2e%2e, %2f, %5c, %00, a symlink out, an absolute URL) must fail without
# serving the secret file next to DIR.  Downloads aborted part-way (curl |
# head, resets) must leave it serving.  Then SIGTERM must stop it with
# status 0.  Then HTTPS: curl and Python's ssl against --tls-cert/--tls-key
# with --tls-port beside plain HTTP, and the certificate reload on SIGHUP.
#   serve_test.sh BUILD_DIR      (CORIO_BACKEND picks the backend)
set -euo pipefail
build=$1
serve=$build/tools/corio-serve
# shellcheck source=tests/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

"$serve" --help >"$tmp/help" || fail "--help exit status $?"
grep -q "SYNOPSIS" "$tmp/help" && grep -q -- "--port" "$tmp/help" || fail "--help text"

root=$tmp/root
mkdir -p "$root/sub/deeper" "$root/site" "$tmp/outside"
echo "top secret" >"$tmp/outside/secret.txt"
printf 'hello\n' >"$root/a.txt"
printf '<b>' >"$root/we<ir>d & \"name\".txt"
printf 'body{}' >"$root/style.css"
printf '{}' >"$root/data.json"
printf 'x' >"$root/pic.png"
printf 'x' >"$root/blob.unknownext"
printf 'nested' >"$root/sub/deeper/n.txt"
printf '<h1>index</h1>' >"$root/site/index.html"
head -c 5000000 /dev/urandom >"$root/big.bin"
ln -s "$tmp/outside/secret.txt" "$root/abs_link"
ln -s ../outside/secret.txt "$root/rel_link"
ln -s "$tmp/outside" "$root/dir_link"
ln -s a.txt "$root/in_link"

"$serve" --port 0 "$root" >"$tmp/out" 2>"$tmp/log" &
pid=$!
pids+=("$pid")
port=$(wait_port "$tmp/out" '^Serving HTTP on 127\.0\.0\.1 port ([0-9]+) \(http://127\.0\.0\.1:[0-9]+/\) \.\.\.') ||
    fail "no 'Serving HTTP on' line: $(cat "$tmp/out" "$tmp/log")"
url=http://127.0.0.1:$port

# status of a request (extra curl args allowed)
code() { curl -s -o /dev/null -w '%{http_code}' --max-time "$wait_s" "$@"; }

# listing: sorted, escaped, '/' after directories
list=$(curl -s --max-time "$wait_s" "$url/")
grep -q '<a href="sub/">sub/</a>' <<<"$list" || fail "listing lacks sub/: $list"
grep -q '<a href="a.txt">a.txt</a>' <<<"$list" || fail "listing lacks a.txt"
grep -q 'we&lt;ir&gt;d &amp; &quot;name&quot;.txt' <<<"$list" || fail "listing does not escape names"
grep -q 'href="we%3Cir%3Ed%20%26%20%22name%22.txt"' <<<"$list" || fail "listing does not encode links"
[[ $(grep -o 'href="[^"]*"' <<<"$list" | head -3 | tr '\n' ' ') == 'href="a.txt" href="abs_link" href="big.bin" ' ]] ||
    fail "listing not sorted: $list"
[[ $(code "$url/sub") == 301 ]] || fail "no redirect for a directory without '/'"
[[ $(curl -s --max-time "$wait_s" -o /dev/null -w '%{redirect_url}' "$url/sub") == "$url/sub/" ]] || fail "redirect target"
curl -s --max-time "$wait_s" "$url/sub/" | grep 'href="deeper/"' >/dev/null || fail "sub listing"
# the Location is the cleaned path: "//evil.com" must not send a browser to
# another host; names are re-encoded
mkdir "$root/evil.com" "$root/sp ace"
loc() { curl -s --path-as-is -D - -o /dev/null --max-time "$wait_s" "$url$1" | tr -d '\r' | sed -n 's/^Location: //p'; }
[[ $(loc //evil.com) == /evil.com/ ]] || fail "//evil.com redirects to '$(loc //evil.com)'"
[[ $(loc ///evil.com) == /evil.com/ ]] || fail "///evil.com redirects to '$(loc ///evil.com)'"
[[ $(loc '/./sub?x=1') == '/sub/?x=1' ]] || fail "/./sub redirects to '$(loc '/./sub?x=1')'"
[[ $(loc /sp%20ace) == /sp%20ace/ ]] || fail "/sp%20ace redirects to '$(loc /sp%20ace)'"

# exact bytes and types
[[ $(curl -s --max-time "$wait_s" "$url/a.txt") == hello ]] || fail "a.txt"
curl -s --max-time "$((wait_s * 2))" "$url/big.bin" -o "$tmp/big.got"
cmp "$tmp/big.got" "$root/big.bin" || fail "5 MB file differs"
[[ $(curl -s --max-time "$wait_s" "$url/sub/deeper/n.txt") == nested ]] || fail "nested file"
[[ $(curl -s --max-time "$wait_s" "$url/%61.txt") == hello ]] || fail "percent-decoded path"
[[ $(curl -s --max-time "$wait_s" "$url/./sub//deeper/n.txt") == nested ]] || fail "dot and empty segments"
[[ $(curl -s --max-time "$wait_s" "$url/in_link") == hello ]] || fail "symlink inside DIR"
ctype() { curl -s -o /dev/null -w '%{content_type}' --max-time "$wait_s" "$url/$1"; }
[[ $(ctype a.txt) == "text/plain; charset=utf-8" ]] || fail "txt type $(ctype a.txt)"
[[ $(ctype style.css) == "text/css; charset=utf-8" ]] || fail "css type"
[[ $(ctype data.json) == "application/json" ]] || fail "json type"
[[ $(ctype pic.png) == "image/png" ]] || fail "png type"
[[ $(ctype blob.unknownext) == "application/octet-stream" ]] || fail "default type"
[[ $(ctype "") == "text/html; charset=utf-8" ]] || fail "listing type"

# index.html
[[ $(curl -s --max-time "$wait_s" "$url/site/") == "<h1>index</h1>" ]] || fail "index.html"
# 404 / 405
[[ $(code "$url/missing") == 404 ]] || fail "missing file"
[[ $(code "$url/a.txt/x") == 404 ]] || fail "file as a directory"
[[ $(code "$url/a.txt/") == 404 ]] || fail "file with a trailing slash"
[[ $(code --path-as-is "$url/a.txt/.") == 404 ]] || fail "file with a trailing /."
[[ $(code -X POST -d x "$url/a.txt") == 405 ]] || fail "POST"

# HEAD: the GET's headers, no body
curl -s -I --max-time "$wait_s" "$url/big.bin" >"$tmp/head"
grep -q $'^Content-Length: 5000000\r$' "$tmp/head" || fail "HEAD Content-Length: $(cat "$tmp/head")"
grep -q '^ETag: "' "$tmp/head" || fail "HEAD ETag"
grep -q '^Last-Modified: ' "$tmp/head" || fail "HEAD Last-Modified"

# Range
[[ $(curl -s --max-time "$wait_s" -r 1-3 "$url/a.txt") == ell ]] || fail "range 1-3"
[[ $(code -r 1-3 "$url/a.txt") == 206 ]] || fail "range status"
curl -s -D "$tmp/h206" -o "$tmp/r206" --max-time "$wait_s" -r 4000000- "$url/big.bin"
grep -q $'^Content-Range: bytes 4000000-4999999/5000000\r$' "$tmp/h206" || fail "Content-Range: $(cat "$tmp/h206")"
cmp "$tmp/r206" <(tail -c 1000000 "$root/big.bin") || fail "open range bytes"
[[ $(curl -s --max-time "$wait_s" -r -2 "$url/a.txt" | od -An -c | tr -d ' ') == 'o\n' ]] || fail "suffix range"
[[ $(curl -s --max-time "$wait_s" -r 2-100 "$url/a.txt") == llo ]] || fail "range past the end is clamped"
curl -s -D "$tmp/h416" -o /dev/null --max-time "$wait_s" -r 100-200 "$url/a.txt"
grep -q '^HTTP/1.1 416' "$tmp/h416" || fail "416: $(cat "$tmp/h416")"
grep -q $'^Content-Range: bytes \\*/6\r$' "$tmp/h416" || fail "416 Content-Range: $(cat "$tmp/h416")"
[[ $(code -r 0-0,2-3 "$url/a.txt") == 200 ]] || fail "multiple ranges answer 200"

# conditional requests
etag=$(grep -i '^ETag:' "$tmp/head" | cut -d' ' -f2 | tr -d '\r')
lm=$(grep -i '^Last-Modified:' "$tmp/head" | cut -d' ' -f2- | tr -d '\r')
[[ $(code -H "If-None-Match: $etag" "$url/big.bin") == 304 ]] || fail "If-None-Match"
[[ $(code -H "If-None-Match: \"other\", W/$etag" "$url/big.bin") == 304 ]] || fail "If-None-Match list"
[[ $(code -H 'If-None-Match: "other"' "$url/big.bin") == 200 ]] || fail "If-None-Match mismatch"
[[ $(code -H "If-Modified-Since: $lm" "$url/big.bin") == 304 ]] || fail "If-Modified-Since"
[[ $(code -H "If-Modified-Since: Thu, 01 Jan 1970 00:00:00 GMT" "$url/big.bin") == 200 ]] || fail "old IMS"
[[ $(code -r 0-1 -H 'If-Range: "stale"' "$url/a.txt") == 200 ]] || fail "If-Range mismatch"

# ways out of DIR: never the secret, never 200
for p in "/../outside/secret.txt" "/%2e%2e/outside/secret.txt" "/sub/%2E%2E/%2e%2e/outside/secret.txt" \
    "/..%2foutside%2fsecret.txt" "/..%5coutside%5csecret.txt" "/a.txt%00" "/abs_link" "/rel_link" \
    "/dir_link/secret.txt" "/dir_link/" "/%zz"; do
    c=$(curl -s --path-as-is -o "$tmp/esc" -w '%{http_code}' --max-time "$wait_s" "$url$p")
    [[ $c == 400 || $c == 403 || $c == 404 ]] || fail "$p answered $c"
    if grep -q "top secret" "$tmp/esc"; then fail "$p served the secret"; fi
done
[[ $(code "$url/%2e%2e/outside/secret.txt") == 400 ]] || fail "%2e%2e is not 400"
[[ $(code --path-as-is "$url/sub/%2fetc") == 400 ]] || fail "%2f is not 400"
[[ $(code "$url/abs_link") == 404 ]] || fail "symlink out is not 404"

# raw requests a client library would normalise: absolute URLs, odd forms
/usr/bin/python3 - "$port" <<'PY' || fail "raw requests"
import socket, sys
port = int(sys.argv[1])
def raw(req):
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.sendall(req)
    data = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        data += b
        if b"\r\n\r\n" in data:
            head, _, body = data.partition(b"\r\n\r\n")
            n = [int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")]
            if n and len(body) >= n[0]:
                break
    s.close()
    return data
for target in [b"http://127.0.0.1/../outside/secret.txt", b"http://127.0.0.1/%2e%2e/outside/secret.txt",
               b"http://evil.example/../../outside/secret.txt", b"../outside/secret.txt",
               b"/" + b"../" * 20 + b"etc/passwd", b"*"]:
    r = raw(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    status = int(r.split(b" ")[1])
    assert status in (400, 403, 404), (target, r[:200])
    assert b"top secret" not in r and b"root:" not in r, target
# an absolute URL inside DIR works (and ignores the authority)
r = raw(b"GET http://other.example/a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
assert r.startswith(b"HTTP/1.1 200") and r.endswith(b"hello\n"), r
# keep-alive across files, with http.client
import http.client
c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
for path, want in [("/a.txt", b"hello\n"), ("/sub/deeper/n.txt", b"nested"), ("/a.txt", b"hello\n")]:
    c.request("GET", path)
    resp = c.getresponse()
    assert resp.status == 200 and resp.read() == want, path
    assert not resp.will_close
c.close()
PY

# access log: one line per request, common log format
grep -qE '^127\.0\.0\.1 - - \[[0-9]{2}/[A-Z][a-z]{2}/[0-9]{4}:[0-9:]{8} \+0000\] "GET /a\.txt HTTP/1\.1" 200 6$' "$tmp/log" ||
    fail "access log: $(head -5 "$tmp/log")"
grep -qE '"GET /big\.bin HTTP/1\.1" 200 5000000$' "$tmp/log" || fail "access log bytes"
grep -qE '"GET /missing HTTP/1\.1" 404 [0-9]+$' "$tmp/log" || fail "access log 404"

# clients that abort a sendfile download part-way (curl | head closes;
# a reset with SO_LINGER 0) never take the server down: it keeps serving
for _ in $(seq 5); do
    curl -s --max-time "$wait_s" "$url/big.bin" 2>/dev/null | head -c 100 >/dev/null || true
done
/usr/bin/python3 - "$port" <<'PY' || fail "aborted downloads"
import socket, struct, sys
for _ in range(10):
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=30)
    s.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
    got = b""
    while len(got) < 100:
        b = s.recv(100 - len(got))
        assert b, got
        got += b
    assert got.startswith(b"HTTP/1.1 200 "), got
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
PY
kill -0 "$pid" 2>/dev/null || fail "the server died when downloads were aborted"
curl -s --max-time "$((wait_s * 2))" "$url/big.bin" -o "$tmp/big.again"
cmp "$tmp/big.again" "$root/big.bin" || fail "5 MB file after aborted downloads"

# ApacheBench with keep-alive and h2load over HTTP/1.1 (pipelined): every
# request answered with the file, none failed
out=$(ab -q -k -n 2000 -c 20 "$url/a.txt" 2>&1) || fail "ab: $out"
grep -qE "^Complete requests: +2000$" <<<"$out" || fail "ab complete: $out"
grep -qE "^Failed requests: +0$" <<<"$out" || fail "ab failed: $out"
grep -qE "^Keep-Alive requests: +2000$" <<<"$out" || fail "ab keep-alive: $out"
grep -qE "^Document Length: +6 bytes$" <<<"$out" || fail "ab document length: $out"
out=$(h2load --h1 -n 2000 -c 10 -m 4 "$url/a.txt" 2>&1) || fail "h2load: $out"
grep -qE "2000 succeeded, 0 failed, 0 errored" <<<"$out" || fail "h2load: $out"
grep -qE "status codes: 2000 2xx" <<<"$out" || fail "h2load status codes: $out"

stop_server "$pid"

# --workers 2: two loops, each with its own SO_REUSEPORT socket; every
# request answered (200 connections without keep-alive, so both workers
# get some), one access log line each, and SIGTERM still exits 0.
"$serve" --port 0 --workers 2 "$root" >"$tmp/wout" 2>"$tmp/wlog" &
pid=$!
pids+=("$pid")
wport=$(wait_port "$tmp/wout" '^Serving HTTP on 127\.0\.0\.1 port ([0-9]+) ') ||
    fail "--workers 2: no 'Serving' line: $(cat "$tmp/wout" "$tmp/wlog")"
out=$(ab -q -n 200 -c 4 "http://127.0.0.1:$wport/a.txt" 2>&1) || fail "--workers 2 ab: $out"
grep -qE "^Complete requests: +200$" <<<"$out" || fail "--workers 2 complete: $out"
grep -qE "^Failed requests: +0$" <<<"$out" || fail "--workers 2 failed: $out"
curl -s --max-time "$((wait_s * 2))" "http://127.0.0.1:$wport/big.bin" -o "$tmp/big.workers"
cmp "$tmp/big.workers" "$root/big.bin" || fail "--workers 2: 5 MB file"
stop_server "$pid"
[[ $(grep -c '"GET /a.txt HTTP/1.0" 200 6' "$tmp/wlog") == 200 ]] || fail "--workers 2 log: $(head "$tmp/wlog")"
"$serve" --workers 0 "$root" 2>/dev/null && fail "--workers 0 accepted"
[[ $? == 2 ]] || fail "--workers 0: exit status"

# HTTPS (--tls-cert/--tls-key, --tls-port beside plain HTTP): curl and
# Python's ssl against the test CA; plain HTTP to the TLS port gets the
# 400; SIGHUP reloads the certificate (new connections see the new one,
# an open keep-alive connection goes on), and a reload that fails is
# logged and keeps the old one.  Skipped where there is no TLS.
certs=$tmp/certs
if ! command -v openssl >/dev/null; then
    echo "SKIP HTTPS part: no openssl tool"
elif ! grep -q "can not load" <<<"$("$serve" --port 0 --tls-cert /nonexistent --tls-key /nonexistent "$root" 2>&1)"; then
    echo "SKIP HTTPS part: corio-serve built without TLS"
else
    bash "$(dirname "${BASH_SOURCE[0]}")/tls/make_certs.sh" "$certs"
    cp "$certs/server.pem" "$tmp/live.pem"
    cp "$certs/server.key" "$tmp/live.key"
    "$serve" --port 0 --tls-port 0 --tls-cert "$tmp/live.pem" --tls-key "$tmp/live.key" "$root" \
        >"$tmp/tout" 2>"$tmp/tlog" &
    pid=$!
    pids+=("$pid")
    tport=$(wait_port "$tmp/tout" '^Serving HTTPS on 127\.0\.0\.1 port ([0-9]+) \(https://127\.0\.0\.1:[0-9]+/\) \.\.\.') ||
        fail "no 'Serving HTTPS on' line: $(cat "$tmp/tout" "$tmp/tlog")"
    hport=$(wait_port "$tmp/tout" '^Serving HTTP on 127\.0\.0\.1 port ([0-9]+) ') || fail "no plain HTTP beside HTTPS"
    surl=https://localhost:$tport
    tcurl() { curl -s --cacert "$certs/ca.pem" --max-time "$wait_s" "$@"; }
    [[ $(tcurl "$surl/a.txt") == hello ]] || fail "HTTPS a.txt"
    [[ $(curl -s --max-time "$wait_s" "http://127.0.0.1:$hport/a.txt") == hello ]] || fail "plain HTTP beside HTTPS"
    tcurl --max-time "$((wait_s * 2))" "$surl/big.bin" -o "$tmp/big.tls"
    cmp "$tmp/big.tls" "$root/big.bin" || fail "5 MB file over HTTPS differs"
    tcurl -r 4000000- "$surl/big.bin" -o "$tmp/r.tls"
    cmp "$tmp/r.tls" <(tail -c 1000000 "$root/big.bin") || fail "range over HTTPS"
    # two requests, one connection
    n=$(tcurl -v "$surl/a.txt" "$surl/sub/deeper/n.txt" 2>&1 | grep -c "Re-using existing connection") || true
    [[ $n == 1 ]] || fail "HTTPS keep-alive: curl did not reuse its connection"
    # plain HTTP to the HTTPS port: nginx's 400, then the close
    out=$(curl -s -i --max-time "$wait_s" "http://127.0.0.1:$tport/a.txt") || true
    grep -q "^HTTP/1.1 400 Bad Request" <<<"$out" || fail "plain HTTP to the TLS port: $out"
    grep -q "The plain HTTP request was sent to HTTPS port" <<<"$out" || fail "plain HTTP to the TLS port: $out"
    [[ $(tcurl "$surl/a.txt") == hello ]] || fail "HTTPS after a plain request"
    out=$(h2load --h1 -n 400 -c 4 -m 4 "$surl/a.txt" 2>&1) || fail "h2load over HTTPS: $out"
    grep -qE "400 succeeded, 0 failed, 0 errored" <<<"$out" || fail "h2load over HTTPS: $out"

    /usr/bin/python3 - "$tport" "$pid" "$certs" "$tmp" <<'PY' || fail "SIGHUP reload"
import http.client, os, shutil, signal, socket, ssl, sys, time
port, pid, certs, tmp = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
ca = ssl.create_default_context(cafile=certs + "/ca.pem")
def get(conn, path):
    conn.request("GET", path)
    r = conn.getresponse()
    body = r.read()
    assert r.status == 200 and not r.will_close, (r.status, r.will_close)
    return body
def cert_cn(name):
    """CN of the certificate a new connection asking for name verifies, or None"""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
            with ca.wrap_socket(s, server_hostname=name) as t:
                return dict(x[0] for x in t.getpeercert()["subject"])["commonName"]
    except ssl.SSLCertVerificationError:
        return None
def wait_for(cond, what):
    end = time.time() + 30
    while not cond():
        assert time.time() < end, what
        time.sleep(0.05)
old = http.client.HTTPSConnection("localhost", port, context=ca, timeout=30)
assert get(old, "/a.txt") == b"hello\n"
assert cert_cn("localhost") == "localhost" and cert_cn("other.test") is None
# the files now hold other.test's certificate: SIGHUP picks it up
shutil.copy(certs + "/other.pem", tmp + "/live.pem")
shutil.copy(certs + "/other.key", tmp + "/live.key")
os.kill(pid, signal.SIGHUP)
wait_for(lambda: cert_cn("other.test") == "other.test", "the new certificate after SIGHUP")
assert cert_cn("localhost") is None
assert get(old, "/a.txt") == b"hello\n"  # the old connection carries on
# a key that does not match: the reload fails, the current certificate stays
shutil.copy(certs + "/server.key", tmp + "/live.key")
os.kill(pid, signal.SIGHUP)
wait_for(lambda: "can not reload" in open(tmp + "/tlog").read(), "the failed reload's log line")
assert cert_cn("other.test") == "other.test"
assert get(old, "/sub/deeper/n.txt") == b"nested"
# SIGHUPs in a burst, some landing while a reload runs: each is a reload
# (or merges with one pending), never the end of the server
for _ in range(100):
    os.kill(pid, signal.SIGHUP)
    time.sleep(0.002)
assert cert_cn("other.test") == "other.test"
assert get(old, "/a.txt") == b"hello\n"
old.close()
PY
    grep -q "corio-serve: SIGHUP: reloaded 1 TLS certificate" "$tmp/tlog" || fail "reload log: $(tail -5 "$tmp/tlog")"
    grep -q "keeping the old ones" "$tmp/tlog" || fail "failed reload log: $(tail -5 "$tmp/tlog")"
    stop_server "$pid"

    # a certificate without --tls-port: --port itself is HTTPS; two pairs:
    # the second is chosen by SNI
    "$serve" --port 0 --tls-cert "$certs/server.pem" --tls-key "$certs/server.key" \
        --tls-cert "$certs/other.pem" --tls-key "$certs/other.key" "$root" >"$tmp/tout2" 2>/dev/null &
    pid=$!
    pids+=("$pid")
    tport=$(wait_port "$tmp/tout2" '^Serving HTTPS on 127\.0\.0\.1 port ([0-9]+) ') || fail "no HTTPS-only line: $(cat "$tmp/tout2")"
    grep -q "^Serving HTTP on" "$tmp/tout2" && fail "plain HTTP served without --tls-port"
    [[ $(tcurl "https://localhost:$tport/a.txt") == hello ]] || fail "HTTPS on --port"
    [[ $(tcurl --resolve "other.test:$tport:127.0.0.1" "https://other.test:$tport/a.txt") == hello ]] ||
        fail "SNI: other.test's certificate"
    [[ $(tcurl --resolve "x.wild.test:$tport:127.0.0.1" "https://x.wild.test:$tport/a.txt") == hello ]] ||
        fail "SNI: a wildcard name"
    stop_server "$pid"
    # usage errors
    "$serve" --tls-cert "$certs/server.pem" "$root" 2>/dev/null && fail "--tls-cert without --tls-key accepted"
    "$serve" --tls-port 0 "$root" 2>/dev/null && fail "--tls-port without a certificate accepted"
    "$serve" --port 0 --tls-cert "$certs/server.pem" --tls-key "$certs/other.key" "$root" 2>"$tmp/mismatch" &&
        fail "a key that does not match accepted"
    grep -q "can not load the TLS certificate" "$tmp/mismatch" || fail "mismatch message: $(cat "$tmp/mismatch")"
fi
echo "PASS corio-serve on ${CORIO_BACKEND:-auto}"
