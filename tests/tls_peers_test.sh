#!/usr/bin/env bash
# corio's TLS against real peers: examples/tls_echo and examples/tls_get
# with openssl s_client, Python's ssl module, curl and nginx, over
# certificates made at run time (tests/tls/make_certs.sh).
#   tls_peers_test.sh BUILD_DIR NAME      (CORIO_BACKEND picks the backend)
# NAME:
#   s_client   TLS 1.2 and 1.3 echo, then resumption: -sess_out, and -sess_in must report "Reused"
#   python     Python ssl client (exact bytes, 8 MiB, close_notify both ways, a client
#              that drops without close_notify is logged as one) and Python ssl server
#              for tls_get (Content-Length, close_notify-ended and truncated bodies)
#   curl       curl --cacert against corio-serve's HTTPS port
#   nginx      tls_get against nginx (TLS 1.2 and 1.3 ports) with the test certificates
#   refusals   tls_get refuses a wrong host name, an expired certificate, an unknown CA
#              and a server the system store does not trust, each saying why; and
#              reports a protocol error against a server that speaks no TLS
# A peer that is not installed skips the test (status 77); scripts/deps.sh's
# test group installs them all.
set -euo pipefail
build=$1
name=$2
here=$(dirname "${BASH_SOURCE[0]}")
# shellcheck source=tests/lib.sh
source "$here/lib.sh"
peers=$here/tls_peers.py

skip() { echo "SKIP: $*"; exit 77; }
need() { command -v "$1" >/dev/null || skip "$1 is not installed"; }

need openssl
need python3 # drives s_client too
[[ -x $build/tls_echo && -x $build/tls_get ]] || fail "examples tls_echo / tls_get not built in $build"
certs=$tmp/certs
"$here/tls/make_certs.sh" "$certs" || fail "make_certs.sh failed"

# start_echo CERT KEY: tls_echo in the background; sets port, echo_pid
# and the log file echo_log.  Each start has files of its own: the shell
# truncates a reused one only once the new process runs, so wait_port
# could read the previous server's port.
starts=0
start_echo() {
    starts=$((starts + 1))
    echo_log=$tmp/echo$starts.log
    "$build/tls_echo" "$1" "$2" 0 >"$tmp/echo$starts.out" 2>"$echo_log" &
    pids+=($!)
    echo_pid=$!
    if ! port=$(wait_port "$tmp/echo$starts.out" "listening on 127.0.0.1:([0-9]+)"); then
        grep -q "built without TLS" "$echo_log" && skip "corio was built without TLS"
        fail "tls_echo did not start: $(cat "$echo_log")"
    fi
}

case $name in
s_client)
    start_echo "$certs/server.pem" "$certs/server.key"
    for v in tls1_2 tls1_3; do
        got=$(python3 "$peers" s_client "$port" "$certs/ca.pem" "$v" "$tmp/$v.sess" -) ||
            fail "s_client -$v: $got"
        [[ $got == "New TLSv1.${v#tls1_}" ]] || fail "s_client -$v: $got, want a new TLSv1.${v#tls1_} session"
        [[ -s $tmp/$v.sess ]] || fail "s_client -$v wrote no session"
        # the saved session (a ticket) must be taken back
        got=$(python3 "$peers" s_client "$port" "$certs/ca.pem" "$v" - "$tmp/$v.sess") ||
            fail "s_client -$v -sess_in: $got"
        [[ $got == "Reused TLSv1.${v#tls1_}" ]] || fail "s_client -$v -sess_in: $got, want Reused"
    done
    # s_client ends with close_notify: nothing reads as a truncation
    ! grep -q "without close_notify" "$echo_log" || fail "tls_echo saw a truncation: $(cat "$echo_log")"
    stop_server "$echo_pid"
    ;;
python)
    start_echo "$certs/server.pem" "$certs/server.key"
    for v in tls1_2 tls1_3; do
        got=$(python3 "$peers" echo "$port" "$certs/ca.pem" "$v" 2>&1) ||
            fail "python client -$v: $got; tls_echo said: $(cat "$echo_log")"
        [[ $got == "TLSv1.${v#tls1_}" ]] || fail "python client negotiated $got, want TLSv1.${v#tls1_}"
    done
    got=$(python3 "$peers" echo "$port" "$certs/ca.pem") || fail "python client: $got"
    [[ $got == TLSv1.3 ]] || fail "python client with defaults negotiated $got, want TLSv1.3"
    ! grep -q "without close_notify" "$echo_log" || fail "a clean close read as a truncation"
    # a client that drops the TCP connection under TLS: the server reads
    # -CORIO_ETLSTRUNC, not EOF
    python3 "$peers" drop "$port" "$certs/ca.pem" || fail "python drop client"
    logged() { grep -q "a client left without close_notify" "$echo_log"; }
    wait_until logged || fail "a dropped connection was not reported as a truncation: $(cat "$echo_log")"
    stop_server "$echo_pid"

    # Python as the server, tls_get as the client
    python3 "$peers" server "$certs/server.pem" "$certs/server.key" >"$tmp/py.out" 2>"$tmp/py.log" &
    pids+=($!)
    pyport=$(wait_port "$tmp/py.out" "listening on 127.0.0.1:([0-9]+)") || fail "python server did not start"
    python3 -c 'import sys; sys.stdout.buffer.write(bytes(i % 251 for i in range(int(sys.argv[1]))))' 300000 \
        >"$tmp/want"
    for mode in cl eof; do
        "$build/tls_get" --cacert "$certs/ca.pem" localhost "$pyport" "/$mode/300000" >"$tmp/got" 2>"$tmp/err" ||
            fail "tls_get /$mode: status $?: $(cat "$tmp/err")"
        cmp -s "$tmp/got" "$tmp/want" || fail "tls_get /$mode: body differs ($(wc -c <"$tmp/got") bytes)"
    done
    # no close_notify after a body without Content-Length: a truncation,
    # never a whole body
    st=0
    "$build/tls_get" --cacert "$certs/ca.pem" localhost "$pyport" /cut/300000 >"$tmp/got" 2>"$tmp/err" || st=$?
    [[ $st == 1 ]] || fail "tls_get on a truncated body: status $st, want 1"
    grep -q "body cut short: .*close_notify" "$tmp/err" || fail "tls_get on a truncated body said: $(cat "$tmp/err")"
    st=0
    "$build/tls_get" --cacert "$certs/ca.pem" localhost "$pyport" /nothing >"$tmp/got" 2>"$tmp/err" || st=$?
    if [[ $st != 1 ]] || ! grep -q "^tls_get: HTTP/1.0 404 Not Found$" "$tmp/err"; then
        fail "tls_get 404: status $st, $(cat "$tmp/err")"
    fi
    [[ $(cat "$tmp/got") == "not found" ]] || fail "tls_get 404 body: $(cat "$tmp/got")"
    ;;
curl)
    need curl
    serve=$build/tools/corio-serve
    # not grep -q: it would stop reading at the match, and under pipefail the
    # help text's write to a closed pipe would fail the pipeline
    "$serve" --help 2>/dev/null | grep -- "--tls-cert" >/dev/null || skip "corio-serve has no --tls-cert yet"
    root=$tmp/root
    mkdir -p "$root"
    head -c 3000000 /dev/urandom >"$root/big.bin"
    printf 'hello over https\n' >"$root/a.txt"
    "$serve" --port 0 --tls-port 0 --tls-cert "$certs/server.pem" --tls-key "$certs/server.key" "$root" \
        >"$tmp/serve.out" 2>"$tmp/serve.log" &
    pids+=($!)
    serve_pid=$!
    tport=$(wait_port "$tmp/serve.out" "Serving HTTPS on 127\.0\.0\.1 port ([0-9]+)") ||
        fail "no 'Serving HTTPS on' line: $(cat "$tmp/serve.out" "$tmp/serve.log")"
    for v in --tlsv1.2 --tlsv1.3; do
        got=$(curl -s --max-time "$wait_s" --cacert "$certs/ca.pem" "$v" --tls-max "${v#--tlsv}" \
            "https://localhost:$tport/a.txt") ||
            fail "curl $v: status $?"
        [[ $got == "hello over https" ]] || fail "curl $v: $got"
    done
    curl -s --max-time "$wait_s" --cacert "$certs/ca.pem" "https://localhost:$tport/big.bin" -o "$tmp/big" ||
        fail "curl big.bin: status $?"
    cmp -s "$tmp/big" "$root/big.bin" || fail "curl big.bin differs"
    # curl verifies too: without our CA it refuses
    st=0
    curl -s --max-time "$wait_s" "https://localhost:$tport/a.txt" >/dev/null || st=$?
    [[ $st == 60 ]] || fail "curl without --cacert: status $st, want 60 (peer certificate cannot be authenticated)"
    stop_server "$serve_pid"
    ;;
nginx)
    nginx=$(command -v nginx || echo /usr/sbin/nginx)
    [[ -x $nginx ]] || skip "nginx is not installed"
    mkdir -p "$tmp/www" "$tmp/nginx"
    head -c 1000000 /dev/urandom >"$tmp/www/big.bin"
    printf 'hello from nginx\n' >"$tmp/www/a.txt"
    # two free ports (nginx cannot report a port 0 it was given); a port
    # taken between here and nginx's bind makes nginx fail: try again
    for attempt in 1 2 3; do
        read -r p12 p13 < <(python3 -c '
import socket
a, b = socket.socket(), socket.socket()
a.bind(("127.0.0.1", 0)); b.bind(("127.0.0.1", 0))
print(a.getsockname()[1], b.getsockname()[1])')
        cat >"$tmp/nginx/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log warn;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path $tmp/nginx/body;
    proxy_temp_path $tmp/nginx/proxy;
    fastcgi_temp_path $tmp/nginx/fastcgi;
    uwsgi_temp_path $tmp/nginx/uwsgi;
    scgi_temp_path $tmp/nginx/scgi;
    ssl_certificate $certs/server.pem;
    ssl_certificate_key $certs/server.key;
    root $tmp/www;
    server { listen 127.0.0.1:$p12 ssl; ssl_protocols TLSv1.2; }
    server { listen 127.0.0.1:$p13 ssl; ssl_protocols TLSv1.3; }
}
EOF
        "$nginx" -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" -e "$tmp/nginx/error.log" 2>>"$tmp/nginx/stderr" &
        nginx_pid=$!
        pids+=("$nginx_pid")
        up() { kill -0 "$nginx_pid" 2>/dev/null && (exec 3<>"/dev/tcp/127.0.0.1/$p13") 2>/dev/null; }
        wait_until up && break
        kill -0 "$nginx_pid" 2>/dev/null && fail "nginx did not listen: $(cat "$tmp/nginx/error.log")"
        [[ $attempt == 3 ]] && fail "nginx did not start: $(cat "$tmp/nginx/error.log" "$tmp/nginx/stderr")"
    done
    for p in "$p12" "$p13"; do
        "$build/tls_get" --cacert "$certs/ca.pem" localhost "$p" /a.txt >"$tmp/got" 2>"$tmp/err" ||
            fail "tls_get from nginx port $p: $(cat "$tmp/err")"
        [[ $(cat "$tmp/got") == "hello from nginx" ]] || fail "tls_get a.txt from nginx: $(cat "$tmp/got")"
        "$build/tls_get" --cacert "$certs/ca.pem" localhost "$p" /big.bin >"$tmp/got" 2>"$tmp/err" ||
            fail "tls_get big.bin from nginx port $p: $(cat "$tmp/err")"
        cmp -s "$tmp/got" "$tmp/www/big.bin" || fail "big.bin from nginx port $p differs"
        # by IP address too (the certificate has IP:127.0.0.1)
        "$build/tls_get" --cacert "$certs/ca.pem" 127.0.0.1 "$p" /a.txt >"$tmp/got" 2>"$tmp/err" ||
            fail "tls_get 127.0.0.1 from nginx: $(cat "$tmp/err")"
    done
    st=0
    "$build/tls_get" --cacert "$certs/ca.pem" localhost "$p13" /missing >/dev/null 2>"$tmp/err" || st=$?
    if [[ $st != 1 ]] || ! grep -q "404 Not Found" "$tmp/err"; then
        fail "tls_get 404 from nginx: $st $(cat "$tmp/err")"
    fi
    kill "$nginx_pid"
    wait "$nginx_pid" || true
    ;;
refusals)
    # refuse CERT KEY WHY [CACERT]: tls_get against tls_echo serving
    # CERT must exit 1 saying the certificate did not verify, and WHY
    refuse() {
        start_echo "$1" "$2"
        local st=0 args=()
        [[ ${4:-} == system ]] || args=(--cacert "${4:-$certs/ca.pem}")
        "$build/tls_get" "${args[@]}" localhost "$port" / >"$tmp/got" 2>"$tmp/err" || st=$?
        [[ $st == 1 ]] || fail "tls_get against $(basename "$1"): status $st, want 1"
        [[ $(cat "$tmp/err") == "tls_get: localhost:$port: certificate did not verify: $3" ]] ||
            fail "tls_get against $(basename "$1") said: $(cat "$tmp/err"), want: ... $3"
        [[ ! -s $tmp/got ]] || fail "tls_get printed a body after a refusal"
        stop_server "$echo_pid"
    }
    refuse "$certs/wronghost.pem" "$certs/wronghost.key" "hostname mismatch"
    refuse "$certs/expired.pem" "$certs/expired.key" "certificate has expired"
    refuse "$certs/rogue.pem" "$certs/rogue.key" "unable to get local issuer certificate"
    # verification is on without --cacert too: the system store does not know our CA
    refuse "$certs/server.pem" "$certs/server.key" "unable to get local issuer certificate" system
    # a server that speaks no TLS: a protocol error, said as such
    python3 -m http.server --bind 127.0.0.1 0 >"$tmp/plain.out" 2>&1 &
    pids+=($!)
    pport=$(wait_port "$tmp/plain.out" "Serving HTTP on 127\.0\.0\.1 port ([0-9]+)") || fail "python http.server"
    st=0
    "$build/tls_get" --cacert "$certs/ca.pem" localhost "$pport" / >"$tmp/got" 2>"$tmp/err" || st=$?
    [[ $st == 1 && $(cat "$tmp/err") == "tls_get: localhost:$pport: TLS protocol error: "* ]] ||
        fail "tls_get against plain HTTP: status $st: $(cat "$tmp/err")"
    ;;
*)
    fail "unknown test $name"
    ;;
esac
