#!/bin/sh
# run.sh -- runs every test binary given as argument, each one alone, and
# adds up their closing lines into one "N passed, N failed" line.
# VALGRIND=1 runs each under valgrind (errors fail the binary).
passed=0; failed=0; bad=""
for t in "$@"; do
    name=$(basename "$t")
    log="${BUILD:-build}/tests/$name.log"
    if [ "${VALGRIND:-}" = 1 ]; then
        TOME_TEST_SHORT=1 valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
            "$t" >"$log" 2>&1; rc=$?
    else
        "$t" >"$log" 2>&1; rc=$?
    fi
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
    p=$(echo "$line" | sed -n 's/^\([0-9]*\) passed.*/\1/p'); p=${p:-0}
    f=$(echo "$line" | sed -n 's/.* \([0-9]*\) failed.*/\1/p'); f=${f:-0}
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
    passed=$((passed + p)); failed=$((failed + f))
    if [ "$rc" -ne 0 ]; then
        bad="$bad $name"
        echo "FAIL $name (exit $rc):"; grep -v '^ok ' "$log" | tail -n 40
    else
        echo "ok   $name: $p passed"
    fi
done
echo "tests: $passed passed, $failed failed"
[ -z "$bad" ]
