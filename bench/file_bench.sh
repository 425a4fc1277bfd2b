#!/usr/bin/env bash
# file_bench.sh — corio's async files next to dd, a plain libuv C program
# (uv_fs_* on libuv's thread pool) and Python aiofiles, side by side.
#
#   seqread:  one 1 GiB page-cached file read in 1 MiB blocks
#             corio (bench/file_bench seqread) vs `dd bs=1M of=/dev/null`
#   read10k:  10,000 files of 4 KiB read (open/read/close) by 64 concurrent
#             tasks: corio vs libuv_files vs aiofiles
#   write10k: the same files written (no fsync)
#
# Every program runs REPS times (default 5), interleaved with its peers, on
# both CPUs (the peers' thread pools may use them too); the harness takes
# the median wall time and the median CPU time (user+sys, threads included)
# and prints `name: value unit` lines plus ratios:
#   file_read10k_corio_s: 0.051 s
#   file_read10k_corio_vs_libuv: 1.80 x     peer time / corio time (> 1: corio faster)
#   file_read10k_corio_cpu_vs_libuv: 0.50 x corio cpu / peer cpu (< 1: corio cheaper)
# Every program, dd included, is timed the same way by bench/timeit: wall
# time from a monotonic ns clock around fork/exec/wait (start-up included),
# CPU time from wait4's rusage (all threads, µs resolution); /usr/bin/time's
# 10 ms steps were too coarse for runs of 20-60 ms.
# Knobs: BUILD, REPS, BENCH_DIR (default: a fresh directory under /var/tmp,
# a disk-backed file system), SEQ_MB (1024), NFILES (10000), CONC (64),
# BACKENDS ("io_uring epoll"), PYTHON (/usr/bin/python3).
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=bench/lib.sh
source "$here/lib.sh"
BUILD=${BUILD:-build}
[[ $BUILD == /* ]] || BUILD=$root/$BUILD
REPS=${REPS:-5}
SEQ_MB=${SEQ_MB:-1024}
NFILES=${NFILES:-10000}
CONC=${CONC:-64}
BACKENDS=${BACKENDS:-"io_uring epoll"}
PYTHON=${PYTHON:-/usr/bin/python3}
work=${BENCH_DIR:-$(mktemp -d /var/tmp/corio-filebench.XXXXXX)}
mkdir -p "$work" || exit 2
trap 'rm -rf "$work"' EXIT

corio_bin=$BUILD/bench/file_bench
libuv_bin=$BUILD/bench/libuv_files
timeit=$BUILD/bench/timeit
[[ -x $corio_bin && -x $timeit ]] || { note "missing $corio_bin or $timeit (build first)"; exit 2; }

# --- fixtures -----------------------------------------------------------
note "creating a ${SEQ_MB} MiB file and ${NFILES} files of 4 KiB in $work"
dd if=/dev/urandom of="$work/big" bs=1M count="$SEQ_MB" status=none
cat "$work/big" >/dev/null # page-cache it
mkdir -p "$work/src"
"$corio_bin" write "$work/src" "$NFILES" "$CONC" >/dev/null || { note "fixture write failed"; exit 1; }
cat "$work"/src/* >/dev/null

# run NAME CMD...: one timed run; appends "wall cpu" to $work/times.NAME
run() {
    local name=$1
    shift
    local wall user sys
    if ! "$timeit" "$work/time.out" "$@" >/dev/null 2>"$work/err.out"; then
        note "$name failed: $(tail -1 "$work/err.out")"
        return
    fi
    read -r wall user sys <"$work/time.out"
    local cpu
    cpu=$(echo "$user + $sys" | bc -l | sed 's/^\./0./')
    echo "$wall $cpu" >>"$work/times.$name"
    note "$name: ${wall}s wall, ${cpu}s cpu"
}

# Every write run gets a new directory and nothing is deleted before the
# end: ext4 without a journal (this machine's /) skips inodes freed in the
# last minutes when it allocates (fs/ext4/ialloc.c, recently_deleted()),
# scanning past each of them, so creating 10,000 files right after deleting
# 10,000 took 1.5-6 s instead of 0.25 s and measured the deletion history,
# not the program.  (Deleted files of an earlier harness run still count for
# a few minutes; leave a pause between runs.)
dst_n=0
fresh_dst() { dst_n=$((dst_n + 1)); dst=$work/dst.$dst_n; mkdir -p "$dst"; }

have_libuv=0; [[ -x $libuv_bin ]] && have_libuv=1
have_aiofiles=0; "$PYTHON" -c 'import aiofiles' 2>/dev/null && have_aiofiles=1
((have_libuv)) || note "libuv_files not built (libuv1-dev missing): skipped"
((have_aiofiles)) || note "python3-aiofiles missing: skipped"

for ((rep = 1; rep <= REPS; rep++)); do
    run seqread_dd dd if="$work/big" of=/dev/null bs=1M
    for be in $BACKENDS; do
        run "seqread_corio_$be" env CORIO_BACKEND="$be" "$corio_bin" seqread "$work/big" 1048576
        run "read10k_corio_$be" env CORIO_BACKEND="$be" "$corio_bin" read "$work/src" "$NFILES" "$CONC"
        fresh_dst
        run "write10k_corio_$be" env CORIO_BACKEND="$be" "$corio_bin" write "$dst" "$NFILES" "$CONC"
    done
    if ((have_libuv)); then
        run read10k_libuv "$libuv_bin" read "$work/src" "$NFILES" "$CONC"
        fresh_dst
        run write10k_libuv "$libuv_bin" write "$dst" "$NFILES" "$CONC"
    fi
    if ((have_aiofiles)); then
        run read10k_aiofiles "$PYTHON" "$here/peers/aiofiles_bench.py" read "$work/src" "$NFILES" "$CONC"
        fresh_dst
        run write10k_aiofiles "$PYTHON" "$here/peers/aiofiles_bench.py" write "$dst" "$NFILES" "$CONC"
    fi
done

# median COLUMN NAME
median() {
    [[ -f $work/times.$2 ]] || return 1
    awk -v c="$1" '{print $c}' "$work/times.$2" | sort -g | awk '{v[NR]=$1} END {printf "%.4f\n", (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'
}
ratio() { echo "scale=2; $1 / $2" | bc -l | sed 's/^\./0./'; }

report() { # TEST CORIO_NAME PEER_NAME...
    local test=$1 me=$2
    shift 2
    local mw mc
    mw=$(median 1 "$test"_"$me") || return
    mc=$(median 2 "$test"_"$me")
    echo "file_${test}_${me}_s: $mw s"
    echo "file_${test}_${me}_cpu_s: $mc s"
    for peer in "$@"; do
        local pw pc
        pw=$(median 1 "$test"_"$peer") || continue
        pc=$(median 2 "$test"_"$peer")
        [[ $(echo "$mw > 0 && $pc > 0" | bc -l) == 1 ]] || continue
        echo "file_${test}_${me}_vs_${peer}: $(ratio "$pw" "$mw") x"
        echo "file_${test}_${me}_cpu_vs_${peer}: $(ratio "$mc" "$pc") x"
    done
}

for peer in dd libuv aiofiles; do
    for t in seqread read10k write10k; do
        if m=$(median 1 "${t}_$peer"); then
            echo "file_${t}_${peer}_s: $m s"
            echo "file_${t}_${peer}_cpu_s: $(median 2 "${t}_$peer") s"
        fi
    done
done
for be in $BACKENDS; do
    report seqread "corio_$be" dd
    report read10k "corio_$be" libuv aiofiles
    report write10k "corio_$be" libuv aiofiles
done
