//! Which analytics session a request belongs to: its connection's, or for a stateless request
//! the shared one of its session hint or of its (user, client). Only a tool call creates one.

use std::sync::Arc;

use opentelemetry::KeyValue;

use crate::attributes as attr;
use crate::connection::Connection;
use crate::origin::Origin;
use crate::propagation::session_hint;
use crate::runtime::Shared;
use crate::session::{ActiveSession, lock};

/// The request's session, started with the `identity` attributes (client, user) when `create`
/// and there is none yet.
pub(crate) fn session_for(
    shared: &Shared,
    connection: &Connection,
    origin: &Origin<'_>,
    create: bool,
    identity: &[KeyValue],
) -> Option<Arc<ActiveSession>> {
    // The session span carries the client and user, not the protocol version of one request.
    let attributes = || {
        let mut attributes: Vec<KeyValue> =
            identity.iter().filter(|kv| kv.key.as_str() != attr::MCP_PROTOCOL_VERSION).cloned().collect();
        attributes.extend(
            origin
                .ctx
                .client_capabilities()
                .and_then(|c| serde_json::to_string(&c).ok())
                .map(|json| KeyValue::new(attr::ARCHON_CLIENT_CAPABILITIES, json)),
        );
        attributes
    };
    let principal = || origin.principal().map(str::to_owned);
    // The attributes of `mcp.server.session.duration` known at its start.
    let labels = || {
        let protocol = identity.iter().find(|kv| kv.key.as_str() == attr::MCP_PROTOCOL_VERSION).cloned();
        let http = origin.parts.map(|_| KeyValue::new(attr::NETWORK_PROTOCOL_NAME, attr::PROTOCOL_HTTP));
        protocol.into_iter().chain(http).collect()
    };
    if !origin.stateless() {
        let mut slot = lock(&connection.session);
        if slot.is_none() && create {
            let mut attributes = attributes();
            attributes.extend(
                connection.catalog_tokens().map(|n| KeyValue::new(attr::ARCHON_SESSION_CATALOG_TOKENS, n as i64)),
            );
            *slot = Some(shared.start_session(None, principal(), false, attributes, labels()));
        }
        return slot.clone();
    }
    let hint = session_hint(origin.ctx);
    let key = match &hint {
        Some(hint) => format!("hint\u{0}{hint}"),
        None => format!(
            "user\u{0}{}\u{0}{}",
            origin.principal().unwrap_or(""),
            origin.client().map_or("", |(name, _)| name)
        ),
    };
    let start = || shared.start_session(hint.clone(), principal(), true, attributes(), labels());
    shared.stateless.get(&key, create.then_some(&start as &dyn Fn() -> Arc<ActiveSession>))
}
