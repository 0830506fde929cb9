-- kadgate store schema, version 3 (PostgreSQL): admission decisions, routing choices, the outbox,
-- alerts and the units' own capacity reports, as ../sqlite/0003_outbox.sql. Times that are
-- compared (due, lease, deadline) are BIGINT milliseconds since the Unix epoch; times only shown
-- are RFC 3339 text. Flags are BOOLEAN here (0/1 integers in SQLite).

-- Every decision on a referral, the gateway's and each override, in order; the latest is current.
CREATE TABLE decisions (
    id              BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id      BIGINT  NOT NULL REFERENCES messages (id),
    decided_at      TEXT    NOT NULL,
    decision        TEXT    NOT NULL
                    CHECK (decision IN ('accepted', 'needs-review', 'not-accepted', 'incomplete')),
    -- 'rules' (the gateway's rule set) or 'override' (a KAD doctor through the API).
    source          TEXT    NOT NULL CHECK (source IN ('rules', 'override')),
    decided_by      TEXT,
    note            TEXT,
    ruleset_id      TEXT,
    ruleset_version TEXT,
    news2           BIGINT,
    rules_json      TEXT    NOT NULL,
    reasons_no_json TEXT    NOT NULL,
    reasons_en_json TEXT    NOT NULL
);
CREATE INDEX decisions_message ON decisions (message_id, id);

-- Where each referral was routed and why.
CREATE TABLE routes (
    id                  BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id          BIGINT  NOT NULL REFERENCES messages (id),
    routed_at           TEXT    NOT NULL,
    code                TEXT    NOT NULL,
    unit_key            TEXT,
    unit_name           TEXT,
    municipality        TEXT,
    municipality_source TEXT,
    full_unit           BOOLEAN NOT NULL DEFAULT FALSE,
    diverted_from       TEXT,
    reason_en           TEXT    NOT NULL,
    reason_no           TEXT    NOT NULL,
    -- TRUE while the referral holds a bed at the unit (accepted and not discharged).
    holds_bed           BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX routes_message ON routes (message_id);
CREATE INDEX routes_unit_bed ON routes (unit_key, holds_bed);

-- One row per (message, purpose, recipient): what to send, to whom, and how far it got.
CREATE TABLE outbox (
    id              BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id      BIGINT  NOT NULL REFERENCES messages (id),
    -- 'referral', 'business-reply', later 'epicrisis' …; with a sequence number for repeats
    -- (a second business reply after an override).
    purpose         TEXT    NOT NULL,
    recipient_key   TEXT    NOT NULL,
    recipient_name  TEXT,
    -- Rows with the same order_key are delivered one at a time, in id order. Inserts of one key
    -- are serialised by a transaction-scoped advisory lock, so ids follow commit order per key.
    order_key       TEXT    NOT NULL,
    destination     TEXT    NOT NULL,
    endpoint_json   TEXT,
    format          TEXT    NOT NULL,
    content_type    TEXT    NOT NULL,
    body            BYTEA   NOT NULL,
    out_msg_id      TEXT    NOT NULL UNIQUE,
    state           TEXT    NOT NULL
                    CHECK (state IN ('pending', 'sent', 'acked', 'nacked', 'dead')),
    attempts        BIGINT  NOT NULL DEFAULT 0,
    created_at      TEXT    NOT NULL,
    created_ms      BIGINT  NOT NULL,
    next_attempt_ms BIGINT  NOT NULL,
    -- The worker holding the row (leased with SELECT … FOR UPDATE SKIP LOCKED) and until when.
    lease_owner     TEXT,
    lease_until_ms  BIGINT,
    last_error      TEXT,
    sent_ms         BIGINT,
    -- Milliseconds the recipient's receipt may take after delivery; then an alert.
    ack_within_ms   BIGINT  NOT NULL,
    ack_deadline_ms BIGINT,
    acked_ms        BIGINT,
    ack_status      TEXT,
    ack_codes_json  TEXT,
    ack_message_id  BIGINT  REFERENCES messages (id),
    dead_reason     TEXT,
    UNIQUE (message_id, purpose, recipient_key)
);
CREATE INDEX outbox_due ON outbox (state, next_attempt_ms);
CREATE INDEX outbox_order ON outbox (order_key, id);
CREATE INDEX outbox_ack_deadline ON outbox (state, ack_deadline_ms);
CREATE INDEX outbox_message ON outbox (message_id);

-- Something a person must look at. `reason` never holds patient data.
CREATE TABLE alerts (
    id          BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind        TEXT    NOT NULL,
    unit_key    TEXT,
    reason      TEXT    NOT NULL,
    message_id  BIGINT  REFERENCES messages (id),
    outbox_id   BIGINT  REFERENCES outbox (id),
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
    free_beds   BIGINT  NOT NULL,
    reported_at TEXT    NOT NULL,
    reported_ms BIGINT  NOT NULL
);
