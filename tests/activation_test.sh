#!/usr/bin/env bash
# Socket activation end to end: corio-serve started with listening sockets
# passed the systemd way (LISTEN_PID / LISTEN_FDS at fds 3, 4, ...) serves
# them instead of binding.  Two launchers: tests/listen_fds_launch.py (in
# CI everywhere: two TCP sockets and a Unix one, an fd that is not a
# listening stream socket, variables meant for another pid) and, when it
# is installed, systemd's own systemd-socket-activate.  Each server must
# answer on every socket and stop with status 0 on SIGTERM.
#   activation_test.sh BUILD_DIR      (CORIO_BACKEND picks the backend)
set -euo pipefail
build=$1
serve=$build/tools/corio-serve
here=$(dirname "${BASH_SOURCE[0]}")
launch=$here/listen_fds_launch.py
# shellcheck source=tests/lib.sh
source "$here/lib.sh"

command -v python3 >/dev/null || { echo "SKIP: python3 missing"; exit 77; }
root=$tmp/root
mkdir -p "$root"
printf 'activated\n' >"$root/a.txt"
get() { curl -s --max-time "$wait_s" "$@"; }

# 1. two TCP sockets and a Unix one, with names
python3 "$launch" --tcp 2 --unix "$tmp/s.sock" --names web:web:local "$tmp/ports" -- "$serve" -q "$root" \
    >"$tmp/out" 2>"$tmp/err" &
pid=$!
pids+=("$pid")
wait_port "$tmp/out" '^Serving HTTP on (.*s\.sock) \(fd 5, socket activation\)' >/dev/null ||
    fail "no 'Serving HTTP on' line for the Unix socket: $(cat "$tmp/out" "$tmp/err")"
mapfile -t ports <"$tmp/ports"
((${#ports[@]} == 2)) || fail "launcher ports: ${ports[*]}"
for i in 0 1; do
    grep -q "^Serving HTTP on 127.0.0.1:${ports[i]} (fd $((3 + i)), socket activation) \.\.\.$" "$tmp/out" ||
        fail "no line for fd $((3 + i)): $(cat "$tmp/out")"
    [[ $(get "http://127.0.0.1:${ports[i]}/a.txt") == activated ]] || fail "GET on passed socket $i"
done
[[ $(get --unix-socket "$tmp/s.sock" http://x/a.txt) == activated ]] || fail "GET on the passed Unix socket"
# no variable is passed on, and the fds are close-on-exec (nothing here
# execs, so check the flags the way a child would see them)
for fd in 3 4 5; do
    flags=$(awk '/^flags:/ {print $2}' "/proc/$pid/fdinfo/$fd")
    (((8#$flags & 8#2000000) != 0)) || fail "fd $fd not close-on-exec (flags $flags)"
done
stop_server "$pid" "$tmp/out" "$tmp/err"

# 2. what is not a listening stream socket is refused, with a clear reason
for bad in pipe:"not a socket" udp:"not a stream socket" unlistened:"not listening"; do
    kind=${bad%%:*} why=${bad#*:}
    status=0
    python3 "$launch" --tcp 1 --bad "$kind" "$tmp/ports" -- "$serve" -q "$root" >"$tmp/out" 2>"$tmp/err" || status=$?
    [[ $status == 1 ]] || fail "--bad $kind: exit status $status"
    grep -q "can not serve the 2 socket(s) passed (LISTEN_FDS): .*$why" "$tmp/err" ||
        fail "--bad $kind: message: $(cat "$tmp/err")"
done

# 3. variables meant for another process: ignored, corio-serve binds as usual
python3 "$launch" --wrong-pid "$tmp/ports" -- "$serve" -q --port 0 "$root" >"$tmp/out" 2>"$tmp/err" &
pid=$!
pids+=("$pid")
port=$(wait_port "$tmp/out" '^Serving HTTP on 127\.0\.0\.1 port ([0-9]+) ') ||
    fail "did not bind with another pid's LISTEN_FDS: $(cat "$tmp/out" "$tmp/err")"
[[ $port != "$(head -1 "$tmp/ports")" ]] || fail "served the socket meant for another pid"
[[ $(get "http://127.0.0.1:$port/a.txt") == activated ]] || fail "GET after ignoring LISTEN_FDS"
stop_server "$pid" "$tmp/out" "$tmp/err"

# 4. systemd's launcher, when installed (scripts/deps.sh test installs it)
if command -v systemd-socket-activate >/dev/null; then
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    # it execs the server on the first connection, keeping its pid
    systemd-socket-activate -l "127.0.0.1:$port" --fdname=web "$serve" -q "$root" >"$tmp/out" 2>"$tmp/err" &
    pid=$!
    pids+=("$pid")
    wait_port "$tmp/err" "^(Listening) on 127\.0\.0\.1:$port" >/dev/null || fail "systemd-socket-activate: $(cat "$tmp/err")"
    [[ $(get "http://127.0.0.1:$port/a.txt") == activated ]] || fail "GET through systemd-socket-activate"
    [[ $(get "http://127.0.0.1:$port/a.txt") == activated ]] || fail "second GET through systemd-socket-activate"
    grep -q "^Serving HTTP on 127.0.0.1:$port (fd 3, socket activation)" "$tmp/out" || fail "$(cat "$tmp/out")"
    stop_server "$pid" "$tmp/out" "$tmp/err"
else
    echo "note: systemd-socket-activate not installed; the Python launcher alone was used"
fi
echo ok
