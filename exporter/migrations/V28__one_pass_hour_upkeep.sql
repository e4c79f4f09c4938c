-- The upkeep of an hour in one pass over its rows (issue #35: rollup lag). V15's read the hour
-- twice — once for the hourly rollups, looking up each row's session for its department and
-- client, once for the per-session hours — and a round recomputes the current hour whole every
-- 30 s, so under heavy ingest the round's time, and the lag, grows with the hour's rows. Now
-- the rows are grouped once per session and request dimensions; the hourly rollups are summed
-- from those groups, each group's session looked up once, and the per-session hours likewise.
-- Same figures (the rollup tests compare every one with the rows).
CREATE OR REPLACE FUNCTION archon_mcp_rollup_hour(p_hour timestamptz)
RETURNS void
LANGUAGE plpgsql
SET plan_cache_mode = force_custom_plan
SET jit = off
SET max_parallel_workers_per_gather = 0
AS $fn$
BEGIN
    DELETE FROM archon_mcp_rollup_hourly WHERE hour = p_hour;
    DELETE FROM archon_mcp_rollup_session_hourly WHERE hour = p_hour;
    WITH g AS (
        SELECT r.session_id, r.user_id, r.tool_name::text AS tool_name, r.model, r.status::text AS status,
               r.token_source::text AS token_source, archon_mcp_error_kind(r.status, r.error_type, r.error_code) AS error_kind,
               count(*) AS requests, sum(r.prompt_tokens) AS prompt_tokens, sum(r.completion_tokens) AS completion_tokens,
               sum(r.total_tokens) AS tokens, sum(r.estimated_cost) AS cost, count(r.estimated_cost) AS priced,
               sum(r.duration_ms) AS duration_sum, max(r.duration_ms) AS duration_max,
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
                     count(*) FILTER (WHERE r.duration_ms >= 60000)] AS buckets
          FROM archon_mcp_requests r
         WHERE r."timestamp" >= p_hour AND r."timestamp" < p_hour + interval '1 hour'
         GROUP BY 1, 2, 3, 4, 5, 6, 7
    ),
    hourly AS (
        INSERT INTO archon_mcp_rollup_hourly (hour, user_id, user_department, tool_name, client_type, model, status,
                                              token_source, requests, prompt_tokens, completion_tokens, cost,
                                              priced_requests, duration_ms_sum, latency_buckets, error_kind, duration_ms_max)
        SELECT p_hour, g.user_id, s.user_department, g.tool_name, s.client_type, g.model, g.status, g.token_source,
               sum(g.requests), sum(g.prompt_tokens), sum(g.completion_tokens), coalesce(sum(g.cost), 0),
               sum(g.priced), sum(g.duration_sum),
               ARRAY[sum(g.buckets[1]), sum(g.buckets[2]), sum(g.buckets[3]), sum(g.buckets[4]), sum(g.buckets[5]),
                     sum(g.buckets[6]), sum(g.buckets[7]), sum(g.buckets[8]), sum(g.buckets[9]), sum(g.buckets[10]),
                     sum(g.buckets[11]), sum(g.buckets[12]), sum(g.buckets[13]), sum(g.buckets[14]), sum(g.buckets[15]),
                     sum(g.buckets[16])]::integer[],
               g.error_kind, max(g.duration_max)
          FROM g JOIN archon_mcp_sessions s ON s.session_id = g.session_id
         GROUP BY g.user_id, s.user_department, g.tool_name, s.client_type, g.model, g.status, g.token_source, g.error_kind
    )
    INSERT INTO archon_mcp_rollup_session_hourly (hour, session_id, user_id, requests, tokens, model)
    SELECT p_hour, g.session_id, (array_agg(g.user_id) FILTER (WHERE g.user_id IS NOT NULL))[1], sum(g.requests),
           sum(g.tokens), max(g.model)
      FROM g
     GROUP BY g.session_id;
END;
$fn$;
