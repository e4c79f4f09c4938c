-- Retention: drop whole request partitions older than a cutoff (cheap, no vacuum debt), delete
-- the default partition's rows before it, and the ended sessions that have no requests left.
-- Returns the partitions it dropped (or would drop, with dry_run).
CREATE FUNCTION archon_mcp_drop_request_partitions(keep interval, dry_run boolean DEFAULT false)
RETURNS SETOF text
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path FROM CURRENT
AS $fn$
DECLARE
    cutoff timestamptz := now() - keep;
    part record;
    upper_bound timestamptz;
BEGIN
    -- The same lock as partition creation: one DDL round at a time across replicas.
    PERFORM pg_advisory_xact_lock(hashtext('archon_mcp_create_request_partitions'));
    FOR part IN
        SELECT c.oid::regclass::text AS name, pg_get_expr(c.relpartbound, c.oid) AS bound
          FROM pg_inherits i
          JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = 'archon_mcp_requests'::regclass
         ORDER BY 1
    LOOP
        CONTINUE WHEN part.bound = 'DEFAULT';
        upper_bound := substring(part.bound FROM 'TO \(''([^'']+)''\)')::timestamptz;
        IF upper_bound <= cutoff THEN
            IF NOT dry_run THEN
                EXECUTE format('DROP TABLE %s', part.name);
            END IF;
            RETURN NEXT part.name;
        END IF;
    END LOOP;
    IF NOT dry_run THEN
        DELETE FROM archon_mcp_requests_default WHERE "timestamp" < cutoff;
        DELETE FROM archon_mcp_sessions s
         WHERE coalesce(s.disconnected_at, s.last_activity) < cutoff
           AND NOT EXISTS (SELECT 1 FROM archon_mcp_requests r WHERE r.session_id = s.session_id);
    END IF;
END;
$fn$;

COMMENT ON FUNCTION archon_mcp_drop_request_partitions(interval, boolean) IS
    'Drops request partitions that end before now() - keep, and older rows and empty ended sessions';

REVOKE EXECUTE ON FUNCTION archon_mcp_drop_request_partitions(interval, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION archon_mcp_drop_request_partitions(interval, boolean) TO archon_admin;
