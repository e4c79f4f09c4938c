//! The transport under a [`Traced`](crate::Traced) server, watched: when it closes or fails, the
//! connection's analytics session ends then, for the reason it closed.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use rmcp::RoleServer;
use rmcp::model::{ClientJsonRpcMessage, GetExtensions as _};
use rmcp::service::{RxJsonRpcMessage, TxJsonRpcMessage};
use rmcp::transport::Transport;

use crate::connection::Connection;

/// When a request reached the server: its transport delivered it. Put into the request's
/// extensions, so its span starts at arrival rather than when rmcp started the handler.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Arrival {
    pub(crate) at: SystemTime,
    pub(crate) instant: Instant,
}

impl Arrival {
    pub(crate) fn now() -> Self {
        Self { at: SystemTime::now(), instant: Instant::now() }
    }
}

/// A transport whose end and failures end its connection's analytics session: what
/// [`Traced::serve`](crate::Traced::serve) serves, and the session transport of a
/// [`TracedSessionManager`](crate::TracedSessionManager). It forwards every message unchanged.
pub struct ObservedTransport<T> {
    inner: T,
    connection: Arc<Connection>,
    closed: bool,
}

impl<T> ObservedTransport<T> {
    pub(crate) fn new(inner: T, connection: Arc<Connection>) -> Self {
        Self { inner, connection, closed: false }
    }

    fn closed(&mut self) {
        if !std::mem::replace(&mut self.closed, true) {
            self.connection.transport_closed();
        }
    }
}

impl<T: Transport<RoleServer>> Transport<RoleServer> for ObservedTransport<T> {
    type Error = T::Error;

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleServer>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        let send = self.inner.send(item);
        let connection = self.connection.clone();
        async move {
            let result = send.await;
            if result.is_err() {
                connection.transport_failed();
            }
            result
        }
    }

    async fn receive(&mut self) -> Option<RxJsonRpcMessage<RoleServer>> {
        let Some(mut message) = self.inner.receive().await else {
            self.closed();
            return None;
        };
        if let ClientJsonRpcMessage::Request(request) = &mut message {
            request.request.extensions_mut().insert(Arrival::now());
        }
        Some(message)
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        self.closed();
        self.inner.close().await
    }
}

impl<T> Drop for ObservedTransport<T> {
    fn drop(&mut self) {
        self.closed();
    }
}
