//! OTLP/HTTP on one port: `POST /v1/traces` (protobuf or JSON, optionally gzip), and the
//! service endpoints `/healthz`, `/readyz`, `/metrics`.

use std::io::Read as _;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message as _;

use super::{Ingest, Outcome, RETRY_AFTER, export_response};
use crate::migrate;
use crate::store::PgStore;

/// Body limits of `/v1/traces`.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    /// Largest body as sent (compressed or not).
    pub max_body_bytes: usize,
    /// Largest body after decompression.
    pub max_decompressed_bytes: usize,
}

impl Default for BodyLimits {
    fn default() -> Self {
        Self { max_body_bytes: 16 << 20, max_decompressed_bytes: 64 << 20 }
    }
}

#[derive(Clone)]
struct AppState {
    ingest: Ingest,
    store: PgStore,
    limits: BodyLimits,
}

/// The router of the HTTP port.
pub fn router(ingest: Ingest, store: PgStore, limits: BodyLimits) -> Router {
    Router::new()
        .route("/v1/traces", post(traces))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .with_state(Arc::new(AppState { ingest, store, limits }))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Protobuf,
    Json,
}

impl Encoding {
    fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => "application/x-protobuf",
            Encoding::Json => "application/json",
        }
    }
}

/// `google.rpc.Status`, the body of OTLP/HTTP errors (details omitted).
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

fn error(encoding: Encoding, status: StatusCode, grpc_code: i32, message: String) -> Response {
    let body = match encoding {
        Encoding::Protobuf => RpcStatus { code: grpc_code, message }.encode_to_vec(),
        Encoding::Json => serde_json::json!({"code": grpc_code, "message": message}).to_string().into_bytes(),
    };
    (status, [(header::CONTENT_TYPE, encoding.content_type())], body).into_response()
}

async fn traces(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let encoding = match content_type.split(';').next().unwrap_or("").trim() {
        "application/x-protobuf" | "application/protobuf" => Encoding::Protobuf,
        "application/json" => Encoding::Json,
        other => {
            return error(
                Encoding::Json,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                3,
                format!("unsupported content type {other:?}: send application/x-protobuf or application/json"),
            );
        }
    };
    let ingest = &state.ingest;
    if !ingest.authorized(headers.get(header::AUTHORIZATION).map(HeaderValue::as_bytes)) {
        ingest.metrics().exports.add("unauthenticated", 1);
        return error(encoding, StatusCode::UNAUTHORIZED, 16, "a valid bearer token is required".into());
    }
    let body = match headers.get(header::CONTENT_ENCODING).and_then(|v| v.to_str().ok()) {
        None | Some("identity") => body.to_vec(),
        Some("gzip") => match gunzip(&body, state.limits.max_decompressed_bytes) {
            Ok(body) => body,
            Err(Gunzip::TooLarge) => {
                return error(
                    encoding,
                    StatusCode::PAYLOAD_TOO_LARGE,
                    8,
                    format!("the body is larger than {} bytes once decompressed", state.limits.max_decompressed_bytes),
                );
            }
            Err(Gunzip::Corrupt(e)) => return invalid(ingest, encoding, format!("bad gzip body: {e}")),
        },
        Some(other) => {
            return error(
                encoding,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                3,
                format!("unsupported content encoding {other:?}"),
            );
        }
    };
    let request = match encoding {
        Encoding::Protobuf => ExportTraceServiceRequest::decode(body.as_slice()).map_err(|e| e.to_string()),
        Encoding::Json => serde_json::from_slice::<ExportTraceServiceRequest>(&body).map_err(|e| e.to_string()),
    };
    let request = match request {
        Ok(request) => request,
        Err(e) => return invalid(ingest, encoding, format!("cannot decode the export request: {e}")),
    };
    match ingest.export(request).await {
        Outcome::Accepted { rejected, message } => {
            let response = export_response(rejected, message);
            let body = match encoding {
                Encoding::Protobuf => response.encode_to_vec(),
                Encoding::Json => serde_json::to_vec(&response).unwrap_or_default(),
            };
            (StatusCode::OK, [(header::CONTENT_TYPE, encoding.content_type())], body).into_response()
        }
        Outcome::Unavailable(message) => {
            let mut response = error(encoding, StatusCode::SERVICE_UNAVAILABLE, 14, message);
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER.as_secs()));
            response
        }
    }
}

fn invalid(ingest: &Ingest, encoding: Encoding, message: String) -> Response {
    ingest.metrics().exports.add("invalid", 1);
    error(encoding, StatusCode::BAD_REQUEST, 3, message)
}

enum Gunzip {
    TooLarge,
    Corrupt(std::io::Error),
}

/// Decompresses at most `limit` bytes: a small bomb cannot fill memory.
fn gunzip(body: &[u8], limit: usize) -> Result<Vec<u8>, Gunzip> {
    let mut out = Vec::new();
    let mut decoder = flate2::read::GzDecoder::new(body).take(limit as u64 + 1);
    decoder.read_to_end(&mut out).map_err(Gunzip::Corrupt)?;
    if out.len() > limit {
        return Err(Gunzip::TooLarge);
    }
    Ok(out)
}

/// Ready when the database answers and its schema is current.
async fn ready(State(state): State<Arc<AppState>>) -> Response {
    let check = async {
        let mut client = state.store.pool().get().await.map_err(|e| format!("database unreachable: {e}"))?;
        let pending =
            migrate::pending(&mut client).await.map_err(|e| format!("cannot read the schema version: {e}"))?;
        if pending.is_empty() {
            Ok(())
        } else {
            Err(format!("{} migrations pending: run `archon-mcp-exporter migrate` or serve --migrate", pending.len()))
        }
    };
    match check.await {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")).into_response(),
    }
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], state.ingest.metrics().render())
        .into_response()
}
