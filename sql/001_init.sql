-- 001_init.sql - migration bookkeeping.
--
-- Rules for every file in sql/ (see docs/postgres.md):
--   * named NNN_what.sql; NNN is the version, applied in numeric order;
--   * never edit a file once it has been applied anywhere: add a new one;
--   * no BEGIN/COMMIT inside: smsys runs each file in one transaction
--     together with its row in smsys_schema_migrations;
--   * no statements that refuse to run in a transaction
--     (CREATE INDEX CONCURRENTLY, ALTER TYPE ... ADD VALUE before PG 12).

CREATE TABLE smsys_schema_migrations (
    version    int PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE smsys_schema_migrations IS
    'smsys schema versions applied by smsysctl db migrate / smsysd startup';
