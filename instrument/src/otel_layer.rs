//! [`layer`]: `tracing` spans as OpenTelemetry spans, without rmcp's own.
//!
//! rmcp wraps each connection in a `serve_inner` span and runs every request inside it; its
//! events describe each message. As OpenTelemetry spans they would only repeat the request spans
//! of `Traced`, and a tool's `tracing` spans would become children of the connection's span
//! instead of the request's. So rmcp's spans and events never reach the OpenTelemetry layer.
//!
//! That is done without a per-layer filter: `tracing_subscriber::fmt()`'s subscriber (the setup
//! of rmcp's examples) does not support them and panics at start-up when given one. The layer
//! skips rmcp's callsites itself and vetoes nothing, so the subscriber's other layers (a `fmt`
//! log, an `EnvFilter`) see rmcp's events exactly as before.

use std::any::TypeId;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use crate::scope;

/// The `tracing` layer that turns `tracing` spans into OpenTelemetry spans of `provider`, for
/// applications that compose their own subscriber — `fmt()` with an `EnvFilter`, or a
/// `registry()` with several layers.
///
/// rmcp's own spans and events (targets `rmcp…`) never reach it, whatever the subscriber's
/// level; a tool's `tracing` spans are children of its request's span. Keep rmcp's events
/// below `debug` in the subscriber's filter (`rmcp=warn`, as [`DEFAULT_FILTER`](crate::DEFAULT_FILTER)
/// does): at `debug` rmcp formats every message it handles, traced or not.
///
/// ```no_run
/// use tracing_subscriber::prelude::*;
/// # let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
/// tracing_subscriber::fmt()
///     .with_env_filter(tracing_subscriber::EnvFilter::new("info,rmcp=warn"))
///     .with_writer(std::io::stderr)
///     .finish()
///     .with(archon_mcp_instrument::layer(&provider))
///     .init();
/// ```
pub fn layer<S>(provider: &SdkTracerProvider) -> impl Layer<S>
where
    S: Subscriber + for<'span> LookupSpan<'span>,
{
    WithoutRmcp(tracing_opentelemetry::layer().with_tracer(provider.tracer_with_scope(scope())))
}

/// A layer that sees nothing of rmcp's callsites.
struct WithoutRmcp<L>(L);

fn is_rmcp(metadata: &Metadata<'_>) -> bool {
    metadata.target().starts_with("rmcp")
}

impl<L> WithoutRmcp<L> {
    fn rmcp_span<S: Subscriber + for<'a> LookupSpan<'a>>(id: &Id, ctx: &Context<'_, S>) -> bool {
        ctx.metadata(id).is_some_and(is_rmcp)
    }
}

impl<S, L> Layer<S> for WithoutRmcp<L>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    L: Layer<S>,
{
    fn on_layer(&mut self, subscriber: &mut S) {
        self.0.on_layer(subscriber);
    }

    fn on_register_dispatch(&self, subscriber: &tracing::Dispatch) {
        self.0.on_register_dispatch(subscriber);
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if !is_rmcp(attrs.metadata()) {
            self.0.on_new_span(attrs, id, ctx);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if !Self::rmcp_span(id, &ctx) {
            self.0.on_record(id, values, ctx);
        }
    }

    fn on_follows_from(&self, span: &Id, follows: &Id, ctx: Context<'_, S>) {
        if !Self::rmcp_span(span, &ctx) && !Self::rmcp_span(follows, &ctx) {
            self.0.on_follows_from(span, follows, ctx);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        if !is_rmcp(event.metadata()) {
            self.0.on_event(event, ctx);
        }
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        if !Self::rmcp_span(id, &ctx) {
            self.0.on_enter(id, ctx);
        }
    }

    fn on_exit(&self, id: &Id, ctx: Context<'_, S>) {
        if !Self::rmcp_span(id, &ctx) {
            self.0.on_exit(id, ctx);
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        if !Self::rmcp_span(&id, &ctx) {
            self.0.on_close(id, ctx);
        }
    }

    fn on_id_change(&self, old: &Id, new: &Id, ctx: Context<'_, S>) {
        self.0.on_id_change(old, new, ctx);
    }

    // `OpenTelemetrySpanExt` (`span.context()`, `set_parent`) finds the OpenTelemetry layer
    // through this.
    unsafe fn downcast_raw(&self, id: TypeId) -> Option<*const ()> {
        if id == TypeId::of::<Self>() {
            Some(self as *const Self as *const ())
        } else {
            // SAFETY: forwarded as asked; the inner layer answers for its own types.
            unsafe { self.0.downcast_raw(id) }
        }
    }
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;

    fn spans_of(setup: impl FnOnce(&SdkTracerProvider) -> tracing::Dispatch) -> Vec<String> {
        let exporter = opentelemetry_sdk::trace::InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder().with_simple_exporter(exporter.clone()).build();
        tracing::dispatcher::with_default(&setup(&provider), || {
            tracing::info_span!(target: "rmcp::service", "serve_inner").in_scope(|| {
                tracing::info!(target: "rmcp::service", "received request");
                tracing::info_span!("tool_work").in_scope(|| {});
            });
        });
        exporter.get_finished_spans().unwrap().into_iter().map(|s| s.name.into_owned()).collect()
    }

    /// A subscriber with the layer of a provider.
    type Setup = fn(&SdkTracerProvider) -> tracing::Dispatch;

    #[test]
    fn rmcp_spans_never_reach_the_opentelemetry_layer_in_any_common_setup() {
        // A registry with the layer alone; with a filter and a log; and `fmt()`'s own
        // subscriber, which panicked with a per-layer filter.
        let setups: [(&str, Setup); 3] = [
            ("registry", |p| tracing_subscriber::registry().with(layer(p)).into()),
            ("registry + EnvFilter + fmt layer", |p| {
                tracing_subscriber::registry()
                    .with(tracing_subscriber::EnvFilter::new("info"))
                    .with(tracing_subscriber::fmt::layer().with_writer(std::io::sink))
                    .with(layer(p))
                    .into()
            }),
            ("fmt() subscriber with an EnvFilter", |p| {
                tracing_subscriber::fmt()
                    .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
                    .with_writer(std::io::sink)
                    .finish()
                    .with(layer(p))
                    .into()
            }),
        ];
        for (name, setup) in setups {
            assert_eq!(spans_of(setup), ["tool_work"], "{name}: the tool's span, not rmcp's");
        }
    }

    #[test]
    fn the_log_still_sees_rmcps_events() {
        let logged = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
        let writer = logged.clone();
        let provider = SdkTracerProvider::builder().build();
        let subscriber =
            tracing_subscriber::fmt().with_writer(move || WriteTo(writer.clone())).finish().with(layer(&provider));
        tracing::subscriber::with_default(subscriber, || tracing::info!(target: "rmcp::service", "received request"));
        let logged = String::from_utf8(logged.lock().unwrap().clone()).unwrap();
        assert!(logged.contains("received request"), "{logged:?}");
    }

    struct WriteTo(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for WriteTo {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
}
