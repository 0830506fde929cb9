-- kadgate store schema, version 4: stays (referral → admission → discharge → epicrisis), the keys
-- messages are linked to them by, the stay tracker's work queue, and the append-only audit log of
-- reads of patient data. PostgreSQL: the same with BIGINT / BOOLEAN (see ../postgres/0004).

-- One row per stay. `doc_json` is the stay tracker's document (timeline, parties, epicrises and
-- where each went); the columns are what stays are found by. `version` is bumped by every write.
CREATE TABLE stays (
    id                  INTEGER PRIMARY KEY,
    version             INTEGER NOT NULL DEFAULT 1,
    patient_nin         TEXT,
    unit_key            TEXT,
    state               TEXT    NOT NULL,
    referral_message_id INTEGER REFERENCES messages (id),
    epicrisis_due_ms    INTEGER,
    doc_json            TEXT    NOT NULL,
    created_ms          INTEGER NOT NULL,
    updated_at          TEXT    NOT NULL
);
CREATE INDEX stays_patient ON stays (patient_nin, id);
CREATE INDEX stays_due ON stays (epicrisis_due_ms) WHERE epicrisis_due_ms IS NOT NULL;

-- Identifiers a later message may name its stay by (`id:<MsgId>`, `doc:<unit>:<document id>` …).
CREATE TABLE stay_keys (
    key     TEXT    PRIMARY KEY,
    stay_id INTEGER NOT NULL REFERENCES stays (id)
);

-- Messages from units waiting for the stay tracker: `pending` (to do), `held` (waiting for the
-- rest of the stay: re-checked at `next_ms` or when a message for the same patient arrives),
-- `done`.
CREATE TABLE stay_work (
    id             INTEGER PRIMARY KEY,
    message_id     INTEGER NOT NULL UNIQUE REFERENCES messages (id),
    kind           TEXT    NOT NULL,
    patient_nin    TEXT,
    state          TEXT    NOT NULL CHECK (state IN ('pending', 'held', 'done')),
    attempts       INTEGER NOT NULL DEFAULT 0,
    next_ms        INTEGER NOT NULL,
    lease_owner    TEXT,
    lease_until_ms INTEGER,
    note           TEXT,
    created_ms     INTEGER NOT NULL
);
CREATE INDEX stay_work_due ON stay_work (next_ms) WHERE state <> 'done';
CREATE INDEX stay_work_held ON stay_work (patient_nin) WHERE state = 'held';

-- Every read of patient data through the API or the CLI. Append-only.
CREATE TABLE audit_log (
    id      INTEGER PRIMARY KEY,
    at      TEXT NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    subject TEXT NOT NULL,
    detail  TEXT NOT NULL
);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
