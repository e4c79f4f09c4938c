//! OTLP/HTTP: `POST /v1/traces` (protobuf or JSON, optionally gzip). The port also serves the
//! admin routes of [`crate::admin`].

use std::io::Read as _;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message as _;

use super::budget::InFlight;
use super::{Ingest, export_response};
use crate::otlp::{self, Undecodable, spans_from_protobuf, spans_from_request};
use crate::pipeline::Outcome;
use crate::retry::{self, RETRY_AFTER};
use crate::span::Span;

/// Body limits of `/v1/traces`.
///
/// ```
/// let limits = archon_mcp_exporter::BodyLimits::default().with_max_body_bytes(4 << 20);
/// assert_eq!(limits.max_decompressed_bytes, 64 << 20);
/// ```
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct BodyLimits {
    /// Largest body as sent (compressed or not).
    pub max_body_bytes: usize,
    /// Largest body after decompression.
    pub max_decompressed_bytes: usize,
    /// Body bytes held at once across all requests, as read and as decompressed: what
    /// unauthenticated or runaway clients can make the receiver hold. Beyond it: 429.
    pub max_in_flight_bytes: usize,
}

impl Default for BodyLimits {
    fn default() -> Self {
        Self { max_body_bytes: 16 << 20, max_decompressed_bytes: 64 << 20, max_in_flight_bytes: 128 << 20 }
    }
}

with_setters!(BodyLimits {
    with_max_body_bytes => max_body_bytes: usize,
    with_max_decompressed_bytes => max_decompressed_bytes: usize,
    with_max_in_flight_bytes => max_in_flight_bytes: usize,
});

struct AppState {
    ingest: Ingest,
    limits: BodyLimits,
    /// The in-flight body budget, shared with the gRPC port.
    in_flight: InFlight,
}

/// The OTLP/HTTP route, holding bodies within `in_flight`.
pub(crate) fn router(ingest: Ingest, limits: BodyLimits, in_flight: InFlight) -> Router {
    Router::new()
        .route("/v1/traces", post(traces))
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .with_state(Arc::new(AppState { ingest, limits, in_flight }))
}

/// The encodings of an OTLP/HTTP body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    /// `application/x-protobuf`.
    Protobuf,
    /// `application/json` (OTLP/JSON: hex ids, int64s as strings or numbers).
    Json,
}

impl Encoding {
    /// The encoding a `Content-Type` value names (parameters ignored), if OTLP has it.
    pub(crate) fn from_content_type(value: &str) -> Option<Self> {
        match value.split(';').next().unwrap_or("").trim() {
            "application/x-protobuf" | "application/protobuf" => Some(Encoding::Protobuf),
            "application/json" => Some(Encoding::Json),
            _ => None,
        }
    }

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

/// Why an OTLP/HTTP body could not be decoded.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BodyError {
    /// Decompression passed the limit (a gzip bomb, or simply too much).
    #[error("the body is larger than {0} bytes once decompressed")]
    TooLarge(usize),
    /// A `Content-Encoding` other than `gzip` or `identity`.
    #[error("unsupported content encoding {0:?}")]
    UnsupportedEncoding(String),
    /// Not gzip after all.
    #[error("bad gzip body: {0}")]
    Gzip(std::io::Error),
    /// Not an `ExportTraceServiceRequest` in the declared encoding.
    #[error("cannot decode the export request: {0}")]
    Undecodable(String),
    /// The receiver holds as many body bytes as it may (`max_in_flight_bytes`).
    #[error("the receiver is holding as many export bytes as it may: retry later")]
    OverBudget,
}

/// The spans of a body, and those refused for their ids.
pub(crate) type Decoded = (Vec<Span>, Vec<Undecodable>);

/// Decodes a `/v1/traces` body as the receiver does: `content_encoding` (`gzip`, `identity` or
/// none) with decompression stopped at `max_decompressed_bytes`, then protobuf or JSON. Pure;
/// the fuzz target `otlp_http_body` drives it.
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) fn decode_body(
    encoding: Encoding,
    content_encoding: Option<&str>,
    body: Bytes,
    max_decompressed_bytes: usize,
) -> Result<Decoded, BodyError> {
    decode_body_within(encoding, content_encoding, body, max_decompressed_bytes, &mut |_| true)
}

/// [`decode_body`], asking `reserve` for every chunk of decompressed bytes before holding it.
fn decode_body_within(
    encoding: Encoding,
    content_encoding: Option<&str>,
    body: Bytes,
    max_decompressed_bytes: usize,
    reserve: &mut dyn FnMut(usize) -> bool,
) -> Result<Decoded, BodyError> {
    let body = match content_encoding {
        None | Some("identity") => body,
        Some("gzip") => Bytes::from(gunzip(&body, max_decompressed_bytes, reserve)?),
        Some(other) => return Err(BodyError::UnsupportedEncoding(other.to_owned())),
    };
    // A string that is not UTF-8 (protobuf) or a lone surrogate (JSON) in one span must not
    // lose the export: it is decoded again leniently, the bad text replaced by U+FFFD.
    match encoding {
        Encoding::Protobuf => spans_from_protobuf(body.clone())
            .or_else(|strict| otlp::decode_lossy(&body).map(spans_from_request).map_err(|_| strict))
            .map_err(|e| BodyError::Undecodable(e.to_string())),
        Encoding::Json => serde_json::from_slice::<ExportTraceServiceRequest>(&body)
            .or_else(|strict| match otlp::repair_json_surrogates(&body) {
                Some(repaired) => serde_json::from_slice(&repaired).map_err(|_| strict),
                None => Err(strict),
            })
            .map(spans_from_request)
            .map_err(|e| BodyError::Undecodable(e.to_string())),
    }
}

async fn traces(State(state): State<Arc<AppState>>, headers: HeaderMap, body: Body) -> Response {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let Some(encoding) = Encoding::from_content_type(content_type) else {
        return error(
            Encoding::Json,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            3,
            format!("unsupported content type {content_type:?}: send application/x-protobuf or application/json"),
        );
    };
    // Nothing of the body is read before the token is checked.
    let ingest = &state.ingest;
    if !ingest.authorized(headers.get(header::AUTHORIZATION).map(HeaderValue::as_bytes)) {
        return error(encoding, StatusCode::UNAUTHORIZED, 16, "a valid bearer token is required".into());
    }
    let limit = state.limits.max_body_bytes;
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return error(encoding, StatusCode::PAYLOAD_TOO_LARGE, 8, format!("the body is larger than {limit} bytes"));
    }
    // The bytes about to be held come out of the in-flight budget, or the export waits outside.
    let Some(mut held) = state.in_flight.try_reserve(declared.unwrap_or(limit)) else {
        return over_budget(ingest, encoding);
    };
    let body = match axum::body::to_bytes(body, limit).await {
        Ok(body) => body,
        Err(e) if std::error::Error::source(&e).is_some_and(|s| s.is::<http_body_util::LengthLimitError>()) => {
            return error(encoding, StatusCode::PAYLOAD_TOO_LARGE, 8, format!("the body is larger than {limit} bytes"));
        }
        Err(e) => return invalid(ingest, encoding, format!("reading the body: {e}")),
    };
    let content_encoding = headers.get(header::CONTENT_ENCODING).map(|v| v.to_str().unwrap_or("(not ASCII)").trim());
    let budget = state.in_flight.clone();
    let mut reserve = |bytes: usize| match budget.try_reserve(bytes) {
        Some(more) => {
            held.merge(more);
            true
        }
        None => false,
    };
    // The spans point into the (decompressed) body: it is held, within the budget, until they
    // are written.
    let decoded =
        decode_body_within(encoding, content_encoding, body, state.limits.max_decompressed_bytes, &mut reserve);
    let (spans, undecodable) = match decoded {
        Ok(decoded) => decoded,
        Err(BodyError::OverBudget) => return over_budget(ingest, encoding),
        Err(e @ BodyError::TooLarge(_)) => return error(encoding, StatusCode::PAYLOAD_TOO_LARGE, 8, e.to_string()),
        Err(e @ BodyError::UnsupportedEncoding(_)) => {
            return error(encoding, StatusCode::UNSUPPORTED_MEDIA_TYPE, 3, e.to_string());
        }
        Err(e) => return invalid(ingest, encoding, e.to_string()),
    };
    match ingest.export(&spans, undecodable).await {
        Outcome::Accepted { rejected, message } => {
            let response = export_response(rejected, message);
            let body = match encoding {
                Encoding::Protobuf => response.encode_to_vec(),
                Encoding::Json => serde_json::to_vec(&response).unwrap_or_default(),
            };
            (StatusCode::OK, [(header::CONTENT_TYPE, encoding.content_type())], body).into_response()
        }
        Outcome::NotCommitted(e) => retry_later(encoding, retry::http_status(&e), 14, e.to_string()),
    }
}

/// 429 with `Retry-After`: the collector retries, as for 503.
fn over_budget(ingest: &Ingest, encoding: Encoding) -> Response {
    ingest.metrics().exports.add("over_budget", 1);
    retry_later(encoding, StatusCode::TOO_MANY_REQUESTS, 8, BodyError::OverBudget.to_string())
}

/// An error response that tells the sender to try again after [`RETRY_AFTER`].
fn retry_later(encoding: Encoding, status: StatusCode, grpc_code: i32, message: String) -> Response {
    let mut response = error(encoding, status, grpc_code, message);
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER.as_secs()));
    response
}

fn invalid(ingest: &Ingest, encoding: Encoding, message: String) -> Response {
    ingest.metrics().exports.add("invalid", 1);
    error(encoding, StatusCode::BAD_REQUEST, 3, message)
}

/// Decompresses at most `limit` bytes, a chunk at a time, each chunk reserved first: a small
/// bomb cannot fill memory, nor can many bodies at once.
fn gunzip(body: &[u8], limit: usize, reserve: &mut dyn FnMut(usize) -> bool) -> Result<Vec<u8>, BodyError> {
    const CHUNK: usize = 256 << 10;
    let mut out = Vec::new();
    let mut decoder = flate2::read::GzDecoder::new(body).take(limit as u64 + 1);
    loop {
        if !reserve(CHUNK) {
            return Err(BodyError::OverBudget);
        }
        let before = out.len();
        let read = (&mut decoder).take(CHUNK as u64).read_to_end(&mut out).map_err(BodyError::Gzip)?;
        if out.len() > limit {
            return Err(BodyError::TooLarge(limit));
        }
        if read == 0 || out.len() - before < CHUNK {
            return Ok(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        assert_eq!(Encoding::from_content_type("application/json; charset=utf-8"), Some(Encoding::Json));
        assert_eq!(Encoding::from_content_type("text/plain"), None);
    }

    #[test]
    fn bodies_decode_or_say_why() {
        let (spans, _) =
            decode_body(Encoding::Json, None, Bytes::from_static(br#"{"resourceSpans": []}"#), 1 << 20).unwrap();
        assert!(spans.is_empty());
        let garbage = decode_body(Encoding::Protobuf, Some("gzip"), Bytes::from_static(b"not gzip"), 1 << 20);
        assert!(matches!(garbage, Err(BodyError::Gzip(_))));
    }
}
