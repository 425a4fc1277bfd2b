#!/usr/bin/env bash
# udp_bench.sh — corio's UDP echo server against libuv and uvloop, side by side.
#
# Every server runs pinned to one core (SERVER_CPU, default 0) and the load
# generator (udp_load: plain epoll, one thread, recvmmsg/sendmmsg) to
# another (CLIENT_CPU, default 1).  CLIENTS connected UDP sockets (10) each
# keep WINDOW datagrams of SIZE bytes (64) in flight; every echo is replaced
# by a new datagram.  Each server gets REPS runs, interleaved and rotated as
# in echo_bench.sh so noise on this shared machine hits all alike.
# Medians are reported, plus ratios from the same session:
#
#   udp_echo_pps_64b_c10_epoll_rps: 181234 req/s      median echoed datagrams per second
#   udp_echo_pps_64b_c10_epoll_cpu: 2.812 us/req      median server CPU per datagram
#   udp_echo_pps_64b_c10_epoll_vs_libuv: 1.37 x       corio pps / peer pps (>1: corio faster)
#   udp_echo_pps_64b_c10_epoll_vs_libuv_cpu: 0.73 x   corio cpu / peer cpu (<1: corio cheaper)
#
# (lib.sh names the units req/s and us/req; here a request is one echoed
# datagram.)  Servers: epoll and uring (corio's examples/udp_echo with
# CORIO_BACKEND forced: recvmmsg in, sendmmsg of the replies out), libuv
# (bench/peers/libuv_udp_echo.c: UV_UDP_RECVMMSG and uv_udp_try_send,
# libuv 1.44's best), uvloop (bench/peers/uvloop_udp_echo.py:
# create_datagram_endpoint on /usr/bin/python3).  A server whose binary is
# missing is skipped with a note.  Progress goes to stderr; stdout carries
# only the `name: value unit` summary.
#
# On loopback the sender's CPU also runs the receiving side of each
# datagram (the softirq that queues it on the peer's socket), so the
# server's CPU per datagram includes delivering its replies to the
# clients: batching saves the system calls, not that part.
#
# Knobs (environment): BUILD (build dir, default build), DURATION (3),
# WARMUP (1), REPS (3), SIZE (64), CLIENTS (10), WINDOW (8), SERVERS
# ("epoll uring libuv uvloop"), PYTHON (/usr/bin/python3), BASE_PORT
# (19400), SERVER_CPU (0), CLIENT_CPU (1), BASE_BUILD (an older build
# whose udp_echo runs as epoll_base / uring_base).  The defaults take
# about 1 min.
set -u

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=bench/lib.sh
source "$here/lib.sh"
BUILD=${BUILD:-build}
DURATION=${DURATION:-3}
WARMUP=${WARMUP:-1}
REPS=${REPS:-3}
SIZE=${SIZE:-64}
CLIENTS=${CLIENTS:-10}
WINDOW=${WINDOW:-8}
SERVERS=${SERVERS:-"epoll uring libuv uvloop"}
PYTHON=${PYTHON:-/usr/bin/python3}
BASE_PORT=${BASE_PORT:-19400}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}

resolve_build

LOAD=$(first_file "$BUILD/bench/udp_load" "$BUILD/udp_load") ||
    { echo "udp_bench: udp_load not built in $BUILD" >&2; exit 2; }
CORIO_ECHO=$(first_file "$BUILD/udp_echo" "$BUILD/examples/udp_echo") || CORIO_ECHO=
LIBUV_ECHO=$(first_file "$BUILD/bench/libuv_udp_echo" "$BUILD/libuv_udp_echo") || LIBUV_ECHO=
# An older corio build to compare against in the same run (servers
# epoll_base and uring_base, add them to SERVERS), for before/after figures.
BASE_ECHO=
[[ -n ${BASE_BUILD:-} ]] && { BASE_ECHO=$(first_file "$BASE_BUILD/udp_echo" "$BASE_BUILD/examples/udp_echo") || BASE_ECHO=; }

server_cmd() {
    case $1 in
    epoll) [[ -n $CORIO_ECHO ]] && printf '%s\n' env CORIO_BACKEND=epoll "$CORIO_ECHO" "$2" ;;
    uring) [[ -n $CORIO_ECHO ]] && printf '%s\n' env CORIO_BACKEND=io_uring "$CORIO_ECHO" "$2" ;;
    epoll_base) [[ -n $BASE_ECHO ]] && printf '%s\n' env CORIO_BACKEND=epoll "$BASE_ECHO" "$2" ;;
    uring_base) [[ -n $BASE_ECHO ]] && printf '%s\n' env CORIO_BACKEND=io_uring "$BASE_ECHO" "$2" ;;
    libuv) [[ -n $LIBUV_ECHO ]] && printf '%s\n' "$LIBUV_ECHO" "$2" ;;
    uvloop) "$PYTHON" -c 'import uvloop' 2>/dev/null &&
        printf '%s\n' "$PYTHON" "$here/peers/uvloop_udp_echo.py" "$2" ;;
    *) return 1 ;;
    esac
}

# A server is up once it has printed its first line.
server_ready() { [[ -s $tmp/$1.log ]]; }

server_started() { note "$1: pid ${PID[$1]} port ${PORT[$1]} ${KIND[$1]:+(${KIND[$1]}) }: $(head -n 1 "$tmp/$1.log")"; }

server_tmp
start_servers
note "load: $(uptime | sed 's/.*load/load/')"
note "servers: ${active[*]}; $REPS reps of ${DURATION}s (+${WARMUP}s warmup); about $(estimate 1 0.3)s"

key="udp_echo_pps_${SIZE}b_c${CLIENTS}"
for ((rep = 0; rep < REPS; rep++)); do
    rotation "$rep"
    for s in "${order[@]}"; do
        server_alive "$s" || continue
        out=$(taskset -c "$CLIENT_CPU" "$LOAD" -p "${PORT[$s]}" -c "$CLIENTS" -m "$SIZE" -W "$WINDOW" \
            -d "$DURATION" -w "$WARMUP" --server-pid "${PID[$s]}" 2>&1)
        pps=$(awk '/^udp_pps:/ { print $2 }' <<<"$out")
        cpu=$(awk '/^udp_cpu_us:/ { print $2 }' <<<"$out")
        scpu=$(awk '/^udp_server_cpu:/ { print $2 }' <<<"$out")
        ccpu=$(awk '/^udp_client_cpu:/ { print $2 }' <<<"$out")
        lost=$(awk '/^udp_lost:/ { print $2 }' <<<"$out")
        if [[ -z $pps || -z $cpu ]]; then
            note "rep $((rep + 1)) ${key}_$s FAILED: $(tr '\n' ' ' <<<"$out")"
            continue
        fi
        record "${key}_$s" "$pps" "$cpu"
        note "rep $((rep + 1)) ${key}_$s: $pps dgram/s, $cpu us/dgram (server ${scpu}% client ${ccpu}%, lost $lost)"
    done
done
note "load: $(uptime | sed 's/.*load/load/')"
report_key "$key" libuv uvloop epoll_base uring_base
