//! What a request carries from the client's side: the trace context to continue (W3C
//! `traceparent` in `_meta` or the HTTP headers) and an explicit analytics session
//! (`session.id` in `_meta` or W3C baggage).

use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use rmcp::model::{Extensions, JsonObject};
use rmcp::service::{RequestContext, RoleServer};

use crate::attributes as attr;

/// An explicit analytics session named by the client: `_meta["session.id"]`, or `session.id` in
/// the W3C baggage of `_meta` or the HTTP headers.
pub(crate) fn session_hint(ctx: &RequestContext<RoleServer>) -> Option<String> {
    if let Some(id) = ctx.meta.0.get(attr::SESSION_ID).and_then(|v| v.as_str()).filter(|s| !s.is_empty()) {
        return Some(id.to_owned());
    }
    let header_baggage = ctx
        .extensions
        .get::<http::request::Parts>()
        .and_then(|p| p.headers.get("baggage"))
        .and_then(|v| v.to_str().ok());
    let meta_baggage = ctx.meta.0.get("baggage").and_then(|v| v.as_str());
    [meta_baggage, header_baggage].into_iter().flatten().find_map(|baggage| {
        baggage.split(',').find_map(|entry| {
            let (key, value) = entry.split_once('=')?;
            let value = value.split(';').next()?.trim();
            (key.trim() == attr::SESSION_ID && !value.is_empty()).then(|| value.to_owned())
        })
    })
}

/// The parent of a request span: `_meta.traceparent`, else the HTTP `traceparent` header, else
/// none — a new root, never rmcp's connection span.
pub(crate) fn parent_context(extensions: &Extensions, meta: &JsonObject) -> Context {
    struct Meta<'a>(&'a JsonObject);
    impl Extractor for Meta<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            self.0.get(key).and_then(|v| v.as_str())
        }
        fn keys(&self) -> Vec<&str> {
            self.0.keys().map(String::as_str).collect()
        }
    }
    struct Headers<'a>(&'a http::HeaderMap);
    impl Extractor for Headers<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            self.0.get(key).and_then(|v| v.to_str().ok())
        }
        fn keys(&self) -> Vec<&str> {
            self.0.keys().map(http::HeaderName::as_str).collect()
        }
    }
    let propagator = TraceContextPropagator::new();
    let root = Context::new();
    if meta.contains_key("traceparent") {
        return propagator.extract_with_context(&root, &Meta(meta));
    }
    match extensions.get::<http::request::Parts>() {
        Some(parts) if parts.headers.contains_key("traceparent") => {
            propagator.extract_with_context(&root, &Headers(&parts.headers))
        }
        _ => root,
    }
}
