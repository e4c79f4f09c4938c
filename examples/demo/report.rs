//! The report: what the database answers, through Archon's SQL API.

use tokio_postgres::{NoTls, Row};

/// Prints the report for the database at `url`.
pub async fn print(url: &str) -> anyhow::Result<()> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(connection);

    let totals = client
        .query_one(
            "SELECT total_requests, unique_sessions, unique_users, total_tokens, total_cost::float8, failed_requests
               FROM get_mcp_usage_summary(now() - interval '1 day', now())",
            &[],
        )
        .await?;
    println!(
        "\nLast 24 h: {} requests in {} sessions by {} users, {} tokens, ${:.4}, {} failed",
        totals.get::<_, i64>(0),
        totals.get::<_, i64>(1),
        totals.get::<_, i64>(2),
        totals.get::<_, i64>(3),
        totals.get::<_, f64>(4),
        totals.get::<_, i64>(5),
    );

    table(
        "Users (archon_mcp_user_stats)",
        &["user", "department", "sessions", "requests", "tokens", "cost $"],
        client
            .query(
                "SELECT coalesce(user_name, user_key), coalesce(user_department, ''), total_sessions::text,
                        total_requests::text, total_tokens::text, round(total_cost, 4)::text
                   FROM archon_mcp_user_stats ORDER BY total_cost DESC, user_name",
                &[],
            )
            .await?,
    );
    table(
        "Cost by department and model",
        &["department", "model", "requests", "tokens", "cost $"],
        client
            .query(
                "SELECT coalesce(s.user_department, '(none)'), coalesce(r.model, '(estimated)'), count(*)::text,
                        sum(r.total_tokens)::text, round(sum(r.estimated_cost), 4)::text
                   FROM archon_mcp_requests r JOIN archon_mcp_sessions s USING (session_id)
                  WHERE r.estimated_cost IS NOT NULL
                  GROUP BY 1, 2 ORDER BY sum(r.estimated_cost) DESC",
                &[],
            )
            .await?,
    );
    table(
        "Tools (get_mcp_usage_by_tool)",
        &["tool", "requests", "p95 ms", "error rate"],
        client
            .query(
                "SELECT tool_name::text, request_count::text, round(p95_duration_ms::numeric, 1)::text,
                        round(100.0 * error_count / request_count, 1)::text || ' %'
                   FROM get_mcp_usage_by_tool(now() - interval '1 day', now())",
                &[],
            )
            .await?,
    );
    table(
        "Sessions by client (archon_mcp_session_stats)",
        &["client", "sessions", "open", "client disconnect", "server shutdown", "avg s"],
        client
            .query(
                "SELECT client_type::text, total_sessions::text, (active_sessions + idle_sessions)::text,
                        client_disconnects::text, server_shutdown_disconnects::text,
                        coalesce(round(avg_duration_seconds)::text, '-')
                   FROM archon_mcp_session_stats ORDER BY total_sessions DESC, client_type",
                &[],
            )
            .await?,
    );
    Ok(())
}

/// Prints rows of text columns as an aligned table.
fn table(title: &str, header: &[&str], rows: Vec<Row>) {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| (0..header.len()).map(|i| r.get::<_, Option<String>>(i).unwrap_or_default()).collect())
        .collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|i| cells.iter().map(|row| row[i].chars().count()).chain([header[i].len()]).max().unwrap_or(0))
        .collect();
    let line = |values: &[&str]| {
        values
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (v, w))| if i == 0 { format!("{v:<w$}") } else { format!("{v:>w$}") })
            .collect::<Vec<_>>()
            .join("  ")
    };
    println!("\n{title}");
    println!("{}", line(header));
    println!("{}", widths.iter().map(|w| "─".repeat(*w)).collect::<Vec<_>>().join("  "));
    for row in &cells {
        println!("{}", line(&row.iter().map(String::as_str).collect::<Vec<_>>()));
    }
}
