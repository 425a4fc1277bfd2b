#!/bin/sh
# Replay (issue 13): the same seed of the HTTP simulation, run in three
# separate processes, must print the same trace hash each time.
# Usage: sim_replay_test.sh SIM_HTTP_BINARY SEED
set -u
bin=$1 seed=$2
first=
for i in 1 2 3; do
    line=$("$bin" --seed "$seed" | grep "^seed $seed: trace ") || { echo "run $i of seed $seed failed"; exit 1; }
    echo "run $i: $line"
    if [ -z "$first" ]; then
        first=$line
    elif [ "$line" != "$first" ]; then
        echo "seed $seed replayed differently: '$first' then '$line'"
        exit 1
    fi
done
