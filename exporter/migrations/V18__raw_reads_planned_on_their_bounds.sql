-- The raw reads behind the rollups, planned on their bounds (issue #35). The readers take the
-- ragged ends of a range and the hours marked since their rollup from the rows, through three
-- SQL functions. PostgreSQL plans a SQL function's body once, with its arguments unknown: it
-- guessed 0.5 % of the table for any time range — 50,000 rows at 10 M, for a gap of a few
-- hundred — and chose to hash every session to look up each row's department and client, a
-- cost that grew with the sessions table (about 50 ms at 100,000 sessions, paid once per gap
-- in every panel). As PL/pgSQL with `plan_cache_mode = force_custom_plan`, each call is planned
-- with its bounds as constants: the estimate is the gap's, one partition is planned, and each
-- row's session is looked up by its key. Same results, same names and signatures. Without
-- parallel workers: a gap is small by design, and starting one costs more (about 20 ms here)
-- than reading it.

CREATE OR REPLACE FUNCTION archon_mcp_rollup_rows(p_from timestamptz, p_to timestamptz)
RETURNS SETOF archon_mcp_rollup_hourly
LANGUAGE plpgsql
STABLE
SET plan_cache_mode = force_custom_plan
SET jit = off
SET max_parallel_workers_per_gather = 0
AS $fn$
BEGIN
    RETURN QUERY
    -- Cast to the rollup's types: PL/pgSQL returns rows without coercing them.
    SELECT date_trunc('hour', r."timestamp", 'UTC'), r.user_id, s.user_department, r.tool_name::text,
           s.client_type::text, r.model, r.status::text, r.token_source::text,
           count(*), sum(r.prompt_tokens)::bigint, sum(r.completion_tokens)::bigint, coalesce(sum(r.estimated_cost), 0),
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
                 count(*) FILTER (WHERE r.duration_ms >= 60000)]::integer[],
           archon_mcp_error_kind(r.status, r.error_type, r.error_code), max(r.duration_ms)
      FROM archon_mcp_requests r
      CROSS JOIN LATERAL (SELECT s.user_department, s.client_type
                            FROM archon_mcp_sessions s WHERE s.session_id = r.session_id) s
     WHERE r."timestamp" >= p_from AND r."timestamp" < p_to
     GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 16;
END;
$fn$;

CREATE OR REPLACE FUNCTION archon_mcp_rollup_session_rows(p_from timestamptz, p_to timestamptz)
RETURNS SETOF archon_mcp_rollup_session_hourly
LANGUAGE plpgsql
STABLE
SET plan_cache_mode = force_custom_plan
SET jit = off
SET max_parallel_workers_per_gather = 0
AS $fn$
BEGIN
    RETURN QUERY
    SELECT date_trunc('hour', r."timestamp", 'UTC'), r.session_id,
           (array_agg(r.user_id) FILTER (WHERE r.user_id IS NOT NULL))[1], count(*), sum(r.total_tokens)::bigint, max(r.model)
      FROM archon_mcp_requests r
     WHERE r."timestamp" >= p_from AND r."timestamp" < p_to
     GROUP BY 1, 2;
END;
$fn$;

-- The scope is a constant too, so the plan keeps only its own condition (an index on the tool,
-- a keyed session lookup) instead of a CASE over all six.
CREATE OR REPLACE FUNCTION archon_budget_requests(p_scope text, p_value text, p_from timestamptz, p_to timestamptz)
RETURNS SETOF archon_mcp_requests
LANGUAGE plpgsql
STABLE
SET plan_cache_mode = force_custom_plan
SET jit = off
SET max_parallel_workers_per_gather = 0
AS $fn$
BEGIN
    RETURN QUERY
    SELECT r.*
      FROM archon_mcp_requests r
      JOIN archon_mcp_sessions s ON s.session_id = r.session_id
     WHERE r."timestamp" >= p_from AND r."timestamp" < p_to
       AND CASE p_scope
             WHEN 'all' THEN true
             WHEN 'anonymous' THEN r.user_id IS NULL
             WHEN 'user' THEN s.user_key = p_value AND r.user_id = s.user_id
             WHEN 'department' THEN s.user_department = p_value AND r.user_id = s.user_id
             WHEN 'tool' THEN r.tool_name = p_value
             WHEN 'client_type' THEN s.client_type = p_value
           END;
END;
$fn$;

-- The rebuild finds the oldest raw row of its range the same way.
ALTER FUNCTION archon_mcp_rollup_rebuild(timestamptz, timestamptz) SET plan_cache_mode = force_custom_plan;

-- The requests of a set of sessions (the session functions' counts), planned on the set: with
-- the array unknown the planner assumed ten sessions and probed the per-session hours once per
-- session — 100,000 probes for a year's disconnected sessions — where a hash join reads them once.
CREATE OR REPLACE FUNCTION archon_mcp_session_requests(p_sessions uuid[])
RETURNS TABLE (session_id uuid, requests bigint)
LANGUAGE plpgsql
STABLE
SET plan_cache_mode = force_custom_plan
SET jit = off
SET max_parallel_workers_per_gather = 0
AS $fn$
BEGIN
    RETURN QUERY
    SELECT x.session_id, sum(x.n)::bigint
      FROM (SELECT h.session_id, h.requests AS n
              FROM unnest(p_sessions) AS p(session_id)
              JOIN archon_mcp_rollup_session_hourly h USING (session_id)
             WHERE NOT EXISTS (SELECT 1 FROM archon_mcp_rollup_dirty d WHERE d.hour = h.hour)
            UNION ALL
            SELECT r.session_id, 1
              FROM archon_mcp_rollup_dirty d
              JOIN archon_mcp_requests r ON r."timestamp" >= d.hour AND r."timestamp" < d.hour + interval '1 hour'
              JOIN unnest(p_sessions) AS p(session_id) USING (session_id)) x
     GROUP BY x.session_id;
END;
$fn$;

-- The partition functions read the requests' catalog, not their rows, but are held to the same
-- rule (the catalog test checks every function that names the table and takes arguments).
ALTER FUNCTION archon_mcp_create_request_partitions(integer, date) SET plan_cache_mode = force_custom_plan;
ALTER FUNCTION archon_mcp_drop_request_partitions(interval, boolean) SET plan_cache_mode = force_custom_plan;
