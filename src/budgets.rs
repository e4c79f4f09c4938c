//! Budget enforcement fed from PostgreSQL: what `archon_budget_status()` says is `over`, read
//! in the background into a [`BudgetGate`] that servers check in memory.
//!
//! ```no_run
//! # async fn run() {
//! use std::time::Duration;
//! use archon_mcp_instrument::budget::BudgetGate;
//! let gate = BudgetGate::new(Duration::from_secs(120));
//! archon_mcp_otel::budgets::refresh_from_postgres(&gate, "postgres://exporter@db/archon".into(), Duration::from_secs(30));
//! # }
//! ```

use std::time::Duration;

use archon_mcp_exporter::budgets::{self, Scope};
use archon_mcp_exporter::{PgStore, StoreConfig};
use archon_mcp_instrument::budget::{BudgetGate, BudgetScope, Exceeded};

/// The budgets over their amount now (client-type budgets are not enforced: the server does
/// not know a client's normalised type).
pub async fn over_budget(store: &PgStore) -> anyhow::Result<Vec<Exceeded>> {
    let client = store.pool().get().await?;
    Ok(budgets::status(&**client)
        .await?
        .into_iter()
        .filter(|b| b.state == "over")
        .filter_map(|b| {
            let scope = match b.scope {
                Scope::All => BudgetScope::All,
                Scope::User(key) => BudgetScope::User(key),
                Scope::Department(d) => BudgetScope::Department(d),
                Scope::Tool(t) => BudgetScope::Tool(t),
                Scope::ClientType(_) => return None,
            };
            Some(Exceeded::new(scope, b.monthly_amount, b.spend_mtd))
        })
        .collect())
}

/// Refreshes `gate` from the database at `url` every `every` (one connection, on the current
/// runtime); while the database cannot be read the gate goes stale and lets calls through.
pub fn refresh_from_postgres(gate: &BudgetGate, url: String, every: Duration) -> tokio::task::JoinHandle<()> {
    let store = PgStore::connect(&url, StoreConfig::default().with_max_connections(1));
    gate.refresh_every(every, move || {
        let store = store.as_ref().map_err(|e| anyhow::anyhow!("{e}")).cloned();
        async move { over_budget(&store?).await }
    })
}
