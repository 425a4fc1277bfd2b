#!/bin/sh
# Cross-compile the arch self-test (tests/arch_selftest.c with the src/arch
# C files and switch_aarch64.S) for aarch64 and run it under qemu-aarch64.
# Exit 0 on pass, 77 (the automake/ctest "skipped" code) when the cross
# compiler or qemu is missing, anything else on failure.
#   usage: tests/run_aarch64.sh [BUILD_DIR] [extra CFLAGS...]
# BUILD_DIR (first argument unless it starts with '-') keeps the binary;
# otherwise a temporary directory is used and removed.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
keep=""
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
    keep=$1
    shift
fi
cc=${CROSS_CC:-aarch64-linux-gnu-gcc}
qemu=${QEMU:-qemu-aarch64}
if ! command -v "$cc" >/dev/null 2>&1 || ! command -v "$qemu" >/dev/null 2>&1; then
    echo "SKIP: $cc or $qemu not found"
    exit 77
fi
if [ -n "$keep" ]; then
    mkdir -p "$keep"
    out=$keep
else
    out=$(mktemp -d)
    trap 'rm -rf "$out"' EXIT
fi
"$cc" -std=gnu11 -O2 -g -static -Wall -Wextra -Werror -D_GNU_SOURCE "$@" \
    -I "$here/src" \
    "$here/tests/arch_selftest.c" \
    "$here/src/arch/ctx.c" "$here/src/arch/stack.c" "$here/src/arch/asan.c" "$here/src/arch/tsan.c" \
    "$here/src/arch/switch_aarch64.S" \
    -lpthread -o "$out/arch_selftest"
CORIO_SELFTEST_EMULATED=1 "$qemu" "$out/arch_selftest"

# The core on aarch64: the library (epoll backend; no arm64 liburing is
# needed) and the task/scheduler/stream/TCP suites, run under qemu-user.
# No arm64 OpenSSL either: TLS as in a build without it (src/io/tls_none.c).
lib_src=$(ls "$here"/src/core/*.c "$here"/src/io/*.c "$here"/src/arch/*.c "$here"/src/backend/epoll*.c "$here"/src/backend/sim*.c |
    grep -v -e '/io/tls\.c$' -e '/io/tls_config\.c$' -e '/io/tls_stream\.c$')
# The library as the tests link it natively (tests/CMakeLists.txt): one
# relocatable object whose calls to the functions tests/failinject.h lists
# go to the fail-injection wrappers.
objcopy=${CROSS_OBJCOPY:-aarch64-linux-gnu-objcopy}
sed -n 's/^ *FI(\([a-z0-9_]*\)).*/\1 corio_fi_\1/p' "$here/tests/failinject.h" >"$out/failinject.syms"
"$cc" -std=gnu11 -O2 -g -Wall -Wextra -Werror -Wno-unused-parameter -D_GNU_SOURCE -DCORIO_BUILDING \
    -I "$here/include" -I "$here/src" -r -nostdlib $lib_src "$here/src/arch/switch_aarch64.S" -o "$out/corio.o"
"$objcopy" --redefine-syms="$out/failinject.syms" "$out/corio.o" "$out/corio_fi.o"
for t in task stream tcp; do
    "$cc" -std=gnu11 -O2 -g -static -Wall -Wextra -Werror -Wno-unused-parameter -D_GNU_SOURCE -DCORIO_BUILDING \
        -I "$here/include" -I "$here/src" -I "$here/src/core" -I "$here/tests" \
        "$here/tests/test_$t.c" "$here/tests/runner.c" "$here/tests/failinject.c" "$out/corio_fi.o" \
        -lpthread -o "$out/test_$t"
    echo "aarch64: test_$t"
    CORIO_BACKEND=epoll "$qemu" "$out/test_$t"
done
