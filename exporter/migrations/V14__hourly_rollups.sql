-- Hourly rollups (issue #35, first part): requests summed per hour × user × department × tool
-- × client × model × status × token source, so questions over long windows read hours, not
-- rows. Exact: an hour is recomputed from the raw rows whenever a write touched it (the store
-- marks the hour dirty in the same transaction; the reaper rebuilds dirty hours every round),
-- and `archon_mcp_rollup_rebuild(from, to)` recomputes any range on demand.
--
-- Latency is kept as a histogram over fixed bounds, in milliseconds:
--   1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 30000, 60000, and above;
-- `latency_buckets[i]` counts the requests below bound i (the last, the rest). A percentile read
-- from it is the upper bound of its bucket: at most 2.5 × the true value, never below it.
CREATE TABLE archon_mcp_rollup_hourly (
    hour               timestamptz NOT NULL,
    user_id            uuid,
    user_department    text,
    tool_name          text,
    client_type        text,
    model              text,
    status             text NOT NULL,
    token_source       text NOT NULL,
    requests           bigint NOT NULL,
    prompt_tokens      bigint NOT NULL,
    completion_tokens  bigint NOT NULL,
    cost               numeric NOT NULL,
    priced_requests    bigint NOT NULL,
    duration_ms_sum    double precision NOT NULL,
    latency_buckets    integer[] NOT NULL
);
CREATE INDEX idx_archon_mcp_rollup_hourly_hour ON archon_mcp_rollup_hourly (hour);
COMMENT ON TABLE archon_mcp_rollup_hourly IS
    'Requests per hour x user x department x tool x client x model x status x token source: counts, tokens, cost, latency histogram; recomputed from the raw rows';

-- Hours a write touched since their rollup was last computed.
CREATE TABLE archon_mcp_rollup_dirty (hour timestamptz PRIMARY KEY);

CREATE FUNCTION archon_mcp_rollup_hour(p_hour timestamptz)
RETURNS void
LANGUAGE sql
AS $fn$
    DELETE FROM archon_mcp_rollup_hourly WHERE hour = p_hour;
    INSERT INTO archon_mcp_rollup_hourly
    SELECT p_hour, r.user_id, s.user_department, r.tool_name, s.client_type, r.model, r.status, r.token_source,
           count(*), sum(r.prompt_tokens), sum(r.completion_tokens), coalesce(sum(r.estimated_cost), 0),
           count(r.estimated_cost), sum(r.duration_ms),
           ARRAY[count(*) FILTER (WHERE r.duration_ms < 1),
                 count(*) FILTER (WHERE r.duration_ms >= 1 AND r.duration_ms < 2),
                 count(*) FILTER (WHERE r.duration_ms >= 2 AND r.duration_ms < 5),
                 count(*) FILTER (WHERE r.duration_ms >= 5 AND r.duration_ms < 10),
                 count(*) FILTER (WHERE r.duration_ms >= 10 AND r.duration_ms < 20),
                 count(*) FILTER (WHERE r.duration_ms >= 20 AND r.duration_ms < 50),
                 count(*) FILTER (WHERE r.duration_ms >= 50 AND r.duration_ms < 100),
                 count(*) FILTER (WHERE r.duration_ms >= 100 AND r.duration_ms < 200),
                 count(*) FILTER (WHERE r.duration_ms >= 200 AND r.duration_ms < 500),
                 count(*) FILTER (WHERE r.duration_ms >= 500 AND r.duration_ms < 1000),
                 count(*) FILTER (WHERE r.duration_ms >= 1000 AND r.duration_ms < 2000),
                 count(*) FILTER (WHERE r.duration_ms >= 2000 AND r.duration_ms < 5000),
                 count(*) FILTER (WHERE r.duration_ms >= 5000 AND r.duration_ms < 10000),
                 count(*) FILTER (WHERE r.duration_ms >= 10000 AND r.duration_ms < 30000),
                 count(*) FILTER (WHERE r.duration_ms >= 30000 AND r.duration_ms < 60000),
                 count(*) FILTER (WHERE r.duration_ms >= 60000)]::integer[]
      FROM archon_mcp_requests r
      JOIN archon_mcp_sessions s USING (session_id)
     WHERE r."timestamp" >= p_hour AND r."timestamp" < p_hour + interval '1 hour'
     GROUP BY r.user_id, s.user_department, r.tool_name, s.client_type, r.model, r.status, r.token_source;
$fn$;

-- Rebuilds the dirty hours, oldest first, at most p_limit of them; returns how many. The marks
-- are taken before the hours are read: a write committing meanwhile marks its hour again.
CREATE FUNCTION archon_mcp_rollup_refresh(p_limit integer DEFAULT 48)
RETURNS integer
LANGUAGE plpgsql
AS $fn$
DECLARE
    h timestamptz;
    n integer := 0;
BEGIN
    -- Replicas take turns: two rebuilds of one hour must not interleave.
    PERFORM pg_advisory_xact_lock(hashtext('archon_mcp_rollup'));
    FOR h IN
        DELETE FROM archon_mcp_rollup_dirty
         WHERE hour IN (SELECT d.hour FROM archon_mcp_rollup_dirty d ORDER BY d.hour LIMIT p_limit)
        RETURNING hour
    LOOP
        PERFORM archon_mcp_rollup_hour(h);
        n := n + 1;
    END LOOP;
    RETURN n;
END;
$fn$;

-- Recomputes every hour from p_from to p_to (both truncated to the hour, p_to's included).
CREATE FUNCTION archon_mcp_rollup_rebuild(p_from timestamptz, p_to timestamptz)
RETURNS integer
LANGUAGE plpgsql
AS $fn$
DECLARE
    h timestamptz := date_trunc('hour', p_from);
    n integer := 0;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('archon_mcp_rollup'));
    WHILE h <= date_trunc('hour', p_to) LOOP
        DELETE FROM archon_mcp_rollup_dirty WHERE hour = h;
        PERFORM archon_mcp_rollup_hour(h);
        h := h + interval '1 hour';
        n := n + 1;
    END LOOP;
    RETURN n;
END;
$fn$;

-- Readers see the rollups of their own user; the exporter and admins maintain them.
ALTER TABLE archon_mcp_rollup_hourly ENABLE ROW LEVEL SECURITY;
CREATE POLICY archon_mcp_rollup_writers ON archon_mcp_rollup_hourly
    FOR ALL TO archon_exporter, archon_admin USING (true) WITH CHECK (true);
CREATE POLICY archon_mcp_rollup_all ON archon_mcp_rollup_hourly FOR SELECT TO archon_grafana USING (true);
CREATE POLICY archon_mcp_rollup_own ON archon_mcp_rollup_hourly FOR SELECT TO archon_reader
    USING (user_id = (SELECT archon_current_user_id()));
GRANT SELECT, INSERT, DELETE ON archon_mcp_rollup_hourly, archon_mcp_rollup_dirty TO archon_exporter, archon_admin;
GRANT SELECT ON archon_mcp_rollup_hourly TO archon_grafana, archon_reader;
REVOKE EXECUTE ON FUNCTION archon_mcp_rollup_hour(timestamptz), archon_mcp_rollup_refresh(integer),
    archon_mcp_rollup_rebuild(timestamptz, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION archon_mcp_rollup_hour(timestamptz), archon_mcp_rollup_refresh(integer),
    archon_mcp_rollup_rebuild(timestamptz, timestamptz) TO archon_exporter, archon_admin;
