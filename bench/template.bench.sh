#!/usr/bin/env bash
# template.bench.sh - templates rendered against dvemu: a template with
# three lookups (two levels) and a {{let}} related row over 100,000
# recipients (ROWS=...), through the Dataverse client in batches of 100.
# Prints renders per second (wall time, requests included), Web API
# requests per 1,000 recipients (dvemu's /_emu/stats), peak RSS of the
# renderer and of dvemu, then the CPU-only figure. Figures only.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=build/bin
ROWS=${ROWS:-100000}
port=$(tools/free-port)
"$BIN/dvemu" --listen "127.0.0.1:$port" >build/bench-template-dvemu.log 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.05; done
"$BIN/template-bench" --url "http://127.0.0.1:$port" --rows "$ROWS" --batch 100
echo "peak RSS of dvemu (VmHWM, $ROWS contacts loaded): $(awk '/VmHWM/ {printf "%.1f MiB", $2/1024}' /proc/$pid/status)"
echo "--- CPU only (no I/O):"
"$BIN/template-bench" --rows "$ROWS"
