#!/usr/bin/env bash
# unix_bench.sh — echo over Unix stream sockets: corio against libuv, side by side.
#
# The Unix-socket twin of echo_bench.sh (same load generator, same method):
# every server runs pinned to SERVER_CPU (default 0), the load generator
# (bench/echo_load -u PATH: plain epoll, one thread) to CLIENT_CPU (1); for
# each message size and client count, each server gets REPS runs,
# interleaved and rotated so that noise hits all servers alike.  Medians
# and same-session ratios:
#
#   unix_1k_c10_epoll_rps: 181234 req/s       median throughput
#   unix_1k_c10_epoll_cpu: 4.812 us/req       median server CPU per request
#   unix_1k_c10_epoll_vs_libuv: 1.07 x        corio rps / libuv rps (>1: corio faster)
#   unix_1k_c10_epoll_vs_libuv_cpu: 0.93 x    corio cpu / libuv cpu (<1: corio cheaper)
#
# Servers: epoll and uring (corio's examples/unix_echo with CORIO_BACKEND
# forced), libuv (bench/peers/libuv_echo.c given a path: uv_pipe_t);
# epoll_base and uring_base run examples/unix_echo from BASE_BUILD, an
# older corio build, for before/after figures in one run (added to
# SERVERS by default when BASE_BUILD is set).  Each listens on a socket
# file in a fresh temporary directory.
#
# Knobs (environment): BUILD (default build), BASE_BUILD (none), DURATION (3), WARMUP (1),
# REPS (3), SIZES ("64 1024 102400"), CLIENTS ("10 100"), SERVERS
# ("epoll uring libuv"), SERVER_CPU (0), CLIENT_CPU (1).  The defaults
# take about 4 minutes.
set -u

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=bench/lib.sh
source "$here/lib.sh"
BUILD=${BUILD:-build}
DURATION=${DURATION:-3}
WARMUP=${WARMUP:-1}
REPS=${REPS:-3}
SIZES=${SIZES:-"64 1024 102400"}
CLIENTS=${CLIENTS:-"10 100"}
if [[ -n ${BASE_BUILD:-} ]]; then
    SERVERS=${SERVERS:-"epoll uring epoll_base uring_base libuv"}
else
    SERVERS=${SERVERS:-"epoll uring libuv"}
fi
BASE_PORT=1 # only numbers the servers: they listen on $tmp/NAME.sock
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}

resolve_build

LOAD=$(first_file "$BUILD/bench/echo_load" "$BUILD/echo_load") ||
    { echo "unix_bench: echo_load not built in $BUILD" >&2; exit 2; }
CORIO_ECHO=$(first_file "$BUILD/examples/unix_echo" "$BUILD/unix_echo") || CORIO_ECHO=
LIBUV_ECHO=$(first_file "$BUILD/bench/libuv_echo" "$BUILD/libuv_echo") || LIBUV_ECHO=
BASE_ECHO=
[[ -n ${BASE_BUILD:-} ]] && { BASE_ECHO=$(first_file "$BASE_BUILD/examples/unix_echo" "$BASE_BUILD/unix_echo") || BASE_ECHO=; }

sock() { echo "$tmp/$1.sock"; }

server_cmd() {
    case $1 in
    epoll) [[ -n $CORIO_ECHO ]] && printf '%s\n' env CORIO_BACKEND=epoll "$CORIO_ECHO" "$(sock "$1")" ;;
    uring) [[ -n $CORIO_ECHO ]] && printf '%s\n' env CORIO_BACKEND=io_uring "$CORIO_ECHO" "$(sock "$1")" ;;
    epoll_base) [[ -n $BASE_ECHO ]] && printf '%s\n' env CORIO_BACKEND=epoll "$BASE_ECHO" "$(sock "$1")" ;;
    uring_base) [[ -n $BASE_ECHO ]] && printf '%s\n' env CORIO_BACKEND=io_uring "$BASE_ECHO" "$(sock "$1")" ;;
    libuv) [[ -n $LIBUV_ECHO ]] && printf '%s\n' "$LIBUV_ECHO" "$(sock "$1")" ;;
    *) return 1 ;;
    esac
}

server_ready() { [[ -s $tmp/$1.log && -S $(sock "$1") ]]; }

server_started() {
    local kind=${KIND[$1]/#epoll/eventpoll}
    note "$1: pid ${PID[$1]} $(sock "$1") ${kind:+(anon_inode:[$kind]) }: $(head -n 1 "$tmp/$1.log")"
}

server_tmp
start_servers

label() { # 1024 -> 1k, 102400 -> 100k, 64 -> 64b
    if (($1 % 1024 == 0)); then echo "$(($1 / 1024))k"; else echo "${1}b"; fi
}

npoints=$(($(wc -w <<<"$SIZES") * $(wc -w <<<"$CLIENTS")))
note "servers: ${active[*]}; $REPS reps of ${DURATION}s (+${WARMUP}s warmup); about $(estimate "$npoints" 0.2)s"

for ((rep = 0; rep < REPS; rep++)); do
    rotation "$rep"
    for m in $SIZES; do
        for c in $CLIENTS; do
            key="unix_$(label "$m")_c${c}"
            for s in "${order[@]}"; do
                server_alive "$s" || continue
                out=$(taskset -c "$CLIENT_CPU" "$LOAD" -u "$(sock "$s")" -c "$c" -m "$m" \
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
        report_key "unix_$(label "$m")_c${c}" libuv epoll_base uring_base
    done
done
