#!/usr/bin/env bash
# echo_bench.sh — corio's echo server against libuv and uvloop, side by side.
#
# Every server runs pinned to one core (SERVER_CPU, default 0) and the
# load generator (echo_load, plain epoll, one thread) to another
# (CLIENT_CPU, default 1).  For each message size and client count, each
# server gets REPS runs; the runs are interleaved (rep 1 of every server,
# then rep 2, ..., with the server order rotated each rep) so that noise on
# this shared machine hits all servers alike instead of whichever ran last.
# Medians are reported, plus ratios computed from the same session:
#
#   echo_1k_c100_epoll_rps: 181234 req/s       median throughput
#   echo_1k_c100_epoll_cpu: 4.812 us/req       median server CPU per request
#   echo_1k_c100_epoll_vs_libuv: 1.07 x        corio rps / peer rps (>1: corio faster)
#   echo_1k_c100_epoll_vs_libuv_cpu: 0.93 x    corio cpu / peer cpu (<1: corio cheaper)
#
# Server names: epoll and uring (corio's examples/echo_server with
# CORIO_BACKEND forced), libuv (bench/peers/libuv_echo.c), uvloop
# (bench/peers/uvloop_echo.py on /usr/bin/python3); epoll_base and
# uring_base run examples/echo_server from BASE_BUILD, an older corio build,
# for before/after figures in one run.  A server whose binary is missing is
# skipped with a note on stderr.  Progress and per-run figures
# go to stderr; stdout carries only the `name: value unit` summary.
#
# Knobs (environment): BUILD (build dir, default build), DURATION (measured
# seconds per run, 3), WARMUP (1), REPS (3), SIZES ("1024 102400"),
# CLIENTS ("10 100"), SERVERS ("epoll uring libuv uvloop"), PYTHON
# (/usr/bin/python3), BASE_PORT (19000), SERVER_CPU (0), CLIENT_CPU (1).
# The defaults take about 3.5 minutes.
set -u

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=bench/lib.sh
source "$here/lib.sh"
BUILD=${BUILD:-build}
DURATION=${DURATION:-3}
WARMUP=${WARMUP:-1}
REPS=${REPS:-3}
SIZES=${SIZES:-"1024 102400"}
CLIENTS=${CLIENTS:-"10 100"}
SERVERS=${SERVERS:-"epoll uring libuv uvloop"}
PYTHON=${PYTHON:-/usr/bin/python3}
BASE_PORT=${BASE_PORT:-19000}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}

# A relative BUILD is taken from the current directory, else from the repo root.
resolve_build

LOAD=$(first_file "$BUILD/bench/echo_load" "$BUILD/echo_load") ||
    { echo "echo_bench: echo_load not built in $BUILD" >&2; exit 2; }
CORIO_ECHO=$(first_file "$BUILD/examples/echo_server" "$BUILD/echo_server") || CORIO_ECHO=
LIBUV_ECHO=$(first_file "$BUILD/bench/libuv_echo" "$BUILD/libuv_echo") || LIBUV_ECHO=
# An older corio build to compare against in the same run (servers
# epoll_base and uring_base), for before/after figures.
BASE_ECHO=
[[ -n ${BASE_BUILD:-} ]] && { BASE_ECHO=$(first_file "$BASE_BUILD/examples/echo_server" "$BASE_BUILD/echo_server") || BASE_ECHO=; }

# server_cmd NAME PORT: print the command line (one word per line) or fail.
server_cmd() {
    case $1 in
    epoll) [[ -n $CORIO_ECHO ]] && printf '%s\n' env CORIO_BACKEND=epoll "$CORIO_ECHO" "$2" ;;
    uring) [[ -n $CORIO_ECHO ]] && printf '%s\n' env CORIO_BACKEND=io_uring "$CORIO_ECHO" "$2" ;;
    epoll_base) [[ -n $BASE_ECHO ]] && printf '%s\n' env CORIO_BACKEND=epoll "$BASE_ECHO" "$2" ;;
    uring_base) [[ -n $BASE_ECHO ]] && printf '%s\n' env CORIO_BACKEND=io_uring "$BASE_ECHO" "$2" ;;
    libuv) [[ -n $LIBUV_ECHO ]] && printf '%s\n' "$LIBUV_ECHO" "$2" ;;
    uvloop) "$PYTHON" -c 'import uvloop' 2>/dev/null &&
        printf '%s\n' "$PYTHON" "$here/peers/uvloop_echo.py" "$2" ;;
    *) return 1 ;;
    esac
}

# A server is up once it has printed its first line.
server_ready() { [[ -s $tmp/$1.log ]]; }

server_started() {
    local kind=${KIND[$1]/#epoll/eventpoll}
    note "$1: pid ${PID[$1]} port ${PORT[$1]} ${kind:+(anon_inode:[$kind]) }: $(head -n 1 "$tmp/$1.log")"
}

server_tmp
# Start every server once, each on its own port, all pinned to SERVER_CPU:
# an idle server sleeps in its poll call and costs the others nothing, and
# starting once keeps interpreter start-up out of the runs.
start_servers

label() { # 1024 -> 1k, 102400 -> 100k, 100 -> 100b
    if (($1 % 1024 == 0)); then echo "$(($1 / 1024))k"; else echo "${1}b"; fi
}

npoints=$(($(wc -w <<<"$SIZES") * $(wc -w <<<"$CLIENTS")))
note "servers: ${active[*]}; $REPS reps of ${DURATION}s (+${WARMUP}s warmup); about $(estimate "$npoints" 0.2)s"

for ((rep = 0; rep < REPS; rep++)); do
    # Rotate the order so no server always runs right after the same one.
    rotation "$rep"
    for m in $SIZES; do
        for c in $CLIENTS; do
            key="echo_$(label "$m")_c${c}"
            for s in "${order[@]}"; do
                server_alive "$s" || continue
                out=$(taskset -c "$CLIENT_CPU" "$LOAD" -p "${PORT[$s]}" -c "$c" -m "$m" \
                    -d "$DURATION" -w "$WARMUP" --server-pid "${PID[$s]}" 2>&1)
                rps=$(awk '/^echo_rps:/ { print $2 }' <<<"$out")
                cpu=$(awk '/^echo_cpu_us:/ { print $2 }' <<<"$out")
                scpu=$(awk '/^echo_server_cpu:/ { print $2 }' <<<"$out")
                ccpu=$(awk '/^echo_client_cpu:/ { print $2 }' <<<"$out")
                if [[ -z $rps || -z $cpu ]]; then
                    note "rep $((rep + 1)) ${key}_$s FAILED: $(tr '\n' ' ' <<<"$out")"
                    continue
                fi
                record "${key}_$s" "$rps" "$cpu"
                note "rep $((rep + 1)) ${key}_$s: $rps req/s, $cpu us/req (server ${scpu}% client ${ccpu}%)"
            done
        done
    done
done

for m in $SIZES; do
    for c in $CLIENTS; do
        report_key "echo_$(label "$m")_c${c}" libuv uvloop epoll_base uring_base
    done
done
