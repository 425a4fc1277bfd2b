#!/usr/bin/env bash
# Install the Debian packages a task needs, only those missing.
#   scripts/deps.sh build|test|asan|tsan|valgrind|format|bench...
#   build: compiler, cmake, pkg-config, liburing (io_uring backend), libssl-dev (TLS)
#   test:  + curl, python3 and socat (client tests), systemd (systemd-socket-activate),
#          haproxy (tests/haproxy_test.sh: corio-serve behind a load balancer),
#          openssl (the TLS tests' certificates, s_client) and nginx (a TLS peer),
#          libcurl4-openssl-dev (examples/curl_fetch), qemu-user and the aarch64 cross
#          compiler (the aarch64 suite; skipped when absent)
#   asan:  + clang and its sanitizer runtime
#   tsan:  the same (ThreadSanitizer's runtime is in the same package)
#   valgrind: + valgrind (memcheck, and <valgrind/valgrind.h> for the stack
#          registration in src/arch/stack.c)
#   format: clang-format (the version .clang-format is written for)
#   bench: + the peers: libuv, nginx, HAProxy, wrk, uvloop, aiofiles, h2load, Go, and OpenSSL
#          (the openssl tool makes tls_bench.sh's certificates; libssl-dev builds idle_tls)
# As root it runs apt-get; otherwise it prints the command to run.
set -euo pipefail
declare -A groups=(
    [build]="build-essential cmake pkg-config liburing-dev libssl-dev"
    [test]="curl python3 socat openssl nginx haproxy util-linux systemd libcurl4-openssl-dev apache2-utils nghttp2-client qemu-user gcc-aarch64-linux-gnu libc6-dev-arm64-cross"
    [asan]="clang libclang-rt-14-dev"
    [tsan]="clang libclang-rt-14-dev"
    [valgrind]="valgrind"
    [format]="clang-format"
    [bench]="libuv1-dev nginx-light haproxy h2o wrk python3-uvloop python3-aiofiles bc nghttp2-client curl gnuplot-nox golang-go openssl libssl-dev"
)
command -v dpkg >/dev/null || exit 0 # not Debian: nothing we can check
want=()
for g in "$@"; do
    [[ -n ${groups[$g]:-} ]] || { echo "deps.sh: unknown group $g" >&2; exit 2; }
    case $g in test | asan | tsan | valgrind | bench) want+=(${groups[build]}) ;; esac
    want+=(${groups[$g]})
done
missing=()
for p in "${want[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
((${#missing[@]})) || exit 0
if [[ $(id -u) != 0 ]]; then
    echo "deps.sh: missing packages; run: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
fi
echo "deps.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${missing[@]}" >/dev/null
