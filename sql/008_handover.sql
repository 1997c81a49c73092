-- 008_handover.sql - a durable "handing over" mark, so that a crash no longer
-- turns messages that never left the process into unknown outcomes.
--
-- Until now an expired lease (smsysd killed, or hung past lease_ms) made
-- every InFlight row Unknown (21) for providers without idempotency: the
-- reaper could not tell a message the provider may have received from one
-- that was still waiting in the sender. Those were never sent.
--
-- Now the sender marks a batch durably (smsys_q_handing) right before its
-- connector gets it; only rows still InFlight under the caller's live lease
-- are marked. The reaper then knows:
--   no mark    the message never reached the connector: back to Queued,
--              the attempt given back (it never left);
--   marked     it may have reached the provider: the unknown-outcome rule
--              as before (Unknown, or Queued when the provider
--              deduplicates on our id).
--
-- A mark is one row per batch in smsys_handover (owner, the claim's
-- lease_until, the ids), not a column of smsys_message: updating every
-- message once more per send cost the whole pipeline a third of its
-- throughput (new row versions and index entries), while one insert per
-- batch plus a KEY SHARE lock on its rows costs almost nothing. A mark
-- belongs to exactly one claim: (owner, lease_until) names the claim, and a
-- later claim of the same message gets a later lease.
--
-- Why it is safe (docs/queue.md "Hand-over mark"):
--  * the mark commits before the connector sees the batch, so a message
--    the provider could have received is always marked;
--  * marking locks its rows (FOR KEY SHARE) and the reaper locks them FOR
--    UPDATE SKIP LOCKED, then looks for the mark in a later statement (a
--    fresh snapshot). So a mark either committed before the reaper got the
--    row (the reaper sees it), or is still running (the row is skipped this
--    round), or comes after (it waits for the reaper, then finds the row
--    no longer InFlight under its lease, marks nothing, and the sender
--    drops it from the batch);
--  * a mark row is deleted only once its lease has run out and none of its
--    messages is still InFlight under that lease.
-- Never move lease_until by hand: a mark would no longer match its claim.
--
-- smsys_q_claim is not redefined here (007_bulk.sql owns its latest form).

CREATE TABLE smsys_handover (
    owner        text NOT NULL,
    lease_until  timestamptz NOT NULL,
    ids          bigint[] NOT NULL,
    marked_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX smsys_handover_lease ON smsys_handover (lease_until, owner);

-- The hand-over mark: marks the given rows that are still InFlight under
-- owner's lease (not run out); returns the ids marked. Repeating it for a
-- marked row answers it again (one more, harmless, mark row). The caller
-- hands over only the ids returned.
CREATE FUNCTION smsys_q_handing(ids bigint[], owner text) RETURNS SETOF bigint
LANGUAGE sql AS $$
    WITH k AS (
        SELECT m.id, m.lease_until FROM smsys_message m
         WHERE m.id = ANY (ids) AND m.state = 20 AND m.lease_owner = owner
           AND m.lease_until > now()
         ORDER BY m.id
         FOR KEY SHARE OF m),
    ins AS (
        INSERT INTO smsys_handover (owner, lease_until, ids)
        SELECT owner, k.lease_until, array_agg(k.id) FROM k GROUP BY k.lease_until
        RETURNING smsys_handover.ids)
    SELECT unnest(ins.ids) FROM ins
$$;

-- Expired leases: never handed over -> Queued (attempt given back);
-- handed over -> the unknown-outcome rule as before.
CREATE OR REPLACE FUNCTION smsys_q_reap(lim integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    got bigint[];
    ch bigint[];
BEGIN
    -- Lock first: a mark still being written holds its rows (skipped now,
    -- reaped next time), one already committed is seen by the next
    -- statement, which takes a new snapshot.
    SELECT array_agg(c.id) INTO got FROM (
        SELECT m.id FROM smsys_message m
         WHERE m.state = 20 AND m.lease_until < now()
         ORDER BY m.lease_until LIMIT lim FOR UPDATE SKIP LOCKED) c;
    IF got IS NOT NULL THEN
        WITH c AS (
            SELECT m.id, EXISTS (SELECT 1 FROM smsys_handover h
                                  WHERE h.lease_until = m.lease_until
                                    AND h.owner = m.lease_owner AND m.id = ANY (h.ids)) AS handed
              FROM smsys_message m
             WHERE m.id = ANY (got) AND m.state = 20),
        upd AS (
            UPDATE smsys_message m
               SET state = CASE WHEN NOT c.handed OR a.idempotent THEN 3 ELSE 21 END,
                   attempts = CASE WHEN c.handed THEN m.attempts
                                   ELSE greatest(m.attempts - 1, 0) END,
                   last_error = CASE
                       WHEN NOT c.handed
                       THEN 'lease of ' || coalesce(m.lease_owner, '?')
                            || ' expired before hand-over; queued again (it was never sent)'
                       WHEN a.idempotent
                       THEN 'lease of ' || coalesce(m.lease_owner, '?')
                            || ' expired; resent (provider deduplicates)'
                       ELSE 'outcome unknown: not resent to avoid a duplicate (lease of '
                            || coalesce(m.lease_owner, '?') || ' expired)' END,
                   final_at = CASE WHEN c.handed AND NOT a.idempotent THEN now() ELSE NULL END,
                   next_attempt_at = now(), lease_owner = NULL, lease_until = NULL,
                   updated_at = now()
              FROM c, smsys_account a
             WHERE m.id = c.id AND a.id = m.account_id
            RETURNING m.id)
        SELECT array_agg(upd.id) INTO ch FROM upd;
        PERFORM smsys_q_wb(ch);
        PERFORM smsys_q_notify(ch);
    END IF;
    -- Marks nobody can need any more: lease over, none of its rows InFlight
    -- under it (rows another reaper holds still read as InFlight here).
    DELETE FROM smsys_handover h
     WHERE h.lease_until < now()
       AND NOT EXISTS (SELECT 1 FROM smsys_message m
                        WHERE m.state = 20 AND m.lease_until = h.lease_until
                          AND m.lease_owner = h.owner);
    RETURN coalesce(array_length(ch, 1), 0);
END
$$;

-- Send outcomes, plus kind 5 "not handed over": the sender never gave the
-- message to its connector (stopping, the mark failed). Such rows, while
-- still InFlight, go straight back to Queued with the attempt given back;
-- every other kind follows 002/005 unchanged. The common call (no kind 5)
-- costs nothing more than before.
CREATE OR REPLACE FUNCTION smsys_q_record(ids bigint[], kinds smallint[], pids text[],
                                          canons text[], alts text[], segs integer[],
                                          details text[], base_ms integer, cap_ms integer,
                                          jitter real, pause_ms integer, receipt_s integer)
RETURNS TABLE (id bigint, state smallint, attempts integer, next_attempt_at timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
    back bigint[];
    r_ids bigint[];
    r_kinds smallint[];
    r_pids text[];
    r_canons text[];
    r_alts text[];
    r_segs integer[];
    r_details text[];
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('smsys:acct:' || s.a::text, 0))
       FROM (SELECT DISTINCT m.account_id AS a FROM smsys_message m
              WHERE m.id = ANY (ids) ORDER BY 1) s;
    IF NOT (5 = ANY (kinds)) THEN
        RETURN QUERY SELECT * FROM smsys_q_record_unlocked(ids, kinds, pids, canons, alts, segs,
                                                           details, base_ms, cap_ms, jitter,
                                                           pause_ms, receipt_s);
        RETURN;
    END IF;

    PERFORM 1 FROM smsys_message m WHERE m.id = ANY (ids) ORDER BY m.id FOR UPDATE;
    WITH upd AS (
        UPDATE smsys_message m
           SET state = 3, attempts = greatest(m.attempts - 1, 0), next_attempt_at = now(),
               last_error = coalesce(r.detail, 'not handed over to the provider; queued again'),
               final_at = NULL, lease_owner = NULL, lease_until = NULL, updated_at = now()
          FROM unnest(ids, kinds, details) AS r(id, kind, detail)
         WHERE m.id = r.id AND r.kind = 5 AND m.state = 20
        RETURNING m.id)
    SELECT array_agg(upd.id) INTO back FROM upd;
    PERFORM smsys_q_wb(back);
    PERFORM smsys_q_notify(back);

    SELECT array_agg(r.id ORDER BY r.n), array_agg(r.kind ORDER BY r.n),
           array_agg(r.pid ORDER BY r.n), array_agg(r.canon ORDER BY r.n),
           array_agg(r.alt ORDER BY r.n), array_agg(r.seg ORDER BY r.n),
           array_agg(r.detail ORDER BY r.n)
      INTO r_ids, r_kinds, r_pids, r_canons, r_alts, r_segs, r_details
      FROM unnest(ids, kinds, pids, canons, alts, segs, details) WITH ORDINALITY
           AS r(id, kind, pid, canon, alt, seg, detail, n)
     WHERE r.kind <> 5;
    IF r_ids IS NOT NULL THEN
        PERFORM count(*) FROM smsys_q_record_unlocked(r_ids, r_kinds, r_pids, r_canons, r_alts,
                                                      r_segs, r_details, base_ms, cap_ms,
                                                      jitter, pause_ms, receipt_s);
    END IF;
    RETURN QUERY
        SELECT m.id, m.state, m.attempts, m.next_attempt_at
          FROM unnest(ids) WITH ORDINALITY AS r(id, n) JOIN smsys_message m ON m.id = r.id
         ORDER BY r.n;
END
$$;
