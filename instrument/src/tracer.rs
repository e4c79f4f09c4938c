//! [`SpanTracer`]: what request and session spans are built with — the SDK's tracer itself
//! where there is one, so a span is not boxed behind the API's object-safe tracer.

use std::sync::RwLock;

use opentelemetry::Context;
use opentelemetry::global::{self, BoxedTracer};
use opentelemetry::trace::{SpanBuilder, TraceContextExt as _, Tracer as _, TracerProvider as _};
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};

use crate::scope;

/// The tracer a [`TracedConfig`](crate::TracedConfig) builds its spans with: an SDK tracer
/// (what [`Telemetry`](crate::Telemetry) installs; the fastest) or any other behind the API's
/// [`BoxedTracer`].
///
/// ```
/// use archon_mcp_instrument::TracedConfig;
/// use opentelemetry::trace::TracerProvider as _;
///
/// let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
/// let config = TracedConfig::builder().tracer(provider.tracer("my-server")).build();
/// # drop(config);
/// ```
#[derive(Debug)]
pub enum SpanTracer {
    /// The OpenTelemetry SDK's tracer.
    Sdk(SdkTracer),
    /// Any other tracer, e.g. [`opentelemetry::global::tracer`].
    Boxed(BoxedTracer),
}

impl From<SdkTracer> for SpanTracer {
    fn from(tracer: SdkTracer) -> Self {
        Self::Sdk(tracer)
    }
}

impl From<BoxedTracer> for SpanTracer {
    fn from(tracer: BoxedTracer) -> Self {
        Self::Boxed(tracer)
    }
}

impl SpanTracer {
    /// The tracer of the provider [`Telemetry`](crate::Telemetry) installed, else the global
    /// provider's.
    pub(crate) fn global() -> Self {
        match &*INSTALLED.read().unwrap_or_else(|p| p.into_inner()) {
            Some(provider) => Self::Sdk(provider.tracer_with_scope(scope())),
            None => Self::Boxed(global::tracer_provider().tracer_with_scope(scope())),
        }
    }

    /// Starts the span `builder` describes, as a child of `parent`; returns `parent` with it.
    pub(crate) fn start(&self, builder: SpanBuilder, parent: &Context) -> Context {
        match self {
            Self::Sdk(tracer) => parent.with_span(tracer.build_with_context(builder, parent)),
            Self::Boxed(tracer) => parent.with_span(tracer.build_with_context(builder, parent)),
        }
    }
}

/// The provider [`Telemetry`](crate::Telemetry) last installed globally, kept concrete.
static INSTALLED: RwLock<Option<SdkTracerProvider>> = RwLock::new(None);

/// Records the SDK provider just installed globally.
pub(crate) fn installed(provider: &SdkTracerProvider) {
    *INSTALLED.write().unwrap_or_else(|p| p.into_inner()) = Some(provider.clone());
}
