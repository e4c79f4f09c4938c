//! Monthly cost budgets (`archon_budgets`, migration V8): set, list, remove, and the state of
//! each — what `archon-mcp-exporter budgets …` runs and what enforcement at the server reads.
//!
//! ```no_run
//! # async fn run(client: &tokio_postgres::Client) -> Result<(), archon_mcp_exporter::budgets::BudgetError> {
//! use archon_mcp_exporter::budgets::{self, BudgetSpec, Scope};
//! let scope: Scope = "department:Research".parse()?;
//! budgets::set(client, &BudgetSpec::monthly(scope, 500.0)).await?;
//! for status in budgets::status(client).await? {
//!     println!("{}: {:.2} of {:.2} USD ({})", status.scope, status.spend_mtd, status.monthly_amount, status.state);
//! }
//! # Ok(()) }
//! ```

#[cfg(feature = "gate")]
pub mod gate;

use std::fmt;
use std::str::FromStr;

use tokio_postgres::GenericClient;

/// What a budget covers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Every request.
    All,
    /// The requests of no user (anonymous calls).
    Anonymous,
    /// One user, by principal (`user_key`: the JWT `sub`, …).
    User(String),
    /// One department.
    Department(String),
    /// One tool.
    Tool(String),
    /// One client type (`Claude`, `Cursor`, …).
    ClientType(String),
}

impl Scope {
    /// The stored `scope` and `scope_value`.
    pub fn parts(&self) -> (&'static str, Option<&str>) {
        match self {
            Scope::All => ("all", None),
            Scope::Anonymous => ("anonymous", None),
            Scope::User(v) => ("user", Some(v)),
            Scope::Department(v) => ("department", Some(v)),
            Scope::Tool(v) => ("tool", Some(v)),
            Scope::ClientType(v) => ("client_type", Some(v)),
        }
    }

    fn from_parts(scope: &str, value: Option<String>) -> Option<Self> {
        Some(match (scope, value) {
            ("all", _) => Scope::All,
            ("anonymous", _) => Scope::Anonymous,
            ("user", Some(v)) => Scope::User(v),
            ("department", Some(v)) => Scope::Department(v),
            ("tool", Some(v)) => Scope::Tool(v),
            ("client_type", Some(v)) => Scope::ClientType(v),
            _ => return None,
        })
    }
}

impl FromStr for Scope {
    type Err = BudgetError;

    /// `all`, `anonymous`, or `user:KEY`, `department:NAME`, `tool:NAME`, `client_type:TYPE`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BudgetError::Scope(s.to_owned());
        match s.trim() {
            "all" => return Ok(Scope::All),
            "anonymous" => return Ok(Scope::Anonymous),
            _ => {}
        }
        let (kind, value) = s.split_once(':').ok_or_else(bad)?;
        let value = value.trim();
        if value.is_empty() || matches!(kind.trim(), "all" | "anonymous") {
            return Err(bad());
        }
        Scope::from_parts(kind.trim(), Some(value.to_owned())).ok_or_else(bad)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.parts() {
            (kind, Some(value)) => write!(f, "{kind}:{value}"),
            (kind, None) => f.write_str(kind),
        }
    }
}

/// A budget to set.
///
/// ```
/// use archon_mcp_exporter::budgets::{BudgetSpec, Scope};
///
/// let spec = BudgetSpec::monthly(Scope::All, 500.0).with_warn_at(vec![50, 90]);
/// assert_eq!(spec.currency, "USD");
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct BudgetSpec {
    /// What it covers.
    pub scope: Scope,
    /// The monthly amount.
    pub monthly_amount: f64,
    /// ISO 4217; only `USD` (costs are stored in USD).
    pub currency: String,
    /// Warning thresholds, percent of the amount.
    pub warn_at: Vec<i32>,
    /// First day in force (default today), `YYYY-MM-DD`.
    pub effective_from: Option<BudgetDate>,
}

impl BudgetSpec {
    /// `amount` USD a month, warnings at 80 % and 100 %, from today.
    pub fn monthly(scope: Scope, amount: f64) -> Self {
        Self { scope, monthly_amount: amount, currency: "USD".into(), warn_at: vec![80, 100], effective_from: None }
    }
}

with_setters!(BudgetSpec {
    with_currency => currency: String,
    with_warn_at => warn_at: Vec<i32>,
    with_effective_from => effective_from: Option<BudgetDate>,
});

/// The state of one budget this month (a row of `archon_budget_status()`).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct BudgetStatus {
    /// What it covers.
    pub scope: Scope,
    /// The monthly amount.
    pub monthly_amount: f64,
    /// Its currency.
    pub currency: String,
    /// Cost of the month so far.
    pub spend_mtd: f64,
    /// The month's cost at the run rate so far.
    pub forecast: f64,
    /// `spend_mtd` as a percentage of the amount.
    pub percent_used: f64,
    /// `ok`, `warning`, `over` or `forecast_over`.
    pub state: String,
    /// Requests of the month so far.
    pub requests_mtd: i64,
}

/// Why a budget command failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BudgetError {
    /// A scope that does not parse.
    #[error("invalid scope {0:?}: use all, anonymous, user:KEY, department:NAME, tool:NAME or client_type:TYPE")]
    Scope(String),
    /// An amount, currency or threshold the schema refuses.
    #[error("{0}")]
    Invalid(String),
    /// No budget matched.
    #[error("no budget for {0}: `archon-mcp-exporter budgets list` shows those there are")]
    NotFound(Scope),
    /// The database failed.
    #[error("database error: {0}")]
    Database(String),
}

fn database(e: tokio_postgres::Error) -> BudgetError {
    match e.as_db_error() {
        Some(db) if db.code().code().starts_with("23") => BudgetError::Invalid(format!(
            "the budget was refused: {} (amount > 0, currency USD, thresholds 1–1000 %)",
            db.message()
        )),
        Some(db) if db.code().code() == "42P01" => {
            BudgetError::Database("no budgets table: run `archon-mcp-exporter migrate` first".into())
        }
        Some(db) if db.code().code() == "42501" => {
            BudgetError::Database(format!("{} — managing budgets needs a login granted archon_admin", db.message()))
        }
        _ => BudgetError::Database(crate::pg_error::describe(&e)),
    }
}

/// Sets a budget: replaces the amount, currency and thresholds of the budget of this scope in
/// force from the same day, else adds one.
pub async fn set(client: &impl GenericClient, spec: &BudgetSpec) -> Result<(), BudgetError> {
    if !(spec.monthly_amount.is_finite() && spec.monthly_amount > 0.0) {
        return Err(BudgetError::Invalid(format!("--monthly must be a positive amount, not {}", spec.monthly_amount)));
    }
    let (scope, value) = spec.scope.parts();
    let from = spec.effective_from.as_ref().map(BudgetDate::to_string);
    client
        .execute(
            "INSERT INTO archon_budgets (scope, scope_value, monthly_amount, currency, warn_at, effective_from)
             VALUES ($1, $2, $3::float8::numeric, $4, $5, coalesce($6::text::date, current_date))
             ON CONFLICT (scope, coalesce(scope_value, ''), effective_from) DO UPDATE SET
                monthly_amount = EXCLUDED.monthly_amount, currency = EXCLUDED.currency, warn_at = EXCLUDED.warn_at",
            &[&scope, &value, &spec.monthly_amount, &spec.currency.to_uppercase(), &spec.warn_at, &from],
        )
        .await
        .map_err(database)?;
    Ok(())
}

/// Removes every budget of a scope; an error when there was none.
pub async fn remove(client: &impl GenericClient, scope: &Scope) -> Result<u64, BudgetError> {
    let (kind, value) = scope.parts();
    let removed = client
        .execute(
            "DELETE FROM archon_budgets WHERE scope = $1 AND scope_value IS NOT DISTINCT FROM $2",
            &[&kind, &value],
        )
        .await
        .map_err(database)?;
    if removed == 0 {
        return Err(BudgetError::NotFound(scope.clone()));
    }
    Ok(removed)
}

/// The state of every budget in force now, as the caller may see it (row-level security).
pub async fn status(client: &impl GenericClient) -> Result<Vec<BudgetStatus>, BudgetError> {
    let rows = client
        .query(
            "SELECT scope::text, scope_value, monthly_amount::float8, currency::text, spend_mtd::float8,
                    forecast::float8, percent_used::float8, state, requests_mtd
               FROM archon_budget_status()",
            &[],
        )
        .await
        .map_err(database)?;
    Ok(rows
        .iter()
        .filter_map(|row| {
            Some(BudgetStatus {
                scope: Scope::from_parts(row.get(0), row.get(1))?,
                monthly_amount: row.get(2),
                currency: row.get(3),
                spend_mtd: row.get(4),
                forecast: row.get(5),
                percent_used: row.get(6),
                state: row.get(7),
                requests_mtd: row.get(8),
            })
        })
        .collect())
}

/// A calendar date, `YYYY-MM-DD` (PostgreSQL does the calendar; this only checks the form).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetDate {
    year: u16,
    month: u8,
    day: u8,
}

impl FromStr for BudgetDate {
    type Err = BudgetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BudgetError::Invalid(format!("invalid date {s:?}: use YYYY-MM-DD"));
        let mut parts = s.trim().splitn(3, '-');
        let mut next = || parts.next().and_then(|p| p.parse::<u16>().ok()).ok_or_else(bad);
        let (year, month, day) = (next()?, next()?, next()?);
        if !(1..=12).contains(&month) || !(1..=31).contains(&day) || year < 1970 {
            return Err(bad());
        }
        Ok(Self { year, month: month as u8, day: day as u8 })
    }
}

impl fmt::Display for BudgetDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse_and_print() {
        for text in
            ["all", "anonymous", "user:ada@corp", "department:Research", "tool:search_knowledge", "client_type:Cursor"]
        {
            assert_eq!(text.parse::<Scope>().unwrap().to_string(), text);
        }
        for bad in ["", "department", "department:", "team:x", "all:x", "anonymous:x"] {
            assert!(bad.parse::<Scope>().is_err(), "{bad}");
        }
        assert_eq!("2026-11-03".parse::<BudgetDate>().unwrap().to_string(), "2026-11-03");
        assert!("2026-13-01".parse::<BudgetDate>().is_err());
    }
}
