-- The per-user and budget readers inline into their callers (issue #35).
-- `archon_mcp_usage_by_user`, `archon_budget_hours` and `archon_budget_usage` are single SQL
-- statements, which PostgreSQL folds into the query that calls them — planned with the caller's
-- bounds, streaming their rows — unless a function carries a `SET` or returns a single row.
-- Theirs carried `jit = off`, so each call was planned apart with its bounds unknown and wrote
-- every row to a temporary store first. Measured at 10 M rows over a year (panel_bench):
-- `get_user_activity_summary` 80 → 26 ms, `get_mcp_usage_summary` 271 → 215 ms, the budget
-- panels and rules a third faster. JIT stays off where it mattered: the raw reads (V18) and the
-- Archon API functions keep their settings, and the dashboards' login runs without JIT
-- (dashboards/grafana-role.sql).
--
-- Left as calls of their own, measured: `archon_mcp_usage_hours` and `_sessions` (inlined, the
-- one-day panels took 20 ms instead of 7 and "Client types" over a year 825 instead of 486 — the
-- caller's plan around them got worse), and `archon_mcp_usage_by_tool` (inlined, its per-tool
-- days would be checked for a reader's SELECT privilege even in the branch
-- `get_mcp_usage_by_tool` never runs for readers).
ALTER FUNCTION archon_mcp_usage_by_user(timestamptz, timestamptz) RESET jit;
ALTER FUNCTION archon_budget_hours(text, text, timestamptz, timestamptz) RESET jit;
ALTER FUNCTION archon_budget_usage(text, text, timestamptz, timestamptz) RESET jit;

-- The spans inline too, and fold to constants: as set-returning functions PostgreSQL folds them
-- into the caller and estimates the rollups' rows from the real bounds, where a function scan
-- left them unknown (a third of the table). Their UTC truncation is written with immutable
-- operators (`AT TIME ZONE 'UTC'` and the zone-less `date_trunc`): `date_trunc(unit, ts, 'UTC')`
-- is declared STABLE, and inlined it stayed in a sequential scan's filter, four truncations per
-- row (130 ms over a year's per-session days at 10 M rows); immutable, it is computed once at
-- plan time for a constant range. Same values: UTC has no offset changes.
DROP FUNCTION archon_mcp_rollup_span(timestamptz, timestamptz);
CREATE FUNCTION archon_mcp_rollup_span(p_from timestamptz, p_to timestamptz)
RETURNS TABLE (lo timestamptz, hi timestamptz)
LANGUAGE sql
IMMUTABLE
AS $fn$
    SELECT f.lo, greatest(date_trunc('hour', p_to AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', f.lo)
      FROM (SELECT least(date_trunc('hour', (p_from AT TIME ZONE 'UTC') - interval '1 microsecond')
                         AT TIME ZONE 'UTC' + interval '1 hour', p_to) AS lo) f
$fn$;

DROP FUNCTION archon_mcp_rollup_day_span(timestamptz, timestamptz);
CREATE FUNCTION archon_mcp_rollup_day_span(p_from timestamptz, p_to timestamptz)
RETURNS TABLE (lo timestamptz, hi timestamptz)
LANGUAGE sql
IMMUTABLE
AS $fn$
    SELECT f.lo, greatest(date_trunc('day', p_to AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', f.lo)
      FROM (SELECT least(date_trunc('day', (p_from AT TIME ZONE 'UTC') - interval '1 microsecond')
                         AT TIME ZONE 'UTC' + interval '24 hours', p_to) AS lo) f
$fn$;
