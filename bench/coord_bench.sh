#!/usr/bin/env bash
# bench/coord_bench.sh — coordination between tasks (issue 9): corio's
# queues, locks and cross-thread channel next to Go (channels, sync.Mutex)
# and Python asyncio / uvloop (asyncio.Queue, asyncio.Lock), in one run.
#
#   BUILD=build bench/coord_bench.sh
#
# Programs: $BUILD/bench/coord_bench (bench/coord_bench.c), the Go peer
# bench/peers/coord.go compiled here into $BUILD/bench/coord_go (standard
# library only, so offline; GOCACHE and HOME in a temporary directory, so a
# fresh machine or root works), and bench/peers/coord_asyncio.py run by
# /usr/bin/python3 (Debian's, which has python3-uvloop) plain and with
# --uvloop.  Each program does one metric per invocation: an untimed warm-up
# pass, then a timed one, printing wall-clock and process CPU time per
# operation.  Every repetition runs each metric on every peer, the peers in
# a rotating order, so a noisy moment on this shared machine does not always
# hit the same one; the figures are the medians over the repetitions.
#
# Pinning: the single-core metrics run under `taskset -c $CPU` (Go with
# GOMAXPROCS=1); the channel runs on two CPUs, `taskset -c $CPU,$CPU2` (Go
# with GOMAXPROCS=2), as a loop task and a plain thread (Go: two goroutines).
#
# Output: `name: value unit` lines per metric -- every peer's median and its
# CPU time per operation, then the ratios with the issue's targets and
# PASS/MISS:
#   METRIC_corio_vs_go       corio's time / Go's (channel: corio's items/s /
#                            Go's); the issue's target next to it
#   METRIC_asyncio_vs_corio  asyncio's time / corio's (how many times faster
#                            corio is; the channel: items/s the other way
#                            round); target >= 50 x
#   METRIC_corio_vs_go_cpu   corio's CPU time per operation / Go's: on a
#                            busy machine steadier than wall time (no target)
#   METRIC_uvloop_vs_corio   the same against uvloop (no target)
# and last a Markdown table of the same for docs/benchmarks.md.
#
# Knobs (environment): REPS (5) repetitions; SCALE (1) multiplies every
# pass's length; METRICS (all: queue_handoff queue_item lock_uncontended
# lock_handoff channel channel_rev remote_call); PEERS (corio go asyncio uvloop); CPU (0)
# and CPU2 (1).  With the defaults a run takes about 30-60 s.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=bench/lib.sh
source "$here/lib.sh"
BUILD=${BUILD:-build}
resolve_build
REPS=${REPS:-5}
SCALE=${SCALE:-1}
METRICS=${METRICS:-queue_handoff queue_item lock_uncontended lock_handoff channel channel_rev remote_call}
PEERS=${PEERS:-corio go asyncio uvloop}
CPU=${CPU:-0}
CPU2=${CPU2:-1}
PY=${PY:-/usr/bin/python3}

tmp=$(mktemp -d "/tmp/$bench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

# Operations per timed pass: a pass of roughly 0.05-0.3 s each.
declare -A N_FAST=([queue_handoff]=1000000 [queue_item]=2000000 [lock_uncontended]=10000000
    [lock_handoff]=1000000 [channel]=2000000 [channel_rev]=2000000 [remote_call]=200000)
declare -A N_PY=([queue_handoff]=20000 [queue_item]=100000 [lock_uncontended]=200000
    [lock_handoff]=20000 [channel]=20000 [remote_call]=20000)
# What the figure counts, for the headings.
declare -A WHAT=(
    [queue_handoff]="ns per handoff: two tasks ping-pong through two capacity-1 queues (Go: unbuffered channels)"
    [queue_item]="ns per item: one producer, one consumer, capacity 1024 (Go: buffered channel)"
    [lock_uncontended]="ns per acquire+release, nobody else wants the lock (Go: sync.Mutex)"
    [lock_handoff]="ns per acquisition: two tasks loop on acquire, yield, release"
    [channel]="items/s: a plain thread sends to a loop task, capacity 1024, two CPUs (Go: two goroutines, GOMAXPROCS=2)"
    [channel_rev]="items/s: a loop task sends to a plain thread (corio only; Go's figure is channel's)"
    [remote_call]="ns per round trip: a task runs a function on a second loop on another thread and waits for its answer, two CPUs (Go: a func over a channel to a second goroutine, answer on a reply channel, GOMAXPROCS=2; asyncio: run_coroutine_threadsafe)")
# Issue 9's targets: corio/Go bound and its direction (and >= 50x asyncio
# for each).  remote_call (issue 12) has none: it is reported as measured.
declare -A TARGET=([queue_handoff]="<= 0.25" [queue_item]="<= 0.5" [lock_uncontended]="<= 1.0"
    [lock_handoff]="<= 0.25" [channel]=">= 1.0" [channel_rev]=">= 1.0" [remote_call]="")

# ---- the peers ----
have=()
for p in $PEERS; do
    case $p in
    corio)
        if [[ -x $BUILD/bench/coord_bench ]]; then have+=(corio); else note "skipping corio: $BUILD/bench/coord_bench not built"; fi
        ;;
    go)
        gobin=$(command -v go || first_file /usr/lib/go/bin/go /usr/lib/go-1.*/bin/go) || gobin=
        if [[ -z $gobin ]]; then
            note "skipping Go: no go (apt-get install -y golang-go)"
        elif [[ ! -x $BUILD/bench/coord_go || $here/peers/coord.go -nt $BUILD/bench/coord_go ]]; then
            mkdir -p "$tmp/go" "$BUILD/bench"
            if (cd "$here/peers" && HOME=$tmp/go GOCACHE=$tmp/go/cache GOPATH=$tmp/go/path GOFLAGS='' \
                GO111MODULE=off GOPROXY=off "$gobin" build -o "$BUILD/bench/coord_go" coord.go) >"$tmp/go.log" 2>&1; then
                have+=(go)
            else
                note "skipping Go: the build failed: $(head -c 300 "$tmp/go.log")"
            fi
        else
            have+=(go)
        fi
        ;;
    asyncio)
        if [[ -x $PY ]]; then have+=(asyncio); else note "skipping asyncio: no $PY"; fi
        ;;
    uvloop)
        if "$PY" -c 'import uvloop' 2>/dev/null; then have+=(uvloop); else note "skipping uvloop: $PY has no uvloop (apt-get install -y python3-uvloop)"; fi
        ;;
    *) echo "$bench: unknown peer $p" >&2; exit 2 ;;
    esac
done
((${#have[@]})) || { echo "$bench: no peer to run" >&2; exit 1; }
if [[ -n ${gobin:-} ]]; then note "Go: $("$gobin" version 2>/dev/null)"; fi
note "asyncio: $("$PY" -c 'import sys; print(sys.version.split()[0])' 2>/dev/null)$("$PY" -c 'import uvloop; print(", uvloop", uvloop.__version__)' 2>/dev/null)"

# The command for PEER on METRIC, one word a line; nothing if PEER has no
# such program (the Python peer has no reverse channel).
cmd_for() {
    local p=$1 m=$2 two=$3 n
    [[ $p == go && $m == channel_rev ]] && return 0 # goroutines are symmetric: channel is its figure
    case $p in
    corio | go) n=$(awk -v a="${N_FAST[$m]}" -v s="$SCALE" 'BEGIN { printf "%d", a * s }') ;;
    *)
        [[ -n ${N_PY[$m]:-} ]] || return 0
        n=$(awk -v a="${N_PY[$m]}" -v s="$SCALE" 'BEGIN { printf "%d", a * s }')
        ;;
    esac
    local cpus=$CPU procs=1
    if [[ $two == 1 ]]; then cpus=$CPU,$CPU2; procs=2; fi
    printf '%s\n' taskset -c "$cpus"
    case $p in
    corio) printf '%s\n' "$BUILD/bench/coord_bench" "$m" "$n" ;;
    go) printf '%s\n' env "GOMAXPROCS=$procs" "$BUILD/bench/coord_go" "$m" "$n" ;;
    asyncio) printf '%s\n' "$PY" "$here/peers/coord_asyncio.py" "$m" "$n" ;;
    uvloop) printf '%s\n' "$PY" "$here/peers/coord_asyncio.py" --uvloop "$m" "$n" ;;
    esac
}

# ---- the runs ----
start=$(date +%s)
for ((rep = 0; rep < REPS; rep++)); do
    for m in $METRICS; do
        [[ -n ${WHAT[$m]:-} ]] || { echo "$bench: unknown metric $m" >&2; exit 2; }
        two=0
        [[ $m == channel* || $m == remote_call ]] && two=1
        n=${#have[@]}
        for ((k = 0; k < n; k++)); do
            p=${have[$(((k + rep) % n))]}
            mapfile -t cmd < <(cmd_for "$p" "$m" "$two")
            ((${#cmd[@]})) || continue
            out=$("${cmd[@]}" 2>"$tmp/err")
            rc=$?
            read -r name wall cpu <<<"$out"
            if ((rc != 0)) || [[ $name != "$m" || -z ${cpu:-} ]]; then
                note "$p $m failed (exit $rc): $(head -c 300 "$tmp/err")"
                continue
            fi
            echo "$wall" >>"$tmp/${m}_$p.wall"
            echo "$cpu" >>"$tmp/${m}_$p.cpu"
        done
    done
    note "repetition $((rep + 1))/$REPS done ($(($(date +%s) - start)) s)"
done

# ---- the figures ----
declare -A W=() C=() # METRIC_PEER -> median ns per op (wall, CPU)
verdict() { # VALUE "OP BOUND" -> PASS or MISS
    awk -v v="$1" -v op="${2% *}" -v b="${2#* }" 'BEGIN {
        ok = (op == "<=") ? v <= b : v >= b; print ok ? "PASS" : "MISS" }'
}
fmt() { awk -v v="$1" 'BEGIN { printf (v >= 100 ? "%.0f" : v >= 10 ? "%.1f" : "%.2f"), v }'; }
rate() { awk -v v="$1" 'BEGIN { printf "%.0f", 1e9 / v }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { r = a / b; printf (r >= 10 ? "%.0f" : "%.2f"), r }'; }
rows=()
for m in $METRICS; do
    echo "# $m: ${WHAT[$m]}"
    for p in corio go asyncio uvloop; do
        [[ -s $tmp/${m}_$p.wall ]] || continue
        W[${m}_$p]=$(median_of "$tmp/${m}_$p.wall")
        C[${m}_$p]=$(median_of "$tmp/${m}_$p.cpu")
        if [[ $m == channel* ]]; then
            printf '%s_items_per_s_%s: %s items/s\n' "$m" "$p" "$(rate "${W[${m}_$p]}")"
        else
            printf '%s_ns_%s: %s ns\n' "$m" "$p" "$(fmt "${W[${m}_$p]}")"
        fi
        printf '%s_cpu_ns_%s: %s ns\n' "$m" "$p" "$(fmt "${C[${m}_$p]}")"
    done
    # channel_rev has no peers of its own: Go's and asyncio's channel stand in.
    ref=$m
    [[ $m == channel_rev ]] && ref=channel
    c=${W[${m}_corio]:-}
    g=${W[${ref}_go]:-}
    a=${W[${ref}_asyncio]:-}
    u=${W[${ref}_uvloop]:-}
    vs_go=- vs_a=- vs_u=- ok_go=- ok_a=-
    if [[ -n $c && -n $g ]]; then
        # Times compare as corio / Go; rates (the channel) as corio / Go
        # too, which is Go's time / corio's.
        if [[ $m == channel* ]]; then vs_go=$(ratio "$g" "$c"); else vs_go=$(ratio "$c" "$g"); fi
        if [[ -n ${TARGET[$m]} ]]; then
            ok_go=$(verdict "$vs_go" "${TARGET[$m]}")
            printf '%s_corio_vs_go: %s x (target %s x): %s\n' "$m" "$vs_go" "${TARGET[$m]}" "$ok_go"
        else
            ok_go="no target"
            printf '%s_corio_vs_go: %s x (no target)\n' "$m" "$vs_go"
        fi
        printf '%s_corio_vs_go_cpu: %s x\n' "$m" "$(ratio "${C[${m}_corio]}" "${C[${ref}_go]}")"
    fi
    if [[ -n $c && -n $a ]]; then
        vs_a=$(ratio "$a" "$c")
        if [[ -n ${TARGET[$m]} ]]; then
            ok_a=$(verdict "$vs_a" ">= 50")
            printf '%s_asyncio_vs_corio: %s x (target >= 50 x): %s\n' "$m" "$vs_a" "$ok_a"
        else
            ok_a="no target"
            printf '%s_asyncio_vs_corio: %s x (no target)\n' "$m" "$vs_a"
        fi
    fi
    if [[ -n $c && -n $u ]]; then
        vs_u=$(ratio "$u" "$c")
        printf '%s_uvloop_vs_corio: %s x\n' "$m" "$vs_u"
    fi
    cell() { # METRIC_PEER -> "figure (cpu)" or -
        local k=$1
        [[ -n ${W[$k]:-} ]] || { echo -; return; }
        if [[ $m == channel* ]]; then
            echo "$(awk -v v="${W[$k]}" 'BEGIN { printf "%.3g", 1e3 / v }') M/s ($(fmt "${C[$k]}") ns)"
        else
            echo "$(fmt "${W[$k]}") ns ($(fmt "${C[$k]}"))"
        fi
    }
    rows+=("| \`$m\` | $(cell "${m}_corio") | $(cell "${ref}_go") | $(cell "${ref}_asyncio") | $(cell "${ref}_uvloop") | ${vs_go} x (${TARGET[$m]:--}) ${ok_go} | ${vs_a} x (${TARGET[$m]:+>= 50}) ${ok_a} |")
done
echo "# summary: medians of $REPS repetitions: wall time per operation (CPU time per operation in brackets); channels: millions of items/s (CPU ns per item); channel_rev's peers are channel's"
echo "| metric | corio | Go | asyncio | uvloop | corio / Go (target) | asyncio / corio (target) |"
echo "|---|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
