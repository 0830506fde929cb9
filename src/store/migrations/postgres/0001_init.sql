-- kadgate store schema, version 1 (PostgreSQL). The same tables, columns and indexes as
-- ../sqlite/0001_init.sql, in PostgreSQL's types: ids are identity columns, integers BIGINT,
-- bytes BYTEA. Ids are only compared (keyset pagination, newest first = highest id), never assumed
-- to be dense: a sequence value taken by a rolled-back insert is skipped.

CREATE TABLE messages (
    id              BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at     TEXT    NOT NULL,
    channel         TEXT    NOT NULL,
    direction       TEXT    NOT NULL CHECK (direction IN ('in', 'out')),
    format          TEXT,
    msg_type        TEXT,
    msg_id          TEXT,
    sender_key      TEXT,
    -- NULL = cannot deduplicate; several NULLs are allowed. The unique index is what decides a
    -- duplicate when two instances store the same key at once (INSERT … ON CONFLICT DO NOTHING).
    dedup_key       TEXT    UNIQUE,
    status          TEXT    NOT NULL,
    raw             BYTEA   NOT NULL,
    header_json     TEXT,
    body_json       TEXT,
    findings_json   TEXT    NOT NULL,
    correlates_to   BIGINT  REFERENCES messages (id),
    reply_json      TEXT,
    -- How many later copies with the same dedup_key were answered from this row.
    duplicate_count BIGINT  NOT NULL DEFAULT 0
);

-- find_sent: direction = 'out' AND msg_id = ?
CREATE INDEX messages_direction_msg_id ON messages (direction, msg_id);
-- list filtered by status, newest first; counts per status.
CREATE INDEX messages_status_id ON messages (status, id);
-- list filtered by direction, newest first.
CREATE INDEX messages_direction_id ON messages (direction, id);
-- foreign key lookups (receipts correlated to a sent message).
CREATE INDEX messages_correlates_to ON messages (correlates_to);

CREATE TABLE receipts (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id   BIGINT NOT NULL REFERENCES messages (id),
    ordinal      BIGINT NOT NULL,
    receiver_key TEXT   NOT NULL,
    receipt_id   TEXT   NOT NULL,
    status       TEXT   NOT NULL,
    content_type TEXT   NOT NULL,
    body         BYTEA  NOT NULL,
    UNIQUE (message_id, ordinal)
);
