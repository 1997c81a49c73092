#!/usr/bin/env bash
# http_server_bench.sh - requests/s of a trivial route through http_server,
# with keep-alive, measured by wrk on loopback. Prints figures, asserts
# nothing. Needs `make` to have built build/libsmsys.a, and wrk
# (apt-get install wrk).
#
#   bench/http_server_bench.sh [seconds]   (default 5)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-5}
command -v wrk >/dev/null || { echo "wrk not installed (apt-get install wrk)"; exit 1; }
make --no-print-directory -s build/libsmsys.a
mkdir -p build/bench
cc -std=c11 -O2 -g -Iinclude -D_GNU_SOURCE bench/http_server_bench.c build/libsmsys.a \
    $(pkg-config --libs libuv libcrypto) -lhttp_parser -o build/bench/http_server_bench
port=$(tools/free-port)
build/bench/http_server_bench "127.0.0.1:$port" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT
for _ in $(seq 50); do
    (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break
    sleep 0.1
done
echo "== http_server, $(nproc) cores, wrk -t1 (server is single-threaded: 1 core for it, 1 for wrk)"
for conns in 1 10 100; do
    printf -- "-- keep-alive, %3d connections: " "$conns"
    wrk -t1 -c"$conns" -d"${secs}s" "http://127.0.0.1:$port/ping" |
        awk '/Requests\/sec/ {rps=$2} /Latency/ {lat=$2} END {printf "%s req/s, mean latency %s\n", rps, lat}'
done
printf -- "-- new connection per request, 10 connections: "
wrk -t1 -c10 -d"${secs}s" -H 'Connection: close' "http://127.0.0.1:$port/ping" |
    awk '/Requests\/sec/ {rps=$2} END {printf "%s req/s\n", rps}'
