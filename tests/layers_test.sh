#!/usr/bin/env bash
# The layers stay sealed: no file under src/arch, src/core or src/backend
# includes a header of a higher layer (src/io, src/http, corio/http.h).
# Calls are checked at link time: tests/layers_lower.c is linked from
# those three directories alone (tests/CMakeLists.txt), so a call up is an
# unresolved symbol and the build fails.
#   layers_test.sh SOURCE_DIR
set -euo pipefail
src=$(realpath "$1/src")
bad=0
# allowed DIR: the directories a file in DIR may include from
allowed() {
    case $1 in
    arch) echo "arch" ;;
    core) echo "core arch" ;;
    backend) echo "backend core arch" ;;
    esac
}
for layer in arch core backend; do
    ok=$(allowed "$layer")
    for f in "$src/$layer"/*.[chS]; do
        while IFS= read -r inc; do
            # "corio.h" (the public API) comes from include/; anything else
            # resolves relative to the including file.
            [[ $inc == corio.h ]] && continue
            target=$(realpath -m "$src/$layer/$inc")
            dir=${target#"$src"/}
            dir=${dir%%/*}
            if [[ $target != "$src"/* || " $ok " != *" $dir "* ]]; then
                echo "FAIL: ${f#"$1"/} includes \"$inc\" (layer $layer may include from: $ok)" >&2
                bad=1
            fi
        done < <(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$f")
    done
done
[[ $bad == 0 ]] || exit 1
echo "arch, core and backend include nothing from io or http"
