#!/usr/bin/env bash
# bench/sim_bench.sh — simulated throughput (issue 13): how many HTTP
# requests the deterministic simulation (tests/sim_http.c: corio's HTTP
# server and its simulated clients, all in one process on a virtual clock
# and network) completes per second of wall time on one core.  Target:
# >= 100,000 simulated requests per wall second, so a CI minute covers
# millions of requests.
#
#   BUILD=build bench/sim_bench.sh   (REPS=5 SEEDS=40 CLIENTS=20 ROUNDS=30 CPU=0)
#
# Runs, each pinned with `taskset -c $CPU`, REPS times in turn, medians:
#  - small, faults off: API-like traffic (bodies under 2 KiB), CLIENTS
#    clients per seed each opening ROUNDS connections in turn (each a kind
#    drawn from the suite's mix: keep-alive, pipelined, slow, vanishing,
#    garbage...), every fault off (paused time, latency 0);
#  - small, swarm: the same with the seed's swarm faults;
#  - suite mix, swarm: the test suite's own mix (10 to 60 clients per seed,
#    bodies up to 400 KB), as make test and make sim run it.
# Each prints wall and process CPU time; requests/s are per wall second
# (the target) and per CPU second (what the machine's noise does not
# change).  With perf installed, one more run of the small swarm case is
# profiled and the share of samples in the sim backend (src/backend/sim*.c
# and the seeded ready queue in src/core/task.c) is printed.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=bench/lib.sh
source "$here/lib.sh"
BUILD=${BUILD:-build}
[[ $BUILD == /* ]] || BUILD=$root/$BUILD
REPS=${REPS:-5} SEEDS=${SEEDS:-40} CLIENTS=${CLIENTS:-20} ROUNDS=${ROUNDS:-30} CPU=${CPU:-0}
bin=$BUILD/tests/sim_http
if [[ ! -x $bin ]]; then
    note "sim_bench: $bin missing (build the tests)"
    exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

run_case() { # NAME ARGS...
    local name=$1
    shift
    local out
    out=$(taskset -c "$CPU" "$bin" --quiet "$@" | tail -2)
    if ! grep -q " 0 failed" <<<"$out"; then
        echo "sim_bench: $name: seeds failed: $out" >&2
    fi
    sed -nE 's/.*\(([0-9]+) requests\/s\), .*\(([0-9]+) requests\/CPU s\).*/\1 \2/p' <<<"$out" >>"$tmp/$name"
}

for ((r = 0; r < REPS; r++)); do
    run_case small_off --from 1 --seeds "$SEEDS" --clients "$CLIENTS" --rounds "$ROUNDS" --mix small --faults 0
    run_case small_swarm --from 1 --seeds "$SEEDS" --clients "$CLIENTS" --rounds "$ROUNDS" --mix small
    run_case suite_swarm --from 1 --seeds $((SEEDS * 5))
done
for name in small_off small_swarm suite_swarm; do
    wall=$(cut -d' ' -f1 "$tmp/$name" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
    cpu=$(cut -d' ' -f2 "$tmp/$name" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
    echo "sim_http_${name}_requests_per_wall_s: $wall"
    echo "sim_http_${name}_requests_per_cpu_s: $cpu"
    if [[ $name == small_off ]]; then
        if ((wall >= 100000)); then verdict=PASS; else verdict=MISS; fi
        echo "sim_http_small_off_vs_target: $(awk -v w="$wall" 'BEGIN {printf "%.2f", w / 100000}') x of 100000 requests/s $verdict"
    fi
done

if command -v perf >/dev/null && perf record -q -o "$tmp/perf.data" taskset -c "$CPU" "$bin" --quiet --from 1 \
        --seeds "$SEEDS" --clients "$CLIENTS" --rounds "$ROUNDS" --mix small >/dev/null 2>&1; then
    objs=$(find "$BUILD" -path '*corio_static.dir/src/backend/sim*.c.o')
    syms=$( (for o in $objs; do nm --defined-only "$o" | awk '$2 ~ /[tT]/ {print $3}'; done; echo sim_insert) | sort -u)
    perf report -i "$tmp/perf.data" --no-children --sort symbol --stdio 2>/dev/null |
        awk -v list="$(tr '\n' ' ' <<<"$syms")" '
            BEGIN { n = split(list, s, " "); for (i = 1; i <= n; i++) sim[s[i]] = 1 }
            /^ +[0-9.]+%/ { p = $1; sub(/%/, "", p); sym = $NF; if ($(NF) == "-") sym = $(NF - 2);
                            for (i = 3; i <= NF; i++) if ($i in sim) { share += p; break } }
            END { printf "sim_layer_share_of_cpu: %.1f %%\n", share }'
else
    note "sim_bench: perf not usable here; no sim-layer share"
fi
