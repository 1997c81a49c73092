-- 003_mo_parts.sql - multipart inbound SMS waiting for their other parts
-- (src/mo_parts.c, docs/smpp.md "Inbound"). A part is committed here
-- before its deliver_sm is acknowledged, so a restart loses no part.

CREATE TABLE smsys_mo_groups (
    id         bigserial PRIMARY KEY,
    account_id text NOT NULL,
    src        text NOT NULL,
    dst        text NOT NULL,
    ref        int NOT NULL,
    total      int NOT NULL CHECK (total BETWEEN 1 AND 255),
    created_at timestamptz NOT NULL DEFAULT now(),
    last_at    timestamptz NOT NULL DEFAULT now(),
    -- set by mo_parts_done(); kept an hour to recognise redelivered parts
    done_at    timestamptz
);

-- One open group per concatenation key; a completed (done) group's key
-- may be reused by the sender's next long message.
CREATE UNIQUE INDEX smsys_mo_groups_open
    ON smsys_mo_groups (account_id, src, dst, ref, total) WHERE done_at IS NULL;
CREATE INDEX smsys_mo_groups_done
    ON smsys_mo_groups (account_id, src, dst, ref, total, done_at) WHERE done_at IS NOT NULL;
CREATE INDEX smsys_mo_groups_age ON smsys_mo_groups (created_at) WHERE done_at IS NULL;

CREATE TABLE smsys_mo_parts (
    group_id    bigint NOT NULL REFERENCES smsys_mo_groups (id) ON DELETE CASCADE,
    seq         int NOT NULL CHECK (seq >= 1),
    data_coding int NOT NULL,
    payload     bytea NOT NULL, -- user data without the UDH
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, seq)
);

COMMENT ON TABLE smsys_mo_groups IS
    'multipart inbound SMS being reassembled (mo_parts.h); done_at set once handed out';
