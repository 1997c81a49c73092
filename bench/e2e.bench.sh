#!/usr/bin/env bash
# e2e.bench.sh - the send path alone, smsysd as a process: N messages
# already queued in PostgreSQL -> smsysd (connector manager, sender, SMPP
# connector) -> smscsim with receipts -> Delivered in PostgreSQL. Prints
# messages/s, smsysd's CPU µs per message (utime+stime from
# /proc/<pid>/stat) and its peak RSS (VmHWM). Then the same path in one
# process (build/bin/e2e-bench). bench/run runs it with SMSYS_TEST_PG set.
# The end-to-end figure from Dynamics (dvemu) joins once pickup is merged.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=${SMSYS_BIN:-$ROOT/build/bin}
N=${E2E_N:-20000}
: "${SMSYS_TEST_PG:?set SMSYS_TEST_PG (bench/run does)}"
for b in smsysd smscsim; do [ -x "$BIN/$b" ] || { echo "$b not built (make)"; exit 0; }; done

tmp=$(mktemp -d /tmp/smsys-e2e-bench-XXXXXX)
db=smsys_e2e_$$
sim_pid='' d_pid=''
cleanup() {
    [ -n "$d_pid" ] && kill "$d_pid" 2>/dev/null && wait "$d_pid" 2>/dev/null
    [ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null && wait "$sim_pid" 2>/dev/null
    psql "$SMSYS_TEST_PG" -qAtc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
    rm -rf "$tmp"
}
trap cleanup EXIT

free_port() { "$ROOT/tools/free-port"; }
psql "$SMSYS_TEST_PG" -qAtc "CREATE DATABASE $db"
ci="$SMSYS_TEST_PG dbname=$db"
q() { psql "$ci" -qAtc "$1"; }
sport=$(free_port); hport=$(free_port)
cat >"$tmp/smsys.conf" <<CONF
[dataverse]
url = http://127.0.0.1:9
token_url = http://127.0.0.1:9/t/oauth2/v2.0/token
client_id = app
client_secret = x
scope = http://127.0.0.1:9/.default
[postgres]
conninfo = "$ci"
migrate_on_start = false
[http]
listen = 127.0.0.1:$hport
[queue]
batch_size = 200
pipeline = 4
[log]
level = warn
CONF
chmod 600 "$tmp/smsys.conf"
SMSYS_SQL_DIR=$ROOT/sql "$BIN/smsysctl" --config "$tmp/smsys.conf" db migrate >/dev/null 2>&1
"$BIN/smscsim" --listen "127.0.0.1:$sport" --log-pdus 0 --receipt-delay-ms 10 >/dev/null 2>&1 &
sim_pid=$!
q "INSERT INTO smsys_account (id, name, provider, config) VALUES
   ('bbbbbbbb-0000-4000-8000-0000000000e2', 'bench', 'smpp',
    '{\"host\":\"127.0.0.1\",\"port\":$sport,\"window\":200,\"sender\":\"1000\"}')"
q "INSERT INTO smsys_message (idem_key, account_id, recipient, body, segments, max_retries, state)
   SELECT 'b'||g, 'bbbbbbbb-0000-4000-8000-0000000000e2', '+98912'||lpad(g::text, 7, '0'),
          'bench message '||g, 1, 3, 3 FROM generate_series(1, $N) g"

tick=$(getconf CLK_TCK)
t0=$(date +%s.%N)
SMSYS_SQL_DIR=$ROOT/sql "$BIN/smsysd" --config "$tmp/smsys.conf" 2>"$tmp/smsysd.log" &
d_pid=$!
while :; do
    n=$(q "SELECT count(*) FROM smsys_message WHERE state = 5")
    [ "$n" -ge "$N" ] && break
    kill -0 "$d_pid" 2>/dev/null || { echo "smsysd died:"; tail -5 "$tmp/smsysd.log"; exit 1; }
    sleep 0.1
done
t1=$(date +%s.%N)
read -r ut st < <(awk '{print $14, $15}' "/proc/$d_pid/stat")
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$d_pid/status")
awk -v n="$N" -v t0="$t0" -v t1="$t1" -v ut="$ut" -v st="$st" -v tk="$tick" -v hwm="$hwm" 'BEGIN {
    s = t1 - t0
    printf "smsysd send path: %d queued -> SMPP (smscsim, receipts) -> Delivered\n", n
    printf "  %.2f s (from process start), %.0f messages/s\n", s, n / s
    printf "  smsysd CPU %.1f us/message (utime+stime), peak RSS %.1f MB\n", (ut + st) / tk * 1e6 / n, hwm / 1024
}'
kill "$d_pid"; wait "$d_pid" 2>/dev/null || true; d_pid=''

if [ -x "$BIN/e2e-bench" ]; then
    echo "same path in one process (e2e-bench):"
    "$BIN/e2e-bench" -n "$N" 2>/dev/null | sed 's/^/  /'
fi
