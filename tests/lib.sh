# shellcheck shell=bash
# tests/lib.sh — what the shell tests (examples_test.sh, http_clients_test.sh,
# serve_test.sh) share.  Each runs `set -euo pipefail` and then sources it
# from its own directory: source "$(dirname "${BASH_SOURCE[0]}")/lib.sh".
# Sourcing it makes $tmp, a fresh temporary directory, and an EXIT trap
# that kills (SIGTERM) every pid still in the array pids and removes $tmp;
# a test appends each background server to pids ("pids+=($!)").
#
#   fail TEXT...         print "FAIL: TEXT..." on stderr and exit 1
#   wait_port LOG ERE    wait up to $wait_s for a line of LOG matching ERE, print its first group (the port); fail (status 1) if none
#   wait_until CMD...    run CMD every 50 ms until it succeeds, for at most $wait_s; status 1 if it never did
#   stop_server PID [LOG...]
#                        SIGTERM PID, then fail() unless it exits within $wait_s with status 0; drop it from pids;
#                        on failure show what the process is doing and the LOG files (its output)
#
# wait_s (30 s) is the one ceiling for every wait, curl's --max-time and
# Python's socket time-outs included: far above what the slowest machine
# needs (make test-slow gives each test a fraction of one busy CPU), so a
# pass never depends on a quiet machine; the waits end as soon as the
# event happens.

wait_s=30
tmp=$(mktemp -d)
pids=()
cleanup() {
    local p
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }

wait_port() {
    local line
    for _ in $(seq $((wait_s * 20))); do
        if [[ -e $1 ]]; then
            while IFS= read -r line || [[ -n $line ]]; do
                if [[ $line =~ $2 ]]; then
                    echo "${BASH_REMATCH[1]}"
                    return 0
                fi
            done <"$1"
        fi
        sleep 0.05
    done
    return 1
}

wait_until() {
    for _ in $(seq $((wait_s * 20))); do
        "$@" && return 0
        sleep 0.05
    done
    return 1
}

# What a server that did not stop is doing, for the failure's log: its
# signal masks (is SIGTERM pending, blocked, caught?), and each thread's
# state, kernel wait channel and current system call.
proc_state() {
    local t
    echo "--- pid $1: $(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null)"
    grep -E '^(State|SigPnd|ShdPnd|SigBlk|SigIgn|SigCgt):' "/proc/$1/status" 2>/dev/null
    for t in /proc/"$1"/task/*; do
        echo "thread ${t##*/} $(cat "$t/comm" 2>/dev/null): $(awk '{print $3}' "$t/stat" 2>/dev/null)" \
            "wchan=$(cat "$t/wchan" 2>/dev/null) syscall=$(cut -d' ' -f1 "$t/syscall" 2>/dev/null)" \
            "$(grep -E '^(SigPnd|SigBlk)' "$t/status" 2>/dev/null | tr '\n\t' '  ')"
    done
    echo "--- end of pid $1"
}

show_logs() {
    local f
    for f in "$@"; do
        echo "--- $f:" >&2
        tail -n 40 "$f" >&2 2>/dev/null || true
    done
}

stop_server() {
    local p status=0 left=()
    kill -TERM "$1"
    for _ in $(seq $((wait_s * 20))); do
        kill -0 "$1" 2>/dev/null || break
        sleep 0.05
    done
    if kill -0 "$1" 2>/dev/null; then
        proc_state "$1" >&2
        show_logs "${@:2}"
        fail "still running $wait_s s after SIGTERM"
    fi
    wait "$1" || status=$?
    for p in "${pids[@]}"; do [[ $p == "$1" ]] || left+=("$p"); done
    pids=("${left[@]}")
    [[ $status == 0 ]] || { show_logs "${@:2}"; fail "exit status $status after SIGTERM"; }
}
