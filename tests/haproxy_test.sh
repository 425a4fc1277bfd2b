#!/usr/bin/env bash
# corio-serve behind a real load balancer.  First the drain alone (no
# balancer): --health answers 200 "ok"; after SIGTERM it answers 503
# "draining", files are still served (with "Connection: close") during the
# drain delay, a second SIGTERM ends the delay, a download in flight
# completes and the server exits 0; SIGINT stops it without a delay.
# Then HAProxy (Debian's) on loopback in front of three corio-serve
# processes, with health checks on the route, retries, redispatch and
# retry-on for idempotent GETs, while a Python client keeps GETs going
# through it:
#   1. SIGKILL one backend mid-load: HAProxy marks it DOWN, and every
#      request is still answered 200 with the right body;
#   2. restart it on its port: HAProxy marks it UP and it gets requests;
#   3. SIGTERM another: its health route turns 503, HAProxy marks it DOWN
#      on that (L7STS 503), a second SIGTERM ends its drain, it exits 0,
#      and still no request fails.
# Every wait is for an event (the stats socket, a log line, the client's
# progress counter) under lib.sh's one ceiling; nothing sleeps to settle.
# Skips (77) when haproxy is not installed (scripts/deps.sh test installs it).
#   haproxy_test.sh BUILD_DIR      (CORIO_BACKEND picks the backend)
set -euo pipefail
build=$1
serve=$build/tools/corio-serve
# shellcheck source=tests/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

command -v python3 >/dev/null || { echo "SKIP: python3 missing"; exit 77; }
root=$tmp/root
mkdir -p "$root"
printf 'alpha %.0s' {1..100} >"$root/a.txt"
head -c 20000 /dev/urandom | base64 >"$root/b.txt"
printf 'not the health route\n' >"$root/healthz"

# An HTTP exchange with Python (curl may be missing): prints
# "STATUS|Connection header|body" for one GET on a fresh connection.
cat >"$tmp/get.py" <<'EOF'
import http.client, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=30)
c.request(sys.argv[3] if len(sys.argv) > 3 else "GET", sys.argv[2])
r = c.getresponse()
print(f"{r.status}|{r.getheader('Connection', '')}|{r.read().decode()}", end="")
EOF
get() { python3 "$tmp/get.py" "$@"; }
# SIGINT PID: it must exit with status 0 within $wait_s, drain delay or not
stop_int() {
    local status=0 p left=()
    kill -INT "$1"
    wait_until eval "! kill -0 $1 2>/dev/null" || fail "still running $wait_s s after SIGINT"
    wait "$1" || status=$?
    for p in "${pids[@]}"; do [[ $p == "$1" ]] || left+=("$p"); done
    pids=("${left[@]}")
    [[ $status == 0 ]] || fail "exit status $status after SIGINT"
}

# ---- 1. the drain, without a balancer ------------------------------------
"$serve" --port 0 --health /healthz --drain-delay 600000 "$root" >"$tmp/d.out" 2>"$tmp/d.err" &
pid=$!
pids+=("$pid")
port=$(wait_port "$tmp/d.out" '^Serving HTTP on 127\.0\.0\.1 port ([0-9]+) ') || fail "no Serving line: $(cat "$tmp/d.err")"
[[ $(get "$port" /healthz) == '200||ok' ]] || fail "health while serving: $(get "$port" /healthz)"
[[ $(get "$port" '/healthz?probe=1' HEAD) == '200||' ]] || fail "HEAD health with a query"
[[ $(get "$port" /healthz OPTIONS) == '200||ok' ]] || fail "OPTIONS health"
[[ $(get "$port" /a.txt) == "200||$(cat "$root/a.txt")" ]] || fail "a file while serving"
kill -TERM "$pid"
wait_port "$tmp/d.err" '^(corio-serve: SIGTERM: draining for 600000 ms \(health route answers 503\))$' >/dev/null ||
    fail "no drain note: $(cat "$tmp/d.err")"
[[ $(get "$port" /healthz) == '503|close|draining' ]] || fail "health while draining: $(get "$port" /healthz)"
[[ $(get "$port" /a.txt) == "200|close|$(cat "$root/a.txt")" ]] || fail "a file while draining"
grep -q '"GET /healthz HTTP/1.1" 503 9$' "$tmp/d.err" || fail "no 503 health line in the log: $(cat "$tmp/d.err")"
# a download in flight when the server stops must still complete: the
# client takes the head, waits until the listener is gone (a connect is
# refused), then reads the rest and compares it byte for byte
head -c 8000000 /dev/urandom >"$root/big.bin"
cat >"$tmp/inflight.py" <<'EOF'
import socket, sys, time
port, path, want = int(sys.argv[1]), sys.argv[2], open(sys.argv[3], "rb").read()
c = socket.create_connection(("127.0.0.1", port), timeout=30)
c.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
data = c.recv(65536)
open(path, "w").write("started\n")
deadline = time.monotonic() + 30
while time.monotonic() < deadline:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=30).close()
        time.sleep(0.02)
    except ConnectionRefusedError:
        break
else:
    sys.exit("the listener never closed")
head, _, body = data.partition(b"\r\n\r\n")
while len(body) < len(want):
    chunk = c.recv(1 << 20)
    if not chunk:
        break
    body += chunk
assert head.startswith(b"HTTP/1.1 200 "), head
assert body == want, f"{len(body)} of {len(want)} bytes, or other bytes"
print("complete")
EOF
python3 "$tmp/inflight.py" "$port" "$tmp/inflight.started" "$root/big.bin" >"$tmp/inflight.out" 2>&1 &
ipid=$!
wait_until test -e "$tmp/inflight.started" || fail "the download did not start: $(cat "$tmp/inflight.out")"
stop_server "$pid" # the second SIGTERM ends the 10-minute delay
status=0
wait "$ipid" || status=$?
[[ $status == 0 && $(cat "$tmp/inflight.out") == complete ]] || fail "download in flight: $(cat "$tmp/inflight.out")"
grep -q '^Termination signal received, exiting\.$' "$tmp/d.err" || fail "no exit note: $(cat "$tmp/d.err")"
# SIGINT: no drain delay at all (new files: the old Serving line must not count)
"$serve" --port 0 --health /healthz --drain-delay 600000 "$root" >"$tmp/i.out" 2>"$tmp/i.err" &
pid=$!
pids+=("$pid")
port=$(wait_port "$tmp/i.out" '^Serving HTTP on 127\.0\.0\.1 port ([0-9]+) ') || fail "no Serving line"
[[ $(get "$port" /healthz) == '200||ok' ]] || fail "health before SIGINT"
stop_int "$pid"
! grep -q draining "$tmp/i.err" || fail "SIGINT drained: $(cat "$tmp/i.err")"
# bad options
for bad in "--health healthz" "--health /a?b" "--drain-delay -1" "--drain-delay 1s" "--drain-delay 3600001"; do
    status=0
    # shellcheck disable=SC2086 # the words of $bad are the arguments
    "$serve" $bad "$root" 2>"$tmp/bad.err" || status=$?
    [[ $status == 2 ]] || fail "'$bad': exit status $status"
    grep -q "^corio-serve: bad " "$tmp/bad.err" || fail "'$bad': $(cat "$tmp/bad.err")"
done

# ---- 2. HAProxy in front of three backends --------------------------------
command -v haproxy >/dev/null || { echo "SKIP: haproxy missing (scripts/deps.sh test)"; exit 77; }

# backend i: corio-serve on 127.0.0.1:${bport[i]}, log $tmp/b$i.<n>.err
declare -a bpid bport
start_backend() { # i [port]
    local i=$1 n=0
    while [[ -e $tmp/b$i.$n.err ]]; do n=$((n + 1)); done
    blog[i]=$tmp/b$i.$n.err
    "$serve" --port "${2:-0}" --health /healthz --drain-delay 600000 "$root" >"$tmp/b$i.$n.out" 2>"${blog[i]}" &
    bpid[i]=$!
    pids+=("${bpid[i]}")
    bport[i]=$(wait_port "$tmp/b$i.$n.out" '^Serving HTTP on 127\.0\.0\.1 port ([0-9]+) ') ||
        fail "backend $i did not start: $(cat "${blog[i]}")"
}
declare -a blog
for i in 1 2 3; do start_backend $i; done

fport=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$tmp/haproxy.cfg" <<EOF
global
    stats socket $tmp/haproxy.sock mode 600 level admin
    log stdout format raw local0 info
    nbthread 1

defaults
    mode http
    log global
    option httplog
    timeout connect 5s
    timeout client 60s
    timeout server 30s
    timeout http-keep-alive 60s
    timeout check 5s
    # idempotent GETs: retry a failed connect, a closed connection and an
    # empty answer, each time on another server
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response response-timeout

frontend web
    bind 127.0.0.1:$fport
    default_backend corio

backend corio
    balance roundrobin
    # retry-on resends what may have reached a server: GET and HEAD only
    http-request disable-l7-retry if !METH_GET
    option httpchk
    http-check send meth GET uri /healthz ver HTTP/1.1 hdr Host lb
    http-check expect status 200
    default-server check inter 100ms fastinter 100ms downinter 100ms fall 2 rise 2
    server s1 127.0.0.1:${bport[1]}
    server s2 127.0.0.1:${bport[2]}
    server s3 127.0.0.1:${bport[3]}
EOF
haproxy -c -q -f "$tmp/haproxy.cfg" || fail "haproxy rejects the configuration"
haproxy -db -f "$tmp/haproxy.cfg" >"$tmp/haproxy.log" 2>&1 &
hpid=$!
pids+=("$hpid")

# stat SV F1,F2...: those fields of server SV, from the stats socket ("show stat")
cat >"$tmp/stat.py" <<'EOF'
import csv, socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(30)
s.connect(sys.argv[1])
s.sendall(b"show stat\n")
data = b""
while chunk := s.recv(65536):
    data += chunk
rows = csv.reader(data.decode().lstrip("# ").splitlines())
head = next(rows)
for row in rows:
    if len(row) == len(head) and row[0] == "corio" and row[1] == sys.argv[2]:
        print(",".join(row[head.index(f)] for f in sys.argv[3].split(",")))
EOF
stat() { python3 "$tmp/stat.py" "$tmp/haproxy.sock" "$@" 2>/dev/null; }
is_state() { [[ $(stat "$1" status) == "$2" ]]; }
for s in s1 s2 s3; do
    wait_until is_state $s UP || fail "$s never UP: $(stat $s status,check_status,last_chk) $(cat "$tmp/haproxy.log")"
done

# The load: 4 connections to HAProxy, keep-alive, GETs of a.txt and b.txt
# until $tmp/stop appears; every answer must be 200 with the exact body.
# $tmp/progress holds the count so far.  Bounded: 200000 requests or 240 s.
cat >"$tmp/load.py" <<'EOF'
import http.client, os, sys, threading, time
port, root, tmp = int(sys.argv[1]), sys.argv[2], sys.argv[3]
want = {p: open(os.path.join(root, p[1:]), "rb").read() for p in ("/a.txt", "/b.txt")}
paths = list(want)
count, failures, lock = [0], [], threading.Lock()
deadline, cap = time.monotonic() + 240, 200000
stop = os.path.join(tmp, "stop")
def worker(k):
    conn, n = None, k
    while not os.path.exists(stop) and time.monotonic() < deadline and count[0] < cap:
        path = paths[n % 2]
        n += 1
        try:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("GET", path)
            r = conn.getresponse()
            body = r.read()
            ok = r.status == 200 and body == want[path]
            why = f"{path}: {r.status} with {len(body)} bytes"
        except http.client.IncompleteRead as e:
            # s1 killed mid-answer: its head had reached us, so HAProxy
            # cannot retry it; allowed only while the SIGKILL is on
            ok, why = os.path.exists(os.path.join(tmp, "killing")), f"{path}: {e!r}"
            conn.close()
            conn = None
        except Exception as e:
            ok, why = False, f"{path}: {e!r}"
            conn.close()
            conn = None
        with lock:
            count[0] += 1
            if not ok:
                failures.append(why)
threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
for t in threads:
    t.start()
while any(t.is_alive() for t in threads):
    with open(os.path.join(tmp, "progress.new"), "w") as f:
        f.write(str(count[0]))
    os.replace(os.path.join(tmp, "progress.new"), os.path.join(tmp, "progress"))
    time.sleep(0.02)
for t in threads:
    t.join()
print(f"requests {count[0]} failures {len(failures)}")
for f in failures[:10]:
    print("  " + f)
if not os.path.exists(stop):
    print("stopped by its bound (240 s or 200000 requests) before the test ended")
    sys.exit(1)
sys.exit(1 if failures else 0)
EOF
python3 "$tmp/load.py" "$fport" "$root" "$tmp" >"$tmp/load.out" 2>&1 &
lpid=$!
pids+=("$lpid")
progress() { cat "$tmp/progress" 2>/dev/null || echo 0; }
# wait until the client has done N more requests than now
more() {
    local goal=$(($(progress) + $1))
    reached() { (($(progress) >= goal)) || ! kill -0 "$lpid" 2>/dev/null; }
    wait_until reached || fail "the load stalled at $(progress) requests: $(cat "$tmp/load.out")"
    kill -0 "$lpid" 2>/dev/null || fail "the load ended early: $(cat "$tmp/load.out")"
}
# GETs of a file (not the health route) in a backend's log
served() { grep -c '"GET /[ab]\.txt HTTP/1\.1" 200 ' "$1" || true; }
more 300

# 1. SIGKILL s1 mid-load
touch "$tmp/killing" # an answer s1 had begun may arrive cut short
{
    kill -KILL "${bpid[1]}"
    wait "${bpid[1]}" || true
} 2>/dev/null
wait_until is_state s1 DOWN || fail "s1 not DOWN after SIGKILL: $(stat s1 status,check_status)"
more 50 # requests in flight at the kill have ended
rm -f "$tmp/killing"
more 300

# 2. restart it on its port: UP again, and it gets requests
start_backend 1 "${bport[1]}"
wait_until is_state s1 UP || fail "s1 not UP after its restart: $(stat s1 status,check_status)"
gets() { (($(served "${blog[1]}") >= 50)); }
wait_until gets || fail "the restarted s1 got $(served "${blog[1]}") requests"
more 300

# 3. SIGTERM s2: drain, HAProxy sees the 503, a second SIGTERM stops it
kill -TERM "${bpid[2]}"
wait_port "${blog[2]}" '^(corio-serve: SIGTERM: draining)' >/dev/null || fail "s2 did not drain: $(cat "${blog[2]}")"
wait_until is_state s2 DOWN || fail "s2 not DOWN while draining: $(stat s2 status,check_status,check_code)"
# (asked until it answers: a stats query that fails under load prints nothing)
down_by_503() { [[ $(stat s2 check_status,check_code) == L7STS,503 ]]; }
wait_until down_by_503 || fail "s2 DOWN for another reason: $(stat s2 check_status,check_code)"
grep -q '"GET /healthz HTTP/1.1" 503 9$' "${blog[2]}" || fail "s2 never answered 503 to a check"
stop_server "${bpid[2]}"
more 300

touch "$tmp/stop"
status=0
wait "$lpid" || status=$?
[[ $status == 0 ]] || fail "the load through HAProxy: $(cat "$tmp/load.out")"
echo "load through HAProxy: $(head -1 "$tmp/load.out"); retries $(stat s1 wretr) redispatches $(stat s1 wredis) on s1"
kill -TERM "$hpid"
wait "$hpid" 2>/dev/null || true
for i in 1 3; do stop_int "${bpid[i]}"; done
