-- Row-level security and roles (DESIGN §5).
--
-- Four group roles (NOLOGIN); grant them to your login roles:
--   archon_exporter  writes sessions and requests, sees all rows     (the exporter service)
--   archon_admin     reads and writes everything                     (operators)
--   archon_grafana   reads every row, writes nothing                 (dashboards)
--   archon_reader    reads only the rows of its own user             (end users, PostgREST)
-- A reader's user comes from the `archon.user_id` setting (a UUID) or, under
-- Supabase/PostgREST, from `request.jwt.claims` ->> 'sub'.
--
-- Each policy names its roles. Archon's "users read their own sessions" policy was OR-ed away
-- by a `USING (true)` policy that applied to everyone; here no permissive policy is open to
-- every role. Table owners and superusers bypass RLS as usual.

DO $roles$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['archon_exporter', 'archon_admin', 'archon_grafana', 'archon_reader'] LOOP
        BEGIN
            EXECUTE format('CREATE ROLE %I NOLOGIN', r);
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL; -- roles are per cluster: another database (or a concurrent migrator) made it
        END;
    END LOOP;
END
$roles$;

-- The principal (JWT `sub`) of the current request, if any.
CREATE FUNCTION archon_current_user_key()
RETURNS text
LANGUAGE sql
STABLE
AS $fn$
    SELECT coalesce(
        nullif(current_setting('archon.user_id', true), ''),
        nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
$fn$;

-- The user_id of the current request: the principal if it is a UUID, else the user_id the
-- exporter derived from it (UUIDv5, looked up by user_key). NULL when there is none or the
-- settings are malformed, so a bad claim sees nothing rather than failing the query.
CREATE FUNCTION archon_current_user_id()
RETURNS uuid
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path FROM CURRENT
AS $fn$
DECLARE
    principal text;
    found uuid;
BEGIN
    BEGIN
        principal := archon_current_user_key();
    EXCEPTION WHEN others THEN
        RETURN NULL;
    END;
    IF principal IS NULL THEN
        RETURN NULL;
    END IF;
    IF principal ~* '^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$' THEN
        RETURN principal::uuid;
    END IF;
    SELECT s.user_id INTO found
      FROM archon_mcp_sessions s
     WHERE s.user_key = principal
     LIMIT 1;
    RETURN found;
END;
$fn$;

ALTER TABLE archon_mcp_sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE archon_mcp_requests ENABLE ROW LEVEL SECURITY;

CREATE POLICY archon_mcp_sessions_writers ON archon_mcp_sessions
    FOR ALL TO archon_exporter, archon_admin USING (true) WITH CHECK (true);
CREATE POLICY archon_mcp_sessions_dashboards ON archon_mcp_sessions
    FOR SELECT TO archon_grafana USING (true);
CREATE POLICY archon_mcp_sessions_own_rows ON archon_mcp_sessions
    FOR SELECT TO archon_reader USING (user_id = (SELECT archon_current_user_id()));

CREATE POLICY archon_mcp_requests_writers ON archon_mcp_requests
    FOR ALL TO archon_exporter, archon_admin USING (true) WITH CHECK (true);
CREATE POLICY archon_mcp_requests_dashboards ON archon_mcp_requests
    FOR SELECT TO archon_grafana USING (true);
CREATE POLICY archon_mcp_requests_own_rows ON archon_mcp_requests
    FOR SELECT TO archon_reader USING (user_id = (SELECT archon_current_user_id()));

GRANT SELECT, INSERT, UPDATE ON archon_mcp_sessions, archon_mcp_requests TO archon_exporter;
GRANT SELECT ON archon_llm_pricing TO archon_exporter, archon_grafana, archon_reader;
GRANT SELECT, INSERT, UPDATE, DELETE ON archon_mcp_sessions, archon_mcp_requests, archon_llm_pricing TO archon_admin;
GRANT USAGE ON SEQUENCE archon_llm_pricing_id_seq TO archon_admin;
GRANT SELECT ON archon_mcp_sessions, archon_mcp_requests TO archon_grafana, archon_reader;
GRANT SELECT ON archon_mcp_user_stats, archon_mcp_session_stats
    TO archon_exporter, archon_admin, archon_grafana, archon_reader;

-- Creating partitions is DDL run as the function's owner: writers only.
REVOKE EXECUTE ON FUNCTION archon_mcp_create_request_partitions(integer, date) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION archon_mcp_create_request_partitions(integer, date) TO archon_exporter, archon_admin;
