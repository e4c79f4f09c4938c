//! Where a request comes from: its HTTP request (when there is one), the client and protocol
//! version it names — in its own `_meta` (protocol 2026-07-28) or, for a connection that sent
//! `initialize`, in the connection's peer info — and the user its credentials resolve to.

use std::sync::{Arc, LazyLock};

use rmcp::model::{ClientConfig, Extensions, Implementation, ProtocolVersion};
use rmcp::service::{RequestContext, RoleServer};

use crate::runtime::Shared;
use crate::user::{Resolution, UserFailures, UserInfo};

/// `_meta` keys of self-contained requests (protocol 2026-07-28), as rmcp spells them.
const CLIENT_INFO_KEY: &str = "io.modelcontextprotocol/clientInfo";
const PROTOCOL_KEY: &str = "io.modelcontextprotocol/protocolVersion";

/// What a request says about who sent it, read once before its span opens.
pub(crate) struct Origin<'a> {
    pub(crate) ctx: &'a RequestContext<RoleServer>,
    /// The HTTP request, on streamable HTTP.
    pub(crate) parts: Option<&'a http::request::Parts>,
    pub(crate) user: Option<Arc<UserInfo>>,
    /// Whether the request carries its client and protocol in `_meta`.
    inline: bool,
    inline_client: Option<Implementation>,
    inline_protocol: Option<ProtocolVersion>,
    peer: Option<Arc<ClientConfig>>,
    /// For a stateless request whose peer is rmcp's stand-in: the client its `initialize` named.
    recalled: Option<Option<Implementation>>,
}

impl<'a> Origin<'a> {
    /// Reads the request's origin. `_meta` is looked at in place: rmcp's own accessors parse
    /// it and clone on every call, so they run only when the keys are there.
    /// `initializing` is the client an `initialize` names.
    pub(crate) fn read(
        ctx: &'a RequestContext<RoleServer>,
        shared: &Shared,
        initializing: Option<&Implementation>,
    ) -> Self {
        let inline = ctx.meta.0.contains_key(CLIENT_INFO_KEY) || ctx.meta.0.contains_key(PROTOCOL_KEY);
        Self {
            ctx,
            parts: ctx.extensions.get::<http::request::Parts>(),
            user: resolve_user(shared, &ctx.extensions),
            inline,
            inline_client: inline.then(|| ctx.client_info()).flatten(),
            inline_protocol: inline.then(|| ctx.protocol_version()).flatten(),
            peer: ctx.peer.peer_info(),
            recalled: None,
        }
        .remembering(shared, initializing)
        .recalling(shared)
    }

    /// Served statelessly, a client's later requests come with rmcp's stand-in peer: the client
    /// its `initialize` names is remembered for them.
    fn remembering(self, shared: &Shared, initializing: Option<&Implementation>) -> Self {
        if let Some(client) = initializing.filter(|_| self.stateless()) {
            shared.stateless_clients.remember(self.client_key(), client);
        }
        self
    }

    /// rmcp serves each stateless request on its own, with a stand-in peer
    /// (`Implementation::default()`: "rmcp" and its version) even when the client sent
    /// `initialize`: the client it named then is recalled.
    fn recalling(mut self, shared: &Shared) -> Self {
        let stand_in = !self.inline
            && self.stateless()
            && self.peer.as_ref().is_some_and(|p| {
                let (name, version) = &*STAND_IN;
                p.client_info.name == *name && p.client_info.version == *version
            });
        if stand_in {
            self.recalled = Some(shared.stateless_clients.recall(&self.client_key()));
        }
        self
    }

    /// Who a stateless client is, for [`StatelessClients`]: its user and address.
    pub(crate) fn client_key(&self) -> String {
        format!("{}\u{0}{}", self.principal().unwrap_or(""), self.client_address().unwrap_or(""))
    }

    /// The client's name and version.
    pub(crate) fn client(&self) -> Option<(&str, &str)> {
        if let Some(recalled) = &self.recalled {
            return recalled.as_ref().map(|c| (c.name.as_str(), c.version.as_str()));
        }
        match &self.inline_client {
            Some(c) => Some((c.name.as_str(), c.version.as_str())),
            None if !self.inline => {
                self.peer.as_ref().map(|p| (p.client_info.name.as_str(), p.client_info.version.as_str()))
            }
            None => None,
        }
    }

    /// The protocol version the request speaks.
    pub(crate) fn protocol(&self) -> Option<&str> {
        match &self.inline_protocol {
            Some(p) => Some(p.as_str()),
            None if !self.inline => self.peer.as_ref().map(|p| p.protocol_version.as_str()),
            None => None,
        }
    }

    /// An HTTP request header, when it is text.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.parts.and_then(|p| p.headers.get(name)).and_then(|v| v.to_str().ok())
    }

    /// The `Mcp-Session-Id` of a streamable-HTTP session.
    pub(crate) fn mcp_session_id(&self) -> Option<&str> {
        self.header("mcp-session-id")
    }

    /// A stateless HTTP request: HTTP without a streamable-HTTP session, so no connection.
    pub(crate) fn stateless(&self) -> bool {
        self.parts.is_some() && self.mcp_session_id().is_none()
    }

    /// The client's address as a proxy in front reports it.
    pub(crate) fn client_address(&self) -> Option<&str> {
        self.header("x-forwarded-for")
            .and_then(|v| v.split(',').next())
            .or_else(|| self.header("x-real-ip"))
            .map(str::trim)
    }

    /// The user's principal, which owns the sessions it opens.
    pub(crate) fn principal(&self) -> Option<&str> {
        self.user.as_ref().map(|u| u.id.as_str())
    }
}

/// The name and version of rmcp's stand-in peer.
static STAND_IN: LazyLock<(String, String)> = LazyLock::new(|| {
    let stand_in = Implementation::default();
    (stand_in.name, stand_in.version)
});

fn resolve_user(shared: &Shared, extensions: &Extensions) -> Option<Arc<UserInfo>> {
    match shared.settings.user_resolver.resolve(extensions) {
        Resolution::User(user) => Some(user),
        Resolution::Absent => None,
        Resolution::Invalid(reason) => {
            UserFailures::record(reason);
            None
        }
    }
}
