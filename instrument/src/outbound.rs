//! What the requests this library sends and traces have in common — a client's requests to its
//! server ([`TracedClient`](crate::TracedClient)) and a server's to its client
//! ([`TracedPeer`](crate::TracedPeer)): the CLIENT span's context carried in `params._meta`,
//! the failure read off rmcp's error, and the span of a request its caller gave up on.

use std::borrow::Cow;

use opentelemetry::propagation::Injector;
use opentelemetry::trace::{Status, TraceContextExt as _};
use opentelemetry::{Context, KeyValue};
use rmcp::model::{ConstString as _, JsonObject, ServerRequest};
use rmcp::service::ServiceError;

use crate::attributes as attr;
use crate::propagation::with_propagator;

/// The method a server's request to its client names (its span's name, on both sides).
pub(crate) fn method(request: &ServerRequest) -> &str {
    #[allow(unreachable_patterns)]
    match request {
        ServerRequest::PingRequest(r) => r.method.as_str(),
        ServerRequest::CreateMessageRequest(r) => r.method.as_str(),
        ServerRequest::ListRootsRequest(r) => r.method.as_str(),
        ServerRequest::ElicitRequest(r) => r.method.as_str(),
        ServerRequest::CustomRequest(r) => r.method.as_str(),
        _ => "_OTHER",
    }
}

/// Writes `cx` into a request's `_meta` through the configured propagator (W3C trace context
/// and baggage by default), with unprefixed keys, as SEP-414 says.
pub(crate) fn inject(cx: &Context, meta: &mut JsonObject) {
    struct MetaInjector<'a>(&'a mut JsonObject);
    impl Injector for MetaInjector<'_> {
        fn set(&mut self, key: &str, value: String) {
            self.0.insert(key.to_owned(), serde_json::Value::String(value));
        }
    }
    with_propagator(|propagator| propagator.inject_context(cx, &mut MetaInjector(meta)));
}

/// How a sent request failed: `error.type`, `rpc.response.status_code` when the peer answered
/// with an error, and the status description.
pub(crate) struct Failure {
    pub(crate) error_type: Cow<'static, str>,
    pub(crate) status_code: Option<KeyValue>,
    pub(crate) message: Cow<'static, str>,
}

impl Failure {
    /// A result that is a failure all the same (a tool result with `isError`).
    pub(crate) fn of_result(error_type: &'static str) -> Self {
        Self { error_type: Cow::Borrowed(error_type), status_code: None, message: Cow::Borrowed(error_type) }
    }

    pub(crate) fn of(error: &ServiceError) -> Self {
        let local = |error_type: &'static str| Self {
            error_type: Cow::Borrowed(error_type),
            status_code: None,
            message: Cow::Owned(error.to_string()),
        };
        match error {
            ServiceError::McpError(e) => {
                let code = e.code.0.to_string();
                Self {
                    error_type: Cow::Owned(code.clone()),
                    status_code: Some(KeyValue::new(attr::RPC_RESPONSE_STATUS_CODE, code)),
                    message: Cow::Owned(e.message.to_string()),
                }
            }
            ServiceError::Timeout { .. } => local(attr::ERROR_TYPE_TIMEOUT),
            ServiceError::Cancelled { .. } => local(attr::ERROR_TYPE_CANCELLED),
            ServiceError::TransportClosed | ServiceError::TransportSend(_) => local("transport_error"),
            _ => local("_OTHER"),
        }
    }

    /// Sets `error.type`, the status code and an error status on `cx`'s span (on the sending
    /// side every failure is an error, the conventions say); adds the first two to `labels`.
    pub(crate) fn record(self, cx: &Context, labels: &mut Vec<KeyValue>) {
        let span = cx.span();
        if let Some(code) = self.status_code {
            labels.push(code.clone());
            span.set_attribute(code);
        }
        labels.push(KeyValue::new(attr::ERROR_TYPE, self.error_type.clone()));
        span.set_attribute(KeyValue::new(attr::ERROR_TYPE, self.error_type));
        span.set_status(Status::error(self.message));
    }
}

/// Ends the span of a request whose caller gave up on it (dropped its future: a timeout, a
/// `select!`) as `cancelled`, rather than as a success. Disarm it with `None` once answered.
pub(crate) struct Abandoned<'a>(pub(crate) Option<&'a Context>);

impl Drop for Abandoned<'_> {
    fn drop(&mut self) {
        if let Some(cx) = self.0 {
            let span = cx.span();
            span.set_attribute(KeyValue::new(attr::ERROR_TYPE, attr::ERROR_TYPE_CANCELLED));
            span.set_status(Status::error("the caller gave up on the request"));
            span.end();
        }
    }
}
