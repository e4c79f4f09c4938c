-- Per-session days (issue #35). The panels and functions that count a range's distinct
-- sessions ("Client types", "Tool catalog in the context", `get_mcp_usage_summary`) read the
-- per-session hours: 280,000 rows for a year at 10 M requests, one for every hour a session was
-- busy. Most sessions are busy for a few hours of one day, so a day per session holds the same
-- answers in less than half the rows. `archon_mcp_usage_sessions` takes a range's whole clean
-- UTC days from them and the rest from the hours (`archon_mcp_usage_session_hours`, V15's
-- reader), so the figures are the rows' either way.

CREATE TABLE archon_mcp_rollup_daily_session (
    day         timestamptz NOT NULL,
    session_id  uuid NOT NULL,
    user_id     uuid,
    requests    bigint NOT NULL,
    tokens      bigint NOT NULL,
    model       text,
    PRIMARY KEY (day, session_id)
);
COMMENT ON TABLE archon_mcp_rollup_daily_session IS
    'The sessions that made requests on each UTC day, with their requests, tokens and (greatest) model; recomputed with the other daily rollups';

ALTER TABLE archon_mcp_rollup_daily_session ENABLE ROW LEVEL SECURITY;
CREATE POLICY archon_mcp_rollup_daily_session_writers ON archon_mcp_rollup_daily_session
    FOR ALL TO archon_exporter, archon_admin USING (true) WITH CHECK (true);
CREATE POLICY archon_mcp_rollup_daily_session_all ON archon_mcp_rollup_daily_session
    FOR SELECT TO archon_grafana USING (true);
CREATE POLICY archon_mcp_rollup_daily_session_own ON archon_mcp_rollup_daily_session FOR SELECT TO archon_reader
    USING (user_id = (SELECT archon_current_user_id()));
GRANT SELECT, INSERT, DELETE ON archon_mcp_rollup_daily_session TO archon_exporter, archon_admin;
GRANT SELECT ON archon_mcp_rollup_daily_session TO archon_grafana, archon_reader;

-- V17's day upkeep, with the sessions.
CREATE OR REPLACE FUNCTION archon_mcp_rollup_days(p_days timestamptz[])
RETURNS void
LANGUAGE sql
AS $fn$
    DELETE FROM archon_mcp_rollup_daily_tool WHERE day = ANY (p_days);
    INSERT INTO archon_mcp_rollup_daily_tool
    SELECT date_trunc('day', h.hour, 'UTC'), h.tool_name, h.model, h.status, h.error_kind, h.token_source,
           sum(h.requests), sum(h.prompt_tokens), sum(h.completion_tokens), sum(h.cost), sum(h.duration_ms_sum),
           max(h.duration_ms_max),
           ARRAY[sum(h.latency_buckets[1]), sum(h.latency_buckets[2]), sum(h.latency_buckets[3]), sum(h.latency_buckets[4]),
                 sum(h.latency_buckets[5]), sum(h.latency_buckets[6]), sum(h.latency_buckets[7]), sum(h.latency_buckets[8]),
                 sum(h.latency_buckets[9]), sum(h.latency_buckets[10]), sum(h.latency_buckets[11]), sum(h.latency_buckets[12]),
                 sum(h.latency_buckets[13]), sum(h.latency_buckets[14]), sum(h.latency_buckets[15]), sum(h.latency_buckets[16])]::integer[]
      FROM archon_mcp_rollup_hourly h
     WHERE h.hour >= (SELECT min(d) FROM unnest(p_days) d) AND h.hour < (SELECT max(d) FROM unnest(p_days) d) + interval '24 hours'
       AND date_trunc('day', h.hour, 'UTC') = ANY (p_days)
     GROUP BY 1, h.tool_name, h.model, h.status, h.error_kind, h.token_source;
    DELETE FROM archon_mcp_rollup_daily_user WHERE day = ANY (p_days);
    INSERT INTO archon_mcp_rollup_daily_user
    SELECT date_trunc('day', h.hour, 'UTC'), h.user_id, h.user_department, h.tool_name, h.status, h.token_source,
           sum(h.requests), sum(h.prompt_tokens), sum(h.completion_tokens), sum(h.cost)
      FROM archon_mcp_rollup_hourly h
     WHERE h.hour >= (SELECT min(d) FROM unnest(p_days) d) AND h.hour < (SELECT max(d) FROM unnest(p_days) d) + interval '24 hours'
       AND date_trunc('day', h.hour, 'UTC') = ANY (p_days)
     GROUP BY 1, h.user_id, h.user_department, h.tool_name, h.status, h.token_source;
    DELETE FROM archon_mcp_rollup_daily_session WHERE day = ANY (p_days);
    INSERT INTO archon_mcp_rollup_daily_session
    SELECT date_trunc('day', h.hour, 'UTC'), h.session_id, (array_agg(h.user_id) FILTER (WHERE h.user_id IS NOT NULL))[1],
           sum(h.requests), sum(h.tokens), max(h.model)
      FROM archon_mcp_rollup_session_hourly h
     WHERE h.hour >= (SELECT min(d) FROM unnest(p_days) d) AND h.hour < (SELECT max(d) FROM unnest(p_days) d) + interval '24 hours'
       AND date_trunc('day', h.hour, 'UTC') = ANY (p_days)
     GROUP BY 1, h.session_id;
$fn$;

-- V15's reader of the per-session hours, under the name that says so.
CREATE FUNCTION archon_mcp_usage_session_hours(p_from timestamptz, p_to timestamptz)
RETURNS SETOF archon_mcp_rollup_session_hourly
LANGUAGE sql
STABLE
SET jit = off
AS $fn$
    SELECT h.*
      FROM archon_mcp_rollup_span(p_from, p_to) b, archon_mcp_rollup_session_hourly h
     WHERE h.hour >= b.lo AND h.hour < b.hi
       AND NOT EXISTS (SELECT 1 FROM archon_mcp_rollup_dirty d WHERE d.hour = h.hour)
    UNION ALL
    SELECT x.* FROM archon_mcp_rollup_gaps(p_from, p_to) g, LATERAL archon_mcp_rollup_session_rows(g.lo, g.hi) x
$fn$;

-- The sessions that made requests in [p_from, p_to): per UTC day (`hour` is the day) for whole
-- days rolled up, per hour elsewhere. Without a `SET`, so that it inlines into its callers
-- (V21): planned on the per-session days' statistics, a year's panels hash-join the sessions
-- instead of probing them one by one (measured: the tool catalog over a year 551 → 274 ms,
-- `get_mcp_usage_summary` 305 → 133 ms at 10 M rows).
CREATE OR REPLACE FUNCTION archon_mcp_usage_sessions(p_from timestamptz, p_to timestamptz)
RETURNS SETOF archon_mcp_rollup_session_hourly
LANGUAGE sql
STABLE
AS $fn$
    SELECT s.day, s.session_id, s.user_id, s.requests, s.tokens, s.model
      FROM archon_mcp_rollup_day_span(p_from, p_to) b, archon_mcp_rollup_daily_session s
     WHERE s.day >= b.lo AND s.day < b.hi -- A day with an hour marked since its rollup is read from the hours.
       AND NOT EXISTS (SELECT 1 FROM archon_mcp_rollup_dirty d
                        WHERE d.hour >= s.day AND d.hour < s.day + interval '24 hours')
    UNION ALL
    SELECT h.* FROM archon_mcp_rollup_day_gaps(p_from, p_to) g, LATERAL archon_mcp_usage_session_hours(g.lo, g.hi) h
$fn$;
COMMENT ON FUNCTION archon_mcp_usage_sessions(timestamptz, timestamptz) IS
    'The sessions that made requests in [from, to), with their requests, tokens and model: per UTC day for whole days rolled up, per hour elsewhere';

-- The days of the sessions' hours rolled up so far.
INSERT INTO archon_mcp_rollup_daily_session
SELECT date_trunc('day', h.hour, 'UTC'), h.session_id, (array_agg(h.user_id) FILTER (WHERE h.user_id IS NOT NULL))[1],
       sum(h.requests), sum(h.tokens), max(h.model)
  FROM archon_mcp_rollup_session_hourly h
 GROUP BY 1, 2;
