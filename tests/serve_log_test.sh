#!/usr/bin/env bash
# corio-serve's access log never blocks the server: with stderr a FIFO
# that nobody reads, 8,000 requests are all still answered (the
# lines that do not fit the log's buffer are dropped and counted); once a
# reader comes, every line kept arrives, followed by
# "corio-serve: N log lines dropped", and kept + dropped is exactly the
# number of requests.  Logging then goes on, and SIGTERM's note comes
# through the log too.
#   serve_log_test.sh BUILD_DIR      (CORIO_BACKEND picks the backend)
set -euo pipefail
build=$1
serve=$build/tools/corio-serve
# shellcheck source=tests/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# 64 KiB of pipe and 256 KiB of log buffer hold about 4,400 lines
requests=8000
mkdir "$tmp/root"
printf 'hello\n' >"$tmp/root/a.txt"
mkfifo "$tmp/err"
# Hold the FIFO open for reading (and writing, so the open does not wait)
# without reading it: the server's stderr fills up and stays full.
exec 3<>"$tmp/err"
"$serve" --port 0 "$tmp/root" >"$tmp/out" 2>"$tmp/err" 3>&- &
pid=$!
pids+=("$pid")
port=$(wait_port "$tmp/out" '^Serving HTTP on 127\.0\.0\.1 port ([0-9]+) ') || fail "no 'Serving HTTP on' line"
url=http://127.0.0.1:$port

# One keep-alive connection, $requests requests; each must get its 200.
# (--max-time bounds each request; a server stuck on its log would need
# it for every one of them, hence the outer bound.)
codes=$(timeout 200 curl -s --max-time 30 -o /dev/null -w '%{http_code}\n' "$url/a.txt?[1-$requests]" || true)
ok=$(grep -c '^200$' <<<"$codes" || true)
[[ $ok == "$requests" ]] || fail "$ok of $requests requests answered while stderr was stalled"

# Now read: the kept lines, then the count of the dropped ones.
cat <&3 >"$tmp/log" &
reader=$!
pids+=("$reader")
dropped_noted() { grep -q 'log lines dropped' "$tmp/log"; }
wait_until dropped_noted || true
note=$(grep 'log lines dropped' "$tmp/log") || fail "no dropped-lines note: $(tail -3 "$tmp/log")"
[[ $note =~ ^corio-serve:\ ([0-9]+)\ log\ lines\ dropped$ ]] || fail "note: $note"
dropped=${BASH_REMATCH[1]}
kept=$(grep -c '"GET /a\.txt?[0-9]* HTTP/1\.1" 200 6$' "$tmp/log" || true)
((dropped > 0)) || fail "nothing dropped: the stall did not happen"
((kept + dropped == requests)) || fail "kept $kept + dropped $dropped != $requests"
[[ $(tail -1 "$tmp/log") == "$note" ]] || fail "the note is not after the kept lines"

# Logging goes on once the reader is back.
[[ $(curl -s --max-time "$wait_s" "$url/a.txt?after") == hello ]] || fail "request after the stall"
logged_after() { grep -q '"GET /a\.txt?after HTTP/1\.1" 200 6$' "$tmp/log"; }
wait_until logged_after || fail "no log line after the stall"

stop_server "$pid"
exit_noted() { grep -q '^Termination signal received, exiting\.$' "$tmp/log"; }
wait_until exit_noted || fail "no exit note: $(tail -2 "$tmp/log")"
kill "$reader" 2>/dev/null || true
echo "PASS corio-serve log on ${CORIO_BACKEND:-auto}"
