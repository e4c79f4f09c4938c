-- Archon's SQL API: same names, signatures and output columns, working and correct.
--
-- Fixes, against reference/archon-notes.md:
--   * functions are LANGUAGE sql, where output columns are not variables, so no
--     "column reference is ambiguous" (Archon's plpgsql versions failed at run time);
--   * per-user figures group by user_id alone (Archon split a user whose name or email changed)
--     and count requests by the requesting user;
--   * usage summaries count every request, not only successful ones (failed calls cost too);
--     columns we add come after Archon's;
--   * views are security_invoker, so row-level security applies through them.

-- Archon's pricing helper, same signature: newest price of the model (snapshot suffixes allowed),
-- rounded to 6 places, 0 when the model is unknown.
CREATE FUNCTION calculate_request_cost(
    model_name_param varchar,
    provider_param varchar,
    prompt_tokens_param integer,
    completion_tokens_param integer
)
RETURNS numeric
LANGUAGE sql
STABLE
AS $fn$
    SELECT coalesce(
        (SELECT round(coalesce(prompt_tokens_param, 0) / 1000.0 * p.input_price_per_1k
                    + coalesce(completion_tokens_param, 0) / 1000.0 * p.output_price_per_1k, 6)
           FROM archon_llm_price_at(model_name_param, now(), provider_param) p),
        0.000000)
$fn$;

COMMENT ON FUNCTION calculate_request_cost(varchar, varchar, integer, integer) IS
    'Cost in USD of a request at the model''s current price; 0 when the model is not priced';

CREATE VIEW archon_mcp_session_stats WITH (security_invoker = true) AS
SELECT
    client_type,
    count(*) AS total_sessions,
    count(*) FILTER (WHERE status = 'active') AS active_sessions,
    count(*) FILTER (WHERE status = 'disconnected') AS disconnected_sessions,
    avg(total_duration) AS avg_duration_seconds,
    max(total_duration) AS max_duration_seconds,
    count(*) FILTER (WHERE disconnect_reason = 'timeout') AS timeout_disconnects,
    count(*) FILTER (WHERE disconnect_reason = 'client_disconnect') AS client_disconnects,
    count(*) FILTER (WHERE disconnect_reason = 'server_shutdown') AS server_shutdown_disconnects,
    count(*) FILTER (WHERE disconnect_reason LIKE 'error:%') AS error_disconnects,
    count(*) FILTER (WHERE status = 'idle') AS idle_sessions
FROM archon_mcp_sessions
GROUP BY client_type;

COMMENT ON VIEW archon_mcp_session_stats IS 'Sessions by client type: counts by status and disconnect reason';

CREATE VIEW archon_mcp_user_stats WITH (security_invoker = true) AS
WITH per_user_sessions AS (
    SELECT
        user_id,
        -- The latest known value of each user attribute.
        (array_agg(user_email ORDER BY last_activity DESC) FILTER (WHERE user_email IS NOT NULL))[1] AS user_email,
        (array_agg(user_name ORDER BY last_activity DESC) FILTER (WHERE user_name IS NOT NULL))[1] AS user_name,
        (array_agg(user_department ORDER BY last_activity DESC) FILTER (WHERE user_department IS NOT NULL))[1] AS user_department,
        (array_agg(user_key ORDER BY last_activity DESC) FILTER (WHERE user_key IS NOT NULL))[1] AS user_key,
        count(*) AS total_sessions,
        count(*) FILTER (WHERE status = 'active') AS active_sessions,
        count(*) FILTER (WHERE status = 'disconnected') AS disconnected_sessions,
        avg(total_duration) AS avg_session_duration_seconds,
        max(total_duration) AS max_session_duration_seconds,
        min(connected_at) AS first_session_at,
        max(last_activity) AS last_activity_at
    FROM archon_mcp_sessions
    WHERE user_id IS NOT NULL
    GROUP BY user_id
),
per_user_requests AS (
    SELECT
        user_id,
        count(*) AS total_requests,
        sum(total_tokens) AS total_tokens,
        sum(estimated_cost) AS total_cost,
        count(*) FILTER (WHERE status <> 'success') AS failed_requests,
        sum(total_tokens) FILTER (WHERE token_source = 'reported') AS reported_tokens,
        sum(total_tokens) FILTER (WHERE token_source = 'estimated') AS estimated_tokens
    FROM archon_mcp_requests
    WHERE user_id IS NOT NULL
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

COMMENT ON VIEW archon_mcp_user_stats IS 'Per-user sessions, requests, tokens and cost, one row per user_id';

CREATE FUNCTION get_active_mcp_clients()
RETURNS TABLE (
    session_id uuid,
    client_type varchar,
    client_version varchar,
    connected_at timestamptz,
    last_activity timestamptz,
    status varchar,
    client_name text,
    user_id uuid,
    user_email varchar,
    user_name varchar
)
LANGUAGE sql
STABLE
AS $fn$
    SELECT s.session_id, s.client_type, s.client_version, s.connected_at, s.last_activity, s.status,
           s.client_name, s.user_id, s.user_email, s.user_name
      FROM archon_mcp_sessions s
     WHERE s.status IN ('active', 'idle')
     ORDER BY s.last_activity DESC
$fn$;

COMMENT ON FUNCTION get_active_mcp_clients() IS 'Sessions that are still open (active or idle)';

CREATE FUNCTION get_disconnected_sessions(
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
AS $fn$
    SELECT s.session_id, s.client_type, s.client_version, s.connected_at, s.disconnected_at,
           s.total_duration, s.disconnect_reason,
           (SELECT count(*) FROM archon_mcp_requests r WHERE r.session_id = s.session_id)
      FROM archon_mcp_sessions s
     WHERE s.status = 'disconnected'
       AND s.disconnected_at BETWEEN start_date AND end_date
     ORDER BY s.disconnected_at DESC
$fn$;

COMMENT ON FUNCTION get_disconnected_sessions(timestamptz, timestamptz) IS
    'Sessions that ended within a time range, with duration and request count';

CREATE FUNCTION get_user_sessions(
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
AS $fn$
    SELECT s.session_id, s.client_type, s.client_version, s.connected_at, s.disconnected_at,
           s.total_duration, s.status, s.disconnect_reason,
           (SELECT count(*) FROM archon_mcp_requests r WHERE r.session_id = s.session_id)
      FROM archon_mcp_sessions s
     WHERE s.user_id = p_user_id
       AND s.connected_at BETWEEN start_date AND end_date
     ORDER BY s.connected_at DESC
$fn$;

COMMENT ON FUNCTION get_user_sessions(uuid, timestamptz, timestamptz) IS
    'A user''s sessions that started within a time range, with request counts';

-- One row per user that was active in the last `days` days (none otherwise): sessions active
-- in the window, requests made in the window.
CREATE FUNCTION get_user_activity_summary(
    p_user_id uuid,
    days integer DEFAULT 30
)
RETURNS TABLE (
    user_id uuid,
    user_email varchar,
    user_name varchar,
    total_sessions bigint,
    active_sessions bigint,
    total_requests bigint,
    total_tokens bigint,
    total_cost numeric,
    avg_session_duration integer,
    most_used_client varchar,
    first_seen timestamptz,
    last_seen timestamptz
)
LANGUAGE sql
STABLE
AS $fn$
    WITH win AS (
        SELECT now() - make_interval(days => days) AS since
    ),
    sessions AS (
        SELECT s.*
          FROM archon_mcp_sessions s, win
         WHERE s.user_id = p_user_id
           AND s.last_activity >= win.since
    ),
    requests AS (
        SELECT count(*) AS n, coalesce(sum(r.total_tokens), 0) AS tokens,
               coalesce(sum(r.estimated_cost), 0) AS cost
          FROM archon_mcp_requests r, win
         WHERE r.user_id = p_user_id
           AND r."timestamp" >= win.since
    ),
    favourite AS (
        SELECT s.client_type
          FROM sessions s
         GROUP BY s.client_type
         ORDER BY count(*) DESC, max(s.last_activity) DESC
         LIMIT 1
    )
    SELECT p_user_id,
           (array_agg(s.user_email ORDER BY s.last_activity DESC) FILTER (WHERE s.user_email IS NOT NULL))[1],
           (array_agg(s.user_name ORDER BY s.last_activity DESC) FILTER (WHERE s.user_name IS NOT NULL))[1],
           count(*),
           count(*) FILTER (WHERE s.status = 'active'),
           (SELECT n FROM requests),
           (SELECT tokens FROM requests)::bigint,
           (SELECT cost FROM requests),
           round(avg(s.total_duration))::integer,
           (SELECT client_type FROM favourite),
           min(s.connected_at),
           max(s.last_activity)
      FROM sessions s
    HAVING count(*) > 0
$fn$;

COMMENT ON FUNCTION get_user_activity_summary(uuid, integer) IS
    'A user''s sessions, requests, tokens, cost and favourite client over the last N days';

CREATE FUNCTION get_mcp_usage_summary(
    start_date timestamptz DEFAULT now() - interval '30 days',
    end_date timestamptz DEFAULT now()
)
RETURNS TABLE (
    total_requests bigint,
    total_prompt_tokens bigint,
    total_completion_tokens bigint,
    total_tokens bigint,
    total_cost numeric,
    unique_sessions bigint,
    successful_requests bigint,
    failed_requests bigint,
    unique_users bigint
)
LANGUAGE sql
STABLE
AS $fn$
    SELECT count(*),
           coalesce(sum(r.prompt_tokens), 0)::bigint,
           coalesce(sum(r.completion_tokens), 0)::bigint,
           coalesce(sum(r.total_tokens), 0)::bigint,
           coalesce(sum(r.estimated_cost), 0),
           count(DISTINCT r.session_id),
           count(*) FILTER (WHERE r.status = 'success'),
           count(*) FILTER (WHERE r.status <> 'success'),
           count(DISTINCT r.user_id)
      FROM archon_mcp_requests r
     WHERE r."timestamp" BETWEEN start_date AND end_date
$fn$;

COMMENT ON FUNCTION get_mcp_usage_summary(timestamptz, timestamptz) IS
    'Requests, tokens, cost, sessions and users within a time range (every request, any status)';

CREATE FUNCTION get_mcp_usage_by_tool(
    start_date timestamptz DEFAULT now() - interval '30 days',
    end_date timestamptz DEFAULT now()
)
RETURNS TABLE (
    tool_name varchar,
    request_count bigint,
    total_tokens bigint,
    total_cost numeric,
    avg_duration_ms numeric,
    error_count bigint,
    p95_duration_ms double precision
)
LANGUAGE sql
STABLE
AS $fn$
    SELECT r.tool_name,
           count(*),
           coalesce(sum(r.total_tokens), 0)::bigint,
           coalesce(sum(r.estimated_cost), 0),
           round(avg(r.duration_ms)::numeric, 3),
           count(*) FILTER (WHERE r.status <> 'success'),
           percentile_cont(0.95) WITHIN GROUP (ORDER BY r.duration_ms)
      FROM archon_mcp_requests r
     WHERE r."timestamp" BETWEEN start_date AND end_date
       AND r.tool_name IS NOT NULL
     GROUP BY r.tool_name
     ORDER BY count(*) DESC, r.tool_name
$fn$;

COMMENT ON FUNCTION get_mcp_usage_by_tool(timestamptz, timestamptz) IS
    'Requests, tokens, cost, latency and errors per tool within a time range';
