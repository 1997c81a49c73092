#!/usr/bin/env bash
# bulk.bench.sh - issue #9's benchmark: a bulk SMS to a 100,000-member
# static marketing list, from Ready to every message handed over, against
# dvemu with Dataverse's service-protection limits (--dataverse-limits:
# 6000 requests and 20 min of execution per 5 min, 52 concurrent), smsysd
# as a process, PostgreSQL with durable commits, Kavenegar at provsim.
#
# tools/bulk-fixture creates the audience (100,000 contacts, 4% skipped:
# no number, do-not-SMS, invalid, duplicate) and the bulk as Draft; smsysd
# starts; then the bulk is set Ready and the clock runs. Phases come from
# PostgreSQL (polled every 0.2 s): Ready seen (the smsys_bulk row exists),
# expansion (smsys_bulk.expanded),
# preflight (smsys_bulk.preflight written), record creation (no member to
# send left unreleased), hand-over (every message of the bulk accepted by
# the provider or final). Prints wall time per phase, the Dynamics requests
# smsysd used (/_emu/stats, minus this script's own), how far that is from
# 6000 per 5 minutes, 429s served, peak RSS of smsysd (VmHWM) and, with
# BULK_PAUSE=1, the "pause -> last hand-over" latency on a second bulk.
# Asserts nothing. BULK_N sets the list size (100000).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BIN=${SMSYS_BIN:-$ROOT/build/bin}
N=${BULK_N:-100000}
: "${SMSYS_TEST_PG:?set SMSYS_TEST_PG (bench/run does)}"
for b in smsysd smsysctl provsim dvemu bulk-fixture; do
    [ -x "$BIN/$b" ] || { echo "$b not built (make)"; exit 0; }
done
for t in curl jq psql; do command -v $t >/dev/null || { echo "$t missing"; exit 0; }; done
if ! grep -q smsys_bulksmses "$BIN/smsysd"; then
    echo "smsysd has no bulk engine in this build (it never names smsys_bulksmses): skipped"
    exit 0
fi

tmp=$(mktemp -d /tmp/smsys-bulk-bench-XXXXXX)
db=smsys_bulkb_$$
sim_pid='' d_pid='' dv_pid=''
stop() { [ -n "$1" ] && kill "$1" 2>/dev/null && wait "$1" 2>/dev/null; return 0; }
cleanup() {
    stop "$d_pid"; stop "$sim_pid"; stop "$dv_pid"
    psql "$SMSYS_TEST_PG" -qAtc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
    if [ -n "${BULK_KEEP:-}" ]; then echo "kept $tmp"; else rm -rf "$tmp"; fi
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
now() { date +%s.%N; }
psql "$SMSYS_TEST_PG" -qAtc "CREATE DATABASE $db"
ci="$SMSYS_TEST_PG dbname=$db"
sql() { psql "$ci" -qAtc "$1"; }
dport=$(free_port); sport=$(free_port); hport=$(free_port)
DV=http://127.0.0.1:$dport
API=$DV/api/data/v9.2
PS=http://127.0.0.1:$sport

# shellcheck disable=SC2086 # BULK_DVEMU_ARGS: extra dvemu options, word-split on purpose
"$BIN/dvemu" --listen "127.0.0.1:$dport" --dataverse-limits ${BULK_DVEMU_ARGS:-} >"$tmp/dvemu.log" 2>&1 &
dv_pid=$!
"$BIN/provsim" --listen "127.0.0.1:$sport" --log "$tmp/provsim.jsonl" >"$tmp/provsim.log" 2>&1 &
sim_pid=$!
wait_port "$dport"; wait_port "$sport"
curl -sf -o /dev/null -X POST "$PS/_sim/config" -H 'Content-Type: application/json' \
    -d '{"receipt_delay_ms":1000,"outcome":{"delivered":100,"undelivered":0},"kavenegar":{"balance":100000000}}'

t_fx=$(now)
"$BIN/bulk-fixture" --url "$DV" --contacts "$N" --mode list --provider-url "$PS" --draft \
    --sender "${BULK_SENDER:-10004346}" \
    --name "bench $N" --text 'Salam {{firstname}} {{lastname}}, bulk benchmark.' >"$tmp/fixture.json"
t_fxd=$(now)
bulk=$(jq -r .bulk "$tmp/fixture.json")
want=$(jq -r .recipients "$tmp/fixture.json")
skipped=$(jq -r .skipped.total "$tmp/fixture.json")

tok=$(curl -sf -X POST "$DV/t/oauth2/v2.0/token" --data-urlencode client_id=smsys-demo \
    --data-urlencode client_secret=smsys-demo-secret --data-urlencode grant_type=client_credentials \
    --data-urlencode scope=http://127.0.0.1/.default | jq -r .access_token)
H=(-H "Authorization: Bearer $tok" -H "Accept: application/json" -H "Content-Type: application/json")
mine=0 # requests this script makes to the Web API while smsysd runs
patch_bulk() {
    curl -sf -o /dev/null "${H[@]}" -X PATCH "$API/smsys_bulksmses($1)" -d "$2"
    mine=$((mine + 1))
}

cat >"$tmp/smsys.conf" <<CONF
[dataverse]
url = $DV
token_url = $DV/t/oauth2/v2.0/token
client_id = smsys-demo
client_secret = env:SMSYS_BENCH_SECRET
scope = http://127.0.0.1/.default
[postgres]
conninfo = "$ci"
migrate_on_start = false
pool_size = ${BULK_POOL:-4}
[http]
listen = 127.0.0.1:$hport
[queue]
batch_size = 200
pipeline = 4
[sending]
quiet_hours =
[log]
level = ${BULK_LOG_LEVEL:-warn}
CONF
chmod 600 "$tmp/smsys.conf"
export SMSYS_BENCH_SECRET=smsys-demo-secret
SMSYS_SQL_DIR=$ROOT/sql "$BIN/smsysctl" --config "$tmp/smsys.conf" db migrate >/dev/null

stats() { curl -sf "$DV/_emu/stats"; }
SMSYS_SQL_DIR=$ROOT/sql "$BIN/smsysd" --config "$tmp/smsys.conf" 2>"$tmp/smsysd.log" &
d_pid=$!
wait_port "$hport"
sleep 1 # accounts synchronised, first polls done
stats >"$tmp/stats0.json"
t0=$(now)
patch_bulk "$bulk" '{"smsys_status":2}'

handed="state IN (4, 5, 6, 10, 21)"
t_acc="" t_exp="" t_pre="" t_rec="" t_hand=""
deadline=$(( $(date +%s) + ${BULK_TIMEOUT:-1800} ))
while :; do
    sleep 0.2
    kill -0 "$d_pid" 2>/dev/null || { echo "smsysd died:"; tail -20 "$tmp/smsysd.log"; exit 1; }
    [ "$(date +%s)" -lt "$deadline" ] || { echo "timed out; smsysd log:"; tail -20 "$tmp/smsysd.log"; exit 1; }
    IFS='|' read -r state expanded pre unrel hand < <(sql "SELECT b.state, b.expanded,
        b.preflight IS NOT NULL,
        (SELECT count(*) FROM smsys_bulk_member m WHERE m.bulk_id = b.id AND m.status = 0 AND m.step < 3),
        (SELECT count(*) FROM smsys_message WHERE bulk_id = b.id AND $handed)
        FROM smsys_bulk b WHERE b.id = '$bulk'") || state=''
    [ -n "${state:-}" ] || continue
    t=$(now)
    [ -z "$t_acc" ] && t_acc=$t
    [ -z "$t_exp" ] && [ "$expanded" = t ] && t_exp=$t
    [ -z "$t_pre" ] && [ "$pre" = t ] && t_pre=$t
    [ -z "$t_rec" ] && [ -n "$t_pre" ] && [ "$unrel" = 0 ] && t_rec=$t
    if [ "$state" = 8 ]; then
        echo "bulk Failed: $(sql "SELECT last_error FROM smsys_bulk WHERE id = '$bulk'")"; exit 1
    fi
    if [ -n "${BULK_VERBOSE:-}" ]; then
        echo "  $(date +%T.%1N) state $state expanded $expanded preflight $pre unreleased $unrel handed over $hand"
    fi
    if [ "$hand" -ge "$want" ]; then t_hand=$t; break; fi
done
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$d_pid/status")
read -r ut st < <(awk '{print $14, $15}' "/proc/$d_pid/stat")
tick=$(getconf CLK_TCK)
stats >"$tmp/stats1.json"
records=$(jq '.rows.smsys_smses' "$tmp/stats1.json") # $count stops at 5000
sent_lines=$(wc -l <"$tmp/provsim.jsonl")
req=$(jq -n --slurpfile a "$tmp/stats0.json" --slurpfile b "$tmp/stats1.json" --argjson m "$mine" \
    '$b[0].requests - $a[0].requests - $m')
thr=$(jq -n --slurpfile a "$tmp/stats0.json" --slurpfile b "$tmp/stats1.json" \
    '$b[0].throttled_429 - $a[0].throttled_429')
by_set=$(jq -rn --slurpfile a "$tmp/stats0.json" --slurpfile b "$tmp/stats1.json" \
    '[$b[0].by_entity_set | to_entries[] | {k: .key, v: (.value - ($a[0].by_entity_set[.key] // 0))}
      | select(.v > 0) | "\(.k) \(.v)"] | join(", ")')
busy=$(jq -rn --slurpfile a "$tmp/stats0.json" --slurpfile b "$tmp/stats1.json" \
    '[($b[0].busy_ms_by_entity_set // {}) | to_entries[]
      | {k: .key, v: (.value - (($a[0].busy_ms_by_entity_set // {})[.key] // 0))}
      | select(.v >= 1) | "\(.k) \(.v / 1000 * 100 | round / 100) s"] | join(", ")')

pause_line=''
if [ "${BULK_PAUSE:-0}" = 1 ]; then
    # a second bulk on the same list: pause once hand-over is running, then
    # time until hand-overs stop (no new one for 2 poll intervals)
    "$BIN/bulk-fixture" --url "$DV" --contacts 20000 --mode list --provider-url "$PS" \
        --no-account --sender "${BULK_SENDER:-10004346}" --name "pause bench" >"$tmp/fixture2.json"
    b2=$(jq -r .bulk "$tmp/fixture2.json")
    for _ in $(seq 600); do
        h=$(sql "SELECT count(*) FROM smsys_message WHERE bulk_id = '$b2' AND $handed" || echo 0)
        [ "$h" -gt 1000 ] && break
        sleep 0.1
    done
    tp=$(now)
    patch_bulk "$b2" '{"smsys_status":5}'
    for _ in $(seq 600); do
        sleep 0.5
        last=$(sql "SELECT extract(epoch FROM max(sent_at)) FROM smsys_message WHERE bulk_id = '$b2'")
        [ -n "$last" ] && awk -v l="$last" -v n="$(now)" 'BEGIN{exit !(n - l > 4)}' && break
    done
    h=$(sql "SELECT count(*) FROM smsys_message WHERE bulk_id = '$b2' AND $handed")
    pause_line=$(awk -v tp="$tp" -v l="$last" -v h="$h" -v r="$(jq -r .recipients "$tmp/fixture2.json")" \
        'BEGIN{printf "pause (Dynamics PATCH) -> last hand-over: %.2f s ([bulk] poll_interval_ms 2000); %d of %d handed over when it stopped", l - tp, h, r}')
fi

awk -v n="$N" -v want="$want" -v sk="$skipped" -v t0="$t0" -v ta="$t_acc" -v te="$t_exp" -v tp="$t_pre" \
    -v tr="$t_rec" -v th="$t_hand" -v fx="$t_fx" -v fxd="$t_fxd" -v req="$req" -v thr="$thr" \
    -v hwm="$hwm" -v ut="$ut" -v st="$st" -v tk="$tick" -v rec="$records" -v lines="$sent_lines" \
    -v bs="$by_set" -v busy="$busy" -v pl="$pause_line" 'BEGIN {
    s = th - t0
    printf "bulk SMS to a %d-member static list: %d recipients, %d skipped (audience created in %.1f s)\n", n, want, sk, fxd - fx
    printf "  dvemu --dataverse-limits -> smsysd (PostgreSQL durable) -> Kavenegar at provsim\n"
    printf "  Ready -> all handed over: %.1f s (%.0f messages/s), polled every 0.2 s\n", s, want / s
    if (ta != "") printf "    seen Ready       %6.1f s (the engine polls Dynamics every [bulk] poll_interval_ms)\n", ta - t0
    if (te != "" && ta != "") printf "    expansion        %6.1f s\n", te - ta
    if (tp != "" && te != "") printf "    preflight        %6.1f s\n", tp - te
    if (tr != "" && tp != "") printf "    record creation  %6.1f s (until the last record exists)\n", tr - tp
    if (tr != "") printf "    hand-over tail   %6.1f s (after the last record)\n", th - tr
    printf "  SMS records in dvemu: %d; messages accepted by provsim: %d\n", rec, lines
    printf "  Dynamics requests by smsysd: %d (%.3f per recipient); 429s served: %d\n", req, req / want, thr
    printf "    by entity set: %s\n", bs
    if (busy != "") printf "    dvemu busy time: %s\n", busy
    printf "  limit 6000 per 5 min per user: %.1f%% of one window", req / 6000 * 100
    printf " (%.0f per 5 min at this pace, extrapolated)\n", req / s * 300
    printf "  smsysd peak RSS %.1f MB, CPU %.2f s (%.1f us/recipient, from process start)\n", hwm / 1024, (ut + st) / tk, (ut + st) / tk * 1e6 / want
    if (pl != "") printf "  %s\n", pl
}'
