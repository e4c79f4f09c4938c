//! What a request carries from the client's side: the context to continue (in `_meta`, read by
//! the configured propagator), the transport's context to link (the HTTP headers), and an
//! explicit analytics session (`session.id` in `_meta` or W3C baggage).

use std::sync::LazyLock;

use opentelemetry::propagation::{Extractor, TextMapCompositePropagator, TextMapPropagator};
use opentelemetry::trace::{Link, TraceContextExt as _};
use opentelemetry::{Context, global};
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};
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

/// The W3C trace context and baggage: what a request is read with while no propagator is
/// configured globally (the default of `OTEL_PROPAGATORS`).
static DEFAULT_PROPAGATOR: LazyLock<TextMapCompositePropagator> = LazyLock::new(default_propagator);

/// W3C trace context and baggage, the default of `OTEL_PROPAGATORS`.
pub(crate) fn default_propagator() -> TextMapCompositePropagator {
    TextMapCompositePropagator::new(vec![Box::new(TraceContextPropagator::new()), Box::new(BaggagePropagator::new())])
}

/// Whether a propagator is configured globally (the API's default, the no-op, reads no fields).
pub(crate) fn configured() -> bool {
    global::get_text_map_propagator(|global| global.fields().next().is_some())
}

/// Runs `f` with the globally configured propagator, or [`DEFAULT_PROPAGATOR`] while the global
/// one is the no-op (it reads no fields).
pub(crate) fn with_propagator<T>(mut f: impl FnMut(&dyn TextMapPropagator) -> T) -> T {
    global::get_text_map_propagator(
        |global| {
            if global.fields().next().is_some() { f(global) } else { f(&*DEFAULT_PROPAGATOR) }
        },
    )
}

/// What a request's span continues, per the MCP conventions: its parent is the context in
/// `params._meta` (trace context and baggage, read by the configured propagator), else none —
/// a new root, never rmcp's connection span. The transport's context (the HTTP request's
/// `traceparent`) and an ambient span are linked, not parents: one HTTP request may carry
/// many MCP requests, and one MCP request many HTTP requests.
pub(crate) struct Propagated {
    pub(crate) parent: Context,
    pub(crate) links: Vec<Link>,
}

impl Propagated {
    pub(crate) fn extract(extensions: &Extensions, meta: &JsonObject) -> Self {
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
        let headers = extensions.get::<http::request::Parts>().map(|p| &p.headers);
        // Most requests carry no context: the propagator's fields are looked for first.
        let (parent, transport) = with_propagator(|propagator| {
            let carries = |has: &dyn Fn(&str) -> bool| propagator.fields().any(has);
            let parent = carries(&|f| meta.contains_key(f))
                .then(|| propagator.extract_with_context(&Context::new(), &Meta(meta)));
            let transport = headers
                .filter(|h| carries(&|f| h.contains_key(f)))
                .map(|h| propagator.extract_with_context(&Context::new(), &Headers(h)));
            (parent, transport)
        });
        let ambient = Context::map_current(|cx| cx.span().span_context().clone());
        let mut links = Vec::new();
        for linked in [transport.map(|cx| cx.span().span_context().clone()), Some(ambient)].into_iter().flatten() {
            if linked.is_valid() && !links.iter().any(|l: &Link| l.span_context == linked) {
                links.push(Link::with_context(linked));
            }
        }
        Self { parent: parent.unwrap_or_default(), links }
    }
}
