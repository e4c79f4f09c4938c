//! Budget enforcement at the server, off by default: a `tools/call` whose user, department or
//! tool (or everyone, or — for a call without a user — the anonymous calls) is over its monthly
//! budget is refused with a JSON-RPC error that names the budget and says how to raise it.
//!
//! The decision is a lookup in memory. The budgets in force and their spend are read in the
//! background — from PostgreSQL's `archon_budget_status()` (`archon_mcp_exporter::budgets::gate`, feature `gate`), with
//! [`BudgetGate::refresh_every`], or pushed with [`BudgetGate::update`] — and never waited for.
//! Between two readings the gate adds what this server's own calls spend (the cost tool code
//! reports with `usage::record`, or its tokens at the prices [`BudgetGate::set_prices`] gave), so
//! a server stops at a budget within one call's cost, not one reading's interval. While nothing
//! has been read yet, or the last reading is older than the gate's staleness limit, calls go
//! through, the metric `archon.budget.unknown_state` counts them and the refresher says so in
//! the log.
//!
//! A call without a user is never a way around a budget: with [`AnonymousCalls::Budgeted`] (the
//! default) it counts against the `anonymous` budget, and is refused when there is none while
//! per-user or per-department budgets are enforced; with [`AnonymousCalls::Refused`] it is
//! always refused.
//!
//! ```no_run
//! use std::time::Duration;
//! use archon_mcp_instrument::TracedConfig;
//! use archon_mcp_instrument::budget::{BudgetGate, BudgetScope, BudgetStatus};
//!
//! # async fn run() {
//! let gate = BudgetGate::new(Duration::from_secs(120));
//! let config = TracedConfig::builder().enforce_budgets(gate.clone()).build();
//! gate.refresh_every(Duration::from_secs(30), || async {
//!     // e.g. archon_mcp_exporter::budgets::status(&client)
//!     Ok::<_, std::io::Error>(vec![BudgetStatus::new(BudgetScope::Department("Research".into()), 500.0, 512.40)])
//! });
//! # let _ = config; }
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use crate::usage::Usage;
use crate::user::UserInfo;

/// What a budget covers (as `archon-mcp-exporter budgets` spells it).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BudgetScope {
    /// Every call.
    All,
    /// The calls of no user.
    Anonymous,
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
            Self::Anonymous => f.write_str("anonymous"),
            Self::User(v) => write!(f, "user:{v}"),
            Self::Department(v) => write!(f, "department:{v}"),
            Self::Tool(v) => write!(f, "tool:{v}"),
        }
    }
}

impl BudgetScope {
    /// Whether a call of `tool` by `user` counts against this budget.
    fn covers(&self, user: Option<&UserInfo>, tool: &str) -> bool {
        match self {
            Self::All => true,
            Self::Anonymous => user.is_none(),
            Self::User(key) => user.is_some_and(|u| &u.id == key),
            Self::Department(d) => user.and_then(|u| u.department.as_ref()).is_some_and(|ud| ud == d),
            Self::Tool(t) => t == tool,
        }
    }
}

/// A budget in force and what was spent of it this month, as read.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct BudgetStatus {
    /// What it covers.
    pub scope: BudgetScope,
    /// The monthly amount (USD).
    pub monthly_amount: f64,
    /// Spent this month (USD), as read.
    pub spend: f64,
}

/// The name this type had when the gate was given only the budgets over their amount.
pub type Exceeded = BudgetStatus;

impl BudgetStatus {
    /// A budget of `scope` with `spend` of its `monthly_amount` spent.
    pub fn new(scope: BudgetScope, monthly_amount: f64, spend: f64) -> Self {
        Self { scope, monthly_amount, spend }
    }

    /// The refusal: which budget, and how to raise it — not what anyone spent.
    fn message(&self) -> String {
        format!(
            "the monthly budget of {} ({:.2} USD) is used up: ask an administrator to raise it \
             (archon-mcp-exporter budgets set --scope {} --monthly AMOUNT) or wait for next month",
            self.scope, self.monthly_amount, self.scope
        )
    }
}

/// What a gate does with a tool call that has no user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum AnonymousCalls {
    /// Counted against the `anonymous` budget (and `all`, and its tool's); refused when there is
    /// no `anonymous` budget while per-user or per-department budgets are enforced.
    #[default]
    Budgeted,
    /// Always refused while budgets are enforced.
    Refused,
}

/// The budgets in force and what the calls served here spent since they were read.
#[derive(Debug, Clone)]
pub struct BudgetGate {
    inner: Arc<Gate>,
}

#[derive(Debug)]
struct Gate {
    reading: RwLock<Option<Reading>>,
    stale_after: Duration,
    anonymous: AnonymousCalls,
    /// USD per 1,000 input and output tokens, by model, for pricing the spend of calls here.
    prices: RwLock<HashMap<String, (f64, f64)>>,
    /// Models this server's calls used, for the refresher to price.
    models_seen: Mutex<Vec<String>>,
}

#[derive(Debug)]
struct Reading {
    at: Instant,
    budgets: Vec<(BudgetStatus, Mutex<LocalSpend>)>,
}

/// What the calls served here spent of one budget since the reading.
#[derive(Debug, Default)]
struct LocalSpend {
    usd: f64,
    /// Tokens (input, output) by model, priced when the budget is checked.
    tokens: HashMap<String, (u64, u64)>,
}

impl LocalSpend {
    fn usd(&self, prices: &HashMap<String, (f64, f64)>) -> f64 {
        self.usd
            + self
                .tokens
                .iter()
                .filter_map(|(model, (input, output))| {
                    let (per_1k_in, per_1k_out) = prices.get(model)?;
                    Some((*input as f64 * per_1k_in + *output as f64 * per_1k_out) / 1000.0)
                })
                .sum::<f64>()
    }
}

/// The decision for one call.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Verdict {
    Allowed,
    /// Not known (never read, or too old): allowed.
    Unknown,
    Refused(String),
}

const ANONYMOUS_REFUSED: &str = "calls without credentials are not served while budgets are enforced: call with \
                                 your own credentials";
const ANONYMOUS_UNBUDGETED: &str = "calls without credentials are not served while per-user budgets are \
     enforced: call with your own credentials, or ask an administrator to set a budget for them \
     (archon-mcp-exporter budgets set --scope anonymous --monthly AMOUNT)";

impl BudgetGate {
    /// A gate that trusts a reading for `stale_after` (then lets calls through until the next).
    pub fn new(stale_after: Duration) -> Self {
        Self::build(stale_after, AnonymousCalls::default())
    }

    fn build(stale_after: Duration, anonymous: AnonymousCalls) -> Self {
        Self {
            inner: Arc::new(Gate {
                reading: RwLock::new(None),
                stale_after,
                anonymous,
                prices: RwLock::default(),
                models_seen: Mutex::default(),
            }),
        }
    }

    /// What to do with calls without a user (a new gate: set it before sharing this one).
    ///
    /// ```
    /// use std::time::Duration;
    /// use archon_mcp_instrument::budget::{AnonymousCalls, BudgetGate};
    /// let gate = BudgetGate::new(Duration::from_secs(120)).with_anonymous_calls(AnonymousCalls::Refused);
    /// ```
    pub fn with_anonymous_calls(self, policy: AnonymousCalls) -> Self {
        Self::build(self.inner.stale_after, policy)
    }

    /// Replaces the budgets in force and their spend, as read now; what was spent here since
    /// the last reading is forgotten (the reading includes it, but for the calls whose spans
    /// had not reached the database yet).
    pub fn update(&self, budgets: Vec<BudgetStatus>) {
        let budgets = budgets.into_iter().map(|b| (b, Mutex::default())).collect();
        *self.inner.reading.write().unwrap_or_else(|p| p.into_inner()) = Some(Reading { at: Instant::now(), budgets });
    }

    /// Sets the prices (USD per 1,000 input and output tokens) of models, for the spend of
    /// calls that report tokens but no cost.
    pub fn set_prices(&self, prices: impl IntoIterator<Item = (String, (f64, f64))>) {
        self.inner.prices.write().unwrap_or_else(|p| p.into_inner()).extend(prices);
    }

    /// The models this server's calls reported tokens for that have no price yet.
    pub fn unpriced_models(&self) -> Vec<String> {
        let prices = self.inner.prices.read().unwrap_or_else(|p| p.into_inner());
        let seen = self.inner.models_seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.iter().filter(|m| !prices.contains_key(*m)).cloned().collect()
    }

    /// Whether the last reading is too old to enforce (or there is none).
    pub fn is_stale(&self) -> bool {
        let reading = self.inner.reading.read().unwrap_or_else(|p| p.into_inner());
        reading.as_ref().is_none_or(|r| r.at.elapsed() > self.inner.stale_after)
    }

    /// Reads `fetch` now and every `every` on the current Tokio runtime, updating the gate; a
    /// read that fails, or takes longer than `every` (at least a second), keeps the last reading
    /// (which goes stale in time) and is logged, as is the state going stale. Returns the task.
    pub fn refresh_every<F, Fut, E>(&self, every: Duration, fetch: F) -> tokio::task::JoinHandle<()>
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = Result<Vec<BudgetStatus>, E>> + Send,
        E: std::fmt::Display,
    {
        let gate = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut was_stale = false;
            loop {
                tick.tick().await;
                match tokio::time::timeout(every.max(Duration::from_secs(1)), fetch()).await {
                    Ok(Ok(budgets)) => gate.update(budgets),
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "reading budgets failed; enforcing the last reading until it is stale")
                    }
                    Err(_) => {
                        tracing::warn!("reading budgets took too long; enforcing the last reading until it is stale")
                    }
                }
                was_stale = gate.log_staleness(was_stale);
            }
        })
    }

    /// Says in the log when the state goes stale and when it is current again; returns whether
    /// it is stale now.
    pub fn log_staleness(&self, was_stale: bool) -> bool {
        let stale = self.is_stale();
        if stale && !was_stale {
            tracing::warn!(
                "the budget state is stale: tool calls go through unchecked until budgets are read again \
                 (archon.budget.unknown_state counts them)"
            );
        } else if was_stale && !stale {
            tracing::info!("the budget state is current again: budgets are enforced");
        }
        stale
    }

    /// Whether a call of `tool` by `user` may go through.
    pub(crate) fn check(&self, user: Option<&UserInfo>, tool: &str) -> Verdict {
        if user.is_none() && self.inner.anonymous == AnonymousCalls::Refused {
            return Verdict::Refused(ANONYMOUS_REFUSED.into());
        }
        let reading = self.inner.reading.read().unwrap_or_else(|p| p.into_inner());
        let Some(reading) = reading.as_ref().filter(|r| r.at.elapsed() <= self.inner.stale_after) else {
            return Verdict::Unknown;
        };
        if user.is_none() {
            let scopes = || reading.budgets.iter().map(|(b, _)| &b.scope);
            let per_user = scopes().any(|s| matches!(s, BudgetScope::User(_) | BudgetScope::Department(_)));
            if per_user && !scopes().any(|s| *s == BudgetScope::Anonymous) {
                return Verdict::Refused(ANONYMOUS_UNBUDGETED.into());
            }
        }
        let prices = self.inner.prices.read().unwrap_or_else(|p| p.into_inner());
        let used_up = reading.budgets.iter().filter(|(b, _)| b.scope.covers(user, tool)).find(|(b, local)| {
            let here = local.lock().unwrap_or_else(|p| p.into_inner()).usd(&prices);
            b.spend + here >= b.monthly_amount
        });
        match used_up {
            Some((b, _)) => Verdict::Refused(b.message()),
            None => Verdict::Allowed,
        }
    }

    /// Adds what a call of `tool` by `user` spent to every budget it counts against.
    pub(crate) fn spent(&self, user: Option<&UserInfo>, tool: &str, usage: &Usage) {
        let usd = usage.cost.filter(|_| usage.currency.as_deref().is_none_or(|c| c.eq_ignore_ascii_case("USD")));
        let tokens = match (&usage.model, usage.input_tokens, usage.output_tokens) {
            (Some(model), input, output) if usd.is_none() && (input.is_some() || output.is_some()) => {
                Some((model, input.unwrap_or(0), output.unwrap_or(0)))
            }
            _ => None,
        };
        if usd.is_none() && tokens.is_none() {
            return;
        }
        if let Some((model, ..)) = tokens {
            let mut seen = self.inner.models_seen.lock().unwrap_or_else(|p| p.into_inner());
            if !seen.contains(model) {
                seen.push(model.clone());
            }
        }
        let reading = self.inner.reading.read().unwrap_or_else(|p| p.into_inner());
        let Some(reading) = reading.as_ref() else { return };
        for (_, local) in reading.budgets.iter().filter(|(b, _)| b.scope.covers(user, tool)) {
            let mut local = local.lock().unwrap_or_else(|p| p.into_inner());
            local.usd += usd.unwrap_or(0.0);
            if let Some((model, input, output)) = tokens {
                let entry = local.tokens.entry(model.clone()).or_default();
                *entry = (entry.0 + input, entry.1 + output);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn department(name: &str) -> BudgetScope {
        BudgetScope::Department(name.into())
    }

    #[test]
    fn the_callers_user_department_or_tool_decides_and_no_spend_is_shown() {
        let gate = BudgetGate::new(Duration::from_secs(60));
        let ada = UserInfo { department: Some("Research".into()), ..UserInfo::new("ada") };
        let bob = UserInfo { department: Some("Sales".into()), ..UserInfo::new("bob") };
        assert_eq!(gate.check(Some(&ada), "search"), Verdict::Unknown, "nothing read yet");
        gate.update(vec![
            BudgetStatus::new(department("Research"), 500.0, 512.4),
            BudgetStatus::new(department("Sales"), 500.0, 12.0),
            BudgetStatus::new(BudgetScope::Tool("summarize".into()), 50.0, 50.0),
            BudgetStatus::new(BudgetScope::Anonymous, 10.0, 0.0),
        ]);
        let Verdict::Refused(message) = gate.check(Some(&ada), "search") else { panic!() };
        assert!(message.contains("department:Research (500.00 USD)"), "{message}");
        assert!(!message.contains("512"), "nobody's spend is shown: {message}");
        assert!(message.contains("budgets set --scope department:Research"));
        assert_eq!(gate.check(Some(&bob), "search"), Verdict::Allowed);
        assert!(matches!(gate.check(Some(&bob), "summarize"), Verdict::Refused(_)));
        assert!(matches!(gate.check(None, "summarize"), Verdict::Refused(_)));
        assert_eq!(gate.check(None, "search"), Verdict::Allowed, "within the anonymous budget");

        let stale = BudgetGate::new(Duration::ZERO);
        stale.update(vec![BudgetStatus::new(BudgetScope::All, 1.0, 2.0)]);
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(stale.check(Some(&ada), "search"), Verdict::Unknown, "a stale reading lets calls through");
        assert!(stale.is_stale());
    }

    #[test]
    fn a_server_stops_at_the_budget_within_one_calls_cost_between_readings() {
        let gate = BudgetGate::new(Duration::from_secs(60));
        let ada = UserInfo { department: Some("Research".into()), ..UserInfo::new("ada") };
        gate.update(vec![BudgetStatus::new(BudgetScope::User("ada".into()), 5.0, 0.0)]);
        let mut served = 0;
        while gate.check(Some(&ada), "search") == Verdict::Allowed && served < 1000 {
            gate.spent(Some(&ada), "search", &Usage::new("m").with_cost_usd(1.0));
            served += 1;
        }
        assert_eq!(served, 5, "5 USD of 1 USD calls");
        // Tokens without a cost count once their model is priced.
        gate.update(vec![BudgetStatus::new(BudgetScope::User("ada".into()), 5.0, 0.0)]);
        gate.spent(Some(&ada), "search", &Usage::new("claude").with_tokens(2_000_000, 0));
        assert_eq!(gate.unpriced_models(), ["claude"]);
        assert_eq!(gate.check(Some(&ada), "search"), Verdict::Allowed, "unpriced: not counted yet");
        gate.set_prices([("claude".to_owned(), (0.003, 0.015))]);
        assert!(
            matches!(gate.check(Some(&ada), "search"), Verdict::Refused(_)),
            "2M tokens at 0.003 USD per 1k: 6 of 5 USD"
        );
        assert!(gate.unpriced_models().is_empty());
    }

    #[test]
    fn a_call_without_a_user_is_never_a_way_around_a_budget() {
        let gate = BudgetGate::new(Duration::from_secs(60));
        gate.update(vec![BudgetStatus::new(BudgetScope::User("ada".into()), 5.0, 9.0)]);
        let Verdict::Refused(message) = gate.check(None, "search") else { panic!("served anonymously") };
        assert!(message.contains("--scope anonymous"), "{message}");
        gate.update(vec![BudgetStatus::new(BudgetScope::Tool("other".into()), 5.0, 0.0)]);
        assert_eq!(gate.check(None, "search"), Verdict::Allowed, "no per-user budget to get around");

        let strict = BudgetGate::new(Duration::from_secs(60)).with_anonymous_calls(AnonymousCalls::Refused);
        assert!(matches!(strict.check(None, "search"), Verdict::Refused(_)), "even before a reading");
        assert_eq!(strict.check(Some(&UserInfo::new("ada")), "search"), Verdict::Unknown);
    }
}
