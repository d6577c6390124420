#!/bin/sh
# demo.sh -- the main job of this repository, run end to end: it drives the
# `tome` tool (./build/tome, built by `make`; this script builds nothing) on
# a fresh store and shows every step: puts, an overwrite and its versions,
# a removal and its undelete, time travel with get --seq, a transaction in
# the shell, listing by prefix, the namespaced (LDK KVStore) commands and
# their history, then merge, stats and check.
#
#   sh tools/demo.sh          a store in a new temporary directory
#   sh tools/demo.sh DIR      a store in DIR/demo-store (which must not exist)
#
# TOME=path/to/tome overrides the binary. Exits non-zero if any step fails.
set -eu

TOME=${TOME:-./build/tome}
if [ ! -x "$TOME" ]; then
    echo "demo: $TOME not found: run make first" >&2
    exit 1
fi
if [ $# -ge 1 ]; then
    dir=$1
    mkdir -p "$dir"
else
    dir=$(mktemp -d "${TMPDIR:-/tmp}/tome-demo.XXXXXX")
fi
db=$dir/demo-store
if [ -e "$db" ]; then
    echo "demo: $db already exists: give an empty directory" >&2
    exit 1
fi

step() {
    printf '\n== %s\n' "$*"
}

# Shows a tome command line (the store path as $db); $TAIL is appended.
showcmd() {
    printf '$ tome'
    for a in "$@"; do
        if [ "$a" = "$db" ]; then printf ' $db'
        elif [ -z "$a" ]; then printf ' ""'
        else
            case $a in
                *[!A-Za-z0-9_./=-]*) printf " '%s'" "$a" ;;
                *) printf ' %s' "$a" ;;
            esac
        fi
    done
    printf '%s\n' "${TAIL:-}"
}

# Shows the command, then runs it.
run() {
    showcmd "$@"
    "$TOME" "$@"
}

# Runs a command whose output is a value (no newline of its own).
show() {
    run "$@"
    printf '\n'
}

echo "store: $db"

step "put a few keys (the last value comes from standard input)"
run "$db" put users/alice "Alice, admin"
run "$db" put users/bob "Bob, developer"
run "$db" put users/carol "Carol, tester"
printf 'mode=production\nreplicas=3\n' >"$dir/config.txt"
printf '$ tome $db put config/app < config.txt\n'
"$TOME" "$db" put config/app <"$dir/config.txt"
run "$db" get config/app

step "overwrite users/alice: a new version, the old one is kept"
run "$db" put users/alice "Alice, admin and owner"
show "$db" get users/alice
run "$db" versions users/alice

step "time travel: users/alice as of its first commit"
first=$("$TOME" "$db" versions users/alice | head -n 1 | cut -d' ' -f1)
show "$db" get --seq "$first" users/alice

step "remove users/bob (to the trash), then undelete it"
run "$db" rm users/bob
if run "$db" get users/bob; then
    echo "demo: users/bob should be gone" >&2
    exit 1
fi
echo "(exit 1: not found, as expected)"
run "$db" versions users/bob
run "$db" undelete users/bob
show "$db" get users/bob

step "a transaction in the shell: two keys, one commit"
printf 'begin\nput users/dave "Dave, ops"\nput config/region eu-west\ncommit\n' >"$dir/script.txt"
cat "$dir/script.txt"
printf '$ tome $db < script.txt\n'
"$TOME" "$db" <"$dir/script.txt"
run "$db" versions users/dave
run "$db" versions config/region

step "list keys by prefix"
run "$db" keys users/
run "$db" keys config/

step "binary keys and values: --hex arguments, escaped listing"
run --hex "$db" put 00ff6b6579 deadbeef
run "$db" keys --slot 0
TAIL=" | od -An -tx1"; showcmd --hex "$db" get 00ff6b6579; TAIL=
"$TOME" --hex "$db" get 00ff6b6579 | od -An -tx1

step "the namespaced store (LDK KVStore): write from a file, list, read"
printf 'channel monitor bytes \001\002\003' >"$dir/chan1.bin"
printf '$ tome $db kv write monitors "" chan1 < chan1.bin\n'
"$TOME" "$db" kv write monitors "" chan1 <"$dir/chan1.bin"
echo '$ printf "second monitor" | tome $db kv write monitors "" chan2'
printf 'second monitor' | "$TOME" "$db" kv write monitors "" chan2
run "$db" kv ls monitors ""
TAIL=" | od -c"; showcmd "$db" kv read monitors "" chan1; TAIL=
"$TOME" "$db" kv read monitors "" chan1 | od -c
echo '$ printf "channel monitor, updated" | tome $db kv write monitors "" chan1'
printf 'channel monitor, updated' | "$TOME" "$db" kv write monitors "" chan1
echo "-- its history, as an ordinary key: slot 255, \"monitors//chan1\""
run --slot 255 "$db" versions monitors//chan1

step "remove users/carol: in the trash until the merge"
run "$db" rm users/carol
run "$db" stats

step "merge: drop old versions, empty the trash"
run "$db" merge
run "$db" versions users/alice
if run "$db" undelete users/carol; then
    echo "demo: the trash should be empty" >&2
    exit 1
fi
echo "(exit 1: the merge emptied the trash)"
run "$db" stats

step "check every checksum"
run "$db" check

echo
echo "demo done: the store is in $db"
