-- Receipts and send results of one account are applied one transaction at
-- a time, and delivery is never recorded before hand-over.
--
-- 1. smsys_q_record (send results) and smsys_q_receipts (delivery reports)
--    match each other: a receipt that arrives before its submit result is
--    stored and applied when the result lands. Under READ COMMITTED two
--    concurrent transactions -- one recording results, one storing
--    receipts (with two processes the SMSC may report on the other
--    process's bind) -- do not see each other's rows, and both commit
--    unmatched: the message stayed Sent forever. Both functions now take a
--    per-account transaction-scoped advisory lock first, in account order,
--    so the second waits for the first and its statements then see the
--    committed rows. The original bodies are kept, renamed *_unlocked.
-- 2. Delivery time never before hand-over. SMPP receipts carry the SMSC's "done date" to the minute
--    (YYMMDDhhmm): a message handed over at 09:27:37 and delivered at once
--    was recorded as delivered at 09:27:00, before it was sent.
--    smsys_deliveredat is now the later of the reported time and the
--    hand-over time.

ALTER FUNCTION smsys_q_record(bigint[], smallint[], text[], text[], text[], integer[], text[],
                              integer, integer, real, integer, integer)
    RENAME TO smsys_q_record_unlocked;

CREATE FUNCTION smsys_q_record(ids bigint[], kinds smallint[], pids text[], canons text[],
                               alts text[], segs integer[], details text[],
                               base_ms integer, cap_ms integer, jitter real,
                               pause_ms integer, receipt_s integer)
RETURNS TABLE (id bigint, state smallint, attempts integer, next_attempt_at timestamptz)
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('smsys:acct:' || s.a::text, 0))
       FROM (SELECT DISTINCT m.account_id AS a FROM smsys_message m
              WHERE m.id = ANY (ids) ORDER BY 1) s;
    RETURN QUERY SELECT * FROM smsys_q_record_unlocked(ids, kinds, pids, canons, alts, segs,
                                                       details, base_ms, cap_ms, jitter,
                                                       pause_ms, receipt_s);
END
$$;

ALTER FUNCTION smsys_q_receipts(uuid, text[], text[], text[], bigint[], smallint[],
                                timestamptz[], text[])
    RENAME TO smsys_q_receipts_unlocked;

CREATE FUNCTION smsys_q_receipts(acc uuid, pids text[], canons text[], alts text[],
                                 ourids bigint[], sts smallint[], dones timestamptz[],
                                 details text[])
RETURNS TABLE (matched integer, changed integer)
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('smsys:acct:' || acc::text, 0));
    RETURN QUERY SELECT * FROM smsys_q_receipts_unlocked(acc, pids, canons, alts, ourids, sts,
                                                         dones, details);
END
$$;

CREATE OR REPLACE FUNCTION smsys_q_apply_matched(rids bigint[]) RETURNS bigint[]
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
               delivered_at = CASE WHEN b.st = 5 THEN
                   greatest(coalesce(b.done_at, now()), coalesce(m.sent_at, now()))
                   ELSE m.delivered_at END,
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

