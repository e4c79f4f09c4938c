//! Spans as `archon-mcp-instrument` emits them, for tests, the demo and benchmarks.

use archon_mcp_instrument::attributes as attr;

use crate::ids;
use crate::span::{Span, SpanKind, StatusCode};

/// One millisecond in nanoseconds.
const MS: u64 = 1_000_000;

/// A user as the instrumentation reports one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TestUser {
    /// The principal (`user.id`): a UUID, or anything else (then the exporter derives one).
    pub principal: &'static str,
    /// `user.email`.
    pub email: &'static str,
    /// `user.full_name`.
    pub name: &'static str,
    /// `archon.user.department`.
    pub department: &'static str,
}

/// One MCP connection: builds its request spans and its `mcp.session` span, with the ids,
/// client and user attributes the instrumentation sets.
///
/// ```
/// use archon_mcp_exporter::testing::Connection;
///
/// let mut conn = Connection::new("conn-1", "claude-code", None);
/// let call = conn.call("search", 1_000_000_000, 40);
/// assert_eq!(call.attributes.str("gen_ai.tool.name").as_deref(), Some("search"));
/// ```
#[derive(Debug, Clone)]
pub struct Connection {
    session: String,
    client: String,
    user: Option<TestUser>,
    service: String,
    trace: [u8; 16],
    next_span: u64,
}

impl Connection {
    /// A connection whose analytics session is `session`, from client `client`.
    pub fn new(session: &str, client: &str, user: Option<TestUser>) -> Self {
        Self {
            session: session.into(),
            client: client.into(),
            user,
            service: "kb-server".into(),
            // One trace per connection, distinct per session.
            trace: *ids::session_id(session).as_bytes(),
            next_span: 1,
        }
    }

    /// Sets the `service.name` resource attribute (default `kb-server`).
    pub fn with_service(mut self, service: &str) -> Self {
        self.service = service.into();
        self
    }

    /// A successful `tools/call` of `tool` starting at `start` (Unix nanoseconds), lasting `ms`.
    pub fn call(&mut self, tool: &str, start: u64, ms: u64) -> Span {
        self.next_span += 1;
        let span = Span::new(format!("tools/call {tool}"), start, start + ms * MS)
            .with_ids(self.trace, self.next_span.to_be_bytes())
            .with_kind(SpanKind::Server)
            .with_attribute(attr::MCP_METHOD_NAME, attr::METHOD_TOOLS_CALL)
            .with_attribute(attr::GEN_AI_TOOL_NAME, tool)
            .with_attribute(attr::GEN_AI_OPERATION_NAME, attr::OPERATION_EXECUTE_TOOL)
            .with_attribute(attr::JSONRPC_REQUEST_ID, self.next_span.to_string())
            .with_attribute(attr::NETWORK_TRANSPORT, attr::TRANSPORT_TCP);
        self.identify(span)
    }

    /// The `mcp.session` span, from `start` to `end`, ended for `reason`.
    pub fn end(&mut self, start: u64, end: u64, reason: &str) -> Span {
        let span = Span::new(attr::SESSION_SPAN_NAME, start, end)
            .with_ids(self.trace, [0xff; 8])
            .with_kind(SpanKind::Internal)
            .with_attribute(attr::ARCHON_SESSION_DISCONNECT_REASON, reason);
        self.identify(span)
    }

    fn identify(&self, mut span: Span) -> Span {
        span = span
            .with_attribute(attr::SESSION_ID, self.session.clone())
            .with_attribute(attr::ARCHON_CLIENT_NAME, self.client.clone())
            .with_attribute(attr::ARCHON_CLIENT_VERSION, "1.0.0")
            .with_resource(attr::SERVICE_NAME, self.service.clone());
        if let Some(user) = self.user {
            span = span
                .with_attribute(attr::USER_ID, user.principal)
                .with_attribute(attr::USER_EMAIL, user.email)
                .with_attribute(attr::USER_FULL_NAME, user.name)
                .with_attribute(attr::ARCHON_USER_DEPARTMENT, user.department);
        }
        span
    }
}

/// Adds usage reported by tool code.
pub fn with_usage(span: Span, model: &str, input: i64, output: i64) -> Span {
    span.with_attribute(attr::GEN_AI_REQUEST_MODEL, model)
        .with_attribute(attr::GEN_AI_USAGE_INPUT_TOKENS, input)
        .with_attribute(attr::GEN_AI_USAGE_OUTPUT_TOKENS, output)
}

/// Adds estimated tokens (result → input, arguments → output).
pub fn with_estimate(span: Span, input: i64, output: i64) -> Span {
    span.with_attribute(attr::ARCHON_USAGE_ESTIMATED_INPUT_TOKENS, input)
        .with_attribute(attr::ARCHON_USAGE_ESTIMATED_OUTPUT_TOKENS, output)
}

/// Marks a tool result with `isError`.
pub fn tool_error(span: Span, message: &str) -> Span {
    span.with_status(StatusCode::Error, message).with_attribute(attr::ERROR_TYPE, attr::ERROR_TYPE_TOOL_ERROR)
}

/// Marks a JSON-RPC error response with `code`.
pub fn rpc_error(span: Span, code: i32, message: &str) -> Span {
    span.with_status(StatusCode::Error, message)
        .with_attribute(attr::ERROR_TYPE, code.to_string())
        .with_attribute(attr::RPC_RESPONSE_STATUS_CODE, code.to_string())
}
