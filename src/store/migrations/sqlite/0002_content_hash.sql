-- kadgate store schema, version 2: the SHA-256 of each message's raw bytes (hex), so that a resend
-- with a known message id can be told apart from a different message that reuses the id.
-- NULL for rows stored before version 2. PostgreSQL: the same statement.
ALTER TABLE messages ADD COLUMN content_sha256 TEXT;
