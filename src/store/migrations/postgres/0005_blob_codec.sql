-- kadgate store schema, version 5. SQLite's version 5 adds codec columns so that it can keep
-- large blobs compressed; PostgreSQL compresses large values itself (TOAST), so nothing changes
-- here. The version exists so that both engines number their schemas alike.
SELECT 1;
