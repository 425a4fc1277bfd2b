#!/usr/bin/env bash
# make bench: every benchmark in one run, corio next to its peers.
# Prints `name: value unit` lines (medians and ratios); see docs/benchmarks.md.
# Peers come from Debian packages: libuv1-dev (the libuv echo server and
# file program, built by CMake when found), python3-uvloop and
# python3-aiofiles, golang-go (bench/coord_bench.sh builds its Go peer),
# nginx-light, h2o and nghttp2-client (h2load: bench/tls_bench.sh);
# a missing peer is skipped with a note.  Knobs are passed through to bench/echo_bench.sh (DURATION, REPS, ...).
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=bench/lib.sh
source "$here/lib.sh"
BUILD=${BUILD:-build}
[[ $BUILD == /* ]] || BUILD=$root/$BUILD
export BUILD

missing=()
pkg-config --exists libuv 2>/dev/null || missing+=(libuv1-dev)
/usr/bin/python3 -c 'import uvloop' 2>/dev/null || missing+=(python3-uvloop)
/usr/bin/python3 -c 'import aiofiles' 2>/dev/null || missing+=(python3-aiofiles)
command -v taskset >/dev/null || missing+=(util-linux)
command -v go >/dev/null || missing+=(golang-go)
command -v h2load >/dev/null || missing+=(nghttp2-client)
command -v nginx >/dev/null || missing+=(nginx-light)
if ((${#missing[@]})); then
    note "peers missing: ${missing[*]} (apt-get install -y ${missing[*]}; then re-run cmake)"
fi

echo "# context switch (server-free, pinned to CPU 0)"
taskset -c 0 "$BUILD/bench/switch_bench"
echo "# tasks"
taskset -c 0 "$BUILD/bench/core_bench"
echo "# coordination (issue 9): queues, locks, channels vs Go, asyncio and uvloop"
"$here/coord_bench.sh"
echo "# echo: server on CPU 0, load generator on CPU 1"
"$here/echo_bench.sh"
echo "# udp echo: 64-byte datagrams, 10 clients; corio vs libuv and uvloop"
"$here/udp_bench.sh"
echo "# unix: echo over a Unix socket, server on CPU 0, load generator on CPU 1"
"$here/unix_bench.sh"
echo "# files: corio vs dd, a libuv C program and Python aiofiles"
"$here/file_bench.sh"
echo "# http: the seed's response; corio vs nginx, h2o, a libuv C server and uvloop"
echo "# (close_c50, issue 12: Connection: close, server CPU per connection)"
"$here/http_bench.sh"
echo "# static files (issue 12): corio-serve vs nginx (sendfile, access log) and python3 -m http.server"
"$here/static_bench.sh"
echo "# workers (issue 12): HTTP with 1 and 2 loops vs nginx with 1 and 2 workers; SO_REUSEPORT vs one shared listener"
"$here/workers_bench.sh"
echo "# tls (issue 11): HTTPS handshakes, keep-alive, a 1 GiB file and idle TLS memory; corio vs nginx and h2o"
"$here/tls_bench.sh"
echo "# processes (issue 10): spawn+wait of /bin/true, corio vs a libuv uv_spawn program and asyncio"
"$here/process_bench.sh"
echo "# simulation (issue 13): simulated HTTP requests per second of wall time, one core"
"$here/sim_bench.sh"
