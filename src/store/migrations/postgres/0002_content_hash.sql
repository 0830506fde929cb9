-- kadgate store schema, version 2 (PostgreSQL): the SHA-256 of each message's raw bytes (hex), as
-- ../sqlite/0002_content_hash.sql. NULL for rows stored before version 2.
ALTER TABLE messages ADD COLUMN content_sha256 TEXT;
