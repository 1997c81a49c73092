-- 004_accounts.sql - what the accounts sync (src/accounts.c) keeps of the
-- Dynamics provider accounts (smsys_smssetting) and lines (smsys_smsnumber)
-- in smsys_account / smsys_line, and the one function that applies a whole
-- snapshot in one transaction. See docs/outbound.md.

-- The secret as written in Dynamics: a literal, env:NAME or file:PATH. The
-- connector manager resolves it; nothing logs it.
ALTER TABLE smsys_account ADD COLUMN apikey text;
-- Keyword separators for inbound text (F15); NULL = the built-in default.
ALTER TABLE smsys_account ADD COLUMN separators text;
-- smsys_isdefault as Dynamics has it; is_default is the effective default
-- (exactly one enabled account when any is enabled).
ALTER TABLE smsys_account ADD COLUMN dv_isdefault boolean NOT NULL DEFAULT false;
-- Dynamics createdon: the tie-break that makes the default choice stable.
ALTER TABLE smsys_account ADD COLUMN dv_createdon timestamptz;
-- false: the row is no longer in Dynamics (kept: messages refer to it).
ALTER TABLE smsys_account ADD COLUMN in_dynamics boolean NOT NULL DEFAULT true;
ALTER TABLE smsys_account ADD COLUMN synced_at timestamptz;

-- Applies a snapshot: accts and lns are JSON arrays of objects with the
-- columns below. Accounts missing from the snapshot are disabled (not
-- deleted); lines missing from it are deleted. Then exactly one enabled
-- account becomes the effective default: among those Dynamics marks as
-- default the oldest (createdon, then id); when none is marked, the oldest
-- enabled account. Returns the effective default (NULL when no account is
-- enabled), how many enabled accounts Dynamics marks as default, and how
-- many rows changed (0: nothing to do).
CREATE FUNCTION smsys_accounts_sync(accts jsonb, lns jsonb)
RETURNS TABLE (default_id uuid, marked integer, changed integer)
LANGUAGE plpgsql AS $$
DECLARE
    n integer := 0;
    k integer;
    def uuid;
    nmarked integer;
BEGIN
    WITH a AS (
        SELECT * FROM jsonb_to_recordset(accts) AS x(id uuid, name text, provider text,
            enabled boolean, dv_isdefault boolean, config jsonb, max_retries integer,
            inbound_interval_s integer, apikey text, separators text, createdon timestamptz))
    INSERT INTO smsys_account AS t (id, name, provider, enabled, dv_isdefault, config,
        max_retries, inbound_interval_s, apikey, separators, dv_createdon, in_dynamics,
        synced_at, updated_at)
    SELECT a.id, coalesce(a.name, ''), coalesce(a.provider, ''), coalesce(a.enabled, false),
           coalesce(a.dv_isdefault, false), coalesce(a.config, '{}'),
           greatest(coalesce(a.max_retries, 3), 0), greatest(coalesce(a.inbound_interval_s, 60), 1),
           a.apikey, a.separators, a.createdon, true, now(), now()
      FROM a
    ON CONFLICT (id) DO UPDATE SET
        name = EXCLUDED.name, provider = EXCLUDED.provider, enabled = EXCLUDED.enabled,
        dv_isdefault = EXCLUDED.dv_isdefault, config = EXCLUDED.config,
        max_retries = EXCLUDED.max_retries, inbound_interval_s = EXCLUDED.inbound_interval_s,
        apikey = EXCLUDED.apikey, separators = EXCLUDED.separators,
        dv_createdon = EXCLUDED.dv_createdon, in_dynamics = true, synced_at = now(),
        updated_at = now()
    WHERE (t.name, t.provider, t.enabled, t.dv_isdefault, t.config, t.max_retries,
           t.inbound_interval_s, t.apikey, t.separators, t.dv_createdon, t.in_dynamics)
          IS DISTINCT FROM
          (EXCLUDED.name, EXCLUDED.provider, EXCLUDED.enabled, EXCLUDED.dv_isdefault,
           EXCLUDED.config, EXCLUDED.max_retries, EXCLUDED.inbound_interval_s, EXCLUDED.apikey,
           EXCLUDED.separators, EXCLUDED.dv_createdon, true);
    GET DIAGNOSTICS k = ROW_COUNT;
    n := n + k;

    UPDATE smsys_account t SET enabled = false, in_dynamics = false, updated_at = now()
     WHERE t.in_dynamics
       AND t.id NOT IN (SELECT (e->>'id')::uuid FROM jsonb_array_elements(accts) e);
    GET DIAGNOSTICS k = ROW_COUNT;
    n := n + k;

    DELETE FROM smsys_line l
     WHERE l.id NOT IN (SELECT (e->>'id')::uuid FROM jsonb_array_elements(lns) e);
    GET DIAGNOSTICS k = ROW_COUNT;
    n := n + k;

    -- Lines of an account that is not (yet) known are skipped: the next
    -- sync brings both.
    WITH l AS (
        SELECT * FROM jsonb_to_recordset(lns) AS x(id uuid, account_id uuid, number text,
            user_id uuid, queue_id uuid, is_default boolean))
    INSERT INTO smsys_line AS t (id, account_id, number, user_id, queue_id, is_default)
    SELECT l.id, l.account_id, l.number, l.user_id, l.queue_id, coalesce(l.is_default, false)
      FROM l JOIN smsys_account a ON a.id = l.account_id
     WHERE l.number IS NOT NULL AND l.number <> ''
    ON CONFLICT (id) DO UPDATE SET
        account_id = EXCLUDED.account_id, number = EXCLUDED.number, user_id = EXCLUDED.user_id,
        queue_id = EXCLUDED.queue_id, is_default = EXCLUDED.is_default
    WHERE (t.account_id, t.number, t.user_id, t.queue_id, t.is_default) IS DISTINCT FROM
          (EXCLUDED.account_id, EXCLUDED.number, EXCLUDED.user_id, EXCLUDED.queue_id,
           EXCLUDED.is_default);
    GET DIAGNOSTICS k = ROW_COUNT;
    n := n + k;

    SELECT count(*) INTO nmarked FROM smsys_account WHERE enabled AND dv_isdefault;
    SELECT a.id INTO def FROM smsys_account a
     WHERE a.enabled
     ORDER BY a.dv_isdefault DESC, a.dv_createdon NULLS LAST, a.id
     LIMIT 1;
    UPDATE smsys_account a SET is_default = (a.id IS NOT DISTINCT FROM def), updated_at = now()
     WHERE a.is_default IS DISTINCT FROM (a.id IS NOT DISTINCT FROM def);
    GET DIAGNOSTICS k = ROW_COUNT;
    n := n + k;
    RETURN QUERY SELECT def, nmarked, n;
END
$$;

-- The write-back also carries the numbers the pickup chose (schema.md:
-- smsys_phonenumber = the recipient in E.164, smsys_sendernumber = our
-- line), only when known, so a user's own sender choice is never erased.
CREATE OR REPLACE FUNCTION smsys_q_fields(m smsys_message) RETURNS jsonb
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
        || jsonb_strip_nulls(jsonb_build_object(
        'smsys_phonenumber', nullif(m.recipient, ''),
        'smsys_sendernumber', nullif(m.sender, '')))
    FROM (SELECT CASE m.state WHEN 20 THEN 3 WHEN 21 THEN 6 ELSE m.state END AS st) s
$$;
