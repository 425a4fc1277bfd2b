# shellcheck shell=bash
# bench/lib.sh — what the benchmark scripts share.  Each sources it from its
# own directory (here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd); source
# "$here/lib.sh").  Sourcing only defines: `root` (the repository root),
# `bench` (the running script's name without .sh, for messages) and the
# functions below; it starts nothing and sets no trap.
#
# The server helpers run the servers of echo_bench.sh and http_bench.sh:
# each server is a NAME (epoll, uring, nginx, ...) with a port, started
# pinned to SERVER_CPU and kept in the associative arrays PID, PORT and KIND
# (NAME -> pid, port, and the event loop its fds show: io_uring or epoll)
# while it runs; `active` lists the started ones.  The caller sets
# SERVER_CPU, SERVERS and BASE_PORT and defines three functions:
#   server_cmd NAME PORT    print the command line, one word a line, or fail
#   server_ready NAME PORT  succeed once the server is up (called every 0.1 s)
#   server_started NAME     called once a server is up (its start-up note)
# It may define server_cpus NAME (print the CPU list NAME runs on, for a
# server that takes more than SERVER_CPU), and set UNREADY, the note's words for a server that never got
# ready (default "did not start"), and the array SERVER_PREFIX, a command
# that execs the rest (prlimit ...), run in front of every server.  Each
# run's figures go to $tmp/KEY_NAME.rps and .cpu (KEY names the load, as
# echo_1k_c10); report_key turns them into the `name: value unit` lines.
#
# Functions, one line each:
#   note TEXT...              print "# TEXT..." on stderr (progress)
#   first_file PATH...        print the first PATH that is an executable file, else fail
#   resolve_build             make BUILD absolute (relative: from the current directory if there, else from root); exit 2 if not a directory
#   server_tmp                make $tmp (/tmp/BENCH.XXXXXX), declare PID PORT KIND; on exit stop every server and remove $tmp
#   start_server NAME PORT    start server_cmd NAME PORT (in $tmp/NAME.log), wait for server_ready, set PID PORT KIND; fail with a note if it does not come up
#   start_servers             start every server of SERVERS (ports BASE_PORT, +1, ...), calling server_started for each; set active; exit 1 if none started
#   stop_server NAME          SIGTERM the server NAME, reap it, drop it from PID
#   loop_kind PID             print io_uring or epoll, the event loop PID's fds show (io_uring first), or nothing
#   estimate POINTS SLACK     print the seconds of POINTS loads x active servers x REPS runs of WARMUP+DURATION+SLACK s
#   rotation REP              set order to active rotated left by REP (so no server always runs after the same one)
#   server_alive NAME         succeed if NAME runs, else note its death with its log's last 5 lines and fail
#   record KEY RPS CPU        append one run's req/s and us/req to $tmp/KEY.rps and $tmp/KEY.cpu
#   median_of FILE            print the median of the numbers in FILE, one a line; fail if none
#   tree_pids PID             print PID and every descendant of it, one a line
#   tree_ticks PID            print utime+stime (clock ticks) of PID's whole process tree
#   task_ticks PID            print "TID TICKS" for every thread of PID's process tree, one a line
#   worker_pid NAME PID       print the pid that serves connections: nginx's worker, else PID
#   nginx_conf_head DIR WORKERS CONNECTIONS, nginx_http_common DIR, nginx_hello_location LOCATION
#                      print the shared pieces of an nginx.conf (below)
#   write_nginx_conf DIR PORT [WORKERS] [LISTEN]  write DIR/nginx.conf: the seed's response on 127.0.0.1:PORT, WORKERS worker processes (1), LISTEN extra listen parameters (reuseport), needs NOFILE
#   http_ready NAME PORT      succeed once http://127.0.0.1:PORT/ answers 200 (a server_ready for HTTP servers)
#   http_started NAME         note NAME's pid, port, response size and headers (a server_started for HTTP servers)
#   report_key KEY PEER...    print KEY_NAME_rps and KEY_NAME_cpu medians of every active NAME with runs, then KEY_A_vs_B and KEY_A_vs_B_cpu ratios for A in epoll uring, B in PEER

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bench=${0##*/}
bench=${bench%.sh}

note() { echo "# $*" >&2; }

first_file() {
    local f
    for f in "$@"; do
        if [[ -x $f ]]; then echo "$f"; return 0; fi
    done
    return 1
}

resolve_build() {
    if [[ $BUILD != /* && ! -d $BUILD && -d $root/$BUILD ]]; then
        BUILD=$root/$BUILD
    fi
    local abs
    abs=$(cd "$BUILD" 2>/dev/null && pwd) || { echo "$bench: build dir '$BUILD' not found" >&2; exit 2; }
    BUILD=$abs
}

server_tmp() {
    tmp=$(mktemp -d "/tmp/$bench.XXXXXX")
    declare -gA PID=() PORT=() KIND=()
    trap server_cleanup EXIT
    trap 'exit 130' INT TERM
}

server_cleanup() {
    local s
    for s in "${!PID[@]}"; do stop_server "$s"; done
    rm -rf "$tmp"
}

start_server() {
    local s=$1 port=$2 pid kind cmd
    mapfile -t cmd < <(server_cmd "$s" "$port") || true
    if ((${#cmd[@]} == 0)); then
        note "skipping $s: not built / not installed"
        return 1
    fi
    # The prefix, taskset and env all exec, so $! is the server's own pid.
    local cpus=$SERVER_CPU
    declare -F server_cpus >/dev/null && cpus=$(server_cpus "$s")
    "${SERVER_PREFIX[@]}" taskset -c "$cpus" "${cmd[@]}" >"$tmp/$s.log" 2>&1 &
    pid=$!
    for _ in $(seq 100); do
        server_ready "$s" "$port" && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if ! kill -0 "$pid" 2>/dev/null || ! server_ready "$s" "$port"; then
        note "skipping $s: ${UNREADY:-did not start}: $(head -c 300 "$tmp/$s.log" 2>/dev/null)"
        kill "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
        return 1
    fi
    # CORIO_BACKEND is a request; the fd table shows what the loop really uses.
    kind=$(loop_kind "$pid")
    if [[ $s == uring && $kind != io_uring ]]; then
        note "warning: $s is not using io_uring (fds show ${kind:-neither}); its figures are epoll's"
    fi
    PID[$s]=$pid
    # shellcheck disable=SC2034 # PORT and KIND are for the caller
    PORT[$s]=$port
    # shellcheck disable=SC2034
    KIND[$s]=$kind
    return 0
}

start_servers() {
    local s i=0
    active=()
    for s in $SERVERS; do
        i=$((i + 1))
        start_server "$s" $((BASE_PORT + i - 1)) || continue
        server_started "$s"
        active+=("$s")
    done
    ((${#active[@]} > 0)) || { echo "$bench: no server could be started" >&2; exit 1; }
}

stop_server() {
    kill "${PID[$1]}" 2>/dev/null && wait "${PID[$1]}" 2>/dev/null
    unset "PID[$1]"
}

loop_kind() {
    local fd kind=
    for fd in /proc/"$1"/fd/*; do
        case $(readlink "$fd" 2>/dev/null) in
        'anon_inode:[io_uring]') kind=io_uring; break ;;
        'anon_inode:[eventpoll]') kind=epoll ;;
        esac
    done
    echo "$kind"
}

estimate() {
    awk -v n="$1" -v s="${#active[@]}" -v r="$REPS" -v d="$DURATION" -v w="$WARMUP" -v x="$2" \
        'BEGIN { printf "%d", n * s * r * (d + w + x) }'
}

rotation() {
    local k n=${#active[@]}
    order=()
    for ((k = 0; k < n; k++)); do order+=("${active[$(((k + $1) % n))]}"); done
}

server_alive() {
    kill -0 "${PID[$1]}" 2>/dev/null && return 0
    note "$1 died; see below"
    tail -5 "$tmp/$1.log" | sed 's/^/#   /' >&2
    return 1
}

record() {
    echo "$2" >>"$tmp/$1.rps"
    echo "$3" >>"$tmp/$1.cpu"
}

median_of() {
    sort -g "$1" | awk '{ v[NR] = $1 } END {
        if (NR == 0) exit 1
        if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

report_key() {
    local key=$1 s a b
    local -A med_rps=() med_cpu=()
    shift
    for s in "${active[@]}"; do
        [[ -s $tmp/${key}_$s.rps ]] || continue
        med_rps[$s]=$(median_of "$tmp/${key}_$s.rps")
        med_cpu[$s]=$(median_of "$tmp/${key}_$s.cpu")
        printf '%s_%s_rps: %.0f req/s\n' "$key" "$s" "${med_rps[$s]}"
        printf '%s_%s_cpu: %.3f us/req\n' "$key" "$s" "${med_cpu[$s]}"
    done
    for a in epoll uring; do
        for b in "$@"; do
            [[ -n ${med_rps[$a]:-} && -n ${med_rps[$b]:-} ]] || continue
            awk -v k="${key}_${a}_vs_$b" -v ra="${med_rps[$a]}" -v rb="${med_rps[$b]}" \
                -v ca="${med_cpu[$a]}" -v cb="${med_cpu[$b]}" 'BEGIN {
                    printf "%s: %.2f x\n", k, ra / rb
                    printf "%s_cpu: %.2f x\n", k, ca / cb }'
        done
    done
}

# The pid and every descendant of it, one per line.
tree_pids() {
    local p c
    echo "$1"
    for p in /proc/"$1"/task/*/children; do
        # shellcheck disable=SC2013 # the file is one line of pids
        for c in $(cat "$p" 2>/dev/null); do tree_pids "$c"; done
    done
}

# utime+stime (clock ticks) of a process tree.
tree_ticks() {
    local t=0 p
    for p in $(tree_pids "$1"); do
        t=$((t + $(awk '{ print $14 + $15 }' /proc/"$p"/stat 2>/dev/null || echo 0)))
    done
    echo "$t"
}

# utime+stime (clock ticks) of every thread of a process tree, "TID TICKS".
# The command name (field 2) may hold spaces: fields are counted after it.
task_ticks() {
    local p f
    for p in $(tree_pids "$1"); do
        for f in /proc/"$p"/task/*/stat; do
            sed -E 's/^([0-9]+) .*\) (.*)$/\1 \2/' "$f" 2>/dev/null | awk '{ print $1, $13 + $14 }'
        done
    done
}

# The process that serves connections: nginx's worker, else the server itself.
worker_pid() {
    local w
    if [[ $1 == nginx ]]; then
        w=$(cat /proc/"$2"/task/*/children 2>/dev/null | awk '{ print $1; exit }')
        [[ -n $w ]] && { echo "$w"; return; }
    fi
    echo "$2"
}

# The pieces of an nginx.conf every benchmark shares: the process part
# (DIR holds the pid, the error log and the temp directories), the http
# block's settings for a benchmark (keep-alive for as long as it runs) and
# the seed's response.  Each script's own writer adds what differs: logs,
# sendfile, TLS, the server block.
nginx_conf_head() { # DIR WORKERS CONNECTIONS
    cat <<EOF
worker_processes $2;
worker_rlimit_nofile ${NOFILE:-4096};
daemon off;
pid $1/nginx.pid;
error_log $1/error.log warn;
events { worker_connections $3; }
EOF
}
nginx_http_common() { # DIR
    cat <<EOF
    server_tokens off;
    keepalive_requests 1000000000;
    keepalive_timeout 75s;
    client_body_temp_path $1/body;
    proxy_temp_path $1/proxy;
    fastcgi_temp_path $1/fastcgi;
    uwsgi_temp_path $1/uwsgi;
    scgi_temp_path $1/scgi;
EOF
}
# default_type + return 200 give the body and Content-Type; add_header the
# CORS headers.  nginx adds Server, Date, Content-Length, Connection itself.
nginx_hello_location() { # LOCATION
    cat <<EOF
        location $1 {
            default_type text/plain;
            add_header Access-Control-Allow-Origin "*" always;
            add_header Access-Control-Allow-Methods "GET, POST, PUT, DELETE, OPTIONS" always;
            add_header Access-Control-Allow-Headers "Content-Type" always;
            return 200 "Hello, world!";
        }
EOF
}

# nginx serving the seed's response (http_bench.sh, workers_bench.sh): no
# logging.  With several workers and no LISTEN, nginx's default: one
# listening socket that every worker waits on (EPOLLEXCLUSIVE), accept_mutex
# off.
write_nginx_conf() { # DIR PORT [WORKERS] [LISTEN]
    mkdir -p "$1"
    {
        nginx_conf_head "$1" "${3:-1}" "$NOFILE"
        echo "http {"
        echo "    access_log off;"
        nginx_http_common "$1"
        echo "    server {"
        echo "        listen 127.0.0.1:$2 backlog=4096 ${4:-};"
        nginx_hello_location /
        echo "    }"
        echo "}"
    } >"$1/nginx.conf"
}

http_ready() { curl -sf -o /dev/null --max-time 1 "http://127.0.0.1:$2/"; }

http_started() {
    local hdr bytes url="http://127.0.0.1:${PORT[$1]}/"
    hdr=$(curl -s -D - -o /dev/null "$url" | tr -d '\r' | paste -sd '|')
    bytes=$(curl -s -o /dev/null -w '%{size_header}+%{size_download}' "$url")
    note "$1: pid ${PID[$1]} port ${PORT[$1]}, response $bytes bytes: $hdr"
}
