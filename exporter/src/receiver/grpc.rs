//! OTLP/gRPC: `opentelemetry.proto.collector.trace.v1.TraceService/Export`.

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use tonic::codec::CompressionEncoding;
use tonic::service::interceptor::InterceptedService;
use tonic::{Request, Response, Status};

use super::{Ingest, export_response};
use crate::pipeline::Outcome;
use crate::retry;

/// The gRPC trace service.
#[derive(Debug, Clone)]
pub(crate) struct GrpcReceiver {
    ingest: Ingest,
}

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

impl GrpcReceiver {
    /// The tonic service, accepting gzip and messages up to `max_message_bytes` (decompressed),
    /// from clients with the token (checked before the message is read).
    pub(crate) fn service(
        ingest: Ingest,
        max_message_bytes: usize,
    ) -> InterceptedService<TraceServiceServer<Self>, Authenticate> {
        let server = TraceServiceServer::new(Self { ingest: ingest.clone() })
            .accept_compressed(CompressionEncoding::Gzip)
            .send_compressed(CompressionEncoding::Gzip)
            .max_decoding_message_size(max_message_bytes);
        InterceptedService::new(server, Authenticate(ingest))
    }
}

#[tonic::async_trait]
impl TraceService for GrpcReceiver {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        match self.ingest.export(request.into_inner()).await {
            Outcome::Accepted { rejected, message } => Ok(Response::new(export_response(rejected, message))),
            Outcome::NotCommitted(e) => Err(retry::grpc_status(&e)),
        }
    }
}
