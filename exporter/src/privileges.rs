//! Privileges on the product's objects are the product roles' only.
//!
//! A database's default privileges can hand every new table and function to other roles: on
//! Supabase, `ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL … TO anon, authenticated,
//! service_role` gives any signed-in user the login mapping tables (who reads whose rows), and
//! EXECUTE on the `SECURITY DEFINER` functions (dropping partitions). After every migration run,
//! what the roles named in the database's default privileges (other than `archon_exporter`,
//! `archon_admin`, `archon_grafana`, `archon_reader`) hold on the product's tables, views and
//! sequences, and on its `SECURITY DEFINER` functions, is revoked. Access for them is given
//! through those four (`GRANT archon_reader TO authenticated`); a grant a DBA made to another
//! role by hand is left alone.

use tokio_postgres::GenericClient;

/// Revokes what the default privileges' roles hold on the product's objects (idempotent).
pub(crate) async fn confine(client: &impl GenericClient) -> Result<(), tokio_postgres::Error> {
    client
        .batch_execute(
            r#"DO $confine$
            DECLARE
                object record;
                grantee text;
                ours constant text[] := ARRAY['archon_exporter', 'archon_admin', 'archon_grafana', 'archon_reader'];
            BEGIN
                FOR object IN
                    SELECT c.oid::regclass::text AS name, c.relkind = 'S' AS sequence, c.relacl AS acl, c.relowner AS owner
                      FROM pg_class c
                     WHERE c.relnamespace = current_schema()::regnamespace
                       AND c.relname LIKE 'archon\_%' AND c.relname <> 'archon_migrations'
                       AND c.relkind IN ('r', 'p', 'v', 'm', 'S') AND c.relacl IS NOT NULL
                    UNION ALL
                    SELECT p.oid::regprocedure::text, NULL, p.proacl, p.proowner
                      FROM pg_proc p
                     WHERE p.pronamespace = current_schema()::regnamespace AND p.prosecdef AND p.proacl IS NOT NULL
                LOOP
                    FOR grantee IN
                        SELECT DISTINCT a.grantee::regrole::text FROM aclexplode(object.acl) a
                         WHERE a.grantee <> 0 AND a.grantee <> object.owner
                           AND NOT (a.grantee::regrole::text = ANY (ours))
                           AND a.grantee IN (SELECT (aclexplode(d.defaclacl)).grantee FROM pg_default_acl d
                                              WHERE d.defaclnamespace IN (0, current_schema()::regnamespace))
                    LOOP
                        EXECUTE format('REVOKE ALL ON %s %s FROM %s',
                                       CASE object.sequence WHEN true THEN 'SEQUENCE' WHEN false THEN 'TABLE' ELSE 'FUNCTION' END,
                                       object.name, grantee);
                    END LOOP;
                END LOOP;
            END
            $confine$"#,
        )
        .await
}
