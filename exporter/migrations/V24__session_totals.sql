-- Per-session totals (issue #35). `get_disconnected_sessions` and `get_user_sessions` give each
-- session's request count, all time; V15 summed it from the session's hours on every call — over
-- a year at 10 M requests, 280,000 hourly rows aggregated for 100,000 sessions (425 ms). A total
-- per session, recomputed whenever one of its hours is, answers with one row per session; the
-- hours marked since their rollup correct it from the raw rows, so the counts are the rows'.

CREATE TABLE archon_mcp_rollup_session_total (
    session_id  uuid PRIMARY KEY,
    user_id     uuid,
    hour        timestamptz NOT NULL,
    requests    bigint NOT NULL,
    tokens      bigint NOT NULL,
    model       text
);
COMMENT ON TABLE archon_mcp_rollup_session_total IS
    'Each session''s requests, tokens and (greatest) model over its rolled-up hours; recomputed with the hourly rollups';
COMMENT ON COLUMN archon_mcp_rollup_session_total.hour IS
    'The last hour the session made requests in (retention drops the total with the rollups of that hour)';

ALTER TABLE archon_mcp_rollup_session_total ENABLE ROW LEVEL SECURITY;
CREATE POLICY archon_mcp_rollup_session_total_writers ON archon_mcp_rollup_session_total
    FOR ALL TO archon_exporter, archon_admin USING (true) WITH CHECK (true);
CREATE POLICY archon_mcp_rollup_session_total_all ON archon_mcp_rollup_session_total
    FOR SELECT TO archon_grafana USING (true);
CREATE POLICY archon_mcp_rollup_session_total_own ON archon_mcp_rollup_session_total FOR SELECT TO archon_reader
    USING (user_id = (SELECT archon_current_user_id()));
GRANT SELECT, INSERT, DELETE ON archon_mcp_rollup_session_total TO archon_exporter, archon_admin;
GRANT SELECT ON archon_mcp_rollup_session_total TO archon_grafana, archon_reader;

-- `get_disconnected_sessions` and the sessions dashboard read a window of closed sessions by
-- their end (every session of history was scanned for a day's).
CREATE INDEX IF NOT EXISTS idx_archon_mcp_sessions_disconnected_at ON archon_mcp_sessions (disconnected_at DESC)
    WHERE disconnected_at IS NOT NULL;

-- Recomputes the totals of the given sessions from their hours.
CREATE FUNCTION archon_mcp_rollup_session_totals(p_sessions uuid[])
RETURNS void
LANGUAGE sql
AS $fn$
    DELETE FROM archon_mcp_rollup_session_total t WHERE t.session_id = ANY (p_sessions);
    INSERT INTO archon_mcp_rollup_session_total
    SELECT h.session_id, (array_agg(h.user_id) FILTER (WHERE h.user_id IS NOT NULL))[1], max(h.hour),
           sum(h.requests), sum(h.tokens), max(h.model)
      FROM archon_mcp_rollup_session_hourly h
     WHERE h.session_id = ANY (p_sessions)
     GROUP BY h.session_id;
$fn$;

-- The upkeep of a set of hours, for the reaper's rounds and the rebuilds alike: each hour, then
-- their days, then the totals of every session the hours held before or hold now.
CREATE FUNCTION archon_mcp_rollup_hours(p_hours timestamptz[])
RETURNS void
LANGUAGE plpgsql
AS $fn$
DECLARE
    h timestamptz;
    sessions uuid[] := ARRAY(SELECT DISTINCT s.session_id FROM archon_mcp_rollup_session_hourly s WHERE s.hour = ANY (p_hours));
BEGIN
    FOREACH h IN ARRAY p_hours LOOP
        PERFORM archon_mcp_rollup_hour(h);
    END LOOP;
    PERFORM archon_mcp_rollup_days(ARRAY(SELECT DISTINCT date_trunc('day', x, 'UTC') FROM unnest(p_hours) AS x));
    PERFORM archon_mcp_rollup_session_totals(ARRAY(
        SELECT unnest(sessions)
        UNION
        SELECT s.session_id FROM archon_mcp_rollup_session_hourly s WHERE s.hour = ANY (p_hours)));
END;
$fn$;

CREATE OR REPLACE FUNCTION archon_mcp_rollup_refresh(p_limit integer DEFAULT 48)
RETURNS integer
LANGUAGE plpgsql
AS $fn$
DECLARE
    hours timestamptz[];
BEGIN
    -- Replicas take turns: two rebuilds of one hour must not interleave.
    PERFORM pg_advisory_xact_lock(hashtext('archon_mcp_rollup'));
    WITH taken AS (
        DELETE FROM archon_mcp_rollup_dirty
         WHERE hour IN (SELECT d.hour FROM archon_mcp_rollup_dirty d ORDER BY d.hour LIMIT p_limit)
        RETURNING hour
    )
    SELECT coalesce(array_agg(t.hour ORDER BY t.hour), '{}') INTO hours FROM taken t;
    PERFORM archon_mcp_rollup_hours(hours);
    RETURN cardinality(hours);
END;
$fn$;

-- As V17's: never before the oldest raw row (retention keeps the rollups of dropped months).
CREATE OR REPLACE FUNCTION archon_mcp_rollup_rebuild(p_from timestamptz, p_to timestamptz)
RETURNS integer
LANGUAGE plpgsql
SET plan_cache_mode = force_custom_plan
AS $fn$
DECLARE
    first timestamptz := greatest(date_trunc('hour', p_from, 'UTC'),
                                  date_trunc('hour', (SELECT min(r."timestamp") FROM archon_mcp_requests r), 'UTC'));
    hours timestamptz[] := ARRAY(SELECT generate_series(first, date_trunc('hour', p_to, 'UTC'), interval '1 hour'));
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('archon_mcp_rollup'));
    DELETE FROM archon_mcp_rollup_dirty WHERE hour = ANY (hours);
    PERFORM archon_mcp_rollup_hours(hours);
    RETURN cardinality(hours);
END;
$fn$;

-- What the hours marked since their rollup change in each session's total: their rolled-up
-- requests and tokens out, their rows in, and the greatest model of those rows (a model only
-- a rewritten row had stays until the next round). Empty when the rollups are current; a few
-- sessions of the current hour in steady state (ROWS says so, or callers merge with it by
-- walking an index).
CREATE FUNCTION archon_mcp_session_total_changes()
RETURNS TABLE (session_id uuid, requests bigint, tokens bigint, model text)
LANGUAGE plpgsql
STABLE
ROWS 10
SET jit = off
SET max_parallel_workers_per_gather = 0
AS $fn$
BEGIN
    RETURN QUERY
    -- Each marked hour once (V26 lets a mark be several rows).
    WITH marked AS (SELECT DISTINCT m.hour FROM archon_mcp_rollup_dirty m)
    SELECT x.session_id, sum(x.n)::bigint, sum(x.t)::bigint, max(x.m)
      FROM (SELECT h.session_id, -h.requests AS n, -h.tokens AS t, NULL::text AS m
              FROM marked d
              JOIN archon_mcp_rollup_session_hourly h ON h.hour = d.hour
            UNION ALL
            SELECT r.session_id, 1, r.total_tokens, r.model
              FROM marked d
              JOIN archon_mcp_requests r ON r."timestamp" >= d.hour AND r."timestamp" < d.hour + interval '1 hour') x
     GROUP BY x.session_id;
END;
$fn$;

-- The two session lists of the Archon SQL API on the totals: the same names, signatures and
-- figures. Planned per call, with random reads priced as the in-memory reads they are: a short
-- window probes the totals session by session, a long one hashes them once — the totals grow
-- with history, so a short window must not read them all (at 100,000 sessions: 7 days 19 →
-- 9 ms, a year 425 → 125–155 ms).
DROP FUNCTION IF EXISTS archon_mcp_session_requests(uuid[]);

CREATE OR REPLACE FUNCTION get_disconnected_sessions(
    start_date timestamptz DEFAULT now() - interval '7 days',
    end_date timestamptz DEFAULT now()
)
RETURNS TABLE (
    session_id uuid,
    client_type varchar,
    client_version varchar,
    connected_at timestamptz,
    disconnected_at timestamptz,
    total_duration integer,
    disconnect_reason varchar,
    total_requests bigint
)
LANGUAGE plpgsql
STABLE
SET plan_cache_mode = force_custom_plan
SET random_page_cost = 1.1
SET jit = off
SET max_parallel_workers_per_gather = 0
SET work_mem = '32MB' -- a year's 100,000 sessions sorted in memory, not on disk
AS $fn$
BEGIN
    RETURN QUERY
    SELECT s.session_id, s.client_type, s.client_version, s.connected_at, s.disconnected_at,
           s.total_duration, s.disconnect_reason, coalesce(t.requests, 0) + coalesce(c.requests, 0)
      FROM archon_mcp_sessions s
      LEFT JOIN archon_mcp_rollup_session_total t ON t.session_id = s.session_id
      LEFT JOIN archon_mcp_session_total_changes() c ON c.session_id = s.session_id
     WHERE s.status = 'disconnected' AND s.disconnected_at BETWEEN start_date AND end_date
     ORDER BY s.disconnected_at DESC;
END;
$fn$;

CREATE OR REPLACE FUNCTION get_user_sessions(
    p_user_id uuid,
    start_date timestamptz DEFAULT now() - interval '30 days',
    end_date timestamptz DEFAULT now()
)
RETURNS TABLE (
    session_id uuid,
    client_type varchar,
    client_version varchar,
    connected_at timestamptz,
    disconnected_at timestamptz,
    total_duration integer,
    status varchar,
    disconnect_reason varchar,
    total_requests bigint
)
LANGUAGE plpgsql
STABLE
SET plan_cache_mode = force_custom_plan
SET random_page_cost = 1.1
SET jit = off
SET max_parallel_workers_per_gather = 0
AS $fn$
BEGIN
    RETURN QUERY
    SELECT s.session_id, s.client_type, s.client_version, s.connected_at, s.disconnected_at,
           s.total_duration, s.status, s.disconnect_reason, coalesce(t.requests, 0) + coalesce(c.requests, 0)
      FROM archon_mcp_sessions s
      LEFT JOIN archon_mcp_rollup_session_total t ON t.session_id = s.session_id
      LEFT JOIN archon_mcp_session_total_changes() c ON c.session_id = s.session_id
     WHERE s.user_id = p_user_id AND s.connected_at BETWEEN start_date AND end_date
     ORDER BY s.connected_at DESC;
END;
$fn$;

-- The totals of the sessions' hours rolled up so far.
INSERT INTO archon_mcp_rollup_session_total
SELECT h.session_id, (array_agg(h.user_id) FILTER (WHERE h.user_id IS NOT NULL))[1], max(h.hour),
       sum(h.requests), sum(h.tokens), max(h.model)
  FROM archon_mcp_rollup_session_hourly h
 GROUP BY h.session_id;
