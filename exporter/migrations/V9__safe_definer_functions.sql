-- SECURITY DEFINER functions written as PostgreSQL's documentation says they must be (issue #29).
--
-- V1, V5 and V7 created them with `SET search_path FROM CURRENT`, i.e. the migrator's
-- `"$user", public`, which searches the caller's temporary schema *first* for tables and views.
-- A login granted archon_reader, archon_exporter or archon_admin could create a temporary
-- `archon_reader_logins` (read anyone's rows), or a temporary table, view or trigger named like
-- one of the product's relations that ran its own function with the migrating role's rights
-- (become superuser).
--
-- Now each one runs with `search_path = pg_catalog, pg_temp` — built-ins first, the temporary
-- schema last (and, for functions and operators, never) — and names every product object with
-- its schema. The product's schema is not on the path at all, so an object someone else can
-- create there (Supabase grants CREATE on `public` to `anon` and `authenticated`) cannot
-- overload a built-in either. The schema is the one the migrations run in, spliced in below as
-- @schema@ (quoted as an identifier).
--
-- exporter/tests/db/definer.rs enumerates every function of the schema from the catalog and
-- fails on a SECURITY DEFINER function without that configuration, and runs the shadowing
-- attacks as real logins of every product role.

DO $safe$
DECLARE
    target text := quote_ident(current_schema());
BEGIN
    IF position('''' IN target) > 0 THEN
        RAISE EXCEPTION 'the schema name % holds a quote; migrate into another schema', target;
    END IF;

    EXECUTE replace($def$
CREATE OR REPLACE FUNCTION @schema@.archon_mcp_create_request_partitions(
    months_ahead integer DEFAULT 3,
    from_date date DEFAULT current_date
)
RETURNS SETOF text
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    month_start date;
    month_end   date;
    part_name   text;
    columns     text;
BEGIN
    -- Several replicas may call this at once; one at a time.
    PERFORM pg_advisory_xact_lock(hashtext('archon_mcp_create_request_partitions'));

    SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum)
      INTO columns
      FROM pg_attribute
     WHERE attrelid = '@schema@.archon_mcp_requests'::regclass
       AND attnum > 0 AND NOT attisdropped AND attgenerated = '';

    FOR i IN 0 .. greatest(months_ahead, 0) LOOP
        month_start := (date_trunc('month', from_date) + make_interval(months => i))::date;
        month_end   := (month_start + interval '1 month')::date;
        part_name   := format('archon_mcp_requests_%s', to_char(month_start, 'YYYY_MM'));
        CONTINUE WHEN to_regclass('@schema@.' || quote_ident(part_name)) IS NOT NULL;

        EXECUTE format('CREATE TABLE @schema@.%I (LIKE @schema@.archon_mcp_requests INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING GENERATED)',
                       part_name);
        EXECUTE format('INSERT INTO @schema@.%I (%s) SELECT %s FROM @schema@.archon_mcp_requests_default WHERE "timestamp" >= %L AND "timestamp" < %L',
                       part_name, columns, columns, month_start, month_end);
        EXECUTE format('DELETE FROM @schema@.archon_mcp_requests_default WHERE "timestamp" >= %L AND "timestamp" < %L',
                       month_start, month_end);
        EXECUTE format('ALTER TABLE @schema@.archon_mcp_requests ATTACH PARTITION @schema@.%I FOR VALUES FROM (%L) TO (%L)',
                       part_name, month_start, month_end);
        RETURN NEXT part_name;
    END LOOP;
END;
$fn$
$def$, '@schema@', target);

    EXECUTE replace($def$
CREATE OR REPLACE FUNCTION @schema@.archon_mcp_drop_request_partitions(keep interval, dry_run boolean DEFAULT false)
RETURNS SETOF text
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    cutoff timestamptz := now() - keep;
    part record;
    upper_bound timestamptz;
BEGIN
    -- The same lock as partition creation: one DDL round at a time across replicas.
    PERFORM pg_advisory_xact_lock(hashtext('archon_mcp_create_request_partitions'));
    FOR part IN
        SELECT c.relname::text AS name, pg_get_expr(c.relpartbound, c.oid) AS bound
          FROM pg_inherits i
          JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = '@schema@.archon_mcp_requests'::regclass
         ORDER BY 1
    LOOP
        CONTINUE WHEN part.bound = 'DEFAULT';
        upper_bound := substring(part.bound FROM 'TO \(''([^'']+)''\)')::timestamptz;
        IF upper_bound <= cutoff THEN
            IF NOT dry_run THEN
                EXECUTE format('DROP TABLE @schema@.%I', part.name);
            END IF;
            RETURN NEXT part.name;
        END IF;
    END LOOP;
    IF NOT dry_run THEN
        DELETE FROM @schema@.archon_mcp_requests_default WHERE "timestamp" < cutoff;
        DELETE FROM @schema@.archon_mcp_sessions s
         WHERE coalesce(s.disconnected_at, s.last_activity) < cutoff
           AND NOT EXISTS (SELECT 1 FROM @schema@.archon_mcp_requests r WHERE r.session_id = s.session_id);
    END IF;
END;
$fn$
$def$, '@schema@', target);

    EXECUTE replace($def$
CREATE OR REPLACE FUNCTION @schema@.archon_current_user_key()
RETURNS text
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    key text;
BEGIN
    SELECT l.user_key INTO key FROM @schema@.archon_reader_logins l WHERE l.login = session_user;
    IF key IS NOT NULL THEN
        RETURN key;
    END IF;
    IF EXISTS (SELECT 1 FROM @schema@.archon_trusted_authenticators a WHERE a.login = session_user) THEN
        BEGIN
            RETURN nullif(nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub', '');
        EXCEPTION WHEN others THEN
            RETURN NULL; -- malformed claims see nothing rather than fail the query
        END;
    END IF;
    RETURN NULL;
END;
$fn$
$def$, '@schema@', target);

    EXECUTE replace($def$
CREATE OR REPLACE FUNCTION @schema@.archon_current_user_id()
RETURNS uuid
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    principal text := @schema@.archon_current_user_key();
    found uuid;
BEGIN
    IF principal IS NULL THEN
        RETURN NULL;
    END IF;
    IF principal ~* '^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$' THEN
        RETURN principal::uuid;
    END IF;
    SELECT s.user_id INTO found FROM @schema@.archon_mcp_sessions s WHERE s.user_key = principal LIMIT 1;
    RETURN found;
END;
$fn$
$def$, '@schema@', target);
END
$safe$;
