//! [`Network`]: what a request came over — stdio, or HTTP of some version — as the
//! conventions' `network.*` attributes.

use opentelemetry::KeyValue;

use crate::attributes as attr;

/// The network a request came over: stdio, or HTTP of some version.
#[derive(Clone, Copy)]
pub(crate) struct Network {
    http_version: Option<&'static str>,
}

impl Network {
    pub(crate) fn of(parts: Option<&http::request::Parts>) -> Self {
        let http_version = parts.map(|p| match p.version {
            http::Version::HTTP_09 => "0.9",
            http::Version::HTTP_10 => "1.0",
            http::Version::HTTP_2 => "2",
            http::Version::HTTP_3 => "3",
            _ => "1.1",
        });
        Self { http_version }
    }

    /// `network.transport`, and on HTTP `network.protocol.name` and `.version`.
    pub(crate) fn attributes(self) -> impl Iterator<Item = KeyValue> {
        let transport = if self.http_version.is_some() { attr::TRANSPORT_TCP } else { attr::TRANSPORT_PIPE };
        std::iter::once(KeyValue::new(attr::NETWORK_TRANSPORT, transport)).chain(
            self.http_version.into_iter().flat_map(|version| {
                [
                    KeyValue::new(attr::NETWORK_PROTOCOL_NAME, attr::PROTOCOL_HTTP),
                    KeyValue::new(attr::NETWORK_PROTOCOL_VERSION, version),
                ]
            }),
        )
    }
}
