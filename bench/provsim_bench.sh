#!/usr/bin/env bash
# provsim_bench.sh - what the provider simulator sustains, so benchmarks of
# smsys know the simulator is not their bottleneck: Kavenegar send.json
# (form POST, Persian text, JSONL log on) and account/info.json, with
# keep-alive, measured by wrk on loopback. Prints figures, asserts nothing.
# Needs build/bin/provsim (make) and wrk (apt-get install wrk).
#
#   bench/provsim_bench.sh [seconds]   (default 5)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-5}
command -v wrk >/dev/null || { echo "wrk not installed (apt-get install wrk)"; exit 1; }
[ -x build/bin/provsim ] || { echo "build/bin/provsim missing: run make"; exit 1; }
mkdir -p build/bench
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
build/bin/provsim --listen "127.0.0.1:$port" --log build/bench/provsim.jsonl >build/bench/provsim.log 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null || true; rm -f build/bench/provsim.jsonl build/bench/kv.lua' EXIT
for _ in $(seq 50); do
    (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break
    sleep 0.1
done
base="http://127.0.0.1:$port"
curl -s -XPOST "$base/_sim/config" -d '{"balance":1e15,"receipt_delay_ms":1000}' >/dev/null
cat >build/bench/kv.lua <<'LUA'
wrk.method = "POST"
wrk.body   = "receptor=09121234567&sender=10004346&message=%D8%B3%D9%84%D8%A7%D9%85"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
LUA
echo "== provsim, $(nproc) cores, wrk -t1 (the simulator is single-threaded)"
for conns in 1 10 100; do
    printf -- "-- kavenegar send.json, %3d connections: " "$conns"
    wrk -t1 -c"$conns" -d"${secs}s" -s build/bench/kv.lua "$base/kavenegar/v1/demo-kavenegar-key/sms/send.json" |
        awk '/Requests\/sec/ {rps=$2} /Latency/ {lat=$2} END {printf "%s msg/s, mean latency %s\n", rps, lat}'
done
printf -- "-- kavenegar account/info.json, 10 connections: "
wrk -t1 -c10 -d"${secs}s" "$base/kavenegar/v1/demo-kavenegar-key/account/info.json" |
    awk '/Requests\/sec/ {rps=$2} END {printf "%s req/s\n", rps}'
printf -- "-- messages held: %s, resident memory: %s kB\n" \
    "$(curl -s "$base/_sim/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["messages"])')" \
    "$(ps -o rss= -p $pid | tr -d ' ')"
