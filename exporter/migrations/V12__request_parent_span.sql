-- The span a request continues (issue #33): with a traced client, its CLIENT span — the agent's
-- side of the call — so a dashboard can join a tool call to the agent run that made it
-- (trace_id, parent_span_id). NULL when the request started a trace of its own.
ALTER TABLE archon_mcp_requests ADD COLUMN parent_span_id text;
COMMENT ON COLUMN archon_mcp_requests.parent_span_id IS
    'Hex id of the span the request continues (its caller''s, e.g. a traced MCP client''s); NULL for a new trace';
