-- The rollups, read like rows (issue #35, second part): `archon_mcp_usage_hours(from, to)` gives
-- the requests of any range in the rollups' shape — whole hours from the rollups where they are
-- current, the ragged ends of the range and the hours written since their rollup from the raw
-- rows — so the dashboards, the alert rules and the SQL API read hours instead of rows and the
-- same figures either way.
--
-- The rollups grow what those readers ask: the kind of a failure (the dashboards' error
-- classes), the slowest duration (a cap for percentiles, and "max"), and the sessions of each
-- hour (distinct sessions over a range). The raw aggregation is written once,
-- `archon_mcp_rollup_rows`, for the rollups' upkeep and their readers alike.

ALTER TABLE archon_mcp_rollup_hourly
    ADD COLUMN error_kind text,
    ADD COLUMN duration_ms_max double precision;
COMMENT ON COLUMN archon_mcp_rollup_hourly.error_kind IS
    'NULL for success; else caller mistake (-32700, -32600, -32601, -32602), tool error, timeout or server failure';

-- Which class of failure a request is: what the dashboards count apart.
CREATE FUNCTION archon_mcp_error_kind(p_status text, p_error_type text, p_error_code integer)
RETURNS text
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
AS $fn$
    SELECT CASE
             WHEN p_status = 'success' THEN NULL
             WHEN p_error_code IN (-32700, -32600, -32601, -32602) THEN 'caller mistake'
             WHEN p_error_type = 'tool_error' THEN 'tool error'
             WHEN p_error_type = 'timeout' OR p_status = 'timeout' THEN 'timeout'
             ELSE 'server failure'
           END
$fn$;

-- The sessions that made requests in each hour, with their requests, tokens and model.
CREATE TABLE archon_mcp_rollup_session_hourly (
    hour        timestamptz NOT NULL,
    session_id  uuid NOT NULL,
    user_id     uuid,
    requests    bigint NOT NULL,
    tokens      bigint NOT NULL,
    model       text,
    PRIMARY KEY (hour, session_id)
);
-- A session's hours, for its request count (get_user_sessions, get_disconnected_sessions).
CREATE INDEX idx_archon_mcp_rollup_session_hourly_session ON archon_mcp_rollup_session_hourly (session_id);
COMMENT ON TABLE archon_mcp_rollup_session_hourly IS
    'The sessions that made requests in each hour, with their requests, tokens and (greatest) model; recomputed with the hourly rollups';

-- The same of [p_from, p_to), from the raw rows.
CREATE FUNCTION archon_mcp_rollup_session_rows(p_from timestamptz, p_to timestamptz)
RETURNS SETOF archon_mcp_rollup_session_hourly
LANGUAGE sql
STABLE
AS $fn$
    SELECT date_trunc('hour', r."timestamp", 'UTC'), r.session_id, (array_agg(r.user_id) FILTER (WHERE r.user_id IS NOT NULL))[1],
           count(*), sum(r.total_tokens), max(r.model)
      FROM archon_mcp_requests r
     WHERE r."timestamp" >= p_from AND r."timestamp" < p_to
     GROUP BY 1, 2
$fn$;

-- The requests of [p_from, p_to) summed per hour and the rollups' dimensions, from the raw rows.
CREATE FUNCTION archon_mcp_rollup_rows(p_from timestamptz, p_to timestamptz)
RETURNS SETOF archon_mcp_rollup_hourly
LANGUAGE sql
STABLE
AS $fn$
    SELECT date_trunc('hour', r."timestamp", 'UTC'), r.user_id, s.user_department, r.tool_name, s.client_type, r.model,
           r.status, r.token_source,
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
                 count(*) FILTER (WHERE r.duration_ms >= 60000)]::integer[],
           archon_mcp_error_kind(r.status, r.error_type, r.error_code), max(r.duration_ms)
      FROM archon_mcp_requests r
      -- Each request's session by its key: a join would hash every session for each hour.
      CROSS JOIN LATERAL (SELECT s.user_department, s.client_type
                            FROM archon_mcp_sessions s WHERE s.session_id = r.session_id) s
     WHERE r."timestamp" >= p_from AND r."timestamp" < p_to
     GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 16
$fn$;

CREATE OR REPLACE FUNCTION archon_mcp_rollup_hour(p_hour timestamptz)
RETURNS void
LANGUAGE sql
AS $fn$
    DELETE FROM archon_mcp_rollup_hourly WHERE hour = p_hour;
    INSERT INTO archon_mcp_rollup_hourly SELECT * FROM archon_mcp_rollup_rows(p_hour, p_hour + interval '1 hour');
    DELETE FROM archon_mcp_rollup_session_hourly WHERE hour = p_hour;
    INSERT INTO archon_mcp_rollup_session_hourly
    SELECT * FROM archon_mcp_rollup_session_rows(p_hour, p_hour + interval '1 hour');
$fn$;

-- The whole hours of [p_from, p_to): from the first hour boundary at or after p_from to the
-- last at or before p_to (empty when the range holds no whole hour). Hours are UTC hours
-- everywhere (V15): in a session whose time zone is off UTC by half an hour, `date_trunc('hour',
-- …)` alone would cut the range across the stored hours.
CREATE FUNCTION archon_mcp_rollup_span(p_from timestamptz, p_to timestamptz, OUT lo timestamptz, OUT hi timestamptz)
LANGUAGE sql
IMMUTABLE
AS $fn$
    SELECT f.lo, greatest(date_trunc('hour', p_to, 'UTC'), f.lo)
      FROM (SELECT least(CASE WHEN date_trunc('hour', p_from, 'UTC') = p_from THEN p_from
                              ELSE date_trunc('hour', p_from, 'UTC') + interval '1 hour' END, p_to) AS lo) f
$fn$;

-- V14's marks, on UTC hours like the rest.
CREATE OR REPLACE FUNCTION archon_mcp_rollup_mark() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
BEGIN
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO archon_mcp_rollup_dirty (hour)
        SELECT DISTINCT date_trunc('hour', n."timestamp", 'UTC') FROM new_rows n
        ON CONFLICT DO NOTHING;
    END IF;
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        INSERT INTO archon_mcp_rollup_dirty (hour)
        SELECT DISTINCT date_trunc('hour', o."timestamp", 'UTC') FROM old_rows o
        ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END;
$fn$;

CREATE OR REPLACE FUNCTION archon_mcp_rollup_mark_session() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
BEGIN
    INSERT INTO archon_mcp_rollup_dirty (hour)
    SELECT DISTINCT date_trunc('hour', r."timestamp", 'UTC') FROM archon_mcp_requests r WHERE r.session_id = NEW.session_id
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END;
$fn$;

-- The parts of [p_from, p_to) the hourly rollups do not answer, to read from the rows: the
-- ragged ends and the whole hours marked since their rollup.
CREATE FUNCTION archon_mcp_rollup_gaps(p_from timestamptz, p_to timestamptz)
RETURNS TABLE (lo timestamptz, hi timestamptz)
LANGUAGE sql
STABLE
AS $fn$
    SELECT p_from, b.lo FROM archon_mcp_rollup_span(p_from, p_to) b WHERE p_from < b.lo
    UNION ALL
    SELECT b.hi, p_to FROM archon_mcp_rollup_span(p_from, p_to) b WHERE b.hi < p_to
    UNION ALL
    SELECT d.hour, d.hour + interval '1 hour'
      FROM archon_mcp_rollup_span(p_from, p_to) b
      JOIN archon_mcp_rollup_dirty d ON d.hour >= b.lo AND d.hour < b.hi
$fn$;

-- The requests of [p_from, p_to) in the rollups' shape: rolled-up hours where current, the raw
-- rows for the gaps. The same figures as the rows give; row-level security applies to both
-- sources (a reader sees its own).
CREATE FUNCTION archon_mcp_usage_hours(p_from timestamptz, p_to timestamptz)
RETURNS SETOF archon_mcp_rollup_hourly
LANGUAGE sql
STABLE
SET jit = off
AS $fn$
    SELECT h.*
      FROM archon_mcp_rollup_span(p_from, p_to) b, archon_mcp_rollup_hourly h
     WHERE h.hour >= b.lo AND h.hour < b.hi
       AND NOT EXISTS (SELECT 1 FROM archon_mcp_rollup_dirty d WHERE d.hour = h.hour)
    UNION ALL
    SELECT x.* FROM archon_mcp_rollup_gaps(p_from, p_to) g, LATERAL archon_mcp_rollup_rows(g.lo, g.hi) x
$fn$;
COMMENT ON FUNCTION archon_mcp_usage_hours(timestamptz, timestamptz) IS
    'The requests of [from, to) per hour and dimension: from the hourly rollups where current, from the raw rows elsewhere';

-- V14's budget hours the same way: rolled-up hours where current, the budget's requests in the
-- gaps.
CREATE OR REPLACE FUNCTION archon_budget_hours(p_scope text, p_value text, p_from timestamptz, p_to timestamptz)
RETURNS TABLE (hour timestamptz, user_id uuid, tool_name text, requests bigint, cost numeric)
LANGUAGE sql
STABLE
SET jit = off
AS $fn$
    WITH subject AS (
        SELECT s.user_id FROM archon_mcp_sessions s WHERE p_scope = 'user' AND s.user_key = p_value LIMIT 1
    )
    SELECT h.hour, h.user_id, h.tool_name, sum(h.requests)::bigint, sum(h.cost)
      FROM archon_mcp_rollup_span(p_from, p_to) b, archon_mcp_rollup_hourly h
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
    SELECT date_trunc('hour', q."timestamp", 'UTC'), q.user_id, q.tool_name, count(*), coalesce(sum(q.estimated_cost), 0)
      FROM archon_mcp_rollup_gaps(p_from, p_to) g, LATERAL archon_budget_requests(p_scope, p_value, g.lo, g.hi) q
     GROUP BY 1, 2, 3
$fn$;

-- The sessions that made requests in [p_from, p_to), per hour, the same way.
CREATE FUNCTION archon_mcp_usage_sessions(p_from timestamptz, p_to timestamptz)
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

-- A quantile read from a latency histogram (the buckets summed over rows — by subscript,
-- `ARRAY[sum(h.latency_buckets[1]), …, sum(h.latency_buckets[16])]`, which is ten times faster
-- than any aggregate PL/pgSQL or SQL could define): the upper bound of the bucket holding it (at
-- most 2.5 × the true value, never below it), capped by the slowest request.
CREATE FUNCTION archon_mcp_latency_quantile(p_buckets bigint[], p_q double precision, p_max double precision)
RETURNS double precision
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
AS $fn$
    SELECT least((ARRAY[1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 30000, 60000,
                        'Infinity']::double precision[])[c.i], p_max)
      FROM (SELECT u.i, sum(u.n) OVER (ORDER BY u.i) AS below, sum(u.n) OVER () AS total
              FROM unnest(p_buckets) WITH ORDINALITY AS u(n, i)) c
     WHERE c.total > 0 AND c.below >= p_q * c.total
     ORDER BY c.i
     LIMIT 1
$fn$;

-- Row-level security and grants as the hourly rollups'.
ALTER TABLE archon_mcp_rollup_session_hourly ENABLE ROW LEVEL SECURITY;
CREATE POLICY archon_mcp_rollup_session_writers ON archon_mcp_rollup_session_hourly
    FOR ALL TO archon_exporter, archon_admin USING (true) WITH CHECK (true);
CREATE POLICY archon_mcp_rollup_session_all ON archon_mcp_rollup_session_hourly FOR SELECT TO archon_grafana USING (true);
CREATE POLICY archon_mcp_rollup_session_own ON archon_mcp_rollup_session_hourly FOR SELECT TO archon_reader
    USING (user_id = (SELECT archon_current_user_id()));
GRANT SELECT, INSERT, DELETE ON archon_mcp_rollup_session_hourly TO archon_exporter, archon_admin;
GRANT SELECT ON archon_mcp_rollup_session_hourly TO archon_grafana, archon_reader;

-- Every hour is recomputed with the new columns by the reaper (48 a round, oldest first), or at
-- once with `archon-mcp-exporter rollups rebuild`; until then it is read from the rows.
INSERT INTO archon_mcp_rollup_dirty (hour)
SELECT DISTINCT date_trunc('hour', hour, 'UTC') FROM archon_mcp_rollup_hourly
ON CONFLICT DO NOTHING;

-- The Archon SQL API's session functions on the per-session hours (the rest of it in V17): the
-- same names, signatures and figures.

-- The requests of each of the given sessions, all time: their hours from the per-session
-- rollups where current, from the rows in the hours marked since (every hour with rows is one
-- or the other). One pass for any number of sessions.
CREATE FUNCTION archon_mcp_session_requests(p_sessions uuid[])
RETURNS TABLE (session_id uuid, requests bigint)
LANGUAGE sql
STABLE
AS $fn$
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
     GROUP BY x.session_id
$fn$;

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
LANGUAGE sql
STABLE
SET jit = off
AS $fn$
    WITH ended AS MATERIALIZED (
        SELECT s.* FROM archon_mcp_sessions s
         WHERE s.status = 'disconnected' AND s.disconnected_at BETWEEN start_date AND end_date
    )
    SELECT e.session_id, e.client_type, e.client_version, e.connected_at, e.disconnected_at,
           e.total_duration, e.disconnect_reason, coalesce(c.requests, 0)
      FROM ended e
      LEFT JOIN archon_mcp_session_requests(ARRAY(SELECT session_id FROM ended)) c USING (session_id)
     ORDER BY e.disconnected_at DESC
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
LANGUAGE sql
STABLE
SET jit = off
AS $fn$
    WITH theirs AS MATERIALIZED (
        SELECT s.* FROM archon_mcp_sessions s
         WHERE s.user_id = p_user_id AND s.connected_at BETWEEN start_date AND end_date
    )
    SELECT t.session_id, t.client_type, t.client_version, t.connected_at, t.disconnected_at,
           t.total_duration, t.status, t.disconnect_reason, coalesce(c.requests, 0)
      FROM theirs t
      LEFT JOIN archon_mcp_session_requests(ARRAY(SELECT session_id FROM theirs)) c USING (session_id)
     ORDER BY t.connected_at DESC
$fn$;
