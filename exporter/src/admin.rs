//! The service endpoints beside OTLP on the HTTP port, for orchestrators and scrapers; none
//! needs the bearer token:
//! - `GET /healthz`: the process runs (200 `ok`);
//! - `GET /readyz`: the database answers and its schema is current (200), else 503 with the
//!   reason and what to run;
//! - `GET /metrics`: the [`Metrics`] in Prometheus text format.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::metrics::Metrics;
use crate::migrate;
use crate::store::PgStore;

/// How long a readiness answer is reused.
const READINESS_TTL: Duration = Duration::from_secs(2);

struct Admin {
    store: PgStore,
    metrics: Arc<Metrics>,
    readiness: Readiness,
}

/// The admin routes, to merge into the HTTP port's router.
pub(crate) fn router(store: PgStore, metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(render_metrics))
        .with_state(Arc::new(Admin { store, metrics, readiness: Readiness::default() }))
}

/// The last readiness check, kept for [`READINESS_TTL`]: a flood of `/readyz` (it needs no
/// token) costs one database round trip per period, never the writers' connections.
#[derive(Default)]
struct Readiness(tokio::sync::Mutex<Option<(Instant, Result<(), String>)>>);

impl Readiness {
    async fn check(&self, store: &PgStore) -> Result<(), String> {
        let mut last = self.0.lock().await;
        if let Some((at, result)) = &*last
            && at.elapsed() < READINESS_TTL
        {
            return result.clone();
        }
        let result = Self::ask(store).await;
        *last = Some((Instant::now(), result.clone()));
        result
    }

    async fn ask(store: &PgStore) -> Result<(), String> {
        let mut client = store.pool().get().await.map_err(|e| format!("database unreachable: {e}"))?;
        let pending =
            migrate::pending(&mut client).await.map_err(|e| format!("cannot read the schema version: {e}"))?;
        if pending.is_empty() {
            Ok(())
        } else {
            Err(format!("{} migrations pending: run `archon-mcp-exporter migrate` or serve --migrate", pending.len()))
        }
    }
}

async fn ready(State(admin): State<Arc<Admin>>) -> Response {
    match admin.readiness.check(&admin.store).await {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")).into_response(),
    }
}

async fn render_metrics(State(admin): State<Arc<Admin>>) -> Response {
    ([(header::CONTENT_TYPE, prometheus_client::encoding::prometheus_text::CONTENT_TYPE)], admin.metrics.render())
        .into_response()
}
