//! Budget enforcement at the server, off by default: a `tools/call` whose user, department or
//! tool (or everyone) is over its monthly budget is refused with a JSON-RPC error that names
//! the budget and says how to raise it.
//!
//! The decision is a lookup in memory. What is over budget is read in the background — from
//! PostgreSQL's `archon_budget_status()` with [`BudgetGate::refresh_every`], or pushed with
//! [`BudgetGate::update`] — and never waited for: while nothing has been read yet, or the last
//! read is older than the gate's staleness limit, calls go through and the metric
//! `archon.budget.unknown_state` counts them.
//!
//! ```no_run
//! use std::time::Duration;
//! use archon_mcp_instrument::TracedConfig;
//! use archon_mcp_instrument::budget::{BudgetGate, BudgetScope, Exceeded};
//!
//! # async fn run() {
//! let gate = BudgetGate::new(Duration::from_secs(120));
//! let config = TracedConfig::builder().enforce_budgets(gate.clone()).build();
//! gate.refresh_every(Duration::from_secs(30), || async {
//!     // e.g. archon_mcp_exporter::budgets::status(&client), keeping state = "over"
//!     Ok::<_, std::io::Error>(vec![Exceeded::new(BudgetScope::Department("Research".into()), 500.0, 512.40)])
//! });
//! # let _ = config; }
//! ```

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::user::UserInfo;

/// What a budget covers (as `archon-mcp-exporter budgets` spells it).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum BudgetScope {
    /// Every call.
    All,
    /// One user, by principal (`user.id`).
    User(String),
    /// One department.
    Department(String),
    /// One tool.
    Tool(String),
}

impl std::fmt::Display for BudgetScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::All => f.write_str("all"),
            Self::User(v) => write!(f, "user:{v}"),
            Self::Department(v) => write!(f, "department:{v}"),
            Self::Tool(v) => write!(f, "tool:{v}"),
        }
    }
}

/// A budget over its amount.
#[derive(Debug, Clone, PartialEq)]
pub struct Exceeded {
    /// What it covers.
    pub scope: BudgetScope,
    /// The monthly amount (USD).
    pub monthly_amount: f64,
    /// Spent this month (USD).
    pub spend: f64,
}

impl Exceeded {
    /// A budget of `scope` with `spend` of its `monthly_amount` spent.
    pub fn new(scope: BudgetScope, monthly_amount: f64, spend: f64) -> Self {
        Self { scope, monthly_amount, spend }
    }

    fn message(&self) -> String {
        format!(
            "the monthly budget of {} is used up ({:.2} of {:.2} USD spent): ask an administrator to raise it \
             (archon-mcp-exporter budgets set --scope {} --monthly AMOUNT) or wait for next month",
            self.scope, self.spend, self.monthly_amount, self.scope
        )
    }
}

/// What is over budget, shared by the servers that enforce it and whatever refreshes it.
#[derive(Debug, Clone)]
pub struct BudgetGate {
    inner: Arc<Gate>,
}

#[derive(Debug)]
struct Gate {
    read: RwLock<Option<(Instant, Arc<[Exceeded]>)>>,
    stale_after: Duration,
}

/// The decision for one call.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Verdict {
    Allowed,
    /// Not known (never read, or too old): allowed.
    Unknown,
    Refused(String),
}

impl BudgetGate {
    /// A gate that trusts a reading for `stale_after` (then lets calls through until the next).
    pub fn new(stale_after: Duration) -> Self {
        Self { inner: Arc::new(Gate { read: RwLock::new(None), stale_after }) }
    }

    /// Replaces what is over budget, as read now.
    pub fn update(&self, exceeded: Vec<Exceeded>) {
        *self.inner.read.write().unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), exceeded.into()));
    }

    /// Reads `fetch` now and every `every` on the current Tokio runtime, updating the gate;
    /// a failed read keeps the last reading (which goes stale in time). Returns the task.
    pub fn refresh_every<F, Fut, E>(&self, every: Duration, fetch: F) -> tokio::task::JoinHandle<()>
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = Result<Vec<Exceeded>, E>> + Send,
        E: std::fmt::Display,
    {
        let gate = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                match fetch().await {
                    Ok(exceeded) => gate.update(exceeded),
                    Err(e) => {
                        tracing::warn!(error = %e, "reading budgets failed; enforcing the last reading until it is stale")
                    }
                }
            }
        })
    }

    /// Whether a call of `tool` by `user` may go through.
    pub(crate) fn check(&self, user: Option<&UserInfo>, tool: &str) -> Verdict {
        let read = self.inner.read.read().unwrap_or_else(|p| p.into_inner());
        let Some((at, exceeded)) = &*read else { return Verdict::Unknown };
        if at.elapsed() > self.inner.stale_after {
            return Verdict::Unknown;
        }
        let applies = |scope: &BudgetScope| match scope {
            BudgetScope::All => true,
            BudgetScope::User(key) => user.is_some_and(|u| &u.id == key),
            BudgetScope::Department(d) => user.and_then(|u| u.department.as_ref()).is_some_and(|ud| ud == d),
            BudgetScope::Tool(t) => t == tool,
        };
        match exceeded.iter().find(|e| applies(&e.scope)) {
            Some(e) => Verdict::Refused(e.message()),
            None => Verdict::Allowed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_callers_user_department_or_tool_decides() {
        let gate = BudgetGate::new(Duration::from_secs(60));
        let ada = UserInfo { department: Some("Research".into()), ..UserInfo::new("ada") };
        let bob = UserInfo { department: Some("Sales".into()), ..UserInfo::new("bob") };
        assert_eq!(gate.check(Some(&ada), "search"), Verdict::Unknown, "nothing read yet");
        gate.update(vec![
            Exceeded::new(BudgetScope::Department("Research".into()), 500.0, 512.4),
            Exceeded::new(BudgetScope::Tool("summarize".into()), 50.0, 50.0),
        ]);
        let Verdict::Refused(message) = gate.check(Some(&ada), "search") else { panic!() };
        assert!(message.contains("department:Research") && message.contains("512.40 of 500.00"), "{message}");
        assert!(message.contains("budgets set --scope department:Research"));
        assert_eq!(gate.check(Some(&bob), "search"), Verdict::Allowed);
        assert!(matches!(gate.check(Some(&bob), "summarize"), Verdict::Refused(_)));
        assert!(matches!(gate.check(None, "summarize"), Verdict::Refused(_)));
        assert_eq!(gate.check(None, "search"), Verdict::Allowed);

        let stale = BudgetGate::new(Duration::ZERO);
        stale.update(vec![Exceeded::new(BudgetScope::All, 1.0, 2.0)]);
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(stale.check(Some(&ada), "search"), Verdict::Unknown, "a stale reading lets calls through");
    }
}
