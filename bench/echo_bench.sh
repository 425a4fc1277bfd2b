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
# (bench/peers/uvloop_echo.py on /usr/bin/python3).  A server whose binary
# is missing is skipped with a note on stderr.  Progress and per-run figures
# go to stderr; stdout carries only the `name: value unit` summary.
#
# Knobs (environment): BUILD (build dir, default build), DURATION (measured
# seconds per run, 3), WARMUP (1), REPS (3), SIZES ("1024 102400"),
# CLIENTS ("10 100"), SERVERS ("epoll uring libuv uvloop"), PYTHON
# (/usr/bin/python3), BASE_PORT (19000), SERVER_CPU (0), CLIENT_CPU (1).
# The defaults take about 3.5 minutes.
set -u

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
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
if [[ $BUILD != /* && ! -d $BUILD && -d $root/$BUILD ]]; then
    BUILD=$root/$BUILD
fi
BUILD=$(cd "$BUILD" 2>/dev/null && pwd) || { echo "echo_bench: build dir '$BUILD' not found" >&2; exit 2; }

note() { echo "# $*" >&2; }

first_file() {
    local f
    for f in "$@"; do
        if [[ -x $f ]]; then echo "$f"; return 0; fi
    done
    return 1
}

LOAD=$(first_file "$BUILD/bench/echo_load" "$BUILD/echo_load") ||
    { echo "echo_bench: echo_load not built in $BUILD" >&2; exit 2; }
CORIO_ECHO=$(first_file "$BUILD/examples/echo_server" "$BUILD/echo_server") || CORIO_ECHO=
LIBUV_ECHO=$(first_file "$BUILD/bench/libuv_echo" "$BUILD/libuv_echo") || LIBUV_ECHO=

# server_cmd NAME PORT: print the command line (one word per line) or fail.
server_cmd() {
    case $1 in
    epoll) [[ -n $CORIO_ECHO ]] && printf '%s\n' env CORIO_BACKEND=epoll "$CORIO_ECHO" "$2" ;;
    uring) [[ -n $CORIO_ECHO ]] && printf '%s\n' env CORIO_BACKEND=io_uring "$CORIO_ECHO" "$2" ;;
    libuv) [[ -n $LIBUV_ECHO ]] && printf '%s\n' "$LIBUV_ECHO" "$2" ;;
    uvloop) "$PYTHON" -c 'import uvloop' 2>/dev/null &&
        printf '%s\n' "$PYTHON" "$here/peers/uvloop_echo.py" "$2" ;;
    *) return 1 ;;
    esac
}

tmp=$(mktemp -d /tmp/echo_bench.XXXXXX)
declare -A PID PORT
cleanup() {
    local s
    for s in "${!PID[@]}"; do
        kill "${PID[$s]}" 2>/dev/null && wait "${PID[$s]}" 2>/dev/null
    done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Start every server once, each on its own port, all pinned to SERVER_CPU:
# an idle server sleeps in its poll call and costs the others nothing, and
# starting once keeps interpreter start-up out of the runs.
active=()
i=0
for s in $SERVERS; do
    port=$((BASE_PORT + i))
    i=$((i + 1))
    mapfile -t cmd < <(server_cmd "$s" "$port") || true
    if ((${#cmd[@]} == 0)); then
        note "skipping $s: not built / not installed"
        continue
    fi
    # taskset and env exec the server, so $! is the server's own pid.
    taskset -c "$SERVER_CPU" "${cmd[@]}" >"$tmp/$s.log" 2>&1 &
    pid=$!
    for _ in $(seq 100); do
        [[ -s $tmp/$s.log ]] && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if ! kill -0 "$pid" 2>/dev/null || [[ ! -s $tmp/$s.log ]]; then
        note "skipping $s: did not start: $(head -c 300 "$tmp/$s.log" 2>/dev/null)"
        kill "$pid" 2>/dev/null
        continue
    fi
    # CORIO_BACKEND is a request; the fd table shows what the loop really uses.
    kind=
    for fd in /proc/"$pid"/fd/*; do
        case $(readlink "$fd" 2>/dev/null) in
        'anon_inode:[io_uring]') kind='anon_inode:[io_uring]'; break ;;
        'anon_inode:[eventpoll]') kind='anon_inode:[eventpoll]' ;;
        esac
    done
    if [[ $s == uring && $kind != *io_uring* ]]; then
        note "warning: $s is not using io_uring (fds show ${kind:-neither}); its figures are epoll's"
    fi
    note "$s: pid $pid port $port ${kind:+($kind) }: $(head -n 1 "$tmp/$s.log")"
    PID[$s]=$pid
    PORT[$s]=$port
    active+=("$s")
done
((${#active[@]} > 0)) || { echo "echo_bench: no server could be started" >&2; exit 1; }

label() { # 1024 -> 1k, 102400 -> 100k, 100 -> 100b
    if (($1 % 1024 == 0)); then echo "$(($1 / 1024))k"; else echo "${1}b"; fi
}

npoints=$(($(wc -w <<<"$SIZES") * $(wc -w <<<"$CLIENTS")))
est=$(awk -v n="$npoints" -v s="${#active[@]}" -v r="$REPS" -v d="$DURATION" -v w="$WARMUP" \
    'BEGIN { printf "%d", n * s * r * (d + w + 0.2) }')
note "servers: ${active[*]}; $REPS reps of ${DURATION}s (+${WARMUP}s warmup); about ${est}s"

for ((rep = 0; rep < REPS; rep++)); do
    # Rotate the order so no server always runs right after the same one.
    n=${#active[@]}
    order=()
    for ((k = 0; k < n; k++)); do order+=("${active[$(((k + rep) % n))]}"); done
    for m in $SIZES; do
        for c in $CLIENTS; do
            key="echo_$(label "$m")_c${c}"
            for s in "${order[@]}"; do
                if ! kill -0 "${PID[$s]}" 2>/dev/null; then
                    note "$s died; see below"; sed 's/^/#   /' "$tmp/$s.log" | tail -5 >&2
                    continue
                fi
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
                echo "$rps" >>"$tmp/${key}_$s.rps"
                echo "$cpu" >>"$tmp/${key}_$s.cpu"
                note "rep $((rep + 1)) ${key}_$s: $rps req/s, $cpu us/req (server ${scpu}% client ${ccpu}%)"
            done
        done
    done
done

median() { # median of the numbers in file $1, one per line
    sort -g "$1" | awk '{ v[NR] = $1 } END {
        if (NR == 0) exit 1
        if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

declare -A RPS CPU
for m in $SIZES; do
    for c in $CLIENTS; do
        key="echo_$(label "$m")_c${c}"
        for s in "${active[@]}"; do
            [[ -s $tmp/${key}_$s.rps ]] || continue
            RPS[${key}_$s]=$(median "$tmp/${key}_$s.rps")
            CPU[${key}_$s]=$(median "$tmp/${key}_$s.cpu")
            printf '%s_%s_rps: %.0f req/s\n' "$key" "$s" "${RPS[${key}_$s]}"
            printf '%s_%s_cpu: %.3f us/req\n' "$key" "$s" "${CPU[${key}_$s]}"
        done
        for a in epoll uring; do
            for b in libuv uvloop; do
                [[ -n ${RPS[${key}_$a]:-} && -n ${RPS[${key}_$b]:-} ]] || continue
                awk -v k="${key}_${a}_vs_$b" -v ra="${RPS[${key}_$a]}" -v rb="${RPS[${key}_$b]}" \
                    -v ca="${CPU[${key}_$a]}" -v cb="${CPU[${key}_$b]}" 'BEGIN {
                        printf "%s: %.2f x\n", k, ra / rb
                        printf "%s_cpu: %.2f x\n", k, ca / cb }'
            done
        done
    done
done
