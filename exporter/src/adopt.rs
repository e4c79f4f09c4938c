//! Adopting an Archon database: `migrate` on a database where Archon's MCP tracking migrations
//! (0.3.0/001, 013, 014 — any of their states) left their tables upgrades it in place, keeping
//! every session, request and price.
//!
//! Three steps, each a transaction, so an interrupted run resumes where it stopped:
//! 1. [`set_aside`]: Archon's tables become `archon_legacy_*` (with their indexes and sequences,
//!    whose names ours reuse), and its views, functions and trigger go (the trigger would fight
//!    the exporter, and the SQL API is recreated by ours);
//! 2. this project's migrations run as on an empty database;
//! 3. [`take_in`]: the legacy rows are copied in (requests into the partitioned table, each into
//!    its month), the counts compared — any difference rolls the step back, changing nothing —
//!    the legacy tables dropped, and Supabase's roles given the access ours define.
//!
//! `docs/switching-from-archon.md` has the procedure around it.

use std::fmt;

use tokio_postgres::{Client, GenericClient};

/// The table recording applied migrations (`migrate` applies with it; adoption looks for it);
/// our own name, so it never meets an application's refinery table in a shared database.
pub const HISTORY_TABLE: &str = "archon_schema_history";

/// What a database holds, as far as migrating it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Found {
    /// None of the product's tables: the migrations create them.
    Empty,
    /// This project's schema (with its history table): pending migrations, if any, are applied.
    Ours,
    /// Archon's MCP tracking tables, in the state its migrations left them.
    Archon(ArchonState),
    /// An adoption that stopped after setting Archon's tables aside: it is resumed.
    Adopting,
    /// Something else under the product's table names: refused.
    Other(String),
}

/// Which of Archon's MCP tracking migrations the database shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArchonState {
    /// 013: `total_duration`, `disconnect_reason`.
    pub disconnects: bool,
    /// 014: `user_id`, `user_email`, `user_name`.
    pub users: bool,
}

impl fmt::Display for ArchonState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.disconnects, self.users) {
            (false, false) => f.write_str("Archon 0.3.0/001"),
            (true, false) => f.write_str("Archon 0.3.0/001 + 013"),
            (true, true) => f.write_str("Archon 0.3.0/001 + 013 + 014"),
            (false, true) => f.write_str("Archon 0.3.0/001 + 014 (013 not applied)"),
        }
    }
}

/// Archon's tables and the names they are set aside under.
const TABLES: [(&str, &str); 3] = [
    ("archon_mcp_sessions", "archon_legacy_mcp_sessions"),
    ("archon_mcp_requests", "archon_legacy_mcp_requests"),
    ("archon_llm_pricing", "archon_legacy_llm_pricing"),
];

/// Archon's SQL API and its trigger function: dropped, ours recreates the API.
const ARCHON_FUNCTIONS: [&str; 8] = [
    "get_active_mcp_clients",
    "get_mcp_usage_summary",
    "get_mcp_usage_by_tool",
    "calculate_request_cost",
    "get_disconnected_sessions",
    "get_user_sessions",
    "get_user_activity_summary",
    "update_session_status",
];

const ARCHON_VIEWS: [&str; 2] = ["archon_mcp_user_stats", "archon_mcp_session_stats"];

/// The columns of a table of the current schema.
async fn columns(client: &impl GenericClient, table: &str) -> Result<Vec<String>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT column_name::text FROM information_schema.columns
              WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
            &[&table],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

async fn exists(client: &impl GenericClient, relation: &str) -> Result<bool, tokio_postgres::Error> {
    Ok(client.query_one("SELECT to_regclass($1) IS NOT NULL", &[&relation]).await?.get(0))
}

/// What the database holds.
pub async fn inspect(client: &impl GenericClient) -> Result<Found, tokio_postgres::Error> {
    if exists(client, "archon_legacy_mcp_sessions").await? {
        return Ok(Found::Adopting);
    }
    if exists(client, HISTORY_TABLE).await? {
        return Ok(Found::Ours);
    }
    let sessions = columns(client, "archon_mcp_sessions").await?;
    let requests = columns(client, "archon_mcp_requests").await?;
    let has = |cols: &[String], names: &[&str]| names.iter().all(|n| cols.iter().any(|c| c == n));
    if sessions.is_empty() && requests.is_empty() {
        return Ok(Found::Empty);
    }
    if has(&sessions, &["session_id", "client_type", "connected_at", "last_activity", "status"])
        && has(&requests, &["request_id", "session_id", "method", "prompt_tokens", "estimated_cost"])
        && !has(&sessions, &["user_key"])
    {
        return Ok(Found::Archon(ArchonState {
            disconnects: has(&sessions, &["total_duration", "disconnect_reason"]),
            users: has(&sessions, &["user_id", "user_email", "user_name"]),
        }));
    }
    Ok(Found::Other(format!(
        "archon_mcp_sessions ({}) and archon_mcp_requests ({}), in neither Archon's shape nor this project's \
         (whose history table {} is missing)",
        if sessions.is_empty() { "absent".to_owned() } else { sessions.join(", ") },
        if requests.is_empty() { "absent".to_owned() } else { requests.join(", ") },
        HISTORY_TABLE
    )))
}

/// Rows of each kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Sessions.
    pub sessions: i64,
    /// Requests.
    pub requests: i64,
    /// Price rows.
    pub prices: i64,
}

impl fmt::Display for Counts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} sessions, {} requests, {} price rows", self.sessions, self.requests, self.prices)
    }
}

async fn count(client: &impl GenericClient, tables: [&str; 3]) -> Result<Counts, tokio_postgres::Error> {
    let n = |table: &str| format!("(SELECT count(*) FROM {table})");
    let row = client.query_one(&format!("SELECT {}, {}, {}", n(tables[0]), n(tables[1]), n(tables[2])), &[]).await?;
    Ok(Counts { sessions: row.get(0), requests: row.get(1), prices: row.get(2) })
}

/// What adopting an Archon database will do, for `migrate --dry-run`.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The state found.
    pub state: ArchonState,
    /// The rows to keep.
    pub rows: Counts,
    /// Archon's policies, trigger, views and functions that go.
    pub replaced: Vec<String>,
    /// Supabase's roles found and the access they will be given.
    pub grants: Vec<String>,
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "found {}: {}", self.state, self.rows)?;
        writeln!(
            f,
            "would set aside archon_mcp_sessions, archon_mcp_requests and archon_llm_pricing as archon_legacy_*,"
        )?;
        writeln!(f, "apply every migration, copy the rows in (requests into the monthly partitions),")?;
        writeln!(f, "check that every row arrived, and drop the legacy tables; replaced:")?;
        for item in &self.replaced {
            writeln!(f, "  {item}")?;
        }
        if self.grants.is_empty() {
            writeln!(f, "no Supabase roles (service_role, authenticated, authenticator) found: none granted")?;
        }
        for grant in &self.grants {
            writeln!(f, "  {grant}")?;
        }
        Ok(())
    }
}

/// The Supabase roles there are and what they get.
async fn supabase_grants(
    client: &impl GenericClient,
) -> Result<Vec<(&'static str, &'static str)>, tokio_postgres::Error> {
    let mut grants = Vec::new();
    for (role, what) in [
        ("service_role", "GRANT archon_admin TO service_role (full access, as Archon's service-role policies gave)"),
        ("authenticated", "GRANT archon_reader TO authenticated (each user reads their own rows, by auth.uid())"),
        ("authenticator", "trust the JWT claims on authenticator's connections (archon_trusted_authenticators)"),
    ] {
        let found: bool =
            client.query_one("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", &[&role]).await?.get(0);
        if found {
            grants.push((role, what));
        }
    }
    Ok(grants)
}

/// What adopting the Archon database in `state` will do; changes nothing.
pub async fn plan(client: &impl GenericClient, state: ArchonState) -> Result<Plan, tokio_postgres::Error> {
    let rows = count(client, [TABLES[0].0, TABLES[1].0, TABLES[2].0]).await?;
    let replaced = client
        .query(
            "SELECT 'policy ' || quote_ident(policyname) || ' on ' || tablename FROM pg_policies
              WHERE schemaname = current_schema() AND tablename = ANY($1)
             UNION ALL
             SELECT 'trigger ' || t.tgname || ' on ' || c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
              WHERE NOT t.tgisinternal AND c.relnamespace = current_schema()::regnamespace AND c.relname = ANY($1)
             UNION ALL
             SELECT 'view ' || viewname FROM pg_views WHERE schemaname = current_schema() AND viewname = ANY($2)
             UNION ALL
             SELECT 'function ' || p.oid::regprocedure::text FROM pg_proc p
              WHERE p.pronamespace = current_schema()::regnamespace AND p.proname = ANY($3)
             ORDER BY 1",
            &[&TABLES.map(|(t, _)| t).to_vec(), &ARCHON_VIEWS.to_vec(), &ARCHON_FUNCTIONS.to_vec()],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let grants = supabase_grants(client).await?.into_iter().map(|(_, what)| what.to_owned()).collect();
    Ok(Plan { state, rows, replaced, grants })
}

/// Step 1: Archon's tables set aside under `archon_legacy_*` names, with their indexes and
/// sequences (ours reuse those names); its views, functions and trigger dropped.
pub async fn set_aside(client: &mut Client) -> Result<(), tokio_postgres::Error> {
    let tx = client.transaction().await?;
    tx.batch_execute(&format!("DROP VIEW IF EXISTS {}", ARCHON_VIEWS.join(", "))).await?;
    // `DO` takes no parameters: the list is spliced in as a literal.
    let names = ARCHON_FUNCTIONS.map(|f| format!("'{f}'")).join(", ");
    tx.batch_execute(&format!(
        "DO $drop$
         DECLARE f regprocedure;
         BEGIN
             FOR f IN SELECT p.oid::regprocedure FROM pg_proc p
                       WHERE p.pronamespace = current_schema()::regnamespace AND p.proname IN ({names})
             LOOP
                 EXECUTE format('DROP FUNCTION %s CASCADE', f); -- the trigger goes with its function
             END LOOP;
         END $drop$"
    ))
    .await?;
    for (table, legacy) in TABLES {
        tx.batch_execute(&format!(
            "ALTER TABLE {table} RENAME TO {legacy};
             DO $rename$
             DECLARE name text;
             BEGIN
                 FOR name IN SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
                              WHERE i.indrelid = '{legacy}'::regclass
                 LOOP
                     EXECUTE format('ALTER INDEX %I RENAME TO %I', name, left('archon_legacy_' || name, 63));
                 END LOOP;
                 FOR name IN SELECT s.relname FROM pg_depend d JOIN pg_class s ON s.oid = d.objid
                              WHERE d.refobjid = '{legacy}'::regclass AND s.relkind = 'S'
                 LOOP
                     EXECUTE format('ALTER SEQUENCE %I RENAME TO %I', name, left('archon_legacy_' || name, 63));
                 END LOOP;
             END $rename$;"
        ))
        .await?;
    }
    tx.commit().await
}

/// What an adoption kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Rows in Archon's tables.
    pub before: Counts,
    /// The same rows found in the new tables.
    pub after: Counts,
}

/// Why taking the legacy rows in was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TakeInError {
    /// The database refused a statement.
    #[error("{}", crate::pg_error::describe(.0))]
    Database(#[from] tokio_postgres::Error),
    /// Not every row arrived: nothing was changed.
    #[error(
        "not every row of Archon's tables arrived ({before} before, {after} after): nothing was changed and \
         the legacy tables are kept (archon_legacy_*); report this with the output of `migrate --dry-run`"
    )]
    CountsDiffer {
        /// Rows in Archon's tables.
        before: Counts,
        /// The same rows found.
        after: Counts,
    },
}

/// Step 3: the legacy rows copied into this project's tables, every one checked to have
/// arrived, the legacy tables dropped, Supabase's roles granted. One transaction.
pub async fn take_in(client: &mut Client) -> Result<Summary, TakeInError> {
    let tx = client.transaction().await?;
    let before = count(&tx, TABLES.map(|(_, legacy)| legacy)).await?;
    let legacy = columns(&tx, "archon_legacy_mcp_sessions").await?;
    let has = |name: &str| legacy.iter().any(|c| c == name);
    // Columns of later Archon migrations, or NULL where the database never had them.
    let or_null = |name: &str, cast: &str| if has(name) { format!("s.{name}") } else { format!("NULL::{cast}") };
    let (user_id, user_email, user_name, reason) = (
        or_null("user_id", "uuid"),
        or_null("user_email", "varchar"),
        or_null("user_name", "varchar"),
        or_null("disconnect_reason", "varchar"),
    );
    tx.batch_execute(&format!(
        "INSERT INTO archon_llm_pricing (model_name, provider, input_price_per_1k, output_price_per_1k, effective_date, notes)
         SELECT model_name, provider, input_price_per_1k, output_price_per_1k, effective_date, notes
           FROM archon_legacy_llm_pricing
         ON CONFLICT (model_name, provider, effective_date) DO UPDATE SET
             input_price_per_1k = EXCLUDED.input_price_per_1k,
             output_price_per_1k = EXCLUDED.output_price_per_1k,
             notes = coalesce(EXCLUDED.notes, archon_llm_pricing.notes);

         -- A session Archon left 'disconnected' without a time (its reaper) ended at its last
         -- activity, as ours record a timeout; one with a time is disconnected; Archon's
         -- reaper wrote 'timeout_no_activity' where its stats counted 'timeout'.
         INSERT INTO archon_mcp_sessions (
             session_id, client_type, client_version, client_capabilities, connected_at, last_activity,
             disconnected_at, status, disconnect_reason, user_id, user_key, user_email, user_name, metadata)
         SELECT s.session_id, s.client_type, s.client_version, s.client_capabilities, s.connected_at, s.last_activity,
                CASE WHEN s.status = 'disconnected' THEN coalesce(s.disconnected_at, s.last_activity) ELSE s.disconnected_at END,
                CASE WHEN s.status = 'disconnected' OR s.disconnected_at IS NOT NULL THEN 'disconnected' ELSE s.status END,
                CASE WHEN {reason} = 'timeout_no_activity' THEN 'timeout' ELSE {reason} END,
                {user_id}, ({user_id})::text, {user_email}, {user_name},
                coalesce(s.metadata, '{{}}') || '{{\"imported_from\": \"archon\"}}'
           FROM archon_legacy_mcp_sessions s;

         -- Archon recorded tokens as given (reported) or none; a request is its session's user's.
         INSERT INTO archon_mcp_requests (
             request_id, session_id, method, tool_name, prompt_tokens, completion_tokens, token_source,
             estimated_cost, \"timestamp\", duration_ms, status, error_message, user_id)
         SELECT r.request_id, r.session_id, r.method, r.tool_name,
                coalesce(r.prompt_tokens, 0), coalesce(r.completion_tokens, 0),
                CASE WHEN coalesce(r.prompt_tokens, 0) + coalesce(r.completion_tokens, 0) > 0 THEN 'reported' ELSE 'none' END,
                r.estimated_cost, r.\"timestamp\", r.duration_ms, r.status, r.error_message, {user_id}
           FROM archon_legacy_mcp_requests r
           JOIN archon_legacy_mcp_sessions s ON s.session_id = r.session_id;

         -- Each old month its own partition, as the reaper keeps the coming ones.
         SELECT archon_mcp_create_request_partitions(
                    ((extract(year FROM age(date_trunc('month', now()), date_trunc('month', min(\"timestamp\")))) * 12
                      + extract(month FROM age(date_trunc('month', now()), date_trunc('month', min(\"timestamp\")))))::int),
                    min(\"timestamp\")::date)
           FROM archon_mcp_requests
         HAVING min(\"timestamp\") < date_trunc('month', now());"
    ))
    .await?;
    let row = tx
        .query_one(
            "SELECT (SELECT count(*) FROM archon_mcp_sessions n JOIN archon_legacy_mcp_sessions o USING (session_id)),
                    (SELECT count(*) FROM archon_mcp_requests n JOIN archon_legacy_mcp_requests o USING (request_id)),
                    (SELECT count(*) FROM archon_llm_pricing n
                       JOIN archon_legacy_llm_pricing o USING (model_name, provider, effective_date)
                      WHERE n.input_price_per_1k = o.input_price_per_1k AND n.output_price_per_1k = o.output_price_per_1k)",
            &[],
        )
        .await?;
    let after = Counts { sessions: row.get(0), requests: row.get(1), prices: row.get(2) };
    if after != before {
        return Err(TakeInError::CountsDiffer { before, after });
    }
    tx.batch_execute(
        "DROP TABLE archon_legacy_mcp_requests, archon_legacy_mcp_sessions, archon_legacy_llm_pricing CASCADE",
    )
    .await?;
    for (role, _) in supabase_grants(&tx).await? {
        match role {
            "service_role" => tx.batch_execute("GRANT archon_admin TO service_role").await?,
            "authenticated" => tx.batch_execute("GRANT archon_reader TO authenticated").await?,
            _ => {
                tx.execute(
                    "INSERT INTO archon_trusted_authenticators (login) VALUES ($1) ON CONFLICT DO NOTHING",
                    &[&role],
                )
                .await?;
            }
        }
    }
    tx.commit().await?;
    Ok(Summary { before, after })
}
