-- Budgets, their state, and the context cost of the tool catalog (issue #16).
--
-- A budget caps the monthly cost of a scope: everything ('all'), one user (by user_key, the
-- principal), one department, one tool, or one client type. archon_budget_status() gives, per
-- budget in force, the spend of the month so far, a forecast to the month's end and a state.
--
-- Forecast: the linear run rate of the month so far — spend × (length of the month / time
-- elapsed), the elapsed time counted from the later of the month's start and the budget's
-- effective date, and at least one day (so the first hours of a month do not extrapolate a
-- single call into a fortune).
--
-- State, first that applies: 'over' (spend ≥ amount), 'warning' (spend ≥ the lowest warning
-- threshold), 'forecast_over' (forecast ≥ amount), 'ok'.
--
-- Spend is the sum of estimated_cost (USD) of the requests the caller may read: row-level
-- security applies, so a reader sees each budget's spend over its own rows.

CREATE TABLE archon_budgets (
    budget_id       uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    scope           varchar(20) NOT NULL,
    scope_value     text,
    monthly_amount  numeric(14, 2) NOT NULL,
    currency        char(3) NOT NULL DEFAULT 'USD',
    warn_at         integer[] NOT NULL DEFAULT '{80,100}',
    effective_from  date NOT NULL DEFAULT current_date,
    effective_to    date,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT valid_scope CHECK (scope IN ('all', 'user', 'department', 'tool', 'client_type')),
    CONSTRAINT scope_value_given CHECK ((scope = 'all') = (scope_value IS NULL)),
    CONSTRAINT positive_amount CHECK (monthly_amount > 0),
    -- Costs are stored in USD; other currencies could not be compared.
    CONSTRAINT usd_only CHECK (currency = 'USD'),
    CONSTRAINT warn_percentages CHECK (cardinality(warn_at) > 0 AND 0 < ALL (warn_at) AND 1000 >= ALL (warn_at)),
    CONSTRAINT valid_period CHECK (effective_to IS NULL OR effective_to >= effective_from)
);
CREATE UNIQUE INDEX archon_budgets_one_per_scope_and_start
    ON archon_budgets (scope, coalesce(scope_value, ''), effective_from);

COMMENT ON TABLE archon_budgets IS
    'Monthly cost budgets by scope (all, user = user_key, department, tool, client_type); see archon_budget_status()';

-- The requests a budget of (scope, value) counts between two times. User and department scopes
-- match a request on its own user (a request is never counted for a user who did not make it).
CREATE FUNCTION archon_budget_requests(p_scope text, p_value text, p_from timestamptz, p_to timestamptz)
RETURNS SETOF archon_mcp_requests
LANGUAGE sql
STABLE
-- Planned on its own, without JIT: over a month of a large table the planner's estimates turn
-- JIT on, and compiling costs ten times the scan of a few thousand rows.
SET jit = off
AS $fn$
    SELECT r.*
      FROM archon_mcp_requests r
      JOIN archon_mcp_sessions s ON s.session_id = r.session_id
     WHERE r."timestamp" >= p_from AND r."timestamp" < p_to
       AND CASE p_scope
             WHEN 'all' THEN true
             WHEN 'user' THEN s.user_key = p_value AND r.user_id = s.user_id
             WHEN 'department' THEN s.user_department = p_value AND r.user_id = s.user_id
             WHEN 'tool' THEN r.tool_name = p_value
             WHEN 'client_type' THEN s.client_type = p_value
           END
$fn$;

CREATE FUNCTION archon_budget_spend(p_scope text, p_value text, p_from timestamptz, p_to timestamptz)
RETURNS TABLE (spend numeric, requests bigint)
LANGUAGE sql
STABLE
AS $fn$
    SELECT coalesce(sum(r.estimated_cost), 0), count(*) FROM archon_budget_requests(p_scope, p_value, p_from, p_to) r
$fn$;

CREATE FUNCTION archon_budget_status(p_at timestamptz DEFAULT now())
RETURNS TABLE (
    budget_id uuid,
    scope varchar,
    scope_value text,
    monthly_amount numeric,
    currency char(3),
    month_start timestamptz,
    spend_mtd numeric,
    forecast numeric,
    percent_used numeric,
    state text,
    requests_mtd bigint
)
LANGUAGE sql
STABLE
SET jit = off
AS $fn$
    WITH month AS (
        SELECT date_trunc('month', p_at) AS start,
               date_trunc('month', p_at) + interval '1 month' AS "end"
    ),
    in_force AS (
        SELECT b.*, m.start, m."end",
               greatest(m.start, b.effective_from::timestamptz) AS counted_from
          FROM archon_budgets b, month m
         WHERE b.effective_from <= p_at::date
           AND (b.effective_to IS NULL OR b.effective_to >= p_at::date)
    ),
    spent AS (
        SELECT c.*, sp.spend, sp.requests,
               extract(epoch FROM c."end" - c.counted_from)
                 / greatest(extract(epoch FROM p_at - c.counted_from), 86400) AS run_rate_factor
          FROM in_force c,
               LATERAL archon_budget_spend(c.scope, c.scope_value, c.counted_from, least(p_at, c."end")) sp
    )
    SELECT s.budget_id, s.scope, s.scope_value, s.monthly_amount, s.currency, s.start,
           round(s.spend, 6),
           round(s.spend * greatest(s.run_rate_factor, 1), 6),
           round(100 * s.spend / s.monthly_amount, 2),
           CASE WHEN s.spend >= s.monthly_amount THEN 'over'
                WHEN 100 * s.spend >= s.monthly_amount * (SELECT min(w) FROM unnest(s.warn_at) w) THEN 'warning'
                WHEN s.spend * greatest(s.run_rate_factor, 1) >= s.monthly_amount THEN 'forecast_over'
                ELSE 'ok' END,
           s.requests
      FROM spent s
     ORDER BY s.scope, s.scope_value NULLS FIRST
$fn$;

COMMENT ON FUNCTION archon_budget_status(timestamptz) IS
    'Per budget in force at p_at: month-to-date spend, linear run-rate forecast to month end, percent used, state (ok | warning | over | forecast_over)';

-- Readers see the budgets that cover their own rows; admins manage them.
ALTER TABLE archon_budgets ENABLE ROW LEVEL SECURITY;
CREATE POLICY archon_budgets_writers ON archon_budgets
    FOR ALL TO archon_admin USING (true) WITH CHECK (true);
CREATE POLICY archon_budgets_readers_of_all ON archon_budgets
    FOR SELECT TO archon_exporter, archon_grafana USING (true);
CREATE POLICY archon_budgets_own ON archon_budgets
    FOR SELECT TO archon_reader USING (
        scope = 'all'
        OR (scope = 'user' AND scope_value = (SELECT archon_current_user_key()))
        OR (scope = 'department' AND EXISTS (
                SELECT 1 FROM archon_mcp_sessions s WHERE s.user_department = archon_budgets.scope_value))
        OR (scope = 'tool' AND EXISTS (
                SELECT 1 FROM archon_mcp_requests r WHERE r.tool_name = archon_budgets.scope_value))
        OR (scope = 'client_type' AND EXISTS (
                SELECT 1 FROM archon_mcp_sessions s WHERE s.client_type = archon_budgets.scope_value))
    );
GRANT SELECT, INSERT, UPDATE, DELETE ON archon_budgets TO archon_admin;
GRANT SELECT ON archon_budgets TO archon_exporter, archon_grafana, archon_reader;

-- The tool catalog a session's model carries in its context: the estimated tokens of the
-- last `tools/list` result the session received (names, descriptions, input schemas).
ALTER TABLE archon_mcp_sessions ADD COLUMN catalog_tokens integer;
COMMENT ON COLUMN archon_mcp_sessions.catalog_tokens IS
    'Estimated tokens (characters / 4) of the tools/list result the session received: context every model call of the session carries';
