-- The parts of a Supabase database that Archon's MCP tracking migrations rely on, written for
-- these tests: the API roles (cluster-wide, so created once), the `auth` schema's role() and
-- uid() reading PostgREST's verified claims, Supabase's default privileges for the API roles
-- on `public`, and Archon's own migration table.
DO $roles$
DECLARE r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['anon', 'authenticated', 'service_role'] LOOP
        BEGIN
            EXECUTE format('CREATE ROLE %I NOLOGIN', r);
        EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
        END;
    END LOOP;
    BEGIN
        CREATE ROLE authenticator LOGIN NOINHERIT PASSWORD 'authenticator-pw';
    EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
    END;
    BEGIN
        GRANT anon, authenticated, service_role TO authenticator;
    EXCEPTION WHEN others THEN NULL; -- another test's database granted it at the same moment
    END;
END
$roles$;

CREATE SCHEMA auth;
CREATE OR REPLACE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS $$
    SELECT (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')::uuid
$$;
CREATE FUNCTION auth.role() RETURNS text LANGUAGE sql STABLE AS $$
    SELECT nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role'
$$;
GRANT USAGE ON SCHEMA auth, public TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON TABLES TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON SEQUENCES TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON FUNCTIONS TO anon, authenticated, service_role;

CREATE TABLE archon_migrations (
    id             serial PRIMARY KEY,
    version        text NOT NULL,
    migration_name text NOT NULL,
    applied_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (version, migration_name)
);
