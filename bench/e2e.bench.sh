#!/usr/bin/env bash
# e2e.bench.sh - the provider side of the outbound pipeline (bench/run runs
# it with SMSYS_TEST_PG set): N messages already queued in PostgreSQL ->
# SMPP (smscsim, receipts on) -> Delivered, through the connector manager,
# sender and queue. Prints messages/s, CPU µs per message and peak RSS.
# The end-to-end figure from Dynamics (dvemu) joins once pickup is merged.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${SMSYS_BIN:-$PWD/build/bin}
N=${E2E_N:-20000}
[ -x "$BIN/e2e-bench" ] || { echo "e2e-bench not built (make)"; exit 0; }
for args in "-b 100 -p 4 -w 100" "-b 100 -p 8 -w 400"; do
    # shellcheck disable=SC2086
    "$BIN/e2e-bench" -n "$N" $args
done
