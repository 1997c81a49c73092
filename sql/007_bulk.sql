-- 007_bulk.sql - bulk SMS to marketing lists and campaigns (issue #9):
-- the bulk sends smsysd has accepted, their expanded audience, the
-- commands smsysctl leaves for the service, and the functions that move a
-- bulk through expansion, record creation and hand-over so that a crash at
-- any point resumes without a second message. Design: docs/bulk.md.
--
-- Bulk states (smsys_bulksms.smsys_status): 1 Draft, 2 Ready, 3 Expanding,
-- 4 Sending, 5 Paused, 6 Completed, 7 Canceled, 8 Failed.
--
-- Member status: 0 to send, 1 no number, 2 invalid number, 3 opted out
-- (smsys_optout), 4 do not SMS (smsys_donotsms on the row), 5 duplicate
-- number (the lowest seq of the bulk keeps it), 6 text could not be rendered
-- for this member (e.g. a lookup failed; the reason says why).
-- Member step: 0 expanded, 1 rendered, 2 enqueued held (message exists,
-- next_attempt_at = infinity, no Dynamics record yet), 3 record created and
-- released, 9 canceled before release.

-- Quiet hours are one global fact (the service's clock and window): the
-- service flips it at each boundary; smsys_bulk.sending follows it.
CREATE TABLE smsys_bulk_gate (
    id          integer PRIMARY KEY CHECK (id = 1),
    open        boolean NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO smsys_bulk_gate (id, open) VALUES (1, true);

CREATE TABLE smsys_bulk (
    id               uuid PRIMARY KEY,          -- = smsys_bulksmsid
    name             text NOT NULL DEFAULT '',
    state            smallint NOT NULL DEFAULT 3 CHECK (state BETWEEN 1 AND 8),
    resume_state     smallint CHECK (resume_state BETWEEN 2 AND 4),
    -- true only while state = 4 and the quiet-hours gate is open: the
    -- queue's claim looks at nothing else
    sending          boolean NOT NULL DEFAULT false,
    account_id       uuid,
    sender           text,
    template_id      uuid,
    template         text,                      -- the template text used (resolved at start)
    -- the text per member table, resolved once before expansion:
    -- {"*": text} for the bulk's own text or template, else the default
    -- template of each member table {"contact": text, "lead": text}
    templates        jsonb,
    body             text,                      -- the bulk's own text, when it has one
    list_id          uuid,
    campaign_id      uuid,
    owner_id         uuid,
    owner_type       text,                      -- systemuser | team
    scheduled_start  timestamptz,
    rate_per_s       real NOT NULL DEFAULT 0 CHECK (rate_per_s >= 0),
    release_at       timestamptz,               -- where the per-bulk rate stagger has got to
    -- expansion checkpoint: [{id, dynamic, member_entity, fetchxml}],
    -- the source being read and the cursor of its NEXT page
    sources          jsonb,
    src_index        integer NOT NULL DEFAULT 0,
    cursor           text,
    expanded         boolean NOT NULL DEFAULT false,
    preflight        jsonb,
    last_error       text,
    written          jsonb,                     -- counters/status last written to Dynamics
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    final_at         timestamptz
);
CREATE INDEX smsys_bulk_active ON smsys_bulk (state) WHERE state IN (2, 3, 4, 5);

CREATE TABLE smsys_bulk_member (
    bulk_id      uuid NOT NULL REFERENCES smsys_bulk (id) ON DELETE CASCADE,
    member_key   text NOT NULL,                 -- <entity>:<guid>
    entity       text NOT NULL,
    member_id    uuid NOT NULL,
    seq          bigserial,
    number       text,                          -- E.164, NULL when none/invalid
    status       smallint NOT NULL DEFAULT 0 CHECK (status BETWEEN 0 AND 6),
    reason       text,                          -- why skipped, for the preview
    activity_id  uuid NOT NULL,                 -- UUIDv5(bulk id, member_key)
    body         text,
    segments     integer,
    encoding     smallint,
    step         smallint NOT NULL DEFAULT 0 CHECK (step IN (0, 1, 2, 3, 9)),
    message_id   bigint,
    PRIMARY KEY (bulk_id, member_key)
);
CREATE INDEX smsys_bulk_member_number ON smsys_bulk_member (bulk_id, number) WHERE status = 0;
CREATE INDEX smsys_bulk_member_todo ON smsys_bulk_member (bulk_id, step, seq)
    WHERE status = 0 AND step IN (0, 1, 2);

-- smsysctl -> smsysd. The CLI calls smsys_bulk_request(), which also
-- applies pause/resume/cancel in PostgreSQL at once.
CREATE TABLE smsys_bulk_command (
    id        bigserial PRIMARY KEY,
    bulk_id   uuid NOT NULL,
    command   text NOT NULL CHECK (command IN ('start', 'pause', 'resume', 'cancel')),
    rate      real CHECK (rate >= 0),
    who       text NOT NULL DEFAULT '',
    at        timestamptz NOT NULL DEFAULT now(),
    done_at   timestamptz,
    result    text
);
CREATE INDEX smsys_bulk_command_todo ON smsys_bulk_command (id) WHERE done_at IS NULL;

-- Counters come from the bulk's messages.
CREATE INDEX smsys_message_bulk ON smsys_message (bulk_id, state) WHERE bulk_id IS NOT NULL;

-- Accepts a bulk picked up from Dynamics (j: the columns above by name;
-- "state" 2 = accepted but waiting for its scheduled start, else 3).
-- A bulk already known is left as it is (a replayed pickup changes
-- nothing); returns the row either way.
CREATE FUNCTION smsys_bulk_accept(j jsonb) RETURNS SETOF smsys_bulk
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO smsys_bulk (id, name, state, account_id, sender, template_id, template, body,
                            list_id, campaign_id, owner_id, owner_type, scheduled_start,
                            rate_per_s)
    SELECT x.id, coalesce(x.name, ''), CASE WHEN x.state = 2 THEN 2 ELSE 3 END,
           -- no account named: the effective default (F12) at acceptance
           coalesce(x.account_id, (SELECT a.id FROM smsys_account a
                                    WHERE a.is_default AND a.enabled LIMIT 1)),
           x.sender, x.template_id, x.template, x.body, x.list_id, x.campaign_id, x.owner_id, x.owner_type, x.scheduled_start,
           greatest(coalesce(x.rate_per_s, 0), 0)
      FROM jsonb_to_record(j) AS x(id uuid, name text, state smallint, account_id uuid,
                                   sender text,
                                   template_id uuid, template text, body text, list_id uuid,
                                   campaign_id uuid, owner_id uuid, owner_type text,
                                   scheduled_start timestamptz, rate_per_s real)
    ON CONFLICT (id) DO NOTHING;
    RETURN QUERY SELECT * FROM smsys_bulk b WHERE b.id = (j ->> 'id')::uuid;
END $$;

-- Sets the resolved audience (the lists to read) once; later calls keep
-- the first value so a restart never re-resolves mid-expansion.
CREATE FUNCTION smsys_bulk_set_sources(b uuid, srcs jsonb) RETURNS jsonb
LANGUAGE sql AS $$
    UPDATE smsys_bulk SET sources = coalesce(sources, srcs), updated_at = now()
     WHERE id = b RETURNING sources
$$;

-- One expansion page plus the checkpoint, in one transaction. The page is
-- applied only when the bulk's checkpoint is still (at_index, at_cursor):
-- a page replayed after a lost COMMIT answer changes nothing and returns
-- applied = false. members: [{"k": member_key, "e": entity, "id": uuid,
-- "act": activity uuid, "n": E.164 or null, "st": 0|1|2|4, "r": reason,
-- "body": rendered text or null, "seg": segments, "enc": encoding}].
-- Status 3 (opted out) and 5 (duplicate number) are decided here.
CREATE FUNCTION smsys_bulk_page(b uuid, at_index integer, at_cursor text, next_index integer,
                                next_cursor text, done boolean, members jsonb)
RETURNS TABLE (applied boolean, inserted integer)
LANGUAGE plpgsql AS $$
DECLARE
    n integer := 0;
    keys text[];
BEGIN
    PERFORM 1 FROM smsys_bulk x
      WHERE x.id = b AND x.src_index = at_index AND x.cursor IS NOT DISTINCT FROM at_cursor
        AND NOT x.expanded
      FOR UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT false, 0;
        RETURN;
    END IF;
    WITH ins AS (
        INSERT INTO smsys_bulk_member AS m (bulk_id, member_key, entity, member_id, number,
                                            status, reason, activity_id, body, segments,
                                            encoding, step)
        SELECT b, i.k, i.e, i.id, nullif(i.n, ''),
               CASE WHEN coalesce(i.st, 0) = 0 AND smsys_optout_blocked(i.n) IS NOT NULL THEN 3
                    ELSE coalesce(i.st, 0) END,
               CASE WHEN coalesce(i.st, 0) = 0 THEN smsys_optout_blocked(i.n) ELSE i.r END,
               i.act, i.body, i.seg, i.enc,
               CASE WHEN i.body IS NOT NULL THEN 1 ELSE 0 END
          FROM ROWS FROM (jsonb_to_recordset(members)
                   AS (k text, e text, id uuid, act uuid, n text, st smallint, r text,
                       body text, seg integer, enc smallint)) WITH ORDINALITY
               AS i(k, e, id, act, n, st, r, body, seg, enc, o)
         ORDER BY i.o
        ON CONFLICT (bulk_id, member_key) DO NOTHING
        RETURNING m.member_key)
    SELECT array_agg(ins.member_key) INTO keys FROM ins;
    n := coalesce(array_length(keys, 1), 0);

    IF n > 0 THEN
        UPDATE smsys_bulk_member m
           SET status = 5, reason = 'duplicate number ' || m.number
         WHERE m.bulk_id = b AND m.member_key = ANY (keys) AND m.status = 0
           AND EXISTS (SELECT 1 FROM smsys_bulk_member o
                        WHERE o.bulk_id = b AND o.status = 0 AND o.number = m.number
                          AND o.seq < m.seq);
    END IF;

    UPDATE smsys_bulk
       SET src_index = next_index, cursor = next_cursor, expanded = done, updated_at = now()
     WHERE id = b;
    RETURN QUERY SELECT true, n;
END $$;

-- Members (status 0) still to render: up to lim, in seq order.
CREATE FUNCTION smsys_bulk_to_render(b uuid, lim integer)
RETURNS TABLE (member_key text, entity text, member_id uuid)
LANGUAGE sql STABLE AS $$
    SELECT m.member_key, m.entity, m.member_id FROM smsys_bulk_member m
     WHERE m.bulk_id = b AND m.status = 0 AND m.step = 0
     ORDER BY m.seq LIMIT lim
$$;

-- Stores rendered texts (step 0 -> 1). A NULL body means the member could
-- not be rendered: it is skipped with the reason in errs.
CREATE FUNCTION smsys_bulk_rendered(b uuid, keys text[], bodies text[], segs integer[],
                                    encs smallint[], errs text[])
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    n integer;
BEGIN
    UPDATE smsys_bulk_member m
       SET body = r.body, segments = r.seg, encoding = r.enc, step = 1
      FROM unnest(keys, bodies, segs, encs) AS r(k, body, seg, enc)
     WHERE m.bulk_id = b AND m.member_key = r.k AND m.step = 0 AND r.body IS NOT NULL;
    GET DIAGNOSTICS n = ROW_COUNT;
    UPDATE smsys_bulk_member m SET status = 6, reason = coalesce(r.err, 'cannot render text')
      FROM unnest(keys, bodies, errs) AS r(k, body, err)
     WHERE m.bulk_id = b AND m.member_key = r.k AND m.step = 0 AND r.body IS NULL;
    RETURN n;
END $$;

-- The preflight summary of a bulk: recipients, skipped by reason and
-- segments by encoding over the rendered texts.
CREATE FUNCTION smsys_bulk_summary(b uuid) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'recipients', (SELECT count(*) FROM smsys_bulk_member m WHERE m.bulk_id = b AND m.status = 0),
        'unrendered', (SELECT count(*) FROM smsys_bulk_member m
                        WHERE m.bulk_id = b AND m.status = 0 AND m.step = 0),
        'skipped', (SELECT jsonb_build_object(
                        'no_number', count(*) FILTER (WHERE m.status = 1),
                        'invalid_number', count(*) FILTER (WHERE m.status = 2),
                        'opted_out', count(*) FILTER (WHERE m.status = 3),
                        'do_not_sms', count(*) FILTER (WHERE m.status = 4),
                        'duplicate', count(*) FILTER (WHERE m.status = 5),
                        'render_failed', count(*) FILTER (WHERE m.status = 6),
                        'total', count(*) FILTER (WHERE m.status > 0))
                      FROM smsys_bulk_member m WHERE m.bulk_id = b),
        'segments', (SELECT jsonb_build_object(
                        'gsm7', coalesce(sum(m.segments) FILTER (WHERE m.encoding = 0), 0),
                        'ucs2', coalesce(sum(m.segments) FILTER (WHERE m.encoding = 1), 0),
                        'total', coalesce(sum(m.segments), 0),
                        'gsm7_messages', count(*) FILTER (WHERE m.encoding = 0),
                        'ucs2_messages', count(*) FILTER (WHERE m.encoding = 1))
                       FROM smsys_bulk_member m WHERE m.bulk_id = b AND m.status = 0))
$$;

-- The next chunk to create records for. When a chunk is already held
-- (step 2: enqueued, record not yet known to exist, e.g. after a crash)
-- it is returned again with fresh = false, and the caller first asks
-- Dynamics which of its records exist. Otherwise up to lim rendered
-- members are enqueued HELD (next_attempt_at = infinity, no write-back row:
-- the record does not exist yet) and returned with fresh = true. A bulk not
-- in state 4 (paused, canceled) gets no new chunk.
CREATE FUNCTION smsys_bulk_next_chunk(b uuid, lim integer, prio smallint)
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
        recipient, body, segments, encoding, priority, state, max_retries, next_attempt_at)
    SELECT 'bulk:' || b::text || ':' || m.member_key, m.activity_id, b, bk.account_id,
           bk.sender, m.number, coalesce(m.body, ''), coalesce(m.segments, 0),
           coalesce(m.encoding, 0), prio, 3,
           coalesce((SELECT a.max_retries FROM smsys_account a WHERE a.id = bk.account_id), 0),
           'infinity'
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

-- After the records of a held chunk exist: releases their messages (step
-- 3) staggered by the bulk's rate, and fails the members whose record
-- Dynamics refused (fail_keys, with fail_errs): their message becomes
-- Failed without a write-back row (there is no record to write to).
-- Messages that are not Queued any more (born Blocked by the opt-out
-- guard) get their write-back row now that the record exists. When the
-- bulk was canceled meanwhile, the released messages become Canceled (with
-- write-back: their records exist). Returns how many were released.
CREATE FUNCTION smsys_bulk_release(b uuid, keys text[], fail_keys text[], fail_errs text[])
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

-- State changes. Each returns the new state (NULL: no such bulk) and
-- leaves a bulk whose state does not allow the change as it is.

-- Pause: Ready, Expanding or Sending -> Paused; hand-over stops at once
-- (the claim skips a bulk that is not sending). Expansion and record
-- creation stop too, at the next step the engine takes.
CREATE FUNCTION smsys_bulk_pause(b uuid) RETURNS smallint
LANGUAGE sql AS $$
    UPDATE smsys_bulk x
       SET resume_state = CASE WHEN x.state IN (2, 3, 4) THEN x.state ELSE x.resume_state END,
           state = CASE WHEN x.state IN (2, 3, 4) THEN 5 ELSE x.state END,
           sending = CASE WHEN x.state IN (2, 3, 4) THEN false ELSE x.sending END,
           updated_at = now()
     WHERE x.id = b RETURNING x.state
$$;

-- Resume: Paused -> the state it was paused in (Sending when unknown).
CREATE FUNCTION smsys_bulk_resume(b uuid) RETURNS smallint
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
    IF st = 4 THEN
        PERFORM pg_notify('smsys_queue', x.account_id::text)
           FROM smsys_bulk x WHERE x.id = b AND x.sending AND x.account_id IS NOT NULL;
    END IF;
    RETURN st;
END $$;

-- Cancel: any non-final state -> Canceled. The bulk's released messages
-- still waiting (Queued, Retrying) become Canceled with write-back rows
-- (their records exist); held ones and members not yet released go to
-- step 9 without records. Handed-over messages cannot be called back.
CREATE FUNCTION smsys_bulk_cancel(b uuid) RETURNS smallint
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
    RETURN st;
END $$;

-- Engine-driven transitions, each only from its predecessor: Ready ->
-- Expanding (scheduled start reached), Expanding -> Sending (preflight
-- passed), Sending -> Completed, Ready/Expanding/Sending -> Failed. So a
-- pause or cancel that lands while the engine works is never overwritten;
-- final states are never left. Returns the state in force.
CREATE FUNCTION smsys_bulk_set_state(b uuid, st smallint, err text) RETURNS smallint
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
    RETURN cur;
END $$;

-- Quiet hours: the service opens the gate at the start of the window and
-- closes it at the end; every Sending bulk follows. Returns how many bulks
-- changed.
CREATE FUNCTION smsys_bulk_gate_set(is_open boolean) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    n integer;
BEGIN
    UPDATE smsys_bulk_gate SET open = is_open, updated_at = now()
     WHERE id = 1 AND open IS DISTINCT FROM is_open;
    UPDATE smsys_bulk x SET sending = (x.state = 4 AND is_open), updated_at = now()
     WHERE x.state IN (4, 5) AND x.sending IS DISTINCT FROM (x.state = 4 AND is_open);
    GET DIAGNOSTICS n = ROW_COUNT;
    IF is_open AND n > 0 THEN
        PERFORM pg_notify('smsys_queue', d.a::text)
           FROM (SELECT DISTINCT x.account_id AS a FROM smsys_bulk x
                  WHERE x.sending AND x.account_id IS NOT NULL) d;
    END IF;
    RETURN n;
END $$;

-- The CLI's one call: records a command for the service (it writes the
-- new status to Dynamics, or starts a bulk it does not know yet), and
-- applies pause/resume/cancel in PostgreSQL at once so hand-overs stop
-- before the service even reads the command. Returns the command id.
CREATE FUNCTION smsys_bulk_request(b uuid, cmd text, rate real, by_ text) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    cid bigint;
BEGIN
    INSERT INTO smsys_bulk_command (bulk_id, command, rate, who)
    VALUES (b, cmd, rate, coalesce(by_, '')) RETURNING id INTO cid;
    IF cmd = 'pause' THEN
        PERFORM smsys_bulk_pause(b);
    ELSIF cmd = 'resume' THEN
        PERFORM smsys_bulk_resume(b);
    ELSIF cmd = 'cancel' THEN
        PERFORM smsys_bulk_cancel(b);
    END IF;
    IF rate IS NOT NULL THEN
        UPDATE smsys_bulk SET rate_per_s = rate, updated_at = now() WHERE id = b;
    END IF;
    PERFORM pg_notify('smsys_bulk', b::text);
    RETURN cid;
END $$;

-- Progress of one bulk (counters as docs/bulk.md defines them) and whether
-- it is finished: expansion done, every member released or canceled, no
-- message waiting, in flight or Sent awaiting a receipt.
CREATE FUNCTION smsys_bulk_progress(b uuid)
RETURNS TABLE (total bigint, sent bigint, delivered bigint, failed bigint, skipped bigint,
               canceled bigint, queued bigint, inflight bigint, awaiting bigint,
               unreleased bigint, finished boolean)
LANGUAGE sql STABLE AS $$
    WITH mb AS (
        SELECT count(*) FILTER (WHERE m.status = 0) AS total,
               count(*) FILTER (WHERE m.status > 0) AS skipped,
               count(*) FILTER (WHERE m.status = 0 AND m.step IN (0, 1, 2)) AS unreleased,
               count(*) FILTER (WHERE m.status = 0 AND m.step = 9 AND m.message_id IS NULL)
                   AS canceled_early
          FROM smsys_bulk_member m WHERE m.bulk_id = b),
    mq AS (
        SELECT count(*) FILTER (WHERE q.state IN (4, 5) OR (q.state = 6 AND q.sent_at IS NOT NULL))
                   AS sent,
               count(*) FILTER (WHERE q.state = 5) AS delivered,
               count(*) FILTER (WHERE q.state IN (6, 10, 21)) AS failed,
               count(*) FILTER (WHERE q.state = 9) AS canceled,
               count(*) FILTER (WHERE q.state IN (3, 7)) AS queued,
               count(*) FILTER (WHERE q.state = 20) AS inflight,
               count(*) FILTER (WHERE q.state = 4 AND NOT q.no_receipt) AS awaiting
          FROM smsys_message q WHERE q.bulk_id = b)
    SELECT mb.total, mq.sent, mq.delivered, mq.failed, mb.skipped,
           mq.canceled + mb.canceled_early, mq.queued, mq.inflight, mq.awaiting, mb.unreleased,
           (x.expanded AND mb.unreleased = 0 AND mq.queued = 0 AND mq.inflight = 0
            AND mq.awaiting = 0)
      FROM mb, mq, smsys_bulk x WHERE x.id = b
$$;

-- The claim of 002_queue.sql, plus: a bulk message is handed over only
-- while its bulk is sending (not paused, canceled, or outside quiet hours).
CREATE OR REPLACE FUNCTION smsys_q_claim(owner text, accounts uuid[], lim integer,
                                         lease_ms integer)
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
          AND (m.bulk_id IS NULL
               OR m.bulk_id IN (SELECT x.id FROM smsys_bulk x WHERE x.sending))
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

-- A Failed bulk set to Ready again in Dynamics starts over, but only when
-- none of its messages exists yet (it failed at start or preflight):
-- members and checkpoint are dropped, the new settings (j, as for
-- smsys_bulk_accept) are taken. Returns true when it was reset.
CREATE FUNCTION smsys_bulk_restart(j jsonb) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    b uuid := (j ->> 'id')::uuid;
BEGIN
    PERFORM 1 FROM smsys_bulk x WHERE x.id = b AND x.state = 8 FOR UPDATE;
    IF NOT FOUND OR EXISTS (SELECT 1 FROM smsys_message q WHERE q.bulk_id = b) THEN
        RETURN false;
    END IF;
    DELETE FROM smsys_bulk WHERE id = b;
    PERFORM smsys_bulk_accept(j);
    RETURN true;
END $$;

-- Sets the resolved texts per member table once (see templates above);
-- returns the value in force.
CREATE FUNCTION smsys_bulk_set_templates(b uuid, t jsonb) RETURNS jsonb
LANGUAGE sql AS $$
    UPDATE smsys_bulk SET templates = coalesce(templates, t), updated_at = now()
     WHERE id = b RETURNING templates
$$;
