//! The demo's report: what the database answers, through Archon's SQL API.

use std::fmt;

use tokio_postgres::Client;

/// Headline figures of the last 24 hours (`get_mcp_usage_summary`).
#[derive(Debug, Clone, PartialEq)]
pub struct Totals {
    /// Requests stored.
    pub requests: i64,
    /// Sessions they belong to.
    pub sessions: i64,
    /// Distinct users.
    pub users: i64,
    /// Tokens, reported and estimated.
    pub tokens: i64,
    /// Cost in USD.
    pub cost: f64,
    /// Requests that failed.
    pub failed: i64,
}

/// A titled table of text cells.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// What it shows.
    pub title: &'static str,
    /// Column names.
    pub header: Vec<&'static str>,
    /// Cells.
    pub rows: Vec<Vec<String>>,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Headline figures.
    pub totals: Totals,
    /// Per user, per department and model, per tool, per client.
    pub tables: Vec<Table>,
}

async fn table(
    client: &Client,
    title: &'static str,
    header: &[&'static str],
    sql: &str,
) -> Result<Table, tokio_postgres::Error> {
    let rows = client
        .query(sql, &[])
        .await?
        .iter()
        .map(|r| (0..header.len()).map(|i| r.get::<_, Option<String>>(i).unwrap_or_default()).collect())
        .collect();
    Ok(Table { title, header: header.to_vec(), rows })
}

impl Report {
    /// Reads the report.
    pub async fn read(client: &Client) -> Result<Self, tokio_postgres::Error> {
        let t = client
            .query_one(
                "SELECT total_requests, unique_sessions, unique_users, total_tokens, total_cost::float8, failed_requests
                   FROM get_mcp_usage_summary(now() - interval '1 day', now() + interval '1 minute')",
                &[],
            )
            .await?;
        let totals = Totals {
            requests: t.get(0),
            sessions: t.get(1),
            users: t.get(2),
            tokens: t.get(3),
            cost: t.get(4),
            failed: t.get(5),
        };
        let tables = vec![
            table(
                client,
                "Users (archon_mcp_user_stats)",
                &["user", "department", "sessions", "requests", "reported tokens", "estimated tokens", "cost $"],
                "SELECT coalesce(user_name, user_key), coalesce(user_department, ''), total_sessions::text,
                        total_requests::text, reported_tokens::text, estimated_tokens::text, round(total_cost, 4)::text
                   FROM archon_mcp_user_stats ORDER BY total_cost DESC, user_name",
            )
            .await?,
            table(
                client,
                "Cost by department and model",
                &["department", "model", "requests", "tokens", "cost $"],
                "SELECT coalesce(s.user_department, '(none)'), coalesce(r.model, '(estimated)'), count(*)::text,
                        sum(r.total_tokens)::text, round(sum(r.estimated_cost), 4)::text
                   FROM archon_mcp_requests r JOIN archon_mcp_sessions s USING (session_id)
                  WHERE r.estimated_cost IS NOT NULL
                  GROUP BY 1, 2 ORDER BY sum(r.estimated_cost) DESC, 1, 2",
            )
            .await?,
            table(
                client,
                "Tools (get_mcp_usage_by_tool)",
                &["tool", "requests", "p95 ms", "error rate"],
                "SELECT tool_name::text, request_count::text, round(p95_duration_ms::numeric, 3)::text,
                        round(100.0 * error_count / request_count, 1)::text || ' %'
                   FROM get_mcp_usage_by_tool(now() - interval '1 day', now() + interval '1 minute')",
            )
            .await?,
            table(
                client,
                "Budgets (archon_budget_status)",
                &["budget", "monthly $", "spent $", "forecast $", "used", "state"],
                "SELECT scope || coalesce(':' || scope_value, ''), round(monthly_amount, 2)::text,
                        round(spend_mtd, 4)::text, round(forecast, 4)::text, round(percent_used, 1)::text || ' %', state
                   FROM archon_budget_status() ORDER BY percent_used DESC",
            )
            .await?,
            table(
                client,
                "Sessions by client and disconnect reason",
                &["client", "reason", "sessions", "avg s"],
                "SELECT client_type::text, coalesce(disconnect_reason::text, '(open)'), count(*)::text,
                        coalesce(round(avg(extract(epoch FROM disconnected_at - connected_at)), 1)::text, '-')
                   FROM archon_mcp_sessions GROUP BY 1, 2 ORDER BY count(*) DESC, 1, 2",
            )
            .await?,
        ];
        Ok(Self { totals, tables })
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = &self.totals;
        writeln!(
            f,
            "Last 24 h: {} requests in {} sessions by {} users, {} tokens, ${:.4}, {} failed",
            t.requests, t.sessions, t.users, t.tokens, t.cost, t.failed
        )?;
        for table in &self.tables {
            let widths: Vec<usize> = (0..table.header.len())
                .map(|i| {
                    table.rows.iter().map(|r| r[i].chars().count()).chain([table.header[i].len()]).max().unwrap_or(0)
                })
                .collect();
            let line = |cells: Vec<&str>| {
                cells
                    .iter()
                    .zip(&widths)
                    .enumerate()
                    .map(|(i, (v, w))| if i == 0 { format!("{v:<w$}") } else { format!("{v:>w$}") })
                    .collect::<Vec<_>>()
                    .join("  ")
            };
            writeln!(f, "\n{}", table.title)?;
            writeln!(f, "{}", line(table.header.clone()))?;
            writeln!(f, "{}", widths.iter().map(|w| "─".repeat(*w)).collect::<Vec<_>>().join("  "))?;
            for row in &table.rows {
                writeln!(f, "{}", line(row.iter().map(String::as_str).collect()))?;
            }
        }
        Ok(())
    }
}
