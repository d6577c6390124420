#!/bin/sh
# install-deps.sh -- installs what the peer benchmark (bench/peers/) needs
# from Debian's packages: the C/C++ development files of LMDB, SQLite,
# LevelDB, RocksDB and Tkrzw, and gnuplot (the X-less build, gnuplot-nox,
# which has the pngcairo terminal) for the chart. Idempotent: it does
# nothing when every package is already installed, and it only runs
# apt-get update when something is missing. Needs root (or sudo).
set -eu
PKGS="liblmdb-dev libsqlite3-dev libleveldb-dev librocksdb-dev libtkrzw-dev gnuplot-nox pkg-config"
missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
if [ -z "$missing" ]; then
    echo "install-deps: all present ($PKGS)"
    exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
echo "install-deps: installing$missing"
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $missing
