//! Budget enforcement fed from PostgreSQL (feature `gate`): the budgets in force and their
//! spend, as `archon_budget_status()` gives them, and the prices of the models the server's
//! calls used, read in the background into a [`BudgetGate`] that servers check in memory.
//!
//! ```no_run
//! # async fn run() {
//! use std::time::Duration;
//! use archon_mcp_instrument::budget::BudgetGate;
//! let gate = BudgetGate::new(Duration::from_secs(120));
//! archon_mcp_exporter::budgets::gate::refresh_from_postgres(&gate, "postgres://exporter@db/archon".into(), Duration::from_secs(30));
//! # }
//! ```

use std::sync::{Arc, Mutex};
use std::time::Duration;

use archon_mcp_instrument::budget::{BudgetGate, BudgetScope, BudgetStatus};

use super::{BudgetError, Scope};
use crate::store::StoreError;
use crate::{PgStore, StoreConfig};

/// A reading of the budget state that failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GateError {
    /// The database cannot be reached or refused the query.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Reading the budgets failed.
    #[error(transparent)]
    Budget(#[from] BudgetError),
}

impl From<tokio_postgres::Error> for GateError {
    fn from(e: tokio_postgres::Error) -> Self {
        GateError::Store(e.into())
    }
}

/// The budgets in force now with their spend (client-type budgets are not enforced: the server
/// does not know a client's normalised type).
pub async fn budgets_in_force(store: &PgStore) -> Result<Vec<BudgetStatus>, GateError> {
    let client = store.pool().get().await.map_err(StoreError::from)?;
    Ok(super::status(&**client)
        .await?
        .into_iter()
        .filter_map(|b| {
            let scope = match b.scope {
                Scope::All => BudgetScope::All,
                Scope::Anonymous => BudgetScope::Anonymous,
                Scope::User(key) => BudgetScope::User(key),
                Scope::Department(d) => BudgetScope::Department(d),
                Scope::Tool(t) => BudgetScope::Tool(t),
                Scope::ClientType(_) => return None,
            };
            Some(BudgetStatus::new(scope, b.monthly_amount, b.spend_mtd))
        })
        .collect())
}

/// The prices (USD per 1,000 input and output tokens) in force now of `models`, as the
/// exporter prices them (`archon_llm_price_at`); models without a price are left out.
pub async fn prices_now(store: &PgStore, models: &[String]) -> Result<Vec<(String, (f64, f64))>, GateError> {
    let client = store.pool().get().await.map_err(StoreError::from)?;
    let mut prices = Vec::new();
    for model in models {
        let row = client
            .query_opt(
                "SELECT input_price_per_1k::float8, output_price_per_1k::float8 FROM archon_llm_price_at($1)",
                &[model],
            )
            .await?;
        if let Some(row) = row {
            prices.push((model.clone(), (row.get(0), row.get(1))));
        }
    }
    Ok(prices)
}

/// Refreshes `gate` from the database at `url` every `every` (one connection, on the current
/// runtime), through [`BudgetGate::refresh_every`]: a read that fails or takes longer than
/// `every` (at least a second: a database that stops answering, a half-open connection) is given
/// up and logged; while none succeeds the gate goes stale and lets calls through, which is logged
/// once when it happens and counted by `archon.budget.unknown_state`.
pub fn refresh_from_postgres(gate: &BudgetGate, url: String, every: Duration) -> tokio::task::JoinHandle<()> {
    // The connection is kept only by a read that completed on it: one given up or failed takes
    // it along, and the next read opens a new one (a half-open connection would hang them all).
    let kept: Arc<Mutex<Option<PgStore>>> = Arc::default();
    let target = gate.clone();
    gate.refresh_every(every, move || {
        let (kept, gate, url) = (kept.clone(), target.clone(), url.clone());
        async move {
            let taken = kept.lock().unwrap_or_else(|e| e.into_inner()).take();
            let store = match taken {
                Some(store) => store,
                None => PgStore::connect(&url, StoreConfig::default().with_max_connections(1))?,
            };
            let budgets = budgets_in_force(&store).await?;
            gate.set_prices(prices_now(&store, &gate.unpriced_models()).await?);
            *kept.lock().unwrap_or_else(|e| e.into_inner()) = Some(store);
            Ok::<_, GateError>(budgets)
        }
    })
}
