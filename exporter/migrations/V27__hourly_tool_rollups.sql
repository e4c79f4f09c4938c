-- Hourly rollups per tool (issue #35). A time series over a month bins by two hours (Grafana's
-- range over the panel's points), so it reads hours, not days: at 100 M requests a year, 30 days
-- of the full hourly rollups are 327,000 rows (hour × user × department × tool × client × model
-- × outcome × token source), and "Requests over time by tool" took 500 ms. Per tool, model,
-- outcome, failure kind and token source an hour holds a few dozen rows. Recomputed from the
-- hourly rollups with them, like the per-tool days; an hour marked since its rollup is read from
-- the rows, so the figures are the rows' either way.

CREATE TABLE archon_mcp_rollup_hourly_tool (
    hour               timestamptz NOT NULL,
    tool_name          text,
    model              text,
    status             text NOT NULL,
    error_kind         text,
    token_source       text NOT NULL,
    requests           bigint NOT NULL,
    prompt_tokens      bigint NOT NULL,
    completion_tokens  bigint NOT NULL,
    cost               numeric NOT NULL,
    duration_ms_sum    double precision NOT NULL,
    duration_ms_max    double precision,
    latency_buckets    integer[] NOT NULL
);
CREATE INDEX idx_archon_mcp_rollup_hourly_tool_hour ON archon_mcp_rollup_hourly_tool (hour);
COMMENT ON TABLE archon_mcp_rollup_hourly_tool IS
    'Requests per hour x tool x model x status x failure kind x token source, from the hourly rollups';

-- As the per-tool days: everyone's (no user in them), so not for readers.
GRANT SELECT, INSERT, DELETE ON archon_mcp_rollup_hourly_tool TO archon_exporter, archon_admin;
GRANT SELECT ON archon_mcp_rollup_hourly_tool TO archon_grafana;

-- Recomputes the given hours per tool from their hourly rollups. The hours are joined, not
-- tested with `= ANY`: a year's rebuild passes 8,760 of them, and an array parameter is searched
-- element by element for every row a scan reads.
CREATE FUNCTION archon_mcp_rollup_tool_hours(p_hours timestamptz[])
RETURNS void
LANGUAGE sql
AS $fn$
    DELETE FROM archon_mcp_rollup_hourly_tool t USING unnest(p_hours) AS x(hour) WHERE t.hour = x.hour;
    INSERT INTO archon_mcp_rollup_hourly_tool
    SELECT h.hour, h.tool_name, h.model, h.status, h.error_kind, h.token_source,
           sum(h.requests), sum(h.prompt_tokens), sum(h.completion_tokens), sum(h.cost), sum(h.duration_ms_sum),
           max(h.duration_ms_max),
           ARRAY[sum(h.latency_buckets[1]), sum(h.latency_buckets[2]), sum(h.latency_buckets[3]), sum(h.latency_buckets[4]),
                 sum(h.latency_buckets[5]), sum(h.latency_buckets[6]), sum(h.latency_buckets[7]), sum(h.latency_buckets[8]),
                 sum(h.latency_buckets[9]), sum(h.latency_buckets[10]), sum(h.latency_buckets[11]), sum(h.latency_buckets[12]),
                 sum(h.latency_buckets[13]), sum(h.latency_buckets[14]), sum(h.latency_buckets[15]), sum(h.latency_buckets[16])]::integer[]
      FROM (SELECT DISTINCT x FROM unnest(p_hours) AS x) AS x(hour)
      JOIN archon_mcp_rollup_hourly h ON h.hour = x.hour
     GROUP BY h.hour, h.tool_name, h.model, h.status, h.error_kind, h.token_source;
$fn$;
REVOKE EXECUTE ON FUNCTION archon_mcp_rollup_tool_hours(timestamptz[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION archon_mcp_rollup_tool_hours(timestamptz[]) TO archon_exporter, archon_admin;

-- V25's upkeep of a set of hours, with their hours per tool.
CREATE OR REPLACE FUNCTION archon_mcp_rollup_hours(p_hours timestamptz[])
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
    PERFORM archon_mcp_rollup_tool_hours(p_hours);
    PERFORM archon_mcp_rollup_days(ARRAY(SELECT DISTINCT date_trunc('day', x, 'UTC') FROM unnest(p_hours) AS x));
    PERFORM archon_mcp_rollup_months(ARRAY(SELECT DISTINCT date_trunc('month', x, 'UTC') FROM unnest(p_hours) AS x));
    PERFORM archon_mcp_rollup_session_totals(ARRAY(
        SELECT unnest(sessions)
        UNION
        SELECT s.session_id FROM archon_mcp_rollup_session_hourly s WHERE s.hour = ANY (p_hours)));
END;
$fn$;

-- The requests of [p_from, p_to) per hour, tool, model, outcome and token source: rolled-up
-- hours from the per-tool tier where current, the raw rows for the gaps (ragged ends, hours
-- marked since). The columns of `archon_mcp_usage_by_tool`, `at` always an hour.
CREATE FUNCTION archon_mcp_usage_by_tool_hours(p_from timestamptz, p_to timestamptz)
RETURNS TABLE (at timestamptz, tool_name text, model text, status text, error_kind text, token_source text,
               requests bigint, prompt_tokens bigint, completion_tokens bigint, cost numeric,
               duration_ms_sum double precision, duration_ms_max double precision, latency_buckets integer[])
LANGUAGE sql
STABLE
SET jit = off
AS $fn$
    SELECT t.hour, t.tool_name, t.model, t.status, t.error_kind, t.token_source, t.requests, t.prompt_tokens,
           t.completion_tokens, t.cost, t.duration_ms_sum, t.duration_ms_max, t.latency_buckets
      FROM archon_mcp_rollup_span(p_from, p_to) b, archon_mcp_rollup_hourly_tool t
     WHERE t.hour >= b.lo AND t.hour < b.hi
       AND NOT EXISTS (SELECT 1 FROM archon_mcp_rollup_dirty d WHERE d.hour = t.hour)
    UNION ALL
    SELECT x.hour, x.tool_name, x.model, x.status, x.error_kind, x.token_source, x.requests, x.prompt_tokens,
           x.completion_tokens, x.cost, x.duration_ms_sum, x.duration_ms_max, x.latency_buckets
      FROM archon_mcp_rollup_gaps(p_from, p_to) g, LATERAL archon_mcp_rollup_rows(g.lo, g.hi) x
$fn$;
COMMENT ON FUNCTION archon_mcp_usage_by_tool_hours(timestamptz, timestamptz) IS
    'The requests of [from, to) per hour, tool, model, outcome and token source: hourly per-tool rollups where current, the rows elsewhere';

-- V17's per-tool reader takes the hours of its ragged days from the per-tool hours too.
CREATE OR REPLACE FUNCTION archon_mcp_usage_by_tool(p_from timestamptz, p_to timestamptz)
RETURNS TABLE (at timestamptz, tool_name text, model text, status text, error_kind text, token_source text,
               requests bigint, prompt_tokens bigint, completion_tokens bigint, cost numeric,
               duration_ms_sum double precision, duration_ms_max double precision, latency_buckets integer[])
LANGUAGE sql
STABLE
SET jit = off
AS $fn$
    SELECT t.day, t.tool_name, t.model, t.status, t.error_kind, t.token_source, t.requests, t.prompt_tokens,
           t.completion_tokens, t.cost, t.duration_ms_sum, t.duration_ms_max, t.latency_buckets
      FROM archon_mcp_rollup_day_span(p_from, p_to) b, archon_mcp_rollup_daily_tool t
     WHERE t.day >= b.lo AND t.day < b.hi -- A day with an hour marked since its rollup is read from the hours.
       AND NOT EXISTS (SELECT 1 FROM archon_mcp_rollup_dirty d
                        WHERE d.hour >= t.day AND d.hour < t.day + interval '24 hours')
    UNION ALL
    SELECT h.*
      FROM archon_mcp_rollup_day_gaps(p_from, p_to) g, LATERAL archon_mcp_usage_by_tool_hours(g.lo, g.hi) h
$fn$;

-- The hours rolled up so far.
SELECT archon_mcp_rollup_tool_hours(ARRAY(SELECT DISTINCT hour FROM archon_mcp_rollup_hourly));
