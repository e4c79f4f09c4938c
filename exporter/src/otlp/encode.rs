//! Spans → the OTLP export request a collector would send: the inverse of the decoder, for
//! tests, benchmarks and fuzzing only.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span as ProtoSpan, Status as ProtoStatus};

use crate::span::{Attributes, Span, SpanKind, StatusCode, Value};

/// The export request a collector would send for `spans`; consecutive spans of the same resource share one
/// resource entry, as the SDK and collectors group them.
pub(crate) fn request_from_spans(spans: &[Span]) -> ExportTraceServiceRequest {
    let mut resource_spans: Vec<(Attributes, ResourceSpans)> = Vec::new();
    for span in spans {
        match resource_spans.last_mut() {
            Some((resource, group)) if *resource == *span.resource => group.scope_spans[0].spans.push(proto_span(span)),
            _ => resource_spans.push((
                (*span.resource).clone(),
                ResourceSpans {
                    resource: Some(Resource { attributes: key_values(&span.resource), ..Default::default() }),
                    scope_spans: vec![ScopeSpans { spans: vec![proto_span(span)], ..Default::default() }],
                    ..Default::default()
                },
            )),
        }
    }
    ExportTraceServiceRequest { resource_spans: resource_spans.into_iter().map(|(_, group)| group).collect() }
}

fn proto_span(span: &Span) -> ProtoSpan {
    ProtoSpan {
        trace_id: span.trace_id.to_vec(),
        span_id: span.span_id.to_vec(),
        parent_span_id: span.parent_span_id.map(|p| p.to_vec()).unwrap_or_default(),
        name: span.name.to_string(),
        kind: match span.kind {
            SpanKind::Unspecified => 0,
            SpanKind::Internal => 1,
            SpanKind::Server => 2,
            SpanKind::Client => 3,
            SpanKind::Producer => 4,
            SpanKind::Consumer => 5,
        },
        start_time_unix_nano: span.start_time_unix_nano,
        end_time_unix_nano: span.end_time_unix_nano,
        attributes: key_values(&span.attributes),
        status: Some(ProtoStatus {
            code: match span.status.code {
                StatusCode::Unset => 0,
                StatusCode::Ok => 1,
                StatusCode::Error => 2,
                StatusCode::Unknown(code) => code,
            },
            message: span.status.message.clone(),
        }),
        ..Default::default()
    }
}

fn key_values(attributes: &Attributes) -> Vec<KeyValue> {
    attributes
        .0
        .iter()
        .map(|(key, value)| KeyValue {
            key: key.to_string(),
            value: Some(AnyValue {
                value: Some(match value {
                    Value::Str(s) => any_value::Value::StringValue(s.to_string()),
                    Value::Bytes(b) => any_value::Value::BytesValue(b.clone()),
                    Value::Bool(b) => any_value::Value::BoolValue(*b),
                    Value::I64(i) => any_value::Value::IntValue(*i),
                    Value::F64(f) => any_value::Value::DoubleValue(*f),
                }),
            }),
            ..Default::default()
        })
        .collect()
}
