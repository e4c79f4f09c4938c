-- Hourly rollups (issue #35, first part): requests summed per hour × user × department × tool
-- × client × model × status × token source, so questions over long windows read hours, not
-- rows. Exact: an hour is recomputed from the raw rows whenever a write touched it (triggers
-- mark the hours of every insert, update and delete — whoever writes — and of a session whose
-- department or client type changed; the reaper rebuilds the marked hours every round),
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

-- The triggers fire inside SECURITY DEFINER functions too (retention, with a search_path of
-- pg_catalog only): they resolve the product's tables by the schema this migration ran in.
CREATE FUNCTION archon_mcp_rollup_mark() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
BEGIN
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO archon_mcp_rollup_dirty (hour)
        SELECT DISTINCT date_trunc('hour', n."timestamp") FROM new_rows n
        ON CONFLICT DO NOTHING;
    END IF;
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        INSERT INTO archon_mcp_rollup_dirty (hour)
        SELECT DISTINCT date_trunc('hour', o."timestamp") FROM old_rows o
        ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END;
$fn$;
CREATE TRIGGER archon_mcp_rollup_mark_insert AFTER INSERT ON archon_mcp_requests
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION archon_mcp_rollup_mark();
CREATE TRIGGER archon_mcp_rollup_mark_update AFTER UPDATE ON archon_mcp_requests
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION archon_mcp_rollup_mark();
CREATE TRIGGER archon_mcp_rollup_mark_delete AFTER DELETE ON archon_mcp_requests
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION archon_mcp_rollup_mark();

-- A session's department and client type are dimensions of its requests' rollups.
CREATE FUNCTION archon_mcp_rollup_mark_session() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
BEGIN
    INSERT INTO archon_mcp_rollup_dirty (hour)
    SELECT DISTINCT date_trunc('hour', r."timestamp") FROM archon_mcp_requests r WHERE r.session_id = NEW.session_id
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END;
$fn$;
CREATE TRIGGER archon_mcp_rollup_mark_session AFTER UPDATE OF user_department, client_type ON archon_mcp_sessions
    FOR EACH ROW WHEN (OLD.user_department IS DISTINCT FROM NEW.user_department OR OLD.client_type IS DISTINCT FROM NEW.client_type)
    EXECUTE FUNCTION archon_mcp_rollup_mark_session();

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
GRANT SELECT ON archon_mcp_rollup_hourly, archon_mcp_rollup_dirty TO archon_grafana, archon_reader;
GRANT INSERT ON archon_mcp_rollup_dirty TO archon_exporter, archon_admin;
REVOKE EXECUTE ON FUNCTION archon_mcp_rollup_hour(timestamptz), archon_mcp_rollup_refresh(integer),
    archon_mcp_rollup_rebuild(timestamptz, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION archon_mcp_rollup_hour(timestamptz), archon_mcp_rollup_refresh(integer),
    archon_mcp_rollup_rebuild(timestamptz, timestamptz) TO archon_exporter, archon_admin;

-- The hours already stored are rolled up by the reaper, oldest first; until then they are read
-- from the rows.
INSERT INTO archon_mcp_rollup_dirty (hour)
SELECT DISTINCT date_trunc('hour', "timestamp") FROM archon_mcp_requests
ON CONFLICT DO NOTHING;

-- A budget's requests and cost per hour, user and tool: from the rollups for the whole hours that
-- are rolled up, from the rows for the rest — the ragged ends of the range and the hours written
-- since their last rollup. The same figures either way; fast once most hours are rolled up.
CREATE FUNCTION archon_budget_hours(p_scope text, p_value text, p_from timestamptz, p_to timestamptz)
RETURNS TABLE (hour timestamptz, user_id uuid, tool_name text, requests bigint, cost numeric)
LANGUAGE sql
STABLE
SET jit = off
AS $fn$
    WITH first_hour AS (
        SELECT least(CASE WHEN date_trunc('hour', p_from) = p_from THEN p_from
                          ELSE date_trunc('hour', p_from) + interval '1 hour' END, p_to) AS lo
    ),
    bounds AS (
        SELECT f.lo, greatest(date_trunc('hour', p_to), f.lo) AS hi FROM first_hour f
    ),
    subject AS (
        SELECT s.user_id FROM archon_mcp_sessions s WHERE p_scope = 'user' AND s.user_key = p_value LIMIT 1
    ),
    raw AS (
        SELECT r."timestamp", r.user_id, r.tool_name, r.estimated_cost
          FROM bounds b, LATERAL archon_budget_requests(p_scope, p_value, p_from, b.lo) r
        UNION ALL
        SELECT r."timestamp", r.user_id, r.tool_name, r.estimated_cost
          FROM bounds b, LATERAL archon_budget_requests(p_scope, p_value, b.hi, p_to) r
        UNION ALL
        SELECT r."timestamp", r.user_id, r.tool_name, r.estimated_cost
          FROM bounds b
          JOIN archon_mcp_rollup_dirty d ON d.hour >= b.lo AND d.hour < b.hi,
               LATERAL archon_budget_requests(p_scope, p_value, d.hour, d.hour + interval '1 hour') r
    )
    SELECT h.hour, h.user_id, h.tool_name, sum(h.requests)::bigint, sum(h.cost)
      FROM archon_mcp_rollup_hourly h, bounds b
     WHERE h.hour >= b.lo AND h.hour < b.hi
       AND NOT EXISTS (SELECT 1 FROM archon_mcp_rollup_dirty d WHERE d.hour = h.hour)
       AND CASE p_scope
             WHEN 'all' THEN true
             WHEN 'anonymous' THEN h.user_id IS NULL
             -- A request's user is its session's or none (never another's): see V10.
             WHEN 'user' THEN h.user_id = (SELECT user_id FROM subject)
             WHEN 'department' THEN h.user_department = p_value AND h.user_id IS NOT NULL
             WHEN 'tool' THEN h.tool_name = p_value
             WHEN 'client_type' THEN h.client_type = p_value
           END
     GROUP BY 1, 2, 3
    UNION ALL
    SELECT date_trunc('hour', q."timestamp"), q.user_id, q.tool_name, count(*), coalesce(sum(q.estimated_cost), 0)
      FROM raw q
     GROUP BY 1, 2, 3
$fn$;

COMMENT ON FUNCTION archon_budget_hours(text, text, timestamptz, timestamptz) IS
    'A budget''s requests and cost per hour, user and tool, from the hourly rollups where an hour is rolled up and from the rows elsewhere';

CREATE OR REPLACE FUNCTION archon_budget_spend(p_scope text, p_value text, p_from timestamptz, p_to timestamptz)
RETURNS TABLE (spend numeric, requests bigint)
LANGUAGE sql
STABLE
SET jit = off
AS $fn$
    SELECT coalesce(sum(h.cost), 0), coalesce(sum(h.requests), 0)::bigint
      FROM archon_budget_hours(p_scope, p_value, p_from, p_to) h
$fn$;
