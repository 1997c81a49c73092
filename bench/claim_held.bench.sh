#!/usr/bin/env bash
# claim_held.bench.sh - claim latency of one account that has 100 000
# released messages of a paused bulk waiting, plus ready single messages,
# before (sql/001..008: paused rows stay in the ready index and every claim
# walks past them) and after sql/009_claim_held.sql (held rows are not in
# the index). Each figure is pgbench's average latency of
#   BEGIN; SELECT count(*) FROM smsys_q_claim(...); ROLLBACK
# (rolled back, so every claim sees the same rows), over CLAIM_T claims:
#   busy    200 singles ready, claim of 200 (the sender's batch_size)
#   notify  1 single ready, claim of 200 (a NOTIFY for one new message)
#   idle    nothing ready, claim of 200 (every idle_claim_ms)
# Then the receipt statements (see receipts() below). `claim_held.bench.sh
# receipts` runs only those. Prints figures; asserts nothing. bench/run runs
# it with SMSYS_TEST_PG set.
#   CLAIM_HELD_N   paused bulk messages (100000)   CLAIM_T  claims per figure (200)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
N=${CLAIM_HELD_N:-100000}
T=${CLAIM_T:-200}
: "${SMSYS_TEST_PG:?set SMSYS_TEST_PG (bench/run does)}"
command -v pgbench >/dev/null || { echo "pgbench not installed"; exit 0; }

ACC=aaaaaaaa-0000-4000-8000-0000000000c1
BULK=b0000000-0000-4000-8000-0000000000c1
tmp=$(mktemp -d /tmp/smsys-claim-held-XXXXXX)
dbs=()
cleanup() {
    for d in "${dbs[@]}"; do
        psql "$SMSYS_TEST_PG" -qAtc "DROP DATABASE IF EXISTS $d WITH (FORCE)" >/dev/null 2>&1 || true
    done
    rm -rf "$tmp"
}
trap cleanup EXIT

cat >"$tmp/claim.sql" <<'SQL'
BEGIN;
SELECT count(*) FROM smsys_q_claim('bench', NULL, 200, 60000);
ROLLBACK;
SQL

# $1 label, $2 highest migration number to apply
run() {
    local label=$1 upto=$2 db=smsys_claim_held_$$_$2
    dbs+=("$db")
    psql "$SMSYS_TEST_PG" -qAtc "CREATE DATABASE $db"
    local ci="$SMSYS_TEST_PG dbname=$db"
    for f in "$ROOT"/sql/[0-9][0-9][0-9]_*.sql; do
        local v
        v=$(basename "$f" | cut -c1-3)
        [ "$((10#$v))" -le "$upto" ] || continue
        psql "$ci" -q -1 -v ON_ERROR_STOP=1 -f "$f" >/dev/null
    done
    psql "$ci" -q -v ON_ERROR_STOP=1 >/dev/null <<SQL
INSERT INTO smsys_account (id, name, provider) VALUES ('$ACC', 'bench', 'kavenegar');
SELECT count(*) FROM smsys_bulk_accept('{"id":"$BULK","account_id":"$ACC","body":"hi"}');
SELECT smsys_bulk_set_state('$BULK', 4::smallint, NULL);
INSERT INTO smsys_bulk_member (bulk_id, member_key, entity, member_id, number, activity_id,
                               body, segments, encoding, step)
SELECT '$BULK', 'k' || i, 'contact', gen_random_uuid(), '+98912' || lpad(i::text, 7, '0'),
       gen_random_uuid(), 'hi', 1, 0, 1
  FROM generate_series(1, $N) i;
SELECT count(*) FROM smsys_bulk_next_chunk('$BULK', $N, 200::smallint);
SELECT smsys_bulk_release('$BULK', ARRAY(SELECT 'k' || i FROM generate_series(1, $N) i),
                          NULL, NULL);
SELECT smsys_bulk_pause('$BULK');
SELECT count(*) FROM smsys_q_enqueue(
    ARRAY(SELECT 's' || i FROM generate_series(1, 200) i),
    array_fill(NULL::uuid, ARRAY[200]), array_fill(NULL::uuid, ARRAY[200]),
    array_fill('$ACC'::uuid, ARRAY[200]), array_fill('s'::text, ARRAY[200]),
    array_fill('+989120000000'::text, ARRAY[200]), array_fill('hi'::text, ARRAY[200]),
    array_fill(1, ARRAY[200]), array_fill(0::smallint, ARRAY[200]),
    array_fill(100::smallint, ARRAY[200]), array_fill(3::smallint, ARRAY[200]),
    array_fill(NULL::text, ARRAY[200]), array_fill(NULL::timestamptz, ARRAY[200]));
SQL
    psql "$ci" -qc "VACUUM ANALYZE smsys_message" >/dev/null
    local ready busy notify idle
    ready=$(psql "$ci" -qAtc "SELECT count(*) FROM smsys_message WHERE state = 3 AND bulk_id IS NULL")
    lat() { pgbench -n -M prepared -t "$T" -f "$tmp/claim.sql" "$ci" 2>/dev/null \
                | awk '/latency average/ {print $4}'; }
    busy=$(lat)
    psql "$ci" -qAtc "SELECT count(*) FROM smsys_q_claim('x', NULL, 199, 60000)" >/dev/null
    psql "$ci" -qc "VACUUM smsys_message" >/dev/null
    notify=$(lat)
    psql "$ci" -qAtc "SELECT count(*) FROM smsys_q_claim('x', NULL, 1, 60000)" >/dev/null
    psql "$ci" -qc "VACUUM smsys_message" >/dev/null
    idle=$(lat)
    printf '%-28s paused=%d singles=%d  busy %8s ms  notify %8s ms  idle %8s ms\n' \
        "$label" "$N" "$ready" "$busy" "$notify" "$idle"
}

# Receipts (009 part 2): the time of R calls of smsys_q_receipts (one
# receipt each) in one session, when the receipt table grew by 50 000
# (matched) rows after it was analyzed empty and the session's plans were
# cached ("grown": as in a long run between two autoanalyzes; the cached
# generic plan scans the whole table), and in a new session on the analyzed table
# ("steady": what planning each call costs).
R=${RECEIPT_CALLS:-2000}
receipts() {
    local label=$1 upto=$2 db=smsys_claim_rcpt_$$_$2
    dbs+=("$db")
    psql "$SMSYS_TEST_PG" -qAtc "CREATE DATABASE $db"
    local ci="$SMSYS_TEST_PG dbname=$db"
    for f in "$ROOT"/sql/[0-9][0-9][0-9]_*.sql; do
        local v
        v=$(basename "$f" | cut -c1-3)
        [ "$((10#$v))" -le "$upto" ] || continue
        psql "$ci" -q -1 -v ON_ERROR_STOP=1 -f "$f" >/dev/null
    done
    local call="PERFORM * FROM smsys_q_receipts('$ACC', ARRAY[t || i], ARRAY[t || i],
        ARRAY[NULL::text], ARRAY[NULL::bigint], ARRAY[3::smallint], ARRAY[NULL::timestamptz],
        ARRAY[NULL::text]);"
    local timed="DO \$\$ DECLARE t text := md5(random()::text); t0 timestamptz;
        BEGIN FOR i IN 1..20 LOOP $call END LOOP;
        t0 := clock_timestamp();
        FOR i IN 1..$R LOOP $call END LOOP;
        RAISE NOTICE 'ms=%', round(extract(epoch FROM clock_timestamp() - t0) * 1000); END \$\$;"
    local grown steady
    grown=$(psql "$ci" -q -v ON_ERROR_STOP=1 2>&1 >/dev/null <<SQL | sed -n 's/.*ms=//p'
INSERT INTO smsys_account (id, name, provider) VALUES ('$ACC', 'bench', 'kavenegar');
ANALYZE smsys_receipt;
DO \$\$ DECLARE t text := 'w'; BEGIN FOR i IN 1..20 LOOP $call END LOOP; END \$\$;
INSERT INTO smsys_receipt (account_id, provider_id, canon, status, message_id, applied_at)
SELECT '$ACC', 'p' || i, 'p' || i, 3, i, now() FROM generate_series(1, 50000) i;
$timed
SQL
)
    psql "$ci" -qc "ANALYZE" >/dev/null
    steady=$(psql "$ci" -q -v ON_ERROR_STOP=1 -c "$timed" 2>&1 >/dev/null | sed -n 's/.*ms=//p')
    printf '%-28s %d receipt calls: grown %6s ms  steady %6s ms\n' "$label" "$R" "$grown" "$steady"
}

if [ "${1:-}" != receipts ]; then
    run "before (sql 001..008)" 8
    run "after (with 009)" 9
fi
receipts "before (sql 001..008)" 8
receipts "after (with 009)" 9
