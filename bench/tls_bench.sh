#!/usr/bin/env bash
# tls_bench.sh — HTTPS through corio against nginx and h2o (issue 11), every
# server with the same ECDSA P-256 certificate and key
# (tests/tls/make_certs.sh) and the same OpenSSL.
#
# Every server runs pinned to SERVER_CPU (default 0), the load to CLIENT_CPU
# (default 1).  Four points:
#
#   hs       new TLS 1.3 connections, one request each: h2load --h1 with
#            "Connection: close", HS_REQS requests over HS_CONNS concurrent
#            clients, the seed's response.  Full handshakes (ECDHE X25519 +
#            an ECDSA P-256 signature): every server runs with session
#            tickets and its session cache off, because h2load resumes
#            sessions when it can (TICKETS=1 turns them on; then most
#            handshakes are resumed ones).  Figures: handshakes/s and server
#            CPU per handshake (accept, handshake, request, close).
#   ka_c100  keep-alive HTTPS, 100 connections (wrk -t1 -c100), the seed's
#            response: req/s and server CPU per request.
#   bulk     one 1 GiB file (BULK_MIB; sparse, on /dev/shm, so neither disk
#            nor page cache matters) over one HTTPS connection
#            (curl --cacert -o /dev/null): MB/s and server CPU per MiB.  The
#            corio side is corio-serve --tls-cert --tls-key.  curl decrypts
#            at some 450 MB/s here and sets the pace: BULK_CLIENT=bulk_get
#            (bench/bulk_get.c, plain OpenSSL, 64 KiB reads) is faster.
#   idle     IDLE_CONNS TLS connections (full handshake, one request, then
#            idle; bench/idle_tls) against a freshly started server: bytes of
#            server RSS (and Pss) per connection.  Once with session tickets
#            on (every server's default) and once with them off
#            (IDLE_TICKETS="on off"): OpenSSL keeps different state per
#            connection in the two cases.
#
# Runs are interleaved (rep 1 of every server, then rep 2, ..., the order
# rotated each rep) so machine noise hits every server alike; hs and ka_c100
# runs follow a short warm-up with the same load.  Server CPU is
# utime+stime of the server's process tree (nginx's master and worker)
# from /proc/PID/stat across the run.  Output, medians and same-run ratios:
#
#   tls_hs_uring_rps: 1234 req/s             handshakes (= requests) per second
#   tls_hs_uring_cpu: 456.789 us/req         server CPU per handshake
#   tls_hs_uring_vs_nginx: 1.10 x            corio / peer (>1: corio faster)
#   tls_hs_uring_vs_nginx_cpu: 0.90 x        corio / peer (<1: corio cheaper)
#   tls_bulk_uring_rps: 900 MB/s             (bulk: MB/s and us/MiB)
#   tls_idle_on_uring_bytes: 5000 B/conn     (idle, tickets on: RSS; _pss_bytes: Pss)
#
# Servers: epoll and uring (bench/https_hello for the seed's response,
# tools/corio-serve for the file, CORIO_BACKEND forced), nginx (one worker,
# generated config: `return 200` with the seed's headers, and the file
# through its static handler), h2o (num-threads 1, file handlers; Debian
# package h2o).  Missing ones are skipped with a note.  Progress goes to
# stderr, `name: value unit` to stdout.
#
# Knobs: BUILD (build dir, default build), POINTS ("hs ka_c100 bulk idle"),
# SERVERS ("epoll uring nginx h2o"), REPS (3), DURATION (3, ka_c100),
# WARMUP (1), HS_REQS (2000), HS_CONNS (50), BULK_MIB (1024), IDLE_CONNS
# (10000), TICKETS (0; for hs and ka_c100), IDLE_TICKETS ("on off"),
# BULK_CLIENT (curl, or bulk_get),
# BASE_PORT (19300), SERVER_CPU (0), CLIENT_CPU (1).  The defaults take
# about 6 minutes on a quiet machine, 10 on a busy one.
set -u

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=bench/lib.sh
source "$here/lib.sh"
BUILD=${BUILD:-build}
POINTS=${POINTS:-"hs ka_c100 bulk idle"}
SERVERS=${SERVERS:-"epoll uring nginx h2o"}
REPS=${REPS:-3}
DURATION=${DURATION:-3}
WARMUP=${WARMUP:-1}
HS_REQS=${HS_REQS:-2000}
HS_CONNS=${HS_CONNS:-50}
BULK_MIB=${BULK_MIB:-1024}
IDLE_CONNS=${IDLE_CONNS:-10000}
TICKETS=${TICKETS:-0}
IDLE_TICKETS=${IDLE_TICKETS:-"on off"}
BULK_CLIENT=${BULK_CLIENT:-curl}
BASE_PORT=${BASE_PORT:-19300}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
NOFILE=$(ulimit -Hn)
[[ $NOFILE == unlimited ]] && NOFILE=1048576
# The load tools and idle_tls inherit the raised soft limit.
ulimit -Sn "$NOFILE"

resolve_build

for t in h2load wrk curl openssl; do
    command -v "$t" >/dev/null || { echo "tls_bench: $t not installed (scripts/deps.sh bench)" >&2; exit 2; }
done
HELLO=$(first_file "$BUILD/bench/https_hello" "$BUILD/https_hello") || HELLO=
SERVE=$(first_file "$BUILD/tools/corio-serve" "$BUILD/corio-serve") || SERVE=
IDLE=$(first_file "$BUILD/bench/idle_tls" "$BUILD/idle_tls") || IDLE=
BULK_GET=$(first_file "$BUILD/bench/bulk_get" "$BUILD/bulk_get") || BULK_GET=
if [[ $BULK_CLIENT == bulk_get && -z $BULK_GET ]]; then
    echo "tls_bench: BULK_CLIENT=bulk_get but bench/bulk_get is not built" >&2
    exit 2
fi
NGINX=$(command -v nginx || first_file /usr/sbin/nginx) || NGINX=
H2O=$(command -v h2o || first_file /usr/sbin/h2o) || H2O=
CLK_TCK=$(getconf CLK_TCK)

server_tmp
# Run as root, nginx and h2o drop their workers to nobody, who must still
# read the certificate, the key and the files.
chmod 755 "$tmp"
"$root/tests/tls/make_certs.sh" "$tmp/certs" || { echo "tls_bench: cannot make certificates" >&2; exit 2; }
chmod -R a+rX "$tmp/certs"
CERT=$tmp/certs/server.pem
KEY=$tmp/certs/server.key
CA=$tmp/certs/ca.pem
# The served directory, on tmpfs: hello.txt (h2o's seed body) and big, a
# sparse file (reads of a hole cost no disk and no page cache).  It is one
# directory, as corio-serve refuses symlinks that leave the one it serves.
www=$(mktemp -d /dev/shm/tls_bench.XXXXXX)
trap 'server_cleanup; rm -rf "$www"' EXIT
chmod 755 "$www"
printf 'Hello, world!' >"$www/hello.txt"
truncate -s "${BULK_MIB}M" "$www/big"
chmod 644 "$www/big" "$www/hello.txt"

# What corio's servers run: the seed's response (hello) or corio-serve (file).
MODE="hello"

write_nginx_conf() { # DIR PORT
    # One worker, no logging, TLS; / is the seed's response as in
    # bench/http_bench.sh, other paths are files from $www.
    local tickets="ssl_session_tickets off; ssl_session_cache off;"
    [[ $TICKETS == 1 ]] && tickets="ssl_session_tickets on; ssl_session_cache shared:SSL:10m;"
    mkdir -p "$1"
    {
        nginx_conf_head "$1" 1 "$NOFILE"
        echo "http {"
        echo "    access_log off;"
        echo "    sendfile on;"
        nginx_http_common "$1"
        cat <<EOF
    server {
        listen 127.0.0.1:$2 ssl backlog=4096;
        ssl_certificate $CERT;
        ssl_certificate_key $KEY;
        ssl_protocols TLSv1.2 TLSv1.3;
        $tickets
        root $www;
EOF
        nginx_hello_location "= /"
        cat <<EOF
    }
}
EOF
    } >"$1/nginx.conf"
}

write_h2o_conf() { # DIR PORT
    local resumption=off
    [[ $TICKETS == 1 ]] && resumption=all
    mkdir -p "$1"
    # h2o 2.2 has no "return a string" directive: its file handler serves
    # the seed's body (it adds last-modified and accept-ranges).
    cat >"$1/h2o.conf" <<EOF
num-threads: 1
max-connections: $NOFILE
error-log: $1/error.log
# idle keep-alive connections stay as long as nginx's (75 s; h2o closes at 10 s)
http1-request-timeout: 75
ssl-session-resumption:
  mode: $resumption
listen:
  host: 127.0.0.1
  port: $2
  ssl:
    certificate-file: $CERT
    key-file: $KEY
    minimum-version: TLSv1.2
hosts:
  default:
    paths:
      /big:
        file.file: $www/big
      /:
        file.file: $www/hello.txt
        file.etag: OFF
        header.add: "Access-Control-Allow-Origin: *"
        header.add: "Access-Control-Allow-Methods: GET, POST, PUT, DELETE, OPTIONS"
        header.add: "Access-Control-Allow-Headers: Content-Type"
EOF
}

corio_cmd() { # BACKEND PORT
    local notickets=()
    [[ $TICKETS == 1 ]] || notickets=(--no-tickets)
    if [[ $MODE == file ]]; then
        [[ -n $SERVE ]] && printf '%s\n' env CORIO_BACKEND="$1" "$SERVE" --quiet --port "$2" \
            --tls-cert "$CERT" --tls-key "$KEY" "$www"
    else
        [[ -n $HELLO ]] && printf '%s\n' env CORIO_BACKEND="$1" "$HELLO" --port "$2" \
            --cert "$CERT" --key "$KEY" "${notickets[@]}"
    fi
}

server_cmd() {
    case $1 in
    epoll) corio_cmd epoll "$2" ;;
    uring) corio_cmd io_uring "$2" ;;
    nginx) [[ -n $NGINX ]] || return 1
        write_nginx_conf "$tmp/nginx$2" "$2"
        printf '%s\n' "$NGINX" -p "$tmp/nginx$2" -c "$tmp/nginx$2/nginx.conf" -e "$tmp/nginx$2/error.log" ;;
    h2o) [[ -n $H2O ]] || return 1
        write_h2o_conf "$tmp/h2o$2" "$2"
        printf '%s\n' "$H2O" -c "$tmp/h2o$2/h2o.conf" ;;
    *) return 1 ;;
    esac
}

# Up once it answers 200 over TLS with our CA (file mode: the file's head).
server_ready() {
    local path=/
    [[ $MODE == file ]] && path=/hello.txt
    curl -sf -o /dev/null --max-time 1 --cacert "$CA" "https://127.0.0.1:$2$path"
}
UNREADY="did not start or does not answer 200 over HTTPS"

server_started() {
    local url="https://127.0.0.1:${PORT[$1]}/" hdr
    hdr=$(curl -s --cacert "$CA" -D - -o /dev/null -w '%{size_header}+%{size_download} bytes' "$url" |
        tr -d '\r' | paste -sd '|')
    note "$1 ($MODE): pid ${PID[$1]} port ${PORT[$1]}: $hdr"
}

SERVER_PREFIX=(prlimit --nofile="$NOFILE:$NOFILE")
has_point() { [[ " $POINTS " == *" $1 "* ]]; }

# Server CPU of NAME since ticks T0, in microseconds per UNIT of N units.
cpu_per() { # NAME T0 N SCALE
    local t1
    t1=$(tree_ticks "${PID[$1]}")
    awk -v d="$((t1 - $2))" -v hz="$CLK_TCK" -v n="$3" -v s="${4:-1}" \
        'BEGIN { printf "%.3f", d * 1e6 / hz / (n / s) }'
}

# hs: HS_REQS one-request connections; prints "rps cpu" or fails with a note.
run_hs() { # NAME REP
    local s=$1 url="https://127.0.0.1:${PORT[$1]}/" out t0 ok rps cpu
    local h2=(timeout 120 taskset -c "$CLIENT_CPU" h2load --h1 -t1 -H 'Connection: close')
    [[ $WARMUP != 0 ]] && "${h2[@]}" -n 200 -c "$HS_CONNS" "$url" >/dev/null 2>&1
    t0=$(tree_ticks "${PID[$s]}")
    out=$("${h2[@]}" -n "$HS_REQS" -c "$HS_CONNS" "$url" 2>&1)
    cpu=$(cpu_per "$s" "$t0" "$HS_REQS")
    ok=$(awk '/^requests:/ { print $8 }' <<<"$out")
    rps=$(awk '/^finished in/ { print $4 }' <<<"$out")
    if [[ $ok != "$HS_REQS" || -z $rps ]]; then
        note "rep $2 tls_hs_$s FAILED: $(grep -E '^(requests|status|finished)' <<<"$out" | tr '\n' ' ')"
        return 1
    fi
    record "tls_hs_$s" "$rps" "$cpu"
    note "rep $2 tls_hs_$s: $rps handshakes/s, $cpu us/handshake ($(grep -m1 -E '^TLS Protocol' <<<"$out"))"
}

# ka_c100: wrk over 100 keep-alive HTTPS connections.
run_ka() { # NAME REP
    local s=$1 url="https://127.0.0.1:${PORT[$1]}/" out t0 reqs rps cpu errs
    local wrk=(timeout 60 taskset -c "$CLIENT_CPU" wrk -t1 -c100)
    [[ $WARMUP != 0 ]] && "${wrk[@]}" -d "${WARMUP}s" "$url" >/dev/null 2>&1
    t0=$(tree_ticks "${PID[$s]}")
    out=$("${wrk[@]}" -d "${DURATION}s" "$url" 2>&1)
    reqs=$(awk '/requests in/ { print $1 }' <<<"$out")
    cpu=$(cpu_per "$s" "$t0" "${reqs:-0}")
    rps=$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out")
    errs=$(grep -E 'Socket errors|Non-2xx' <<<"$out" | tr -s ' ' | paste -sd ';')
    if [[ -z $reqs || -z $rps || $reqs == 0 || -n $errs ]]; then
        note "rep $2 tls_ka_c100_$s FAILED: $(tr '\n' ' ' <<<"$out")"
        return 1
    fi
    record "tls_ka_c100_$s" "$rps" "$cpu"
    note "rep $2 tls_ka_c100_$s: $rps req/s, $cpu us/req"
}

# bulk: the whole file over one connection, checked for its size.
run_bulk() { # NAME REP
    local s=$1 url="https://127.0.0.1:${PORT[$1]}/big" out t0 size speed cpu
    t0=$(tree_ticks "${PID[$s]}")
    if [[ $BULK_CLIENT == bulk_get ]]; then
        out=$(timeout 300 taskset -c "$CLIENT_CPU" "$BULK_GET" "${PORT[$s]}" /big "$CA" 2>&1)
    else
        out=$(timeout 300 taskset -c "$CLIENT_CPU" curl -s --http1.1 --cacert "$CA" -o /dev/null \
            -w '%{http_code} %{size_download} %{speed_download}' "$url" 2>&1)
    fi
    cpu=$(cpu_per "$s" "$t0" "$BULK_MIB")
    read -r code size speed <<<"$out"
    if [[ $code != 200 || $size != $((BULK_MIB * 1048576)) ]]; then
        note "rep $2 tls_bulk_$s FAILED: $out"
        return 1
    fi
    speed=$(awk -v b="$speed" 'BEGIN { printf "%.1f", b / 1e6 }')
    record "tls_bulk_$s" "$speed" "$cpu"
    note "rep $2 tls_bulk_$s: $speed MB/s, $cpu us/MiB"
}

# Run the points of one mode: every rep, every server in rotated order.
run_points() { # POINT...
    local rep s p
    for ((rep = 0; rep < REPS; rep++)); do
        rotation "$rep"
        for p in "$@"; do
            for s in "${order[@]}"; do
                server_alive "$s" || continue
                "run_$p" "$s" $((rep + 1))
            done
        done
    done
}

peers=(nginx h2o)
note "load average: $(cut -d' ' -f1-3 /proc/loadavg); tickets $([[ $TICKETS == 1 ]] && echo on || echo off)"

hello_points=()
has_point hs && hello_points+=(hs)
has_point ka_c100 && hello_points+=(ka)
if ((${#hello_points[@]})); then
    MODE="hello"
    start_servers
    note "servers: ${active[*]}; points: ${hello_points[*]}; $REPS reps"
    run_points "${hello_points[@]}"
    has_point hs && report_key tls_hs "${peers[@]}" | sed 's|req/s|handshakes/s|; s|us/req|us/handshake|'
    has_point ka_c100 && report_key tls_ka_c100 "${peers[@]}"
    for s in "${active[@]}"; do stop_server "$s"; done
fi

if has_point bulk; then
    MODE="file"
    start_servers
    note "servers: ${active[*]}; bulk ${BULK_MIB} MiB, $REPS reps"
    run_points bulk
    report_key tls_bulk "${peers[@]}" | sed 's|req/s|MB/s|; s|us/req|us/MiB|'
    for s in "${active[@]}"; do stop_server "$s"; done
fi

if has_point idle && ((IDLE_CONNS > 0)); then
    if [[ -z $IDLE ]]; then
        note "skipping idle: bench/idle_tls not built (needs libssl-dev)"
    else
        MODE="hello"
        for tk in $IDLE_TICKETS; do
            # Session tickets change what OpenSSL keeps per connection.
            TICKETS=0
            [[ $tk == on ]] && TICKETS=1
            key=tls_idle_$tk
            declare -A IDLEB=()
            note "idle: $IDLE_CONNS TLS keep-alive connections per server, fresh servers, tickets $tk"
            i=0
            for s in $SERVERS; do
                port=$((BASE_PORT + i))
                i=$((i + 1))
                start_server "$s" "$port" || continue
                w=$(worker_pid "$s" "${PID[$s]}")
                out=$(taskset -c "$CLIENT_CPU" "$IDLE" -p "$port" -n "$IDLE_CONNS" --server-pid "$w" 2>&1)
                b=$(awk '/^idle_bytes_per_conn:/ { print $2 }' <<<"$out")
                p=$(awk '/^idle_pss_bytes_per_conn:/ { print $2 }' <<<"$out")
                if [[ -z $b ]]; then
                    note "idle $s FAILED: $(tr '\n' ' ' <<<"$out")"
                else
                    IDLEB[$s]=$b
                    note "idle $s (pid $w): $(grep -E 'rss|opened' <<<"$out" | tr '\n' ' ')"
                    printf '%s_%s_bytes: %.0f B/conn\n' "$key" "$s" "$b"
                    printf '%s_%s_pss_bytes: %.0f B/conn\n' "$key" "$s" "${p:-0}"
                fi
                stop_server "$s"
            done
            for a in epoll uring; do
                for b in "${peers[@]}"; do
                    [[ -n ${IDLEB[$a]:-} && -n ${IDLEB[$b]:-} ]] || continue
                    awk -v k="${key}_${a}_vs_$b" -v x="${IDLEB[$a]}" -v y="${IDLEB[$b]}" \
                        'BEGIN { if (y > 0) printf "%s: %.2f x\n", k, x / y }'
                done
            done
            unset IDLEB
        done
    fi
fi
note "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
