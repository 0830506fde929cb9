-- kadgate store schema, version 4 (PostgreSQL): stays, their link keys, the stay tracker's work
-- queue and the append-only audit log, as ../sqlite/0004_stays.sql.

CREATE TABLE stays (
    id                  BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    version             BIGINT  NOT NULL DEFAULT 1,
    patient_nin         TEXT,
    unit_key            TEXT,
    state               TEXT    NOT NULL,
    referral_message_id BIGINT  REFERENCES messages (id),
    epicrisis_due_ms    BIGINT,
    doc_json            TEXT    NOT NULL,
    created_ms          BIGINT  NOT NULL,
    updated_at          TEXT    NOT NULL
);
CREATE INDEX stays_patient ON stays (patient_nin, id);
CREATE INDEX stays_due ON stays (epicrisis_due_ms) WHERE epicrisis_due_ms IS NOT NULL;

CREATE TABLE stay_keys (
    key     TEXT    PRIMARY KEY,
    stay_id BIGINT  NOT NULL REFERENCES stays (id)
);

CREATE TABLE stay_work (
    id             BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id     BIGINT  NOT NULL UNIQUE REFERENCES messages (id),
    kind           TEXT    NOT NULL,
    patient_nin    TEXT,
    state          TEXT    NOT NULL CHECK (state IN ('pending', 'held', 'done')),
    attempts       BIGINT  NOT NULL DEFAULT 0,
    next_ms        BIGINT  NOT NULL,
    lease_owner    TEXT,
    lease_until_ms BIGINT,
    note           TEXT,
    created_ms     BIGINT  NOT NULL
);
CREATE INDEX stay_work_due ON stay_work (next_ms) WHERE state <> 'done';
CREATE INDEX stay_work_held ON stay_work (patient_nin) WHERE state = 'held';

CREATE TABLE audit_log (
    id      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at      TEXT NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    subject TEXT NOT NULL,
    detail  TEXT NOT NULL
);
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only';
END;
$$;
CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
