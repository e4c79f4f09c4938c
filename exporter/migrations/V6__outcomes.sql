-- Outcomes as the client saw them (issue #12).
--
--   * 'cancelled' is a request status of its own: cancelled by the client, or abandoned because
--     the client went away before the response (error_message 'client_disconnect'). 'timeout'
--     is a cancellation whose reason said the client timed out.
--   * Durations keep their precision in the tables (sub-millisecond tools) and are rounded in
--     the SQL API's outputs: milliseconds to 3 decimals, seconds to 1.
--   * What "active" means is said where it is used.

ALTER TABLE archon_mcp_requests DROP CONSTRAINT valid_status;
ALTER TABLE archon_mcp_requests
    ADD CONSTRAINT valid_status CHECK (status IN ('success', 'error', 'timeout', 'cancelled'));

COMMENT ON COLUMN archon_mcp_requests.status IS
    'success | error | timeout (the client gave up waiting) | cancelled (by the client, or it went away: error_message client_disconnect)';
COMMENT ON COLUMN archon_mcp_requests.duration_ms IS
    'From the request''s arrival at the server to its response being handed to the transport, or to when the server gave it up (cancelled, timeout)';
COMMENT ON COLUMN archon_mcp_sessions.status IS
    'active: open, with activity within the reaper''s idle window (5 min); idle: open (the client is still connected) but quiet longer; disconnected: ended';
COMMENT ON COLUMN archon_mcp_sessions.disconnected_at IS
    'When the session ended: the client left (client_disconnect, transport_error), the server stopped (server_shutdown), or, when only inactivity ended it (timeout), its last activity';

CREATE OR REPLACE VIEW archon_mcp_session_stats WITH (security_invoker = true) AS
SELECT
    client_type,
    count(*) AS total_sessions,
    count(*) FILTER (WHERE status = 'active') AS active_sessions,
    count(*) FILTER (WHERE status = 'disconnected') AS disconnected_sessions,
    round(avg(total_duration), 1) AS avg_duration_seconds,
    max(total_duration) AS max_duration_seconds,
    count(*) FILTER (WHERE disconnect_reason = 'timeout') AS timeout_disconnects,
    count(*) FILTER (WHERE disconnect_reason = 'client_disconnect') AS client_disconnects,
    count(*) FILTER (WHERE disconnect_reason = 'server_shutdown') AS server_shutdown_disconnects,
    count(*) FILTER (WHERE disconnect_reason LIKE 'error:%' OR disconnect_reason = 'transport_error') AS error_disconnects,
    count(*) FILTER (WHERE status = 'idle') AS idle_sessions
FROM archon_mcp_sessions
GROUP BY client_type;

CREATE OR REPLACE FUNCTION get_mcp_usage_by_tool(
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
           round((percentile_cont(0.95) WITHIN GROUP (ORDER BY r.duration_ms))::numeric, 3)::double precision
      FROM archon_mcp_requests r
     WHERE r."timestamp" BETWEEN start_date AND end_date
       AND r.tool_name IS NOT NULL
     GROUP BY r.tool_name
     ORDER BY count(*) DESC, r.tool_name
$fn$;

COMMENT ON FUNCTION get_active_mcp_clients() IS
    'Live sessions: not ended — the connection is open (its end is recorded within seconds of the client leaving), or for stateless HTTP sessions, activity within their idle window. status says active (activity within 5 min) or idle (quiet, still connected)';

-- An unknown model is unpriced, not free: NULL, as estimated_cost is for such requests.
CREATE OR REPLACE FUNCTION calculate_request_cost(
    model_name_param varchar,
    provider_param varchar,
    prompt_tokens_param integer,
    completion_tokens_param integer
)
RETURNS numeric
LANGUAGE sql
STABLE
AS $fn$
    SELECT round(coalesce(prompt_tokens_param, 0) / 1000.0 * p.input_price_per_1k
                 + coalesce(completion_tokens_param, 0) / 1000.0 * p.output_price_per_1k, 6)
      FROM archon_llm_price_at(model_name_param, now(), provider_param) p
$fn$;

COMMENT ON FUNCTION calculate_request_cost(varchar, varchar, integer, integer) IS
    'Cost in USD of a request at the model''s current price; NULL when the model is not priced';
