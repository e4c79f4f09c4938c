//! Where a tool call's time went: what the demo's traced clients saw of each call (their CLIENT
//! spans, kept in memory) against what the server spent on it (its row, found by the row's
//! `parent_span_id`, the client span's id). The difference is the network and the client.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use archon_mcp_instrument::TracedConfig;
use opentelemetry::trace::{SpanKind, TracerProvider as _};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use tokio_postgres::Client;

use crate::report::Table;
use crate::stats::quantile;

/// The duration of every CLIENT span of the demo's clients, by span id (hex).
#[derive(Debug, Clone, Default)]
pub struct ClientCalls(Arc<Mutex<HashMap<String, Duration>>>);

impl SpanExporter for ClientCalls {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let mut calls = self.0.lock().unwrap_or_else(|e| e.into_inner());
        for span in batch.iter().filter(|s| s.span_kind == SpanKind::Client) {
            let took = span.end_time.duration_since(span.start_time).unwrap_or_default();
            calls.insert(span.span_context.span_id().to_string(), took);
        }
        Ok(())
    }
}

impl ClientCalls {
    /// A config for the clients: their spans end up here (as soon as each ends).
    pub fn config(&self) -> TracedConfig {
        let provider = SdkTracerProvider::builder().with_simple_exporter(self.clone()).build();
        TracedConfig::builder().tracer(provider.tracer("archon-mcp-demo-clients")).build()
    }

    /// Median and p95 of each part of a traced call — as the client saw it, in the server,
    /// and the rest (network and client) — over the calls whose row names a client span seen
    /// here; `None` when there are none.
    pub async fn table(&self, db: &Client) -> Result<Option<Table>, tokio_postgres::Error> {
        let rows = db
            .query("SELECT parent_span_id, duration_ms FROM archon_mcp_requests WHERE parent_span_id IS NOT NULL", &[])
            .await?;
        let calls = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let mut seen = Vec::new();
        let mut served = Vec::new();
        let mut rest = Vec::new();
        for row in &rows {
            let (parent, server_ms): (String, Option<f64>) = (row.get(0), row.get(1));
            if let (Some(client), Some(server_ms)) = (calls.get(&parent), server_ms) {
                let client_ms = client.as_secs_f64() * 1e3;
                seen.push(client_ms);
                served.push(server_ms);
                rest.push((client_ms - server_ms).max(0.0));
            }
        }
        if seen.is_empty() {
            return Ok(None);
        }
        let matched = seen.len();
        let share = rest.iter().sum::<f64>() / seen.iter().sum::<f64>().max(f64::MIN_POSITIVE);
        let line = |part: &str, values: &mut Vec<f64>, share: String| {
            values.sort_by(f64::total_cmp);
            vec![
                part.to_owned(),
                format!("{:.2}", quantile(values, 0.5)),
                format!("{:.2}", quantile(values, 0.95)),
                share,
            ]
        };
        Ok(Some(Table {
            title: "Where a tool call's time went (traced clients; rows joined by parent_span_id)",
            header: vec!["part", "median ms", "p95 ms", "share of time"],
            rows: vec![
                line("seen by the client", &mut seen, format!("{matched} calls")),
                line("in the server", &mut served, format!("{:.0} %", (1.0 - share) * 100.0)),
                line("network and client", &mut rest, format!("{:.0} %", share * 100.0)),
            ],
        }))
    }
}
