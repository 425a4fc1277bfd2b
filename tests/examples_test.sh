#!/usr/bin/env bash
# The examples, run as a user runs them, checked byte for byte.
#   examples_test.sh BUILD_DIR NAME      (CORIO_BACKEND picks the backend)
# NAME: hello_server | echo | file_writer | cat | copy
set -euo pipefail
build=$1
name=$2
# shellcheck source=tests/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

case $name in
hello_server)
    "$build/hello_server" 0 >"$tmp/log" 2>&1 &
    pids+=($!)
    port=$(wait_port "$tmp/log" "Server running on \('127.0.0.1', ([0-9]+)") || fail "no 'Server running on' line"
    expected=$'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nAccess-Control-Allow-Origin: *\r\nAccess-Control-Allow-Methods: GET, POST, PUT, DELETE, OPTIONS\r\nAccess-Control-Allow-Headers: Content-Type\r\n\r\nHello, world!'
    for i in 1 2 3; do
        got=$(curl -s -i --max-time "$wait_s" "http://127.0.0.1:$port/")
        [[ $got == "$expected" ]] || fail "response $i differs: $(printf %q "$got")"
    done
    # the server may log its last line after the client has the answer
    processed3() { [[ $(grep -c "^Request processed" "$tmp/log") == 3 ]]; }
    wait_until processed3 || fail "expected 3 'Request processed' lines"
    grep -q "^Handling request" "$tmp/log" || fail "no 'Handling request' line"
    grep -q "^GET / HTTP/1.1" "$tmp/log" || fail "request not printed"
    ;;
echo)
    "$build/echo_server" 0 >"$tmp/log" 2>&1 &
    pids+=($!)
    port=$(wait_port "$tmp/log" "listening on 127.0.0.1:([0-9]+)") || fail "echo_server did not report its port"
    got=$("$build/echo_client" "$port" alpha "beta gamma" 2>&1)
    [[ $got == *alpha* && $got == *"beta gamma"* ]] || fail "echo_client output: $got"
    got=$(printf 'from stdin\nline two\n' | "$build/echo_client" "$port" 2>&1)
    [[ $got == $'from stdin\nline two' ]] || fail "echo_client stdin output: $(printf %q "$got")"
    ;;
file_writer)
    cd "$tmp"
    for i in $(seq 20); do
        rm -f example.txt
        out=$("$build/file_writer")
        [[ $out == "Hello, world!" ]] || fail "run $i printed $(printf %q "$out")"
        [[ $(cat example.txt) == "Hello, world!" ]] || fail "example.txt differs"
    done
    ;;
cat)
    head -c 300000 /dev/urandom >"$tmp/a"
    printf 'second\n' >"$tmp/b"
    printf 'from stdin\n' | "$build/cat" "$tmp/a" - "$tmp/b" >"$tmp/out"
    cat "$tmp/a" - "$tmp/b" <<<'from stdin' >"$tmp/want"
    cmp "$tmp/out" "$tmp/want" || fail "cat output differs"
    if "$build/cat" "$tmp/missing" 2>"$tmp/err" >/dev/null; then fail "missing file not reported"; fi
    grep -q "No such file or directory" "$tmp/err" || fail "error text: $(cat "$tmp/err")"
    "$build/cat" /dev/null </dev/null >"$tmp/empty" && [[ ! -s $tmp/empty ]] || fail "/dev/null"
    ;;
copy)
    mkdir -p "$tmp/src/d1/d2" "$tmp/src/empty"
    for i in $(seq 200); do head -c $((i * 97)) /dev/urandom >"$tmp/src/d1/f$i"; done
    head -c 3000000 /dev/urandom >"$tmp/src/d1/d2/big"
    printf 'x' >"$tmp/src/top"
    chmod 0640 "$tmp/src/top"
    ln -s d1/f1 "$tmp/src/link"
    "$build/copy" -j 8 "$tmp/src" "$tmp/dst"
    diff -r --no-dereference "$tmp/src" "$tmp/dst" || fail "trees differ"
    [[ $(stat -c %a "$tmp/dst/top") == 640 ]] || fail "mode not kept"
    [[ $(readlink "$tmp/dst/link") == d1/f1 ]] || fail "symlink not recreated"
    ;;
*)
    fail "unknown example $name"
    ;;
esac
echo "PASS $name on ${CORIO_BACKEND:-auto}"
