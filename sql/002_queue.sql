-- 002_queue.sql - the durable outbound queue, receipts and the write-back
-- outbox of smsysd. See docs/queue.md for the state machine and why each
-- step is crash-safe. Every function here works on whole batches (arrays)
-- so that one round trip moves hundreds of messages.
--
-- Message states (smallint) reuse the smsys_status values of schema.md:
--   3 Queued, 4 Sent, 5 Delivered, 6 Failed, 7 Retrying, 9 Canceled,
--   10 Blocked, plus two internal states never written to Dynamics as such:
--   20 InFlight  claimed by a sender under a lease, being handed over
--   21 Unknown   hand-over outcome unknown; not resent (see policy)

-- Provider accounts: a cache of smsys_smssetting kept by the settings sync.
CREATE TABLE smsys_account (
    id                   uuid PRIMARY KEY,
    name                 text NOT NULL DEFAULT '',
    provider             text NOT NULL DEFAULT '',
    enabled              boolean NOT NULL DEFAULT true,
    is_default           boolean NOT NULL DEFAULT false,
    config               jsonb NOT NULL DEFAULT '{}',
    max_retries          integer NOT NULL DEFAULT 3 CHECK (max_retries >= 0),
    inbound_interval_s   integer NOT NULL DEFAULT 60,
    -- the connector deduplicates on our message id (conn_ops.supports_idempotency):
    -- an unknown outcome may then be resent safely
    idempotent           boolean NOT NULL DEFAULT false,
    -- NULL: takes no part in failover; else accounts fail over in this order
    failover_order       integer,
    paused_until         timestamptz,
    pause_reason         text,
    updated_at           timestamptz NOT NULL DEFAULT now()
);

-- Lines: a cache of smsys_smsnumber.
CREATE TABLE smsys_line (
    id          uuid PRIMARY KEY,
    account_id  uuid NOT NULL REFERENCES smsys_account (id) ON DELETE CASCADE,
    number      text NOT NULL,
    user_id     uuid,
    queue_id    uuid,
    is_default  boolean NOT NULL DEFAULT false
);
CREATE INDEX smsys_line_account ON smsys_line (account_id);
CREATE INDEX smsys_line_number ON smsys_line (number);

CREATE TABLE smsys_message (
    id                 bigserial PRIMARY KEY,
    idem_key           text NOT NULL UNIQUE,
    activity_id        uuid,
    bulk_id            uuid,
    account_id         uuid REFERENCES smsys_account (id),
    sender             text,
    recipient          text NOT NULL DEFAULT '',
    body               text NOT NULL DEFAULT '',
    segments           integer NOT NULL DEFAULT 0,
    encoding           smallint NOT NULL DEFAULT 0,
    priority           smallint NOT NULL DEFAULT 100,
    state              smallint NOT NULL CHECK (state IN (3, 4, 5, 6, 7, 9, 10, 20, 21)),
    attempts           integer NOT NULL DEFAULT 0,
    max_retries        integer NOT NULL DEFAULT 0,
    next_attempt_at    timestamptz NOT NULL DEFAULT now(),
    lease_owner        text,
    lease_until        timestamptz,
    provider_id        text,
    provider_id_canon  text,
    provider_id_alt    text,
    last_error         text,
    no_receipt         boolean NOT NULL DEFAULT false,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    sent_at            timestamptz,
    delivered_at       timestamptz,
    final_at           timestamptz,
    receipt_deadline   timestamptz
);
-- The claim path: only ready rows are indexed, so the index stays small
-- however many sent/final rows the table keeps.
CREATE INDEX smsys_message_ready ON smsys_message (account_id, priority, id)
    WHERE state IN (3, 7);
CREATE INDEX smsys_message_inflight ON smsys_message (lease_until) WHERE state = 20;
CREATE INDEX smsys_message_pid ON smsys_message (account_id, provider_id_canon)
    WHERE provider_id_canon IS NOT NULL;
CREATE INDEX smsys_message_pid_alt ON smsys_message (account_id, provider_id_alt)
    WHERE provider_id_alt IS NOT NULL;
CREATE INDEX smsys_message_deadline ON smsys_message (receipt_deadline)
    WHERE state = 4 AND NOT no_receipt;
CREATE INDEX smsys_message_final ON smsys_message (final_at) WHERE state IN (6, 21);
CREATE INDEX smsys_message_activity ON smsys_message (activity_id);

-- Receipts as received (SMPP deliver_sm, webhooks, status polls). Kept even
-- when no message matches yet: the submit result may land later.
CREATE TABLE smsys_receipt (
    id                 bigserial PRIMARY KEY,
    account_id         uuid NOT NULL,
    provider_id        text NOT NULL,
    canon              text NOT NULL,
    alt                text,
    our_id             bigint,
    status             smallint NOT NULL, -- enum conn_status
    done_at            timestamptz,
    detail             text,
    received_at        timestamptz NOT NULL DEFAULT now(),
    message_id         bigint,            -- NULL until matched
    applied_at         timestamptz
);
CREATE INDEX smsys_receipt_unmatched ON smsys_receipt (account_id, canon) WHERE message_id IS NULL;
CREATE INDEX smsys_receipt_unmatched_alt ON smsys_receipt (account_id, alt)
    WHERE message_id IS NULL AND alt IS NOT NULL;
CREATE INDEX smsys_receipt_message ON smsys_receipt (message_id);

-- Write-back outbox: one row per Dynamics record, holding the latest
-- columns to write. Every change merges into it and bumps version; the
-- writer deletes a row only if the version it wrote is still the latest.
CREATE TABLE smsys_writeback (
    activity_id      uuid PRIMARY KEY,
    fields           jsonb NOT NULL,
    version          bigint NOT NULL DEFAULT 1,
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_error       text,
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX smsys_writeback_due ON smsys_writeback (next_attempt_at);

-- Rank for the forward-only rule: pre-send < Sent < final.
CREATE FUNCTION smsys_q_rank(st smallint) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN st IN (5, 6, 9, 10) THEN 2 WHEN st = 4 THEN 1 ELSE 0 END
$$;

-- conn_status (connector.h) -> message state; NULL = no transition.
CREATE FUNCTION smsys_q_receipt_state(cs smallint) RETURNS smallint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (CASE cs WHEN 1 THEN 4 WHEN 2 THEN 4 WHEN 3 THEN 5
                    WHEN 4 THEN 6 WHEN 5 THEN 6 WHEN 6 THEN 6 WHEN 7 THEN 6
                    ELSE NULL END)::smallint
$$;

CREATE FUNCTION smsys_q_iso(t timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
$$;

-- The Dynamics columns of one message (schema.md). Internal states show as
-- Queued (InFlight) and Failed (Unknown: someone must look at it).
CREATE FUNCTION smsys_q_fields(m smsys_message) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'smsys_status', s.st,
        'statecode', CASE WHEN s.st IN (5, 8) THEN 1 WHEN s.st IN (6, 9, 10) THEN 2 ELSE 0 END,
        'statuscode', CASE WHEN s.st IN (5, 8) THEN 2 WHEN s.st IN (6, 9, 10) THEN 3 ELSE 1 END,
        'smsys_providermessageid', left(m.provider_id, 100),
        'smsys_attempts', m.attempts,
        'smsys_segments', m.segments,
        'smsys_lasterror', left(m.last_error, 2000),
        'smsys_sentat', smsys_q_iso(m.sent_at),
        'smsys_deliveredat', smsys_q_iso(m.delivered_at))
    FROM (SELECT CASE m.state WHEN 20 THEN 3 WHEN 21 THEN 6 ELSE m.state END AS st) s
$$;

-- Upserts the outbox rows of the given messages with their current state.
CREATE FUNCTION smsys_q_wb(ids bigint[]) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO smsys_writeback AS w (activity_id, fields)
    SELECT DISTINCT ON (m.activity_id) m.activity_id, smsys_q_fields(m)
    FROM smsys_message m
    WHERE m.id = ANY (ids) AND m.activity_id IS NOT NULL
    ORDER BY m.activity_id, m.id DESC
    ON CONFLICT (activity_id) DO UPDATE
        -- next_attempt_at is kept: FIFO for the writer, and a row in
        -- backoff (Dynamics failing) stays in backoff however often it changes
        SET fields = w.fields || EXCLUDED.fields, version = w.version + 1, updated_at = now()
$$;

-- One notification per account that has ready work (statement level).
CREATE FUNCTION smsys_q_notify(ids bigint[]) RETURNS void
LANGUAGE sql AS $$
    SELECT pg_notify('smsys_queue', a::text)
    FROM (SELECT DISTINCT account_id AS a FROM smsys_message
          WHERE id = ANY (ids) AND state IN (3, 7) AND account_id IS NOT NULL) d
$$;

-- Enqueue: inserts new messages (ON CONFLICT on idem_key does nothing) and
-- their write-back rows, in one transaction. Returns one row per input key
-- with the message id and whether this call inserted it.
CREATE FUNCTION smsys_q_enqueue(keys text[], activity uuid[], bulk uuid[], account uuid[],
                                sndr text[], rcpt text[], bod text[], segs integer[],
                                enc smallint[], prio smallint[], st smallint[], err text[],
                                not_before timestamptz[])
RETURNS TABLE (idem_key text, id bigint, inserted boolean)
LANGUAGE plpgsql AS $$
DECLARE
    new_ids bigint[];
BEGIN
    WITH ins AS (
        INSERT INTO smsys_message AS m (idem_key, activity_id, bulk_id, account_id, sender,
            recipient, body, segments, encoding, priority, state, max_retries, last_error,
            next_attempt_at, final_at)
        SELECT i.k, i.act, i.bulk, i.acc, i.snd, coalesce(i.rc, ''), coalesce(i.b, ''),
               coalesce(i.sg, 0), coalesce(i.en, 0), coalesce(i.pr, 100), i.s,
               coalesce((SELECT a.max_retries FROM smsys_account a WHERE a.id = i.acc), 0),
               i.e, coalesce(i.nb, now()), CASE WHEN i.s IN (3, 7) THEN NULL ELSE now() END
        FROM unnest(keys, activity, bulk, account, sndr, rcpt, bod, segs, enc, prio, st, err,
                    not_before) WITH ORDINALITY
             AS i(k, act, bulk, acc, snd, rc, b, sg, en, pr, s, e, nb, n)
        ORDER BY i.n
        ON CONFLICT ON CONSTRAINT smsys_message_idem_key_key DO NOTHING
        RETURNING m.id)
    SELECT array_agg(ins.id) INTO new_ids FROM ins;

    PERFORM smsys_q_wb(new_ids);
    PERFORM smsys_q_notify(new_ids);
    RETURN QUERY
        SELECT k.k, m.id, m.id = ANY (coalesce(new_ids, '{}')) AND k.n = k.first
        FROM (SELECT u.k, u.n, min(u.n) OVER (PARTITION BY u.k) AS first
                FROM unnest(keys) WITH ORDINALITY AS u(k, n)) k
        JOIN smsys_message m ON m.idem_key = k.k
        ORDER BY k.n;
END
$$;

-- Claim: moves up to lim ready messages of the given accounts (NULL = all)
-- to InFlight under a lease and counts the attempt. Paused or disabled
-- accounts are skipped; rows locked by another claimer are skipped.
CREATE FUNCTION smsys_q_claim(owner text, accounts uuid[], lim integer, lease_ms integer)
RETURNS TABLE (id bigint, idem_key text, activity_id uuid, account_id uuid, sender text,
               recipient text, body text, segments integer, encoding smallint,
               attempts integer)
LANGUAGE sql AS $$
    WITH c AS (
        SELECT m.id FROM smsys_message m
        WHERE m.state IN (3, 7) AND m.next_attempt_at <= now()
          AND m.account_id IN (SELECT a.id FROM smsys_account a
                               WHERE (accounts IS NULL OR a.id = ANY (accounts)) AND a.enabled
                                 AND (a.paused_until IS NULL OR a.paused_until <= now()))
        ORDER BY m.priority, m.id
        LIMIT lim
        FOR UPDATE SKIP LOCKED)
    UPDATE smsys_message m
       SET state = 20, attempts = m.attempts + 1, lease_owner = owner,
           lease_until = now() + make_interval(secs => lease_ms / 1000.0), updated_at = now()
      FROM c WHERE m.id = c.id
    RETURNING m.id, m.idem_key, m.activity_id, m.account_id, m.sender, m.recipient, m.body,
              m.segments, m.encoding, m.attempts
$$;

-- Applies matched receipts (message_id set, applied_at NULL) forward-only:
-- per message the highest-ranked receipt wins; a state of lower or equal
-- rank never replaces the current one, and a final state never changes.
-- Unknown (21) counts as pre-send, so any receipt resolves it.
CREATE FUNCTION smsys_q_apply_matched(rids bigint[]) RETURNS bigint[]
LANGUAGE plpgsql AS $$
DECLARE
    changed bigint[];
BEGIN
    PERFORM 1 FROM smsys_message m
     WHERE m.id IN (SELECT r.message_id FROM smsys_receipt r WHERE r.id = ANY (rids))
     ORDER BY m.id FOR UPDATE;
    WITH best AS (
        SELECT DISTINCT ON (r.message_id) r.message_id, smsys_q_receipt_state(r.status) AS st,
               r.done_at, r.detail, r.status
        FROM smsys_receipt r
        WHERE r.id = ANY (rids) AND r.message_id IS NOT NULL
          AND smsys_q_receipt_state(r.status) IS NOT NULL
        ORDER BY r.message_id, smsys_q_rank(smsys_q_receipt_state(r.status)) DESC,
                 (smsys_q_receipt_state(r.status) = 5) DESC, r.id DESC),
    upd AS (
        UPDATE smsys_message m
           SET state = b.st,
               sent_at = coalesce(m.sent_at, now()),
               delivered_at = CASE WHEN b.st = 5 THEN coalesce(b.done_at, now()) ELSE m.delivered_at END,
               final_at = CASE WHEN b.st IN (5, 6) THEN now() ELSE NULL END,
               last_error = CASE WHEN b.st = 6 THEN
                   'delivery failed (' || CASE b.status WHEN 4 THEN 'undelivered' WHEN 5 THEN 'failed'
                        WHEN 6 THEN 'blacklisted' ELSE 'canceled' END || ')'
                   || coalesce(': ' || b.detail, '')
                   WHEN b.st = 5 OR m.state = 21 THEN NULL ELSE m.last_error END,
               lease_owner = NULL, lease_until = NULL, updated_at = now()
          FROM best b
         WHERE m.id = b.message_id AND smsys_q_rank(b.st) > smsys_q_rank(m.state)
        RETURNING m.id)
    SELECT array_agg(upd.id) INTO changed FROM upd;
    UPDATE smsys_receipt SET applied_at = now() WHERE id = ANY (rids) AND message_id IS NOT NULL;
    PERFORM smsys_q_wb(changed);
    RETURN coalesce(changed, '{}');
END
$$;

-- Send outcomes. kind: 0 accepted, 1 temporary, 2 permanent, 3 account-wide,
-- 4 unknown outcome. Only rows not yet Sent or final are moved (a late
-- result never moves a message backwards). Returns the state of each.
CREATE FUNCTION smsys_q_record(ids bigint[], kinds smallint[], pids text[], canons text[],
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

-- Receipts: stored first, matched by our id when echoed, else by the
-- canonical provider id (either reading of an ambiguous id), then applied.
CREATE FUNCTION smsys_q_receipts(acc uuid, pids text[], canons text[], alts text[],
                                 ourids bigint[], sts smallint[], dones timestamptz[],
                                 details text[])
RETURNS TABLE (matched integer, changed integer)
LANGUAGE plpgsql AS $$
DECLARE
    rids bigint[];
    ch bigint[];
    nm integer;
BEGIN
    WITH ins AS (
        INSERT INTO smsys_receipt (account_id, provider_id, canon, alt, our_id, status, done_at,
                                   detail)
        SELECT acc, i.p, i.c, i.a, i.o, i.s, i.d, i.t
          FROM unnest(pids, canons, alts, ourids, sts, dones, details) AS i(p, c, a, o, s, d, t)
        RETURNING smsys_receipt.id)
    SELECT array_agg(ins.id) INTO rids FROM ins;

    UPDATE smsys_receipt r
       SET message_id = coalesce(
           (SELECT m.id FROM smsys_message m WHERE m.id = r.our_id AND m.account_id = acc),
           (SELECT m.id FROM smsys_message m
             WHERE m.account_id = acc AND m.provider_id_canon = r.canon LIMIT 1),
           (SELECT m.id FROM smsys_message m
             WHERE m.account_id = acc AND m.provider_id_alt = r.canon LIMIT 1),
           (SELECT m.id FROM smsys_message m
             WHERE m.account_id = acc AND r.alt IS NOT NULL
               AND r.alt IN (m.provider_id_canon, m.provider_id_alt) LIMIT 1))
     WHERE r.id = ANY (rids);
    SELECT count(*) INTO nm FROM smsys_receipt r WHERE r.id = ANY (rids) AND r.message_id IS NOT NULL;
    ch := smsys_q_apply_matched(rids);
    RETURN QUERY SELECT nm, coalesce(array_length(ch, 1), 0);
END
$$;

-- Expired leases (the claimer crashed or hung): the hand-over may have
-- happened, so never a blind resend: Unknown, or Queued again when the
-- provider deduplicates on our id.
CREATE FUNCTION smsys_q_reap(lim integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    ch bigint[];
BEGIN
    WITH c AS (
        SELECT m.id FROM smsys_message m
         WHERE m.state = 20 AND m.lease_until < now()
         ORDER BY m.lease_until LIMIT lim FOR UPDATE SKIP LOCKED),
    upd AS (
        UPDATE smsys_message m
           SET state = CASE WHEN a.idempotent THEN 3 ELSE 21 END,
               last_error = CASE WHEN a.idempotent
                   THEN 'lease of ' || coalesce(m.lease_owner, '?') || ' expired; resent (provider deduplicates)'
                   ELSE 'outcome unknown: not resent to avoid a duplicate (lease of '
                        || coalesce(m.lease_owner, '?') || ' expired)' END,
               final_at = CASE WHEN a.idempotent THEN NULL ELSE now() END,
               next_attempt_at = now(), lease_owner = NULL, lease_until = NULL, updated_at = now()
          FROM c, smsys_account a
         WHERE m.id = c.id AND a.id = m.account_id
        RETURNING m.id)
    SELECT array_agg(upd.id) INTO ch FROM upd;
    PERFORM smsys_q_wb(ch);
    PERFORM smsys_q_notify(ch);
    RETURN coalesce(array_length(ch, 1), 0);
END
$$;

-- Sent messages with no final receipt by their deadline: flagged and
-- explained, never shown as delivered (the state stays Sent).
CREATE FUNCTION smsys_q_expire(lim integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    ch bigint[];
BEGIN
    WITH c AS (
        SELECT m.id FROM smsys_message m
         WHERE m.state = 4 AND NOT m.no_receipt AND m.receipt_deadline < now()
         ORDER BY m.receipt_deadline LIMIT lim FOR UPDATE SKIP LOCKED),
    upd AS (
        UPDATE smsys_message m
           SET no_receipt = true, updated_at = now(),
               last_error = 'no delivery report by ' || smsys_q_iso(m.receipt_deadline)
                            || ' (sent, delivery not confirmed)'
          FROM c WHERE m.id = c.id
        RETURNING m.id)
    SELECT array_agg(upd.id) INTO ch FROM upd;
    PERFORM smsys_q_wb(ch);
    RETURN coalesce(array_length(ch, 1), 0);
END
$$;

-- Operator retry: Failed (and optionally Unknown) messages since a time go
-- back to Queued with a fresh attempt budget.
CREATE FUNCTION smsys_q_retry(since timestamptz, with_unknown boolean) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    ch bigint[];
BEGIN
    WITH upd AS (
        UPDATE smsys_message m
           SET state = 3, attempts = 0, next_attempt_at = now(), last_error = NULL,
               provider_id = NULL, provider_id_canon = NULL, provider_id_alt = NULL,
               sent_at = NULL, delivered_at = NULL, final_at = NULL, receipt_deadline = NULL,
               no_receipt = false, updated_at = now(),
               max_retries = coalesce((SELECT a.max_retries FROM smsys_account a
                                        WHERE a.id = m.account_id), m.max_retries)
         WHERE (m.state = 6 OR (with_unknown AND m.state = 21)) AND m.account_id IS NOT NULL
           AND (since IS NULL OR m.final_at >= since)
        RETURNING m.id)
    SELECT array_agg(upd.id) INTO ch FROM upd;
    PERFORM smsys_q_wb(ch);
    PERFORM smsys_q_notify(ch);
    RETURN coalesce(array_length(ch, 1), 0);
END
$$;

-- Unknown outcomes proven not received (a status lookup by our own id
-- found nothing): back to Queued. Other states are left alone.
CREATE FUNCTION smsys_q_resolve_unknown(ids bigint[]) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    ch bigint[];
BEGIN
    WITH upd AS (
        UPDATE smsys_message m
           SET state = 3, next_attempt_at = now(), final_at = NULL, updated_at = now(),
               last_error = 'previous attempt not received by the provider; resent'
         WHERE m.id = ANY (ids) AND m.state = 21
        RETURNING m.id)
    SELECT array_agg(upd.id) INTO ch FROM upd;
    PERFORM smsys_q_wb(ch);
    PERFORM smsys_q_notify(ch);
    RETURN coalesce(array_length(ch, 1), 0);
END
$$;

-- Retention: final messages (and their receipts) that ended before a time
-- and have nothing left to write back; unmatched receipts older than that.
-- Bounded by lim so one call stays short.
CREATE FUNCTION smsys_q_purge(before timestamptz, lim integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    n integer;
BEGIN
    WITH victims AS (
        SELECT m.id FROM smsys_message m
         WHERE m.state IN (5, 6, 9, 10) AND m.final_at < before
           AND NOT EXISTS (SELECT 1 FROM smsys_writeback w WHERE w.activity_id = m.activity_id)
         ORDER BY m.final_at LIMIT lim FOR UPDATE SKIP LOCKED),
    r AS (DELETE FROM smsys_receipt rc USING victims v WHERE rc.message_id = v.id),
    d AS (DELETE FROM smsys_message m USING victims v WHERE m.id = v.id RETURNING 1)
    SELECT count(*) INTO n FROM d;
    DELETE FROM smsys_receipt rc
     WHERE rc.id IN (SELECT x.id FROM smsys_receipt x
                      WHERE x.message_id IS NULL AND x.received_at < before LIMIT lim);
    RETURN n;
END
$$;

-- A user canceled records in Dynamics before they were sent: their
-- messages still waiting (Queued, Retrying) become Canceled. A message
-- already handed over (InFlight, Unknown, Sent) cannot be called back and
-- is left alone.
CREATE FUNCTION smsys_q_cancel(acts uuid[]) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    ch bigint[];
BEGIN
    PERFORM 1 FROM smsys_message m WHERE m.activity_id = ANY (acts) ORDER BY m.id FOR UPDATE;
    WITH upd AS (
        UPDATE smsys_message m
           SET state = 9, final_at = now(), updated_at = now(),
               last_error = 'canceled before it was sent'
         WHERE m.activity_id = ANY (acts) AND m.state IN (3, 7)
        RETURNING m.id)
    SELECT array_agg(upd.id) INTO ch FROM upd;
    PERFORM smsys_q_wb(ch);
    RETURN coalesce(array_length(ch, 1), 0);
END
$$;
