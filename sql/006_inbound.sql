-- 006_inbound.sql - inbound SMS (src/inbound.c), the phone index used to
-- match senders to Dynamics records (src/phone_index.c) and the opt-out
-- list (F14) that outbound sending honours. Design: docs/inbound.md.

-- One inbound SMS, committed before the provider is acknowledged.
-- Dedupe: the provider's id when it gives one (UNIQUE (account_id,
-- provider_id)), else a fingerprint (UNIQUE (fingerprint)): sha256 of
-- account, sender, line, text and the 5-minute bucket of the provider's
-- time (the arrival time when the provider gives none). fingerprint is
-- NULL when a provider id exists, so two equal texts with distinct ids
-- are two messages.
CREATE TABLE smsys_inbound (
    id            bigserial PRIMARY KEY,
    -- the incoming smsys_sms's activityid, fixed at intake so that a retry
    -- is an upsert; random (not derived from id) so that a re-created
    -- database never reuses an id Dynamics already has
    uid           uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),
    account_id    text NOT NULL,
    provider_id   text,
    fingerprint   text UNIQUE,
    src           text NOT NULL,      -- sender, E.164 when it normalised, else as given
    src_raw       text NOT NULL,      -- sender exactly as the provider gave it
    dst           text NOT NULL,      -- our line
    body          text NOT NULL,
    received_at   timestamptz NOT NULL,
    stored_at     timestamptz NOT NULL DEFAULT now(),
    state         text NOT NULL DEFAULT 'stored'
                  CHECK (state IN ('stored', 'matched', 'recorded', 'failed')),
    matched_table text,               -- contact, lead, account or a configured table
    matched_id    uuid,
    others        jsonb,              -- further matches: [{"table":..,"id":..}]
    reply_to      uuid,               -- activityid of the last outgoing SMS to src
    activity_id   uuid,               -- the smsys_sms record created (= uid)
    rule_results  jsonb,              -- [{"rule":..,"action":..,"words":[..],"rc":..,"detail":..}]
    attempts      integer NOT NULL DEFAULT 0,
    next_at       timestamptz NOT NULL DEFAULT now(),
    last_error    text,
    processed_at  timestamptz,
    UNIQUE (account_id, provider_id)
);
CREATE INDEX smsys_inbound_todo ON smsys_inbound (next_at) WHERE state IN ('stored', 'matched');
CREATE INDEX smsys_inbound_src ON smsys_inbound (src, id);
CREATE INDEX smsys_inbound_matched ON smsys_inbound (matched_id, id) WHERE matched_id IS NOT NULL;

-- Stores one inbound message unless it is a duplicate; returns its id and
-- whether this call inserted it. Notifies smsys_inbound for the processor.
CREATE FUNCTION smsys_inbound_accept(acct text, pid text, s text, sraw text, d text, b text,
                                     at timestamptz)
RETURNS TABLE (id bigint, inserted boolean)
LANGUAGE plpgsql AS $$
DECLARE
    fp text;
    nid bigint;
BEGIN
    IF pid IS NULL OR pid = '' THEN
        pid := NULL;
        fp := encode(sha256(convert_to(acct || chr(31) || s || chr(31) || d || chr(31) || b
                  || chr(31) || (floor(extract(epoch FROM at) / 300))::bigint::text, 'UTF8')),
                  'hex');
    END IF;
    INSERT INTO smsys_inbound AS i (account_id, provider_id, fingerprint, src, src_raw, dst,
                                    body, received_at)
    VALUES (acct, pid, fp, s, sraw, d, b, at)
    ON CONFLICT DO NOTHING
    RETURNING i.id INTO nid;
    IF nid IS NOT NULL THEN
        PERFORM pg_notify('smsys_inbound', nid::text);
        RETURN QUERY SELECT nid, true;
        RETURN;
    END IF;
    RETURN QUERY SELECT x.id, false FROM smsys_inbound x
     WHERE (pid IS NOT NULL AND x.account_id = acct AND x.provider_id = pid)
        OR (fp IS NOT NULL AND x.fingerprint = fp)
     LIMIT 1;
END $$;

-- The phone index: every phone column of every indexed table, normalised
-- to E.164. Kept by src/phone_index.c from a full read and then change
-- tracking deltas; matching is one index lookup on number.
CREATE TABLE smsys_phone_index (
    number      text NOT NULL,
    tbl         text NOT NULL,
    record_id   uuid NOT NULL,
    col         text NOT NULL,
    modified_on timestamptz,
    donotsms    boolean NOT NULL DEFAULT false,
    PRIMARY KEY (tbl, record_id, col)
);
CREATE INDEX smsys_phone_index_number ON smsys_phone_index (number);

-- Delta link per table (NULL: the next refresh is a full read).
CREATE TABLE smsys_phone_index_delta (
    tbl          text PRIMARY KEY,
    delta_link   text,
    full_at      timestamptz,
    refreshed_at timestamptz,
    rows_seen    bigint NOT NULL DEFAULT 0
);

-- Replaces the index rows of the records in rs (a JSON array of
-- {"id":..,"modified_on":..,"donotsms":..,"phones":{"<col>":"<E.164>",...}})
-- and removes the records in gone (deleted in Dynamics).
CREATE FUNCTION smsys_pi_apply(t text, rs jsonb, gone uuid[]) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    n integer;
BEGIN
    DELETE FROM smsys_phone_index p
     WHERE p.tbl = t AND (p.record_id = ANY (gone)
        OR p.record_id IN (SELECT (r ->> 'id')::uuid FROM jsonb_array_elements(rs) r));
    INSERT INTO smsys_phone_index (number, tbl, record_id, col, modified_on, donotsms)
    SELECT ph.value #>> '{}', t, (r ->> 'id')::uuid, ph.key, (r ->> 'modified_on')::timestamptz,
           coalesce((r ->> 'donotsms')::boolean, false)
      FROM jsonb_array_elements(rs) r, jsonb_each(r -> 'phones') ph
     WHERE ph.value #>> '{}' <> ''
    ON CONFLICT (tbl, record_id, col) DO UPDATE SET number = EXCLUDED.number,
        modified_on = EXCLUDED.modified_on, donotsms = EXCLUDED.donotsms;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END $$;

-- Records whose phone is num, best first: the one with the most recent
-- conversation (latest inbound matched to it), then the most recently
-- modified, then table and id for a stable order.
CREATE FUNCTION smsys_pi_match(num text)
RETURNS TABLE (tbl text, record_id uuid, modified_on timestamptz, donotsms boolean)
LANGUAGE sql STABLE AS $$
    SELECT p.tbl, p.record_id, max(p.modified_on), bool_or(p.donotsms)
      FROM smsys_phone_index p
      LEFT JOIN LATERAL (SELECT max(i.id) AS last_in FROM smsys_inbound i
                          WHERE i.matched_id = p.record_id AND i.state = 'recorded') c ON true
     WHERE p.number = num
     GROUP BY p.tbl, p.record_id, c.last_in
     ORDER BY c.last_in DESC NULLS LAST, max(p.modified_on) DESC NULLS LAST, p.tbl, p.record_id
$$;

-- The opt-out list (F14), keyed by E.164 number: honoured for numbers not
-- (yet) in Dynamics too. Every change also lands in the history (audit).
CREATE TABLE smsys_optout (
    number    text PRIMARY KEY,
    opted_out boolean NOT NULL,
    source    text NOT NULL,          -- sms, cli, import, api
    who       text NOT NULL DEFAULT '',
    at        timestamptz NOT NULL DEFAULT now(),
    body      text                    -- the SMS text that did it, when by SMS
);
CREATE TABLE smsys_optout_history (
    id        bigserial PRIMARY KEY,
    number    text NOT NULL,
    opted_out boolean NOT NULL,
    source    text NOT NULL,
    who       text NOT NULL DEFAULT '',
    at        timestamptz NOT NULL DEFAULT now(),
    body      text,
    inbound_id bigint
);
CREATE INDEX smsys_optout_history_number ON smsys_optout_history (number, id);

-- Sets a number's state with an audit row. Opting out also blocks the
-- messages to that number still waiting in the queue (Queued, Retrying),
-- a bulk send's included, except replies to the sender's own message.
CREATE FUNCTION smsys_optout_set(num text, out_ boolean, src text, by_ text, txt text,
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
            RETURNING m.id)
        SELECT array_agg(b.id) INTO ids FROM b;
        PERFORM smsys_q_wb(ids);
    END IF;
END $$;

-- For outbound (pickup, bulk): NULL when num may be sent to, else the
-- reason to record as smsys_lasterror with status Blocked.
CREATE FUNCTION smsys_optout_blocked(num text) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT 'recipient opted out by ' || CASE o.source WHEN 'sms' THEN 'SMS' ELSE o.source END
           || ' on ' || to_char(o.at AT TIME ZONE 'UTC', 'YYYY-MM-DD')
      FROM smsys_optout o WHERE o.number = num AND o.opted_out
$$;

-- Every new outbound message to an opted-out number is born Blocked, with
-- the reason, whichever path enqueued it (pickup, bulk, API): one primary
-- key lookup per insert. Replies to the sender's own message (idempotency
-- key "inbound:...", e.g. the opt-out confirmation) are let through.
CREATE FUNCTION smsys_optout_guard() RETURNS trigger
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
    RETURN NEW;
END $$;
CREATE TRIGGER smsys_message_optout BEFORE INSERT ON smsys_message
    FOR EACH ROW EXECUTE FUNCTION smsys_optout_guard();
