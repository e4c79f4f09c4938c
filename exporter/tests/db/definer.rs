//! `SECURITY DEFINER` functions, checked as a class (issue #29): the catalog says every one is
//! configured safely, and real logins of every product role try to escalate and to read others'
//! rows through temporary objects named like the product's.

use archon_mcp_exporter::StoreConfig;
use archon_mcp_exporter::testing::TestDb;
use tokio_postgres::Client;

use crate::fixtures::*;

/// The only `search_path` a `SECURITY DEFINER` function may run with: built-ins first, the
/// caller's temporary schema last, and no schema a login may create objects in. Every product
/// object is then named with its schema (an unqualified one would not resolve, or resolve to
/// the caller's temporary schema, which the attack test below catches).
const SAFE_SEARCH_PATH: &str = "search_path=pg_catalog, pg_temp";

/// The product's schema: the one the migrations ran in.
async fn product_schema(client: &Client) -> String {
    client.query_one("SELECT current_schema()::text", &[]).await.unwrap().get(0)
}

/// `(name, configuration)` of every `SECURITY DEFINER` function in the product's schema.
async fn definer_functions(client: &Client) -> Vec<(String, Vec<String>)> {
    client
        .query(
            "SELECT p.oid::regprocedure::text, coalesce(p.proconfig, '{}')
               FROM pg_proc p
              WHERE p.pronamespace = current_schema()::regnamespace AND p.prosecdef
              ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

#[tokio::test]
async fn every_security_definer_function_runs_with_a_fixed_search_path_and_is_not_public() {
    let db = TestDb::migrated().await;
    let client = db.client().await;
    let functions = definer_functions(&client).await;
    assert!(functions.len() >= 4, "the identity and partition functions are SECURITY DEFINER: {functions:?}");
    for (function, config) in &functions {
        assert!(
            config.iter().any(|c| c == SAFE_SEARCH_PATH),
            "{function} is SECURITY DEFINER with {config:?}: give it `SET {}` and name every product object \
             with its schema (PostgreSQL docs, \"Writing SECURITY DEFINER Functions Safely\")",
            SAFE_SEARCH_PATH.replace('=', " = "),
        );
        let public: bool = client
            .query_one("SELECT has_function_privilege('public', $1::text::regprocedure, 'EXECUTE')", &[function])
            .await
            .unwrap()
            .get(0);
        assert!(!public, "{function} is SECURITY DEFINER and executable by PUBLIC: revoke it, grant the roles");
    }

    // Nobody but the owner can put an object into the product's schema (CVE-2018-1058).
    let schema = product_schema(&client).await;
    for role in ["public", "archon_reader", "archon_exporter", "archon_admin", "archon_grafana"] {
        let create: bool =
            client.query_one("SELECT has_schema_privilege($1, $2, 'CREATE')", &[&role, &schema]).await.unwrap().get(0);
        assert!(!create, "{role} may create objects in {schema}");
    }
}

/// Every trigger function on the product's tables fixes its own `search_path`, temporary objects
/// last: a trigger fires inside whatever statement writes, `SECURITY DEFINER` functions with
/// `pg_catalog` only among them (retention's deletes), where unqualified names would not resolve
/// — or, with a caller's path, would resolve to the caller's objects. V14's triggers failed this
/// way first; V25's first session trigger then wrote, inside retention, into a caller's
/// temporary table of its marks table's name (`pg_temp` is searched first unless named).
#[tokio::test]
async fn every_trigger_function_fixes_its_search_path() {
    let db = TestDb::migrated().await;
    let client = db.client().await;
    let rows = client
        .query(
            "SELECT DISTINCT p.oid::regprocedure::text, coalesce(p.proconfig, '{}')
               FROM pg_trigger t
               JOIN pg_class c ON c.oid = t.tgrelid
               JOIN pg_proc p ON p.oid = t.tgfoid
              WHERE NOT t.tgisinternal AND c.relnamespace = current_schema()::regnamespace",
            &[],
        )
        .await
        .unwrap();
    assert!(rows.len() >= 2, "the rollup triggers: {rows:?}");
    for row in &rows {
        let (function, config): (String, Vec<String>) = (row.get(0), row.get(1));
        assert!(
            config.iter().any(|c| c.starts_with("search_path=") && c.ends_with("pg_temp")),
            "trigger function {function} runs with {config:?}: give it `SET search_path = <the product's schema>, \
             pg_temp` (temporary objects last)"
        );
    }
}

/// One statement per `SECURITY DEFINER` function (by name), calling it as an attacker would,
/// besides the reads that make row-level security call the identity functions.
/// `round` makes the partition-creating call create a new partition each time.
fn attacks(schema: &str, round: usize) -> Vec<(&'static str, String)> {
    vec![
        ("archon_current_user_key", "SELECT archon_current_user_key()".to_owned()),
        ("archon_current_user_id", "SELECT archon_current_user_id()".to_owned()),
        (
            "archon_mcp_create_request_partitions",
            format!("SELECT archon_mcp_create_request_partitions(0, '{}-01-01')", 1000 + round),
        ),
        // Deletes nothing real (nothing is that old), but runs every statement of the function.
        ("archon_mcp_drop_request_partitions", "SELECT archon_mcp_drop_request_partitions('900 years')".to_owned()),
        ("", format!("SELECT count(*) FROM {schema}.archon_mcp_sessions")),
        ("", format!("SELECT count(*) FROM {schema}.archon_mcp_requests")),
        ("", format!("SELECT count(*) FROM {schema}.archon_mcp_user_stats")),
        ("", "SELECT count(*) FROM archon_budget_status()".to_owned()),
    ]
}

/// A function of the attacker's that makes its login a superuser and an admin — which only
/// works when something runs it with a superuser's rights — and never fails.
const EVIL: &str = r#"
CREATE FUNCTION pg_temp.archon_evil() RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    BEGIN EXECUTE format('ALTER ROLE %I SUPERUSER CREATEROLE BYPASSRLS', session_user); EXCEPTION WHEN others THEN NULL; END;
    BEGIN EXECUTE format('GRANT archon_admin, pg_write_server_files TO %I', session_user); EXCEPTION WHEN others THEN NULL; END;
    RETURN true;
END $$;
CREATE FUNCTION pg_temp.archon_evil_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM pg_temp.archon_evil(); RETURN NULL; END $$;
"#;

/// A temporary object named like `relation` of the product's schema, with its columns, that
/// runs [`EVIL`] when read (`view`: one row, every column computed by it) or written (`table`,
/// by statement triggers on every event). One at a time: a function that fails on a second
/// shadow would roll the first one's effect back.
fn shadow(schema: &str, kind: &str, relation: &str) -> String {
    let create = match kind {
        "view" => "EXECUTE format('CREATE TEMP VIEW %I AS SELECT %s', rel.relname, rel.typed);",
        _ => {
            "EXECUTE format('CREATE TEMP TABLE %I (%s)', rel.relname, rel.columns);
             EXECUTE format('CREATE TRIGGER evil BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON pg_temp.%I
                             FOR EACH STATEMENT EXECUTE FUNCTION pg_temp.archon_evil_trigger()', rel.relname);"
        }
    };
    format!(
        "DO $shadow$
         DECLARE rel record;
         BEGIN
             FOR rel IN
                 SELECT c.relname,
                        string_agg(format('(CASE WHEN pg_temp.archon_evil() THEN NULL END)::%s AS %I', format_type(a.atttypid, a.atttypmod), a.attname), ', ' ORDER BY a.attnum) AS typed,
                        string_agg(format('%I %s', a.attname, format_type(a.atttypid, a.atttypmod)), ', ' ORDER BY a.attnum) AS columns
                   FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                  WHERE c.relnamespace = '{schema}'::regnamespace AND c.relname = '{relation}'
                  GROUP BY c.relname
             LOOP
                 {create}
             END LOOP;
         END $shadow$;"
    )
}

/// What a login is: its attributes and the roles it is a member of.
async fn standing(admin: &Client, login: &str) -> String {
    admin
        .query_one(
            "SELECT format('super=%s createrole=%s createdb=%s bypassrls=%s replication=%s member of %s',
                           r.rolsuper, r.rolcreaterole, r.rolcreatedb, r.rolbypassrls, r.rolreplication,
                           (SELECT coalesce(array_agg(m.roleid::regrole::text ORDER BY 1), '{}')
                              FROM pg_auth_members m WHERE m.member = r.oid))
               FROM pg_roles r WHERE r.rolname = $1",
            &[&login],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn no_login_of_any_role_escalates_through_temporary_objects() {
    let db = TestDb::migrated().await;
    write(&db.store(StoreConfig::default()), &dataset(an_hour_ago())).await;
    let admin = db.client().await;
    let schema = product_schema(&admin).await;

    // Every SECURITY DEFINER function is attacked: a new one without an attack here fails.
    for (function, _) in definer_functions(&admin).await {
        let name = function.split('(').next().unwrap();
        assert!(attacks(&schema, 0).iter().any(|(f, _)| *f == name), "add an attack calling {function} to this test");
    }

    let mut logins = Vec::new();
    for (what, grant) in [
        ("reader", "archon_reader"),
        ("exporter", "archon_exporter"),
        ("admin", "archon_admin"),
        ("grafana", "archon_grafana"),
        ("nobody", ""),
        ("authenticator", "archon_reader"),
    ] {
        logins.push(Login::create(&db, &admin, &format!("evil_{what}"), grant).await);
    }
    admin
        .execute(
            "INSERT INTO archon_reader_logins (login, user_key) VALUES ($1, $2)",
            &[&logins[0].name, &ADA.principal],
        )
        .await
        .unwrap();
    admin.execute("INSERT INTO archon_trusted_authenticators (login) VALUES ($1)", &[&logins[5].name]).await.unwrap();
    // The PostgREST arrangement: the authenticator switches into a reader role with Bob's claims.
    let setup = |login: usize| {
        if login == 5 { r#"SET ROLE archon_reader; SET request.jwt.claims = '{"sub": "bob@corp"}'"# } else { "" }
    };

    let relations: Vec<String> = admin
        .query(
            "SELECT relname::text FROM pg_class WHERE relnamespace = current_schema()::regnamespace
                AND relkind IN ('r', 'p', 'v', 'm') ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let (mut round, mut escalated) = (0, Vec::new());
    'logins: for (i, login) in logins.iter().enumerate() {
        let before = standing(&admin, &login.name).await;
        for relation in &relations {
            for kind in ["view", "table"] {
                round += 1;
                // A new session each time: PL/pgSQL caches a statement's plan per session, so
                // the shadow must exist before the function first runs, as an attacker does it.
                let session = login.connect(&db).await;
                session.batch_execute(setup(i)).await.unwrap();
                session.batch_execute(EVIL).await.unwrap();
                session
                    .batch_execute(&shadow(&schema, kind, relation))
                    .await
                    .unwrap_or_else(|e| panic!("a temporary {kind} {relation}: {:?}", e.as_db_error()));
                for (_, attack) in &attacks(&schema, round) {
                    // Most are refused to most roles; what counts is what they leave behind.
                    let _ = session.batch_execute(attack).await;
                }
                drop(session);
                let after = standing(&admin, &login.name).await;
                if after != before {
                    escalated
                        .push(format!("{} through a temporary {kind} {relation}: {before} -> {after}", login.name));
                    continue 'logins;
                }
            }
        }
    }
    assert!(escalated.is_empty(), "logins gained rights:\n{}", escalated.join("\n"));
    for login in logins {
        login.remove(&admin).await;
    }
}

#[tokio::test]
async fn a_reader_cannot_shadow_the_login_mapping_to_read_another_users_rows() {
    let db = TestDb::migrated().await;
    write(&db.store(StoreConfig::default()), &dataset(an_hour_ago())).await;
    let admin = db.client().await;
    let ada = Login::create(&db, &admin, "shadow_ada", "archon_reader").await;
    admin
        .execute("INSERT INTO archon_reader_logins (login, user_key) VALUES ($1, $2)", &[&ada.name, &ADA.principal])
        .await
        .unwrap();
    let stranger = Login::create(&db, &admin, "shadow_stranger", "archon_reader").await;
    let own = ada.visible(&BOB).await;
    assert_eq!(own[..3], [2, 4, 1], "Ada's 2 sessions, 4 requests, 1 user row");

    // Claim Bob's key for this login, or trust this login's (self-set) claims.
    let shadow = format!(
        r#"CREATE TEMP TABLE archon_reader_logins (login name, user_key text, created_at timestamptz);
           INSERT INTO archon_reader_logins VALUES (session_user, '{bob}', now());
           CREATE TEMP TABLE archon_trusted_authenticators (login name, created_at timestamptz);
           INSERT INTO archon_trusted_authenticators VALUES (session_user, now());
           SET request.jwt.claims = '{{"sub": "{bob}"}}'"#,
        bob = BOB.principal
    );
    for login in [&ada, &stranger] {
        login.client.batch_execute(&shadow).await.unwrap();
    }
    assert_eq!(ada.visible(&BOB).await, own, "Ada still reads only her own rows");
    assert_eq!(stranger.visible(&BOB).await[..3], [0, 0, 0], "an unmapped reader still reads nothing");
    for login in [ada, stranger] {
        login.remove(&admin).await;
    }
}
