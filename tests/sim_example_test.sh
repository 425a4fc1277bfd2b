#!/usr/bin/env bash
# examples/sim_kv under the simulator, as docs/simulation.md runs it:
#  - for real (default backend), a SET survives a kill -9 of the server;
#  - correct by default: 50 seeds pass, each printing "seed S: trace HASH";
#  - a seed replays: the same seed gives the same trace hash, run after run;
#  - with --planted-bug (the server acknowledges before fsync) some seed
#    within 1,000 fails, and running that seed again fails the same way
#    twice: the same trace hash and, byte for byte, the same report.
#   sim_example_test.sh BUILD_DIR
# The seed counts are bounded so that a slow machine (make test-slow,
# ASan) stays well inside the ctest time-out; the simulation itself takes
# no real time to wait.
set -euo pipefail
build=$1
# shellcheck source=tests/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bin=$(cd "$build" && pwd)/sim_kv
[[ -x $bin ]] || fail "$bin is missing"

# 0. The same program runs for real: a write survives the server's death.
cd "$tmp"
serve() {
    "$bin" serve 0 kv.log 2>"$tmp/serve$1.log" &
    pids+=($!)
    port=$(wait_port "$tmp/serve$1.log" "serving [0-9]+ keys on 127.0.0.1:([0-9]+)") || fail "sim_kv serve did not start"
}
serve 1
[[ $("$bin" get "$port" color) == "NONE" ]] || fail "get before set"
[[ $("$bin" set "$port" color 2 blue) == "OK" ]] || fail "set"
[[ $("$bin" set "$port" color 1 red) == "OK" ]] || fail "an older version is acknowledged too"
[[ $("$bin" get "$port" color) == "VALUE 2 blue" ]] || fail "get after set"
{
    kill -KILL "${pids[0]}"
    wait "${pids[0]}" || true
} 2>/dev/null # no "Killed" notice: that is the point
pids=()
serve 2
grep -q "serving 1 keys" "$tmp/serve2.log" || fail "the restarted server did not replay its log: $(cat "$tmp/serve2.log")"
[[ $("$bin" get "$port" color) == "VALUE 2 blue" ]] || fail "get after restart"
kill "${pids[0]}"

# 1. The example is correct: 50 seeds pass.
"$bin" test --seeds 50 >"$tmp/ok" 2>"$tmp/ok.err" || fail "50 seeds did not pass: $(tail -3 "$tmp/ok") $(head -40 "$tmp/ok.err")"
[[ $(grep -cE '^seed [0-9]+: trace [0-9a-f]{16}$' "$tmp/ok") == 50 ]] || fail "expected 50 'seed S: trace HASH' lines: $(cat "$tmp/ok")"
[[ $(tail -1 "$tmp/ok") == "50 passed, 0 failed" ]] || fail "closing line: $(tail -1 "$tmp/ok")"
[[ ! -s $tmp/ok.err ]] || fail "passing seeds wrote to stderr: $(head -20 "$tmp/ok.err")"
# Different seeds run differently.
[[ $(grep -oE '[0-9a-f]{16}$' "$tmp/ok" | sort -u | wc -l) == 50 ]] || fail "two seeds gave the same trace hash"

# 2. A seed replays: seed 7 again, twice, gives the hash it gave among the 50.
want=$(grep '^seed 7: ' "$tmp/ok")
for i in 1 2; do
    "$bin" test --seed 7 >"$tmp/seven" 2>&1 || fail "seed 7 failed on its own: $(cat "$tmp/seven")"
    [[ $(head -1 "$tmp/seven") == "$want" ]] || fail "seed 7 replayed as '$(head -1 "$tmp/seven")', not '$want'"
done

# 3. The planted bug is found within 1,000 seeds...
if "$bin" test --seeds 1000 --planted-bug --stop >"$tmp/bug" 2>"$tmp/bug.err"; then
    fail "--planted-bug: no seed of 1,000 failed: $(tail -1 "$tmp/bug")"
fi
line=$(grep -E '^seed [0-9]+: trace [0-9a-f]{16} FAILED$' "$tmp/bug") || fail "no FAILED line: $(tail -3 "$tmp/bug")"
seed=$(sed -E 's/^seed ([0-9]+):.*/\1/' <<<"$line")
grep -q "^corio: sim seed $seed: invariant broken: .*acknowledged write is lost" "$tmp/bug.err" ||
    fail "seed $seed: no lost-write report: $(head -5 "$tmp/bug.err")"
grep -q "^corio: sim seed $seed: last [0-9]* of [0-9]* events:" "$tmp/bug.err" || fail "seed $seed: no trace tail"
[[ $(tail -1 "$tmp/bug") =~ ^[0-9]+\ passed,\ 1\ failed$ ]] || fail "closing line: $(tail -1 "$tmp/bug")"

# ... and its seed replays the failure exactly, twice.
for i in 1 2; do
    if "$bin" test --seed "$seed" --planted-bug >"$tmp/replay" 2>"$tmp/replay.err"; then
        fail "seed $seed passed when replayed (run $i)"
    fi
    [[ $(head -1 "$tmp/replay") == "$line" ]] || fail "replay $i: '$(head -1 "$tmp/replay")', not '$line'"
    cmp -s "$tmp/bug.err" "$tmp/replay.err" || fail "replay $i reported differently: $(diff "$tmp/bug.err" "$tmp/replay.err" | head -20)"
done
echo "planted bug found by seed $seed ($line); replayed twice"
