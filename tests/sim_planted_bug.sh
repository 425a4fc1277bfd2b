#!/usr/bin/env bash
# A bug planted on purpose must be found by the HTTP simulation, and its
# seed must replay it (issue 13, "Must show").  In a scratch copy of the
# tree under /tmp (the real tree is never touched) one bug is planted:
#  - BUG=keepalive (default): the server's keep-alive time-out is skipped
#    (src/http/conn.c arms it 1000 times too late);
#  - BUG=pipeline: a batch of pipelined responses of more than 600 bytes
#    loses its last byte (src/http/conn_io.c, corio__http_flush).
# Then sim_http is built there and run seed after seed until the first
# failing one (at most MAX_SEEDS, default 1000).  That seed is run twice
# more: both runs must fail the same way, with the same trace hash.
# Usage: [BUG=keepalive|pipeline] tests/sim_planted_bug.sh [MAX_SEEDS]
# (make sim-planted runs both)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
max=${1:-1000}
scratch=$(mktemp -d /tmp/corio-planted.XXXXXX)
trap 'rm -rf "$scratch"' EXIT

# The tree as it is (tracked and new files, no build trees).
(cd "$root" && git ls-files -co --exclude-standard -z | xargs -0 tar cf -) | (cd "$scratch" && tar xf -)
case ${BUG:-keepalive} in
keepalive)
    f=$scratch/src/http/conn.c
    grep -q 'keepalive_timeout_ms \* 1000000u' "$f" || { echo "planted bug: the keep-alive arming line moved"; exit 1; }
    sed -i 's/keepalive_timeout_ms \* 1000000u/keepalive_timeout_ms * 1000000000u \/* PLANTED BUG *\//' "$f"
    echo "planted: src/http/conn.c arms the keep-alive time-out 1000 times too late"
    ;;
pipeline)
    f=$scratch/src/http/conn_io.c
    grep -q 'struct iovec iov = {c->obuf, c->olen};' "$f" || { echo "planted bug: corio__http_flush moved"; exit 1; }
    sed -i 's/struct iovec iov = {c->obuf, c->olen};/struct iovec iov = {c->obuf, c->olen > 600 ? c->olen - 1 : c->olen}; \/* PLANTED BUG *\//' "$f"
    echo "planted: src/http/conn_io.c drops the last byte of a response batch over 600 bytes"
    ;;
*)
    echo "BUG must be keepalive or pipeline"
    exit 2
    ;;
esac
grep -q 'PLANTED BUG' "$f" || { echo "planted bug: the patch did not apply"; exit 1; }

cmake -S "$scratch" -B "$scratch/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCORIO_BUILD_BENCH=OFF >/dev/null
cmake --build "$scratch/build" -j "$(nproc)" --target sim_http >/dev/null
bin=$scratch/build/tests/sim_http

# Seed after seed until one fails.
found=
for ((s = 1; s <= max; s++)); do
    if ! "$bin" --seed "$s" >"$scratch/run.out" 2>"$scratch/run.err"; then
        found=$s
        break
    fi
done
if [[ -z $found ]]; then
    echo "planted bug NOT found in $max seeds"
    exit 1
fi
hash=$(grep -o "^seed $found: trace [0-9a-f]*" "$scratch/run.out")
why=$(grep -m1 "invariant broken" "$scratch/run.err" || echo "(no invariant line)")
echo "found by seed $found, after $((found)) seed(s) tried: $hash"
echo "  $why"

# Replay it twice: same hash, same failure.
for i in 1 2; do
    if "$bin" --seed "$found" >"$scratch/re.out" 2>"$scratch/re.err"; then
        echo "replay $i of seed $found passed: not a replay"
        exit 1
    fi
    h=$(grep -o "^seed $found: trace [0-9a-f]*" "$scratch/re.out")
    w=$(grep -m1 "invariant broken" "$scratch/re.err" || echo "(no invariant line)")
    if [[ $h != "$hash" || $w != "$why" ]]; then
        echo "replay $i of seed $found differs: '$h' / '$w'"
        exit 1
    fi
    echo "replay $i: $h, same failure"
done
echo "planted bug found and replayed"
