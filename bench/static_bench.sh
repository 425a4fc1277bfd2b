#!/usr/bin/env bash
# static_bench.sh — static files through corio-serve against nginx and
# `python3 -m http.server` (issue 12): sendfile on and an access log
# written to a file for both corio-serve and nginx (python's goes to its
# stderr, a file too).
#
# Every server runs pinned to SERVER_CPU (default 0), the load to
# CLIENT_CPU (default 1).  Loads:
#   1k_c100, 100k_c100   wrk, 100 keep-alive connections, a 1 KiB and a
#                        100 KiB file (python's http.server speaks HTTP/1.0
#                        and closes every connection: that is what it gives)
#   1g                   one 1 GiB file, fetched BIG_REPS times by curl into
#                        /dev/null (one connection each); rps is MB/s there
# Runs are interleaved (rep 1 of every server, then rep 2, ...; order
# rotated each rep); each wrk run follows a WARMUP-second one.  Server CPU is
# utime+stime of the server's process tree across the run (nginx's master
# and worker), per request (per GiB for 1g).  Output, medians of REPS runs:
#
#   static_1k_c100_uring_rps: 123456 req/s
#   static_1k_c100_uring_cpu: 7.890 us/req
#   static_1k_c100_uring_vs_nginx: 1.20 x        throughput ratio (>1: corio faster)
#   static_1k_c100_uring_vs_nginx_cpu: 0.80 x    CPU ratio (<1: corio cheaper)
#   static_1k_c100_uring_vs_python: 40.00 x
#
# Servers: epoll, uring (tools/corio-serve with CORIO_BACKEND forced; one
# worker, since --workers defaults to the CPUs it may use: taskset's one),
# nginx (one worker, sendfile on, access_log to a file), python
# (/usr/bin/python3 -m http.server, skipped for 1g: it would take minutes);
# epoll_base and uring_base: corio-serve from BASE_BUILD, an older build,
# for before/after figures in one run.
# Knobs: BUILD (build), DURATION (3), WARMUP (1), REPS (3), LOADS ("1k_c100
# 100k_c100 1g"), SERVERS ("epoll uring nginx python"), BIG_REPS (REPS),
# BASE_PORT (19700), SERVER_CPU (0), CLIENT_CPU (1), NGINX_LOG_OPTS (""),
# BASE_BUILD (unset).  About 2 minutes.
set -u

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=bench/lib.sh
source "$here/lib.sh"
BUILD=${BUILD:-build}
DURATION=${DURATION:-3}
WARMUP=${WARMUP:-1}
REPS=${REPS:-3}
LOADS=${LOADS:-"1k_c100 100k_c100 1g"}
SERVERS=${SERVERS:-"epoll uring nginx python"}
BIG_REPS=${BIG_REPS:-$REPS}
BASE_PORT=${BASE_PORT:-19700}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
PYTHON=${PYTHON:-/usr/bin/python3}
NGINX_LOG_OPTS=${NGINX_LOG_OPTS:-}

resolve_build

command -v wrk >/dev/null || { echo "static_bench: wrk not installed (apt-get install -y wrk)" >&2; exit 2; }
command -v curl >/dev/null || { echo "static_bench: curl not installed" >&2; exit 2; }
SERVE=$(first_file "$BUILD/tools/corio-serve" "$BUILD/corio-serve") || SERVE=
# An older corio build to compare against in the same run (servers
# epoll_base and uring_base).
BASE_SERVE=
[[ -n ${BASE_BUILD:-} ]] && { BASE_SERVE=$(first_file "$BASE_BUILD/tools/corio-serve" "$BASE_BUILD/corio-serve") || BASE_SERVE=; }
NGINX=$(command -v nginx || first_file /usr/sbin/nginx) || NGINX=
CLK_TCK=$(getconf CLK_TCK)

server_tmp
chmod 755 "$tmp"
# The files every server serves: one directory, readable by nginx's worker.
www=$tmp/www
mkdir -p "$www"
head -c 1024 /dev/urandom >"$www/1k.bin"
head -c 102400 /dev/urandom >"$www/100k.bin"
if [[ " $LOADS " == *" 1g "* ]]; then
    # sparse: it costs no disk, and reading holes is page-cache speed as
    # a cached file's bytes would be
    truncate -s 1G "$www/1g.bin"
    # into the page cache now: the first server to send it would
    # otherwise pay for filling it (seconds of CPU)
    cat "$www/1g.bin" >/dev/null
fi
chmod -R a+rX "$www"

write_nginx_conf() { # DIR PORT
    # One worker, sendfile, tcp_nopush, an access log in a file (nginx's
    # default: a write per request; NGINX_LOG_OPTS=" buffer=64k" batches it).
    mkdir -p "$1"
    {
        nginx_conf_head "$1" 1 4096
        echo "http {"
        echo "    access_log $1/access.log combined$NGINX_LOG_OPTS;"
        echo "    sendfile on;"
        echo "    tcp_nopush on;"
        echo "    default_type application/octet-stream;"
        nginx_http_common "$1"
        echo "    server {"
        echo "        listen 127.0.0.1:$2 backlog=4096;"
        echo "        root $www;"
        echo "    }"
        echo "}"
    } >"$1/nginx.conf"
}

server_cmd() {
    case $1 in
    # corio-serve's access log is its standard error: a file here (the
    # server log of lib.sh's start_server holds it)
    epoll) [[ -n $SERVE ]] && printf '%s\n' env CORIO_BACKEND=epoll "$SERVE" -p "$2" "$www" ;;
    uring) [[ -n $SERVE ]] && printf '%s\n' env CORIO_BACKEND=io_uring "$SERVE" -p "$2" "$www" ;;
    epoll_base) [[ -n $BASE_SERVE ]] && printf '%s\n' env CORIO_BACKEND=epoll "$BASE_SERVE" -p "$2" "$www" ;;
    uring_base) [[ -n $BASE_SERVE ]] && printf '%s\n' env CORIO_BACKEND=io_uring "$BASE_SERVE" -p "$2" "$www" ;;
    nginx) [[ -n $NGINX ]] || return 1
        write_nginx_conf "$tmp/nginx$2" "$2"
        printf '%s\n' "$NGINX" -p "$tmp/nginx$2" -c "$tmp/nginx$2/nginx.conf" -e "$tmp/nginx$2/error.log" ;;
    python) [[ -x $PYTHON ]] && printf '%s\n' "$PYTHON" -m http.server -b 127.0.0.1 -d "$www" "$2" ;;
    *) return 1 ;;
    esac
}

server_ready() { curl -sf -o /dev/null --max-time 1 "http://127.0.0.1:$2/1k.bin"; }
UNREADY="did not start or does not serve 1k.bin"
server_started() {
    note "$1: pid ${PID[$1]} port ${PORT[$1]}, $(curl -s -o /dev/null -w '%{http_code} %{size_download} B' "http://127.0.0.1:${PORT[$1]}/100k.bin")"
}
start_servers

nloads=$(wc -w <<<"$LOADS")
note "servers: ${active[*]}; loads: $LOADS; $REPS reps of ${DURATION}s (+${WARMUP}s warmup)"

# One wrk run against FILE: records req/s and server us/req under KEY_S.
wrk_run() { # KEY S FILE
    local key=$1 s=$2 url="http://127.0.0.1:${PORT[$2]}/$3" out t0 t1 reqs rps errs cpu util
    [[ $WARMUP != 0 ]] && taskset -c "$CLIENT_CPU" wrk -t1 -c100 -d "${WARMUP}s" "$url" >/dev/null 2>&1
    t0=$(tree_ticks "${PID[$s]}")
    out=$(taskset -c "$CLIENT_CPU" wrk -t1 -c100 -d "${DURATION}s" "$url" 2>&1)
    t1=$(tree_ticks "${PID[$s]}")
    reqs=$(awk '/requests in/ { print $1 }' <<<"$out")
    rps=$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out")
    errs=$(grep -E 'Non-2xx' <<<"$out" | tr -s ' ' | paste -sd ';')
    # python's server resets a few of wrk's connections (read errors):
    # those are counted against it in req/s, not a reason to drop the run
    if [[ -z $reqs || -z $rps || $reqs == 0 || -n $errs ]]; then
        note "rep $((rep + 1)) ${key}_$s FAILED: $(tr '\n' ' ' <<<"$out")"
        return
    fi
    cpu=$(awk -v d="$((t1 - t0))" -v hz="$CLK_TCK" -v n="$reqs" 'BEGIN { printf "%.3f", d * 1e6 / hz / n }')
    util=$(awk -v d="$((t1 - t0))" -v hz="$CLK_TCK" -v t="$DURATION" 'BEGIN { printf "%.0f", d / hz / t * 100 }')
    record "${key}_$s" "$rps" "$cpu"
    note "rep $((rep + 1)) ${key}_$s: $rps req/s, $cpu us/req (server ${util}%)$(grep -E 'Socket errors' <<<"$out" | tr -s ' ')"
}

# BIG_REPS downloads of the 1 GiB file: MB/s (as "rps") and server CPU
# per GiB in ms (as "cpu").
big_run() { # KEY S
    local key=$1 s=$2 url="http://127.0.0.1:${PORT[$2]}/1g.bin" t0 t1 out speed size cpu
    t0=$(tree_ticks "${PID[$s]}")
    out=$(taskset -c "$CLIENT_CPU" curl -s -o /dev/null -w '%{speed_download} %{size_download}' "$url")
    t1=$(tree_ticks "${PID[$s]}")
    read -r speed size <<<"$out"
    if [[ ${size:-0} != 1073741824 ]]; then
        note "rep $((rep + 1)) ${key}_$s FAILED: got ${size:-nothing} bytes"
        return
    fi
    speed=$(awk -v b="$speed" 'BEGIN { printf "%.1f", b / 1e6 }')
    cpu=$(awk -v d="$((t1 - t0))" -v hz="$CLK_TCK" 'BEGIN { printf "%.1f", d * 1e3 / hz }')
    record "${key}_$s" "$speed" "$cpu"
    note "rep $((rep + 1)) ${key}_$s: $speed MB/s, $cpu ms server CPU"
}

for ((rep = 0; rep < REPS; rep++)); do
    rotation "$rep"
    for load in $LOADS; do
        for s in "${order[@]}"; do
            server_alive "$s" || continue
            case $load in
            1k_c100) wrk_run static_1k_c100 "$s" 1k.bin ;;
            100k_c100) wrk_run static_100k_c100 "$s" 100k.bin ;;
            1g) [[ $s == python ]] || { ((rep < BIG_REPS)) && big_run static_1g "$s"; } ;;
            *) note "unknown load $load" ;;
            esac
        done
    done
done

for load in $LOADS; do
    case $load in
    1k_c100 | 100k_c100) report_key "static_$load" nginx python epoll_base uring_base ;;
    1g) report_key static_1g nginx epoll_base uring_base | sed -e 's/ req\/s$/ MB\/s/' -e 's/ us\/req$/ ms\/GiB/' ;;
    esac
done
# Were the access logs written?  (A server that logs nothing is cheaper.)
for s in epoll uring epoll_base uring_base; do
    [[ -f $tmp/$s.log ]] && note "$s access log: $(wc -l <"$tmp/$s.log") lines"
done
for f in "$tmp"/nginx*/access.log; do
    [[ -f $f ]] && note "nginx access log: $(wc -l <"$f") lines"
done
