//! The columns of the batch writes, each named once: a statement's `unnest(…)`, its column
//! lists and its parameters are generated from one table, so a value cannot be bound to
//! another column's place.

use std::sync::LazyLock;

use serde_json::Value as Json;
use tokio_postgres::types::ToSql;

use crate::rows::{RequestRow, SessionUpsert, TokenSource};
use crate::store::StoreConfig;

/// A parameter of a batch statement: one column's values, as an array.
pub(super) type Param<'a> = Box<dyn ToSql + Sync + Send + 'a>;

/// Declares a batch's columns, `name: "array element type" = |row| value`, as the constant
/// `$names` (name, type) and the function `$params` giving their parameters, in one order.
macro_rules! columns {
    (
        $names:ident, fn $params:ident<$a:lifetime>($rows:ident: &[$row:ty] $(, $arg:ident: $arg_ty:ty)*)
        { $($name:ident: $ty:literal = |$r:ident| $value:expr),* $(,)? }
    ) => {
        const $names: &[(&str, &str)] = &[$((stringify!($name), $ty)),*];

        pub(super) fn $params<$a>($rows: &$a [$row] $(, $arg: $arg_ty)*) -> Vec<Param<$a>> {
            vec![$(Box::new($rows.iter().map(|$r| $value).collect::<Vec<_>>()) as Param<$a>),*]
        }
    };
}

columns!(SESSION_COLUMNS, fn session_params<'a>(sessions: &[SessionUpsert]) {
    session_id: "uuid" = |s| s.session_id,
    client_type: "text" = |s| s.client_type.as_str(),
    client_name: "text" = |s| s.client_name.as_deref(),
    client_version: "text" = |s| s.client_version.as_deref(),
    client_capabilities: "jsonb" = |s| s.client_capabilities.as_ref(),
    connected_at: "timestamptz" = |s| s.connected_at,
    last_activity: "timestamptz" = |s| s.last_activity,
    disconnected_at: "timestamptz" = |s| s.disconnected_at,
    disconnect_reason: "text" = |s| s.disconnect_reason.as_deref(),
    user_id: "uuid" = |s| s.user_id,
    user_key: "text" = |s| s.user_key.as_deref(),
    user_email: "text" = |s| s.user_email.as_deref(),
    user_name: "text" = |s| s.user_name.as_deref(),
    user_department: "text" = |s| s.user_department.as_deref(),
    mcp_session_id: "text" = |s| s.mcp_session_id.as_deref(),
    service_name: "text" = |s| s.service_name.as_deref(),
    metadata: "jsonb" = |s| Json::Object(s.metadata.clone()),
    catalog_tokens: "int4" = |s| s.catalog_tokens,
});

columns!(REQUEST_COLUMNS, fn request_params<'a>(requests: &[RequestRow], config: &'a StoreConfig) {
    request_id: "uuid" = |r| r.request_id,
    session_id: "uuid" = |r| r.session_id,
    method: "text" = |r| r.method.as_str(),
    tool_name: "text" = |r| r.tool_name.as_deref(),
    prompt_tokens: "int4" = |r| r.prompt_tokens,
    completion_tokens: "int4" = |r| r.completion_tokens,
    token_source: "text" = |r| r.token_source.as_str(),
    model: "text" = |r| r.model.as_deref(),
    timestamp: "timestamptz" = |r| r.timestamp,
    duration_ms: "float8" = |r| r.duration_ms,
    status: "text" = |r| r.status.as_str(),
    error_type: "text" = |r| r.error_type.as_deref(),
    error_code: "int4" = |r| r.error_code,
    error_message: "text" = |r| r.error_message.as_deref(),
    // The request's own user: one without (no token, a bad one) is billed to nobody, never to
    // its session's user.
    user_id: "uuid" = |r| r.user_id,
    trace_id: "text" = |r| r.trace_id.as_str(),
    span_id: "text" = |r| r.span_id.as_str(),
    parent_span_id: "text" = |r| r.parent_span_id.as_deref(),
    jsonrpc_request_id: "text" = |r| r.jsonrpc_request_id.as_deref(),
    // Inputs of `estimated_cost`, not columns of the table (REQUEST_INPUTS).
    reported_cost: "float8" = |r| r.reported_cost,
    price_model: "text" = |r| price_model(r, config),
});

/// The request columns that only price a row.
const REQUEST_INPUTS: [&str; 2] = ["reported_cost", "price_model"];

/// The model whose price applies to a request's tokens.
fn price_model<'a>(request: &'a RequestRow, config: &'a StoreConfig) -> Option<&'a str> {
    match request.token_source {
        TokenSource::Reported => request.model.as_deref(),
        TokenSource::Estimated => config.estimate_model.as_deref(),
        TokenSource::None => None,
    }
}

/// `unnest($1::uuid[], …) AS u(session_id, …)` of `columns`.
fn unnest(columns: &[(&str, &str)]) -> String {
    let arrays: Vec<String> = columns.iter().enumerate().map(|(i, (_, ty))| format!("${}::{ty}[]", i + 1)).collect();
    format!("unnest({}) AS u({})", arrays.join(", "), names(columns, "").join(", "))
}

/// The names of `columns`, each after `prefix`.
fn names(columns: &[(&str, &str)], prefix: &str) -> Vec<String> {
    columns.iter().map(|(name, _)| format!("{prefix}{name}")).collect()
}

/// The session upsert: the earliest start, the latest activity, the first known client and
/// user; an end once set is kept unless a truer one arrives (`archon_mcp_end_wins`).
pub(super) static UPSERT_SESSIONS: LazyLock<String> = LazyLock::new(|| {
    format!(
        r#"
INSERT INTO archon_mcp_sessions AS s ({columns}, status)
SELECT u.*, CASE WHEN u.disconnected_at IS NULL THEN 'active' ELSE 'disconnected' END
  FROM {unnest}
 ORDER BY u.session_id
ON CONFLICT (session_id) DO UPDATE SET
    connected_at = least(s.connected_at, EXCLUDED.connected_at),
    last_activity = greatest(s.last_activity, EXCLUDED.last_activity),
    client_type = CASE WHEN s.client_type = 'Unknown' THEN EXCLUDED.client_type ELSE s.client_type END,
    client_name = coalesce(s.client_name, EXCLUDED.client_name),
    client_version = coalesce(s.client_version, EXCLUDED.client_version),
    client_capabilities = coalesce(s.client_capabilities, EXCLUDED.client_capabilities),
    disconnected_at = CASE WHEN archon_mcp_end_wins(EXCLUDED.disconnected_at, EXCLUDED.disconnect_reason,
                                                    s.disconnected_at, s.disconnect_reason)
                           THEN EXCLUDED.disconnected_at ELSE s.disconnected_at END,
    disconnect_reason = CASE WHEN archon_mcp_end_wins(EXCLUDED.disconnected_at, EXCLUDED.disconnect_reason,
                                                      s.disconnected_at, s.disconnect_reason)
                             THEN EXCLUDED.disconnect_reason ELSE s.disconnect_reason END,
    -- Once ended, always ended; otherwise newer activity makes an idle session active again.
    status = CASE WHEN s.disconnected_at IS NOT NULL OR EXCLUDED.disconnected_at IS NOT NULL THEN 'disconnected'
                  WHEN EXCLUDED.last_activity > s.last_activity THEN 'active'
                  ELSE s.status END,
    user_id = coalesce(s.user_id, EXCLUDED.user_id),
    user_key = coalesce(s.user_key, EXCLUDED.user_key),
    user_email = coalesce(s.user_email, EXCLUDED.user_email),
    user_name = coalesce(s.user_name, EXCLUDED.user_name),
    user_department = coalesce(s.user_department, EXCLUDED.user_department),
    mcp_session_id = coalesce(s.mcp_session_id, EXCLUDED.mcp_session_id),
    service_name = coalesce(s.service_name, EXCLUDED.service_name),
    catalog_tokens = greatest(s.catalog_tokens, EXCLUDED.catalog_tokens),
    metadata = EXCLUDED.metadata || s.metadata
"#,
        columns = names(SESSION_COLUMNS, "").join(", "),
        unnest = unnest(SESSION_COLUMNS),
    )
});

/// The request insert, priced from `archon_llm_pricing` at the request's time unless tool code
/// reported a cost; a request already stored is left as it is.
pub(super) static INSERT_REQUESTS: LazyLock<String> = LazyLock::new(|| {
    let stored: Vec<(&str, &str)> =
        REQUEST_COLUMNS.iter().copied().filter(|(name, _)| !REQUEST_INPUTS.contains(name)).collect();
    format!(
        r#"
WITH u AS (SELECT * FROM {unnest}),
-- Prices change by the day: one lookup per model and day of the batch, not one per row.
prices AS (
    SELECT g.price_model, g.day, p.input_price_per_1k, p.output_price_per_1k
      FROM (SELECT price_model, timestamp::date AS day, min(timestamp) AS at
              FROM u WHERE price_model IS NOT NULL GROUP BY 1, 2) g
     CROSS JOIN LATERAL archon_llm_price_at(g.price_model, g.at) p
)
INSERT INTO archon_mcp_requests ({columns}, estimated_cost)
SELECT {values},
       coalesce(u.reported_cost::numeric,
                CASE WHEN u.price_model IS NOT NULL AND u.prompt_tokens::bigint + u.completion_tokens > 0 THEN
                     round(u.prompt_tokens / 1000.0 * p.input_price_per_1k
                         + u.completion_tokens / 1000.0 * p.output_price_per_1k, 6)
                END)
  FROM u LEFT JOIN prices p ON p.price_model = u.price_model AND p.day = u.timestamp::date
ON CONFLICT DO NOTHING
"#,
        unnest = unnest(REQUEST_COLUMNS),
        columns = names(&stored, "").join(", "),
        values = names(&stored, "u.").join(", "),
    )
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_column_is_bound_once_in_its_place() {
        assert!(unnest(SESSION_COLUMNS).starts_with("unnest($1::uuid[], $2::text[]"));
        assert!(unnest(SESSION_COLUMNS).ends_with("metadata, catalog_tokens)"));
        assert_eq!(session_params(&[]).len(), SESSION_COLUMNS.len());
        assert_eq!(request_params(&[], &StoreConfig::default()).len(), REQUEST_COLUMNS.len());
        assert!(INSERT_REQUESTS.contains("$21::text[]) AS u(request_id,"), "{}", *INSERT_REQUESTS);
        assert!(!INSERT_REQUESTS.contains("$22"));
        for input in REQUEST_INPUTS {
            assert!(!INSERT_REQUESTS.contains(&format!("u.{input},")), "{input} is not a column of the table");
        }
    }
}
