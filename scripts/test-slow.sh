#!/usr/bin/env bash
# The whole suite (both backends) on a machine made several times slower:
# every test, and every thread it starts, is pinned to one CPU while a busy
# loop spins on that same CPU, so a test gets at most half a core (less
# when ctest runs several side by side).  A test that passes here does not
# depend on a quiet machine (issue 8).  `make test-slow` runs it.
#
#   scripts/test-slow.sh BUILD_DIR [ctest arguments...]
#
# SLOW_CPU picks the CPU (default 0), SLOW_JOBS the number of tests run
# side by side on it (default 2: the sleeping tests overlap, which keeps
# the wall time reasonable, and a CPU-bound test then gets a third of a
# core).  The spinner dies with this script however it ends: the EXIT trap
# kills it, INT/TERM/HUP are turned into an exit so the trap runs, and
# the spinner also stops by itself once this script's process is gone (in
# case this script is killed with SIGKILL).
set -euo pipefail
build=${1:?usage: scripts/test-slow.sh BUILD_DIR [ctest arguments...]}
shift
cpu=${SLOW_CPU:-0}
jobs=${SLOW_JOBS:-2}
command -v taskset >/dev/null || { echo "test-slow: taskset (util-linux) is missing" >&2; exit 1; }

taskset -c "$cpu" sh -c 'while kill -0 "$1" 2>/dev/null; do :; done' spinner $$ &
spinner=$!
stop_spinner() { kill "$spinner" 2>/dev/null || true; wait "$spinner" 2>/dev/null || true; }
trap stop_spinner EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

echo "test-slow: every test on CPU $cpu, $jobs side by side, next to a busy loop (pid $spinner)"
cd "$build"
start=$(date +%s)
status=0
taskset -c "$cpu" ctest --output-on-failure -j "$jobs" "$@" || status=$?
echo "test-slow: $(($(date +%s) - start)) s"
exit "$status"
