//! Spans of the notifications a server receives, when
//! [`record_notifications`](crate::TracedConfigBuilder::record_notifications) asks for them: a
//! SERVER span named after the method, child of the context in the notification's `_meta`,
//! covering the handler. Not rows: they carry no analytics session.

use opentelemetry::trace::{FutureExt as _, SpanBuilder, SpanKind, TraceContextExt as _};
use opentelemetry::{Context, KeyValue};
use rmcp::RoleServer;
use rmcp::service::NotificationContext;

use crate::attributes as attr;
use crate::propagation::Propagated;
use crate::runtime::Shared;

/// The span of a notification of `method`, when they are recorded.
pub(crate) fn span(
    shared: &Shared,
    method: &'static str,
    context: &NotificationContext<RoleServer>,
) -> Option<Context> {
    if !shared.settings.record_notifications {
        return None;
    }
    let propagated = Propagated::extract(&context.extensions, &context.meta.0);
    let mut span = SpanBuilder::from_name(method)
        .with_kind(SpanKind::Server)
        .with_attributes([KeyValue::new(attr::MCP_METHOD_NAME, method)]);
    if !propagated.links.is_empty() {
        span = span.with_links(propagated.links);
    }
    Some(shared.tracer().start(span, &propagated.parent))
}

/// Runs the notification's handler inside its span, if it has one, then ends it.
pub(crate) async fn handled(span: Option<Context>, handler: impl Future<Output = ()>) {
    match span {
        Some(cx) => {
            handler.with_context(cx.clone()).await;
            cx.span().end();
        }
        None => handler.await,
    }
}
