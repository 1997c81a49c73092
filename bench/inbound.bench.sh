#!/usr/bin/env bash
# inbound.bench.sh - inbound SMS with 100 000 contacts in the phone index:
# index load, matching latency, intake and processing to the Dynamics
# record (tools/inbound-bench). Needs SMSYS_TEST_PG (bench/run sets it).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=build/bin
port=$(tools/free-port)
"$BIN/dvemu" --listen "127.0.0.1:$port" >build/bench-dvemu-inbound.log 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.05; done
"$BIN/inbound-bench" -u "http://127.0.0.1:$port" -k "${INBOUND_BENCH_CONTACTS:-100000}" \
    -n "${INBOUND_BENCH_MESSAGES:-2000}" -s sql
