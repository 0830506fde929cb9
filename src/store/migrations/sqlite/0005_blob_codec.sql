-- kadgate store schema, version 5: a message as received and an outbox body may be kept
-- compressed. The codec column says how: NULL = the bytes as they are, 'zstd' = one zstd frame.
-- (PostgreSQL compresses large values itself, so its schema has no such column.)
ALTER TABLE messages ADD COLUMN raw_codec TEXT;
ALTER TABLE outbox_bodies ADD COLUMN codec TEXT;
