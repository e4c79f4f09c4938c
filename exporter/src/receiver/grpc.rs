//! OTLP/gRPC: `opentelemetry.proto.collector.trace.v1.TraceService/Export`.

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use tonic::codec::CompressionEncoding;
use tonic::{Code, Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt as _};

use super::{Ingest, Outcome, RETRY_AFTER, export_response};

/// The gRPC trace service.
#[derive(Debug, Clone)]
pub struct GrpcReceiver {
    ingest: Ingest,
}

impl GrpcReceiver {
    /// The tonic service, accepting gzip and messages up to `max_message_bytes` (decompressed).
    pub fn service(ingest: Ingest, max_message_bytes: usize) -> TraceServiceServer<Self> {
        TraceServiceServer::new(Self { ingest })
            .accept_compressed(CompressionEncoding::Gzip)
            .send_compressed(CompressionEncoding::Gzip)
            .max_decoding_message_size(max_message_bytes)
    }
}

#[tonic::async_trait]
impl TraceService for GrpcReceiver {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let authorization = request.metadata().get("authorization").map(|v| v.as_bytes());
        if !self.ingest.authorized(authorization) {
            self.ingest.metrics().exports.add("unauthenticated", 1);
            return Err(Status::unauthenticated("a valid bearer token is required"));
        }
        match self.ingest.export(request.into_inner()).await {
            Outcome::Accepted { rejected, message } => Ok(Response::new(export_response(rejected, message))),
            // The collector retries UNAVAILABLE, after RetryInfo's delay.
            Outcome::Unavailable(message) => Err(Status::with_error_details(
                Code::Unavailable,
                message,
                ErrorDetails::with_retry_info(Some(RETRY_AFTER)),
            )),
        }
    }
}
