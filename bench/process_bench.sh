#!/usr/bin/env bash
# bench/process_bench.sh — spawn_wait_per_s (issue 10): spawn and wait for
# /bin/true, 8 at a time, with corio (io_uring and epoll backends) next to
# a libuv uv_spawn C program and Python asyncio's create_subprocess_exec,
# in one run.
#
#   BUILD=build bench/process_bench.sh
#
# Programs: $BUILD/bench/process_bench (bench/process_bench.c),
# $BUILD/bench/libuv_spawn (bench/peers/libuv_spawn.c, built when libuv1-dev
# is installed) and bench/peers/spawn_asyncio.py under /usr/bin/python3.
# Each does an untimed warm-up, then a timed pass of N children, and prints
# wall time, its own CPU time (the spawning and the waiting: what the
# library costs) and its children's CPU time (exec and run of /bin/true,
# the same for everyone), all per child.  Every program runs pinned to
# $CPU with its children (they inherit the pinning), so the children's
# exec competes with the parent exactly as on a busy single core; every
# repetition runs every peer, in a rotating order.
#
# Output: `name: value unit` lines -- per peer the median spawn+waits per
# second and parent CPU per spawn, then the ratios with the issue's targets:
#   spawn_wait_per_s_corio_vs_libuv     corio's spawns/s / libuv's (>= 1.0)
#   spawn_wait_per_s_corio_vs_asyncio   corio's spawns/s / asyncio's (>= 5)
#   spawn_cpu_libuv_vs_corio, spawn_cpu_asyncio_vs_corio
#                                       the peer's parent CPU per spawn /
#                                       corio's (how many times cheaper)
# "corio" in the ratios is the io_uring backend when it runs, else epoll.
#
# Knobs: REPS (5), N (2000; asyncio runs N/2), CONC (8), CPU (0), PEERS
# (uring epoll libuv asyncio).  A run takes about 30-60 s.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=bench/lib.sh
source "$here/lib.sh"
BUILD=${BUILD:-build}
resolve_build
REPS=${REPS:-5}
N=${N:-2000}
CONC=${CONC:-8}
CPU=${CPU:-0}
PEERS=${PEERS:-uring epoll libuv asyncio}
PY=${PY:-/usr/bin/python3}

tmp=$(mktemp -d "/tmp/$bench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

have=()
for p in $PEERS; do
    case $p in
    uring | epoll)
        if [[ -x $BUILD/bench/process_bench ]]; then have+=("$p"); else note "skipping $p: process_bench not built"; fi ;;
    libuv)
        if [[ -x $BUILD/bench/libuv_spawn ]]; then have+=(libuv); else note "skipping libuv: libuv_spawn not built (libuv1-dev)"; fi ;;
    asyncio)
        if [[ -x $PY ]]; then have+=(asyncio); else note "skipping asyncio: no $PY"; fi ;;
    esac
done
((${#have[@]})) || { note "nothing to run"; exit 1; }

run_one() {
    case $1 in
    uring) CORIO_BACKEND=io_uring taskset -c "$CPU" "$BUILD/bench/process_bench" "$N" "$CONC" ;;
    epoll) CORIO_BACKEND=epoll taskset -c "$CPU" "$BUILD/bench/process_bench" "$N" "$CONC" ;;
    libuv) taskset -c "$CPU" "$BUILD/bench/libuv_spawn" "$N" "$CONC" ;;
    asyncio) taskset -c "$CPU" "$PY" "$here/peers/spawn_asyncio.py" $((N / 2)) "$CONC" ;;
    esac
}

note "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for ((rep = 0; rep < REPS; rep++)); do
    n=${#have[@]}
    for ((i = 0; i < n; i++)); do
        p=${have[$(((i + rep) % n))]}
        line=$(run_one "$p") || { note "$p failed in repetition $rep"; continue; }
        read -r _ wall cpu ccpu <<<"$line"
        echo "$wall" >>"$tmp/$p.wall"
        echo "$cpu" >>"$tmp/$p.cpu"
        echo "$ccpu" >>"$tmp/$p.ccpu"
    done
done
note "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

declare -A RATE CPUS
for p in "${have[@]}"; do
    [[ -s $tmp/$p.wall ]] || continue
    w=$(median_of "$tmp/$p.wall")
    RATE[$p]=$(echo "scale=1; 1000000000 / $w" | bc)
    CPUS[$p]=$(echo "scale=1; $(median_of "$tmp/$p.cpu") / 1000" | bc)
    echo "spawn_wait_per_s_$p: ${RATE[$p]} /s"
    echo "spawn_cpu_$p: ${CPUS[$p]} us/spawn"
    echo "spawn_child_cpu_$p: $(echo "scale=1; $(median_of "$tmp/$p.ccpu") / 1000" | bc) us/spawn"
done
corio=
[[ -n ${RATE[uring]:-} ]] && corio=uring
[[ -z $corio && -n ${RATE[epoll]:-} ]] && corio=epoll
verdict() { if (($(echo "$1 >= $2" | bc))); then echo PASS; else echo MISS; fi; }
if [[ -n $corio ]]; then
    for peer in libuv asyncio; do
        [[ -n ${RATE[$peer]:-} ]] || continue
        target=1.0
        [[ $peer == asyncio ]] && target=5
        r=$(echo "scale=2; ${RATE[$corio]} / ${RATE[$peer]}" | bc)
        echo "spawn_wait_per_s_corio_vs_$peer: $r x (target >= $target: $(verdict "$r" "$target"))"
        echo "spawn_cpu_${peer}_vs_corio: $(echo "scale=2; ${CPUS[$peer]} / ${CPUS[$corio]}" | bc) x"
    done
fi
