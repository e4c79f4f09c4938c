-- Archon's MCP tracking as its migration 0.3.0/001 leaves a database, rewritten for these tests
-- from its published schema: the same tables, columns, types, defaults, constraints, index
-- names, functions (with the same signatures and results), trigger and policies.
CREATE TABLE archon_mcp_sessions (
    session_id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    client_type VARCHAR(50) NOT NULL DEFAULT 'Unknown',
    client_version VARCHAR(50),
    client_capabilities JSONB,
    connected_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    disconnected_at TIMESTAMPTZ,
    last_activity TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    status VARCHAR(20) NOT NULL DEFAULT 'active',
    metadata JSONB DEFAULT '{}',
    CONSTRAINT valid_status CHECK (status IN ('active', 'idle', 'disconnected'))
);
CREATE INDEX idx_archon_mcp_sessions_status ON archon_mcp_sessions (status);
CREATE INDEX idx_archon_mcp_sessions_client_type ON archon_mcp_sessions (client_type);
CREATE INDEX idx_archon_mcp_sessions_connected_at ON archon_mcp_sessions (connected_at DESC);
CREATE INDEX idx_archon_mcp_sessions_last_activity ON archon_mcp_sessions (last_activity DESC);
CREATE INDEX idx_archon_mcp_sessions_status_activity ON archon_mcp_sessions (status, last_activity DESC);

CREATE TABLE archon_mcp_requests (
    request_id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    session_id UUID NOT NULL REFERENCES archon_mcp_sessions (session_id) ON DELETE CASCADE,
    method VARCHAR(100) NOT NULL,
    tool_name VARCHAR(100),
    prompt_tokens INTEGER DEFAULT 0,
    completion_tokens INTEGER DEFAULT 0,
    total_tokens INTEGER GENERATED ALWAYS AS (prompt_tokens + completion_tokens) STORED,
    estimated_cost DECIMAL(10, 6) DEFAULT 0.000000,
    timestamp TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    duration_ms INTEGER,
    status VARCHAR(20) NOT NULL DEFAULT 'success',
    error_message TEXT,
    CONSTRAINT valid_status CHECK (status IN ('success', 'error', 'timeout'))
);
CREATE INDEX idx_archon_mcp_requests_session_id ON archon_mcp_requests (session_id);
CREATE INDEX idx_archon_mcp_requests_timestamp ON archon_mcp_requests (timestamp DESC);
CREATE INDEX idx_archon_mcp_requests_method ON archon_mcp_requests (method);
CREATE INDEX idx_archon_mcp_requests_tool_name ON archon_mcp_requests (tool_name);
CREATE INDEX idx_archon_mcp_requests_session_time ON archon_mcp_requests (session_id, timestamp DESC);
CREATE INDEX idx_archon_mcp_requests_method_time ON archon_mcp_requests (method, timestamp DESC);

CREATE TABLE archon_llm_pricing (
    id SERIAL PRIMARY KEY,
    model_name VARCHAR(100) NOT NULL,
    provider VARCHAR(50) NOT NULL,
    input_price_per_1k DECIMAL(10, 6) NOT NULL,
    output_price_per_1k DECIMAL(10, 6) NOT NULL,
    effective_date DATE NOT NULL DEFAULT CURRENT_DATE,
    notes TEXT,
    CONSTRAINT unique_model_provider_date UNIQUE (model_name, provider, effective_date)
);
CREATE INDEX idx_archon_llm_pricing_model_provider ON archon_llm_pricing (model_name, provider, effective_date DESC);
INSERT INTO archon_llm_pricing (model_name, provider, input_price_per_1k, output_price_per_1k, effective_date, notes) VALUES
    ('gpt-4o', 'OpenAI', 0.0025, 0.010, '2024-05-13', 'GPT-4o'),
    ('gpt-4o-mini', 'OpenAI', 0.00015, 0.0006, '2024-07-18', 'GPT-4o Mini'),
    ('claude-3-5-sonnet-20241022', 'Anthropic', 0.003, 0.015, '2024-10-22', 'Claude 3.5 Sonnet'),
    ('claude-3-haiku-20240307', 'Anthropic', 0.00025, 0.00125, '2024-03-07', 'Claude 3 Haiku');

CREATE FUNCTION get_active_mcp_clients()
RETURNS TABLE (session_id UUID, client_type VARCHAR, client_version VARCHAR, connected_at TIMESTAMPTZ,
               last_activity TIMESTAMPTZ, status VARCHAR) AS $$
BEGIN
    RETURN QUERY
    SELECT s.session_id, s.client_type, s.client_version, s.connected_at, s.last_activity, s.status
      FROM archon_mcp_sessions s
     WHERE s.status IN ('active', 'idle') AND s.disconnected_at IS NULL
     ORDER BY s.last_activity DESC;
END;
$$ LANGUAGE plpgsql;

CREATE FUNCTION get_mcp_usage_summary(start_date TIMESTAMPTZ DEFAULT NOW() - INTERVAL '30 days',
                                      end_date TIMESTAMPTZ DEFAULT NOW())
RETURNS TABLE (total_requests BIGINT, total_prompt_tokens BIGINT, total_completion_tokens BIGINT,
               total_tokens BIGINT, total_cost DECIMAL, unique_sessions BIGINT) AS $$
BEGIN
    RETURN QUERY
    SELECT COUNT(*)::BIGINT, SUM(prompt_tokens)::BIGINT, SUM(completion_tokens)::BIGINT, SUM(total_tokens)::BIGINT,
           SUM(estimated_cost)::DECIMAL, COUNT(DISTINCT session_id)::BIGINT
      FROM archon_mcp_requests
     WHERE timestamp BETWEEN start_date AND end_date AND status = 'success';
END;
$$ LANGUAGE plpgsql;

CREATE FUNCTION get_mcp_usage_by_tool(start_date TIMESTAMPTZ DEFAULT NOW() - INTERVAL '30 days',
                                      end_date TIMESTAMPTZ DEFAULT NOW())
RETURNS TABLE (tool_name VARCHAR, request_count BIGINT, total_tokens BIGINT, total_cost DECIMAL,
               avg_duration_ms DECIMAL) AS $$
BEGIN
    RETURN QUERY
    SELECT r.tool_name, COUNT(*)::BIGINT, SUM(r.total_tokens)::BIGINT, SUM(r.estimated_cost)::DECIMAL,
           AVG(r.duration_ms)::DECIMAL
      FROM archon_mcp_requests r
     WHERE r.timestamp BETWEEN start_date AND end_date AND r.status = 'success' AND r.tool_name IS NOT NULL
     GROUP BY r.tool_name
     ORDER BY COUNT(*) DESC;
END;
$$ LANGUAGE plpgsql;

CREATE FUNCTION calculate_request_cost(model_name_param VARCHAR, provider_param VARCHAR,
                                       prompt_tokens_param INTEGER, completion_tokens_param INTEGER)
RETURNS DECIMAL AS $$
DECLARE input_price DECIMAL; output_price DECIMAL;
BEGIN
    SELECT input_price_per_1k, output_price_per_1k INTO input_price, output_price
      FROM archon_llm_pricing
     WHERE model_name = model_name_param AND provider = provider_param
     ORDER BY effective_date DESC LIMIT 1;
    IF input_price IS NULL THEN
        RETURN 0.000000;
    END IF;
    RETURN ROUND(prompt_tokens_param::DECIMAL / 1000.0 * input_price
                 + completion_tokens_param::DECIMAL / 1000.0 * output_price, 6);
END;
$$ LANGUAGE plpgsql;

CREATE FUNCTION update_session_status() RETURNS TRIGGER AS $$
BEGIN
    UPDATE archon_mcp_sessions
       SET last_activity = NEW.timestamp,
           status = CASE WHEN NEW.timestamp > NOW() - INTERVAL '5 minutes' THEN 'active' ELSE 'idle' END
     WHERE session_id = NEW.session_id;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER trigger_update_session_status AFTER INSERT ON archon_mcp_requests
    FOR EACH ROW EXECUTE FUNCTION update_session_status();

ALTER TABLE archon_mcp_sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE archon_mcp_requests ENABLE ROW LEVEL SECURITY;
ALTER TABLE archon_llm_pricing ENABLE ROW LEVEL SECURITY;
CREATE POLICY "Allow service role full access to archon_mcp_sessions" ON archon_mcp_sessions
    FOR ALL USING (auth.role() = 'service_role');
CREATE POLICY "Allow authenticated users to read archon_mcp_sessions" ON archon_mcp_sessions
    FOR SELECT TO authenticated USING (true);
CREATE POLICY "Allow service role full access to archon_mcp_requests" ON archon_mcp_requests
    FOR ALL USING (auth.role() = 'service_role');
CREATE POLICY "Allow authenticated users to read archon_mcp_requests" ON archon_mcp_requests
    FOR SELECT TO authenticated USING (true);
CREATE POLICY "Allow service role full access to archon_llm_pricing" ON archon_llm_pricing
    FOR ALL USING (auth.role() = 'service_role');
CREATE POLICY "Allow authenticated users to read archon_llm_pricing" ON archon_llm_pricing
    FOR SELECT TO authenticated USING (true);

INSERT INTO archon_migrations (version, migration_name) VALUES ('0.3.0', '001_add_mcp_client_tracking');
