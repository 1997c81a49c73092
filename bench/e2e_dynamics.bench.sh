#!/usr/bin/env bash
# e2e_dynamics.bench.sh - end to end from Dynamics: N Pending SMS created in
# dvemu (limits off, in memory; N contacts with distinct mobiles, one 'to'
# party each, both created with CreateMultiple in chunks of 1000) -> smsysd
# as a process (accounts sync, pickup, queue in PostgreSQL with durable
# commits, SMPP connector, write-back) -> smscsim with receipts ->
# Delivered written back to Dynamics. Time runs from smsysd's start until
# dvemu has no outbound SMS left that is not Delivered (polled every 0.5 s;
# `$count` is capped at 5000 in dvemu, so the count of the rest is polled).
# Prints messages/s, smsysd CPU µs per message (utime+stime from
# /proc/<pid>/stat, from process start), peak RSS (VmHWM) and Dynamics
# requests per message (/_emu/stats before/after, minus the polls of this
# script). bench/run runs it with SMSYS_TEST_PG set. E2E_PAGE_SIZE sets
# [pickup] page_size (2000 as smsysd's default): peak RSS against messages/s.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=${SMSYS_BIN:-$ROOT/build/bin}
N=${E2E_N:-20000}
C=${E2E_CONTACTS:-$N} # distinct contacts; SMS i goes to contact i % C
: "${SMSYS_TEST_PG:?set SMSYS_TEST_PG (bench/run does)}"
for b in smsysd smsysctl smscsim dvemu; do [ -x "$BIN/$b" ] || { echo "$b not built (make)"; exit 0; }; done
for t in curl jq psql; do command -v $t >/dev/null || { echo "$t missing"; exit 0; }; done

tmp=$(mktemp -d /tmp/smsys-e2ed-bench-XXXXXX)
db=smsys_e2ed_$$
sim_pid='' d_pid='' dv_pid=''
stop() { [ -n "$1" ] && kill "$1" 2>/dev/null && wait "$1" 2>/dev/null; return 0; }
cleanup() {
    stop "$d_pid"; stop "$sim_pid"; stop "$dv_pid"
    psql "$SMSYS_TEST_PG" -qAtc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
    if [ -n "${E2E_KEEP:-}" ]; then echo "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

free_port() { "$ROOT/tools/free-port"; }
wait_port() {
    for _ in $(seq 1 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "nothing listens on port $1"; exit 1
}
psql "$SMSYS_TEST_PG" -qAtc "CREATE DATABASE $db"
ci="$SMSYS_TEST_PG dbname=$db"
dport=$(free_port); sport=$(free_port); hport=$(free_port)
DV=http://127.0.0.1:$dport
API=$DV/api/data/v9.2

"$BIN/dvemu" --listen "127.0.0.1:$dport" >"$tmp/dvemu.log" 2>&1 &
dv_pid=$!
"$BIN/smscsim" --listen "127.0.0.1:$sport" --system-id smsys --password smsyspw \
    --log-pdus 0 --receipt-delay-ms 10 >"$tmp/smscsim.log" 2>&1 &
sim_pid=$!
wait_port "$dport"; wait_port "$sport"

tok=$(curl -sf -X POST "$DV/t/oauth2/v2.0/token" --data-urlencode client_id=smsys-demo \
    --data-urlencode client_secret=smsys-demo-secret --data-urlencode grant_type=client_credentials \
    --data-urlencode scope=http://127.0.0.1/.default | jq -r .access_token)
H=(-H "Authorization: Bearer $tok" -H "Accept: application/json" -H "Content-Type: application/json")
post() { curl -sf -o /dev/null "${H[@]}" -X POST "$API/$1" --data-binary @- || { echo "POST $1 failed"; exit 1; }; }

ACC=e2eb0000-0000-4000-8000-0000000000a1
jq -n --arg id $ACC --argjson port "$sport" '{smsys_smssettingid: $id, smsys_name: "SMSC",
    smsys_provider: "smpp", smsys_isdefault: true, smsys_enabled: true, smsys_maxretries: 3,
    smsys_apikey: "smsyspw",
    smsys_config: ({host: "127.0.0.1", port: $port, system_id: "smsys", window: 200} | tojson)}' |
    post smsys_smssettings
jq -n --arg id $ACC '{smsys_number: "3000111", smsys_isdefault: true,
    "smsys_settingid@odata.bind": "/smsys_smssettings(\($id))"}' | post smsys_smsnumbers

t_seed=$(date +%s.%N)
for ((s = 0; s < N; s += 1000)); do
    e=$((s + 1000 < N ? s + 1000 : N))
    [ $s -lt "$C" ] && jq -nc --argjson s $s --argjson e $((e < C ? e : C)) '{Targets: [range($s; $e) | ("000000000000\(.)"[-12:]) as $k |
        {"@odata.type": "Microsoft.Dynamics.CRM.contact", contactid: "c0000000-0000-4000-8000-\($k)",
         lastname: "B\(.)", mobilephone: "0912\($k[-7:])"}]}' |
        post contacts/Microsoft.Dynamics.CRM.CreateMultiple
    jq -nc --argjson s $s --argjson e $e --argjson c "$C" '{Targets: [range($s; $e) |
        ("000000000000\(. % $c)"[-12:]) as $k | {"@odata.type": "Microsoft.Dynamics.CRM.smsys_sms", subject: "bench \(.)",
         description: "bench message \(.)", smsys_direction: 1, smsys_status: 2,
         smsys_sms_activity_parties: [{"partyid_contact@odata.bind": "/contacts(c0000000-0000-4000-8000-\($k))",
                                       participationtypemask: 2}]}]}' |
        post smsys_smses/Microsoft.Dynamics.CRM.CreateMultiple
done
t_seeded=$(date +%s.%N)

cat >"$tmp/smsys.conf" <<CONF
[dataverse]
url = $DV
token_url = $DV/t/oauth2/v2.0/token
client_id = smsys-demo
client_secret = env:SMSYS_BENCH_SECRET
scope = http://127.0.0.1/.default
poll_interval_ms = 1000
[postgres]
conninfo = "$ci"
migrate_on_start = false
[http]
listen = 127.0.0.1:$hport
[pickup]
page_size = ${E2E_PAGE_SIZE:-2000}
[queue]
batch_size = 200
pipeline = 4
[log]
level = ${E2E_LOG_LEVEL:-warn}
CONF
chmod 600 "$tmp/smsys.conf"
export SMSYS_BENCH_SECRET=smsys-demo-secret
SMSYS_SQL_DIR=$ROOT/sql "$BIN/smsysctl" --config "$tmp/smsys.conf" db migrate >/dev/null

requests() { curl -sf "$DV/_emu/stats" | jq .requests; }
r0=$(requests)
polls=0
tick=$(getconf CLK_TCK)
t0=$(date +%s.%N)
SMSYS_SQL_DIR=$ROOT/sql "$BIN/smsysd" --config "$tmp/smsys.conf" 2>"$tmp/smsysd.log" &
d_pid=$!
left=$N
while :; do
    sleep 0.5
    kill -0 "$d_pid" 2>/dev/null || { echo "smsysd died:"; tail -5 "$tmp/smsysd.log"; exit 1; }
    polls=$((polls + 1))
    left=$(curl -sf "${H[@]}" -G "$API/smsys_smses" --data-urlencode '$select=activityid' \
        --data-urlencode '$top=1' --data-urlencode '$count=true' \
        --data-urlencode '$filter=smsys_direction eq 1 and smsys_status ne 5' | jq '.["@odata.count"]')
    [ "$left" = 0 ] && break
    if [ -n "${E2E_VERBOSE:-}" ]; then
        echo "  $(date +%T.%3N) dvemu: not Delivered $left (5000 = at least); queue by state:" \
            "$(psql "$ci" -qAtc "SELECT string_agg(state||':'||n, ' ' ORDER BY state) FROM
               (SELECT state, count(*) n FROM smsys_message GROUP BY state) s")" \
            "outbox: $(psql "$ci" -qAtc "SELECT count(*) FROM smsys_writeback" 2>/dev/null)"
    fi
done
t1=$(date +%s.%N)
read -r ut st < <(awk '{print $14, $15}' "/proc/$d_pid/stat")
read -r dut dst < <(awk '{print $14, $15}' "/proc/$dv_pid/stat")
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$d_pid/status")
r1=$(requests)
failed=$(curl -sf "${H[@]}" -G "$API/smsys_smses" --data-urlencode '$select=activityid' \
    --data-urlencode '$top=1' --data-urlencode '$count=true' \
    --data-urlencode '$filter=smsys_status eq 6' | jq '.["@odata.count"]')
awk -v n="$N" -v t0="$t0" -v t1="$t1" -v ts="$t_seed" -v tsd="$t_seeded" -v ut="$ut" -v st="$st" \
    -v tk="$tick" -v hwm="$hwm" -v dut="$dut" -v dst="$dst" -v req=$((r1 - r0 - polls)) -v f="$failed" -v c="$C" 'BEGIN {
    s = t1 - t0
    printf "Dynamics -> Delivered: %d Pending SMS to %d contacts in dvemu (created in %.1f s) -> smsysd -> SMPP\n", n, c, tsd - ts
    printf "  (smscsim, receipts) -> Delivered in dvemu; PostgreSQL durable; all on one machine\n"
    printf "  %.2f s (from process start, 0.5 s polling), %.0f messages/s\n", s, n / s
    printf "  smsysd CPU %.1f us/message (utime+stime), peak RSS %.1f MB\n", (ut + st) / tk * 1e6 / n, hwm / 1024
    printf "  (dvemu CPU since its start, seeding included: %.1f us/message)\n", (dut + dst) / tk * 1e6 / n
    printf "  Dynamics requests by smsysd: %d = %.4f per message; Failed: %d\n", req, req / n, f
}'
