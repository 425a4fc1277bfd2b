#!/usr/bin/env bash
# workers_bench.sh — one loop per core (issue 12): corio's HTTP server with
# one worker and with two, on both backends, against nginx with
# worker_processes 1 and 2, all serving the seed's response; and corio's
# two workers with their own SO_REUSEPORT listeners (the default) against
# one listener shared by both (CORIO_HTTP_WORKERS_LISTEN=shared).
#
# The machine has 2 cores, so what the load generator takes is part of the
# figure.  One-worker servers run on SERVER_CPU (0) with the load generator
# on CLIENT_CPU (1), one thread.  Two-worker servers and their load
# generator all run on ALL_CPUS (0,1), the load generator with
# LOAD_THREADS2 (2) threads: they share both cores, and the scheduler
# decides who runs where (no worker is pinned).  Two loads:
#   c100      wrk, 100 keep-alive connections
#   close_c50 h2load --h1 -H 'Connection: close', 50 clients, CLOSE_REQS
#             requests: one request per connection, so the figures are per
#             connection (a count, not DURATION: see run_load)
# Runs are interleaved (rep 1 of every server, then rep 2, ..., order
# rotated each rep); each measured run follows a WARMUP-second run of the
# same load.  Server CPU is utime+stime of the whole server process (every
# worker thread; nginx's master and workers) from /proc/PID/stat across
# the measured run, divided by the request count.  The spread is the
# busiest thread's share of that CPU (per-thread utime+stime from
# /proc/PID/task/*/stat): 50 % is an even split over two workers, 100 % one
# worker doing everything; every request costs about the same, so it stands
# for the share of requests (c100) and of connections (close_c50).
# Output (medians; progress and per-run lines on stderr):
#
#   workers_c100_uring2_rps: 123456 req/s       throughput
#   workers_c100_uring2_cpu: 7.890 us/req       server CPU per request, all workers
#   workers_c100_uring2_spread: 51 %            busiest thread's share of it
#   workers_c100_uring_2_vs_1_cpu: 1.02 x PASS  target <= 1.05
#   workers_c100_uring2_vs_nginx2: 1.10 x PASS  target >= 1.0
#   workers_close_c50_uring2s_vs_uring2: 0.95 x shared listener / SO_REUSEPORT
#
# Servers: epoll1 uring1 epoll2 uring2 (examples/http_hello --workers N,
# CORIO_BACKEND forced), epoll2s uring2s (the same with the shared
# listener), nginx1 nginx2 (worker_processes 1 or 2 and nginx's default
# listener: one socket, every worker waiting on it), nginx2r (nginx2 with
# `listen ... reuseport`, not run by default).
# Knobs: BUILD (build dir, default build), DURATION (3), WARMUP (1), REPS
# (3), LOADS ("c100 close_c50"), SERVERS (above, without nginx2r),
# BASE_PORT (19300), SERVER_CPU (0), CLIENT_CPU (1), ALL_CPUS (0,1),
# LOAD_THREADS2 (2), CLOSE_REQS (20000).  The defaults take about 4 minutes.
set -u

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=bench/lib.sh
source "$here/lib.sh"
BUILD=${BUILD:-build}
DURATION=${DURATION:-3}
WARMUP=${WARMUP:-1}
REPS=${REPS:-3}
LOADS=${LOADS:-"c100 close_c50"}
SERVERS=${SERVERS:-"epoll1 uring1 nginx1 epoll2 uring2 nginx2 epoll2s uring2s"}
BASE_PORT=${BASE_PORT:-19300}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
ALL_CPUS=${ALL_CPUS:-0,1}
LOAD_THREADS2=${LOAD_THREADS2:-2}
CLOSE_REQS=${CLOSE_REQS:-20000}
NOFILE=$(ulimit -Hn)
[[ $NOFILE == unlimited ]] && NOFILE=1048576
((NOFILE > 65536)) && NOFILE=65536

resolve_build
for t in wrk curl; do
    command -v $t >/dev/null || { echo "$bench: $t not installed (apt-get install -y $t)" >&2; exit 2; }
done
HELLO=$(first_file "$BUILD/http_hello" "$BUILD/examples/http_hello") || HELLO=
NGINX=$(command -v nginx || first_file /usr/sbin/nginx) || NGINX=
CLK_TCK=$(getconf CLK_TCK)

server_tmp
chmod 755 "$tmp" # nginx's workers run as nobody

server_cmd() {
    local s=$1 n=${1//[^0-9]/} backend=
    # Another helper's server on the port would be measured instead.
    if http_ready "$s" "$2"; then note "port $2 is taken"; return 1; fi
    case $s in
    epoll*) backend=epoll ;;
    uring*) backend=io_uring ;;
    nginx2r) [[ -n $NGINX ]] || return 1
        write_nginx_conf "$tmp/$s" "$2" 2 reuseport
        printf '%s\n' "$NGINX" -p "$tmp/$s" -c "$tmp/$s/nginx.conf" -e "$tmp/$s/error.log"
        return ;;
    nginx[12]) [[ -n $NGINX ]] || return 1
        write_nginx_conf "$tmp/$s" "$2" "$n"
        printf '%s\n' "$NGINX" -p "$tmp/$s" -c "$tmp/$s/nginx.conf" -e "$tmp/$s/error.log"
        return ;;
    *) return 1 ;;
    esac
    [[ -n $HELLO && -n $n ]] || return 1
    printf '%s\n' env CORIO_BACKEND=$backend
    [[ $s == *s ]] && echo CORIO_HTTP_WORKERS_LISTEN=shared
    printf '%s\n' "$HELLO" --workers "$n" "$2"
}
workers_of() { [[ $1 == *1 ]] && echo 1 || echo 2; }
server_cpus() { [[ $(workers_of "$1") == 1 ]] && echo "$SERVER_CPU" || echo "$ALL_CPUS"; }
server_ready() { http_ready "$@"; }
UNREADY="did not start or does not answer 200"
server_started() {
    http_started "$1"
    note "$1: threads $(find /proc/"${PID[$1]}"/task -mindepth 1 -maxdepth 1 | wc -l), processes $(tree_pids "${PID[$1]}" | wc -l), CPUs $(server_cpus "$1")"
}

SERVER_PREFIX=(prlimit --nofile="$NOFILE:$NOFILE")
start_servers

# run_load LOAD NAME SECONDS: one run of LOAD against NAME, the load
# generator pinned where NAME's workers say; prints wrk-style lines
# ("N requests in", "Requests/sec: R", "Socket errors: ..." on failures)
# and then `times` (its last line: the generator's user and system time).
run_load() {
    local load=$1 s=$2 secs=$3 url="http://127.0.0.1:${PORT[$2]}/" cpus=$CLIENT_CPU t=1
    if [[ $(workers_of "$s") == 2 ]]; then cpus=$ALL_CPUS; t=$LOAD_THREADS2; fi
    case $load in
    c100) taskset -c "$cpus" wrk -t"$t" -c100 -d "${secs}s" "$url" 2>&1 ;;
    close_c50)
        # h2load 1.52's timed mode (-D) never ends with Connection: close
        # (not even against nginx), so the run is a request count: secs
        # 0 < s < DURATION (the warmup) is a tenth of it.
        local n=$CLOSE_REQS
        [[ $secs != "$DURATION" ]] && n=$((CLOSE_REQS / 10))
        timeout 120 taskset -c "$cpus" h2load --h1 -H 'Connection: close' -t"$t" -c50 -n "$n" "$url" 2>&1 | awk '
            /^finished in/ { gsub(",", ""); rps = $4 }
            /^requests:/ { n = $2; bad = $10 + $12 + $14 }
            /^status codes:/ { ok = $3 }
            END {
                printf "%d requests in\nRequests/sec: %s\n", n, rps
                if (bad > 0 || ok != n) printf "Socket errors: %d failed, %d of %d 2xx\n", bad, ok, n
            }' ;;
    *) return 1 ;;
    esac
    # The generator's CPU: `times` run here (not in a pipeline, whose
    # subshell has no children) gives this subshell's children's.
    times
}

# One measured run of LOAD against NAME: records req/s and us/req, and the
# busiest thread's share in $tmp/KEY_NAME.spread.
measure() { # LOAD NAME REP
    local load=$1 s=$2 key="workers_$1" out reqs rps errs lcpu cpu spread util secs
    [[ $WARMUP != 0 ]] && run_load "$load" "$s" "$WARMUP" >/dev/null
    task_ticks "${PID[$s]}" >"$tmp/t0"
    out=$(run_load "$load" "$s" "$DURATION")
    task_ticks "${PID[$s]}" >"$tmp/t1"
    reqs=$(awk '/requests in/ { print $1 }' <<<"$out")
    rps=$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out")
    errs=$(grep -E 'Socket errors|Non-2xx' <<<"$out" | tr -s ' ' | paste -sd ';')
    # The last line of `times`: the children's user and system time, "XmY.YYYs".
    lcpu=$(tail -n 1 <<<"$out" | awk '{
        c = 0; for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); c += a[1] * 60 + a[2] }
        print c }')
    if [[ -z $reqs || -z $rps || $reqs == 0 || -n $errs ]]; then
        note "rep $3 ${key}_$s FAILED: $(tr '\n' ' ' <<<"$out")"
        return 1
    fi
    # Per-thread deltas; a thread that ended in between counts for nothing.
    # The run's length (close_c50 is a count) is requests / rate.
    secs=$(awk -v n="$reqs" -v r="$rps" 'BEGIN { printf "%.3f", n / r }')
    read -r cpu spread util < <(awk -v hz="$CLK_TCK" -v n="$reqs" -v d="$secs" '
        NR == FNR { t0[$1] = $2; next }
        { x = $2 - t0[$1]; sum += x; if (x > max) max = x }
        END { printf "%.3f %.0f %.0f\n", sum * 1e6 / hz / n, sum ? max * 100 / sum : 0, sum / hz / d * 100 }' \
        "$tmp/t0" "$tmp/t1")
    record "${key}_$s" "$rps" "$cpu"
    echo "$spread" >>"$tmp/${key}_$s.spread"
    note "rep $3 ${key}_$s: $rps req/s, $cpu us/req, busiest thread ${spread}% (server ${util}% load generator $(awk -v c="$lcpu" -v d="$secs" 'BEGIN { printf "%.0f", c / d * 100 }')% of one CPU)"
}

if [[ " $LOADS " == *" close_c50 "* ]] && ! command -v h2load >/dev/null; then
    note "skipping close_c50: h2load not installed (apt-get install -y nghttp2-client)"
    LOADS=${LOADS//close_c50/}
fi
note "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
note "servers: ${active[*]}; loads: $LOADS; $REPS reps of ${DURATION}s (+${WARMUP}s warmup); about $(estimate "$(wc -w <<<"$LOADS")" 0.5)s"
note "load generator: 1 thread on CPU $CLIENT_CPU for the 1-worker servers (on CPU $SERVER_CPU), $LOAD_THREADS2 threads on CPUs $ALL_CPUS for the 2-worker servers (on CPUs $ALL_CPUS)"

for ((rep = 0; rep < REPS; rep++)); do
    rotation "$rep"
    for load in $LOADS; do
        for s in "${order[@]}"; do
            server_alive "$s" && measure "$load" "$s" $((rep + 1))
        done
    done
done
note "load average: $(cut -d' ' -f1-3 /proc/loadavg)"

# ratio NAME A B OP TARGET: print NAME: A/B x, with PASS/MISS against TARGET when given.
ratio() {
    awk -v k="$1" -v a="$2" -v b="$3" -v op="${4:-}" -v t="${5:-}" 'BEGIN {
        if (b == 0) exit
        r = a / b; v = ""
        if (op == "<=") v = (r <= t) ? " PASS (target <= " t ")" : " MISS (target <= " t ")"
        if (op == ">=") v = (r >= t) ? " PASS (target >= " t ")" : " MISS (target >= " t ")"
        printf "%s: %.2f x%s\n", k, r, v }'
}

declare -A RPS CPU
for load in $LOADS; do
    key="workers_$load"
    for s in "${active[@]}"; do
        [[ -s $tmp/${key}_$s.rps ]] || continue
        RPS[$load$s]=$(median_of "$tmp/${key}_$s.rps")
        CPU[$load$s]=$(median_of "$tmp/${key}_$s.cpu")
        printf '%s_%s_rps: %.0f req/s\n' "$key" "$s" "${RPS[$load$s]}"
        printf '%s_%s_cpu: %.3f us/req\n' "$key" "$s" "${CPU[$load$s]}"
        printf '%s_%s_spread: %.0f %%\n' "$key" "$s" "$(median_of "$tmp/${key}_$s.spread")"
    done
    for b in epoll uring nginx; do
        # The targets are the keep-alive load's; the rest is for reading.
        op1='' t1='' op2='' t2=''
        [[ $load == c100 && $b != nginx ]] && { op1="<="; t1=1.05; op2=">="; t2=1.0; }
        [[ -n ${CPU[${load}${b}1]:-} && -n ${CPU[${load}${b}2]:-} ]] || continue
        ratio "${key}_${b}_2_vs_1_cpu" "${CPU[${load}${b}2]}" "${CPU[${load}${b}1]}" $op1 $t1
        ratio "${key}_${b}_2_vs_1_rps" "${RPS[${load}${b}2]}" "${RPS[${load}${b}1]}"
        [[ $b == nginx ]] && continue
        for p in nginx2 nginx2r; do
            [[ -n ${RPS[$load$p]:-} ]] || continue
            ratio "${key}_${b}2_vs_$p" "${RPS[${load}${b}2]}" "${RPS[$load$p]}" $op2 $t2
            ratio "${key}_${b}2_vs_${p}_cpu" "${CPU[${load}${b}2]}" "${CPU[$load$p]}"
        done
        if [[ -n ${RPS[${load}${b}2s]:-} ]]; then
            ratio "${key}_${b}2s_vs_${b}2" "${RPS[${load}${b}2s]}" "${RPS[${load}${b}2]}"
            ratio "${key}_${b}2s_vs_${b}2_cpu" "${CPU[${load}${b}2s]}" "${CPU[${load}${b}2]}"
        fi
    done
done
