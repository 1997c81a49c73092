-- 009_claim_held.sql - messages that may not go leave the claim index, and
-- the receipt statements always get a plan for the ids at hand.
--
-- 1. Held messages. A bulk's released messages used to stay in the ready
--    index while their bulk was paused, outside quiet hours, or held before
--    its records existed; every claim of the account walked past all of
--    them (up to a whole bulk), checking each against smsys_bulk. Now
--    smsys_message.held says "may not go yet" and the ready index holds
--    only rows that are not held, so the claim never sees them.
--
--    What held means, for a message in Queued/Retrying (3, 7):
--        held = (bulk_id IS NOT NULL AND its bulk is not sending)
--               OR it belongs to a held chunk (member step 2)
--    How it is kept exactly right, in the transaction that changes it:
--      * whatever flips smsys_bulk.sending (pause, resume, cancel, the
--        engine's state changes, the quiet-hours gate) then calls
--        smsys_bulk_sync_held(), which sets held on every message of the
--        bulk that is Queued, Retrying, InFlight or Unknown (3, 7, 20, 21);
--      * so a message that goes back to Queued/Retrying from InFlight or
--        Unknown (retry backoff, reaper, not handed over, resolve_unknown)
--        already carries the right value, and those functions -- the hot
--        path -- are unchanged: they do not touch held at all;
--      * a held chunk is inserted held (smsys_bulk_next_chunk) and
--        smsys_bulk_release sets held from the bulk it has locked;
--      * any other insert with a bulk_id (smsys_q_enqueue) gets held from
--        the BEFORE INSERT trigger that 006 already runs on every message
--        (the opt-out guard): one more NULL test there, nothing else, for
--        a message without bulk;
--      * the operator's retry (Failed/Unknown -> Queued) computes it.
--    Held rows have a partial index of their own, for the two statements
--    that must find every waiting row (failover move, opt-out).
--    Races (READ COMMITTED): a sync locks the bulk row first (its UPDATE),
--    then the messages to change in id order. The sender's result
--    (smsys_q_record) and the reaper lock messages only, so a sync either
--    waits for them and then sees the new state, or they wait for the sync
--    and keep the value it wrote. The claim locks with SKIP LOCKED and
--    re-checks NOT held on the newest row version. The retry and the
--    insert trigger read sending under FOR SHARE of the bulk row, so a
--    pause in progress is waited for and one that comes later sees them.
--
-- 2. Receipts. smsys_q_receipts_unlocked's statements filter smsys_receipt
--    by "id = ANY (rids)"; PL/pgSQL caches a generic plan for them, and
--    the one it settled on in long runs was sometimes a sequential scan of
--    the whole receipt table (half the Delivered rate). The function (and
--    the apply_matched/write-back calls it makes) now plans each statement
--    for the actual ids: plan_cache_mode = force_custom_plan.

ALTER TABLE smsys_message ADD COLUMN held boolean NOT NULL DEFAULT false;

-- Existing rows: the same rule the functions below keep.
UPDATE smsys_message q SET held = true
 WHERE q.bulk_id IS NOT NULL AND q.state IN (3, 7, 20, 21)
   AND (NOT coalesce((SELECT x.sending FROM smsys_bulk x WHERE x.id = q.bulk_id), false)
        OR EXISTS (SELECT 1 FROM smsys_bulk_member mb
                    WHERE mb.bulk_id = q.bulk_id AND mb.message_id = q.id AND mb.step = 2));

DROP INDEX smsys_message_ready;
CREATE INDEX smsys_message_ready ON smsys_message (account_id, priority, id)
    WHERE state IN (3, 7) AND NOT held;

-- The claim of 007 without the per-row look at smsys_bulk: held rows are
-- not in the index, and NOT held is re-checked on the row it locks.
CREATE OR REPLACE FUNCTION smsys_q_claim(owner text, accounts uuid[], lim integer,
                                         lease_ms integer)
RETURNS TABLE (id bigint, idem_key text, activity_id uuid, account_id uuid, sender text,
               recipient text, body text, segments integer, encoding smallint,
               attempts integer)
LANGUAGE sql AS $$
    WITH c AS (
        SELECT m.id FROM smsys_message m
        WHERE m.state IN (3, 7) AND NOT m.held AND m.next_attempt_at <= now()
          AND m.account_id IN (SELECT a.id FROM smsys_account a
                               WHERE (accounts IS NULL OR a.id = ANY (accounts)) AND a.enabled
                                 AND (a.paused_until IS NULL OR a.paused_until <= now()))
        ORDER BY m.priority, m.id
        LIMIT lim
        FOR UPDATE OF m SKIP LOCKED)
    UPDATE smsys_message m
       SET state = 20, attempts = m.attempts + 1, lease_owner = owner,
           lease_until = now() + make_interval(secs => lease_ms / 1000.0), updated_at = now()
      FROM c WHERE m.id = c.id
    RETURNING m.id, m.idem_key, m.activity_id, m.account_id, m.sender, m.recipient, m.body,
              m.segments, m.encoding, m.attempts
$$;

-- Sets held on every waiting or in-flight message (3, 7, 20, 21) of the
-- given bulks from their current sending flag; held-chunk messages stay
-- held. The caller has updated (so locked) the bulk rows in this
-- transaction. Only rows whose value changes are locked and written.
-- Returns how many changed.
CREATE FUNCTION smsys_bulk_sync_held(bs uuid[]) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    n integer;
BEGIN
    IF bs IS NULL OR cardinality(bs) = 0 THEN
        RETURN 0;
    END IF;
    -- id order, as smsys_q_record locks its batch: no deadlock with it.
    -- The held-chunk subquery is not correlated, so it runs once (hashed),
    -- not once per message.
    PERFORM 1 FROM smsys_message q JOIN smsys_bulk x ON x.id = q.bulk_id
     WHERE q.bulk_id = ANY (bs) AND q.state IN (3, 7, 20, 21)
       AND q.held IS DISTINCT FROM (NOT x.sending OR q.id IN (
               SELECT mb.message_id FROM smsys_bulk_member mb
                WHERE mb.bulk_id = ANY (bs) AND mb.status = 0 AND mb.step = 2
                  AND mb.message_id IS NOT NULL))
     ORDER BY q.id FOR UPDATE OF q;
    UPDATE smsys_message q
       SET held = NOT q.held, updated_at = now()
      FROM smsys_bulk x
     WHERE x.id = q.bulk_id AND q.bulk_id = ANY (bs) AND q.state IN (3, 7, 20, 21)
       AND q.held IS DISTINCT FROM (NOT x.sending OR q.id IN (
               SELECT mb.message_id FROM smsys_bulk_member mb
                WHERE mb.bulk_id = ANY (bs) AND mb.status = 0 AND mb.step = 2
                  AND mb.message_id IS NOT NULL));
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END $$;

-- Whether a new or re-queued message of bulk b must wait; waits for a
-- pause/resume in progress (FOR SHARE of the bulk row) and holds off one
-- that comes later until this transaction ends.
CREATE FUNCTION smsys_bulk_holds(b uuid) RETURNS boolean
LANGUAGE sql AS $$
    SELECT NOT coalesce((SELECT x.sending FROM smsys_bulk x WHERE x.id = b FOR SHARE), false)
$$;

-- The opt-out guard of 006, plus held for a message inserted with a bulk
-- (an explicit held = true, as for a held chunk, is kept).
CREATE OR REPLACE FUNCTION smsys_optout_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    why text;
BEGIN
    IF NEW.state IN (3, 7) AND NEW.idem_key NOT LIKE 'inbound:%' THEN
        why := smsys_optout_blocked(NEW.recipient);
        IF why IS NOT NULL THEN
            NEW.state := 10;
            NEW.last_error := why;
            NEW.final_at := now();
        END IF;
    END IF;
    IF NEW.bulk_id IS NOT NULL AND NOT NEW.held THEN
        NEW.held := smsys_bulk_holds(NEW.bulk_id);
    END IF;
    RETURN NEW;
END $$;

-- Pause of 007, then the bulk's messages are held.
CREATE OR REPLACE FUNCTION smsys_bulk_pause(b uuid) RETURNS smallint
LANGUAGE plpgsql AS $$
DECLARE
    st smallint;
BEGIN
    UPDATE smsys_bulk x
       SET resume_state = CASE WHEN x.state IN (2, 3, 4) THEN x.state ELSE x.resume_state END,
           state = CASE WHEN x.state IN (2, 3, 4) THEN 5 ELSE x.state END,
           sending = CASE WHEN x.state IN (2, 3, 4) THEN false ELSE x.sending END,
           updated_at = now()
     WHERE x.id = b RETURNING x.state INTO st;
    IF st IS NOT NULL THEN
        PERFORM smsys_bulk_sync_held(ARRAY[b]);
    END IF;
    RETURN st;
END $$;

-- Resume of 007, then the bulk's messages go when it is sending again.
CREATE OR REPLACE FUNCTION smsys_bulk_resume(b uuid) RETURNS smallint
LANGUAGE plpgsql AS $$
DECLARE
    st smallint;
BEGIN
    UPDATE smsys_bulk x
       SET state = CASE WHEN x.state = 5 THEN coalesce(x.resume_state, 4) ELSE x.state END,
           resume_state = CASE WHEN x.state = 5 THEN NULL ELSE x.resume_state END,
           updated_at = now()
     WHERE x.id = b RETURNING x.state INTO st;
    IF st IS NULL THEN
        RETURN NULL;
    END IF;
    UPDATE smsys_bulk x SET sending = (x.state = 4 AND g.open)
      FROM smsys_bulk_gate g WHERE x.id = b AND g.id = 1;
    -- the rate stagger restarts from now: no burst for the paused time
    UPDATE smsys_bulk x SET release_at = NULL WHERE x.id = b AND x.rate_per_s > 0;
    PERFORM smsys_bulk_sync_held(ARRAY[b]);
    IF st = 4 THEN
        PERFORM pg_notify('smsys_queue', x.account_id::text)
           FROM smsys_bulk x WHERE x.id = b AND x.sending AND x.account_id IS NOT NULL;
    END IF;
    RETURN st;
END $$;

-- Cancel of 007; waiting messages become Canceled as before, and the ones
-- still in flight or unknown are held, should they come back.
CREATE OR REPLACE FUNCTION smsys_bulk_cancel(b uuid) RETURNS smallint
LANGUAGE plpgsql AS $$
DECLARE
    st smallint;
    ids bigint[];
BEGIN
    UPDATE smsys_bulk x
       SET state = CASE WHEN x.state IN (1, 2, 3, 4, 5) THEN 7 ELSE x.state END,
           sending = CASE WHEN x.state IN (1, 2, 3, 4, 5) THEN false ELSE x.sending END,
           final_at = CASE WHEN x.state IN (1, 2, 3, 4, 5) THEN now() ELSE x.final_at END,
           updated_at = now()
     WHERE x.id = b RETURNING x.state INTO st;
    IF st IS DISTINCT FROM 7 THEN
        RETURN st;
    END IF;
    -- held: the record may not exist; no write-back
    UPDATE smsys_message q SET state = 9, final_at = now(), updated_at = now(),
           last_error = 'bulk send canceled before this message was sent'
      FROM smsys_bulk_member m
     WHERE m.bulk_id = b AND m.step = 2 AND q.id = m.message_id AND q.state IN (3, 7);
    UPDATE smsys_bulk_member m SET step = 9
     WHERE m.bulk_id = b AND m.status = 0 AND m.step IN (0, 1, 2);
    -- released: the record exists
    WITH c AS (
        UPDATE smsys_message q SET state = 9, final_at = now(), updated_at = now(),
               last_error = 'bulk send canceled before this message was sent'
         WHERE q.bulk_id = b AND q.state IN (3, 7)
        RETURNING q.id)
    SELECT array_agg(c.id) INTO ids FROM c;
    PERFORM smsys_q_wb(ids);
    PERFORM smsys_bulk_sync_held(ARRAY[b]);
    RETURN st;
END $$;

-- Engine transitions of 007, then held follows sending.
CREATE OR REPLACE FUNCTION smsys_bulk_set_state(b uuid, st smallint, err text) RETURNS smallint
LANGUAGE plpgsql AS $$
DECLARE
    cur smallint;
BEGIN
    UPDATE smsys_bulk x
       SET state = st,
           last_error = CASE WHEN st = 8 THEN err ELSE coalesce(err, x.last_error) END,
           final_at = CASE WHEN st IN (6, 7, 8) THEN now() ELSE NULL END,
           updated_at = now()
     WHERE x.id = b
       AND ((st = 3 AND x.state = 2) OR (st = 4 AND x.state = 3) OR (st = 6 AND x.state = 4)
            OR (st = 8 AND x.state IN (2, 3, 4)))
    RETURNING x.state INTO cur;
    IF cur IS NULL THEN
        SELECT x.state INTO cur FROM smsys_bulk x WHERE x.id = b;
        RETURN cur;
    END IF;
    UPDATE smsys_bulk x SET sending = (x.state = 4 AND g.open)
      FROM smsys_bulk_gate g WHERE x.id = b AND g.id = 1;
    PERFORM smsys_bulk_sync_held(ARRAY[b]);
    RETURN cur;
END $$;

-- Quiet-hours gate of 007, then the messages of every bulk it flipped.
CREATE OR REPLACE FUNCTION smsys_bulk_gate_set(is_open boolean) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    flipped uuid[];
BEGIN
    UPDATE smsys_bulk_gate SET open = is_open, updated_at = now()
     WHERE id = 1 AND open IS DISTINCT FROM is_open;
    WITH f AS (
        UPDATE smsys_bulk x SET sending = (x.state = 4 AND is_open), updated_at = now()
         WHERE x.state IN (4, 5) AND x.sending IS DISTINCT FROM (x.state = 4 AND is_open)
        RETURNING x.id)
    SELECT array_agg(f.id ORDER BY f.id) INTO flipped FROM f;
    PERFORM smsys_bulk_sync_held(flipped);
    IF is_open AND flipped IS NOT NULL THEN
        PERFORM pg_notify('smsys_queue', d.a::text)
           FROM (SELECT DISTINCT x.account_id AS a FROM smsys_bulk x
                  WHERE x.sending AND x.account_id IS NOT NULL) d;
    END IF;
    RETURN coalesce(cardinality(flipped), 0);
END $$;

-- Next chunk of 007 with its messages inserted held (they were already
-- unclaimable through next_attempt_at = infinity; now they are not in the
-- ready index either).
CREATE OR REPLACE FUNCTION smsys_bulk_next_chunk(b uuid, lim integer, prio smallint)
RETURNS TABLE (fresh boolean, member_key text, entity text, member_id uuid, activity_id uuid,
               message_id bigint, number text, body text, segments integer,
               msg_state smallint)
LANGUAGE plpgsql AS $$
DECLARE
    bk smsys_bulk;
    keys text[];
BEGIN
    SELECT * INTO bk FROM smsys_bulk x WHERE x.id = b FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF EXISTS (SELECT 1 FROM smsys_bulk_member m
                WHERE m.bulk_id = b AND m.status = 0 AND m.step = 2) THEN
        RETURN QUERY
            SELECT false, m.member_key, m.entity, m.member_id, m.activity_id, m.message_id,
                   m.number, m.body, m.segments, q.state
              FROM smsys_bulk_member m LEFT JOIN smsys_message q ON q.id = m.message_id
             WHERE m.bulk_id = b AND m.status = 0 AND m.step = 2
             ORDER BY m.seq LIMIT lim;
        RETURN;
    END IF;
    IF bk.state <> 4 THEN
        RETURN;
    END IF;
    SELECT array_agg(p.member_key ORDER BY p.seq) INTO keys
      FROM (SELECT m.member_key, m.seq FROM smsys_bulk_member m
             WHERE m.bulk_id = b AND m.status = 0 AND m.step = 1
             ORDER BY m.seq LIMIT lim) p;
    IF keys IS NULL THEN
        RETURN;
    END IF;
    INSERT INTO smsys_message AS q (idem_key, activity_id, bulk_id, account_id, sender,
        recipient, body, segments, encoding, priority, state, max_retries, next_attempt_at,
        held)
    SELECT 'bulk:' || b::text || ':' || m.member_key, m.activity_id, b, bk.account_id,
           bk.sender, m.number, coalesce(m.body, ''), coalesce(m.segments, 0),
           coalesce(m.encoding, 0), prio, 3,
           coalesce((SELECT a.max_retries FROM smsys_account a WHERE a.id = bk.account_id), 0),
           'infinity', true
      FROM unnest(keys) WITH ORDINALITY AS k(k, n)
      JOIN smsys_bulk_member m ON m.bulk_id = b AND m.member_key = k.k
     ORDER BY k.n
    ON CONFLICT ON CONSTRAINT smsys_message_idem_key_key DO NOTHING;
    UPDATE smsys_bulk_member m SET step = 2, message_id = q.id
      FROM smsys_message q
     WHERE m.bulk_id = b AND m.member_key = ANY (keys)
       AND q.idem_key = 'bulk:' || b::text || ':' || m.member_key;
    RETURN QUERY
        SELECT true, m.member_key, m.entity, m.member_id, m.activity_id, m.message_id,
               m.number, m.body, m.segments, q.state
          FROM smsys_bulk_member m LEFT JOIN smsys_message q ON q.id = m.message_id
         WHERE m.bulk_id = b AND m.status = 0 AND m.step = 2
         ORDER BY m.seq LIMIT lim;
END $$;

-- Release of 007; the released messages are held exactly while the bulk
-- (locked here) is not sending.
CREATE OR REPLACE FUNCTION smsys_bulk_release(b uuid, keys text[], fail_keys text[],
                                              fail_errs text[])
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    bk smsys_bulk;
    ids bigint[];
    n integer;
    start timestamptz;
BEGIN
    SELECT * INTO bk FROM smsys_bulk x WHERE x.id = b FOR UPDATE;
    IF NOT FOUND THEN
        RETURN 0;
    END IF;

    IF fail_keys IS NOT NULL AND cardinality(fail_keys) > 0 THEN
        UPDATE smsys_message q
           SET state = 6, final_at = now(), updated_at = now(),
               last_error = left('Dynamics refused the SMS record: ' || coalesce(f.err, '?'), 2000)
          FROM unnest(fail_keys, fail_errs) AS f(k, err), smsys_bulk_member m
         WHERE m.bulk_id = b AND m.member_key = f.k AND m.step IN (2, 9) AND q.id = m.message_id
           AND q.state IN (3, 7);
        UPDATE smsys_bulk_member m SET step = 3
         WHERE m.bulk_id = b AND m.member_key = ANY (fail_keys) AND m.step = 2;
    END IF;

    SELECT array_agg(m.message_id ORDER BY m.seq) INTO ids
      FROM smsys_bulk_member m
     WHERE m.bulk_id = b AND m.member_key = ANY (keys) AND m.step IN (2, 9)
       AND m.message_id IS NOT NULL;
    n := coalesce(array_length(ids, 1), 0);
    IF n = 0 THEN
        RETURN 0;
    END IF;

    IF bk.state = 7 THEN
        UPDATE smsys_message q SET state = 9, final_at = coalesce(q.final_at, now()),
               updated_at = now(), last_error = 'bulk send canceled before this message was sent'
         WHERE q.id = ANY (ids) AND q.state IN (3, 7);
        UPDATE smsys_bulk_member m SET step = 9
         WHERE m.bulk_id = b AND m.member_key = ANY (keys) AND m.step = 2;
        PERFORM smsys_q_wb(ids);
        RETURN 0;
    END IF;

    start := greatest(coalesce(bk.release_at, now()), now());
    UPDATE smsys_message q
       SET next_attempt_at = CASE WHEN bk.rate_per_s > 0
                THEN start + make_interval(secs => (r.n - 1) / bk.rate_per_s)
                ELSE now() END,
           held = NOT bk.sending,
           updated_at = now()
      FROM unnest(ids) WITH ORDINALITY AS r(id, n)
     WHERE q.id = r.id AND q.state IN (3, 7);
    IF bk.rate_per_s > 0 THEN
        UPDATE smsys_bulk SET release_at = start + make_interval(secs => n / bk.rate_per_s),
               updated_at = now()
         WHERE id = b;
    END IF;
    UPDATE smsys_bulk_member m SET step = 3
     WHERE m.bulk_id = b AND m.member_key = ANY (keys) AND m.step = 2;
    PERFORM smsys_q_wb(array_agg(q.id)) FROM smsys_message q
     WHERE q.id = ANY (ids) AND q.state NOT IN (3, 7);
    PERFORM smsys_q_notify(ids);
    RETURN n;
END $$;

-- Operator retry of 002: Failed rows are not kept by the sync (they are
-- final), so held is computed here, with the bulks locked FOR SHARE first
-- (in id order, before the messages, as a pause locks them).
CREATE OR REPLACE FUNCTION smsys_q_retry(since timestamptz, with_unknown boolean) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    ch bigint[];
BEGIN
    PERFORM 1 FROM smsys_bulk x
     WHERE x.id IN (SELECT m.bulk_id FROM smsys_message m
                     WHERE (m.state = 6 OR (with_unknown AND m.state = 21))
                       AND m.account_id IS NOT NULL AND m.bulk_id IS NOT NULL
                       AND (since IS NULL OR m.final_at >= since))
     ORDER BY x.id FOR SHARE;
    WITH upd AS (
        UPDATE smsys_message m
           SET state = 3, attempts = 0, next_attempt_at = now(), last_error = NULL,
               provider_id = NULL, provider_id_canon = NULL, provider_id_alt = NULL,
               sent_at = NULL, delivered_at = NULL, final_at = NULL, receipt_deadline = NULL,
               no_receipt = false, updated_at = now(),
               max_retries = coalesce((SELECT a.max_retries FROM smsys_account a
                                        WHERE a.id = m.account_id), m.max_retries),
               held = m.bulk_id IS NOT NULL AND NOT coalesce(
                   (SELECT x.sending FROM smsys_bulk x WHERE x.id = m.bulk_id), false)
         WHERE (m.state = 6 OR (with_unknown AND m.state = 21)) AND m.account_id IS NOT NULL
           AND (since IS NULL OR m.final_at >= since)
        RETURNING m.id)
    SELECT array_agg(upd.id) INTO ch FROM upd;
    PERFORM smsys_q_wb(ch);
    PERFORM smsys_q_notify(ch);
    RETURN coalesce(array_length(ch, 1), 0);
END
$$;

-- Held rows have their own partial index, written only for held rows (no
-- cost for the others), so the two statements that look for every waiting
-- row of an account or a number -- the failover move of smsys_q_record and
-- the opt-out -- reach them through both partial indexes (a BitmapOr over
-- "NOT held OR held") instead of scanning smsys_message. Both functions
-- are those of 002 and 006 with only that condition added.
CREATE INDEX smsys_message_held ON smsys_message (account_id)
    WHERE state IN (3, 7) AND held;

CREATE OR REPLACE FUNCTION smsys_q_record_unlocked(ids bigint[], kinds smallint[], pids text[], canons text[],
                               alts text[], segs integer[], details text[],
                               base_ms integer, cap_ms integer, jitter real,
                               pause_ms integer, receipt_s integer)
RETURNS TABLE (id bigint, state smallint, attempts integer, next_attempt_at timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
    changed bigint[];
    paused uuid[];
    rids bigint[];
    requeued bigint[];
    moved bigint[];
BEGIN
    -- Row locks in id order, so concurrent batches (receipts, another
    -- process's late results) cannot deadlock with this one.
    PERFORM 1 FROM smsys_message m WHERE m.id = ANY (ids) ORDER BY m.id FOR UPDATE;
    WITH upd AS (
        UPDATE smsys_message m SET
            state = CASE
                WHEN r.kind = 0 THEN 4
                WHEN r.kind = 1 THEN CASE WHEN m.attempts > m.max_retries THEN 6 ELSE 7 END
                WHEN r.kind = 2 THEN 6
                WHEN r.kind = 3 THEN 3
                ELSE CASE WHEN NOT a.idempotent THEN 21
                          WHEN m.attempts > m.max_retries THEN 6 ELSE 3 END
                END,
            attempts = CASE WHEN r.kind = 3 THEN greatest(m.attempts - 1, 0) ELSE m.attempts END,
            next_attempt_at = CASE
                WHEN r.kind = 1 THEN now() + make_interval(secs =>
                    least(cap_ms::float8, base_ms::float8 * power(2, greatest(m.attempts - 1, 0)))
                    * (1 - jitter * random()) / 1000.0)
                ELSE now() END,
            provider_id = CASE WHEN r.kind = 0 THEN r.pid ELSE m.provider_id END,
            provider_id_canon = CASE WHEN r.kind = 0 THEN r.canon ELSE m.provider_id_canon END,
            provider_id_alt = CASE WHEN r.kind = 0 THEN r.alt ELSE m.provider_id_alt END,
            segments = CASE WHEN r.seg > 0 THEN r.seg ELSE m.segments END,
            sent_at = CASE WHEN r.kind = 0 THEN now() ELSE m.sent_at END,
            receipt_deadline = CASE WHEN r.kind = 0 THEN now() + make_interval(secs => receipt_s)
                                    ELSE m.receipt_deadline END,
            final_at = CASE WHEN r.kind = 2 OR (r.kind = 1 AND m.attempts > m.max_retries)
                              OR (r.kind = 4 AND (NOT a.idempotent OR m.attempts > m.max_retries))
                            THEN now() ELSE NULL END,
            last_error = CASE
                WHEN r.kind = 0 THEN NULL
                WHEN r.kind = 1 AND m.attempts > m.max_retries
                    THEN 'retries used up: ' || coalesce(r.detail, 'temporary error')
                WHEN r.kind = 4 AND NOT a.idempotent
                    THEN 'outcome unknown: not resent to avoid a duplicate'
                         || coalesce(' (' || r.detail || ')', '')
                WHEN r.kind = 4 AND m.attempts > m.max_retries
                    THEN 'retries used up: outcome unknown' || coalesce(' (' || r.detail || ')', '')
                ELSE coalesce(r.detail, m.last_error) END,
            lease_owner = NULL, lease_until = NULL, updated_at = now()
        FROM unnest(ids, kinds, pids, canons, alts, segs, details)
                 AS r(id, kind, pid, canon, alt, seg, detail),
             smsys_account a
        WHERE m.id = r.id AND a.id = m.account_id AND m.state IN (3, 7, 20, 21)
        RETURNING m.id, m.state, m.account_id, r.kind)
    SELECT array_agg(upd.id),
           array_agg(DISTINCT upd.account_id) FILTER (WHERE upd.kind = 3),
           array_agg(upd.id) FILTER (WHERE upd.state = 3)
      INTO changed, paused, requeued
      FROM upd;

    -- An accepted result for a message a receipt (matched by our id)
    -- already moved on: keep the state, record the provider id.
    UPDATE smsys_message m
       SET provider_id = r.pid, provider_id_canon = r.canon, provider_id_alt = r.alt,
           updated_at = now()
      FROM unnest(ids, kinds, pids, canons, alts) AS r(id, kind, pid, canon, alt)
     WHERE m.id = r.id AND r.kind = 0 AND m.provider_id IS NULL AND m.state IN (4, 5, 6);

    -- Account-wide errors: pause the account (the first reason wins), and
    -- move its ready messages to the next failover account, if any.
    IF paused IS NOT NULL THEN
        UPDATE smsys_account a
           SET paused_until = now() + make_interval(secs => pause_ms / 1000.0),
               pause_reason = (SELECT coalesce(r.detail, 'account-wide error')
                                 FROM unnest(ids, kinds, details) AS r(id, kind, detail)
                                 JOIN smsys_message m ON m.id = r.id
                                WHERE r.kind = 3 AND m.account_id = a.id LIMIT 1),
               updated_at = now()
         WHERE a.id = ANY (paused);
        WITH target AS (
            SELECT p.id AS from_id,
                   (SELECT t.id FROM smsys_account t
                     WHERE t.id <> p.id AND t.enabled AND t.failover_order IS NOT NULL
                       AND (t.paused_until IS NULL OR t.paused_until <= now())
                     ORDER BY (t.failover_order <= p.failover_order), t.failover_order, t.id
                     LIMIT 1) AS to_id
              FROM smsys_account p
             WHERE p.id = ANY (paused) AND p.failover_order IS NOT NULL),
        mv AS (
            UPDATE smsys_message m SET account_id = t.to_id, sender = NULL, updated_at = now()
              FROM target t
             WHERE m.account_id = t.from_id AND t.to_id IS NOT NULL AND m.state IN (3, 7)
               AND (NOT m.held OR m.held) -- both partial indexes (009)
            RETURNING m.id)
        SELECT array_agg(mv.id) INTO moved FROM mv;
        requeued := coalesce(requeued, '{}') || coalesce(moved, '{}');
    END IF;

    -- Early receipts: those that arrived before this submit result.
    IF changed IS NOT NULL THEN
        UPDATE smsys_receipt rc SET message_id = m.id
          FROM smsys_message m, unnest(ids, kinds) AS r(id, kind)
         WHERE r.kind = 0 AND m.id = r.id AND m.state = 4 AND rc.message_id IS NULL
           AND rc.account_id = m.account_id
           AND (rc.canon IN (m.provider_id_canon, m.provider_id_alt)
                OR rc.alt IN (m.provider_id_canon, m.provider_id_alt));
        SELECT array_agg(rc.id) INTO rids FROM smsys_receipt rc
         WHERE rc.message_id = ANY (changed) AND rc.applied_at IS NULL;
        IF rids IS NOT NULL THEN
            PERFORM smsys_q_apply_matched(rids);
        END IF;
    END IF;

    PERFORM smsys_q_wb(changed);
    PERFORM smsys_q_notify(requeued);
    RETURN QUERY
        SELECT m.id, m.state, m.attempts, m.next_attempt_at
          FROM unnest(ids) WITH ORDINALITY AS r(id, n) JOIN smsys_message m ON m.id = r.id
         ORDER BY r.n;
END
$$;

CREATE OR REPLACE FUNCTION smsys_optout_set(num text, out_ boolean, src text, by_ text, txt text,
                                 inb bigint)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    ids bigint[];
BEGIN
    INSERT INTO smsys_optout_history (number, opted_out, source, who, body, inbound_id)
    VALUES (num, out_, src, coalesce(by_, ''), txt, inb);
    INSERT INTO smsys_optout (number, opted_out, source, who, at, body)
    VALUES (num, out_, src, coalesce(by_, ''), now(), txt)
    ON CONFLICT (number) DO UPDATE SET opted_out = EXCLUDED.opted_out,
        source = EXCLUDED.source, who = EXCLUDED.who, at = EXCLUDED.at, body = EXCLUDED.body;
    IF out_ THEN
        WITH b AS (
            UPDATE smsys_message m SET state = 10, last_error = smsys_optout_blocked(num),
                   final_at = now(), updated_at = now()
             WHERE m.recipient = num AND m.state IN (3, 7) AND m.idem_key NOT LIKE 'inbound:%'
               AND (NOT m.held OR m.held) -- both partial indexes (009)
            RETURNING m.id)
        SELECT array_agg(b.id) INTO ids FROM b;
        PERFORM smsys_q_wb(ids);
    END IF;
END $$;

-- 2. A plan per call for the receipt statements (see the top).
ALTER FUNCTION smsys_q_receipts_unlocked(uuid, text[], text[], text[], bigint[], smallint[],
                                         timestamptz[], text[])
    SET plan_cache_mode = force_custom_plan;
