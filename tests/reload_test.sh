#!/usr/bin/env bash
# Zero-downtime reload of corio-serve (--handover): a client load keeps
# running (fresh connections, keep-alive ones, a 4 MiB download in flight)
# through three successive reloads, each a new corio-serve taking the
# running one's listening socket over a Unix socket.  Asserts: no refused
# connection, no failed request (tests/reload_load.py says what a failure
# is), every old server exits 0 on its own once it has handed over and
# drained, and each new one serves (the load makes progress after every
# reload while the old one is gone).
#   reload_test.sh BUILD_DIR      (CORIO_BACKEND picks the backend)
set -euo pipefail
build=$1
serve=$build/tools/corio-serve
here=$(dirname "${BASH_SOURCE[0]}")
# shellcheck source=tests/lib.sh
source "$here/lib.sh"
command -v python3 >/dev/null || { echo "SKIP: no python3"; exit 77; }

mkdir "$tmp/root"
printf 'hello\n' >"$tmp/root/a.txt"
head -c $((4 * 1024 * 1024)) /dev/zero >"$tmp/root/big.bin"
sock=$tmp/handover.sock

"$serve" --quiet --port 0 --handover "$sock" "$tmp/root" >"$tmp/out0" 2>"$tmp/err0" &
pid=$!
pids+=("$pid")
port=$(wait_port "$tmp/out0" '^Serving HTTP on 127\.0\.0\.1 port ([0-9]+) ') || fail "no 'Serving HTTP on' line"
[[ -S $sock ]] || wait_until test -S "$sock" || fail "no handover socket at $sock"

progress() { cat "$tmp/progress" 2>/dev/null || echo 0; }
# wait until the load has made n more good requests than `base`
progressed() { (($(progress) >= $1)); }

python3 "$here/reload_load.py" "$port" "$tmp/progress" "$tmp/stop" >"$tmp/load" 2>&1 &
load=$!
pids+=("$load")
wait_until progressed 200 || fail "the load makes no progress: $(cat "$tmp/load")"

for i in 1 2 3; do
    "$serve" --quiet --handover "$sock" "$tmp/root" >"$tmp/out$i" 2>"$tmp/err$i" &
    new=$!
    pids+=("$new")
    took() { grep -q "^Serving HTTP on 127\.0\.0\.1:$port (fd [0-9]*, taken over) \.\.\.$" "$tmp/out$i"; }
    wait_until took || fail "reload $i: the new server took nothing: $(cat "$tmp/out$i" "$tmp/err$i")"
    # the old one exits by itself, with status 0, once drained
    for _ in $(seq $((wait_s * 20))); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    kill -0 "$pid" 2>/dev/null && fail "reload $i: the old server still runs $wait_s s after the handover"
    status=0
    wait "$pid" || status=$?
    ((status == 0)) || fail "reload $i: the old server exited $status: $(cat "$tmp/err$((i - 1))")"
    grep -q "^corio-serve: handed the sockets over to pid $new; finishing requests in flight$" "$tmp/err$((i - 1))" ||
        fail "reload $i: no handover note: $(cat "$tmp/err$((i - 1))")"
    left=()
    for p in "${pids[@]}"; do [[ $p == "$pid" ]] || left+=("$p"); done
    pids=("${left[@]}")
    pid=$new
    # the new server alone serves the load now
    base=$(progress)
    wait_until progressed $((base + 200)) || fail "reload $i: no progress after it: $(cat "$tmp/load")"
done

touch "$tmp/stop"
wait "$load" || fail "the load client failed: $(cat "$tmp/load")"
result=$(head -1 "$tmp/load")
[[ $result =~ ^ok\ ([0-9]+)\ failed\ ([0-9]+)\ refused\ ([0-9]+)\ retried\ ([0-9]+)$ ]] ||
    fail "load: $(cat "$tmp/load")"
((BASH_REMATCH[2] == 0 && BASH_REMATCH[3] == 0)) || fail "load through 3 reloads: $(cat "$tmp/load")"
echo "load through 3 reloads: $result"

stop_server "$pid"
[[ ! -e $sock ]] || fail "the last server left its handover socket behind"

# More sockets than one server may adopt (16): with --workers every worker
# has its own SO_REUSEPORT socket, and a successor must take and serve
# every one, or the connections queued on the ones it left would be reset.
sock2=$tmp/handover20.sock
"$serve" --quiet --port 0 --workers 20 --handover "$sock2" "$tmp/root" >"$tmp/w20a" 2>"$tmp/w20a.err" &
pid=$!
pids+=("$pid")
port=$(wait_port "$tmp/w20a" '^Serving HTTP on 127\.0\.0\.1 port ([0-9]+) ') || fail "--workers 20: no 'Serving' line"
wait_until test -S "$sock2" || fail "--workers 20: no handover socket"
"$serve" --quiet --workers 20 --handover "$sock2" "$tmp/root" >"$tmp/w20b" 2>"$tmp/w20b.err" &
new=$!
pids+=("$new")
took20() { (($(grep -c "^Serving HTTP on 127\.0\.0\.1:$port (fd [0-9]*, taken over) \.\.\.$" "$tmp/w20b") == 20)); }
wait_until took20 || fail "--workers 20: the successor did not take 20 sockets: $(cat "$tmp/w20b" "$tmp/w20b.err")"
status=0
wait "$pid" || status=$?
((status == 0)) || fail "--workers 20: the old server exited $status: $(cat "$tmp/w20a.err")"
for _ in $(seq 40); do
    [[ $(curl -s --max-time "$wait_s" "http://127.0.0.1:$port/a.txt") == hello ]] ||
        fail "--workers 20: a request after the handover failed"
done
stop_server "$new"
echo "PASS corio-serve reload on ${CORIO_BACKEND:-auto}"
