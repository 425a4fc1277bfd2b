# shellcheck shell=bash
# tests/lib.sh — what the shell tests (examples_test.sh, http_clients_test.sh,
# serve_test.sh) share.  Each runs `set -euo pipefail` and then sources it
# from its own directory: source "$(dirname "${BASH_SOURCE[0]}")/lib.sh".
# Sourcing it makes $tmp, a fresh temporary directory, and an EXIT trap
# that kills (SIGTERM) every pid still in the array pids and removes $tmp;
# a test appends each background server to pids ("pids+=($!)").
#
#   fail TEXT...         print "FAIL: TEXT..." on stderr and exit 1
#   wait_port LOG ERE    wait up to 5 s for a line of LOG matching ERE, print its first group (the port); fail (status 1) if none
#   stop_server PID      SIGTERM PID, then fail() unless it exits within 5 s with status 0; drop it from pids

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
    for _ in $(seq 100); do
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

stop_server() {
    local p status=0 left=()
    kill -TERM "$1"
    for _ in $(seq 100); do
        kill -0 "$1" 2>/dev/null || break
        sleep 0.05
    done
    if kill -0 "$1" 2>/dev/null; then fail "still running 5 s after SIGTERM"; fi
    wait "$1" || status=$?
    for p in "${pids[@]}"; do [[ $p == "$1" ]] || left+=("$p"); done
    pids=("${left[@]}")
    [[ $status == 0 ]] || fail "exit status $status after SIGTERM"
}
