//! [`TracedPeer`]: a traced server's requests to its client — sampling, elicitation, roots —
//! as CLIENT spans under the request being served, that request's context carried to the
//! client in `params._meta`.

// SEP-2577 deprecates sampling and roots; servers still send them to clients before 2026-07-28.
#![allow(deprecated)]

use std::ops::Deref;
use std::sync::Arc;
use std::time::Instant;

use opentelemetry::trace::{FutureExt as _, SpanBuilder, SpanKind, TraceContextExt as _};
use opentelemetry::{Context, KeyValue};
use rmcp::Peer;
use rmcp::handler::server::common::{AsRequestContext, FromContextPart};
use rmcp::model::{
    ClientResult, CreateMessageRequest, CreateMessageRequestParams, CreateMessageResult, ElicitRequest,
    ElicitRequestParams, ElicitResult, ErrorData, GetMeta as _, ListRootsRequest, ListRootsResult, ServerRequest,
};
use rmcp::service::{PeerRequestOptions, RequestContext, RoleServer, ServiceError};

use crate::attributes as attr;
use crate::outbound::{Abandoned, Failure, inject, method};
use crate::runtime::Shared;

/// The request being served: what [`TracedPeer`] parents its spans on and traces them with.
#[derive(Clone)]
pub(crate) struct Serving {
    pub(crate) shared: Arc<Shared>,
    pub(crate) cx: Context,
}

tokio::task_local! {
    static SERVING: Serving;
}

/// Runs a handler's `future` as serving the request of `serving`.
pub(crate) fn scope<F: Future>(serving: Serving, future: F) -> impl Future<Output = F::Output> {
    SERVING.scope(serving, future)
}

/// The client of a request a [`Traced`](crate::Traced) server serves, whose requests back to
/// it — `sampling/createMessage`, `elicitation/create`, `roots/list` — are CLIENT spans,
/// children of that request's span, with its context in `params._meta` (through the configured
/// propagator) so the client's handling continues the trace. Everything else is rmcp's
/// [`Peer`], through `Deref`.
///
/// Take it as a tool's argument (it is a [`FromContextPart`] extractor, as rmcp's `Peer` is),
/// or make it from the request's context. Made outside a traced request, it sends untraced.
///
/// ```no_run
/// use archon_mcp_instrument::TracedPeer;
/// use rmcp::model::{CreateMessageRequestParams, SamplingMessage};
///
/// # async fn tool(context: rmcp::service::RequestContext<rmcp::RoleServer>) -> Result<(), rmcp::service::ServiceError> {
/// let peer = TracedPeer::from(&context);
/// let answer = peer
///     .create_message(CreateMessageRequestParams::new(vec![SamplingMessage::user_text("Summarise")], 200))
///     .await?; // a CLIENT span `sampling/createMessage` under this tool call's span
/// # let _ = answer; Ok(()) }
/// ```
#[derive(Clone)]
pub struct TracedPeer {
    peer: Peer<RoleServer>,
    serving: Option<Serving>,
}

impl TracedPeer {
    /// The client of the request being served, when called inside a traced request (as
    /// extractors are); else one whose requests are sent untraced.
    pub fn new(peer: Peer<RoleServer>) -> Self {
        Self { peer, serving: SERVING.try_with(Clone::clone).ok() }
    }

    /// `sampling/createMessage`, traced, after rmcp's checks of the request (its structure, and
    /// tools only to a client that supports them).
    pub async fn create_message(
        &self,
        params: CreateMessageRequestParams,
    ) -> Result<CreateMessageResult, ServiceError> {
        if (params.tools.is_some() || params.tool_choice.is_some()) && !self.peer.supports_sampling_tools() {
            return Err(ServiceError::McpError(ErrorData::invalid_params(
                "tools or toolChoice provided but client does not support sampling tools capability",
                None,
            )));
        }
        params.validate().map_err(|e| ServiceError::McpError(ErrorData::invalid_params(e, None)))?;
        let request = CreateMessageRequest::new(params);
        match self.send_request(ServerRequest::CreateMessageRequest(request)).await? {
            ClientResult::CreateMessageResult(result) => Ok(*result),
            _ => Err(ServiceError::UnexpectedResponse),
        }
    }

    /// `elicitation/create`, traced.
    pub async fn create_elicitation(&self, params: ElicitRequestParams) -> Result<ElicitResult, ServiceError> {
        let request = ElicitRequest::new(params);
        match self.send_request(ServerRequest::ElicitRequest(request)).await? {
            ClientResult::ElicitResult(result) => Ok(result),
            _ => Err(ServiceError::UnexpectedResponse),
        }
    }

    /// `roots/list`, traced.
    pub async fn list_roots(&self) -> Result<ListRootsResult, ServiceError> {
        let request = ListRootsRequest::default();
        match self.send_request(ServerRequest::ListRootsRequest(request)).await? {
            ClientResult::ListRootsResult(result) => Ok(result),
            _ => Err(ServiceError::UnexpectedResponse),
        }
    }

    /// Any request to the client, traced: a CLIENT span named after its method, with its
    /// `jsonrpc.request.id`, ended when the answer comes (or as `cancelled` when the caller
    /// drops the future).
    pub async fn send_request(&self, mut request: ServerRequest) -> Result<ClientResult, ServiceError> {
        let Some(serving) = &self.serving else {
            return self.peer.send_request(request).await;
        };
        let started = Instant::now();
        let method = method(&request).to_owned();
        let mut labels = vec![KeyValue::new(attr::MCP_METHOD_NAME, method.clone())];
        if let Some(info) = self.peer.peer_info() {
            labels.push(KeyValue::new(attr::MCP_PROTOCOL_VERSION, info.protocol_version.to_string()));
        }
        let cx = serving.shared.tracer().start(
            SpanBuilder::from_name(method).with_kind(SpanKind::Client).with_attributes(labels.clone()),
            &serving.cx,
        );
        inject(&cx, &mut request.get_meta_mut().0);
        let mut abandoned = Abandoned(Some(&cx));
        let result = async {
            let handle = self.peer.send_request_with_option(request, PeerRequestOptions::no_options()).await?;
            cx.span().set_attribute(KeyValue::new(attr::JSONRPC_REQUEST_ID, handle.id.to_string()));
            handle.await_response().await
        }
        .with_context(cx.clone())
        .await;
        abandoned.0 = None;
        if let Err(e) = &result {
            Failure::of(e).record(&cx, &mut labels);
        }
        cx.span().end();
        serving.shared.metrics().client_operation_duration.record(started.elapsed().as_secs_f64(), &labels);
        result
    }
}

impl Deref for TracedPeer {
    type Target = Peer<RoleServer>;

    fn deref(&self) -> &Self::Target {
        &self.peer
    }
}

impl From<&RequestContext<RoleServer>> for TracedPeer {
    fn from(context: &RequestContext<RoleServer>) -> Self {
        Self::new(context.peer.clone())
    }
}

impl<C: AsRequestContext> FromContextPart<C> for TracedPeer {
    fn from_context_part(context: &mut C) -> Result<Self, ErrorData> {
        Ok(Self::from(context.as_request_context()))
    }
}

impl std::fmt::Debug for TracedPeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TracedPeer").field("traced", &self.serving.is_some()).finish_non_exhaustive()
    }
}
