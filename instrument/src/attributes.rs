//! The span contract between the instrumentation and the exporter (docs/span-contract.md says what each becomes in a row).
//!
//! Every attribute name and fixed value either side reads or writes is defined here, once.
//! Names follow the OpenTelemetry MCP, GenAI, user and error conventions where one exists;
//! the rest are prefixed `archon.`.
//!
//! ```
//! use archon_mcp_instrument::attributes::{self as attr, DisconnectReason};
//!
//! assert_eq!(attr::GEN_AI_TOOL_NAME, "gen_ai.tool.name");
//! assert_eq!(DisconnectReason::ClientDisconnect.as_str(), "client_disconnect");
//! ```

// --- Request span ---------------------------------------------------------------------------

/// MCP method of the request: `tools/call`, `tools/list`, `resources/read`, …
pub const MCP_METHOD_NAME: &str = "mcp.method.name";
/// Tool name, on `tools/call` of a tool the server has (a name the server does not know is
/// never recorded: it is the caller's words, of any cardinality).
pub const GEN_AI_TOOL_NAME: &str = "gen_ai.tool.name";
/// `execute_tool` on `tools/call`.
pub const GEN_AI_OPERATION_NAME: &str = "gen_ai.operation.name";
/// Prompt name, on `prompts/get`.
pub const GEN_AI_PROMPT_NAME: &str = "gen_ai.prompt.name";
/// Resource URI, on `resources/*`.
pub const MCP_RESOURCE_URI: &str = "mcp.resource.uri";
/// JSON-RPC request id, as a string.
pub const JSONRPC_REQUEST_ID: &str = "jsonrpc.request.id";
/// Negotiated MCP protocol version.
pub const MCP_PROTOCOL_VERSION: &str = "mcp.protocol.version";
/// `pipe` for stdio, `tcp` for HTTP.
pub const NETWORK_TRANSPORT: &str = "network.transport";
/// `http` on streamable HTTP.
pub const NETWORK_PROTOCOL_NAME: &str = "network.protocol.name";
/// The HTTP version on streamable HTTP: `1.1`, `2`.
pub const NETWORK_PROTOCOL_VERSION: &str = "network.protocol.version";
/// Peer address, when the transport knows it.
pub const CLIENT_ADDRESS: &str = "client.address";
/// The transport's protocol session (`Mcp-Session-Id`), when there is one.
pub const MCP_SESSION_ID: &str = "mcp.session.id";
/// The analytics session (a UUID, v7) the request belongs to.
pub const SESSION_ID: &str = "session.id";
/// Raw client name from the client's `initialize` info (or its `_meta` client info). Ours: the
/// MCP conventions define no client name.
pub const ARCHON_CLIENT_NAME: &str = "archon.client.name";
/// Raw client version from the client's `initialize` info (or its `_meta` client info).
pub const ARCHON_CLIENT_VERSION: &str = "archon.client.version";
/// [`ARCHON_CLIENT_NAME`] as instrumentations before 0.2 spelled it, inside the conventions'
/// `mcp.` namespace; still read.
pub const LEGACY_MCP_CLIENT_NAME: &str = "mcp.client.name";
/// [`ARCHON_CLIENT_VERSION`] as instrumentations before 0.2 spelled it; still read.
pub const LEGACY_MCP_CLIENT_VERSION: &str = "mcp.client.version";
/// Client capabilities from `initialize`, as a JSON object string (session span).
pub const ARCHON_CLIENT_CAPABILITIES: &str = "archon.client.capabilities";

// --- User ------------------------------------------------------------------------------------

/// The authenticated principal (JWT `sub`, proxy user id, …).
pub const USER_ID: &str = "user.id";
/// The user's email address (absent in hashing mode).
pub const USER_EMAIL: &str = "user.email";
/// A hash of the user's email, in hashing mode.
pub const USER_HASH: &str = "user.hash";
/// The user's display name.
pub const USER_FULL_NAME: &str = "user.full_name";
/// The user's login name.
pub const USER_NAME: &str = "user.name";
/// The user's department or team, for cost allocation.
pub const ARCHON_USER_DEPARTMENT: &str = "archon.user.department";

// --- Errors ----------------------------------------------------------------------------------

/// JSON-RPC code as a string, `tool_error`, `timeout` or `cancelled`.
pub const ERROR_TYPE: &str = "error.type";
/// JSON-RPC error code, as a string.
pub const RPC_RESPONSE_STATUS_CODE: &str = "rpc.response.status_code";
/// The error message of a request that failed by its caller's doing (a JSON-RPC error outside
/// -32603 and -32000…-32099, a cancellation): its span status stays unset, as the conventions
/// say of a server span, so the message that a failing span's status description carries is
/// here instead.
pub const ARCHON_ERROR_MESSAGE: &str = "archon.error.message";

// --- Usage and cost --------------------------------------------------------------------------

/// Model the tool called, as reported by tool code.
pub const GEN_AI_REQUEST_MODEL: &str = "gen_ai.request.model";
/// Input tokens, as reported by tool code.
pub const GEN_AI_USAGE_INPUT_TOKENS: &str = "gen_ai.usage.input_tokens";
/// Output tokens, as reported by tool code.
pub const GEN_AI_USAGE_OUTPUT_TOKENS: &str = "gen_ai.usage.output_tokens";
/// Estimated tokens of the tool result (they enter the model's context).
pub const ARCHON_USAGE_ESTIMATED_INPUT_TOKENS: &str = "archon.usage.estimated_input_tokens";
/// Estimated tokens of the tool arguments (the model wrote them).
pub const ARCHON_USAGE_ESTIMATED_OUTPUT_TOKENS: &str = "archon.usage.estimated_output_tokens";
/// A cost reported by tool code; wins over any priced estimate.
pub const ARCHON_COST_AMOUNT: &str = "archon.cost.amount";
/// Currency of [`ARCHON_COST_AMOUNT`] (ISO 4217, `USD` when absent).
pub const ARCHON_COST_CURRENCY: &str = "archon.cost.currency";
/// Captured tool arguments (opt-in, redacted, truncated).
pub const GEN_AI_TOOL_CALL_ARGUMENTS: &str = "gen_ai.tool.call.arguments";
/// Captured tool result (opt-in, redacted, truncated).
pub const GEN_AI_TOOL_CALL_RESULT: &str = "gen_ai.tool.call.result";

// --- Session span ----------------------------------------------------------------------------

/// Name of the span that lives as long as an analytics session.
pub const SESSION_SPAN_NAME: &str = "mcp.session";
/// Why the session ended; see [`DisconnectReason`].
pub const ARCHON_SESSION_DISCONNECT_REASON: &str = "archon.session.disconnect_reason";
/// `true` on a span the trace sampler would have dropped, kept because it bills (a request of
/// an analytics session, the session): for a collector to keep it out of the tracing backend.
pub const ARCHON_SAMPLING_BILLING_ONLY: &str = "archon.sampling.billing_only";
/// How many requests the session served.
pub const ARCHON_SESSION_REQUEST_COUNT: &str = "archon.session.request_count";
/// Estimated tokens (characters ÷ 4) of the last `tools/list` result the session received:
/// the tool catalog its model carries in its context.
pub const ARCHON_SESSION_CATALOG_TOKENS: &str = "archon.session.catalog_tokens";

// --- Resource --------------------------------------------------------------------------------

/// `service.name` resource attribute.
pub const SERVICE_NAME: &str = "service.name";
/// `service.instance.id` resource attribute.
pub const SERVICE_INSTANCE_ID: &str = "service.instance.id";
/// `service.version` resource attribute.
pub const SERVICE_VERSION: &str = "service.version";

// --- Fixed values ----------------------------------------------------------------------------

/// The MCP method whose requests open analytics sessions.
pub const METHOD_TOOLS_CALL: &str = "tools/call";
/// [`GEN_AI_OPERATION_NAME`] of a tool call.
pub const OPERATION_EXECUTE_TOOL: &str = "execute_tool";
/// [`ERROR_TYPE`] of a tool result with `isError: true`.
pub const ERROR_TYPE_TOOL_ERROR: &str = "tool_error";
/// [`ERROR_TYPE`] of a request that timed out.
pub const ERROR_TYPE_TIMEOUT: &str = "timeout";
/// [`ERROR_TYPE`] of a request the client cancelled, or went away before its response.
pub const ERROR_TYPE_CANCELLED: &str = "cancelled";
/// [`ERROR_TYPE`] of a tool call refused because a budget covering it is used up.
pub const ERROR_TYPE_BUDGET_EXCEEDED: &str = "budget_exceeded";
/// The span status description (the row's `error_message`) of a request whose client went away
/// before its response.
pub const CANCEL_CLIENT_DISCONNECT: &str = "client_disconnect";
/// [`NETWORK_TRANSPORT`] of stdio.
pub const TRANSPORT_PIPE: &str = "pipe";
/// [`NETWORK_PROTOCOL_NAME`] of streamable HTTP.
pub const PROTOCOL_HTTP: &str = "http";
/// [`NETWORK_TRANSPORT`] of HTTP.
pub const TRANSPORT_TCP: &str = "tcp";

/// Why an analytics session ended ([`ARCHON_SESSION_DISCONNECT_REASON`]).
///
/// One spelling per reason: Archon wrote `timeout_no_activity` in one place and counted
/// `timeout` in another.
///
/// ```
/// use archon_mcp_instrument::attributes::DisconnectReason;
///
/// assert_eq!(DisconnectReason::parse("timeout_no_activity"), DisconnectReason::Timeout);
/// assert_eq!(DisconnectReason::parse("error:io").as_str(), "error:io");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DisconnectReason {
    /// The client closed the connection.
    ClientDisconnect,
    /// The server shut down with the session open.
    ServerShutdown,
    /// Nothing but inactivity ended it (an HTTP session's keep-alive, the stateless idle window,
    /// the exporter's reaper); it ends at its last activity.
    Timeout,
    /// The transport failed to deliver a message.
    TransportError,
    /// An error of the given type ended it (`error:<type>`).
    Error(String),
}

impl DisconnectReason {
    /// The stored spelling.
    pub fn as_str(&self) -> &str {
        match self {
            Self::ClientDisconnect => "client_disconnect",
            Self::ServerShutdown => "server_shutdown",
            Self::Timeout => "timeout",
            Self::TransportError => "transport_error",
            Self::Error(spelled) => spelled,
        }
    }

    /// Reads a reason, accepting the legacy spellings; anything unknown becomes an error reason.
    pub fn parse(value: &str) -> Self {
        match value.trim() {
            "client_disconnect" | "client_disconnected" | "disconnect" => Self::ClientDisconnect,
            "server_shutdown" | "shutdown" => Self::ServerShutdown,
            "timeout" | "timeout_no_activity" | "idle_timeout" => Self::Timeout,
            "transport_error" => Self::TransportError,
            other if other.starts_with("error:") => Self::Error(other.to_owned()),
            other => Self::Error(format!("error:{other}")),
        }
    }

    /// The reason for a transport error of the given type.
    pub fn error(error_type: &str) -> Self {
        Self::Error(format!("error:{error_type}"))
    }
}

impl std::fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

// --- Every key ----------------------------------------------------------------------------

/// Every attribute key of the contract — request, session and resource spans — for readers
/// that recognise keys (the exporter's decoder keeps these static instead of copying them).
///
/// ```
/// use archon_mcp_instrument::attributes::{KEYS, USER_ID};
///
/// assert!(KEYS.contains(&USER_ID));
/// ```
pub const KEYS: [&str; 43] = [
    MCP_METHOD_NAME,
    GEN_AI_TOOL_NAME,
    GEN_AI_OPERATION_NAME,
    GEN_AI_PROMPT_NAME,
    MCP_RESOURCE_URI,
    JSONRPC_REQUEST_ID,
    MCP_PROTOCOL_VERSION,
    NETWORK_TRANSPORT,
    NETWORK_PROTOCOL_NAME,
    NETWORK_PROTOCOL_VERSION,
    CLIENT_ADDRESS,
    MCP_SESSION_ID,
    SESSION_ID,
    ARCHON_CLIENT_NAME,
    ARCHON_CLIENT_VERSION,
    LEGACY_MCP_CLIENT_NAME,
    LEGACY_MCP_CLIENT_VERSION,
    ARCHON_CLIENT_CAPABILITIES,
    USER_ID,
    USER_EMAIL,
    USER_HASH,
    USER_FULL_NAME,
    USER_NAME,
    ARCHON_USER_DEPARTMENT,
    ERROR_TYPE,
    RPC_RESPONSE_STATUS_CODE,
    ARCHON_ERROR_MESSAGE,
    GEN_AI_REQUEST_MODEL,
    GEN_AI_USAGE_INPUT_TOKENS,
    GEN_AI_USAGE_OUTPUT_TOKENS,
    ARCHON_USAGE_ESTIMATED_INPUT_TOKENS,
    ARCHON_USAGE_ESTIMATED_OUTPUT_TOKENS,
    ARCHON_COST_AMOUNT,
    ARCHON_COST_CURRENCY,
    GEN_AI_TOOL_CALL_ARGUMENTS,
    GEN_AI_TOOL_CALL_RESULT,
    ARCHON_SESSION_DISCONNECT_REASON,
    ARCHON_SAMPLING_BILLING_ONLY,
    ARCHON_SESSION_REQUEST_COUNT,
    ARCHON_SESSION_CATALOG_TOKENS,
    SERVICE_NAME,
    SERVICE_INSTANCE_ID,
    SERVICE_VERSION,
];

#[cfg(test)]
mod tests {
    /// An attribute added to the contract and not to [`super::KEYS`] would be copied, not
    /// recognised, by readers: every dotted constant of this file is a key, except span names.
    #[test]
    fn keys_lists_every_attribute_of_the_contract() {
        let mut keys = 0;
        for line in include_str!("attributes.rs").lines() {
            let Some((name, value)) = line.strip_prefix("pub const ").and_then(|rest| rest.split_once(": &str = \""))
            else {
                continue;
            };
            let value = value.trim_end_matches("\";");
            if value.contains('.') && name != "SESSION_SPAN_NAME" {
                assert!(super::KEYS.contains(&value), "{name} ({value}) is missing from KEYS");
                keys += 1;
            }
        }
        assert_eq!(keys, super::KEYS.len(), "KEYS holds something that is not an attribute of this file");
    }
}
