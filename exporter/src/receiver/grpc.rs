//! OTLP/gRPC: `opentelemetry.proto.collector.trace.v1.TraceService/Export`.
//!
//! The service is tonic's generated one but for its codec: the request message is taken as
//! bytes and decoded by [`spans_from_protobuf`] (one pass, no copy of its texts; text that is
//! not UTF-8 decoded leniently, as over HTTP), the response encoded by prost.

use std::sync::Arc;

use bytes::{Buf as _, Bytes};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::SERVICE_NAME;
use prost::Message as _;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EnabledCompressionEncodings, EncodeBuf, Encoder};
use tonic::codegen::{Body, BoxFuture, Context, Poll, Service, StdError, http};
use tonic::service::interceptor::InterceptedService;
use tonic::{Request, Response, Status};

use super::budget::{Held, InFlight, Reserved};
use super::{Ingest, export_response};
use crate::otlp::{self, spans_from_protobuf, spans_from_request};
use crate::pipeline::Outcome;
use crate::retry;

/// The token check, run on the request's metadata before its message is read or decoded.
#[derive(Debug, Clone)]
pub(crate) struct Authenticate(Ingest);

impl tonic::service::Interceptor for Authenticate {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        if self.0.authorized(request.metadata().get("authorization").map(|v| v.as_bytes())) {
            Ok(request)
        } else {
            Err(Status::unauthenticated("a valid bearer token is required"))
        }
    }
}

/// The gRPC trace service.
#[derive(Debug, Clone)]
pub(crate) struct GrpcReceiver {
    ingest: Arc<Ingest>,
    accept: EnabledCompressionEncodings,
    send: EnabledCompressionEncodings,
    max_message_bytes: usize,
    in_flight: InFlight,
}

impl GrpcReceiver {
    /// The tonic service, accepting gzip and messages up to `max_message_bytes` (decompressed),
    /// from clients with the token (checked before the message is read), holding messages as
    /// received and decompressed within `in_flight`.
    pub(crate) fn service(
        ingest: Ingest,
        max_message_bytes: usize,
        in_flight: InFlight,
    ) -> InterceptedService<Self, Authenticate> {
        let mut accept = EnabledCompressionEncodings::default();
        accept.enable(CompressionEncoding::Gzip);
        let server = Self { ingest: Arc::new(ingest.clone()), accept, send: accept, max_message_bytes, in_flight };
        InterceptedService::new(server, Authenticate(ingest))
    }
}

/// `RESOURCE_EXHAUSTED` with a retry delay: the receivers hold as many export bytes as they may.
/// OTLP senders retry it when it carries `RetryInfo`.
fn over_budget() -> Status {
    use tonic_types::{ErrorDetails, StatusExt as _};
    Status::with_error_details(
        tonic::Code::ResourceExhausted,
        "the receiver is holding as many export bytes as it may: retry later",
        ErrorDetails::with_retry_info(Some(retry::RETRY_AFTER)),
    )
}

impl tonic::server::NamedService for GrpcReceiver {
    const NAME: &'static str = SERVICE_NAME;
}

impl<B> Service<http::Request<B>> for GrpcReceiver
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if request.uri().path() != "/opentelemetry.proto.collector.trace.v1.TraceService/Export" {
            return Box::pin(async { Ok(Status::unimplemented("only TraceService/Export is served").into_http()) });
        }
        let this = self.clone();
        // The message's bytes come out of the budget as they arrive, and stay out until the
        // export is answered.
        let held = Held::default();
        let mut request = request.map(|body| Reserved::new(body, this.in_flight.clone(), held.clone(), over_budget));
        request.extensions_mut().insert(held);
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(RawRequestCodec)
                .apply_compression_config(this.accept, this.send)
                .apply_max_message_size_config(Some(this.max_message_bytes), None);
            let export = Export { ingest: this.ingest.clone(), in_flight: this.in_flight.clone() };
            let response = grpc.unary(export, request).await;
            if response.headers().get("grpc-status").is_some_and(|s| s == "8") {
                this.ingest.metrics().exports.add("over_budget", 1);
            }
            Ok(response)
        })
    }
}

/// `Export` itself.
struct Export {
    ingest: Arc<Ingest>,
    in_flight: InFlight,
}

impl tonic::server::UnaryService<Bytes> for Export {
    type Response = ExportTraceServiceResponse;
    type Future = BoxFuture<Response<Self::Response>, Status>;

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let (ingest, in_flight) = (self.ingest.clone(), self.in_flight.clone());
        Box::pin(async move {
            let held = request.extensions().get::<Held>().cloned().unwrap_or_default();
            let body = request.into_inner();
            // The message decompressed is held too (its received bytes already are).
            if !held.reserve(&in_flight, body.len()) {
                return Err(over_budget());
            }
            let (spans, undecodable) = spans_from_protobuf(body.clone())
                .or_else(|strict| otlp::decode_lossy(&body).map(spans_from_request).map_err(|_| strict))
                .map_err(|e| Status::invalid_argument(format!("cannot decode the export request: {e}")))?;
            match ingest.export(&spans, undecodable).await {
                Outcome::Accepted { rejected, message } => Ok(Response::new(export_response(rejected, message))),
                Outcome::NotCommitted(e) => Err(retry::grpc_status(&e)),
            }
        })
    }
}

/// Request messages as their bytes; responses by prost.
#[derive(Debug, Clone, Copy, Default)]
struct RawRequestCodec;

impl Codec for RawRequestCodec {
    type Encode = ExportTraceServiceResponse;
    type Decode = Bytes;
    type Encoder = Self;
    type Decoder = Self;

    fn encoder(&mut self) -> Self {
        Self
    }

    fn decoder(&mut self) -> Self {
        Self
    }
}

impl Encoder for RawRequestCodec {
    type Item = ExportTraceServiceResponse;
    type Error = Status;

    fn encode(&mut self, item: Self::Item, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(dst).map_err(|e| Status::internal(format!("encoding the response: {e}")))
    }
}

impl Decoder for RawRequestCodec {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        // The frame's bytes, shared, not copied.
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}
