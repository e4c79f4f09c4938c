-- All-time figures per user that do not grow with history (issue #35). `archon_mcp_user_stats`
-- is Archon's all-time view: on every read it aggregated every session and every per-user day
-- — 14.6 ms over 37 days of traffic, 139 ms over 365 days of the same traffic. Two monthly
-- tiers answer it instead: per user and UTC month of connection, the sessions' counts and
-- durations; per user and UTC month, the requests by outcome and token source. A month a write
-- touched since its upkeep is read from the sessions, or from the days and hours, so the
-- figures are the rows'; in steady state that is the current month, whatever the history.

CREATE TABLE archon_mcp_rollup_monthly_user (
    month         timestamptz NOT NULL,
    user_id       uuid NOT NULL,
    status        text NOT NULL,
    token_source  text NOT NULL,
    requests      bigint NOT NULL,
    tokens        bigint NOT NULL,
    cost          numeric NOT NULL
);
CREATE INDEX idx_archon_mcp_rollup_monthly_user_month ON archon_mcp_rollup_monthly_user (month);
COMMENT ON TABLE archon_mcp_rollup_monthly_user IS
    'Requests per UTC month x user x status x token source, from the per-user days';

CREATE TABLE archon_mcp_rollup_monthly_user_sessions (
    month            timestamptz NOT NULL,
    user_id          uuid NOT NULL,
    sessions         bigint NOT NULL,
    active           bigint NOT NULL,
    disconnected     bigint NOT NULL,
    duration_sum     bigint,
    durations        bigint NOT NULL,
    duration_max     integer,
    first_connected  timestamptz NOT NULL,
    last_activity    timestamptz NOT NULL,
    PRIMARY KEY (month, user_id)
);
COMMENT ON TABLE archon_mcp_rollup_monthly_user_sessions IS
    'Sessions per UTC month of connection x user: counts by status, durations, first connection and last activity';

-- The (month of connection, user) pairs whose sessions changed since their upkeep. No unique
-- key, as V26 gives the hours' marks: a writer never waits on a round taking the marks.
CREATE TABLE archon_mcp_rollup_dirty_user_month (
    month    timestamptz NOT NULL,
    user_id  uuid NOT NULL
);
CREATE INDEX idx_archon_mcp_rollup_dirty_user_month ON archon_mcp_rollup_dirty_user_month (month, user_id);

DO $do$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['archon_mcp_rollup_monthly_user', 'archon_mcp_rollup_monthly_user_sessions',
                             'archon_mcp_rollup_dirty_user_month'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY %I ON %I FOR ALL TO archon_exporter, archon_admin USING (true) WITH CHECK (true)',
                       t || '_writers', t);
        EXECUTE format('CREATE POLICY %I ON %I FOR SELECT TO archon_grafana USING (true)', t || '_all', t);
        EXECUTE format('CREATE POLICY %I ON %I FOR SELECT TO archon_reader USING (user_id = (SELECT archon_current_user_id()))',
                       t || '_own', t);
        EXECUTE format('GRANT SELECT, INSERT, DELETE ON %I TO archon_exporter, archon_admin', t);
        EXECUTE format('GRANT SELECT ON %I TO archon_grafana, archon_reader', t);
    END LOOP;
END
$do$;

-- A marked pair's sessions, found by their user and connection: one index range per pair.
CREATE INDEX IF NOT EXISTS idx_archon_mcp_sessions_user_connected ON archon_mcp_sessions (user_id, connected_at);

-- The UTC month after the one starting at p_month (immutable, so it folds at plan time).
CREATE FUNCTION archon_mcp_month_end(p_month timestamptz)
RETURNS timestamptz
LANGUAGE sql
IMMUTABLE
PARALLEL SAFE
AS $fn$
    SELECT ((p_month AT TIME ZONE 'UTC') + interval '1 month') AT TIME ZONE 'UTC'
$fn$;

-- A session's writes mark its (month, user) pairs, whoever writes (the exporter's upserts,
-- the reaper's closing, retention, erasure). Sessions without a user are in no user's figures.
CREATE FUNCTION archon_mcp_rollup_mark_user_month() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO archon_mcp_rollup_dirty_user_month (month, user_id)
        SELECT DISTINCT date_trunc('month', n.connected_at, 'UTC'), n.user_id FROM new_rows n WHERE n.user_id IS NOT NULL;
    END IF;
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        INSERT INTO archon_mcp_rollup_dirty_user_month (month, user_id)
        SELECT DISTINCT date_trunc('month', o.connected_at, 'UTC'), o.user_id FROM old_rows o WHERE o.user_id IS NOT NULL;
    END IF;
    RETURN NULL;
END;
$fn$;
-- Trigger functions run with the rights of whoever writes, SECURITY DEFINER functions included
-- (retention deletes sessions as their owner): with a temporary table of a marks table's name
-- searched first, the owner would write into the caller's table and fire its triggers. Each
-- one, V14's too, resolves the product's tables in this schema and temporary ones last.
DO $do$
DECLARE
    f text;
BEGIN
    FOREACH f IN ARRAY ARRAY['archon_mcp_rollup_mark()', 'archon_mcp_rollup_mark_session()',
                             'archon_mcp_rollup_mark_user_month()'] LOOP
        EXECUTE format('ALTER FUNCTION %s SET search_path = %I, pg_temp', f, current_schema());
    END LOOP;
END
$do$;
CREATE TRIGGER archon_mcp_rollup_mark_user_month_insert AFTER INSERT ON archon_mcp_sessions
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION archon_mcp_rollup_mark_user_month();
CREATE TRIGGER archon_mcp_rollup_mark_user_month_update AFTER UPDATE ON archon_mcp_sessions
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION archon_mcp_rollup_mark_user_month();
CREATE TRIGGER archon_mcp_rollup_mark_user_month_delete AFTER DELETE ON archon_mcp_sessions
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION archon_mcp_rollup_mark_user_month();

-- The sessions of the given (month, user) pairs, from the rows.
CREATE FUNCTION archon_mcp_user_month_session_rows(p_months timestamptz[], p_users uuid[])
RETURNS SETOF archon_mcp_rollup_monthly_user_sessions
LANGUAGE sql
STABLE
AS $fn$
    SELECT p.month, p.user_id, count(*), count(*) FILTER (WHERE s.status = 'active'),
           count(*) FILTER (WHERE s.status = 'disconnected'), sum(s.total_duration), count(s.total_duration),
           max(s.total_duration), min(s.connected_at), max(s.last_activity)
      FROM unnest(p_months, p_users) AS p(month, user_id)
      JOIN archon_mcp_sessions s ON s.user_id = p.user_id
                                AND s.connected_at >= p.month AND s.connected_at < archon_mcp_month_end(p.month)
     GROUP BY p.month, p.user_id
$fn$;

-- The marked pairs' sessions, recomputed (the reaper, every round).
CREATE FUNCTION archon_mcp_rollup_user_months()
RETURNS integer
LANGUAGE plpgsql
AS $fn$
DECLARE
    months timestamptz[];
    users uuid[];
BEGIN
    -- The marks this round sees; those written meanwhile stay for the next.
    WITH taken AS (DELETE FROM archon_mcp_rollup_dirty_user_month RETURNING month, user_id),
         pairs AS (SELECT DISTINCT t.month, t.user_id FROM taken t)
    SELECT coalesce(array_agg(p.month), '{}'), coalesce(array_agg(p.user_id), '{}') INTO months, users FROM pairs p;
    DELETE FROM archon_mcp_rollup_monthly_user_sessions m
     USING unnest(months, users) AS p(month, user_id)
     WHERE m.month = p.month AND m.user_id = p.user_id;
    INSERT INTO archon_mcp_rollup_monthly_user_sessions SELECT * FROM archon_mcp_user_month_session_rows(months, users);
    RETURN cardinality(months);
END;
$fn$;

-- Recomputes the given UTC months of the per-user requests from their days.
CREATE FUNCTION archon_mcp_rollup_months(p_months timestamptz[])
RETURNS void
LANGUAGE sql
AS $fn$
    DELETE FROM archon_mcp_rollup_monthly_user WHERE month = ANY (p_months);
    INSERT INTO archon_mcp_rollup_monthly_user
    SELECT date_trunc('month', u.day, 'UTC'), u.user_id, u.status, u.token_source, sum(u.requests),
           sum(u.prompt_tokens + u.completion_tokens), sum(u.cost)
      FROM archon_mcp_rollup_daily_user u
     WHERE u.day >= (SELECT min(m) FROM unnest(p_months) m)
       AND u.day < (SELECT archon_mcp_month_end(max(m)) FROM unnest(p_months) m)
       AND date_trunc('month', u.day, 'UTC') = ANY (p_months) AND u.user_id IS NOT NULL
     GROUP BY 1, u.user_id, u.status, u.token_source;
$fn$;

-- V24's upkeep of a set of hours, with their months.
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
    PERFORM archon_mcp_rollup_days(ARRAY(SELECT DISTINCT date_trunc('day', x, 'UTC') FROM unnest(p_hours) AS x));
    PERFORM archon_mcp_rollup_months(ARRAY(SELECT DISTINCT date_trunc('month', x, 'UTC') FROM unnest(p_hours) AS x));
    PERFORM archon_mcp_rollup_session_totals(ARRAY(
        SELECT unnest(sessions)
        UNION
        SELECT s.session_id FROM archon_mcp_rollup_session_hourly s WHERE s.hour = ANY (p_hours)));
END;
$fn$;

-- V24's round, with the marked sessions' months.
CREATE OR REPLACE FUNCTION archon_mcp_rollup_refresh(p_limit integer DEFAULT 48)
RETURNS integer
LANGUAGE plpgsql
AS $fn$
DECLARE
    hours timestamptz[];
BEGIN
    -- Replicas take turns: two rebuilds of one hour must not interleave.
    PERFORM pg_advisory_xact_lock(hashtext('archon_mcp_rollup'));
    -- A mark is a row per writing statement and hour (V26): the round takes the ones it sees.
    WITH taken AS (
        DELETE FROM archon_mcp_rollup_dirty
         WHERE hour IN (SELECT DISTINCT d.hour FROM archon_mcp_rollup_dirty d ORDER BY d.hour LIMIT p_limit)
        RETURNING hour
    )
    SELECT coalesce(array_agg(DISTINCT t.hour ORDER BY t.hour), '{}') INTO hours FROM taken t;
    PERFORM archon_mcp_rollup_hours(hours);
    PERFORM archon_mcp_rollup_user_months();
    RETURN cardinality(hours);
END;
$fn$;

-- Each user's all-time requests, tokens and cost by outcome and token source: whole clean
-- months from the monthly tier, a month with an hour marked since from its days and hours.
CREATE FUNCTION archon_mcp_usage_by_user_all_time()
RETURNS TABLE (user_id uuid, status text, token_source text, requests bigint, tokens bigint, cost numeric)
LANGUAGE sql
STABLE
AS $fn$
    SELECT m.user_id, m.status, m.token_source, m.requests, m.tokens, m.cost
      FROM archon_mcp_rollup_monthly_user m
     WHERE NOT EXISTS (SELECT 1 FROM archon_mcp_rollup_dirty d
                        WHERE d.hour >= m.month AND d.hour < archon_mcp_month_end(m.month))
    UNION ALL
    SELECT u.user_id, u.status, u.token_source, u.requests, u.prompt_tokens + u.completion_tokens, u.cost
      FROM (SELECT DISTINCT date_trunc('month', d.hour, 'UTC') AS month FROM archon_mcp_rollup_dirty d) dm,
           LATERAL archon_mcp_usage_by_user(dm.month, archon_mcp_month_end(dm.month)) u
     WHERE u.user_id IS NOT NULL
$fn$;

-- Each user's sessions, all time: clean (month, user) pairs from the monthly tier, marked ones
-- from the sessions.
CREATE FUNCTION archon_mcp_user_sessions_all_time()
RETURNS SETOF archon_mcp_rollup_monthly_user_sessions
LANGUAGE sql
STABLE
AS $fn$
    SELECT m.*
      FROM archon_mcp_rollup_monthly_user_sessions m
     WHERE NOT EXISTS (SELECT 1 FROM archon_mcp_rollup_dirty_user_month d WHERE d.month = m.month AND d.user_id = m.user_id)
    UNION ALL
    SELECT x.*
      FROM (SELECT array_agg(d.month) AS months, array_agg(d.user_id) AS users
              FROM (SELECT DISTINCT m.month, m.user_id FROM archon_mcp_rollup_dirty_user_month m) d) d,
           LATERAL archon_mcp_user_month_session_rows(d.months, d.users) x
$fn$;

-- V20's view on the monthly tiers: the same columns and figures.
CREATE OR REPLACE VIEW archon_mcp_user_stats WITH (security_invoker = true) AS
WITH per_user_totals AS (
    SELECT
        user_id,
        sum(sessions)::bigint AS total_sessions,
        sum(active)::bigint AS active_sessions,
        sum(disconnected)::bigint AS disconnected_sessions,
        sum(duration_sum)::numeric / nullif(sum(durations), 0) AS avg_session_duration_seconds,
        max(duration_max) AS max_session_duration_seconds,
        min(first_connected) AS first_session_at,
        max(last_activity) AS last_activity_at
    FROM archon_mcp_user_sessions_all_time()
    GROUP BY user_id
),
per_user_sessions AS (
    -- The latest known value of each user attribute: one probe of the (user_id, last_activity)
    -- index per user.
    SELECT t.*,
        (SELECT s.user_email FROM archon_mcp_sessions s
          WHERE s.user_id = t.user_id AND s.user_email IS NOT NULL ORDER BY s.last_activity DESC LIMIT 1)::varchar AS user_email,
        (SELECT s.user_name FROM archon_mcp_sessions s
          WHERE s.user_id = t.user_id AND s.user_name IS NOT NULL ORDER BY s.last_activity DESC LIMIT 1)::varchar AS user_name,
        (SELECT s.user_department FROM archon_mcp_sessions s
          WHERE s.user_id = t.user_id AND s.user_department IS NOT NULL ORDER BY s.last_activity DESC LIMIT 1) AS user_department,
        (SELECT s.user_key FROM archon_mcp_sessions s
          WHERE s.user_id = t.user_id AND s.user_key IS NOT NULL ORDER BY s.last_activity DESC LIMIT 1) AS user_key
    FROM per_user_totals t
),
per_user_requests AS (
    SELECT
        user_id,
        sum(requests)::bigint AS total_requests,
        sum(tokens) AS total_tokens,
        sum(cost) AS total_cost,
        coalesce(sum(requests) FILTER (WHERE status <> 'success'), 0)::bigint AS failed_requests,
        sum(tokens) FILTER (WHERE token_source = 'reported') AS reported_tokens,
        sum(tokens) FILTER (WHERE token_source = 'estimated') AS estimated_tokens
    FROM archon_mcp_usage_by_user_all_time()
    GROUP BY user_id
)
SELECT
    s.user_id,
    s.user_email,
    s.user_name,
    s.total_sessions,
    s.active_sessions,
    s.disconnected_sessions,
    s.avg_session_duration_seconds,
    s.max_session_duration_seconds,
    s.first_session_at,
    s.last_activity_at,
    coalesce(r.total_requests, 0) AS total_requests,
    coalesce(r.total_tokens, 0)::bigint AS total_tokens,
    coalesce(r.total_cost, 0) AS total_cost,
    s.user_department,
    s.user_key,
    coalesce(r.failed_requests, 0) AS failed_requests,
    coalesce(r.reported_tokens, 0)::bigint AS reported_tokens,
    coalesce(r.estimated_tokens, 0)::bigint AS estimated_tokens
FROM per_user_sessions s
LEFT JOIN per_user_requests r USING (user_id);

-- The months so far.
INSERT INTO archon_mcp_rollup_monthly_user
SELECT date_trunc('month', u.day, 'UTC'), u.user_id, u.status, u.token_source, sum(u.requests),
       sum(u.prompt_tokens + u.completion_tokens), sum(u.cost)
  FROM archon_mcp_rollup_daily_user u
 WHERE u.user_id IS NOT NULL
 GROUP BY 1, u.user_id, u.status, u.token_source;
INSERT INTO archon_mcp_rollup_monthly_user_sessions
SELECT date_trunc('month', s.connected_at, 'UTC'), s.user_id, count(*), count(*) FILTER (WHERE s.status = 'active'),
       count(*) FILTER (WHERE s.status = 'disconnected'), sum(s.total_duration), count(s.total_duration),
       max(s.total_duration), min(s.connected_at), max(s.last_activity)
  FROM archon_mcp_sessions s
 WHERE s.user_id IS NOT NULL
 GROUP BY 1, s.user_id;
