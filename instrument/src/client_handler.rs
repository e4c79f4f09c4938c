//! [`Traced`] around an rmcp client's handler: the requests its server sends it — sampling,
//! elicitation, roots — become SERVER spans, children of the context in their `_meta` (the
//! server's CLIENT span, when the server is traced), covering the handler. Not rows: they carry
//! no analytics session.

use std::borrow::Cow;

use opentelemetry::KeyValue;
use opentelemetry::trace::{FutureExt as _, SpanBuilder, SpanKind, Status, TraceContextExt as _};
use rmcp::ErrorData as McpError;
use rmcp::model::{ClientResult, ProtocolVersion, ServerNotification, ServerRequest};
use rmcp::service::{MaybeSendFuture, NotificationContext, RequestContext, RoleClient, Service};

use crate::attributes as attr;
use crate::outbound::method;
use crate::propagation::Propagated;
use crate::traced::Traced;

/// A client handler, traced: `Traced::new(handler, config)` served as a client (see
/// [`TracedClient`](crate::TracedClient) for its requests).
impl<H: Service<RoleClient>> Service<RoleClient> for Traced<H> {
    fn handle_request(
        &self,
        request: ServerRequest,
        context: RequestContext<RoleClient>,
    ) -> impl Future<Output = Result<ClientResult, McpError>> + MaybeSendFuture + '_ {
        let method = method(&request).to_owned();
        let propagated = Propagated::extract(&context.extensions, &context.meta.0);
        let mut attributes = vec![
            KeyValue::new(attr::MCP_METHOD_NAME, method.clone()),
            KeyValue::new(attr::JSONRPC_REQUEST_ID, context.id.to_string()),
        ];
        if let Some(info) = context.peer.peer_info() {
            attributes.push(KeyValue::new(attr::MCP_PROTOCOL_VERSION, info.protocol_version.to_string()));
        }
        let mut span = SpanBuilder::from_name(method).with_kind(SpanKind::Server).with_attributes(attributes);
        if !propagated.links.is_empty() {
            span = span.with_links(propagated.links);
        }
        let cx = self.shared.tracer().start(span, &propagated.parent);
        let handled = self.inner.handle_request(request, context).with_context(cx.clone());
        async move {
            let result = handled.await;
            let span = cx.span();
            if let Err(error) = &result {
                let code = error.code.0.to_string();
                span.set_attribute(KeyValue::new(attr::RPC_RESPONSE_STATUS_CODE, code.clone()));
                span.set_attribute(KeyValue::new(attr::ERROR_TYPE, code));
                span.set_status(Status::error(Cow::Owned(error.message.to_string())));
            }
            span.end();
            result
        }
    }

    fn handle_notification(
        &self,
        notification: ServerNotification,
        context: NotificationContext<RoleClient>,
    ) -> impl Future<Output = Result<(), McpError>> + MaybeSendFuture + '_ {
        self.inner.handle_notification(notification, context)
    }

    fn get_info(&self) -> <RoleClient as rmcp::service::ServiceRole>::Info {
        self.inner.get_info()
    }

    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        self.inner.supported_protocol_versions()
    }
}
