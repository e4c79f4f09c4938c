-- Archon's migration 0.3.0/014 (user context), rewritten for these tests from its published
-- schema: three user columns and their indexes, the user stats view, get_user_sessions,
-- get_user_activity_summary and the own-sessions policy.
ALTER TABLE archon_mcp_sessions ADD COLUMN IF NOT EXISTS user_id UUID;
ALTER TABLE archon_mcp_sessions ADD COLUMN IF NOT EXISTS user_email VARCHAR(255);
ALTER TABLE archon_mcp_sessions ADD COLUMN IF NOT EXISTS user_name VARCHAR(255);
CREATE INDEX idx_archon_mcp_sessions_user_id ON archon_mcp_sessions (user_id);
CREATE INDEX idx_archon_mcp_sessions_user_email ON archon_mcp_sessions (user_email);
CREATE INDEX idx_archon_mcp_sessions_user_activity ON archon_mcp_sessions (user_id, last_activity DESC)
    WHERE user_id IS NOT NULL;

CREATE VIEW archon_mcp_user_stats AS
SELECT user_id, user_email, user_name,
       COUNT(*) AS total_sessions,
       COUNT(CASE WHEN status = 'active' THEN 1 END) AS active_sessions,
       COUNT(CASE WHEN status = 'disconnected' THEN 1 END) AS disconnected_sessions,
       AVG(total_duration) AS avg_session_duration_seconds,
       MAX(total_duration) AS max_session_duration_seconds,
       MIN(connected_at) AS first_session_at,
       MAX(last_activity) AS last_activity_at,
       (SELECT COUNT(*) FROM archon_mcp_requests r
         WHERE r.session_id IN (SELECT session_id FROM archon_mcp_sessions s2 WHERE s2.user_id = s.user_id))
           AS total_requests,
       (SELECT COALESCE(SUM(total_tokens), 0) FROM archon_mcp_requests r
         WHERE r.session_id IN (SELECT session_id FROM archon_mcp_sessions s2 WHERE s2.user_id = s.user_id))
           AS total_tokens,
       (SELECT COALESCE(SUM(estimated_cost), 0) FROM archon_mcp_requests r
         WHERE r.session_id IN (SELECT session_id FROM archon_mcp_sessions s2 WHERE s2.user_id = s.user_id))
           AS total_cost
  FROM archon_mcp_sessions s
 WHERE user_id IS NOT NULL
 GROUP BY user_id, user_email, user_name;

CREATE FUNCTION get_user_sessions(p_user_id UUID, start_date TIMESTAMPTZ DEFAULT NOW() - INTERVAL '30 days',
                                  end_date TIMESTAMPTZ DEFAULT NOW())
RETURNS TABLE (session_id UUID, client_type VARCHAR, client_version VARCHAR, connected_at TIMESTAMPTZ,
               disconnected_at TIMESTAMPTZ, total_duration INTEGER, status VARCHAR, disconnect_reason VARCHAR,
               total_requests BIGINT) AS $$
BEGIN
    RETURN QUERY
    SELECT s.session_id, s.client_type, s.client_version, s.connected_at, s.disconnected_at, s.total_duration,
           s.status, s.disconnect_reason,
           (SELECT COUNT(*) FROM archon_mcp_requests r WHERE r.session_id = s.session_id)
      FROM archon_mcp_sessions s
     WHERE s.user_id = p_user_id AND s.connected_at BETWEEN start_date AND end_date
     ORDER BY s.connected_at DESC;
END;
$$ LANGUAGE plpgsql;

-- As published, it fails at run time ("column reference ... is ambiguous"): kept that way.
CREATE FUNCTION get_user_activity_summary(p_user_id UUID, days INTEGER DEFAULT 30)
RETURNS TABLE (user_id UUID, user_email VARCHAR, user_name VARCHAR, total_sessions BIGINT,
               active_sessions BIGINT, total_requests BIGINT, total_tokens BIGINT, total_cost DECIMAL,
               avg_session_duration INTEGER, most_used_client VARCHAR, first_seen TIMESTAMPTZ,
               last_seen TIMESTAMPTZ) AS $$
BEGIN
    RETURN QUERY
    SELECT s.user_id, s.user_email, s.user_name, COUNT(*)::BIGINT, 0::BIGINT, 0::BIGINT, 0::BIGINT, 0::DECIMAL,
           0, NULL::VARCHAR, MIN(connected_at), MAX(last_activity)
      FROM archon_mcp_sessions s
     WHERE user_id = p_user_id
     GROUP BY s.user_id, s.user_email, s.user_name;
END;
$$ LANGUAGE plpgsql;

CREATE POLICY "Users can read their own sessions" ON archon_mcp_sessions
    FOR SELECT TO authenticated USING (user_id = auth.uid() OR user_id IS NULL);

INSERT INTO archon_migrations (version, migration_name) VALUES ('0.3.0', '014_add_user_context_to_sessions');
