#!/usr/bin/env bash
# http_bench.sh — corio's HTTP/1.1 server against nginx, h2o, a plain libuv C
# server and Python uvloop, all serving the seed's response (200,
# text/plain, the three CORS headers, "Hello, world!").
#
# Every server runs pinned to SERVER_CPU (default 0), wrk to CLIENT_CPU
# (default 1).  Three loads: one connection (c1), 100 connections (c100),
# and 100 connections each writing 16 pipelined requests at a time
# (pipe16_c100, bench/peers/http_pipeline.lua); and close_c50: h2load, 50
# clients, every request `Connection: close` on a connection of its own
# (the accept, answer, close path: its us/req is server CPU per
# connection).  Runs are interleaved (rep 1
# of every server, then rep 2, ..., order rotated each rep) so machine noise
# hits every server alike; each measured run follows a WARMUP-second wrk run
# with the same load.  Server CPU is utime+stime of the server's whole
# process tree (nginx's master and worker, h2o's helper) from /proc/PID/stat
# across the measured run, divided by wrk's request count.  The per-run
# lines on stderr also give server and wrk CPU utilisation: wrk has one core,
# and when it is at ~100 % while the server is below it, req/s measures wrk.
# Output:
#
#   http_c100_uring_rps: 123456 req/s          median throughput
#   http_c100_uring_cpu: 7.890 us/req          median server CPU per request
#   http_c100_uring_vs_nginx: 1.20 x           corio rps / peer rps (>1: corio faster)
#   http_c100_uring_vs_nginx_cpu: 0.80 x       corio cpu / peer cpu (<1: corio cheaper)
#   http_idle_uring_bytes: 1500 B/conn         RSS growth / IDLE_CONNS idle keep-alive connections
#
# The idle figure comes from bench/idle_conns against a freshly started
# server (so memory the load runs left in the allocator does not hide the
# cost), one run per server.
#
# Servers: epoll, uring (examples/http_hello with CORIO_BACKEND forced),
# nginx (one worker, generated config), h2o (num-threads 1, file handler;
# Debian package h2o), libuv (bench/peers/http_libuv.c), uvloop
# (bench/peers/http_uvloop.py on /usr/bin/python3); epoll_base and
# uring_base are the same program from BASE_BUILD, an older corio build, for
# before/after figures in one run.  Missing ones are skipped with a note.  Progress goes to stderr, `name: value unit` to stdout.
#
# Knobs: BUILD (build dir, default build), DURATION (3), WARMUP (1), REPS (3),
# LOADS ("c1 c100 pipe16_c100 close_c50"), SERVERS ("epoll uring nginx h2o libuv
# uvloop"), IDLE_CONNS (10000; 0 skips the idle test), CLOSE_RATE (5000: close
# loads make DURATION x CLOSE_RATE connections, however long that takes), PYTHON
# (/usr/bin/python3), BASE_PORT (19100), SERVER_CPU (0), CLIENT_CPU (1).
# The defaults take about 5 minutes.
set -u

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=bench/lib.sh
source "$here/lib.sh"
BUILD=${BUILD:-build}
DURATION=${DURATION:-3}
WARMUP=${WARMUP:-1}
REPS=${REPS:-3}
LOADS=${LOADS:-"c1 c100 pipe16_c100 close_c50"}
SERVERS=${SERVERS:-"epoll uring nginx h2o libuv uvloop"}
IDLE_CONNS=${IDLE_CONNS:-10000}
CLOSE_RATE=${CLOSE_RATE:-5000}
PYTHON=${PYTHON:-/usr/bin/python3}
BASE_PORT=${BASE_PORT:-19100}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
# Enough descriptors for IDLE_CONNS connections plus slack, within the hard limit.
NOFILE=$(ulimit -Hn)
[[ $NOFILE == unlimited ]] && NOFILE=1048576

resolve_build

command -v wrk >/dev/null || { echo "http_bench: wrk not installed (apt-get install -y wrk)" >&2; exit 2; }
command -v curl >/dev/null || { echo "http_bench: curl not installed" >&2; exit 2; }
HELLO=$(first_file "$BUILD/http_hello" "$BUILD/examples/http_hello") || HELLO=
LIBUV=$(first_file "$BUILD/bench/http_libuv" "$BUILD/http_libuv") || LIBUV=
# An older corio build to compare against in the same run (servers
# epoll_base and uring_base), e.g. a build of the previous release.
BASE_HELLO=
[[ -n ${BASE_BUILD:-} ]] && { BASE_HELLO=$(first_file "$BASE_BUILD/http_hello" "$BASE_BUILD/examples/http_hello") || BASE_HELLO=; }
IDLE=$(first_file "$BUILD/bench/idle_conns" "$BUILD/idle_conns") || IDLE=
NGINX=$(command -v nginx || first_file /usr/sbin/nginx) || NGINX=
H2O=$(command -v h2o || first_file /usr/sbin/h2o) || H2O=
CLK_TCK=$(getconf CLK_TCK)

server_tmp
# Run as root, h2o and nginx drop their workers to nobody, who must still
# be able to read the h2o body file.
chmod 755 "$tmp"

# Config files for the two servers that need one, in $tmp/NAME/
# (write_nginx_conf is in lib.sh).
write_h2o_conf() { # DIR PORT
    mkdir -p "$1"
    chmod 755 "$1"
    printf 'Hello, world!' >"$1/hello.txt"
    chmod 644 "$1/hello.txt"
    # h2o 2.2 has no "return a string" directive; its file handler is the
    # fastest way to a fixed body (mruby would be slower).  It adds
    # last-modified and accept-ranges, which cannot be turned off.
    cat >"$1/h2o.conf" <<EOF
num-threads: 1
max-connections: $NOFILE
error-log: $1/error.log
listen:
  host: 127.0.0.1
  port: $2
hosts:
  default:
    paths:
      /:
        file.file: $1/hello.txt
        file.etag: OFF
        header.add: "Access-Control-Allow-Origin: *"
        header.add: "Access-Control-Allow-Methods: GET, POST, PUT, DELETE, OPTIONS"
        header.add: "Access-Control-Allow-Headers: Content-Type"
EOF
}

# server_cmd NAME PORT: print the command line (one word per line) or fail.
server_cmd() {
    case $1 in
    epoll) [[ -n $HELLO ]] && printf '%s\n' env CORIO_BACKEND=epoll "$HELLO" "$2" ;;
    uring) [[ -n $HELLO ]] && printf '%s\n' env CORIO_BACKEND=io_uring "$HELLO" "$2" ;;
    epoll_base) [[ -n $BASE_HELLO ]] && printf '%s\n' env CORIO_BACKEND=epoll "$BASE_HELLO" "$2" ;;
    uring_base) [[ -n $BASE_HELLO ]] && printf '%s\n' env CORIO_BACKEND=io_uring "$BASE_HELLO" "$2" ;;
    nginx) [[ -n $NGINX ]] || return 1
        write_nginx_conf "$tmp/nginx$2" "$2"
        printf '%s\n' "$NGINX" -p "$tmp/nginx$2" -c "$tmp/nginx$2/nginx.conf" -e "$tmp/nginx$2/error.log" ;;
    h2o) [[ -n $H2O ]] || return 1
        write_h2o_conf "$tmp/h2o$2" "$2"
        printf '%s\n' "$H2O" -c "$tmp/h2o$2/h2o.conf" ;;
    libuv) [[ -n $LIBUV ]] && printf '%s\n' "$LIBUV" "$2" ;;
    uvloop) "$PYTHON" -c 'import uvloop' 2>/dev/null &&
        printf '%s\n' "$PYTHON" "$here/peers/http_uvloop.py" "$2" ;;
    *) return 1 ;;
    esac
}

# A server is up once it answers 200 (lib.sh).
server_ready() { http_ready "$@"; }
UNREADY="did not start or does not answer 200"
server_started() { http_started "$@"; }

# Every server gets NOFILE descriptors.
SERVER_PREFIX=(prlimit --nofile="$NOFILE:$NOFILE")
# Start every server once, each on its own port: an idle server sleeps in
# its poll call and costs the others nothing.
start_servers

# wrk arguments for a load name (close_c50: h2load's, see run_load).
load_args() {
    case $1 in
    c1) echo "-t1 -c1" ;;
    c100) echo "-t1 -c100" ;;
    pipe16_c100) echo "-t1 -c100 -s $here/peers/http_pipeline.lua" ;;
    close_c50) echo "-c50" ;;
    *) return 1 ;;
    esac
}
# wrk passes script arguments after "--"; the pipeline depth goes there.
load_tail() { [[ $1 == pipe16_* ]] && echo "-- 16"; }

# run_load LOAD SECONDS URL: one run of the load generator pinned to
# CLIENT_CPU, its output on stdout.  The close loads (every request on a
# connection of its own: `Connection: close`, so the figures are per
# connection) run h2load, whose summary is turned into wrk's lines (the
# request count, Requests/sec, and a "Socket errors" line for failed or
# non-2xx requests) so that one parser reads both.
run_load() {
    local load=$1 secs=$2 url=$3 args tail
    args=$(load_args "$load")
    tail=$(load_tail "$load")
    if [[ $load == close_* ]]; then
        # shellcheck disable=SC2086
        # A fixed count, not -D: h2load 1.52's timed mode never ends when
        # the server closes every connection.  CLOSE_RATE connections a
        # second is about what the generator manages on one core.
        taskset -c "$CLIENT_CPU" h2load --h1 -H 'Connection: close' $args \
            -n "$(awk -v s="$secs" -v r="$CLOSE_RATE" 'BEGIN { printf "%d", s * r }')" "$url" 2>&1 | awk '
            /^finished in/ { gsub(",", ""); rps = $4 }
            /^requests:/ { n = $2; bad = $10 + $12 + $14 }
            /^status codes:/ { ok = $3 }
            END {
                printf "%d requests in\nRequests/sec: %s\n", n, rps
                if (bad > 0 || ok != n) printf "Socket errors: %d failed, %d of %d 2xx\n", bad, ok, n
            }'
        return
    fi
    # shellcheck disable=SC2086
    taskset -c "$CLIENT_CPU" wrk $args -d "${secs}s" "$url" $tail 2>&1
}

nloads=$(wc -w <<<"$LOADS")
note "servers: ${active[*]}; loads: $LOADS; $REPS reps of ${DURATION}s (+${WARMUP}s warmup); about $(estimate "$nloads" 0.5)s"

for ((rep = 0; rep < REPS; rep++)); do
    rotation "$rep"
    for load in $LOADS; do
        load_args "$load" >/dev/null || { note "unknown load $load"; continue; }
        if [[ $load == close_* ]] && ! command -v h2load >/dev/null; then
            note "skipping $load: h2load not installed (apt-get install -y nghttp2-client)"
            continue
        fi
        key="http_$load"
        for s in "${order[@]}"; do
            server_alive "$s" || continue
            url="http://127.0.0.1:${PORT[$s]}/"
            if [[ $WARMUP != 0 ]]; then
                run_load "$load" "$WARMUP" "$url" >/dev/null
            fi
            t0=$(tree_ticks "${PID[$s]}")
            # `times` after the load gives the subshell's children's CPU: the generator's own.
            out=$(run_load "$load" "$DURATION" "$url"; times)
            t1=$(tree_ticks "${PID[$s]}")
            reqs=$(awk '/requests in/ { print $1 }' <<<"$out")
            rps=$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out")
            errs=$(grep -E 'Socket errors|Non-2xx' <<<"$out" | tr -s ' ' | paste -sd ';')
            # A run with socket errors or non-2xx answers measures something else.
            if [[ -z $reqs || -z $rps || $reqs == 0 || -n $errs ]]; then
                note "rep $((rep + 1)) ${key}_$s FAILED: $(tr '\n' ' ' <<<"$out")"
                continue
            fi
            cpu=$(awk -v d="$((t1 - t0))" -v hz="$CLK_TCK" -v n="$reqs" 'BEGIN { printf "%.3f", d * 1e6 / hz / n }')
            # The second line of `times`: children's user and system time, "XmY.YYYs".
            cutil=$(tail -n 1 <<<"$out" | awk -v t="$DURATION" '{
                c = 0; for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); c += a[1] * 60 + a[2] }
                printf "%.0f", c / t * 100 }')
            util=$(awk -v d="$((t1 - t0))" -v hz="$CLK_TCK" -v t="$DURATION" 'BEGIN { printf "%.0f", d / hz / t * 100 }')
            record "${key}_$s" "$rps" "$cpu"
            note "rep $((rep + 1)) ${key}_$s: $rps req/s, $cpu us/req (server ${util}% wrk ${cutil}%)${errs:+ ERRORS: $errs}"
        done
    done
done

for load in $LOADS; do
    report_key "http_$load" nginx h2o libuv uvloop epoll_base uring_base
done

# Idle keep-alive connections: stop the loaded servers, then one fresh
# server at a time.
for s in "${active[@]}"; do stop_server "$s"; done
if ((IDLE_CONNS > 0)); then
    if [[ -z $IDLE ]]; then
        note "skipping the idle test: idle_conns not built"
    else
        declare -A IDLEB
        note "idle: $IDLE_CONNS keep-alive connections per server, fresh servers"
        for s in "${active[@]}"; do
            port=${PORT[$s]}
            start_server "$s" "$port" || continue
            w=$(worker_pid "$s" "${PID[$s]}")
            out=$(taskset -c "$CLIENT_CPU" "$IDLE" -p "$port" -n "$IDLE_CONNS" --server-pid "$w" 2>&1)
            b=$(awk '/^idle_bytes_per_conn:/ { print $2 }' <<<"$out")
            if [[ -z $b ]]; then
                note "idle $s FAILED: $(tr '\n' ' ' <<<"$out")"
            else
                IDLEB[$s]=$b
                note "idle $s (pid $w): $(grep -E 'rss|opened' <<<"$out" | tr '\n' ' ')"
                printf 'http_idle_%s_bytes: %.0f B/conn\n' "$s" "$b"
            fi
            stop_server "$s"
        done
        for a in epoll uring; do
            for b in nginx h2o libuv uvloop epoll_base uring_base; do
                [[ -n ${IDLEB[$a]:-} && -n ${IDLEB[$b]:-} ]] || continue
                awk -v k="http_idle_${a}_vs_$b" -v x="${IDLEB[$a]}" -v y="${IDLEB[$b]}" \
                    'BEGIN { if (y > 0) printf "%s: %.2f x\n", k, x / y }'
            done
        done
    fi
fi
