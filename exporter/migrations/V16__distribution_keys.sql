-- Keys a distributed PostgreSQL can keep (issue #35): Citus distributes a table by one column
-- and can enforce only the unique keys that contain it. Sessions and requests distribute by
-- `session_id` (every write of the exporter touches one session's rows, so it routes to one
-- shard), so the requests' primary key gains it: (session_id, request_id, "timestamp"), the
-- partition key last, as before. A replayed span carries the same session, so `ON CONFLICT DO
-- NOTHING` still stores it once. docs/scaling.md gives the commands.
DO $$
DECLARE
    pk text;
BEGIN
    SELECT conname INTO pk FROM pg_constraint WHERE conrelid = 'archon_mcp_requests'::regclass AND contype = 'p';
    IF pk IS NOT NULL THEN
        EXECUTE format('ALTER TABLE archon_mcp_requests DROP CONSTRAINT %I', pk);
    END IF;
END
$$;
ALTER TABLE archon_mcp_requests ADD PRIMARY KEY (session_id, request_id, "timestamp");
