//! The instrumentation with real rmcp clients over real transports (stdio child processes,
//! streamable HTTP, an in-process duplex), spans captured with the SDK's exporters.

mod behaviour;
mod client;
mod forwarding;
mod http;
mod lifecycle;
mod python;
mod server_requests;
mod stdio;
mod support;
