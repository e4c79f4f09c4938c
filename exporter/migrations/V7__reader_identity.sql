-- A reader's identity comes from something the reader cannot set itself (issue #13).
--
-- V4 took a reader's user from the `archon.user_id` setting or `request.jwt.claims`, both of
-- which any login can SET: a reader could read anyone's rows. Now:
--
--   * a direct SQL login reads the rows of the user key an admin mapped its *login* to
--     (archon_reader_logins); `session_user` is the login that authenticated and no SET ROLE
--     or setting changes it;
--   * `request.jwt.claims ->> 'sub'` is honoured only on connections whose login an admin
--     registered as a trusted authenticator (archon_trusted_authenticators): PostgREST's or
--     Supabase's `authenticator`, which verifies the JWT itself before it sets the claims and
--     switches into a NOLOGIN role (`anon`, `authenticated`) that is granted archon_reader;
--   * anything else — `archon.user_id`, claims set by any other login — sees nothing.
--
-- The identity functions are SECURITY DEFINER (they read the mapping tables and look a key up
-- across RLS) and executable by readers only.

CREATE TABLE archon_reader_logins (
    login      name PRIMARY KEY,
    user_key   text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE archon_reader_logins IS
    'Which user''s rows a direct SQL login (granted archon_reader) reads: login role name -> user_key (the principal, e.g. JWT sub). Maintained by admins.';

CREATE TABLE archon_trusted_authenticators (
    login      name PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE archon_trusted_authenticators IS
    'Logins that verify JWTs themselves (PostgREST/Supabase authenticator): only on their connections is request.jwt.claims trusted. Maintained by admins.';

REVOKE ALL ON archon_reader_logins, archon_trusted_authenticators FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE, DELETE ON archon_reader_logins, archon_trusted_authenticators TO archon_admin;

CREATE OR REPLACE FUNCTION archon_current_user_key()
RETURNS text
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path FROM CURRENT
AS $fn$
DECLARE
    key text;
BEGIN
    SELECT l.user_key INTO key FROM archon_reader_logins l WHERE l.login = session_user;
    IF key IS NOT NULL THEN
        RETURN key;
    END IF;
    IF EXISTS (SELECT 1 FROM archon_trusted_authenticators a WHERE a.login = session_user) THEN
        BEGIN
            RETURN nullif(nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub', '');
        EXCEPTION WHEN others THEN
            RETURN NULL; -- malformed claims see nothing rather than fail the query
        END;
    END IF;
    RETURN NULL;
END;
$fn$;

CREATE OR REPLACE FUNCTION archon_current_user_id()
RETURNS uuid
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path FROM CURRENT
AS $fn$
DECLARE
    principal text := archon_current_user_key();
    found uuid;
BEGIN
    IF principal IS NULL THEN
        RETURN NULL;
    END IF;
    IF principal ~* '^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$' THEN
        RETURN principal::uuid;
    END IF;
    SELECT s.user_id INTO found FROM archon_mcp_sessions s WHERE s.user_key = principal LIMIT 1;
    RETURN found;
END;
$fn$;

-- Only the roles whose policies call them; nobody can probe which user keys exist.
REVOKE EXECUTE ON FUNCTION archon_current_user_key() FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION archon_current_user_id() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION archon_current_user_key(), archon_current_user_id() TO archon_reader, archon_admin;

-- The schema version, for `/readyz` under a login granted only archon_exporter (refinery
-- created the table before V1 ran).
GRANT SELECT ON archon_schema_history TO archon_exporter, archon_admin, archon_grafana;
