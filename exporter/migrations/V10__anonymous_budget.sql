-- A budget for the calls of no user (issue #29): scope 'anonymous', without a value. With
-- budgets enforced at the server, an over-budget user who drops the token is anonymous; the
-- calls of no user are counted against this budget (and, without one, refused while per-user
-- or per-department budgets are enforced), never a way around the budget.

ALTER TABLE archon_budgets
    DROP CONSTRAINT valid_scope,
    ADD CONSTRAINT valid_scope CHECK (scope IN ('all', 'anonymous', 'user', 'department', 'tool', 'client_type')),
    DROP CONSTRAINT scope_value_given,
    ADD CONSTRAINT scope_value_given CHECK ((scope IN ('all', 'anonymous')) = (scope_value IS NULL));

COMMENT ON TABLE archon_budgets IS
    'Monthly cost budgets by scope (all, anonymous = requests of no user, user = user_key, department, tool, client_type); see archon_budget_status()';

CREATE OR REPLACE FUNCTION archon_budget_requests(p_scope text, p_value text, p_from timestamptz, p_to timestamptz)
RETURNS SETOF archon_mcp_requests
LANGUAGE sql
STABLE
SET jit = off
AS $fn$
    SELECT r.*
      FROM archon_mcp_requests r
      JOIN archon_mcp_sessions s ON s.session_id = r.session_id
     WHERE r."timestamp" >= p_from AND r."timestamp" < p_to
       AND CASE p_scope
             WHEN 'all' THEN true
             WHEN 'anonymous' THEN r.user_id IS NULL
             WHEN 'user' THEN s.user_key = p_value AND r.user_id = s.user_id
             WHEN 'department' THEN s.user_department = p_value AND r.user_id = s.user_id
             WHEN 'tool' THEN r.tool_name = p_value
             WHEN 'client_type' THEN s.client_type = p_value
           END
$fn$;
