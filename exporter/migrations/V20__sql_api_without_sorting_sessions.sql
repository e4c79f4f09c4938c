-- The SQL API without sorting every session (issue #35). At 100,000 sessions the latest name,
-- e-mail, department and key of each user, taken with ordered aggregates, sorted all of them
-- (180 ms): they are now one index probe per user and attribute. `get_mcp_usage_summary`
-- counts distinct sessions and users by hashing, not sorting. Same names, columns and figures.

CREATE OR REPLACE VIEW archon_mcp_user_stats WITH (security_invoker = true) AS
WITH per_user_totals AS (
    SELECT
        user_id,
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
per_user_sessions AS (
    -- The latest known value of each user attribute: one probe of the (user_id, last_activity)
    -- index per user, where ordered aggregates sorted every session (`varchar`, as before).
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
        sum(prompt_tokens + completion_tokens) AS total_tokens,
        sum(cost) AS total_cost,
        coalesce(sum(requests) FILTER (WHERE status <> 'success'), 0)::bigint AS failed_requests,
        sum(prompt_tokens + completion_tokens) FILTER (WHERE token_source = 'reported') AS reported_tokens,
        sum(prompt_tokens + completion_tokens) FILTER (WHERE token_source = 'estimated') AS estimated_tokens
    FROM archon_mcp_usage_by_user('-infinity', 'infinity')
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

CREATE OR REPLACE FUNCTION get_mcp_usage_summary(
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
SET jit = off
AS $fn$
    WITH per_user AS MATERIALIZED (
        SELECT h.user_id, sum(h.requests) AS requests, sum(h.prompt_tokens) AS prompt_tokens,
               sum(h.completion_tokens) AS completion_tokens, sum(h.cost) AS cost,
               sum(h.requests) FILTER (WHERE h.status = 'success') AS successful,
               sum(h.requests) FILTER (WHERE h.status <> 'success') AS failed
          FROM archon_mcp_usage_by_user(start_date, end_date + interval '1 microsecond') h
         GROUP BY h.user_id
    )
    SELECT coalesce(sum(u.requests), 0)::bigint,
           coalesce(sum(u.prompt_tokens), 0)::bigint,
           coalesce(sum(u.completion_tokens), 0)::bigint,
           coalesce(sum(u.prompt_tokens + u.completion_tokens), 0)::bigint,
           coalesce(sum(u.cost), 0),
           (SELECT count(*) FROM (SELECT DISTINCT s.session_id
                                    FROM archon_mcp_usage_sessions(start_date, end_date + interval '1 microsecond') s) d),
           coalesce(sum(u.successful), 0)::bigint,
           coalesce(sum(u.failed), 0)::bigint,
           count(u.user_id)
      FROM per_user u
$fn$;
