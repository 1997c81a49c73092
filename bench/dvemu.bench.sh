#!/usr/bin/env bash
# dvemu.bench.sh - the Dataverse emulator's own speed (it must not be the
# bottleneck of smsys benchmarks): single-row creates and GETs per second,
# CreateMultiple rows per second, and a 100k-row table paged at 5000/page.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=build/bin
port=$(tools/free-port)
"$BIN/dvemu" --listen "127.0.0.1:$port" >build/bench-dvemu.log 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.05; done
"$BIN/dvemu-bench" --url "http://127.0.0.1:$port"
