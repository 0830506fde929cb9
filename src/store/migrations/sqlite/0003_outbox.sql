-- kadgate store schema, version 3: admission decisions, routing choices, the outbox, alerts and
-- the units' own capacity reports. Times that are compared (due, lease, deadline) are integer
-- milliseconds since the Unix epoch; times only shown are RFC 3339 text. PostgreSQL: the same with
-- BIGINT / BYTEA (see 0001).

-- Every decision on a referral, the gateway's and each override, in order; the latest is current.
CREATE TABLE decisions (
    id              INTEGER PRIMARY KEY,
    message_id      INTEGER NOT NULL REFERENCES messages (id),
    decided_at      TEXT    NOT NULL,
    decision        TEXT    NOT NULL
                    CHECK (decision IN ('accepted', 'needs-review', 'not-accepted', 'incomplete')),
    -- 'rules' (the gateway's rule set) or 'override' (a KAD doctor through the API).
    source          TEXT    NOT NULL CHECK (source IN ('rules', 'override')),
    decided_by      TEXT,
    note            TEXT,
    ruleset_id      TEXT,
    ruleset_version TEXT,
    news2           INTEGER,
    rules_json      TEXT    NOT NULL,
    reasons_no_json TEXT    NOT NULL,
    reasons_en_json TEXT    NOT NULL
);
CREATE INDEX decisions_message ON decisions (message_id, id);

-- Where each referral was routed and why.
CREATE TABLE routes (
    id                  INTEGER PRIMARY KEY,
    message_id          INTEGER NOT NULL REFERENCES messages (id),
    routed_at           TEXT    NOT NULL,
    code                TEXT    NOT NULL,
    unit_key            TEXT,
    unit_name           TEXT,
    municipality        TEXT,
    municipality_source TEXT,
    full_unit           INTEGER NOT NULL DEFAULT 0,
    diverted_from       TEXT,
    reason_en           TEXT    NOT NULL,
    reason_no           TEXT    NOT NULL,
    -- 1 while the referral holds a bed at the unit (accepted and not discharged).
    holds_bed           INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX routes_message ON routes (message_id);
CREATE INDEX routes_unit_bed ON routes (unit_key, holds_bed);

-- One row per (message, purpose, recipient): what to send, to whom, and how far it got.
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY,
    message_id      INTEGER NOT NULL REFERENCES messages (id),
    -- 'referral', 'business-reply', later 'epicrisis' …; with a sequence number for repeats
    -- (a second business reply after an override).
    purpose         TEXT    NOT NULL,
    recipient_key   TEXT    NOT NULL,
    recipient_name  TEXT,
    -- Rows with the same order_key are delivered one at a time, in id order.
    order_key       TEXT    NOT NULL,
    destination     TEXT    NOT NULL,
    endpoint_json   TEXT,
    format          TEXT    NOT NULL,
    content_type    TEXT    NOT NULL,
    out_msg_id      TEXT    NOT NULL UNIQUE,
    state           TEXT    NOT NULL
                    CHECK (state IN ('pending', 'sent', 'acked', 'nacked', 'dead')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    created_at      TEXT    NOT NULL,
    created_ms      INTEGER NOT NULL,
    next_attempt_ms INTEGER NOT NULL,
    lease_owner     TEXT,
    lease_until_ms  INTEGER,
    last_error      TEXT,
    sent_ms         INTEGER,
    -- Milliseconds the recipient's receipt may take after delivery; then an alert.
    ack_within_ms   INTEGER NOT NULL,
    ack_deadline_ms INTEGER,
    acked_ms        INTEGER,
    ack_status      TEXT,
    ack_codes_json  TEXT,
    ack_message_id  INTEGER REFERENCES messages (id),
    dead_reason     TEXT,
    UNIQUE (message_id, purpose, recipient_key)
);
CREATE INDEX outbox_due ON outbox (state, next_attempt_ms);
CREATE INDEX outbox_order ON outbox (order_key, id);
CREATE INDEX outbox_ack_deadline ON outbox (state, ack_deadline_ms);
CREATE INDEX outbox_message ON outbox (message_id);

-- The encoded message of each outbox row, apart from the row: a row's state changes several times
-- (lease, attempt, receipt) and SQLite rewrites a whole row on every UPDATE, blob included; kept
-- here, the body is written once. (PostgreSQL keeps it in the row: its TOAST storage is not
-- rewritten when other columns change.)
CREATE TABLE outbox_bodies (
    outbox_id   INTEGER PRIMARY KEY REFERENCES outbox (id),
    body        BLOB    NOT NULL
);

-- Something a person must look at. `reason` never holds patient data.
CREATE TABLE alerts (
    id          INTEGER PRIMARY KEY,
    kind        TEXT    NOT NULL,
    unit_key    TEXT,
    reason      TEXT    NOT NULL,
    message_id  INTEGER REFERENCES messages (id),
    outbox_id   INTEGER REFERENCES outbox (id),
    raised_at   TEXT    NOT NULL,
    cleared_at  TEXT,
    -- One open alert per (kind, subject): raising it again is a no-op; cleared alerts set it
    -- to NULL, so the same trouble later raises a new alert.
    dedup_key   TEXT    UNIQUE
);
CREATE INDEX alerts_open ON alerts (cleared_at, id);

-- The units' own reports of free beds (the latest per unit).
CREATE TABLE unit_capacity (
    unit_key    TEXT    PRIMARY KEY,
    free_beds   INTEGER NOT NULL,
    reported_at TEXT    NOT NULL,
    reported_ms INTEGER NOT NULL
);
