#!/bin/sh
# Cross-compile the arch self-test (tests/arch_selftest.c with the src/arch
# C files and switch_aarch64.S) for aarch64 and run it under qemu-aarch64.
# Exit 0 on pass, 77 (the automake/ctest "skipped" code) when the cross
# compiler or qemu is missing, anything else on failure.
#   usage: tests/run_aarch64.sh [extra CFLAGS...]
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
cc=${CROSS_CC:-aarch64-linux-gnu-gcc}
qemu=${QEMU:-qemu-aarch64}
if ! command -v "$cc" >/dev/null 2>&1 || ! command -v "$qemu" >/dev/null 2>&1; then
    echo "SKIP: $cc or $qemu not found"
    exit 77
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$cc" -std=gnu11 -O2 -g -static -Wall -Wextra -Werror -D_GNU_SOURCE "$@" \
    -I "$here/src" \
    "$here/tests/arch_selftest.c" \
    "$here/src/arch/ctx.c" "$here/src/arch/stack.c" "$here/src/arch/asan.c" \
    "$here/src/arch/switch_aarch64.S" \
    -lpthread -o "$out/arch_selftest"
CORIO_SELFTEST_EMULATED=1 "$qemu" "$out/arch_selftest"
