-- Budgets on the per-user days (issue #35). A budget's month was read from the hourly rollups,
-- about 250,000 rows at ten million requests a year, once per budget in force. The per-user
-- days hold what every scope but `client_type` asks (user, department, tool), thirty times
-- fewer rows: `archon_budget_usage` takes a range's whole clean UTC days from them and the rest
-- — ragged ends, days with an hour marked since — from `archon_budget_hours` (hourly rollups and
-- rows). A `client_type` budget reads the hours throughout (the days have no client). Same
-- figures as the rows either way; row-level security holds on every source.

CREATE FUNCTION archon_budget_usage(p_scope text, p_value text, p_from timestamptz, p_to timestamptz)
RETURNS TABLE ("at" timestamptz, user_id uuid, tool_name text, requests bigint, cost numeric)
LANGUAGE sql
STABLE
SET jit = off
AS $fn$
    WITH subject AS (
        SELECT s.user_id FROM archon_mcp_sessions s WHERE p_scope = 'user' AND s.user_key = p_value LIMIT 1
    )
    SELECT u.day, u.user_id, u.tool_name, sum(u.requests)::bigint, sum(u.cost)
      FROM archon_mcp_rollup_day_span(p_from, p_to) b, archon_mcp_rollup_daily_user u
     WHERE p_scope <> 'client_type'
       AND u.day >= b.lo AND u.day < b.hi -- A day with an hour marked since its rollup is read from the hours.
       AND NOT EXISTS (SELECT 1 FROM archon_mcp_rollup_dirty d
                        WHERE d.hour >= u.day AND d.hour < u.day + interval '24 hours')
       AND CASE p_scope
             WHEN 'all' THEN true
             WHEN 'anonymous' THEN u.user_id IS NULL
             -- A request's user is its session's or none (never another's): see V10.
             WHEN 'user' THEN u.user_id = (SELECT user_id FROM subject)
             WHEN 'department' THEN u.user_department = p_value AND u.user_id IS NOT NULL
             WHEN 'tool' THEN u.tool_name = p_value
           END
     GROUP BY 1, 2, 3
    UNION ALL
    SELECT h.hour, h.user_id, h.tool_name, h.requests, h.cost
      FROM (SELECT g.lo, g.hi FROM archon_mcp_rollup_day_gaps(p_from, p_to) g WHERE p_scope <> 'client_type'
            UNION ALL
            SELECT p_from, p_to WHERE p_scope = 'client_type') g,
           LATERAL archon_budget_hours(p_scope, p_value, g.lo, g.hi) h
$fn$;
COMMENT ON FUNCTION archon_budget_usage(text, text, timestamptz, timestamptz) IS
    'A budget''s requests and cost per user and tool: per UTC day ("at") for whole days rolled up, per hour elsewhere';

CREATE OR REPLACE FUNCTION archon_budget_spend(p_scope text, p_value text, p_from timestamptz, p_to timestamptz)
RETURNS TABLE (spend numeric, requests bigint)
LANGUAGE sql
STABLE
SET jit = off
AS $fn$
    SELECT coalesce(sum(u.cost), 0), coalesce(sum(u.requests), 0)::bigint
      FROM archon_budget_usage(p_scope, p_value, p_from, p_to) u
$fn$;
