-- Archon's migration 0.3.0/013 (disconnect tracking), rewritten for these tests from its
-- published schema: two columns, the stats view, get_disconnected_sessions.
ALTER TABLE archon_mcp_sessions ADD COLUMN IF NOT EXISTS total_duration INTEGER;
ALTER TABLE archon_mcp_sessions ADD COLUMN IF NOT EXISTS disconnect_reason VARCHAR(100);

CREATE FUNCTION get_disconnected_sessions(start_date TIMESTAMPTZ DEFAULT NOW() - INTERVAL '7 days',
                                          end_date TIMESTAMPTZ DEFAULT NOW())
RETURNS TABLE (session_id UUID, client_type VARCHAR, client_version VARCHAR, connected_at TIMESTAMPTZ,
               disconnected_at TIMESTAMPTZ, total_duration INTEGER, disconnect_reason VARCHAR,
               total_requests BIGINT) AS $$
BEGIN
    RETURN QUERY
    SELECT s.session_id, s.client_type, s.client_version, s.connected_at, s.disconnected_at, s.total_duration,
           s.disconnect_reason,
           (SELECT COUNT(*) FROM archon_mcp_requests r WHERE r.session_id = s.session_id)
      FROM archon_mcp_sessions s
     WHERE s.status = 'disconnected' AND s.disconnected_at BETWEEN start_date AND end_date
     ORDER BY s.disconnected_at DESC;
END;
$$ LANGUAGE plpgsql;

CREATE VIEW archon_mcp_session_stats AS
SELECT client_type,
       COUNT(*) AS total_sessions,
       COUNT(CASE WHEN status = 'active' THEN 1 END) AS active_sessions,
       COUNT(CASE WHEN status = 'disconnected' THEN 1 END) AS disconnected_sessions,
       AVG(total_duration) AS avg_duration_seconds,
       MAX(total_duration) AS max_duration_seconds,
       COUNT(CASE WHEN disconnect_reason = 'timeout' THEN 1 END) AS timeout_disconnects,
       COUNT(CASE WHEN disconnect_reason = 'client_disconnect' THEN 1 END) AS client_disconnects,
       COUNT(CASE WHEN disconnect_reason = 'server_shutdown' THEN 1 END) AS server_shutdown_disconnects,
       COUNT(CASE WHEN disconnect_reason LIKE 'error:%' THEN 1 END) AS error_disconnects
  FROM archon_mcp_sessions
 GROUP BY client_type;

INSERT INTO archon_migrations (version, migration_name) VALUES ('0.3.0', '013_add_disconnect_tracking');
